"""Canonical (ONNX) <-> Flax parameter layouts and names, for ``nmn.nnx`` and ``nmn.linen`` alike.

Both Flax APIs store the same arrays under the same paths (NNX attributes, Linen param collections), so one
table per kind serves both: ``param_table(kind, config)`` lists ``(canonical name, host path, to_canonical,
from_canonical)``. The conversions are permutations (transposes, spatial flips), so they map gradients too.

>>> import numpy as np
>>> [(n, p) for n, p, _, _ in param_table("YatNMN", dict(use_bias=True, constant_bias=None, use_alpha=False,
...                                       constant_alpha=None, learnable_epsilon=False))]
[('weight', ('kernel',)), ('bias', ('bias',))]
"""

from __future__ import annotations

from nmn.core.options import resolve_alpha, resolve_bias


def _same(a):
    return a


def _t(a):
    return a.T


def _conv_to(rank):
    return lambda k: k.transpose(rank + 1, rank, *range(rank))                     # (*k, C/G, M) -> (M, C/G, *k)


def _conv_from(rank):
    return lambda w: w.transpose(*range(2, rank + 2), 1, 0)


def _flip(a, axes):
    index = tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(a.ndim))
    return a[index]


def _convt_to(rank):
    return lambda k: _flip(k, range(rank)).transpose(rank, rank + 1, *range(rank))  # (*k, C, M/G) -> (C, M/G, *k)


def _convt_from(rank):
    return lambda w: _flip(w.transpose(*range(2, rank + 2), 0, 1), range(rank))


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
        return _tail(config, [("weight", ("kernel",), _t, _t)])
    if kind == "YatConv":
        r = config["rank"]
        return _tail(config, [("weight", ("kernel",), _conv_to(r), _conv_from(r))])
    if kind == "YatConvTranspose":
        r = config["rank"]
        return _tail(config, [("weight", ("kernel",), _convt_to(r), _convt_from(r))])
    if kind in ("MultiHeadYatAttention", "RotaryYatAttention"):
        rows = []
        names = [("q", "query"), ("k", "key"), ("v", "value")] + ([("out", "out")] if config["use_out_proj"] else [])
        for short, host in names:
            rows.append((f"{short}_weight", (host, "kernel"), _t, _t))
            if config["use_bias"]:
                rows.append((f"{short}_bias", (host, "bias"), _same, _same))
        if resolve_alpha(config["use_alpha"], config["constant_alpha"]).learnable:
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


def yat_config(opts) -> dict:
    """The Yat keys of a spec config from resolved :class:`~nmn._jax.functional.YatOptions`."""
    alpha = opts.alpha
    if alpha.learnable:
        use_alpha, constant = True, None
    elif alpha.value == 1.0:
        use_alpha, constant = False, None
    else:
        use_alpha, constant = True, alpha.value
    constant_bias = opts.bias.value if opts.bias.mode == "constant" else None
    return dict(use_bias=opts.bias.mode != "none", constant_bias=constant_bias,
                use_alpha=use_alpha, constant_alpha=constant, epsilon=opts.epsilon,
                learnable_epsilon=opts.learnable_epsilon)


def yat_kwargs(config: dict, *, bias=True, learnable_epsilon=True) -> dict:
    """Constructor keyword arguments for the Yat options stored in a spec config."""
    out = dict(use_alpha=config.get("use_alpha", True), constant_alpha=config.get("constant_alpha"),
               epsilon=config.get("epsilon", 1e-5))
    if bias:
        out.update(use_bias=config.get("use_bias", True), constant_bias=config.get("constant_bias"))
    if learnable_epsilon:
        out["learnable_epsilon"] = config.get("learnable_epsilon", False)
    return out
