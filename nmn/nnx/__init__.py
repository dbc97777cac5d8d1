"""nmn for Flax NNX: Yat layers as ``nnx.Module``s (``rngs``, ``dtype``/``param_dtype``, channels-last).

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> from nmn.nnx import YatNMN
>>> YatNMN(in_features=128, out_features=64, rngs=nnx.Rngs(0))(jnp.zeros((32, 128))).shape
(32, 64)
"""

try:
    import flax.nnx
    import jax
except ImportError as err:  # pragma: no cover - exercised only without flax
    raise ImportError('nmn.nnx needs JAX and Flax: pip install "nmn[nnx]>=1.0" (the "jax" extra)') from err

from nmn.core.names import bind_aliases as _bind_aliases
from nmn.core.names import module_getattr as _module_getattr
from nmn.core.names import public_names as _public_names
from nmn.nnx import functional
from nmn.nnx._ops import Buffer, FrozenParam
from nmn.nnx.attention import MultiHeadAttention, MultiHeadYatAttention, RotaryYatAttention
from nmn.nnx.attention_helpers import (  # nmn 0.3's helpers, with its signatures
    ATTENTION_DEFAULT_CONSTANT_ALPHA,
    CONV_DEFAULT_CONSTANT_ALPHA,
    apply_rotary_emb,
    canonicalize_padding,
    causal_attention_mask,
    combine_masks,
    default_alpha_init,
    default_bias_init,
    default_kernel_init,
    dot_product_attention,
    dot_product_attention_weights,
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
from nmn.nnx.conv import YatConv, YatConv1D, YatConv2D, YatConv3D
from nmn.nnx.conv_transpose import YatConvTranspose, YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D
from nmn.nnx.dense import YatNMN
from nmn.nnx.embed import Embed, YatEmbed
from nmn.nnx.random_features import (  # nmn 0.3's MAY / RAY / tensor-product attentions
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
from nmn.nnx.spec import from_spec, to_spec
from nmn.nnx.squashers import Softermax, SofterSigmoid, SoftTanh, soft_tanh, softer_sigmoid, softermax

_bind_aliases(globals())
__all__ = list(_public_names("nnx"))
__getattr__ = _module_getattr("nnx")  # nmn 0.3 names that are not carried over say why
