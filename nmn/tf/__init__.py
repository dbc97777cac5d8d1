"""nmn Yat layers for TensorFlow as ``tf.Module`` s with ``tf.Variable`` s (built on the first call).

They run eagerly, inside ``tf.function`` and save as SavedModels.

>>> import tensorflow as tf
>>> from nmn.tf import YatNMN
>>> tuple(YatNMN(features=8)(tf.zeros((2, 4))).shape)
(2, 8)
"""

try:
    import tensorflow as _tf
except ImportError as exc:  # pragma: no cover
    raise ImportError('nmn.tf needs TensorFlow: pip install "nmn[tf]>=1.0"') from exc

from nmn.core.names import bind_aliases as _bind_aliases
from nmn.core.names import module_getattr as _module_getattr
from nmn.core.names import public_names as _public_names
from nmn.tf import functional
from nmn.tf.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.tf.attention_helpers import (  # nmn 0.3's helpers, with its signatures
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
from nmn.tf.conv import YatConv1D, YatConv2D, YatConv3D
from nmn.tf.conv_transpose import YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D
from nmn.tf.dense import YatNMN
from nmn.tf.embed import YatEmbed
from nmn.tf.random_features import (  # nmn 0.3's MAY / RAY / tensor-product attentions
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
from nmn.tf.spec import from_spec, to_spec
from nmn.tf.squashers import Softermax, SofterSigmoid, SoftTanh, soft_tanh, softer_sigmoid, softermax

_bind_aliases(globals())
__all__ = list(_public_names("tf"))
__getattr__ = _module_getattr("tf")  # nmn 0.3 names that are not carried over say why
