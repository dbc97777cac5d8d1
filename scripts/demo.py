"""The nmn demo: train a Yat MLP in PyTorch, export it to ONNX, load it into every installed framework, keep
training it in another one, and serve the file with onnxruntime behind the Open Inference Protocol.

Runs on a fresh machine with no network: the data is scikit-learn's bundled digits (8x8 images).

    python scripts/demo.py [--epochs 30] [--out out/demo] [--no-serve]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

FRAMEWORKS = {"torch": "torch", "nnx": "flax", "linen": "flax", "keras": "keras", "tf": "tensorflow", "mlx": "mlx"}


def load_digits():
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]     # (N, 1, 8, 8), scaled to [0, 1]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def train_torch(train, epochs: int):
    import torch
    import torch.nn as nn

    import nmn.torch as nt

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nt.YatNMN(64, 48), nt.YatNMN(48, 24), nn.Linear(24, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    x, y = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    losses = []
    bar = tqdm(range(epochs), desc="torch: training", unit="epoch")
    for _ in bar:
        perm = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return model.eval(), losses


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, -1) == y))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_and_query(path: Path, x: np.ndarray, expected: np.ndarray) -> float:
    from nmn.serve import Client

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nmn.serve", "serve", str(path), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = Client(f"http://127.0.0.1:{port}")
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if client.ready():
                    break
            except Exception:
                time.sleep(0.2)
        out = client.infer(path.stem, {"x": x})
        return float(np.max(np.abs(next(iter(out.values())) - expected)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--no-serve", action="store_true", help="skip the serving step")
    args = parser.parse_args(argv)

    from nmn.interchange import export, load, predict, run_onnx

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = load_digits()
    print(f"data: scikit-learn digits, {len(train[0])} train / {len(test[0])} test images (8x8)")

    model, losses = train_torch(train, args.epochs)
    import torch

    path = out / "digits_mlp.onnx"
    export(model, torch.from_numpy(test[0][:2]), path, input_names=["x"], output_names=["logits"])
    print(f"exported {path} ({path.stat().st_size:,} bytes); train loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    (ort_logits,) = run_onnx(__import__("onnx").load(path), {"x": test[0]})
    print(f"onnxruntime accuracy on {len(test[0])} test images: {accuracy(ort_logits, test[1]):.4f}")

    rows = []
    for fw, package in FRAMEWORKS.items():
        if importlib.util.find_spec(package) is None:
            rows.append((fw, "not installed", "", ""))
            continue
        try:
            loaded = load(path, framework=fw)
            (logits,) = predict(loaded, fw, [test[0]])
            diff = float(np.max(np.abs(logits - ort_logits)) / np.max(np.abs(ort_logits)))
            agree = float(np.mean(np.argmax(logits, -1) == np.argmax(ort_logits, -1)))
            rows.append((fw, f"{accuracy(logits, test[1]):.4f}", f"{diff:.1e}", f"{agree:.2%}"))
        except Exception as err:   # report, keep going: the demo shows every framework's state
            rows.append((fw, f"failed: {type(err).__name__}: {str(err).splitlines()[0][:60]}", "", ""))
    print("\nthe exported file loaded into every framework (same test images):")
    print(f"| {'framework':<9} | {'accuracy':<8} | {'max rel diff vs ORT':<19} | {'same prediction':<15} |")
    print(f"|{'-' * 11}|{'-' * 10}|{'-' * 21}|{'-' * 17}|")
    for fw, acc, diff, agree in rows:
        print(f"| {fw:<9} | {acc:<8} | {diff:<19} | {agree:<15} |")

    if not args.no_serve:
        try:
            err = serve_and_query(path, test[0][:16], ort_logits[:16])
            print(f"\nnmn serve: 16 images through the Open Inference Protocol, max |diff| vs onnxruntime {err:.1e}")
        except Exception as exc:
            print(f"\nnmn serve: failed ({type(exc).__name__}: {exc})")
            return 1
    failed = [r for r in rows if r[1].startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
