"""Load nmn 0.3.x checkpoints into nmn 1.x layers: one documented converter per framework.

nmn 1.x keeps 0.3's parameter names and layouts where it can; these are the ones that changed (found by building
every layer kind in both packages and comparing names, shapes and outputs; ``scripts/make_v03_fixtures.py``):

============  =====================================  ==============================================================
framework     layer                                  0.3 -> 1.x
============  =====================================  ==============================================================
torch         ``YatEmbed``                           ``embedding`` -> ``weight`` (as ``nn.Embedding``)
nnx           ``MultiHeadAttention``                 ``out/kernel`` ``(H, D, E)`` -> ``(H*D, E)``
nnx           ``RotaryYatAttention``                 ``q_proj/k_proj/v_proj/o_proj`` -> ``query/key/value/out``;
                                                     the ``freqs_cos/freqs_sin`` caches are dropped (recomputed)
linen         ``YatNMN``                             ``kernel`` ``(out, in)`` -> ``(in, out)``
linen         ``YatEmbed``                           ``alpha`` created by ``attend`` only: filled with 1 (its
                                                     0.3 initial value) when the checkpoint lacks it
keras         ``MultiHeadYatAttention``              variable order ``q,k,v kernels, q,k,v biases, out, alpha``
                                                     -> ``q kernel, q bias, k kernel, ...``
tf            ``YatNMN``                             ``kernel`` ``(out, in)`` -> ``(in, out)``
tf            ``MultiHeadYatAttention``              unnamed ``tf.Variable`` s: matched by attribute path
mlx           ``YatNMN``                             lazily built 0.3 kernel ``(out, in)``: unchanged
mlx           ``MultiHeadYatAttention``,             ``q_kernel (in, E)``, ``q_bias`` ... -> ``query_proj.weight
              ``RotaryYatAttention``                 (E, in)``, ``query_proj.bias`` ...; ``freqs_*`` dropped
============  =====================================  ==============================================================

Every converter checks the whole checkpoint against the new model before anything is loaded: a 0.3 entry that
matches no parameter of the model, a parameter of the model the checkpoint lacks, or a shape that differs raises
``ValueError`` naming the converter, the entries and, where a 0.3 default changed, the keyword to pass. The new
model must be built with the options the 0.3 model had (see ``docs/migrating-from-0.3.md`` for the defaults that
changed: nnx ``RotaryYatAttention(use_bias=False)``, Linen conv ``padding="VALID"``, TF transposed conv
``padding="same"``).

>>> sorted(n for n in dir() if n.startswith("convert_"))
['convert_linen_variables', 'convert_mlx_weights', 'convert_nnx_state', 'convert_torch_state_dict']

The keras and tf rows are findings only: their converters (``convert_keras_weights``, ``convert_tf_checkpoint``)
are not written yet; the 0.3 fixtures for them are in ``tests/data/v03/``.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "convert_linen_variables",
    "convert_mlx_weights",
    "convert_nnx_state",
    "convert_torch_state_dict",
]


def _show(keys, limit=12):
    keys = sorted(keys, key=str)
    text = ", ".join(map(str, keys[:limit]))
    return text + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _check(converter, model, unknown, missing, mismatched, hint=""):
    """Raise one ``ValueError`` listing every problem the conversion found (nothing is loaded then)."""
    problems = []
    if unknown:
        problems.append(
            f"{len(unknown)} 0.3 entr{'y' if len(unknown) == 1 else 'ies'} match no parameter: [{_show(unknown)}]"
        )
    if missing:
        problems.append(f"{len(missing)} parameter(s) of the model are not in the checkpoint: [{_show(missing)}]")
    if mismatched:
        problems.append("shapes differ (0.3 -> expected): " + _show(f"{k} {a} -> {b}" for k, a, b in mismatched))
    if problems:
        name = type(model).__name__
        raise ValueError(f"{converter}: the 0.3 checkpoint does not fit this {name}: " + "; ".join(problems) + hint)


def _flatten(tree, prefix=()):
    """``{path tuple: leaf}`` of a nested mapping; string keys with ``/`` (a flat checkpoint) are split."""
    out = {}
    for key, value in tree.items():
        parts = tuple(key) if isinstance(key, tuple) else tuple(str(key).split("/")) if isinstance(key, str) else (key,)
        if isinstance(value, Mapping):
            out.update(_flatten(value, prefix + parts))
        else:
            out[prefix + parts] = value
    return out


def _bias_hint(missing):
    if any(str(k[-1] if isinstance(k, tuple) else k).endswith("bias") for k in missing):
        return (
            " (a bias the 0.3 layer did not have: build the layer with use_bias=False; nnx RotaryYatAttention's "
            "default changed from use_bias=False to True)"
        )
    return ""


# --------------------------------------------------------------------------------------------------------- torch
def convert_torch_state_dict(old_state_dict, model):
    """Return ``old_state_dict`` (an nmn 0.3 ``state_dict``) renamed for ``model``; load it with ``load_state_dict``.

    Changed in 1.x: ``YatEmbed``'s table is ``weight`` (as ``torch.nn.Embedding``), 0.3 called it ``embedding``.
    Every other torch parameter kept its name and layout. ``model`` is the nmn 1.x model built with the 0.3
    model's options; any ``nn.Module`` holding nmn layers works, the keys keep their module prefixes.

    Args:
        old_state_dict: the mapping ``torch.load`` returned for the 0.3 model.
        model: the new model (only its module tree and ``state_dict`` keys and shapes are read).

    Returns:
        A new ``dict`` (the tensors are not copied) for ``model.load_state_dict``.

    Raises:
        ValueError: 0.3 keys that match no parameter, parameters the checkpoint lacks, or shapes that differ.

    >>> import torch
    >>> from nmn.torch import YatEmbed
    >>> new = YatEmbed(10, 6)
    >>> old = {"embedding": torch.randn(10, 6), "alpha": torch.ones(1)}
    >>> new.load_state_dict(convert_torch_state_dict(old, new))
    <All keys matched successfully>
    >>> convert_torch_state_dict({**old, "mask": torch.ones(1)}, new)
    Traceback (most recent call last):
    ...
    ValueError: convert_torch_state_dict: the 0.3 checkpoint does not fit this YatEmbed: 1 0.3 entry match no \
parameter: [mask]
    """
    from nmn.torch import YatEmbed

    renames = {}
    for prefix, module in model.named_modules():
        if isinstance(module, YatEmbed):
            renames[f"{prefix}.embedding" if prefix else "embedding"] = f"{prefix}.weight" if prefix else "weight"
    expected = model.state_dict()
    converted = {renames.get(key, key): value for key, value in old_state_dict.items()}
    unknown = [k for k, new in ((k, renames.get(k, k)) for k in old_state_dict) if new not in expected]
    missing = [k for k in expected if k not in converted]
    mismatched = [
        (k, tuple(v.shape), tuple(expected[k].shape))
        for k, v in converted.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    _check("convert_torch_state_dict", model, unknown, missing, mismatched, _bias_hint(missing))
    return converted


# ----------------------------------------------------------------------------------------------------------- nnx
_NNX_ROTARY = {"q_proj": "query", "k_proj": "key", "v_proj": "value", "o_proj": "out"}
_NNX_ROTARY_CACHES = ("freqs_cos", "freqs_sin")


def convert_nnx_state(old_state, model):
    """Load an nmn 0.3 Flax NNX state into ``model`` (in place) and return ``model``.

    Changed in 1.x: the attention output kernel is ``(H*D, E)`` (0.3: ``(H, D, E)``, reshaped here);
    ``RotaryYatAttention``'s projections are ``query/key/value/out`` (0.3: ``q_proj/k_proj/v_proj/o_proj``) and
    its rotary tables are no longer state (0.3's ``freqs_cos/freqs_sin`` caches are dropped). Build the new
    ``RotaryYatAttention`` with ``use_bias=False`` (0.3's default) and its arguments by keyword
    (``num_heads=, in_features=``: the positional order changed).

    Args:
        old_state: ``nnx.state(old_model)``, its ``to_pure_dict()``, or a flat mapping whose keys are path tuples
            or ``"a/b/kernel"`` strings (as an ``.npz`` holds them); leaves are arrays or ``nnx.Variable`` s.
        model: the nmn 1.x NNX model built with the 0.3 model's options.

    Raises:
        ValueError: 0.3 entries that match no variable, parameters the checkpoint lacks, or shapes that differ.

    >>> import numpy as np
    >>> from flax import nnx
    >>> from nmn.nnx import MultiHeadYatAttention
    >>> new = MultiHeadYatAttention(num_heads=2, in_features=8, rngs=nnx.Rngs(0))
    >>> old = {k: np.asarray(v.get_value()) for k, v in nnx.to_flat_state(nnx.state(new))}
    >>> old[("out", "kernel")] = np.ones((2, 4, 8), np.float32)          # 0.3's (H, D, E)
    >>> convert_nnx_state(old, new).out.kernel.shape
    (8, 8)
    """
    import jax.numpy as jnp
    from flax import nnx

    from nmn.nnx import MultiHeadYatAttention, RotaryYatAttention

    if isinstance(old_state, nnx.State):
        old_state = old_state.to_pure_dict()
    flat = {}
    for path, leaf in _flatten(old_state).items():
        flat[tuple(int(p) if isinstance(p, str) and p.isdigit() else p for p in path)] = (
            leaf.get_value() if isinstance(leaf, nnx.Variable) else leaf
        )
    state = nnx.state(model)
    target = {tuple(p): v for p, v in nnx.to_flat_state(state)}
    params = {tuple(p) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    renames, dropped, reshape = {}, set(), set()
    for prefix, module in nnx.iter_modules(model):
        prefix = tuple(prefix)
        if isinstance(module, RotaryYatAttention):
            for path in flat:
                if path[: len(prefix)] == prefix and len(path) > len(prefix):
                    head = path[len(prefix)]
                    if head in _NNX_ROTARY:
                        renames[path] = prefix + (_NNX_ROTARY[head],) + path[len(prefix) + 1 :]
                    elif head in _NNX_ROTARY_CACHES and len(path) == len(prefix) + 1:
                        dropped.add(path)
        if isinstance(module, MultiHeadYatAttention):
            reshape.add(prefix + ("out", "kernel"))
    converted, unknown, mismatched = {}, [], []
    for path, value in flat.items():
        if path in dropped:
            continue
        new = renames.get(path, path)
        if new not in target:
            unknown.append("/".join(map(str, path)))
            continue
        want = tuple(target[new].get_value().shape)
        value = jnp.asarray(value)
        if new in reshape and value.ndim == 3 and value.shape[0] * value.shape[1] == want[0]:
            value = value.reshape(want)
        if tuple(value.shape) != want:
            mismatched.append(("/".join(map(str, path)), tuple(value.shape), want))
            continue
        converted[new] = value.astype(target[new].get_value().dtype)
    missing = ["/".join(map(str, p)) for p in params if p not in converted]
    _check("convert_nnx_state", model, unknown, missing, mismatched, _bias_hint(missing))
    for path, value in converted.items():
        target[path].set_value(value)
    nnx.update(model, state)
    return model


# --------------------------------------------------------------------------------------------------------- linen
def convert_linen_variables(old_variables, model, *example_args, method=None, **example_kwargs):
    """Return nmn 0.3 Flax Linen variables converted for ``model`` (pass them to ``model.apply``).

    Changed in 1.x: ``YatNMN``'s kernel is ``(in, out)`` as in ``flax.linen.Dense`` (0.3: ``(out, in)``,
    transposed here); ``YatEmbed`` always has its ``alpha`` (0.3 created it only when ``attend`` ran at init, so a
    checkpoint without it gets ``alpha = 1``, the value 0.3 started from). The example arguments are what
    ``model.init`` takes (only their shapes are used, through ``jax.eval_shape``): they let the converter see
    which nmn layer sits at each path.

    Args:
        old_variables: the 0.3 variables (``{"params": ...}``, nested or flat with ``"a/b"`` keys).
        model: the nmn 1.x Linen module, built with the 0.3 module's options (conv ``padding="VALID"``: the
            0.3 default).
        *example_args, method, **example_kwargs: arguments for ``model.init`` (arrays or shape structs).

    Raises:
        ValueError: 0.3 entries that match no variable, variables the checkpoint lacks, or shapes that differ.

    >>> import jax.numpy as jnp, numpy as np
    >>> from nmn.linen import YatNMN
    >>> old = {"params": {"kernel": np.ones((4, 6), np.float32), "bias": np.zeros(4, np.float32),
    ...                   "alpha": np.ones(1, np.float32)}}                        # 0.3: kernel (out, in)
    >>> new = convert_linen_variables(old, YatNMN(4), jnp.ones((2, 6)))
    >>> new["params"]["kernel"].shape
    (6, 4)
    """
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    from flax.traverse_util import flatten_dict, unflatten_dict

    from nmn.linen import YatEmbed, YatNMN

    kinds = {}

    def record(next_fun, args, kwargs, context):
        scope = getattr(context.module, "scope", None)
        if scope is not None:  # the unbound top-level call has no path yet
            kinds.setdefault(tuple(scope.path), type(context.module))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *example_args, method=method, **example_kwargs))
    target = {tuple(k): v for k, v in flatten_dict(dict(shapes)).items()}
    old = {tuple(k): v for k, v in _flatten(dict(old_variables)).items()}
    converted, unknown, mismatched = {}, [], []
    for path, value in old.items():
        if path not in target:
            unknown.append("/".join(path))
            continue
        value = jnp.asarray(value)
        module = kinds.get(path[1:-1])
        if module is not None and issubclass(module, YatNMN) and path[-1] == "kernel" and value.ndim == 2:
            value = value.T
        if tuple(value.shape) != tuple(target[path].shape):
            mismatched.append(("/".join(path), tuple(value.shape), tuple(target[path].shape)))
            continue
        converted[path] = value.astype(target[path].dtype)
    for path, module in kinds.items():
        key = ("params", *path, "alpha")
        if issubclass(module, YatEmbed) and key in target and key not in converted:
            converted[key] = jnp.ones(target[key].shape, target[key].dtype)
    missing = ["/".join(p) for p in target if p not in converted and p[0] == "params"]
    _check("convert_linen_variables", model, unknown, missing, mismatched, _bias_hint(missing))
    return unflatten_dict(converted)


# ----------------------------------------------------------------------------------------------------------- mlx
_MLX_ATTENTION = {"q": "query_proj", "k": "key_proj", "v": "value_proj", "out": "out_proj"}


def convert_mlx_weights(old_weights, model):
    """Return nmn 0.3 MLX weights converted for ``model``: a list for ``model.load_weights(..., strict=True)``.

    Changed in 1.x: the attention projections are ``nn.Linear`` layers, ``query_proj.weight (E, in)`` and
    ``query_proj.bias`` (0.3: arrays ``q_kernel (in, E)``, ``q_bias``; likewise ``k``, ``v`` and ``out``;
    transposed here); ``RotaryYatAttention``'s ``freqs_cos/freqs_sin`` tables are no longer parameters (dropped).
    Dense, convolution and embedding weights kept their names and layouts. ``model`` must be built (sizes given,
    e.g. ``in_features=``, or called once), so that its parameters exist.

    Args:
        old_weights: a flat mapping ``"a.b.kernel" -> array`` (``mx.load`` of the 0.3 ``.npz`` /
            ``.safetensors``, ``dict(tree_flatten(old.parameters()))``) or a nested one.
        model: the nmn 1.x MLX model built with the 0.3 model's options.

    Raises:
        ValueError: 0.3 entries that match no parameter, parameters the checkpoint lacks, or shapes that differ.

    >>> import mlx.core as mx
    >>> from nmn.mlx import MultiHeadYatAttention
    >>> new = MultiHeadYatAttention(8, 2)
    >>> old = {f"{p}_{n}": mx.zeros((8, 8) if n == "kernel" else (8,)) for p in "qkv" for n in ("kernel", "bias")}
    >>> old.update(out_kernel=mx.zeros((8, 8)), out_bias=mx.zeros(8), alpha=mx.ones(1))
    >>> _ = new.load_weights(convert_mlx_weights(old, new), strict=True)
    >>> sorted(k for k, _ in convert_mlx_weights(old, new))[:2]
    ['alpha', 'key_proj.bias']
    """
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from nmn.mlx import MultiHeadYatAttention, RotaryYatAttention

    flat = {}
    for key, value in _flatten(dict(old_weights)).items():
        flat[".".join(map(str, key))] = value
    target = dict(tree_flatten(model.parameters()))
    attention = [
        (f"{name}." if name else "", isinstance(module, RotaryYatAttention))
        for name, module in model.named_modules()
        if isinstance(module, (MultiHeadYatAttention, RotaryYatAttention))
    ]
    converted, unknown, mismatched = {}, [], []
    for key, value in flat.items():
        new, value = key, mx.array(value)
        for prefix, rotary in attention:
            rest = key[len(prefix) :] if key.startswith(prefix) else None
            if rest is None:
                continue
            if rotary and rest in ("freqs_cos", "freqs_sin"):
                new = None
                break
            head, _, kind = rest.rpartition("_")
            if head in _MLX_ATTENTION and kind in ("kernel", "bias"):
                new = f"{prefix}{_MLX_ATTENTION[head]}.{'weight' if kind == 'kernel' else 'bias'}"
                value = value.T if kind == "kernel" else value
                break
        if new is None:
            continue
        if new not in target:
            unknown.append(key)
            continue
        if tuple(value.shape) != tuple(target[new].shape):
            mismatched.append((key, tuple(value.shape), tuple(target[new].shape)))
            continue
        converted[new] = value.astype(target[new].dtype)
    missing = [k for k in target if k not in converted]
    _check("convert_mlx_weights", model, unknown, missing, mismatched, _bias_hint(missing))
    return sorted(converted.items())
