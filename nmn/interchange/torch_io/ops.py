"""PyTorch primitives for :mod:`nmn.interchange.stdops` (only spelling differences from numpy and a native conv)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nmn.interchange.stdops.prims_numpy import ArrayPrims

_UNARY = {
    "neg": torch.neg,
    "abs": torch.abs,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "erf": torch.erf,
    "tanh": torch.tanh,
    "floor": torch.floor,
    "ceil": torch.ceil,
    "sign": torch.sign,
    "sin": torch.sin,
    "cos": torch.cos,
    "logical_not": torch.logical_not,
    "sigmoid": torch.sigmoid,
    "round": torch.round,
}
_BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.true_divide,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "pow": torch.pow,
    "equal": torch.eq,
    "not_equal": torch.ne,
    "less": torch.lt,
    "greater": torch.gt,
    "less_equal": torch.le,
    "greater_equal": torch.ge,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
}


_WIDE_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)


def _torch_dtype(dtype):
    if np.dtype(dtype).name == "bfloat16":
        return torch.bfloat16
    return torch.from_numpy(np.zeros(0, dtype)).dtype


class TorchPrims(ArrayPrims):
    name = "torch"

    def __init__(self):
        super().__init__(torch)

    def asarray(self, x):
        x = np.asarray(x)
        if x.dtype.name == "bfloat16":
            return torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
        return torch.from_numpy(np.array(x, copy=True))

    def const(self, x):
        if isinstance(x, torch.Tensor):
            if x.dtype == torch.bfloat16:
                import ml_dtypes

                return x.detach().float().cpu().numpy().astype(ml_dtypes.bfloat16)
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def dtype(self, x):
        if not isinstance(x, torch.Tensor):
            return np.dtype(x.dtype)
        if x.dtype == torch.bfloat16:
            import ml_dtypes

            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(str(x.dtype).replace("torch.", ""))

    def cast(self, x, dtype):
        return self.t(x).to(_torch_dtype(dtype))

    def transpose(self, x, perm):
        return self.t(x).permute(*perm)

    def expand_dims(self, x, axis):
        return self.t(x).unsqueeze(axis)

    def squeeze(self, x, axes):
        x = self.t(x)
        for a in sorted(axes, reverse=True):
            x = x.squeeze(a)
        return x

    def concat(self, xs, axis):
        return torch.cat([self.t(x) for x in xs], axis)

    def take(self, x, idx, axis):
        x, idx = self.t(x), self.t(idx).long()
        y = torch.index_select(x, axis, idx.reshape(-1))
        return y.reshape((*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :]))

    def broadcast_to(self, x, shape):
        return self.t(x).expand(*shape)

    def flip(self, x, axes):
        return torch.flip(self.t(x), tuple(axes))

    def pad(self, x, widths, value):
        x = self.t(x)
        flat = [p for lo_hi in reversed(widths) for p in lo_hi]
        if x.dtype == torch.bool:
            return F.pad(x.to(torch.uint8), flat, value=float(value)).to(torch.bool)
        return F.pad(x, flat, value=float(value) if x.is_floating_point() else int(max(value, -(2**63))))

    def einsum(self, eq, *xs):
        return torch.einsum(eq, *[self.t(x) for x in xs])

    def reduce(self, kind, x, axes, keepdims):
        x = self.t(x)
        if kind in ("sum", "mean"):
            return getattr(torch, kind)(x, dim=tuple(axes), keepdim=keepdims)
        fn = {"max": torch.amax, "min": torch.amin}.get(kind)
        if fn is not None:
            return fn(x, dim=tuple(axes), keepdim=keepdims)
        for a in sorted(axes, reverse=True):  # prod takes one axis at a time
            x = torch.prod(x, dim=a, keepdim=keepdims)
        return x

    def argreduce(self, kind, x, axis, keepdims):
        return (torch.argmax if kind == "max" else torch.argmin)(self.t(x), dim=axis, keepdim=keepdims)

    def unary(self, name, x):
        return _UNARY[name](self.t(x))

    def binary(self, name, a, b):
        a, b = self.t(a), self.t(b)
        if a.dtype in _WIDE_UNSIGNED:  # torch CPU kernels lack uint16/32/64 arithmetic: compute in int64
            y = self.binary(name, a.to(torch.int64), b.to(torch.int64))
            return y if y.dtype == torch.bool else y.to(a.dtype)
        if name == "floordiv":
            return torch.div(a, b, rounding_mode="floor")
        return _BINARY[name](a, b)

    def conv(self, x, w, strides, dilations, pads, groups):
        x, w = self.t(x), self.t(w)
        rank = w.dim() - 2
        if any(lo != hi for lo, hi in pads):
            x = F.pad(x, [p for lo_hi in reversed(pads) for p in lo_hi])
            padding = 0
        else:
            padding = [lo for lo, _ in pads]
        return (F.conv1d, F.conv2d, F.conv3d)[rank - 1](
            x, w, None, stride=strides, padding=padding, dilation=dilations, groups=groups
        )


PRIMS = TorchPrims()
