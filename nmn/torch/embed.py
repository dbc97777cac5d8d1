"""``YatEmbed``: an embedding table whose ``attend`` scores queries against every row with the Yat product."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as _nnf

from nmn.core.names import refuse_keywords
from nmn.core.options import DEFAULT_EPSILON, check_positive_int
from nmn.core.spec import YatSpec
from nmn.torch import functional


class YatEmbed(nn.Module):
    """Embedding lookup plus Yat ``attend`` (weight-tied output logits).

    ``attend(q)[..., v] = alpha (q.e_v)^2 / (relu(|q|^2 + |e_v|^2 - 2 q.e_v) + epsilon)`` (no bias, no sqrt(d)).

    Args:
        num_embeddings: vocabulary size ``V``.
        embedding_dim: feature size ``F`` (``features=`` is an alias).
        use_alpha: learnable scale ``alpha (1,)`` for ``attend``, init 1 (default True).
        constant_alpha: ``True`` (sqrt 2) or a number, no parameter (default None).
        epsilon: > 0 (default 1e-5).
        spherical: ``attend`` on unit vectors, distance ``2 - 2 cos`` (default False).
        weight_normalized: rows scaled to unit length once, at initialisation (default False; as in nmn 0.3).
        device, dtype: factory arguments.

    Shape: ``forward(ids (*)) -> (*, F)`` (integer ids); ``attend(q (..., F)) -> (..., V)``.

    Example:
        >>> embed = YatEmbed(num_embeddings=10, embedding_dim=4)
        >>> embed(torch.tensor([[1, 2, 3]])).shape
        torch.Size([1, 3, 4])
        >>> embed.attend(torch.randn(2, 4)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int | None = None,
        *,
        features: int | None = None,
        use_alpha: bool = True,
        constant_alpha: bool | float | None = None,
        epsilon: float = DEFAULT_EPSILON,
        spherical: bool = False,
        weight_normalized: bool = False,
        device: torch.device | str | int | None = None,
        dtype: torch.dtype | None = None,
        **refused: Any,
    ):
        super().__init__()
        name = type(self).__name__
        refuse_keywords(name, refused)
        if embedding_dim is None:
            embedding_dim = features
        elif features is not None and features != embedding_dim:
            raise ValueError(f"{name}: embedding_dim={embedding_dim} and features={features} disagree")
        self.num_embeddings = check_positive_int(num_embeddings, "num_embeddings", name)
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim", name)
        self.yat = YatSpec.build_embed(name, use_alpha=use_alpha, constant_alpha=constant_alpha, epsilon=epsilon)
        self.epsilon = self.yat.epsilon
        self.spherical = bool(spherical)
        self.weight_normalized = bool(weight_normalized)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim, **factory))
        self.alpha = nn.Parameter(torch.empty(1, **factory)) if self.yat.has_alpha else None
        self.reset_parameters()

    @property
    def features(self) -> int:
        return self.embedding_dim

    @property
    def use_alpha(self) -> bool:
        return self.yat.use_alpha

    @property
    def constant_alpha(self) -> float | None:
        return self.yat.constant_alpha

    def reset_parameters(self) -> None:
        """Rows ~ N(0, 1 / embedding_dim) (unit length when ``weight_normalized``), alpha 1."""
        with torch.no_grad():
            nn.init.normal_(self.weight, 0.0, 1.0 / math.sqrt(self.embedding_dim))
            if self.weight_normalized:
                self.weight.div_(self.weight.norm(dim=-1, keepdim=True))
            if self.alpha is not None:
                self.alpha.fill_(1.0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
            raise ValueError(
                f"{type(self).__name__}: expected integer token ids, got dtype {ids.dtype} "
                f"with shape {tuple(ids.shape)}"
            )
        return _nnf.embedding(ids, self.weight)

    def attend(self, query: torch.Tensor) -> torch.Tensor:
        """Yat logits of ``query (..., F)`` against every embedding row: ``(..., V)``."""
        if query.dim() < 1 or query.shape[-1] != self.embedding_dim:
            raise ValueError(
                f"{type(self).__name__}.attend: expected query of shape (..., {self.embedding_dim}) "
                f"(embedding_dim={self.embedding_dim}), got shape {tuple(query.shape)}"
            )
        _, alpha, _ = self.yat.terms(alpha=self.alpha)
        return functional.yat_embed_attend(query, self.weight, alpha, self.epsilon, spherical=self.spherical)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}, {self.yat.repr()}"
        return s + (", spherical=True" if self.spherical else "")
