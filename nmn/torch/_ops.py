"""The ``F`` ops namespace that :mod:`nmn.core.yat` runs on, written with PyTorch.

Every member is a thin call of the torch function of the same meaning (see the module docstring of
``nmn.core.yat``). ``TorchOps(device)`` binds the device on which helpers that create tensors from nothing
(``tril``) allocate; :func:`ops_for` returns the namespace for a tensor's device.

>>> import torch
>>> F = ops_for(torch.zeros(1))
>>> F.tril(2, 3).tolist()
[[True, True, False], [True, True, True]]
"""

from __future__ import annotations

import torch
import torch.nn.functional as _nnf

_HALF = (torch.float16, torch.bfloat16)


class TorchOps:
    """The ``F`` protocol of ``nmn.core.yat`` for torch tensors on ``device``."""

    __slots__ = ("device",)

    def __init__(self, device: torch.device | str | int | None = None) -> None:
        self.device = device

    # reductions and elementwise maths
    @staticmethod
    def sum(x, axis, keepdims=False):
        return torch.sum(x, dim=axis, keepdim=keepdims)

    sqrt = staticmethod(torch.sqrt)
    relu = staticmethod(torch.relu)
    softplus = staticmethod(_nnf.softplus)
    exp = staticmethod(torch.exp)
    cos = staticmethod(torch.cos)
    abs = staticmethod(torch.abs)
    sign = staticmethod(torch.sign)
    matmul = staticmethod(torch.matmul)
    einsum = staticmethod(torch.einsum)
    where = staticmethod(torch.where)
    logical_and = staticmethod(torch.logical_and)
    reshape = staticmethod(torch.reshape)

    @staticmethod
    def softmax(x, axis):
        return torch.softmax(x, dim=axis)

    @staticmethod
    def cumsum(x, axis):
        return torch.cumsum(x, dim=axis)

    @staticmethod
    def stack(xs, axis):
        return torch.stack(list(xs), dim=axis)

    @staticmethod
    def concat(xs, axis):
        return torch.cat(list(xs), dim=axis)

    @staticmethod
    def full_like(x, value):
        return torch.full_like(x, value)

    def tril(self, lq, lk):
        """Bool ``(lq, lk)`` mask, True where key ``j <= i + (lk - lq)`` (the last query sees the last key)."""
        return torch.ones(lq, lk, dtype=torch.bool, device=self.device).tril(lk - lq)

    @staticmethod
    def yat_tail(dot, dist, bias, alpha, eps):
        """Optional fast tail for core call sites that look it up (``getattr(F, "yat_tail", None)``).

        Same value as ``nmn.core.yat.yat_tail``; when autograd records, the fused Function of
        ``nmn._torch._fused`` (analytic backward, saves two tensors). Never calls back into the core tail.
        """
        from nmn._torch import _fused

        if _fused.recording(dot, dist, bias, alpha, eps):
            return _fused.YatTail.apply(dot, dist, bias, alpha, eps)
        return _fused._tail_forward(dot, dist, bias, alpha, eps)[0]

    @staticmethod
    def to_f32(x):
        return x.float() if x.dtype in _HALF else x

    @staticmethod
    def cast_like(x, ref):
        return x if x.dtype == ref.dtype else x.to(ref.dtype)


F = TorchOps()


def ops_for(x) -> TorchOps:
    """The ops namespace allocating on ``x``'s device."""
    return TorchOps(x.device)


def compute_dtype(*tensors) -> tuple[torch.dtype, torch.dtype]:
    """``(compute, result)`` dtypes: the promoted dtype of ``tensors`` and float32 or wider to compute in."""
    result = tensors[0].dtype
    for t in tensors[1:]:
        if t is not None and isinstance(t, torch.Tensor):
            result = torch.promote_types(result, t.dtype)
    return torch.promote_types(result, torch.float32), result


def resolve_param_dtype(
    dtype: torch.dtype | None, param_dtype: torch.dtype | None, layer: str
) -> tuple[torch.dtype | None, torch.dtype | None]:
    """nmn 0.3's ``param_dtype`` beside ``dtype``: ``(storage, compute)`` dtypes of a torch Yat layer.

    The parameters are created in ``storage`` (``param_dtype``, else ``dtype``: the factory ``dtype=``); when
    ``param_dtype`` is given, ``dtype`` (if given) becomes the ``compute`` dtype: each call runs on the input and
    the stored parameters cast to it (:func:`to_compute`); ``compute`` is None otherwise (torch's usual rule).
    The conv and attention layers call it the same way: ``storage, compute = resolve_param_dtype(dtype,
    param_dtype, name)``, create parameters with ``dtype=storage``, keep ``self.compute_dtype = compute`` and
    ``self.param_dtype = storage``, and pass the input, weight and tail terms through :func:`to_compute`.

    >>> resolve_param_dtype(torch.float16, torch.float32, "YatNMN")
    (torch.float32, torch.float16)
    >>> resolve_param_dtype(torch.float64, None, "YatNMN")
    (torch.float64, None)
    """
    for key, value in (("dtype", dtype), ("param_dtype", param_dtype)):
        if value is not None and not isinstance(value, torch.dtype):
            raise TypeError(f"{layer}: {key} must be a torch.dtype or None, got {value!r}")
    if param_dtype is None:
        return dtype, None
    return param_dtype, dtype


def to_compute(compute: torch.dtype | None, *values):
    """``values`` with every floating tensor cast to ``compute`` (unchanged when ``compute`` is None); numbers and
    ``None`` pass through."""
    if compute is None:
        return values
    return tuple(
        v.to(compute) if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != compute else v
        for v in values
    )
