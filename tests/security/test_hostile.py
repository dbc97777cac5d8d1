"""Every hostile file of tests/security/hostile.py is refused by every entry point, with one line that names the
file and the rule or bound; the good files load everywhere and agree with onnxruntime.

Entry points: ``nmn check``, ``nmn.interchange.load_model_safely``, the repository loader of ``nmn serve`` (a
folder holding the hostile file and a good one serves the good one and lists the other as UNAVAILABLE), and
``nmn.interchange.load`` in each of the six frameworks.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

from nmn.interchange import FRAMEWORKS
from tests.security.hostile import GOOD, KINDS, dense_model

_FRAMEWORK_PACKAGES = {
    "torch": "torch",
    "nnx": "flax.nnx",
    "linen": "flax.linen",
    "keras": "keras",
    "tf": "tensorflow",
    "mlx": "mlx.core",
}


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """kind -> path of its file; each kind in its own folder, next to a copy of a good file ``good.onnx``."""
    root = tmp_path_factory.mktemp("hostile")
    good_bytes = dense_model().SerializeToString()
    built = {}

    def get(kind: str) -> Path:
        if kind not in built:
            folder = root / f"kind{len(built)}"
            folder.mkdir()
            builder = KINDS[kind][0] if kind in KINDS else GOOD[kind]
            built[kind] = builder(folder)
            if built[kind].name != "good.onnx":
                (folder / "good.onnx").write_bytes(good_bytes)
        return built[kind]

    return get


def _one_line_naming(message: str, path: Path, pattern: str) -> None:
    message = message.strip()
    assert "\n" not in message, f"refusal is not one line: {message!r}"
    assert "Traceback" not in message, message
    assert str(path) in message or path.name in message, f"refusal does not name the file: {message!r}"
    assert re.search(pattern, message), f"refusal {message!r} does not match {pattern!r}"


def _is_nmn_error(err: BaseException) -> bool:
    return type(err).__module__.startswith("nmn.") and isinstance(err, (ValueError, OSError))


def _cases(entry: str):
    return [pytest.param(kind, id=kind) for kind, (_, _, where) in KINDS.items() if entry in where]


# ------------------------------------------------------------------------------------------- nmn check


@pytest.mark.parametrize("kind", _cases("check"))
def test_check_refuses(kind, files, capsys):
    from nmn.cli import main

    path = files(kind)
    # generous for files that end (a loaded machine); the endless Loop only has to outlast its limit
    seconds = "5" if kind == "Loop with a huge trip count" else "30"
    code = main(["check", str(path), "--check-seconds", seconds])
    err = capsys.readouterr().err
    assert code != 0
    _one_line_naming(err.removeprefix("nmn check: "), path, KINDS[kind][1])


# ------------------------------------------------------------------------------------------ safe loader


@pytest.mark.parametrize("kind", _cases("safe"))
def test_safe_loader_refuses(kind, files):
    from nmn.interchange import load_model_safely

    path = files(kind)
    with pytest.raises(Exception) as info:
        load_model_safely(path)
    assert _is_nmn_error(info.value), f"{type(info.value).__module__}.{type(info.value).__name__}: {info.value}"
    _one_line_naming(str(info.value), path, KINDS[kind][1])


@pytest.mark.parametrize("kind", [k for k, (_, _, where) in KINDS.items() if "safe" not in where])
def test_safe_loader_accepts_files_that_are_only_dangerous_to_run(kind, files):
    """A Loop with a huge trip count is a valid file; only running it is bounded (by ``nmn check``)."""
    from nmn.interchange import load_model_safely

    load_model_safely(files(kind))


# -------------------------------------------------------------------------------------------- serve


@pytest.mark.parametrize("kind", _cases("serve"))
def test_serve_folder_serves_the_good_file_and_lists_the_refused_one(kind, files):
    from nmn.serve.repository import Repository

    path = files(kind)
    repo = Repository(path.parent)
    try:
        assert sorted(repo.models) == ["good"]
        assert list(repo.refused) == [path.stem]
        _one_line_naming(repo.refused[path.stem], path, KINDS[kind][1])
        index = {row["name"]: row for row in repo.index()}
        assert index["good"]["state"] == "READY"
        assert index[path.stem]["state"] == "UNAVAILABLE" and index[path.stem]["reason"] == repo.refused[path.stem]
    finally:
        repo.close()


@pytest.mark.parametrize("kind", ["tampered nmn body", "manifest huge sizes", "external data .."])
def test_serve_strict_is_all_or_nothing(kind, files):
    from nmn.serve.repository import Repository

    path = files(kind)
    with pytest.raises(ValueError) as info:
        Repository(path.parent, strict=True)
    _one_line_naming(str(info.value), path, KINDS[kind][1])


def test_serve_refuses_a_symlink_leaving_the_folder(tmp_path):
    from nmn.serve.repository import Repository

    outside, folder = tmp_path / "outside", tmp_path / "served"
    outside.mkdir()
    folder.mkdir()
    (outside / "secret.onnx").write_bytes(dense_model().SerializeToString())
    (folder / "good.onnx").write_bytes(dense_model().SerializeToString())
    os.symlink(outside / "secret.onnx", folder / "leak.onnx")
    os.symlink("good.onnx", folder / "alias.onnx")  # a link that stays inside is fine
    repo = Repository(folder)
    try:
        assert sorted(repo.models) == ["alias", "good"]
        assert re.search(
            r"leak\.onnx.* is a symbolic link to .*secret\.onnx.*, outside the folder", repo.refused["leak"]
        )
    finally:
        repo.close()
    with pytest.raises(ValueError, match="outside the folder"):
        Repository(folder, strict=True)


def test_serve_index_endpoint_lists_the_refused_file(files):
    from starlette.testclient import TestClient

    from nmn.serve.app import create_app

    path = files("tampered nmn body")
    rows = TestClient(create_app(path.parent)).get("/v2/repository/index").json()
    by_name = {r["name"]: r for r in rows}
    assert by_name["good"]["state"] == "READY"
    assert by_name["m"]["state"] == "UNAVAILABLE" and "not the canonical body" in by_name["m"]["reason"]


# ----------------------------------------------------------------------------------- framework loaders


def _framework(fw: str):
    pytest.importorskip(_FRAMEWORK_PACKAGES[fw])
    return importlib.import_module("nmn.interchange")


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("kind", _cases("load"))
def test_every_framework_load_refuses(kind, fw, files):
    interchange = _framework(fw)
    path = files(kind)
    with pytest.raises(Exception) as info:
        interchange.load(str(path), fw)
    assert _is_nmn_error(info.value), f"{type(info.value).__module__}.{type(info.value).__name__}: {info.value}"
    _one_line_naming(str(info.value), path, KINDS[kind][1])


# ------------------------------------------------------------------------------------- no false refusals


@pytest.mark.parametrize("kind", list(GOOD))
def test_good_files_pass_check_safe_loader_and_serve(kind, files, capsys):
    from nmn.cli import main
    from nmn.interchange import load_model_safely
    from nmn.serve.repository import Repository

    path = files(kind)
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    load_model_safely(path)
    repo = Repository(path.parent)
    try:
        assert repo.refused == {} and path.stem in repo.models
    finally:
        repo.close()


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("kind", list(GOOD))
def test_good_files_load_in_every_framework_and_agree_with_onnxruntime(kind, fw, files, tmp_path):
    interchange = _framework(fw)
    path = files(kind)
    x = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    (expected,) = interchange.run_onnx(interchange.load_model_safely(path), {"x": x})
    loaded = interchange.load(str(path), fw)
    (got,) = interchange.predict(loaded, fw, [x])
    scale = float(np.max(np.abs(expected)))
    assert float(np.max(np.abs(got - expected))) <= 1e-4 * max(scale, 1e-6)


def test_limits_are_raisable(files):
    """The node bound names its option; raising it lets the 200,000-node file through the static count."""
    import onnx

    from nmn.interchange import load_model_safely
    from nmn.interchange.safe_load import Limits, check_limits

    check_limits(onnx.load(files("200,000 nodes")), Limits(max_nodes=300_000))
    with pytest.raises(ValueError, match=r"max_nodes=10 \(raise it with Limits\(max_nodes=\.\.\.\) or --max-nodes\)"):
        load_model_safely(files("good"), limits=Limits(max_nodes=10))
