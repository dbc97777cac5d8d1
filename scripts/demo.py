"""The nmn demo: train the seed post's Yat MLP in one framework, export it to ONNX, load the file into every
installed framework, run it in onnxruntime, and (optionally) serve it behind the Open Inference Protocol.

Model: Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Linear(10), 235,148 parameters, AdamW. Default data:
scikit-learn's bundled digits (1,797 8x8 images, each pixel repeated 3x3 and padded to 28x28), so it runs on a
fresh machine with no network in well under a minute; ``--data mnist.npz`` (or ``$NMN_MNIST``) uses MNIST.

    python scripts/demo.py [--framework torch] [--epochs 10] [--data mnist.npz] [--out out/demo] [--no-serve]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the private helpers in scripts/_mnist
for _key, _value in {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "GRPC_VERBOSITY": "ERROR",
    "ABSL_MIN_LOG_LEVEL": "3",
}.items():
    os.environ.setdefault(_key, _value)  # TensorFlow's start-up noise

READY_WAIT = 600  # seconds for the server to load the model; generous, a loaded machine is slow to start one
FRAMEWORK_PACKAGES = {
    "torch": "torch",
    "nnx": "flax",
    "linen": "flax",
    "keras": "keras",
    "tf": "tensorflow",
    "mlx": "mlx",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_and_query(path: Path, x: np.ndarray, expected: np.ndarray) -> float:
    """Serve ``path`` with ``nmn serve`` in a subprocess, query it with ``nmn.serve.Client``, stop it."""
    from nmn.serve import Client

    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")  # the server's output, shown if it does not come up
    proc = subprocess.Popen(
        [sys.executable, "-m", "nmn.serve", "serve", str(path), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        client = Client(f"http://127.0.0.1:{port}")
        deadline = time.time() + READY_WAIT
        while True:
            try:
                if client.ready():
                    break
            except Exception:
                if time.time() > deadline or proc.poll() is not None:
                    log.seek(0)
                    tail = log.read()[-2000:]
                    raise RuntimeError(
                        f"the server did not become ready within {READY_WAIT} s (exit code {proc.poll()}):\n{tail}"
                    ) from None
                time.sleep(0.2)
        name = client.metadata(path.stem)["inputs"][0]["name"]
        out = client.infer(path.stem, {name: x})
        return float(np.max(np.abs(next(iter(out.values())) - expected)))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=READY_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--framework",
        default="torch",
        choices=list(FRAMEWORK_PACKAGES),
        help="where to train (default torch); Keras uses $KERAS_BACKEND",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    parser.add_argument("--data", help="an MNIST .npz (x_train, y_train, x_test, y_test); default: digits")
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--no-serve", action="store_true", help="skip the serving step")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    from _mnist import common, framework_module

    from nmn.interchange import load, predict, run_onnx
    from nmn.interchange.validate import load_model_safely

    if args.data:
        data = common.load_mnist(common.resolve_data_path(args.data))
        source = f"MNIST from {args.data}"
    else:
        data = common.load_digits_28()
        source = "scikit-learn digits (8x8, resized to 28x28 by 3x3 pixel repetition and 2-pixel padding)"
    print(f"data: {source}: {len(data['x_train'])} train / {len(data['x_test'])} test images")

    hp = common.HParams(epochs=args.epochs, lr=args.lr)
    fw = framework_module(args.framework)
    trainer = fw.Trainer(hp)
    print(
        f"model: Flatten(28x28) -> YatNMN(256) -> YatNMN(128) -> Linear(10), {trainer.param_count():,} parameters,"
        f" trained in {args.framework}"
    )
    history = common.train(trainer, data, hp, args.framework)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"yat_mlp_{args.framework}.onnx"
    trainer.export(path, data["x_test"][:2])
    model = load_model_safely(path)
    x, y = data["x_test"], data["y_test"]
    (ort_logits,) = run_onnx(model, {model.graph.input[0].name: x})
    ort_acc = float(np.mean(np.argmax(ort_logits, -1) == y))
    print(
        f"\nexported {path} ({path.stat().st_size:,} bytes); onnxruntime accuracy {ort_acc:.2%} "
        f"(framework: {history[-1]['test_accuracy']:.2%})"
    )

    rows = [("onnxruntime", f"{ort_acc:.2%}", "0 (reference)")]
    failed = False
    for name, package in FRAMEWORK_PACKAGES.items():
        if importlib.util.find_spec(package) is None:
            rows.append((name, "not installed", ""))
            continue
        try:
            (logits,) = predict(load(path, framework=name), name, [x])
            acc = float(np.mean(np.argmax(logits, -1) == y))
            rows.append((name, f"{acc:.2%}", f"{np.max(np.abs(logits - ort_logits)):.2e}"))
        except Exception as err:  # report and go on: the table shows every framework's state
            failed = True
            rows.append((name, "failed", f"{type(err).__name__}: {str(err).splitlines()[0][:50]}"))
    print(f"\nthe file loaded into every installed framework ({len(x)} test images):\n")
    print(f"| {'framework':<11} | {'accuracy':<13} | {'max |diff| vs onnxruntime':<26} |")
    print(f"|{'-' * 13}|{'-' * 15}|{'-' * 28}|")
    for name, acc, diff in rows:
        print(f"| {name:<11} | {acc:<13} | {diff:<26} |")

    if not args.no_serve and importlib.util.find_spec("uvicorn") is not None:
        err = serve_and_query(path, x[:16], ort_logits[:16])
        print(f"\nnmn serve: 16 images through the Open Inference Protocol, max |diff| vs onnxruntime {err:.1e}")
    print(f"\n{machine_line(time.perf_counter() - started)}")
    return 1 if failed else 0


def machine_line(seconds: float) -> str:
    """How long the demo took and on what: usable CPU cores and the load average before and after (the load of
    the machine decides the time as much as the code does)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    loads = f", load average {load[0]:.1f} (1 min) / {load[2]:.1f} (15 min)" if load else ""
    return f"demo took {seconds:.0f} s on {cores} CPU core(s){loads}"


if __name__ == "__main__":
    sys.exit(main())
