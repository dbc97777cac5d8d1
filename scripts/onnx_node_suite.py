"""ONNX's node tests through every nmn loader: a per-framework pass / wrong / refused / crash table.

Cases come from the installed ``onnx`` (``onnx.backend.test.case.node``; written once into a cache folder, see
``nmn.interchange.stdops.conformance.cache_dir``), restricted to the core op families. Each framework (keras once
per backend) runs in its own subprocess. onnx2torch, when installed (``pip install --no-deps onnx2torch``), and
onnxruntime can be run beside them for comparison.

    python scripts/onnx_node_suite.py                       # all frameworks
    python scripts/onnx_node_suite.py torch mlx --details   # some, listing every non-pass
    python scripts/onnx_node_suite.py --markdown table.md   # also write the table as markdown
    python scripts/onnx_node_suite.py torch --compare-onnx2torch  # add onnx2torch and onnxruntime rows

onnx2torch imports torchvision (only for its NonMaxSuppression and RoiAlign converters). The torchvision wheel
on PyPI is built against the CUDA torch: beside a CPU-only torch its compiled operators fail to load
(``libc10_cuda.so`` missing, then ``operator torchvision::nms does not exist``) and ``import torchvision``
raises. The onnx2torch worker then stands in a small ``torchvision`` whose ``ops`` functions raise, so every
converter but those two (not core families) runs as released.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

TARGETS = ("torch", "nnx", "linen", "keras-tensorflow", "keras-jax", "keras-torch", "tf", "mlx")
EXTRA = ("onnx2torch", "onnxruntime")


def _worker(target: str, out: str) -> None:
    if target.startswith("keras-"):
        os.environ["KERAS_BACKEND"] = target.split("-", 1)[1]
    from nmn.interchange.stdops import conformance

    cases = conformance.node_cases()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover

        def tqdm(x, **_):
            return x

    results = {}
    for case in tqdm(cases, desc=target, file=sys.stderr, mininterval=5):
        if target == "onnxruntime":
            results[case.name] = (case.op, *_ort(case))
        elif target == "onnx2torch":
            results[case.name] = (case.op, *_onnx2torch(case))
        else:
            results[case.name] = (case.op, *conformance.run_case(case, target.split("-")[0]))
    with open(out, "w") as f:
        json.dump(results, f)


def _compare(outs, case):
    from nmn.interchange.stdops.conformance import _close

    if len(outs) != len(case.outputs) or not all(_close(g, w) for g, w in zip(outs, case.outputs)):
        return "wrong", ""
    return "pass", ""


def _ort(case):
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(case.model, providers=["CPUExecutionProvider"])
        feeds = {i.name: x for i, x in zip(sess.get_inputs(), case.inputs)}
        return _compare(sess.run(None, feeds), case)
    except Exception as err:
        return (
            "refused" if "NOT_IMPLEMENTED" in str(err) or "not implemented" in str(err).lower() else "crash",
            str(err).splitlines()[0][:200],
        )


def _import_onnx2torch():
    """``onnx2torch.convert``; where torchvision does not import, with the stand-in of the module docstring."""
    try:
        from onnx2torch import convert

        return convert
    except (ImportError, OSError, RuntimeError) as err:
        if "torchvision" not in repr(err) and "libc10_cuda" not in repr(err):
            raise
    import types

    for key in [k for k in sys.modules if k == "torchvision" or k.startswith(("torchvision.", "onnx2torch"))]:
        del sys.modules[key]

    def unavailable(*_, **__):
        raise NotImplementedError("torchvision's compiled ops do not load beside this CPU torch")

    vision = types.ModuleType("torchvision")
    vision.ops = types.ModuleType("torchvision.ops")
    for name in ("nms", "box_convert", "roi_align"):
        setattr(vision.ops, name, unavailable)
    sys.modules.update({"torchvision": vision, "torchvision.ops": vision.ops})
    from onnx2torch import convert

    return convert


def _onnx2torch(case):
    import onnx
    import torch

    convert = _import_onnx2torch()

    try:
        net = convert(onnx.load_from_string(case.model))
    except NotImplementedError as err:
        return "refused", str(err).splitlines()[0][:200]
    except Exception as err:
        return "crash", f"{type(err).__name__}: {str(err)[:200]}"
    try:
        with torch.no_grad():
            out = net(*[torch.from_numpy(x.copy()) for x in case.inputs])
        outs = out if isinstance(out, (list, tuple)) else [out]
        return _compare([o.numpy() if hasattr(o, "numpy") else o for o in outs], case)
    except Exception as err:
        return "crash", f"{type(err).__name__}: {str(err)[:200]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"subset of {TARGETS + EXTRA} (default: all nmn loaders)")
    parser.add_argument("--details", action="store_true", help="list every case that did not pass")
    parser.add_argument(
        "--compare-onnx2torch",
        action="store_true",
        help="add onnx2torch (pip install --no-deps onnx2torch) and onnxruntime rows for comparison",
    )
    parser.add_argument("--markdown", help="write the table to this markdown file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.out)
        return 0
    targets = args.targets or list(TARGETS)
    unknown = sorted(set(targets) - set(TARGETS + EXTRA))
    if unknown:
        parser.error(f"unknown target(s) {unknown}; expected some of {list(TARGETS + EXTRA)}")
    if args.compare_onnx2torch:
        targets += [t for t in EXTRA if t not in targets]
    from nmn.interchange.stdops import conformance

    conformance.node_cases()  # generate the cache once, before the workers start
    table = {}
    for target in targets:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = f.name
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", target, "--out", out],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode != 0:
            print(f"{target}: worker failed\n{proc.stdout[-3000:]}", file=sys.stderr)
            continue
        with open(out) as f:
            table[target] = json.load(f)
        os.unlink(out)
        counts = collections.Counter(status for _, status, _ in table[target].values())
        print(f"{target}: " + ", ".join(f"{s} {counts[s]}" for s in conformance.STATUSES), file=sys.stderr, flush=True)
    lines = ["| loader | cases | pass | wrong answer | clear refusal | crash |", "|---|---:|---:|---:|---:|---:|"]
    for target, results in table.items():
        counts = collections.Counter(status for _, status, _ in results.values())
        lines.append(
            f"| {target} | {len(results)} | " + " | ".join(str(counts[s]) for s in conformance.STATUSES) + " |"
        )
    print("\n".join(lines))
    if args.details:
        for target, results in table.items():
            for name, (_op, status, detail) in sorted(results.items()):
                if status != "pass":
                    print(f"{target:17s} {status:8s} {name}: {detail[:240]}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
