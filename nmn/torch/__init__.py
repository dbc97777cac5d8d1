"""nmn for PyTorch: Yat layers as ``torch.nn.Module`` s, a functional API and the neutral spec bridge.

The Yat product ``y = alpha * (x.w + b)^2 / (relu(|x|^2 + |w|^2 - 2 x.w) + epsilon)`` replaces Linear + ReLU.

>>> import torch
>>> from nmn.torch import YatNMN
>>> YatNMN(in_features=8, out_features=4)(torch.randn(2, 8)).shape
torch.Size([2, 4])
"""

try:
    import torch as _torch
except ImportError as err:  # pragma: no cover - exercised only without torch
    raise ImportError('nmn.torch needs PyTorch: pip install "nmn[torch]>=1.0"') from err

from nmn.core.names import bind_aliases as _bind_aliases
from nmn.core.names import module_getattr as _module_getattr
from nmn.core.names import public_names as _public_names
from nmn.torch import functional
from nmn.torch.attention import MultiHeadYatAttention, RotaryYatAttention, performer_projection
from nmn.torch.attention_helpers import (  # nmn 0.3's helpers, with its signatures
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
from nmn.torch.conv import YatConv1D, YatConv2D, YatConv3D
from nmn.torch.conv_transpose import YatConvTranspose1D, YatConvTranspose2D, YatConvTranspose3D
from nmn.torch.dense import YatNMN
from nmn.torch.embed import YatEmbed
from nmn.torch.functional import soft_tanh, softer_sigmoid, softermax
from nmn.torch.random_features import (  # nmn 0.3's MAY / RAY / tensor-product attentions
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
from nmn.torch.spec import from_spec, to_spec
from nmn.torch.squashers import Softermax, SofterSigmoid, SoftTanh

_bind_aliases(globals())
__all__ = list(_public_names("torch"))
__getattr__ = _module_getattr("torch")  # nmn 0.3 names that are not carried over say why
