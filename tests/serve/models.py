"""Small ONNX models built in the test run, and a real server in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]
OPSET = [helper.make_opsetid("", 18)]


def make_mlp() -> onnx.ModelProto:
    """y = Relu(x @ W + b), x: [N, 4] float -> y: [N, 3] float."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[w, b],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def make_pair() -> onnx.ModelProto:
    """Two inputs (float a, int64 k; both [N, 2]), two outputs: sum = a + k, neg = -a."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["a", "kf"], ["sum"]),
            helper.make_node("Neg", ["a"], ["neg"]),
        ],
        "pair",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("k", TensorProto.INT64, ["N", 2]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("neg", TensorProto.FLOAT, ["N", 2]),
        ],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def square_function() -> onnx.FunctionProto:
    return helper.make_function("nmn", "Square", ["X"], ["Y"], [helper.make_node("Mul", ["X", "X"], ["Y"])], OPSET)


def make_square(with_function: bool = True) -> onnx.ModelProto:
    """y = nmn.Square(x): the op is a model-local function carried in the file."""
    graph = helper.make_graph(
        [helper.make_node("Square", ["x"], ["y"], domain="nmn")],
        "square",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    return helper.make_model(
        graph,
        opset_imports=OPSET + [helper.make_opsetid("nmn", 1)],
        functions=[square_function()] if with_function else [],
    )


def make_fixed() -> onnx.ModelProto:
    """Fixed shape [2, 3] float -> Relu."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    return helper.make_model(graph, opset_imports=OPSET)


BUILDERS = {"mlp": make_mlp, "pair": make_pair, "square": make_square, "fixed": make_fixed}


def reference(path: Path, feeds: dict) -> dict:
    """Answer from onnxruntime in this process (the ground truth)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


# --------------------------------------------------------------------- subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class ServerProcess:
    """``python -m nmn.serve serve PATH`` on 127.0.0.1 and a free port."""

    def __init__(self, path: Path, *extra: str, startup_timeout: float = 300.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nmn.serve",
                "serve",
                str(path),
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *extra,
            ],
            cwd=str(REPO_ROOT),
            env=subprocess_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        import httpx

        deadline = time.monotonic() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                out = self.output()
                self.stop()
                raise RuntimeError(f"server did not become ready:\n{out}")
            time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode
