"""Framework-free pieces of the MNIST parity experiment: data, hyperparameters, metrics, receipts, onnxruntime."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

EXPECTED_PARAMS = 235_148  # 784*256+256+1 + 256*128+128+1 + 128*10+10 (kernel, bias, alpha per Yat layer)
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
HIDDEN = (256, 128)
ENV_DATA = "NMN_MNIST"


@dataclasses.dataclass(frozen=True)
class HParams:
    """The hyperparameters, pinned identically in every framework (AdamW with bias correction, decay on all
    parameters, decoupled: ``p -= lr * (wd * p + m_hat / (sqrt(v_hat) + eps))``)."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    seed: int = 0

    def optimizer_json(self) -> dict:
        return {
            "name": "AdamW",
            "lr": self.lr,
            "betas": [self.beta1, self.beta2],
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "bias_correction": True,
            "decay_applies_to": "all parameters",
        }


# ------------------------------------------------------------------------------------------------------- data
class DataError(RuntimeError):
    pass


def resolve_data_path(path: str | None) -> Path:
    """``--data`` if given, else ``$NMN_MNIST``; a clear error when neither names a readable file."""
    chosen = path or os.environ.get(ENV_DATA)
    if not chosen:
        raise DataError(
            "no MNIST data given: pass --data PATH or set the environment variable "
            f"{ENV_DATA} to an mnist.npz-style file (numpy .npz with uint8 x_train (60000, 28, 28), "
            "y_train, x_test (10000, 28, 28), y_test, as keras.datasets.mnist ships it)"
        )
    p = Path(chosen).expanduser()
    if not p.is_file():
        raise DataError(
            f"MNIST data file {str(p)!r} does not exist; expected an mnist.npz-style file "
            "(x_train, y_train, x_test, y_test)"
        )
    return p


def load_mnist(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load an mnist.npz-style file; images scaled to [0, 1] float32, labels int32."""
    with np.load(path) as f:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
        if missing:
            raise DataError(
                f"{path}: missing arrays {missing}; an mnist.npz-style file has x_train, y_train, "
                f"x_test, y_test (found {f.files})"
            )
        data = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    for split in ("train", "test"):
        x = data[f"x_{split}"]
        if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
            raise DataError(f"{path}: x_{split} has shape {x.shape}; expected (N, 28, 28)")
        scale = 255.0 if x.dtype == np.uint8 or x.max() > 1.0 else 1.0
        data[f"x_{split}"] = x.astype(np.float32) / np.float32(scale)
        data[f"y_{split}"] = data[f"y_{split}"].astype(np.int32).reshape(-1)
    return data


def load_digits_28(n_test: int = 297) -> dict[str, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1,797 images, no network) as 28x28 images in [0, 1]:
    each pixel repeated 3x3 (24x24), then 2 pixels of zero padding on every side."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32) / np.float32(16.0)
    x = np.kron(x, np.ones((1, 3, 3), np.float32))
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    y = d.target.astype(np.int32)
    order = np.random.default_rng(1234).permutation(len(x))
    x, y = x[order], y[order]
    return {"x_train": x[n_test:], "y_train": y[n_test:], "x_test": x[:n_test], "y_test": y[:n_test]}


def limit(data: dict[str, np.ndarray], n_train: int | None, n_test: int | None) -> dict[str, np.ndarray]:
    out = dict(data)
    if n_train:
        out["x_train"], out["y_train"] = data["x_train"][:n_train], data["y_train"][:n_train]
    if n_test:
        out["x_test"], out["y_test"] = data["x_test"][:n_test], data["y_test"][:n_test]
    return out


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled order of epoch ``epoch``: the same in every framework (numpy, seeded by seed and epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(n: int, batch_size: int):
    """``slice`` objects over ``n`` items; the last batch is partial."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


# ----------------------------------------------------------------------------------------------------- metrics
def metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Mean softmax cross-entropy (float64) and accuracy over every image."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(len(labels)), labels].mean()
    pred = logits.argmax(axis=1)
    return {
        "loss": float(loss),
        "accuracy": float((pred == labels).mean()),
        "correct": int((pred == labels).sum()),
        "n": len(labels),
    }


def compare(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    """How ``logits`` (e.g. onnxruntime's) agree with ``reference`` (the framework's)."""
    pred, ref = logits.argmax(axis=1), reference.argmax(axis=1)
    m = metrics(logits, labels)
    scale = float(np.abs(reference).max()) or 1.0
    return {
        "accuracy": m["accuracy"],
        "correct": m["correct"],
        "loss": m["loss"],
        "agreement": float((pred == ref).mean()),
        "disagreements": int((pred != ref).sum()),
        "max_abs_logit_diff": float(np.abs(logits.astype(np.float64) - reference).max()),
        "max_rel_logit_diff": float(np.abs(logits.astype(np.float64) - reference).max() / scale),
    }


# ------------------------------------------------------------------------------------------------------ init
def shared_init(seed: int) -> dict[str, np.ndarray]:
    """One set of initial weights for every framework (``--init shared``), canonical layout (``weight (out, in)``):
    Yat kernels Glorot-normal (nmn's default), Yat biases 0, alphas 1, the readout Glorot-uniform with bias 0."""
    rng = np.random.default_rng([seed, 2026])
    sizes = (IMAGE_SHAPE[0] * IMAGE_SHAPE[1], *HIDDEN, NUM_CLASSES)
    out = {}
    for i, name in enumerate(("yat1", "yat2")):
        n_in, n_out = sizes[i], sizes[i + 1]
        out[f"{name}.weight"] = (rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / (n_in + n_out))).astype(np.float32)
        out[f"{name}.bias"] = np.zeros(n_out, np.float32)
        out[f"{name}.alpha"] = np.ones(1, np.float32)
    n_in, n_out = sizes[-2], sizes[-1]
    limit = np.sqrt(6.0 / (n_in + n_out))
    out["out.weight"] = rng.uniform(-limit, limit, (n_out, n_in)).astype(np.float32)
    out["out.bias"] = np.zeros(n_out, np.float32)
    return out


# ---------------------------------------------------------------------------------------------------- training
def train(trainer, data: dict, hp: HParams, name: str, *, progress: bool = True, log=print) -> list[dict]:
    """Run ``hp.epochs`` epochs of ``trainer``; evaluate on the whole test set after each; return the history."""
    from tqdm import tqdm

    x, y = data["x_train"], data["y_train"]
    history = []
    for epoch in range(hp.epochs):
        order = epoch_order(hp.seed, epoch, len(x))
        xe, ye = x[order], y[order]
        bar = tqdm(
            total=len(xe),
            desc=f"{name} epoch {epoch + 1}/{hp.epochs}",
            unit="img",
            leave=True,
            disable=not progress,
            mininterval=0.5 if sys.stderr.isatty() else 5.0,
            dynamic_ncols=True,
        )

        curve, seen, n_epoch = [], [0], len(xe)

        def update(n_images, loss=None, bar=bar, curve=curve, seen=seen, epoch=epoch, n=n_epoch):
            """``n_images`` more images trained; ``loss``: their sample-weighted mean loss (or None)."""
            bar.update(n_images)
            seen[0] += n_images
            if loss is not None:
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                curve.append([round(epoch + seen[0] / n, 5), float(loss)])

        t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        train_loss = float(trainer.train_epoch(xe, ye, hp.batch_size, update))
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        bar.close()
        t1 = time.perf_counter()
        test = metrics(trainer.logits(data["x_test"], max(hp.batch_size, 1000)), data["y_test"])
        eval_seconds = time.perf_counter() - t1
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "eval_seconds": eval_seconds,
            "load_average_1min": [load0, os.getloadavg()[0]],
            "train_loss_curve": curve,
        }
        history.append(row)
        log(
            f"[{name}] epoch {epoch + 1}/{hp.epochs}: train loss {train_loss:.4f}, test loss {test['loss']:.4f}, "
            f"test acc {100 * test['accuracy']:.2f}% ({seconds:.2f} s train, {eval_seconds:.2f} s eval)"
        )
    return history


class LossMeter:
    """Sample-weighted mean of per-batch mean losses; reads device scalars only every ``every`` batches and then
    reports the images and the mean loss of that window to ``progress``."""

    def __init__(self, progress, every: int = 25):
        self.progress, self.every = progress, every
        self.pending: list = []
        self.total, self.count = 0.0, 0

    def add(self, loss, n: int) -> None:
        self.pending.append((loss, n))
        if len(self.pending) >= self.every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        n_new, window = 0, 0.0
        for loss, n in self.pending:
            window += float(loss) * n
            n_new += n
        self.total += window
        self.count += n_new
        self.pending = []
        self.progress(n_new, window / n_new)

    def mean(self) -> float:
        self.flush()
        return self.total / max(self.count, 1)


# ---------------------------------------------------------------------------------------------------- ONNX side
def onnx_logits(path: str | os.PathLike, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Logits of an ONNX file in plain onnxruntime (CPU), batched over ``x``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[s]})[0] for s in batches(len(x), batch_size)])


def onnx_param_count(path: str | os.PathLike) -> int:
    """Parameters stored in an nmn ONNX file: the trainable parameters its manifest gives each layer, plus every
    float tensor of more than one element that no layer owns (weights of raw ops, e.g. a TF ``MatMul``); fixed
    scalars (a Yat layer's epsilon) and integer shapes are constants, not parameters."""
    import onnx
    from onnx import numpy_helper

    from nmn.interchange import manifest_of

    model = onnx.load(os.fspath(path))
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layers = (manifest_of(model) or {}).get("layers", [])
    owned = {init for layer in layers for init in layer.get("params", {}).values()}
    count = sum(
        arrays[init].size
        for layer in layers
        for key, init in layer.get("params", {}).items()
        if layer.get("trainable", {}).get(key, True) and init in arrays
    )
    count += sum(a.size for name, a in arrays.items() if name not in owned and a.dtype.kind == "f" and a.size > 1)
    return int(count)


def file_info(path: str | os.PathLike) -> dict:
    p = Path(path)
    return {"path": str(p), "bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}


# ------------------------------------------------------------------------------------------------------ receipts
def package_versions(*names: str) -> dict:
    out = {"python": platform.python_version()}
    for name in ("numpy", "nmn", "onnx", "onnxruntime", *names):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "node": platform.node(),
        "python": sys.version.split()[0],
        "load_average_1_5_15": list(os.getloadavg()),
    }
