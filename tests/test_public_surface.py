"""Every framework namespace against the one list of public names and Yat keywords in ``nmn.core.names``.

The oracle is ``nmn.core.names`` (written by hand from the documented surface, not derived from any framework):
each ``nmn.<framework>.__all__`` must equal ``public_names(framework)``, aliases must be the same class, the
``functional`` module must offer the shared ops, each layer's constructor must accept exactly its kind's Yat
keywords (host size arguments excepted, as listed), and ``get_config`` must round-trip through ``from_config``.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

from nmn.core import names

_HOST_MODULE = {
    "torch": "torch",
    "nnx": "flax.nnx",
    "linen": "flax.linen",
    "keras": "keras",
    "tf": "tensorflow",
    "mlx": "mlx.core",
}


def _namespace(framework):
    pytest.importorskip(_HOST_MODULE[framework], reason=f"{framework} is not installed")
    return importlib.import_module(f"nmn.{framework}")


@pytest.mark.parametrize("framework", names.FRAMEWORKS)
def test_all_is_the_shared_list_plus_host_extras(framework):
    ns = _namespace(framework)
    expected = names.public_names(framework)
    assert len(ns.__all__) == len(set(ns.__all__)), f"nmn.{framework}.__all__ repeats a name"
    missing = sorted(set(expected) - set(ns.__all__))
    extra = sorted(set(ns.__all__) - set(expected))
    assert not missing and not extra, f"nmn.{framework}.__all__: missing {missing}, not in nmn.core.names {extra}"
    unresolved = [n for n in ns.__all__ if not hasattr(ns, n)]
    assert not unresolved, f"nmn.{framework}.__all__ names {unresolved} that the module does not define"


@pytest.mark.parametrize("framework", names.FRAMEWORKS)
def test_aliases_are_the_canonical_classes(framework):
    ns = _namespace(framework)
    for alias, canonical in names.ALIASES.items():
        assert getattr(ns, alias) is getattr(ns, canonical), f"nmn.{framework}.{alias} is not {canonical}"


_FUNCTIONAL_GAPS = {  # known, owned elsewhere (issue 15.2): the shared op each functional module still lacks
    "keras": "nmn.keras.functional has no yat_embed_attend (the embedding's attend is written in nmn/keras/embed.py)",
    "tf": "nmn.tf.functional has no yat_embed_attend (the embedding's attend is written in nmn/tf/embed.py)",
}


def _gap(table, key):
    return [pytest.mark.xfail(strict=False, reason=table[key])] if key in table else []


@pytest.mark.parametrize("framework", [pytest.param(f, marks=_gap(_FUNCTIONAL_GAPS, f)) for f in names.FRAMEWORKS])
def test_functional_module_offers_the_shared_ops(framework):
    ns = _namespace(framework)
    functional = ns.functional
    missing = [n for n in names.FUNCTIONAL if not callable(getattr(functional, n, None))]
    assert not missing, f"nmn.{framework}.functional lacks {missing}"
    not_listed = [n for n in names.FUNCTIONAL if n not in getattr(functional, "__all__", ())]
    assert not not_listed, f"nmn.{framework}.functional.__all__ does not list {not_listed}"


def _keywords(cls):
    """Keyword names a class's constructor accepts, following ``**kwargs`` into nmn base classes only."""
    found = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("nmn."):
            break
        target = klass if klass is cls and "__init__" not in klass.__dict__ else klass.__dict__.get("__init__")
        if target is None:
            continue
        try:
            params = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):
            continue
        found |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        # ``**refused`` is nmn's convention for extras that are refused (nmn.core.names.refuse_keywords), not passed on
        if not any(p.kind == p.VAR_KEYWORD and p.name != "refused" for p in params):
            break
    return found


_KEYWORD_GAPS: dict = {}  # known gaps (layer, framework) -> reason; none today


def _yat_keyword_cases():
    for framework in names.FRAMEWORKS:
        for layer in names.LAYERS:
            yield pytest.param(
                framework, layer, id=f"{framework}-{layer}", marks=_gap(_KEYWORD_GAPS, (framework, layer))
            )


@pytest.mark.parametrize(("framework", "layer"), list(_yat_keyword_cases()))
def test_yat_keywords_match_the_list(framework, layer):
    ns = _namespace(framework)
    cls = getattr(ns, layer)
    if framework == "linen":  # dataclass modules: the fields are the constructor
        accepted = set(inspect.signature(cls).parameters)
    else:
        accepted = _keywords(cls)
    expected = names.YAT_KEYWORDS[layer]
    missing = sorted(expected - accepted)
    foreign = sorted((accepted & names.ALL_YAT_KEYWORDS) - expected - names.HOST_SIZE_ARGS[framework])
    unknown = sorted(accepted - names.ALL_YAT_KEYWORDS - names.HOST_SIZE_ARGS[framework])
    assert not missing, f"nmn.{framework}.{layer} does not accept the Yat keywords {missing}"
    assert not foreign, f"nmn.{framework}.{layer} accepts {foreign}, Yat keywords of other layers"
    assert not unknown, f"nmn.{framework}.{layer} accepts {unknown}: neither Yat keywords nor listed host arguments"


# -- get_config / from_config ---------------------------------------------------------------------------------

_CONFIG_BUILDS = {
    "YatNMN": lambda ns, fw: ns.YatNMN(3, in_features=4) if fw == "mlx" else ns.YatNMN(features=3),
    "YatConv2D": lambda ns, fw: ns.YatConv2D(3, 3, strides=2, padding="same", use_bias=False),
    "YatConvTranspose1D": lambda ns, fw: ns.YatConvTranspose1D(3, 2, strides=2, constant_alpha=True),
    "MultiHeadYatAttention": lambda ns, fw: ns.MultiHeadYatAttention(8, 2, causal=True),
    "RotaryYatAttention": lambda ns, fw: ns.RotaryYatAttention(8, 2, max_seq_len=16),
    "YatEmbed": lambda ns, fw: ns.YatEmbed(10, 4, epsilon=1e-3),
}


def _plain(value):
    """Config values compared as plain JSON (tuples and lists alike)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_CONFIG_GAPS = {
    ("mlx", "MultiHeadYatAttention"): "nmn.mlx attention has get_config but no from_config (nmn/mlx/attention.py)",
    ("mlx", "RotaryYatAttention"): "nmn.mlx attention has get_config but no from_config (nmn/mlx/attention.py)",
}


@pytest.mark.parametrize(
    ("framework", "layer"),
    [
        pytest.param(f, layer, id=f"{f}-{layer}", marks=_gap(_CONFIG_GAPS, (f, layer)))
        for f in ("keras", "mlx")
        for layer in sorted(_CONFIG_BUILDS)
    ],
)
def test_get_config_round_trips_through_from_config(framework, layer):
    ns = _namespace(framework)
    original = _CONFIG_BUILDS[layer](ns, framework)
    config = original.get_config()
    rebuilt = type(original).from_config(config)
    assert type(rebuilt) is type(original)
    assert _plain(rebuilt.get_config()) == _plain(config), f"nmn.{framework}.{layer}: config changed in a round trip"


def test_mlx_get_config_keys_are_constructor_keywords():
    ns = _namespace("mlx")
    for layer, build in _CONFIG_BUILDS.items():
        config = build(ns, "mlx").get_config()
        rejected = sorted(set(config) - _keywords(getattr(ns, layer)))
        assert not rejected, f"nmn.mlx.{layer}.get_config() returns {rejected}, which its constructor rejects"


def test_mlx_rebuilt_layer_computes_with_the_same_weights():
    ns = _namespace("mlx")
    mx = pytest.importorskip("mlx.core")
    layer = ns.YatNMN(3, in_features=4, constant_alpha=True)
    twin = ns.YatNMN.from_config(layer.get_config())
    twin.update(layer.parameters())
    x = mx.array(np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32))
    np.testing.assert_array_equal(np.array(layer(x)), np.array(twin(x)))


@pytest.mark.xfail(
    strict=False,
    reason="nmn.tf layers are tf.Modules without get_config/from_config (issue 15.2); "
    "their config travels only as the neutral spec (nmn.tf.to_spec/from_spec)",
)
def test_tf_layers_offer_get_config():
    ns = _namespace("tf")
    layer = ns.YatNMN(features=3)
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


_EMBED_BUILDS = {
    "torch": lambda ns, **kw: ns.YatEmbed(6, 4, **kw),
    "nnx": lambda ns, **kw: ns.YatEmbed(6, 4, rngs=importlib.import_module("flax.nnx").Rngs(0), **kw),
    "keras": lambda ns, **kw: ns.YatEmbed(6, 4, **kw),
    "tf": lambda ns, **kw: ns.YatEmbed(6, 4, **kw),
    "mlx": lambda ns, **kw: ns.YatEmbed(6, 4, **kw),
}


def _embedding_table(framework, layer):
    if framework == "keras":
        layer.build()
    value = layer.weight.detach() if framework == "torch" else layer.embedding
    value = value[...] if framework == "nnx" else value
    return np.asarray(value, np.float64)


@pytest.mark.parametrize("framework", sorted(_EMBED_BUILDS))
def test_embed_refuses_learnable_epsilon_saying_why(framework):
    ns = _namespace(framework)
    with pytest.raises(
        TypeError, match=r"YatEmbed: learnable_epsilon= \(nmn 0.3\) is not supported: .*epsilon=<float>"
    ):
        _EMBED_BUILDS[framework](ns, learnable_epsilon=True)


@pytest.mark.parametrize("framework", sorted(_EMBED_BUILDS))
def test_embed_weight_normalized_gives_unit_rows_at_init(framework):
    ns = _namespace(framework)
    table = _embedding_table(framework, _EMBED_BUILDS[framework](ns, weight_normalized=True))
    np.testing.assert_allclose(np.linalg.norm(table, axis=-1), 1.0, rtol=1e-5)
    plain = _embedding_table(framework, _EMBED_BUILDS[framework](ns))
    assert np.max(np.abs(np.linalg.norm(plain, axis=-1) - 1.0)) > 1e-3, "rows are unit length without the option"


def test_linen_embed_weight_normalized_gives_unit_rows_at_init():
    ns = _namespace("linen")
    jax = pytest.importorskip("jax")
    module = ns.YatEmbed(6, 4, weight_normalized=True)
    variables = module.init(jax.random.key(0), np.array([1, 2]))
    table = np.asarray(variables["params"]["embedding"], np.float64)
    np.testing.assert_allclose(np.linalg.norm(table, axis=-1), 1.0, rtol=1e-5)
