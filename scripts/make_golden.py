"""Write the golden interchange files: small exported reference models with their inputs and expected outputs.

    python scripts/make_golden.py [--from torch mlx ...] [--out models/golden]

For every reference model except ``yat_mlp`` (its 235,148 weights alone are 0.9 MB; its ops - Flatten, YatDense,
Gemm - are covered by ``yat_cnn``) and every source framework given (default: every framework whose exporter
imports), it writes ``<model>.<framework>.onnx`` and ``<model>.<framework>.npz`` holding ``input:<name>`` (the
graph inputs, batch 3) and ``output:<name>`` (onnxruntime's outputs, checked against the source framework).
``tests/interchange/test_golden.py`` loads every file in every framework and compares, so a file written by
this version keeps loading in later versions. Changing a golden file needs a reason in the commit message.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nmn.interchange import save_model
from nmn.interchange._atomic import Stage
from tests.interchange import matrix_util as mu

GOLDEN_MODELS = ("yat_cnn", "yat_autoencoder", "yat_seq", "yat_volume", "yat_transformer", "yat_performer")
# torch writes every golden model; the other frameworks write the two that differ most by layout and op mix
# (channels-last conv with Transpose nodes; the attention block), keeping the folder well under 1 MB.
PER_FRAMEWORK = {"torch": GOLDEN_MODELS}
OTHERS = ("yat_cnn", "yat_transformer")
SIZE_LIMIT = 1_000_000


def write(name: str, fw: str, out: Path) -> list[Path]:
    src = mu.source(name, fw)
    if src.error:
        raise RuntimeError(f"{name} from {fw}: {src.error}")
    inputs = mu.fresh_inputs(src.proto, seed=2026)
    expected = mu.run_onnx(src.proto, mu.feeds(src.proto, inputs))
    native = mu.predict(fw, src.model, inputs)
    err = mu.worst_error(native, expected)
    if err > mu.RTOL:
        raise RuntimeError(f"{name} from {fw}: onnxruntime differs from {fw} by {err:.3g} x the output scale")
    arrays = {f"input:{k}": v for k, v in mu.feeds(src.proto, inputs).items()}
    arrays.update({f"output:{vi.name}": y for vi, y in zip(src.proto.graph.output, expected)})
    # the pair is staged and renamed into place together: an interrupted run leaves the old pair, never half
    with Stage(out, overwrite=True) as stage:
        save_model(src.proto, stage.path(f"{name}.{fw}.onnx"))
        np.savez_compressed(stage.path(f"{name}.{fw}.npz"), **arrays)
        return stage.commit()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--from",
        dest="sources",
        nargs="*",
        default=None,
        help="source frameworks (default: every framework whose exporter imports)",
    )
    parser.add_argument("--out", default=str(ROOT / "models" / "golden"))
    parser.add_argument(
        "--models", nargs="*", default=None, help=f"default: all for torch, {' and '.join(OTHERS)} for the others"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sources = args.sources if args.sources is not None else [fw for fw in mu.FRAMEWORKS if not mu.unavailable(fw)]
    written, failed = [], []
    for fw in sources:
        for name in args.models or PER_FRAMEWORK.get(fw, OTHERS):
            try:
                written += write(name, fw, out)
                print(f"wrote {name}.{fw}.onnx / .npz")
            except Exception as err:
                failed.append(f"{name} from {fw}: {err}")
                print(f"SKIPPED {name} from {fw}: {str(err)[:200]}", file=sys.stderr)
    total = sum(p.stat().st_size for p in out.glob("*.onnx")) + sum(p.stat().st_size for p in out.glob("*.npz"))
    print(f"{len(written)} files written, {total:,} bytes in {out}")
    if total > SIZE_LIMIT:
        print(f"golden files total {total:,} bytes > {SIZE_LIMIT:,}", file=sys.stderr)
        return 1
    return 1 if failed and not written else 0


if __name__ == "__main__":
    sys.exit(main())
