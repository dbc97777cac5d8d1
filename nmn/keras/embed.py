"""Keras ``YatEmbed``: an embedding table with a Yat ``attend`` for tied output logits."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from nmn._tfkeras.options import fixed_alpha, set_embed_options
from nmn.core import yat
from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON
from nmn.keras import functional
from nmn.keras._ops import F, InitializerLike, Shape, Tensor, layer_label

__all__ = ["YatEmbed"]


@keras.saving.register_keras_serializable(package="nmn")
class YatEmbed(keras.layers.Layer):
    """Embedding lookup ``E[ids]`` plus ``attend(q)[..., v] = alpha * (q.e_v)^2 / (relu(|q - e_v|^2) + eps)``.

    Args:
        num_embeddings: vocabulary size ``V``. features: embedding width ``F``.
        use_alpha: learnable ``alpha (1,)`` for ``attend``, default True. constant_alpha: True (sqrt 2) or a number.
        epsilon: default 1e-5 (> 0). spherical: unit q and rows in ``attend``, default False.
        weight_normalized: unit-normalise the rows once at initialisation, default False.
        embeddings_initializer: default normal with std ``1/sqrt(F)``; ``embedding_initializer`` is nmn 0.3's name
            of it (give one).

    Shape:
        lookup ``ids (...) -> (..., F)``; ``attend``: ``(..., F) -> (..., V)``; table ``embedding (V, F)``.

    >>> import keras
    >>> embed = YatEmbed(num_embeddings=10, features=4)
    >>> tuple(embed(keras.ops.array([[1, 2, 3]])).shape), tuple(embed.attend(keras.ops.ones((2, 4))).shape)
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
        embeddings_initializer: InitializerLike | None = None,
        embedding_initializer: InitializerLike | None = None,
        **kwargs: Any,
    ):
        refuse_keywords(type(self).__name__, kwargs, allow_others=True)
        super().__init__(**kwargs)
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
        if embedding_initializer is not None:  # nmn 0.3's name
            if embeddings_initializer is not None:
                raise ValueError(
                    f"{type(self).__name__}: give embeddings_initializer or nmn 0.3's embedding_initializer (the same "
                    f"option), not both; got {embeddings_initializer!r} and {embedding_initializer!r}"
                )
            embeddings_initializer = embedding_initializer
        if embeddings_initializer is None:
            embeddings_initializer = keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(features))
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.alpha = None
        self.embedding = None

    def build(self, input_shape: Shape | None = None) -> None:
        self.embedding = self.add_weight(
            name="embedding", shape=(self.num_embeddings, self.features), initializer=self.embeddings_initializer
        )
        if self.weight_normalized:
            e = self.embedding
            self.embedding.assign(yat.unit(F, e, -1))
        if self.yat.has_alpha:
            self.alpha = self.add_weight(name="alpha", shape=(1,), initializer="ones")

    def call(self, inputs: Tensor, method: str | None = None) -> Tensor:
        if method == "attend":
            return self._attend(inputs)
        if method is not None:
            raise ValueError(f"{layer_label(self)}: method must be None (lookup) or 'attend', got {method!r}")
        if not str(keras.backend.standardize_dtype(inputs.dtype)).startswith(("int", "uint")):
            raise ValueError(
                f"{layer_label(self)}: expected integer token ids, got dtype {inputs.dtype} "
                f"(shape {tuple(inputs.shape)})"
            )
        return ops.take(self.embedding, inputs, axis=0)

    def attend(self, query: Tensor) -> Tensor:
        """Yat logits of ``query (..., F)`` against every row: ``(..., V)`` (no bias, no sqrt(d)).

        A layer call (``self(query, method="attend")``), so in a functional model it is a node of this layer and
        the ``.keras`` file keeps it.
        """
        return self(query, method="attend")

    def _attend(self, query):
        if query.shape[-1] != self.features:
            raise ValueError(
                f"{layer_label(self)}: attend expects (..., {self.features}) matching embedding "
                f"{(self.num_embeddings, self.features)}, got shape {tuple(query.shape)}"
            )
        alpha = self.alpha if self.alpha is not None else fixed_alpha(self)
        return functional.yat_dense(
            query, ops.transpose(self.embedding), None, alpha, self.epsilon, spherical=self.spherical
        )

    def compute_output_spec(self, inputs: keras.KerasTensor, method: str | None = None) -> keras.KerasTensor:
        if method == "attend":
            return keras.KerasTensor((*inputs.shape[:-1], self.num_embeddings), dtype=self.compute_dtype)
        return keras.KerasTensor((*inputs.shape, self.features), dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape, self.features)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_embeddings": self.num_embeddings,
            "features": self.features,
            "use_alpha": self.use_alpha,
            "constant_alpha": self.constant_alpha,
            "epsilon": self.epsilon,
            "spherical": self.spherical,
            "weight_normalized": self.weight_normalized,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
