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
keras         ``MultiHeadYatAttention``              variable order in ``.weights.h5``: ``q,k,v kernels, q,k,v
                                                     biases, out kernel, out bias, alpha`` -> ``q kernel, q bias,
                                                     k kernel, ...`` (the file stores values by position only)
tf            ``YatNMN``                             ``kernel`` ``(out, in)`` -> ``(in, out)``
tf            every layer                            names unchanged: checkpoint entries are matched by attribute
                                                     path (``layer/q_kernel``), not by the variables' names
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

>>> sorted(n for n in dir() if n.startswith("convert_"))  # doctest: +NORMALIZE_WHITESPACE
['convert_keras_weights', 'convert_linen_variables', 'convert_mlx_weights', 'convert_nnx_state',
 'convert_tf_checkpoint', 'convert_torch_state_dict']
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "convert_keras_weights",
    "convert_linen_variables",
    "convert_mlx_weights",
    "convert_nnx_state",
    "convert_tf_checkpoint",
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


# --------------------------------------------------------------------------------------------------------- keras
# nmn 0.3 built every MultiHeadYatAttention weight trainable, in this order; Keras' ``.weights.h5`` stores each
# layer's variables by position only (``<layer path>/vars/0, 1, ...``), so the position is what changed.
_KERAS_OLD_ATTENTION_ORDER = (
    "q_kernel",
    "k_kernel",
    "v_kernel",
    "q_bias",
    "k_bias",
    "v_bias",
    "out_kernel",
    "out_bias",
    "alpha",
)


def _h5_layers(h5):
    """``{layer group path: (layer name, [arrays])}`` of a Keras ``.weights.h5`` (every group holding ``vars``)."""
    import h5py

    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and name.rsplit("/", 1)[-1] == "vars":
            values = [obj[str(i)][()] for i in range(len(obj))]
            found[name[: -len("vars")].rstrip("/")] = (str(obj.attrs.get("name", "")), values)

    h5.visititems(visit)
    return found


def _stored_variables(layer):
    """A Keras layer's own variables in the order ``Layer.save_own_variables`` writes them."""
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)


def convert_keras_weights(old_file, model):
    """Load an nmn 0.3 Keras weights file (``model.save_weights("....weights.h5")``) into ``model``; return it.

    Changed in 1.x: ``MultiHeadYatAttention`` creates its weights in the order ``q_kernel, q_bias, k_kernel,
    k_bias, v_kernel, v_bias, out_kernel, out_bias, alpha`` (0.3: the three kernels, then the three biases, then
    ``out_kernel, out_bias, alpha``). A weights file holds each layer's values by position only, so
    ``model.load_weights`` of a 0.3 file fails on the attention's shapes (a kernel where a bias goes); this
    converter puts each value back under its own name (without biases the two orders agree). Every other layer kept
    its weights and their order. The layer groups of the file are the attribute paths of the model (as Keras
    writes them): build the new model with the same structure and the 0.3 layers' options, and build it (call it
    once) before converting.

    Args:
        old_file: the 0.3 ``.weights.h5`` path.
        model: the built nmn 1.x ``keras.Model``.

    Raises:
        ValueError: the model is not built, or a layer group of the file matches no layer of the model, a layer
            of the model has no group in the file, or a count or shape of values differs (nothing is loaded then).

    >>> import keras, numpy as np, tempfile, os
    >>> from nmn.keras import MultiHeadYatAttention
    >>> class One(keras.Model):
    ...     def __init__(self, layer):
    ...         super().__init__()
    ...         self.layer = layer
    ...     def call(self, x):
    ...         return self.layer(x)
    >>> new = One(MultiHeadYatAttention(8, 2)); _ = new(np.ones((1, 3, 8), np.float32))
    >>> path = os.path.join(tempfile.mkdtemp(), "old.weights.h5")
    >>> new.save_weights(path)                 # a 1.x file: not a 0.3 one
    >>> convert_keras_weights(path, new)
    Traceback (most recent call last):
    ...
    ValueError: convert_keras_weights: the 0.3 checkpoint does not fit this One: shapes differ (0.3 -> expected): \
layer/vars/2 (k_kernel) (8,) -> (8, 8), layer/vars/3 (k_bias) (8, 8) -> (8,)
    """
    import os
    import shutil
    import tempfile

    import h5py

    from nmn.keras import MultiHeadYatAttention

    if not getattr(model, "built", False) or not model.weights:
        raise ValueError(
            f"convert_keras_weights: {type(model).__name__} is not built (no weights yet): call it once on an "
            "input of the 0.3 model's shape, then convert"
        )
    if not hasattr(model, "save_weights"):
        raise TypeError(
            f"convert_keras_weights: expected a keras.Model (it reads the layout of model.save_weights), got a "
            f"{type(model).__name__}: wrap the layer in a keras.Model with the 0.3 model's structure"
        )
    layers = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        layers.setdefault(layer.name, []).append(layer)
    tmp = tempfile.mkdtemp(prefix="nmn_v03_keras_")
    try:
        new_file = os.path.join(tmp, "converted.weights.h5")
        model.save_weights(new_file)
        with h5py.File(old_file, "r") as h5:
            old = _h5_layers(h5)
        with h5py.File(new_file, "r") as h5:
            new = _h5_layers(h5)
        unknown = [f"{p}/vars" for p, (_, values) in old.items() if values and p not in new]
        missing = [f"{p}/vars" for p, (_, values) in new.items() if values and p not in old]
        mismatched, converted = [], {}
        for path, (name, want) in new.items():
            if path not in old or not want:
                continue
            got = list(old[path][1])
            owners = layers.get(name, [])
            if owners and all(isinstance(layer, MultiHeadYatAttention) for layer in owners):
                names = [v.name for v in _stored_variables(owners[0])]
                if len(names) == len(got) and all(n in _KERAS_OLD_ATTENTION_ORDER for n in names):
                    old_names = sorted(names, key=_KERAS_OLD_ATTENTION_ORDER.index)
                    got = [got[old_names.index(n)] for n in names]
                else:
                    names = [f"{n}?" for n in names]
            else:
                names = [""] * len(want)
            if len(got) != len(want):
                mismatched.append((f"{path}/vars", f"{len(got)} values", f"{len(want)} values"))
                continue
            for i, (value, target) in enumerate(zip(got, want, strict=True)):
                label = f"{path}/vars/{i}" + (f" ({names[i]})" if i < len(names) and names[i] else "")
                if tuple(value.shape) != tuple(target.shape):
                    mismatched.append((label, tuple(value.shape), tuple(target.shape)))
                else:
                    converted[f"{path}/vars/{i}"] = value.astype(target.dtype)
        _check("convert_keras_weights", model, unknown, missing, mismatched)
        with h5py.File(new_file, "r+") as h5:
            for key, value in converted.items():
                h5[key][...] = value
        model.load_weights(new_file)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model


# ------------------------------------------------------------------------------------------------------------ tf
_TF_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def convert_tf_checkpoint(old_checkpoint, model, root=None):
    """Load an nmn 0.3 TensorFlow checkpoint (``tf.train.Checkpoint(...).write``) into ``model``; return it.

    Changed in 1.x: ``YatNMN``'s kernel is ``(in, out)`` as in Keras' ``Dense`` (0.3: ``(out, in)``, transposed
    here). Every other variable kept its attribute name and layout; the layers create their variables under
    other ``tf.Variable`` names, so a checkpoint is matched by attribute path (``layer/q_kernel``), which is how
    ``tf.train.Checkpoint`` stores it, and never by variable name. The layers build on their first call: call
    the new model once before converting.

    Args:
        old_checkpoint: the checkpoint prefix ``write`` / ``save`` returned, or its directory (the latest one).
        model: the built nmn 1.x ``tf.Module`` (a layer or a module holding layers).
        root: the keyword the 0.3 model had in ``tf.train.Checkpoint(root=model)`` (the first component of
            every entry). ``None``: none when the entries match the model's attribute paths as they are, else
            the one first component they all share.

    Raises:
        ValueError: a checkpoint entry matches no variable of the model, a variable of the model is not in the
            checkpoint, or a shape differs (nothing is assigned then).

    >>> import numpy as np, tensorflow as tf, tempfile, os
    >>> from nmn.tf import YatNMN
    >>> old = tf.Module(); old.kernel = tf.Variable(np.ones((4, 6), np.float32))    # 0.3: kernel (out, in)
    >>> old.bias, old.alpha = tf.Variable(np.zeros(4, np.float32)), tf.Variable(np.ones(1, np.float32))
    >>> prefix = tf.train.Checkpoint(layer=old).write(os.path.join(tempfile.mkdtemp(), "old"))
    >>> new = YatNMN(4); _ = new(tf.ones((1, 6)))                                  # built: kernel (6, 4)
    >>> convert_tf_checkpoint(prefix, new).kernel.shape
    TensorShape([6, 4])
    """
    import numpy as np
    import tensorflow as tf

    from nmn.tf import YatNMN

    is_variable = lambda v: isinstance(v, tf.Variable)
    variables = {"/".join(map(str, path)): v for path, v in model._flatten(predicate=is_variable, with_path=True)}
    if not variables:
        raise ValueError(
            f"convert_tf_checkpoint: {type(model).__name__} has no variables yet: call it once on an input of "
            "the 0.3 model's shape, then convert"
        )
    dense = {
        "/".join(map(str, p)) for p, _ in model._flatten(predicate=lambda m: isinstance(m, YatNMN), with_path=True)
    }
    if isinstance(model, YatNMN):
        dense.add("")
    reader = tf.train.load_checkpoint(old_checkpoint)
    entries = {k[: -len(_TF_SUFFIX)]: k for k in reader.get_variable_to_shape_map() if k.endswith(_TF_SUFFIX)}
    entries = {k: v for k, v in entries.items() if k != "save_counter"}
    if root is None and not set(entries) & set(variables):
        heads = {k.split("/", 1)[0] for k in entries}
        root = heads.pop() if len(heads) == 1 else None
    if root:
        entries = {k[len(root) + 1 :]: v for k, v in entries.items() if k.startswith(root + "/")}
    unknown, mismatched, converted = [], [], {}
    for path, key in entries.items():
        if path not in variables:
            unknown.append(f"{root}/{path}" if root else path)
            continue
        value = np.asarray(reader.get_tensor(key))
        owner, _, leaf = path.rpartition("/")
        if owner in dense and leaf == "kernel" and value.ndim == 2:
            value = value.T
        want = tuple(variables[path].shape)
        if tuple(value.shape) != want:
            mismatched.append((path, tuple(value.shape), want))
            continue
        converted[path] = value.astype(variables[path].dtype.as_numpy_dtype)
    missing = [p for p in variables if p not in converted]
    _check("convert_tf_checkpoint", model, unknown, missing, mismatched, _bias_hint(missing))
    for path, value in converted.items():
        variables[path].assign(value)
    return model
