"""JAX primitives for :mod:`nmn.interchange.stdops` (``jax.numpy`` plus a native ``lax`` conv)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nmn.interchange.stdops.prims_numpy import ArrayPrims


class JaxPrims(ArrayPrims):
    name = "jax"

    def __init__(self, name="jax"):
        super().__init__(jnp)
        self.name = name

    def const(self, x):
        if isinstance(x, jax.core.Tracer):
            return None
        return np.asarray(x)

    def cast(self, x, dtype):
        return jnp.asarray(self.t(x)).astype(dtype)

    def unary(self, name, x):
        x = self.t(x)
        if name == "erf":
            return lax.erf(x)
        if name == "sigmoid":
            return jax.nn.sigmoid(x)
        return super().unary(name, x)

    def conv(self, x, w, strides, dilations, pads, groups):
        rank = w.ndim - 2
        s = "DHW"[-rank:] if rank <= 3 else None
        if s is None:
            raise ValueError("Conv: more than 3 spatial axes are not supported by the JAX loader")
        return lax.conv_general_dilated(
            self.t(x),
            self.t(w),
            tuple(strides),
            [tuple(p) for p in pads],
            rhs_dilation=tuple(dilations),
            dimension_numbers=("NC" + s, "OI" + s, "NC" + s),
            feature_group_count=groups,
        )


PRIMS = JaxPrims()
