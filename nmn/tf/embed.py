"""TensorFlow ``YatEmbed``: an embedding table with a Yat ``attend`` for tied output logits."""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf

from nmn._tfkeras.options import fixed_alpha, set_embed_options
from nmn.core import yat
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON
from nmn.tf import functional
from nmn.tf._ops import F, TensorLike, layer_label

__all__ = ["YatEmbed"]


class YatEmbed(tf.Module):
    """Embedding lookup ``E[ids]`` plus ``attend(q)[..., v] = alpha * (q.e_v)^2 / (relu(|q - e_v|^2) + eps)``.

    Args:
        num_embeddings: vocabulary size ``V``. features: embedding width ``F``.
        use_alpha: learnable ``alpha (1,)`` for ``attend``, default True. constant_alpha: True (sqrt 2) or a number.
        epsilon: default 1e-5 (> 0). spherical: unit q and rows in ``attend``, default False.
        weight_normalized: unit-normalise the rows once at initialisation, default False.
        dtype: default ``tf.float32``. seed: default None. name: module name.

    Shape:
        lookup ``ids (...) -> (..., F)``; ``attend``: ``(..., F) -> (..., V)``; table ``embedding (V, F)``
        initialised N(0, 1/F).

    >>> import tensorflow as tf
    >>> embed = YatEmbed(num_embeddings=10, features=4)
    >>> tuple(embed(tf.constant([[1, 2, 3]])).shape), tuple(embed.attend(tf.ones((2, 4))).shape)
    ((1, 3, 4), (2, 10))
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
        dtype: tf.DType | str = tf.float32,
        seed: int | None = None,
        name: str | None = None,
        **refused: Any,
    ):
        refuse_keywords(type(self).__name__, refused)
        super().__init__(name=name)
        set_embed_options(
            self,
            num_embeddings=num_embeddings,
            features=features,
            use_alpha=use_alpha,
            constant_alpha=constant_alpha,
            epsilon=epsilon,
            spherical=spherical,
            weight_normalized=weight_normalized,
        )
        self.dtype = tf.as_dtype(dtype)
        with self.name_scope:
            e = tf.random.normal(
                (num_embeddings, features), stddev=1.0 / math.sqrt(features), dtype=self.dtype, seed=seed
            )
            if self.weight_normalized:
                e = yat.unit(F, e, -1)
            self.embedding = tf.Variable(e, name="embedding")
            self.alpha = tf.Variable(tf.ones((1,), self.dtype), name="alpha") if self.yat.has_alpha else None

    def __call__(self, ids: TensorLike) -> tf.Tensor:
        ids = tf.convert_to_tensor(ids)
        if not ids.dtype.is_integer:
            raise ValueError(
                f"{layer_label(self)}: expected integer token ids, got dtype {ids.dtype.name} "
                f"(shape {tuple(ids.shape)})"
            )
        return tf.gather(self.embedding, ids, axis=0)

    def attend(self, query: TensorLike) -> tf.Tensor:
        """Yat logits of ``query (..., F)`` against every row: ``(..., V)`` (no bias, no sqrt(d))."""
        query = tf.convert_to_tensor(query)
        if query.shape[-1] != self.features:
            raise ValueError(
                f"{layer_label(self)}: attend expects (..., {self.features}) matching embedding "
                f"{(self.num_embeddings, self.features)}, got shape {tuple(query.shape)}"
            )
        alpha = self.alpha if self.alpha is not None else fixed_alpha(self)
        return functional.yat_dense(
            query, tf.transpose(self.embedding), None, alpha, self.epsilon, spherical=self.spherical
        )
