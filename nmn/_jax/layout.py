"""Canonical (ONNX) <-> Flax parameter layouts and names, for ``nmn.nnx`` and ``nmn.linen`` alike.

Both Flax APIs store the same arrays under the same paths (NNX attributes, Linen param collections), so one
table per kind serves both: ``param_table(kind, config)`` lists ``(canonical name, host path, to_canonical,
from_canonical)``. The kernel conversions are :mod:`nmn.core.layouts`' permutations (transposes, spatial flips),
so they map gradients too.

>>> import numpy as np
>>> [(n, p) for n, p, _, _ in param_table("YatNMN", dict(use_bias=True, constant_bias=None, use_alpha=False,
...                                       constant_alpha=None, learnable_epsilon=False))]
[('weight', ('kernel',)), ('bias', ('bias',))]
"""

from __future__ import annotations

from nmn.core import layouts
from nmn.core.options import DEFAULT_EPSILON, NORM_GUARD, resolve_alpha, resolve_bias
from nmn.core.spec import alpha_cancels


def unit_transpose_filters(kernel, groups: int):
    """A Flax transposed-conv ``kernel (*k, C, M/G)`` with every filter -- its group's ``kernel[..., c, m']`` over
    the group's in-channels ``c`` and every tap -- divided by its norm + 1e-8 (``weight_normalized``).

    >>> import jax.numpy as jnp
    >>> w = unit_transpose_filters(jnp.full((3, 2, 1), 2.0), 1)
    >>> round(float((w * w).sum()), 6)
    1.0
    """
    import jax.numpy as jnp

    *ks, c, mg = kernel.shape
    blocks = kernel.reshape(*ks, groups, c // groups, mg)
    taps = tuple(range(len(ks)))
    norms = jnp.sqrt(jnp.sum(blocks * blocks, axis=(*taps, len(ks) + 1), keepdims=True))
    return (blocks / (norms + NORM_GUARD)).reshape(kernel.shape)


def _same(a):
    return a


def _host(kind):
    """``(to_canonical, from_canonical)`` of a Flax kernel, by :mod:`nmn.core.layouts` (nnx and linen share it)."""
    return (lambda k: layouts.to_canonical("nnx", kind, k)), (lambda w: layouts.to_host("nnx", kind, w))


_DENSE = _host("dense")


def _tail(config, rows):
    bias = resolve_bias(config.get("use_bias", False), config.get("constant_bias"))
    if bias.mode == "learnable":
        rows.append(("bias", ("bias",), _same, _same))
    if resolve_alpha(config.get("use_alpha", True), config.get("constant_alpha")).learnable:
        rows.append(("alpha", ("alpha",), _same, _same))
    if config.get("learnable_epsilon"):
        rows.append(("epsilon_param", ("epsilon_param",), _same, _same))
    return rows


def param_table(kind: str, config: dict):
    """``[(canonical_name, host_path, to_canonical, from_canonical), ...]`` of a layer kind and config."""
    if kind == "YatNMN":
        return _tail(config, [("weight", ("kernel",), *_DENSE)])
    if kind == "YatConv":
        return _tail(config, [("weight", ("kernel",), *_host("conv"))])
    if kind == "YatConvTranspose":
        return _tail(config, [("weight", ("kernel",), *_host("conv_transpose"))])
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        rows = []
        names = [("q", "query"), ("k", "key"), ("v", "value")] + ([("out", "out")] if config["use_out_proj"] else [])
        for short, host in names:
            rows.append((f"{short}_weight", (host, "kernel"), *_DENSE))
            if config["use_bias"]:
                rows.append((f"{short}_bias", (host, "bias"), _same, _same))
        cancels = alpha_cancels(config.get("normalization", "softmax"), config.get("use_performer", False))
        if resolve_alpha(config["use_alpha"], config["constant_alpha"]).learnable and not cancels:
            rows.append(("alpha", ("alpha",), _same, _same))
        if config.get("use_performer"):
            rows.append(("proj", ("proj",), _same, _same))
        return rows
    if kind == "YatEmbed":
        rows = [("embedding", ("embedding",), _same, _same)]
        if resolve_alpha(config["use_alpha"], config["constant_alpha"]).learnable:
            rows.append(("alpha", ("alpha",), _same, _same))
        return rows
    raise ValueError(f"unknown nmn layer kind {kind!r}")


def yat_kwargs(config: dict, *, bias=True, learnable_epsilon=True) -> dict:
    """Constructor keyword arguments for the Yat options stored in a spec config."""
    out = dict(
        use_alpha=config.get("use_alpha", True),
        constant_alpha=config.get("constant_alpha"),
        epsilon=config.get("epsilon", DEFAULT_EPSILON),
    )
    if bias:
        out.update(use_bias=config.get("use_bias", True), constant_bias=config.get("constant_bias"))
    if learnable_epsilon:
        out["learnable_epsilon"] = config.get("learnable_epsilon", False)
    return out


def attention_config(opts, embed_dim: int, num_heads: int) -> dict:
    """The neutral attention config of a resolved :class:`~nmn.core.spec.AttentionSpec` (nnx and linen)."""
    config = dict(embed_dim=embed_dim, num_heads=num_heads, **opts.config())
    config.pop("dropout")
    return config


def attention_kwargs(config: dict) -> dict:
    """Constructor keyword arguments of the attention options stored in a spec config (nnx and linen)."""
    keys = ("use_bias", "use_alpha", "constant_alpha", "epsilon", "spherical", "normalization", "power")
    return {k: config[k] for k in (*keys, "use_out_proj", "causal")}


def embed_config(opts, num_embeddings: int, features: int, spherical: bool) -> dict:
    """The neutral ``YatEmbed`` config from its :class:`~nmn.core.spec.YatSpec` (nnx and linen)."""
    return dict(num_embeddings=num_embeddings, features=features, **opts.config(), spherical=bool(spherical))
