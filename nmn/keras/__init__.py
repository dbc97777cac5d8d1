"""nmn Yat layers for Keras 3 (TensorFlow, JAX and PyTorch backends), written with public ``keras.ops`` only.

Every layer is registered as Keras-serializable (package ``"nmn"``), so models holding them save to and load
from ``.keras`` files.

>>> import keras
>>> from nmn.keras import YatNMN
>>> tuple(YatNMN(features=8)(keras.ops.zeros((2, 4))).shape)
(2, 8)
"""

try:
    import keras as _keras
except ImportError as exc:  # pragma: no cover
    raise ImportError('nmn.keras needs Keras 3: pip install "nmn[keras]>=1.0"') from exc
if not _keras.__version__.startswith("3."):  # pragma: no cover
    raise ImportError(f'nmn.keras needs Keras 3, found {_keras.__version__}: pip install "nmn[keras]>=1.0"')

from nmn.core.names import bind_aliases as _bind_aliases
from nmn.core.names import module_getattr as _module_getattr
from nmn.core.names import public_names as _public_names
from nmn.keras import functional
from nmn.keras.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.keras.attention_helpers import (  # nmn 0.3's helpers, with its signatures
    apply_rotary_emb,
    causal_attention_mask,
    combine_masks,
    make_attention_mask,
    make_causal_mask,
    normalize_qk,
    precompute_freqs_cis,
    rotary_yat_attention,
    rotary_yat_attention_weights,
    yat_attention,
    yat_attention_normalized,
    yat_attention_weights,
)
from nmn.keras.conv import YatConv1D, YatConv2D, YatConv3D
from nmn.keras.conv_transpose import YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D
from nmn.keras.dense import YatNMN
from nmn.keras.embed import YatEmbed
from nmn.keras.random_features import (  # nmn 0.3's MAY / RAY / tensor-product attentions
    create_maclaurin_projection,
    create_radial_projection,
    create_yat_tp_projection,
    linear_attention,
    linear_attention_readout,
    maclaurin_coeffs,
    maclaurin_features,
    maclaurin_yat_attention,
    radial_features,
    radial_yat_attention,
    spherical_kappa,
    yat_tp_attention,
    yat_tp_features,
)
from nmn.keras.spec import from_spec, to_spec
from nmn.keras.squashers import Softermax, SofterSigmoid, SoftTanh, soft_tanh, softer_sigmoid, softermax

_bind_aliases(globals())
__all__ = list(_public_names("keras"))
__getattr__ = _module_getattr("keras")  # nmn 0.3 names that are not carried over say why

# .keras files of models loaded from ONNX hold nmn's OnnxOp layer: register it, so that `import nmn.keras` is all
# `keras.saving.load_model` needs in a fresh process (issue 19)
import nmn.interchange.keras_io as _keras_io  # noqa: E402
