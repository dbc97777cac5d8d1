"""Third-party ONNX graphs for the loader tests, made here from random weights (nothing is downloaded).

Each graph is written by a framework's own exporter, not by nmn: torchvision ``resnet18`` and
``mobilenet_v3_small`` (``weights=None``), ``nn.TransformerEncoder`` (2 layers, d_model 64) and a small ViT-style
block, each through ``torch.onnx.export`` with ``dynamo=True`` and with the legacy ``dynamo=False``; and Keras
``MobileNetV2(weights=None, input_shape=(96, 96, 3))`` through ``model.export(format="onnx")`` on the TensorFlow
backend (tf2onnx) and on the torch backend (torch.onnx). Each file is written in its own process (the Keras
backend is fixed at import; torch's dynamo exporter aborts beside TensorFlow). Run as a script it writes one
file::

    KERAS_BACKEND=tensorflow python -m tests.thirdparty.graphs keras_mobilenetv2 out.onnx
    python -m tests.thirdparty.graphs resnet18 out.onnx dynamo
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_BATCH = 2
KERAS_SHAPE = (EXAMPLE_BATCH, 96, 96, 3)
SUBPROCESS_TIMEOUT = 900  # seconds; a Keras export takes about a minute on a quiet machine


UNAVAILABLE_EXIT = 3  # the export script's exit status when the exporter (or its framework) does not import


class ExporterUnavailable(RuntimeError):
    """The graph's exporter cannot run here (a framework or exporter package missing): the tests skip."""


@dataclass(frozen=True)
class Graph:
    """One third-party file: ``model`` x ``exporter``; ``shape`` is the example input (batch first)."""

    model: str
    exporter: str  # "dynamo", "legacy" (torch.onnx.export), "keras-tensorflow", "keras-torch"
    shape: tuple
    heavy: bool = False  # slow to make or to run in six frameworks: only with NMN_HEAVY_TESTS=1
    representative: str | None = None  # of a heavy graph, the one framework it runs in without NMN_HEAVY_TESTS

    @property
    def id(self) -> str:
        return f"{self.model}-{self.exporter}"


GRAPHS = (
    Graph("resnet18", "legacy", (EXAMPLE_BATCH, 3, 32, 32), heavy=True),
    Graph("resnet18", "dynamo", (EXAMPLE_BATCH, 3, 32, 32), heavy=True),
    Graph("mobilenet_v3_small", "legacy", (EXAMPLE_BATCH, 3, 32, 32), heavy=True),
    Graph("mobilenet_v3_small", "dynamo", (EXAMPLE_BATCH, 3, 32, 32), heavy=True),
    Graph("transformer_encoder", "legacy", (EXAMPLE_BATCH, 6, 64)),
    Graph("transformer_encoder", "dynamo", (EXAMPLE_BATCH, 6, 64)),
    Graph("vit_block", "legacy", (EXAMPLE_BATCH, 3, 16, 16)),
    Graph("vit_block", "dynamo", (EXAMPLE_BATCH, 3, 16, 16)),
    Graph("keras_mobilenetv2", "keras-tensorflow", KERAS_SHAPE, heavy=True, representative="torch"),
    Graph("keras_mobilenetv2", "keras-torch", KERAS_SHAPE, heavy=True),
)


# ------------------------------------------------------------------------------------------------ torch models
@functools.cache
def torchvision_models():
    """``(resnet18, mobilenet_v3_small)`` constructors from torchvision.

    torchvision's package ``__init__`` loads its compiled operators, which fail beside a CPU-only torch built
    separately (``libc10_cuda.so`` missing); only the pure-Python model definitions are needed here, so when the
    package does not import, its ``torchvision``, ``torchvision.models`` and ``torchvision.ops`` packages are
    entered without running their ``__init__`` (the definitions import only what they use).
    """
    try:
        import torchvision.models as tvm

        return tvm.resnet18, tvm.mobilenet_v3_small
    except (ImportError, OSError, RuntimeError):
        pass
    for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[key]
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("torchvision is not installed")
    root = spec.submodule_search_locations[0]
    for pkg in ("torchvision", "torchvision.models", "torchvision.ops"):
        mod = types.ModuleType(pkg)
        mod.__path__ = [os.path.join(root, *pkg.split(".")[1:])]
        mod.__spec__ = importlib.machinery.ModuleSpec(pkg, None, is_package=True)
        mod.__spec__.submodule_search_locations = mod.__path__
        sys.modules[pkg] = mod
    resnet = importlib.import_module("torchvision.models.resnet")
    mobilenet = importlib.import_module("torchvision.models.mobilenetv3")
    return resnet.resnet18, mobilenet.mobilenet_v3_small


def _vit_block():
    import torch
    import torch.nn as nn

    class ViTBlock(nn.Module):
        """Patch embedding, one pre-norm encoder block (``nn.MultiheadAttention`` + GELU MLP), mean-pool head."""

        def __init__(self, dim=32, heads=4, patch=4, image=16, classes=5):
            super().__init__()
            self.patch = nn.Conv2d(3, dim, patch, stride=patch)
            self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2, dim) * 0.02)
            self.norm1 = nn.LayerNorm(dim)
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
            self.head = nn.Linear(dim, classes)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2) + self.pos
            h = self.norm1(t)
            t = t + self.attn(h, h, h, need_weights=False)[0]
            t = t + self.mlp(self.norm2(t))
            return self.head(t.mean(1))

    return ViTBlock()


def _transformer_encoder():
    import torch.nn as nn

    layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


def torch_model(name: str):
    import torch

    torch.manual_seed(0)
    if name in ("resnet18", "mobilenet_v3_small"):
        resnet18, mobilenet_v3_small = torchvision_models()
        model = {"resnet18": resnet18, "mobilenet_v3_small": mobilenet_v3_small}[name](weights=None)
    elif name == "transformer_encoder":
        model = _transformer_encoder()
    elif name == "vit_block":
        model = _vit_block()
    else:
        raise ValueError(f"unknown torch model {name!r}")
    model.eval()
    with torch.no_grad():  # random BatchNorm statistics, so that the running mean/var matter
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return model


def export_torch(graph: Graph, path: Path) -> Path:
    """Write ``graph`` with ``torch.onnx.export`` (one file, no external data; batch dimension symbolic)."""
    import torch

    model = torch_model(graph.model)
    x = torch.randn(*graph.shape, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if graph.exporter == "dynamo":
            torch.onnx.export(
                model,
                (x,),
                str(path),
                input_names=["x"],
                output_names=["y"],
                dynamo=True,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,
                verbose=False,
            )
        else:
            torch.onnx.export(
                model,
                (x,),
                str(path),
                input_names=["x"],
                output_names=["y"],
                dynamo=False,
                opset_version=17,
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            )
    return path


# ------------------------------------------------------------------------------------------------ keras
def export_keras(graph: Graph, path: Path) -> Path:
    """Write ``graph`` in a subprocess with ``KERAS_BACKEND`` set; fail with its output if it fails."""
    backend = graph.exporter.split("-", 1)[1]
    return _export_in_subprocess(graph, path, {"KERAS_BACKEND": backend})


def _export_in_subprocess(graph: Graph, path: Path, env: dict) -> Path:
    """Run this module as a script to write ``graph`` (a fresh process: torch's dynamo exporter aborts in a
    process that has imported TensorFlow, as a test session has, when it loads triton)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **env)
    cmd = [sys.executable, "-m", "tests.thirdparty.graphs", graph.model, str(path), graph.exporter]
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(
            f"{graph.id}: export timed out after {SUBPROCESS_TIMEOUT} s:\n{err.stdout}\n{err.stderr}"
        ) from err
    if done.returncode == UNAVAILABLE_EXIT:
        raise ExporterUnavailable(f"{graph.id}: exporter unavailable: {done.stdout.strip().splitlines()[-1:]}")
    if done.returncode != 0 or not path.exists():
        raise RuntimeError(f"{graph.id}: export failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}")
    return path


def _keras_main(model: str, path: str) -> None:
    import keras
    import numpy as np

    if model != "keras_mobilenetv2":
        raise SystemExit(f"unknown keras model {model!r}")
    keras.utils.set_random_seed(0)
    net = keras.applications.MobileNetV2(weights=None, input_shape=KERAS_SHAPE[1:], classes=10)
    rng = np.random.default_rng(0)
    for layer in net.layers:  # random BatchNorm statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.uniform(-0.2, 0.2, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape).astype("float32"))
    net(np.zeros(KERAS_SHAPE, "float32"))  # export needs a model that has been called
    net.export(path, format="onnx", verbose=False)


def make(graph: Graph, folder: Path) -> Path:
    path = Path(folder) / f"{graph.id}.onnx"
    if not path.exists():
        if graph.exporter.startswith("keras"):
            export_keras(graph, path)
        else:
            _export_in_subprocess(graph, path, {})
    return path


def _main(model: str, path: str, exporter: str = "keras") -> None:
    if exporter.startswith("keras"):
        _keras_main(model, path)
        return
    graph = next((g for g in GRAPHS if g.model == model and g.exporter == exporter), None)
    if graph is None:
        raise SystemExit(f"unknown graph {model!r} x {exporter!r}")
    export_torch(graph, Path(path))


if __name__ == "__main__":
    try:
        _main(*sys.argv[1:4])
    except ImportError as err:  # the framework or its ONNX exporter (tf2onnx, onnxscript) is not installed
        print(f"{type(err).__name__}: {err}", flush=True)
        sys.exit(UNAVAILABLE_EXIT)
