"""Golden files: every committed file in ``models/golden`` still validates, runs in onnxruntime with the stored
outputs, and loads into every framework with the same numbers and bit-identical weights on re-export.

The files are written by ``scripts/make_golden.py``; a file written by an earlier version must keep loading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.interchange import matrix_util as mu

GOLDEN = Path(mu.ROOT) / "models" / "golden"
FILES = sorted(GOLDEN.glob("*.onnx"))
# (file stem or "*", framework or "*") -> reason for a known failure
KNOWN: dict[tuple[str, str], str] = {}


def _known(stem, fw):
    return KNOWN.get((stem, fw)) or KNOWN.get(("*", fw)) or KNOWN.get((stem, "*"))


def _case(path: Path):
    from nmn.interchange import load_model_safely

    proto = load_model_safely(path)
    data = np.load(path.with_suffix(".npz"))
    inputs = [data[f"input:{n}"] for n in mu.input_names(proto)]
    outputs = [data[f"output:{vi.name}"] for vi in proto.graph.output]
    return proto, inputs, outputs


def test_golden_files_exist_and_are_small():
    assert FILES, f"no golden files in {GOLDEN}; run scripts/make_golden.py"
    total = sum(p.stat().st_size for p in GOLDEN.iterdir() if p.is_file())
    assert total < 1_000_000, total
    for path in FILES:
        assert path.with_suffix(".npz").exists(), path


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_runs_in_onnxruntime(path):
    proto, inputs, outputs = _case(path)
    got = mu.run_onnx(proto, mu.feeds(proto, inputs))
    assert mu.worst_error(got, outputs) <= mu.RTOL


@pytest.mark.parametrize("fw", mu.FRAMEWORKS)
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_loads(path, fw):
    reason = mu.unavailable(fw)
    if reason:
        pytest.xfail(reason)
    why = _known(path.stem, fw)
    proto, inputs, outputs = _case(path)
    try:
        loaded = mu.load(fw, path)
        err = mu.worst_error(mu.predict(fw, loaded, inputs), outputs)
        assert err <= mu.RTOL, f"{fw} differs from the stored outputs by {err:.3g} x the output scale"
        problems = mu.weight_diff(proto, mu.export(fw, loaded, inputs))
        assert not problems, problems
    except Exception:
        if why:
            pytest.xfail(why)
        raise
    if why:
        pytest.fail(f"listed as a known failure but passes now: {why}")


def test_an_old_format_performer_file_is_kept():
    """``yat_performer.torch.onnx`` was written before the performer's ``degree``/``bias`` attributes: it is the
    loading test of such files (the rows above run it in onnxruntime and load it into every framework against its
    stored outputs), so it must not be regenerated. Its node has neither attribute and means degree 3, bias 0."""
    import onnx

    from nmn.interchange.reader import read_model

    path = GOLDEN / "yat_performer.torch.onnx"
    nodes = [n for n in onnx.load(path).graph.node if n.op_type == "YatPerformerMultiHeadAttention"]
    assert nodes and all({"degree", "bias"}.isdisjoint(a.name for a in n.attribute) for n in nodes)
    graph = read_model(str(path))
    performers = [s for s in graph.layers.values() if s.config.get("use_performer")]
    assert performers and all(s.config["performer_nmax"] == 3 for s in performers)
    assert all(s.config["performer_bias"] == 0.0 for s in performers)
