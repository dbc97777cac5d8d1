"""The ``nmn`` command: ``ops``, ``check`` on good and bad files (a one-line reason, never a traceback); every
command works or names the extra it needs in one line; ``--help`` marks them; the install hint installs *this*
package."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from onnx import helper

from nmn.cli import main
from nmn.core.schemas import FUNCTIONS
from tests.interchange.test_validate import _dense_model

WAIT = 900  # seconds; generous, the machine may be loaded


def run_cli(*args, block=(), cwd=None, code="from nmn.cli import main\nsys.exit(main(sys.argv[1:]))"):
    """``python -m nmn ARGS`` (or ``code``) in a fresh interpreter; ``block`` names top-level modules made
    unimportable there (as if their package were not installed)."""
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = {sorted(block)!r}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, Block())
    """) + textwrap.dedent(code)
    try:
        return subprocess.run(
            [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=WAIT, cwd=cwd
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"nmn {' '.join(map(str, args))}: no answer after {WAIT} s:\n{err.stdout}\n{err.stderr}")


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
    m = type(good)()
    m.CopyFrom(good)
    next(n for n in m.graph.node if n.domain == "nmn").attribute.append(helper.make_attribute("bogus", 1))
    write("unknown_attribute", m)
    m = type(good)()
    m.CopyFrom(good)
    node = next(n for n in m.graph.node if n.domain == "nmn")
    kept = [a for a in node.attribute if a.name != "spherical"]
    del node.attribute[:]
    node.attribute.extend(kept)
    write("missing_attribute", m)
    m = type(good)()
    m.CopyFrom(good)
    next(o for o in m.opset_import if o.domain == "nmn").version = 7
    write("wrong_version", m)
    m = type(good)()
    m.CopyFrom(good)
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


SERVE_PACKAGES = ("starlette", "uvicorn", "httpx", "prometheus_client", "grpc")


def test_help_marks_what_needs_an_extra():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "[needs the serve extra]" in text and "[needs the target framework's extra]" in text, text
    assert 'pip install "nmn[EXTRA]>=1.0"' in text


@pytest.mark.parametrize("command", [["serve", "m.onnx"], ["predict", "http://127.0.0.1:1", "--input", "x.npy"]])
def test_serve_commands_without_the_serve_extra_name_it_in_one_line(tmp_path, command):
    """Without the serve extra, nmn serve / nmn predict died with ModuleNotFoundError tracebacks."""
    (tmp_path / "m.onnx").write_bytes(_dense_model().SerializeToString())
    np.save(tmp_path / "x.npy", np.ones((1, 3), np.float32))
    proc = run_cli(*command, block=SERVE_PACKAGES, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert 'needs the serve extra: pip install "nmn[serve]>=1.0"' in lines[0], lines[0]


@pytest.mark.parametrize("name", ["Client", "create_app"])
def test_serve_api_without_the_serve_extra_names_it(name):
    """``from nmn.serve import Client`` without the serve extra: an ImportError that names the extra's install."""
    code = f"""
        try:
            from nmn.serve import {name}
        except ImportError as err:
            print(err)
        else:
            print("imported")
    """
    proc = run_cli(block=SERVE_PACKAGES, code=code)
    assert proc.returncode == 0, proc.stderr
    assert f"nmn.serve.{name} needs " in proc.stdout and 'the serve extra: pip install "nmn[serve]>=1.0"' in proc.stdout
    assert "imported" not in proc.stdout, proc.stdout


def test_convert_without_the_framework_names_its_extra(tmp_path):
    (tmp_path / "m.onnx").write_bytes(_dense_model().SerializeToString())
    proc = run_cli("convert", "m.onnx", "--to", "tf", "--out", "saved", block=("tensorflow",), cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert 'pip install "nmn[tf]>=1.0"' in lines[0], lines[0]
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


@pytest.mark.parametrize("command", [["version"], ["info"], ["doctor"], ["ops"], []])
def test_every_plain_command_runs(command):
    proc = run_cli(*command)
    assert proc.returncode == 0 and proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr


def test_doctor_names_the_install_hint_for_a_missing_framework(monkeypatch, capsys):
    import nmn

    monkeypatch.setattr(nmn, "doctor", lambda: {"torch": None, "onnx": "1.0"})
    assert main(["doctor"]) == 0
    assert 'torch  not installed   (pip install "nmn[torch]>=1.0")' in capsys.readouterr().out


def test_the_install_hint_resolves_to_this_package():
    """``pip install "nmn[serve]>=1.0"`` keeps the nmn installed here (this checkout, 1.0) and adds the extra; the
    older PyPI package (0.3.x) cannot satisfy it. Checked offline with pip's resolver (--dry-run --no-index)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "--disable-pip-version-check",
            "nmn[serve]>=1.0",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Requirement already satisfied: nmn[serve]>=1.0" in proc.stdout, proc.stdout
    assert "Would install" not in proc.stdout, proc.stdout


# ---------------------------------------------------------------------------------------- progress of nmn check
class _Terminal(io.StringIO):
    """A text stream that says it is a terminal (as stderr is in an interactive shell)."""

    def isatty(self):
        return True


def _dense_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(_dense_model().SerializeToString())
    return str(path)


def test_check_progress_on_request_goes_to_stderr_only(tmp_path, capsys):
    path = _dense_file(tmp_path)
    assert main(["check", path]) == 0
    plain = capsys.readouterr()
    assert plain.err == ""  # off a terminal: no progress line by default
    assert main(["check", path, "--progress"]) == 0
    shown = capsys.readouterr()
    assert shown.out == plain.out  # the summary is unchanged
    for step in ("nmn check: load and validate", "nmn check: make inputs", "nmn check: run in onnxruntime"):
        assert step in shown.err, shown.err
    assert "\n" not in shown.err and shown.err.endswith("\r"), repr(shown.err)  # redrawn in place, then cleared


@pytest.mark.parametrize("flags, shown", [([], True), (["--no-progress"], False), (["--progress"], True)])
def test_check_progress_on_a_terminal_unless_no_progress(tmp_path, monkeypatch, flags, shown):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["check", _dense_file(tmp_path), *flags]) == 0
    assert ("load and validate" in terminal.getvalue()) is shown, repr(terminal.getvalue())


def test_check_refusal_with_progress_is_one_clean_line(tmp_path, capsys):
    """The progress line is cleared before the refusal is printed: a terminal shows only the one-line reason."""
    path = _bad_files(tmp_path)["missing_function"]
    assert main(["check", str(path), "--progress"]) == 2
    err = capsys.readouterr().err
    assert "load and validate" in err
    last = err.rsplit("\r", 1)[-1]
    assert err.count("\n") == 1 and last.startswith("nmn check: ") and "function" in last, repr(err)


def test_progress_line_keeps_moving_during_one_long_step(monkeypatch):
    """While one step runs (a big file's validation, the bounded run), the line is redrawn so its clock moves."""
    from nmn.cli import Progress

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(Progress, "TICK_S", 0.01)
    with Progress("nmn test", ["long step"]) as progress:
        progress.step(0)
        drawn = terminal.getvalue().count("\r")
        deadline = time.monotonic() + WAIT  # generous: only waits for the ticker thread to be scheduled
        while terminal.getvalue().count("\r") < drawn + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert terminal.getvalue().count("\r") >= drawn + 3, repr(terminal.getvalue())
    closed = terminal.getvalue()
    time.sleep(0.05)
    assert terminal.getvalue() == closed  # nothing is drawn after close


def test_convert_passes_the_progress_choice_through(monkeypatch):
    import nmn.interchange.convert as convert_module

    seen = []
    monkeypatch.setattr(convert_module, "convert", lambda *a, **kw: seen.append(kw["progress"]) or 0)
    for flags, expected in (([], None), (["--progress"], True), (["--no-progress"], False)):
        assert main(["convert", "m.onnx", "--to", "torch", "--out", "m.pt", *flags]) == 0
        assert seen[-1] is expected


def test_check_zero_bound_is_refused_not_ignored(tmp_path, capsys):
    """``--max-nodes 0`` used to be dropped silently (falsy) and the default bound used instead."""
    assert main(["check", _dense_file(tmp_path), "--max-nodes", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nmn check: Limits.max_nodes: expected a positive number, got 0", err
