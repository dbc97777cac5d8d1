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
from nmn.core.names import public_names as _public_names
from nmn.mlx import functional
from nmn.mlx._ops import F
from nmn.mlx.attention import MultiHeadYatAttention, RotaryYatAttention
from nmn.mlx.conv import YatConv1D, YatConv2D, YatConv3D
from nmn.mlx.conv_transpose import YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D
from nmn.mlx.dense import YatNMN
from nmn.mlx.embed import YatEmbed
from nmn.mlx.functional import (
    apply_rotary_emb,
    precompute_freqs_cis,
    yat_attention,
    yat_attention_weights,
    yat_conv,
    yat_conv_transpose,
    yat_dense,
    yat_embed_attend,
    yat_performer_attention,
)
from nmn.mlx.spec import from_spec, to_spec
from nmn.mlx.squashers import Softermax, SofterSigmoid, SoftTanh, soft_tanh, softer_sigmoid, softermax

_bind_aliases(globals())
__all__ = list(_public_names("mlx"))
