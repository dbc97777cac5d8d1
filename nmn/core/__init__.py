"""Framework-free heart of nmn: defaults, option validation, op schemas, layouts and the Yat math.

Imports the standard library only (docs/design.md §A2).
"""

from nmn.core.options import (
    DEFAULT_EPSILON,
    NORM_GUARD,
    SQRT2,
    AlphaSpec,
    BiasSpec,
    check_epsilon,
    inverse_softplus,
    resolve_alpha,
    resolve_bias,
)
from nmn.core.schemas import FUNCTIONS, FunctionSchema
from nmn.core.spec import AttentionSpec, RopeSpec, YatSpec

__all__ = [
    "DEFAULT_EPSILON",
    "NORM_GUARD",
    "SQRT2",
    "AlphaSpec",
    "AttentionSpec",
    "BiasSpec",
    "FUNCTIONS",
    "FunctionSchema",
    "RopeSpec",
    "YatSpec",
    "check_epsilon",
    "inverse_softplus",
    "resolve_alpha",
    "resolve_bias",
]
