"""nmn for Flax Linen: Yat layers as dataclass ``nn.Module``s (``features``, ``init``/``apply``, channels-last).

>>> import jax, jax.numpy as jnp
>>> from nmn.linen import YatNMN
>>> layer = YatNMN(features=64)
>>> x = jnp.zeros((32, 128))
>>> layer.apply(layer.init(jax.random.key(0), x), x).shape
(32, 64)
"""

try:
    import flax.linen
    import jax
except ImportError as err:  # pragma: no cover - exercised only without flax
    raise ImportError('nmn.linen needs JAX and Flax: pip install "nmn[linen]>=1.0" (the "jax" extra)') from err

from nmn.core.names import bind_aliases as _bind_aliases
from nmn.core.names import module_getattr as _module_getattr
from nmn.core.names import public_names as _public_names
from nmn.linen import functional
from nmn.linen.attention import MultiHeadAttention, MultiHeadYatAttention, RotaryYatAttention
from nmn.linen.attention_helpers import (  # nmn 0.3's helpers, with its signatures
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
from nmn.linen.conv import YatConv1D, YatConv2D, YatConv3D
from nmn.linen.conv_transpose import YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D
from nmn.linen.dense import YatNMN
from nmn.linen.embed import YatEmbed
from nmn.linen.random_features import (  # nmn 0.3's MAY / RAY / tensor-product attentions
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
from nmn.linen.spec import from_spec, to_spec
from nmn.linen.squashers import Softermax, SofterSigmoid, SoftTanh, soft_tanh, softer_sigmoid, softermax

_bind_aliases(globals())
__all__ = list(_public_names("linen"))
__getattr__ = _module_getattr("linen")  # nmn 0.3 names that are not carried over say why
