"""nmn 0.3 keywords that are deliberately not carried over raise an error that says why, in every framework.

The oracle is the refusal table in ``nmn.core.names`` (``REFUSED_EVERYWHERE`` and ``REFUSED_KEYWORDS``, written
by hand with the reason and what to use instead): building each layer with such a keyword must raise a
``TypeError`` naming the layer, the keyword, "nmn 0.3" and the table's reason; a keyword no version ever had must
still be an error naming the layer (nothing is swallowed). Linen modules are dataclasses, which reject unknown
fields themselves (Python's own error), so Linen is not in this table.
"""

from __future__ import annotations

import importlib

import pytest

from nmn.core import names

_HOST_MODULE = {"torch": "torch", "nnx": "flax.nnx", "keras": "keras", "tf": "tensorflow", "mlx": "mlx.core"}


def _builders(fw):
    """``{layer: build(**extra)}`` for the layers whose constructors check nmn 0.3 keywords."""
    ns = importlib.import_module(f"nmn.{fw}")
    if fw == "torch":
        return {
            "YatNMN": lambda **kw: ns.YatNMN(4, 3, **kw),
            "YatConv2D": lambda **kw: ns.YatConv2D(3, 4, 3, **kw),
            "YatConvTranspose2D": lambda **kw: ns.YatConvTranspose2D(3, 4, 3, **kw),
            "MultiHeadYatAttention": lambda **kw: ns.MultiHeadYatAttention(8, 2, **kw),
            "RotaryYatAttention": lambda **kw: ns.RotaryYatAttention(8, 2, **kw),
        }
    if fw == "nnx":
        from flax import nnx

        return {
            "YatNMN": lambda **kw: ns.YatNMN(4, 3, rngs=nnx.Rngs(0), **kw),
            "YatConv2D": lambda **kw: ns.YatConv2D(3, 4, (3, 3), rngs=nnx.Rngs(0), **kw),
            "YatConvTranspose2D": lambda **kw: ns.YatConvTranspose2D(3, 4, (3, 3), rngs=nnx.Rngs(0), **kw),
            "MultiHeadYatAttention": lambda **kw: ns.MultiHeadYatAttention(
                num_heads=2, in_features=8, rngs=nnx.Rngs(0), **kw
            ),
            "RotaryYatAttention": lambda **kw: ns.RotaryYatAttention(
                num_heads=2, in_features=8, rngs=nnx.Rngs(0), **kw
            ),
        }
    if fw in ("keras", "tf"):
        return {
            "YatNMN": lambda **kw: ns.YatNMN(3, **kw),
            "YatConv2D": lambda **kw: ns.YatConv2D(4, 3, **kw),
            "YatConvTranspose2D": lambda **kw: ns.YatConvTranspose2D(4, 3, **kw),
            "MultiHeadYatAttention": lambda **kw: ns.MultiHeadYatAttention(8, 2, **kw),
            "RotaryYatAttention": lambda **kw: ns.RotaryYatAttention(8, 2, **kw),
        }
    return {
        "YatNMN": lambda **kw: ns.YatNMN(3, **kw),
        "YatConv2D": lambda **kw: ns.YatConv2D(4, 3, **kw),
        "YatConvTranspose2D": lambda **kw: ns.YatConvTranspose2D(4, 3, **kw),
        "MultiHeadYatAttention": lambda **kw: ns.MultiHeadYatAttention(8, 2, **kw),
        "RotaryYatAttention": lambda **kw: ns.RotaryYatAttention(8, 2, **kw),
    }


def _refused(layer):
    return {**names.REFUSED_EVERYWHERE, **names.REFUSED_KEYWORDS.get(layer, {})}


_LAYERS = ("YatNMN", "YatConv2D", "YatConvTranspose2D", "MultiHeadYatAttention", "RotaryYatAttention")


@pytest.mark.parametrize("layer", _LAYERS)
@pytest.mark.parametrize("framework", tuple(_HOST_MODULE))
def test_refused_keywords_say_why(framework, layer):
    pytest.importorskip(_HOST_MODULE[framework], reason=f"{framework} is not installed")
    build = _builders(framework)[layer]
    accepted = set(names.YAT_KEYWORDS[layer]) | set(names.HOST_SIZE_ARGS[framework])
    checked = 0
    for key, why in _refused(layer).items():
        if key in accepted:
            continue  # a keyword this layer carries over (e.g. learnable_epsilon on the tail layers)
        with pytest.raises(TypeError) as err:
            build(**{key: True})
        text = str(err.value)
        assert layer in text and f"{key}=" in text and "nmn 0.3" in text and why in text, text
        checked += 1
    assert checked, f"no refused keyword checked for {framework} {layer}"


@pytest.mark.parametrize("layer", _LAYERS)
@pytest.mark.parametrize("framework", tuple(_HOST_MODULE))
def test_unknown_keywords_are_not_swallowed(framework, layer):
    pytest.importorskip(_HOST_MODULE[framework], reason=f"{framework} is not installed")
    with pytest.raises((TypeError, ValueError)) as err:
        _builders(framework)[layer](colour_of_the_sky=1)
    assert "colour_of_the_sky" in str(err.value), str(err.value)


# ---- public names: nmn 0.3 names that are deliberately not carried over (nmn.core.names.REFUSED_NAMES) ----

_PLANNED = ("maclaurin_", "radial_", "yat_tp_", "create_maclaurin_", "create_radial_", "create_yat_tp_")
_PLANNED_LINEN = ("linear_attention", "spherical_kappa")  # the MAY / RAY linear readout and exact kernel


def _old_names(framework):
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).resolve().parents[1] / "data" / "v03" / "api_0_3_5.json").read_text())
    return data[framework]["names"]


@pytest.mark.parametrize("framework", names.FRAMEWORKS)
def test_refused_names_say_why(framework):
    from tests.frameworks import nmn_module

    ns = nmn_module(framework)
    for name, why in names.REFUSED_NAMES[framework].items():
        assert name not in ns.__all__ and name not in dir(ns), f"nmn.{framework}.{name} is refused but defined"
        with pytest.raises(AttributeError) as err:
            getattr(ns, name)
        text = str(err.value)
        assert f"nmn.{framework}.{name}" in text and "nmn 0.3" in text and why in text, text
        assert not hasattr(ns, name)
    with pytest.raises(AttributeError, match=rf"module 'nmn.{framework}' has no attribute 'colour_of_the_sky'"):
        ns.colour_of_the_sky  # noqa: B018 - a name no version had: Python's plain error


@pytest.mark.parametrize("framework", names.FRAMEWORKS)
def test_every_old_name_is_exported_refused_or_planned(framework):
    """The oracle is nmn 0.3.5's own name list (``tests/data/v03/api_0_3_5.json``, read from the old package)."""
    from tests.frameworks import nmn_module

    ns = nmn_module(framework)
    planned = [n for n in _old_names(framework) if n.startswith(_PLANNED) or n in _PLANNED_LINEN]
    refused = names.REFUSED_NAMES[framework]
    lost = [n for n in _old_names(framework) if not hasattr(ns, n) and n not in refused and n not in planned]
    assert not lost, f"nmn.{framework}: nmn 0.3.5 names neither exported, refused saying why, nor planned: {lost}"
    stale = sorted(set(refused) - set(_old_names(framework)))
    assert not stale, f"nmn.core.names.REFUSED_NAMES[{framework!r}] lists names nmn 0.3.5 never had: {stale}"
    assert not set(refused) & set(planned), "planned attentions (MAY / RAY / tensor-product) must not be refused"


def test_refusal_table_frameworks():
    assert tuple(names.REFUSED_NAMES) == names.FRAMEWORKS
    with pytest.raises(ValueError, match="framework must be one of"):
        names.module_getattr("jax")
