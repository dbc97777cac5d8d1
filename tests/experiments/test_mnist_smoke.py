"""Smoke test of ``scripts/mnist_parity.py``: one short epoch per framework (Keras on this process's backend).

Data: scikit-learn's bundled 8x8 digits upsampled to 28x28 (no network), or, when ``NMN_MNIST`` names an
mnist.npz-style file, the first 3,000 / 1,000 MNIST images. Each framework: the parameter count is 235,148,
the test loss falls after one epoch, and the exported ONNX file scores the same accuracy in onnxruntime. A
framework that is not installed is a skip that names the extra to install. The smoke run uses a larger
learning rate and smaller batches than the experiment (3e-3, 32) so that one epoch of 1,500 images moves.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from _mnist import FRAMEWORKS, RUN_NAMES, common, framework_module, run_name

HP = common.HParams(epochs=1, batch_size=32, lr=3e-3, seed=0)
LIBRARIES = {
    "torch": "torch",
    "nnx": "flax.nnx",
    "linen": "flax.linen",
    "keras": "keras",
    "tf": "tensorflow",
    "mlx": "mlx.core",
}


@pytest.fixture(scope="module")
def data():
    path = os.environ.get(common.ENV_DATA)
    if path and Path(path).is_file():
        return common.limit(common.load_mnist(path), 3000, 1000)
    return common.load_digits_28()


def _module(framework):
    pytest.importorskip(LIBRARIES[framework], reason=f"{framework} is not installed (pip install 'nmn[all]>=1.0')")
    return framework_module(framework)


@pytest.fixture(scope="module", params=FRAMEWORKS)
def trained(request, data):
    """One epoch of the experiment's model in ``framework``, with the test loss before and after."""
    framework = request.param
    mod = _module(framework)
    trainer = mod.Trainer(HP)
    before = common.metrics(trainer.logits(data["x_test"], 256), data["y_test"])
    history = common.train(trainer, data, HP, run_name(framework), progress=False, log=lambda msg: None)
    logits = trainer.logits(data["x_test"], 256)
    return {"framework": framework, "trainer": trainer, "before": before, "history": history, "logits": logits}


def test_train_one_epoch(trained, data):
    trainer, history = trained["trainer"], trained["history"]
    assert trainer.param_count() == common.EXPECTED_PARAMS == 235_148
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    after = history[0]["test_loss"]
    assert after < trained["before"]["loss"] - 0.5, (trained["before"]["loss"], after)
    assert history[0]["test_accuracy"] > 0.5
    # the history's test metrics come from the whole test set, the last batch partial
    assert common.metrics(trained["logits"], data["y_test"])["n"] == len(data["y_test"])


def test_onnx_matches_framework(trained, data, tmp_path):
    framework, trainer = trained["framework"], trained["trainer"]
    path = tmp_path / f"{framework}.onnx"
    trainer.export(path, data["x_test"][:2])
    assert common.onnx_param_count(path) == common.EXPECTED_PARAMS
    ort = common.compare(common.onnx_logits(path, data["x_test"]), trained["logits"], data["y_test"])
    framework_correct = common.metrics(trained["logits"], data["y_test"])["correct"]
    assert ort["correct"] == framework_correct
    assert ort["disagreements"] == 0
    assert ort["max_rel_logit_diff"] < 1e-4


@pytest.fixture(scope="module")
def torch_file(tmp_path_factory, data):
    mod = _module("torch")
    path = tmp_path_factory.mktemp("mnist") / "torch.onnx"
    mod.Trainer(HP).export(path, data["x_test"][:2])
    return path


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_load_into_framework(framework, torch_file, data):
    """The exported file loads into every framework and computes what onnxruntime computes."""
    mod = _module(framework)
    logits = mod.load_logits(torch_file, data["x_test"], 256)
    cmp = common.compare(logits, common.onnx_logits(torch_file, data["x_test"]), data["y_test"])
    assert cmp["disagreements"] == 0
    assert cmp["max_rel_logit_diff"] < 1e-4


def test_missing_data_is_a_clear_error(monkeypatch, capsys):
    import mnist_parity

    monkeypatch.delenv(common.ENV_DATA, raising=False)
    assert mnist_parity.main(["--framework", "torch", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and common.ENV_DATA in err and "mnist.npz" in err
    assert mnist_parity.main(["--framework", "torch", "--data", "/nonexistent/mnist.npz"]) == 2


def test_summary_and_plot(tmp_path):
    import argparse

    import mnist_parity

    receipts = {}
    for i, name in enumerate(RUN_NAMES[:3]):
        hist = [
            {
                "epoch": e,
                "train_loss": 1.0 / (e + 1 + i),
                "test_loss": 0.2,
                "test_accuracy": 0.95,
                "seconds": 1.0,
                "eval_seconds": 0.1,
            }
            for e in range(3)
        ]
        receipts[name] = {
            "label": name,
            "params": common.EXPECTED_PARAMS,
            "history": hist,
            "final": {
                "test_accuracy": 0.95,
                "test_loss": 0.2,
                "train_seconds_total": 3.0,
                "seconds_per_epoch": 1.0,
                "seconds_per_epoch_after_first": 1.0,
            },
            "machine": common.machine(),
            "data": {"path": "mnist.npz", "n_train": 60000, "n_test": 10000},
            "onnx": {
                "status": "ok",
                "onnxruntime": {"accuracy": 0.95, "agreement": 1.0, "disagreements": 0},
                "load_into": {t: {"status": "ok", "accuracy": 0.95, "disagreements": 0} for t in RUN_NAMES},
            },
        }
    args = argparse.Namespace(lr=3e-4, batch_size=128, epochs=3, seed=0)
    summary = mnist_parity.write_summary(tmp_path, receipts, {"mlx": "boom"}, args)
    text = summary.read_text()
    assert "235,148" in text and "95.00 %" in text and "mlx training run failed" in text
    png = mnist_parity.write_plot(tmp_path, receipts)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(receipts)


@pytest.fixture(scope="module")
def shared_reference(data):
    mod = _module("torch")
    return mod.Trainer(HP, init=common.shared_init(HP.seed)).logits(data["x_test"], 256)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_shared_init_gives_the_same_model(framework, shared_reference, data):
    """``--init shared`` loads the same weights everywhere: every framework computes torch's logits."""
    mod = _module(framework)
    trainer = mod.Trainer(HP, init=common.shared_init(HP.seed))
    assert trainer.param_count() == common.EXPECTED_PARAMS
    cmp = common.compare(trainer.logits(data["x_test"], 256), shared_reference, data["y_test"])
    assert cmp["max_rel_logit_diff"] < 1e-5, cmp
    assert cmp["disagreements"] == 0
