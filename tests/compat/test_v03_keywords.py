"""nmn 0.3 keywords of the dense and embedding layers (issue 17), one table over the six frameworks.

Accepted keywords are checked for what they change: ``freeze_kernel`` (a frozen kernel gets no gradient, an
optimizer step leaves it unchanged, the exported file lists it non-trainable and the loaded model holds it frozen),
``alpha_init`` (sets alpha), ``precision`` (reaches the contraction of the jaxpr), ``promote_dtype`` (Flax's hook is
called), torch ``param_dtype`` (storage vs compute dtype), keras ``embedding_initializer``. Every forward is compared
with a numpy float64 oracle written from the Yat formula; exported files with onnxruntime. Refused keywords raise
the reason of :data:`nmn.core.names.REFUSED_VALUES` / ``REFUSED_KEYWORDS``. A missing framework is a skip.
"""

from __future__ import annotations

import numpy as np
import pytest

from nmn.core import names
from tests.frameworks import nmn_module, require

IN, OUT = 4, 3
X = np.random.default_rng(0).normal(size=(2, IN)).astype(np.float32)


def _yat_oracle(x, kernel_io, bias=None, alpha=1.0, eps=1e-5):
    """float64 ``alpha (x.w + b)^2 / (relu(|x|^2 + |w|^2 - 2 x.w) + eps)`` for ``kernel (in, out)``."""
    x, w = np.asarray(x, np.float64), np.asarray(kernel_io, np.float64)
    dot = x @ w
    num = dot + (0.0 if bias is None else np.asarray(bias, np.float64))
    dist = (x * x).sum(-1, keepdims=True) + (w * w).sum(0) - 2.0 * dot
    return float(alpha) * num**2 / (np.maximum(dist, 0.0) + eps)


def _close(got, want, what, rtol=1e-5):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    err, scale = float(np.max(np.abs(got - want))), float(np.max(np.abs(want)))
    assert err <= rtol * max(scale, 1e-12), f"{what}: max|diff| {err:.3g} > {rtol} x scale {scale:.3g}"


# ------------------------------------------------------------------------------------- framework adapters
class _Dense:
    """One YatNMN(in=4, out=3) of a framework: forward, kernel (in, out), alpha, trainable names, one SGD step,
    export, and the trainable names of the model loaded back."""

    def __init__(self, framework, **kw):
        self.fw = framework
        ns = nmn_module(framework)
        if framework == "torch":
            self.layer = ns.YatNMN(IN, OUT, **kw)
        elif framework == "nnx":
            from flax import nnx

            self.layer = ns.YatNMN(IN, OUT, rngs=nnx.Rngs(0), **kw)
        elif framework == "linen":
            import jax

            self.layer = ns.YatNMN(OUT, **kw)
            self.variables = self.layer.init(jax.random.key(0), X)
        elif framework == "keras":
            import keras

            self.layer = ns.YatNMN(OUT, name="yat", **kw)
            inp = keras.Input((IN,), name="x")
            self.model = keras.Model(inp, self.layer(inp))
        elif framework == "tf":
            self.layer = ns.YatNMN(OUT, **kw)
            self.layer(X)
        else:
            self.layer = ns.YatNMN(OUT, in_features=IN, **kw)

    def forward(self, x=X):
        if self.fw == "torch":
            import torch

            with torch.no_grad():
                return self.layer(torch.from_numpy(x)).numpy()
        if self.fw == "linen":
            return np.asarray(self.layer.apply(self.variables, x))
        if self.fw == "keras":
            return np.asarray(self.model(x))
        if self.fw == "mlx":
            import mlx.core as mx

            return np.array(self.layer(mx.array(x)))
        return np.asarray(self.layer(x))

    def kernel(self):
        if self.fw == "torch":
            return self.layer.weight.detach().numpy().T.copy()
        if self.fw == "linen":
            v = self.variables
            return np.array(v["frozen"]["kernel"] if "frozen" in v else v["params"]["kernel"])
        if self.fw == "nnx":
            return np.array(self.layer.kernel[...])
        if self.fw == "mlx":  # (out, in) prototypes
            return np.array(self.layer.kernel).T.copy()
        return np.array(self.layer.kernel)

    def alpha(self):
        if self.fw == "torch":
            return float(self.layer.alpha.detach()[0])
        if self.fw == "linen":
            return float(self.variables["params"]["alpha"][0])
        if self.fw == "nnx":
            return float(self.layer.alpha[...][0])
        return float(np.array(self.layer.alpha).reshape(-1)[0])

    def bias(self):
        if self.fw == "torch":
            return self.layer.bias.detach().numpy()
        if self.fw == "linen":
            return np.array(self.variables["params"]["bias"])
        if self.fw == "nnx":
            return np.array(self.layer.bias[...])
        return np.array(self.layer.bias)

    def oracle(self, x=X):
        return _yat_oracle(x, self.kernel(), self.bias(), self.alpha())

    def trainable(self):
        return _trainable_names(self.fw, self.model if self.fw == "keras" else self._native())

    def _native(self):
        return (self.layer, self.variables) if self.fw == "linen" else self.layer

    def sgd_step(self, lr=0.1):
        """One SGD step on ``sum(y^2)`` over the trainable parameters; returns the kernel's gradient (None: none)."""
        fw = self.fw
        if fw == "torch":
            import torch

            opt = torch.optim.SGD(self.layer.parameters(), lr=lr)
            (self.layer(torch.from_numpy(X)) ** 2).sum().backward()
            opt.step()
            return self.layer.weight.grad
        if fw == "nnx":
            import jax
            from flax import nnx

            grads = nnx.grad(lambda m: (m(X) ** 2).sum())(self.layer)
            params = nnx.state(self.layer, nnx.Param)
            nnx.update(self.layer, jax.tree.map(lambda p, g: p - lr * g, params, grads))
            return dict(grads).get("kernel")
        if fw == "linen":
            import jax

            def loss(params):
                return (self.layer.apply({**self.variables, "params": params}, X) ** 2).sum()

            grads = jax.grad(loss)(self.variables["params"])
            params = jax.tree.map(lambda p, g: p - lr * g, self.variables["params"], grads)
            self.variables = {**self.variables, "params": params}
            return grads.get("kernel")
        if fw == "keras":
            import keras

            self.model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
            self.model.train_on_batch(X, np.zeros((len(X), OUT), np.float32))
            return None
        if fw == "tf":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(self.layer(X) ** 2)
            variables = list(self.layer.trainable_variables)
            grads = tape.gradient(loss, variables)
            for v, g in zip(variables, grads):
                v.assign_sub(lr * g)
            return next((g for v, g in zip(variables, grads) if v is self.layer.kernel), None)
        import mlx.core as mx
        import mlx.nn as mnn
        import mlx.optimizers as optim

        def loss(model, x):
            return (model(x) ** 2).sum()

        _, grads = mnn.value_and_grad(self.layer, loss)(self.layer, mx.array(X))
        optim.SGD(learning_rate=lr).update(self.layer, grads)
        mx.eval(self.layer.parameters())
        return grads.get("kernel")

    def export(self):
        from nmn.interchange import export

        if self.fw == "keras":
            return export(self.model, [X], framework="keras")
        if self.fw == "linen":
            return export(self.layer, [X], framework="linen", variables=self.variables)
        if self.fw == "mlx":
            import mlx.core as mx

            return export(self.layer, [mx.array(X)], framework="mlx")
        if self.fw == "torch":
            import torch

            return export(self.layer.eval(), [torch.from_numpy(X)], framework="torch")
        return export(self.layer, [X], framework=self.fw)


def _flat_names(tree) -> set[str]:
    import jax

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path) for path, _ in leaves}


def _trainable_names(fw, obj) -> set[str]:
    """Names of the trainable parameters of a native layer or of a loaded model."""
    if fw == "torch":
        return {n for n, p in obj.named_parameters() if p.requires_grad}
    if fw == "nnx":
        from flax import nnx

        return _flat_names(nnx.state(obj, nnx.Param))
    if fw == "linen":
        _, variables = obj
        return _flat_names(variables.get("params", {}))
    if fw in ("keras", "tf"):
        return {getattr(v, "path", None) or v.name for v in obj.trainable_variables}
    from mlx.utils import tree_flatten

    return {k for k, _ in tree_flatten(obj.trainable_parameters())}


def _is_kernel(name: str) -> bool:
    parts = [p for p in name.replace(":0", "").replace(".", "/").split("/") if p != "value"]
    return bool(parts) and parts[-1] in ("kernel", "weight")


# ------------------------------------------------------------------------------------------- freeze_kernel
@pytest.mark.parametrize("framework", names.FRAMEWORKS)
def test_freeze_kernel_gets_no_gradient_and_is_unchanged_by_a_step(framework):
    frozen, free = _Dense(framework, freeze_kernel=True), _Dense(framework)
    assert frozen.layer.lazy is True and free.layer.lazy is False
    _close(frozen.forward(), frozen.oracle(), f"{framework} frozen forward vs the numpy oracle")
    names_frozen, names_free = frozen.trainable(), free.trainable()
    assert not any(_is_kernel(n) for n in names_frozen), f"{framework}: trainable {sorted(names_frozen)}"
    assert any(_is_kernel(n) for n in names_free), f"{framework}: trainable {sorted(names_free)}"
    assert any("alpha" in n for n in names_frozen), f"{framework}: alpha should train, got {sorted(names_frozen)}"
    kernel, alpha = frozen.kernel(), frozen.alpha()
    grad = frozen.sgd_step()
    assert grad is None, f"{framework}: the frozen kernel got a gradient"
    np.testing.assert_array_equal(frozen.kernel(), kernel, err_msg=f"{framework}: the step moved the frozen kernel")
    assert frozen.alpha() != alpha, f"{framework}: alpha should have trained"


@pytest.mark.parametrize("framework", names.FRAMEWORKS)
def test_freeze_kernel_exports_non_trainable_and_loads_frozen(framework):
    from nmn.interchange import load, predict, read_model, run_onnx

    layer = _Dense(framework, freeze_kernel=True)
    proto = layer.export()
    (spec,) = read_model(proto).layers.values()
    assert spec.trainable.get("weight") is False, f"{framework}: manifest trainable {spec.trainable}"
    assert spec.trainable.get("alpha", True) is True
    (ort,) = run_onnx(proto, {proto.graph.input[0].name: X})
    _close(ort, layer.oracle(), f"{framework} file in onnxruntime vs the numpy oracle")
    for target in names.FRAMEWORKS:
        try:
            require(target)
        except pytest.skip.Exception:
            continue
        loaded = load(proto, target)
        trainable = _trainable_names(target, loaded if target != "keras" else loaded)
        assert not any(_is_kernel(n) for n in trainable), f"{framework} file in {target}: trainable {trainable}"
        assert any("alpha" in n for n in trainable), f"{framework} file in {target}: trainable {trainable}"
        (got,) = predict(loaded, target, [X])
        _close(got, ort, f"{framework} file in {target} vs onnxruntime", rtol=1e-4)


@pytest.mark.parametrize("framework", names.FRAMEWORKS)
def test_freeze_kernel_and_lazy_must_agree(framework):
    with pytest.raises(ValueError, match="lazy=True and freeze_kernel=False disagree"):
        _Dense(framework, lazy=True, freeze_kernel=False)


# --------------------------------------------------------------------------------------- Flax keywords
def _flax_const(value):
    import jax

    return jax.nn.initializers.constant(value)


@pytest.mark.parametrize("framework", ["nnx", "linen"])
def test_alpha_init_sets_alpha_of_dense_and_embed(framework):
    import jax.numpy as jnp

    layer = _Dense(framework, alpha_init=_flax_const(2.5))
    assert layer.alpha() == 2.5
    _close(layer.forward(), layer.oracle(), f"{framework} alpha_init=2.5 forward vs the numpy oracle")
    ns = nmn_module(framework)
    ids = jnp.array([1, 2])
    q = np.ones((2, 4), np.float32)
    if framework == "nnx":
        from flax import nnx

        for cls in (ns.YatEmbed, ns.Embed):
            emb = cls(10, 4, alpha_init=_flax_const(3.0), rngs=nnx.Rngs(0))
            assert float(emb.alpha[...][0]) == 3.0
            table = np.asarray(emb.embedding[...])
            _close(emb.attend(q), _yat_oracle(q, table.T, None, 3.0), f"nnx {cls.__name__} attend")
    else:
        emb = ns.YatEmbed(10, 4, alpha_init=_flax_const(3.0))
        variables = emb.init(__import__("jax").random.key(0), ids)
        assert float(variables["params"]["alpha"][0]) == 3.0
        table = np.asarray(variables["params"]["embedding"])
        _close(emb.apply(variables, q, method="attend"), _yat_oracle(q, table.T, None, 3.0), "linen attend")


def _dot_precisions(fn, *args):
    import jax

    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                found.append(eqn.params["precision"])
            for sub in jax.core.jaxprs_in_params(eqn.params) if hasattr(jax.core, "jaxprs_in_params") else ():
                walk(sub)
            for v in eqn.params.values():
                inner = getattr(v, "jaxpr", None)
                if inner is not None:
                    walk(getattr(inner, "jaxpr", inner))

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


@pytest.mark.parametrize("framework", ["nnx", "linen"])
def test_precision_reaches_the_contraction(framework):
    from jax import lax

    plain, precise = _Dense(framework), _Dense(framework, precision=lax.Precision.HIGHEST)
    if framework == "nnx":
        got_plain = _dot_precisions(lambda x: plain.layer(x), X)
        got = _dot_precisions(lambda x: precise.layer(x), X)
    else:
        got_plain = _dot_precisions(lambda x: plain.layer.apply(plain.variables, x), X)
        got = _dot_precisions(lambda x: precise.layer.apply(precise.variables, x), X)
    highest = (lax.Precision.HIGHEST, lax.Precision.HIGHEST)
    assert highest in got, f"{framework}: dot_general precisions {got}"
    assert highest not in got_plain, f"{framework}: default precisions {got_plain}"
    _close(precise.forward(), precise.oracle(), f"{framework} precision=HIGHEST forward vs the numpy oracle")


@pytest.mark.parametrize("framework", ["nnx", "linen"])
def test_promote_dtype_is_called_as_flax_does(framework):
    import jax.numpy as jnp

    calls = []

    def promote(args, *, dtype=None, inexact=True):
        calls.append((len(args), dtype))
        return tuple(None if a is None else jnp.asarray(a, jnp.bfloat16) for a in args)

    layer = _Dense(framework, promote_dtype=promote)
    y = layer.forward()
    assert calls and calls[-1] == (4, None), calls
    assert y.dtype == jnp.bfloat16, y.dtype
    _close(y, layer.oracle(), f"{framework} promote_dtype=bfloat16 forward vs the numpy oracle", rtol=3e-2)


def test_nnx_embed_promote_dtype():
    import jax.numpy as jnp
    from flax import nnx

    ns = nmn_module("nnx")
    calls = []

    def promote(args, *, dtype=None, inexact=True):
        calls.append((len(args), inexact))
        return tuple(jnp.asarray(a, jnp.float16) for a in args)

    emb = ns.Embed(10, 4, promote_dtype=promote, rngs=nnx.Rngs(0))
    assert emb(jnp.array([1, 2])).dtype == jnp.float16
    assert emb.attend(np.ones((2, 4), np.float32)).dtype == jnp.float16
    assert calls == [(1, False), (2, True)], calls


def test_nnx_accepted_numerics_keywords_change_nothing():
    from jax import lax

    base = _Dense("nnx")
    same = _Dense("nnx", dot_general=lax.dot_general, compute_mode="fp32", distance_floor=0.0, fused=True)
    np.testing.assert_array_equal(same.forward(), base.forward())
    assert same.layer.fused is True


def _refusals():
    custom = lambda *a, **k: None
    rows = [
        ("nnx", {"dot_general": custom}, names.REFUSED_VALUES["dot_general"]),
        ("nnx", {"compute_mode": "bf16"}, names.REFUSED_VALUES["compute_mode"]),
        ("nnx", {"compute_mode": "mixed"}, names.REFUSED_VALUES["compute_mode"]),
        ("nnx", {"distance_floor": 0.1}, names.REFUSED_VALUES["distance_floor"]),
        ("linen", {"dot_general": custom}, names.REFUSED_VALUES["dot_general"]),
        ("linen", {"dot_general_cls": object}, names.REFUSED_VALUES["dot_general_cls"]),
        ("linen", {"return_weights": True}, names.REFUSED_KEYWORDS["YatNMN"]["return_weights"]),
        ("torch", {"return_weights": True}, names.REFUSED_KEYWORDS["YatNMN"]["return_weights"]),
    ]
    return [
        pytest.param(fw, kw, why, id=f"{fw}-{next(iter(kw))}-{next(iter(kw.values()))!s:.8}") for fw, kw, why in rows
    ]


@pytest.mark.parametrize(("framework", "keywords", "why"), _refusals())
def test_refused_keyword_says_why(framework, keywords, why):
    (key,) = keywords
    with pytest.raises((TypeError, ValueError)) as err:
        _Dense(framework, **keywords)
    text = str(err.value)
    assert key in text and "nmn 0.3" in text and why in text and "YatNMN" in text, text


def test_nnx_compute_mode_unknown_value_is_a_clear_error():
    with pytest.raises(ValueError, match=r"YatNMN: compute_mode must be one of \('fp32', 'mixed', 'bf16'\)"):
        _Dense("nnx", compute_mode="fp16")


# ---------------------------------------------------------------------------------------------- torch
def test_torch_param_dtype_is_the_storage_dtype_and_dtype_the_compute_dtype():
    torch = require("torch")
    ns = nmn_module("torch")
    layer = ns.YatNMN(IN, OUT, param_dtype=torch.float32, dtype=torch.float64)
    assert layer.weight.dtype == torch.float32 and layer.alpha.dtype == torch.float32
    with torch.no_grad():
        y = layer(torch.from_numpy(X))
    assert y.dtype == torch.float64
    w = layer.weight.detach().numpy().T
    _close(y.numpy(), _yat_oracle(X, w, layer.bias.detach().numpy(), 1.0), "torch param_dtype forward", rtol=1e-12)
    half = ns.YatNMN(IN, OUT, param_dtype=torch.bfloat16)
    assert half.weight.dtype == torch.bfloat16 and half.compute_dtype is None
    with pytest.raises(TypeError, match="YatNMN: param_dtype must be a torch.dtype or None, got 'float32'"):
        ns.YatNMN(IN, OUT, param_dtype="float32")


# ---------------------------------------------------------------------------------------------- keras
def test_keras_embedding_initializer_is_the_old_name_of_embeddings_initializer():
    keras = require("keras")
    ns = nmn_module("keras")
    emb = ns.YatEmbed(10, 4, embedding_initializer=keras.initializers.Constant(0.5))
    emb(np.array([[1, 2]]))
    np.testing.assert_array_equal(np.asarray(emb.embedding), np.full((10, 4), 0.5, np.float32))
    with pytest.raises(ValueError, match="YatEmbed: give embeddings_initializer or nmn 0.3's embedding_initializer"):
        ns.YatEmbed(10, 4, embedding_initializer="zeros", embeddings_initializer="ones")
