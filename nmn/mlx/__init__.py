"""nmn for MLX: Yat layers as ``mlx.nn.Module`` subclasses (channels-last data, parameters in the module dict).

Layers: :class:`YatNMN` (alias ``YatDense``), ``YatConv1D/2D/3D``, ``YatConvTranspose1D/2D/3D``,
:class:`MultiHeadYatAttention`, :class:`RotaryYatAttention`, :class:`YatEmbed`; squashers ``softermax``,
``softer_sigmoid``, ``soft_tanh`` and their module forms :class:`Softermax`, :class:`SofterSigmoid`,
:class:`SoftTanh`. Functional forms live in :mod:`nmn.mlx.functional`; the neutral layer spec
(``to_spec`` / ``from_spec``) in :mod:`nmn.mlx.spec`.

>>> import mlx.core as mx
>>> from nmn.mlx import YatNMN
>>> YatNMN(64, in_features=128)(mx.zeros((32, 128))).shape
(32, 64)
"""

from nmn.core.names import bind_aliases as _bind_aliases
from nmn.core.names import module_getattr as _module_getattr
from nmn.core.names import public_names as _public_names
from nmn.mlx import functional
from nmn.mlx._ops import F
from nmn.mlx.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.mlx.attention_helpers import (  # nmn 0.3's helpers, with its signatures
    apply_rotary_emb,
    causal_attention_mask,
    combine_masks,
    fused_yat_score,
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
from nmn.mlx.conv import YatConv1D, YatConv2D, YatConv3D
from nmn.mlx.conv_transpose import YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D
from nmn.mlx.dense import YatNMN
from nmn.mlx.embed import YatEmbed
from nmn.mlx.functional import (  # nmn's functional ops, importable from the root as in nmn 0.3
    yat_conv,
    yat_conv_transpose,
    yat_dense,
    yat_embed_attend,
    yat_performer_attention,
)
from nmn.mlx.random_features import (  # nmn 0.3's MAY / RAY / tensor-product attentions
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
from nmn.mlx.spec import from_spec, to_spec
from nmn.mlx.squashers import Softermax, SofterSigmoid, SoftTanh, soft_tanh, softer_sigmoid, softermax

_bind_aliases(globals())
__all__ = list(_public_names("mlx"))
__getattr__ = _module_getattr("mlx")  # nmn 0.3 names that are not carried over say why
