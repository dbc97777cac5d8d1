"""Linen ``YatEmbed``: an embedding table whose ``attend`` scores queries with the Yat product."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import ArrayLike

from nmn._jax.functional import yat_embed_attend
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec
from nmn.linen._ops import check_initializer

default_embedding_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)


class YatEmbed(nn.Module):
    """Embedding lookup plus Yat ``attend``: ``logit_v = alpha (q.e_v)^2 / (relu(|q|^2 + |e_v|^2 - 2 q.e_v) + eps)``.

    Attributes:
        num_embeddings: vocabulary size V. features: embedding size F.
        use_alpha (default True), constant_alpha (``True`` -> sqrt(2), default None), epsilon (default 1e-5),
        spherical (default False), dtype (default None), param_dtype (default float32),
        embedding_init (default N(0, 1/F)), weight_normalized (rows scaled to unit length once, at
        initialisation; default False, as in nmn 0.3), alpha_init (nmn 0.3's Flax initializer of ``alpha (1,)``;
        default None: ones).

    Shape:
        ``__call__``: integer ids ``(...)`` -> ``(..., F)``; ``attend``: ``(..., F)`` -> ``(..., V)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> embed = YatEmbed(num_embeddings=10, features=4)
        >>> variables = embed.init(jax.random.key(0), jnp.array([1, 2]))
        >>> embed.apply(variables, jnp.ones((3, 4)), method="attend").shape
        (3, 10)
        >>> two = YatEmbed(10, 4, alpha_init=jax.nn.initializers.constant(2.0))
        >>> two.init(jax.random.key(0), jnp.array([1]))["params"]["alpha"].tolist()
        [2.0]
    """

    num_embeddings: int
    features: int
    use_alpha: bool = True
    constant_alpha: Any = None
    epsilon: float = DEFAULT_EPSILON
    spherical: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    embedding_init: Callable = default_embedding_init
    weight_normalized: bool = False
    alpha_init: Callable | None = None

    def __post_init__(self):
        check_initializer(self.alpha_init, "alpha_init", type(self).__name__)
        self.yat_options()
        super().__post_init__()

    def yat_options(self) -> YatSpec:
        """Validate the options; return the resolved alpha/epsilon options."""
        name = type(self).__name__
        check_positive_int(self.num_embeddings, "num_embeddings", name)
        check_positive_int(self.features, "features", name)
        return YatSpec.build_embed(
            name, use_alpha=self.use_alpha, constant_alpha=self.constant_alpha, epsilon=self.epsilon
        )

    def setup(self) -> None:
        init = self.embedding_init
        if self.weight_normalized:

            def init(key, shape, dtype, _base=self.embedding_init):
                table = _base(key, shape, dtype)
                return table / jnp.linalg.norm(table, axis=-1, keepdims=True)

        self.embedding = self.param("embedding", init, (self.num_embeddings, self.features), self.param_dtype)
        if self.yat_options().has_alpha:
            self.alpha = self.param("alpha", self.alpha_init or nn.initializers.ones, (1,), self.param_dtype)
        else:
            self.alpha = None

    def __call__(self, inputs: ArrayLike) -> jax.Array:
        """Look up integer ids ``inputs (...)`` -> ``(..., features)``; also creates ``alpha`` at init."""
        if not jnp.issubdtype(jnp.asarray(inputs).dtype, jnp.integer):
            raise ValueError(f"{type(self).__name__}: ids must be integers, got dtype {jnp.asarray(inputs).dtype}")
        out = jnp.take(self.embedding, inputs, axis=0)
        return out if self.dtype is None else out.astype(self.dtype)

    def attend(self, query: jax.Array) -> jax.Array:
        """Yat logits of ``query (..., features)`` against every row -> ``(..., num_embeddings)``."""
        shape = tuple(getattr(query, "shape", ()))
        if not shape or shape[-1] != self.features:
            raise ValueError(
                f"{type(self).__name__}: attend expects a query (..., {self.features}) for embedding "
                f"({self.num_embeddings}, {self.features}), got shape {shape}"
            )
        _, alpha, eps = self.yat_options().terms(alpha=self.alpha)
        return yat_embed_attend(query, self.embedding, alpha, eps, spherical=self.spherical, dtype=self.dtype)
