"""The ``nmn`` command: ``ops``, ``check`` on good and bad files (a one-line reason, never a traceback)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from onnx import helper

from nmn.cli import main
from nmn.core.schemas import FUNCTIONS
from tests.interchange.test_validate import _dense_model


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "nmn", *args], capture_output=True, text=True, timeout=120)


def test_ops_lists_every_function(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for name, schema in FUNCTIONS.items():
        assert f"{name}({', '.join(schema.inputs)})" in out


def test_check_good_file_with_given_inputs(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(_dense_model().SerializeToString())
    x = np.ones((4, 3), np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["check", str(path), "--input", str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out
    assert "valid nmn ONNX file" in out and "nmn::YatDense" in out and "shape [4, 2]" in out


def _bad_files(tmp_path):
    good = _dense_model()
    files = {}

    def write(name, model=None, data=None):
        p = tmp_path / f"{name}.onnx"
        p.write_bytes(data if data is not None else model.SerializeToString())
        files[name] = p

    m = type(good)()
    m.CopyFrom(good)
    del m.functions[:]
    write("missing_function", m)
    m = type(good)(); m.CopyFrom(good)
    next(n for n in m.graph.node if n.domain == "nmn").attribute.append(helper.make_attribute("bogus", 1))
    write("unknown_attribute", m)
    m = type(good)(); m.CopyFrom(good)
    node = next(n for n in m.graph.node if n.domain == "nmn")
    kept = [a for a in node.attribute if a.name != "spherical"]
    del node.attribute[:]
    node.attribute.extend(kept)
    write("missing_attribute", m)
    m = type(good)(); m.CopyFrom(good)
    next(o for o in m.opset_import if o.domain == "nmn").version = 7
    write("wrong_version", m)
    m = type(good)(); m.CopyFrom(good)
    m.opset_import.append(helper.make_opsetid("com.other", 1))
    next(n for n in m.graph.node if n.domain == "nmn").domain = "com.other"
    write("foreign_domain", m)
    write("truncated", data=good.SerializeToString()[: len(good.SerializeToString()) // 2])
    return files


EXPECTED = {
    "missing_function": "function",
    "unknown_attribute": "bogus",
    "missing_attribute": "spherical",
    "wrong_version": "7",
    "foreign_domain": "com.other",
    "truncated": "not a valid ONNX model",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_bad_file_one_line_no_traceback(tmp_path, name, capsys):
    path = _bad_files(tmp_path)[name]
    code = main(["check", str(path)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert EXPECTED[name] in err, err


def test_check_subprocess_exit_code(tmp_path):
    path = _bad_files(tmp_path)["truncated"]
    proc = run_cli("check", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
