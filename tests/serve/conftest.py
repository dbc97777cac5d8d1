"""Fixtures for the serve tests: model folder, in-process reference, real servers."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from tests.serve.models import BUILDERS, ServerProcess, reference


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A folder with mlp.onnx, pair.onnx, square.onnx and fixed.onnx."""
    folder = tmp_path_factory.mktemp("models")
    for name, build in BUILDERS.items():
        onnx.save(build(), str(folder / f"{name}.onnx"))
    return folder


@pytest.fixture(scope="session")
def ort_reference():
    """``ort_reference(path, feeds) -> {output: array}`` computed in-process."""
    return reference


@pytest.fixture(scope="module")
def start_server():
    """``start_server(path, *cli_args) -> ServerProcess``; all are stopped at module end."""
    started: list[ServerProcess] = []

    def start(path, *extra: str) -> ServerProcess:
        server = ServerProcess(path, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        assert server.proc.poll() is not None
