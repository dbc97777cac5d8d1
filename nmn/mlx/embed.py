"""``YatEmbed``: an embedding table whose ``attend`` gives Yat logits (weight tying for output layers)."""

from __future__ import annotations

import math
from typing import Any

from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec
from nmn.mlx._ops import PlainConfigMixin, check_last_dim, mx, nn, to_f32
from nmn.mlx.functional import yat_embed_attend

__all__ = ["YatEmbed"]


class YatEmbed(PlainConfigMixin, nn.Module):
    """Embedding lookup plus Yat ``attend``: ``logit_v = alpha * (q.e_v)^2 / (relu(|q|^2 + |e_v|^2 - 2 q.e_v) + eps)``.

    Parameters: ``embedding (num_embeddings, features)`` (init ``N(0, 1 / features)``) and ``alpha (1,)``
    (absent with ``use_alpha=False`` or ``constant_alpha``). ``attend`` has no bias and no ``sqrt(d)``.

    Args:
        num_embeddings: vocabulary size ``V``.
        features: embedding size ``F``.
        use_alpha / constant_alpha: learnable logit scale init 1 (default) / fixed (True = sqrt 2).
        epsilon: > 0 (default 1e-5).
        spherical: ``attend`` compares unit vectors, distance ``2 - 2 cos`` (default False).
        weight_normalized: rows scaled to unit length once, at initialisation (default False; as in nmn 0.3).
        dtype: parameter dtype (default ``mx.float32``).

    Shape: ``ids (...)`` int -> ``(..., F)``; ``attend``: ``(..., F) -> (..., V)``.

    >>> import mlx.core as mx
    >>> emb = YatEmbed(10, 4)
    >>> h = emb(mx.array([[1, 2, 3]]))
    >>> h.shape, emb.attend(h).shape
    ((1, 3, 4), (1, 3, 10))
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
        weight_normalized: bool = False,
        dtype: mx.Dtype = mx.float32,
        **refused: Any,
    ):
        super().__init__()
        name = type(self).__name__
        refuse_keywords(name, refused)
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings", name)
        self.features = check_positive_int(features, "features", name)
        self.yat = YatSpec.build_embed(name, use_alpha=use_alpha, constant_alpha=constant_alpha, epsilon=epsilon)
        self.epsilon = self.yat.epsilon
        self.spherical = bool(spherical)
        self.weight_normalized = bool(weight_normalized)
        self.embedding = mx.random.normal((num_embeddings, features), dtype=dtype) * math.sqrt(1.0 / features)
        if self.weight_normalized:
            self.embedding = self.embedding / mx.linalg.norm(self.embedding, axis=-1, keepdims=True)
        if self.yat.has_alpha:
            self.alpha = mx.ones((1,), dtype=dtype)

    def __call__(self, ids: mx.array) -> mx.array:
        if not mx.issubdtype(ids.dtype, mx.integer):
            raise ValueError(
                f"{type(self).__name__}: ids must be integers, got dtype {ids.dtype} with shape {tuple(ids.shape)}"
            )
        return self["embedding"][ids]

    def attend(self, query: mx.array) -> mx.array:
        """Yat logits of ``query (..., features)`` against every row: ``(..., num_embeddings)``."""
        check_last_dim(type(self).__name__, query, self.features)
        _, alpha, _ = self.yat.terms(alpha=to_f32(self["alpha"]) if self.yat.has_alpha else None)
        return yat_embed_attend(query, self["embedding"], alpha, self.epsilon, spherical=self.spherical)

    def as_linear(self, query: mx.array) -> mx.array:
        """Alias of :meth:`attend` (the ``mlx.nn.Embedding`` name for tied output logits)."""
        return self.attend(query)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as plain JSON (the neutral spec's config)."""
        return {
            "num_embeddings": self.num_embeddings,
            "features": self.features,
            **self.yat.config(),
            "spherical": self.spherical,
            "weight_normalized": self.weight_normalized,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> YatEmbed:
        """A new layer from :meth:`get_config`'s dict (fresh parameters)."""
        return cls(**config)

    def _extra_repr(self) -> str:
        extra = [f"{self.num_embeddings}, {self.features}", f"epsilon={self.epsilon}"]
        if self.spherical:
            extra.append("spherical=True")
        return ", ".join(extra)
