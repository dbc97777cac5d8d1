"""``YatEmbed`` (alias ``Embed``): an embedding table whose ``attend`` scores queries with the Yat product."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.typing import Initializer
from jax.typing import ArrayLike, DTypeLike

from nmn._jax.functional import yat_embed_attend
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec
from nmn.nnx._ops import check_initializer

default_embedding_init = nnx.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)


class YatEmbed(nnx.Module):
    """Embedding lookup plus Yat ``attend``: ``logit_v = alpha (q.e_v)^2 / (relu(|q|^2 + |e_v|^2 - 2 q.e_v) + eps)``.

    Args:
        num_embeddings: vocabulary size V. features: embedding size F.
        use_alpha: learnable ``alpha (1,)`` for ``attend`` (default True); constant_alpha: ``True`` -> sqrt(2),
            or a number (default None).
        epsilon: > 0 (default 1e-5). spherical: unit query and rows in ``attend`` (default False).
        weight_normalized: rows scaled to unit length once, at initialisation (default False; as in nmn 0.3).
        dtype: lookup/result dtype (default None); param_dtype (default float32);
        embedding_init: default N(0, 1/F); rngs: ``nnx.Rngs``.
        alpha_init: nmn 0.3's initializer of ``alpha (1,)`` (default None: ones).
        promote_dtype: Flax ``nnx.Embed``'s dtype-promotion hook (default None: nmn's rule): the lookup calls
            ``promote_dtype((embedding,), dtype=dtype, inexact=False)``, ``attend`` calls
            ``promote_dtype((query, embedding), dtype=dtype)``, as Flax's ``Embed`` does.

    Shape:
        ``__call__``: integer ids ``(...)`` -> ``(..., F)``; ``attend``: ``(..., F)`` -> ``(..., V)``;
        ``embedding (V, F)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> embed = YatEmbed(num_embeddings=10, features=4, constant_alpha=True, rngs=nnx.Rngs(0))
        >>> embed(jnp.array([[1, 2, 3]])).shape
        (1, 3, 4)
        >>> embed.attend(jnp.ones((2, 4))).shape
        (2, 10)
        >>> YatEmbed(10, 4, alpha_init=nnx.initializers.constant(3.0), rngs=nnx.Rngs(0)).alpha[...].tolist()
        [3.0]
    """

    def __init__(
        self,
        num_embeddings: int,
        features: int,
        *,
        use_alpha: bool = True,
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        spherical: bool = False,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        embedding_init: Initializer = default_embedding_init,
        weight_normalized: bool = False,
        alpha_init: Initializer | None = None,
        promote_dtype: Any = None,
        rngs: nnx.Rngs,
        **refused: Any,
    ):
        name = type(self).__name__
        refuse_keywords(name, refused)
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings", name)
        self.features = check_positive_int(features, "features", name)
        check_initializer(alpha_init, "alpha_init", name)
        self.promote_dtype = check_initializer(promote_dtype, "promote_dtype", name)
        self.opts = YatSpec.build_embed(name, use_alpha=use_alpha, constant_alpha=constant_alpha, epsilon=epsilon)
        self.spherical = bool(spherical)
        self.dtype, self.param_dtype = dtype, param_dtype
        self.weight_normalized = bool(weight_normalized)
        table = embedding_init(rngs.params(), (num_embeddings, features), param_dtype)
        if self.weight_normalized:
            table = table / jnp.linalg.norm(table, axis=-1, keepdims=True)
        self.embedding = nnx.Param(table)
        if not self.opts.has_alpha:
            self.alpha = nnx.data(None)
        elif alpha_init is None:
            self.alpha = nnx.Param(jnp.ones((1,), param_dtype))
        else:
            self.alpha = nnx.Param(jnp.asarray(alpha_init(rngs.params(), (1,), param_dtype), param_dtype))

    def __call__(self, inputs: ArrayLike) -> jax.Array:
        """Look up integer ids ``inputs (...)`` -> ``(..., features)``."""
        if not jnp.issubdtype(jnp.asarray(inputs).dtype, jnp.integer):
            raise ValueError(f"{type(self).__name__}: ids must be integers, got dtype {jnp.asarray(inputs).dtype}")
        table = self.embedding[...]
        if self.promote_dtype is not None:
            (table,) = self.promote_dtype((table,), dtype=self.dtype, inexact=False)
        out = jnp.take(table, inputs, axis=0)
        return out if self.dtype is None else out.astype(self.dtype)

    def attend(self, query: jax.Array) -> jax.Array:
        """Yat logits of ``query (..., features)`` against every row -> ``(..., num_embeddings)``."""
        shape = tuple(getattr(query, "shape", ()))
        if not shape or shape[-1] != self.features:
            raise ValueError(
                f"{type(self).__name__}: attend expects a query (..., {self.features}) for embedding "
                f"{tuple(self.embedding.shape)}, got shape {shape}"
            )
        _, alpha, eps = self.opts.terms(alpha=None if self.alpha is None else self.alpha[...])
        table, dtype = self.embedding[...], self.dtype
        if self.promote_dtype is not None:  # the result takes the promoted dtype (alpha does not promote it)
            query, table = self.promote_dtype((query, table), dtype=self.dtype)
            dtype = jnp.result_type(query, table) if dtype is None else dtype
        return yat_embed_attend(query, table, alpha, eps, spherical=self.spherical, dtype=dtype)


Embed = YatEmbed
