"""The torch kernels shared by ``nmn.torch`` and by ``nmn.keras`` on Keras' torch backend.

Alternative implementations of :mod:`nmn.core.yat` functions (docs/design.md §A3) that pass the same
conformance cases, on ``torch.Tensor`` in torch's own layouts:

- :mod:`~nmn._torch._fused`: the Yat tail, the plain Yat dense product and the conv tail with analytic backward
  passes (CPU and GPU);
- :mod:`~nmn._torch._chunked`: the tiled O(L)-memory attention and the choice of attention path;
- :mod:`~nmn._torch._triton_attention`, :mod:`~nmn._torch._triton_dense`: the Triton kernels (CUDA, or the CPU
  under ``TRITON_INTERPRET=1``); triton is imported on first use only.

These modules import torch and :mod:`nmn.core` only, never ``nmn.torch`` or keras: the Keras layers on the
torch backend reach the same kernels as ``nmn.torch`` without importing the torch layers (the same split as
:mod:`nmn._jax` for NNX and Linen).
"""

try:
    import torch
except ImportError as err:  # pragma: no cover - exercised only without torch
    raise ImportError('the torch kernels need PyTorch: pip install "nmn[torch]>=1.0"') from err
