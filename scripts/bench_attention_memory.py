"""Peak memory of Yat attention against torch's SDPA attention, one fresh subprocess per case.

Each case runs in its own Python process (so one case's allocations never hide another's) and reports the
growth of the process's peak resident memory (``VmHWM``, reset through ``/proc/self/clear_refs`` just before
the call) over the resident memory just before the attention call, with inputs and weights already allocated. On CUDA (``--device cuda``) it reports
``torch.cuda.max_memory_allocated`` growth instead. Layers: ``nn.MultiheadAttention`` (batch first,
``need_weights=False``: torch's SDPA path), ``nmn.torch.MultiHeadYatAttention`` with the reference path
(``NMN_ATTENTION_IMPL=reference``, the whole ``(B, H, L, L)`` score block) and with the tiled path
(``NMN_ATTENTION_IMPL=chunked``, ``(B, H, 128, L)`` at a time). Printed as a markdown table with ratios to SDPA.

    python scripts/bench_attention_memory.py                      # L = 1024, 4096; forward and forward+backward
    python scripts/bench_attention_memory.py --lengths 1024 4096 16384 --reference-max 4096
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
import torch
torch.manual_seed(0)
kind, length, e, h, b, mode, device = {kind!r}, {length}, {e}, {h}, {b}, {mode!r}, {device!r}
dev = torch.device(device)
if kind == "sdpa":
    layer = torch.nn.MultiheadAttention(e, h, batch_first=True).to(dev)
    run = lambda x: layer(x, x, x, need_weights=False)[0]
else:
    from nmn.torch import MultiHeadYatAttention
    layer = MultiHeadYatAttention(e, h).to(dev)
    run = lambda x: layer(x)
x = torch.randn(b, length, e, device=dev, requires_grad=(mode == "fwd+bwd"))
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
if dev.type == "cuda":
    torch.cuda.synchronize(); base = torch.cuda.memory_allocated(); torch.cuda.reset_peak_memory_stats()
else:
    try:   # reset the peak (VmHWM) to the current resident size, so import-time peaks do not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = rss()
t = time.perf_counter()
if mode == "fwd":
    with torch.no_grad():
        run(x)
else:
    run(x).sum().backward()
if dev.type == "cuda":
    torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated() - base
else:
    with open("/proc/self/status") as f:
        hwm = [int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:")]
    peak = (hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - base
print(json.dumps({{"peak": peak, "seconds": time.perf_counter() - t}}))
"""


def run_case(kind, length, mode, args):
    env = dict(
        os.environ,
        NMN_ATTENTION_IMPL={"yat-ref": "reference", "yat-tiled": "chunked"}.get(kind, "auto"),
        OMP_NUM_THREADS=str(args.threads),
    )
    code = CHILD.format(
        root=str(ROOT),
        kind="sdpa" if kind == "sdpa" else "yat",
        length=length,
        e=args.embed,
        h=args.heads,
        b=args.batch,
        mode=mode,
        device=args.device,
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        return None, f"failed (rc {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out, ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    parser.add_argument("--embed", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--reference-max",
        type=int,
        default=4096,
        help="longest L for the reference (L x L) Yat path (its memory grows as L^2)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    args = parser.parse_args(argv)
    metric = "CUDA max allocated" if args.device.startswith("cuda") else "peak RSS growth"
    print(f"device {args.device}; E{args.embed} H{args.heads} B{args.batch}; {metric} in MiB (ratio to SDPA)\n")
    print("| L | pass | SDPA (nn.MultiheadAttention) | Yat reference | Yat tiled |")
    print("|---:|---|---:|---:|---:|")
    for length in args.lengths:
        for mode in args.modes:
            cells, base = [], None
            for kind in ("sdpa", "yat-ref", "yat-tiled"):
                if kind == "yat-ref" and length > args.reference_max:
                    cells.append("not run")
                    continue
                out, err = run_case(kind, length, mode, args)
                if out is None:
                    cells.append(err)
                    continue
                mib = out["peak"] / 2**20
                base = mib if kind == "sdpa" else base
                ratio = f" ({mib / base:.2f}x)" if base and kind != "sdpa" else ""
                cells.append(f"{mib:.1f}{ratio}")
                print(
                    f"  L={length} {mode} {kind}: {mib:.1f} MiB in {out['seconds']:.1f} s", file=sys.stderr, flush=True
                )
            print(f"| {length} | {mode} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
