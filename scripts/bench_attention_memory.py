"""Peak memory of Yat attention against the frameworks' own attention (torch SDPA, JAX), a fresh subprocess per case.

Each case runs in its own Python process (so one case's allocations never hide another's) and reports the
growth of the process's peak resident memory (``VmHWM``, reset through ``/proc/self/clear_refs`` just before
the call) over the resident memory just before the attention call, with inputs, weights and (JAX) the compiled
program already in memory; a torch layer first runs once on a 16-token input in the same mode, so one-time costs
(the first ``torch.utils.checkpoint`` call maps about 100 MiB of libraries) do not count. The cases run with
glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed (``--mmap-threshold``), so a freed large block leaves the process. On CUDA (``--device cuda``) it reports ``torch.cuda.max_memory_allocated`` growth
instead (torch rows; the JAX rows then give XLA's temporary-buffer size only).

torch: ``nn.MultiheadAttention`` (batch first, ``need_weights=False``: torch's SDPA path),
``nmn.torch.MultiHeadYatAttention`` with the reference path (``NMN_ATTENTION_IMPL=reference``, the whole
``(B, H, L, L)`` score block) and with the tiled path (``NMN_ATTENTION_IMPL=chunked``: ``(H, tq, tk)`` tiles of
at most ``--tile-bytes``, default the library's ``NMN_ATTENTION_TILE_BYTES`` budget; the header names the tile). JAX (``--frameworks jax``), under ``jax.jit``, heads ``(B, L, H, E/H)``: ``jax.nn.dot_product_attention``
against ``nmn.nnx.functional.yat_attention`` with ``NMN_ATTENTION_IMPL=reference`` and ``chunked`` (and, with
``--jax-flash``, the Pallas kernel: interpreter mode on CPU, where its memory is not the kernel's); each JAX
cell also gives XLA's temporary-buffer size of the compiled program (``memory_analysis``). Printed as markdown
tables with ratios to the framework's own attention.

    python scripts/bench_attention_memory.py                      # L = 1024, 4096; forward and forward+backward
    python scripts/bench_attention_memory.py --lengths 1024 4096 16384 --reference-max 4096 --frameworks torch jax
    python scripts/bench_attention_memory.py --lengths 4096 --reference-max 0 --tile-bytes 2097152   # a budget
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
def once(x):
    if mode == "fwd":
        with torch.no_grad():
            run(x)
    else:
        run(x).sum().backward()
once(torch.randn(b, 16, e, device=dev, requires_grad=(mode == "fwd+bwd")))  # warm-up: one-time costs do not count
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
once(x)
if dev.type == "cuda":
    torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated() - base
else:
    with open("/proc/self/status") as f:
        hwm = [int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:")]
    peak = (hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - base
print(json.dumps({{"peak": peak, "seconds": time.perf_counter() - t}}))
"""


JAX_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {root!r})
import jax, jax.numpy as jnp
from nmn.nnx.functional import yat_attention
kind, length, e, h, b, mode = {kind!r}, {length}, {e}, {h}, {b}, {mode!r}
keys = jax.random.split(jax.random.key(0), 3)
q, k, v = (jax.random.normal(key, (b, length, h, e // h), jnp.float32) for key in keys)
if kind == "dpa":
    f = lambda q, k, v: jax.nn.dot_product_attention(q, k, v)
else:  # NMN_ATTENTION_IMPL picks the path
    f = lambda q, k, v: yat_attention(q, k, v)
fn = f if mode == "fwd" else jax.grad(lambda q, k, v: jnp.sum(f(q, k, v)), argnums=(0, 1, 2))
compiled = jax.jit(fn).lower(q, k, v).compile()
temp = compiled.memory_analysis().temp_size_in_bytes
jax.block_until_ready((q, k, v))
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
except OSError:
    pass
base = rss()
t = time.perf_counter()
jax.block_until_ready(compiled(q, k, v))
seconds = time.perf_counter() - t
with open("/proc/self/status") as fh:
    hwm = [int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:")]
print(json.dumps({{"peak": (hwm[0] if hwm else 0) - base, "temp": temp, "seconds": seconds}}))
"""

IMPL = {"yat-ref": "reference", "yat-tiled": "chunked", "yat-flash": "flash"}


def run_case(kind, length, mode, args, framework="torch"):
    env = dict(
        os.environ,
        NMN_ATTENTION_IMPL=IMPL.get(kind, "auto"),
        OMP_NUM_THREADS=str(args.threads),
    )
    if args.tile_bytes:
        env["NMN_ATTENTION_TILE_BYTES"] = str(args.tile_bytes)
    if args.mmap_threshold:  # glibc: a fixed threshold returns every freed large block (no dynamic raise)
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    if framework == "jax":
        env["JAX_PLATFORMS"] = "cuda" if args.device.startswith("cuda") else "cpu"
        code = JAX_CHILD.format(
            root=str(ROOT), kind=kind, length=length, e=args.embed, h=args.heads, b=args.batch, mode=mode
        )
    else:
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
        help="longest L for the L x L paths (Yat reference; JAX's own attention on CPU): memory grows as L^2",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    parser.add_argument(
        "--mmap-threshold",
        type=int,
        default=131072,
        help="glibc MALLOC_MMAP_THRESHOLD_ of the cases (0: glibc's dynamic default, under which freed tiles can "
        "stay resident and the figure measures the allocator's retention rather than live memory)",
    )
    parser.add_argument(
        "--tile-bytes",
        type=int,
        default=0,
        help="byte budget of one torch score tile (NMN_ATTENTION_TILE_BYTES; 0: the library's default)",
    )
    parser.add_argument("--frameworks", nargs="+", default=["torch"], choices=["torch", "jax"])
    parser.add_argument("--jax-flash", action="store_true", help="also the JAX Pallas kernel (interpreted on CPU)")
    args = parser.parse_args(argv)
    metric = "CUDA max allocated" if args.device.startswith("cuda") else "peak RSS growth"
    print(f"device {args.device}; E{args.embed} H{args.heads} B{args.batch}; {metric} in MiB (ratio to the baseline)")
    if "torch" in args.frameworks:
        print(torch_tiles(args))
    for framework in args.frameworks:
        table(framework, args)


def torch_tiles(args):
    """One line: the torch tile budget and the ``(tq, tk)`` tile it gives at each length (asked of a subprocess)."""
    env = dict(os.environ)
    if args.tile_bytes:
        env["NMN_ATTENTION_TILE_BYTES"] = str(args.tile_bytes)
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import torch; from nmn._torch import _chunked\n"
        f"d = {args.embed} // {args.heads}\n"
        f"print(_chunked.budget(), *[_chunked.tiles(torch.empty(1, n, {args.heads}, d, device='meta'), "
        f"torch.empty(1, n, {args.heads}, d, device='meta')) for n in {list(args.lengths)!r}])"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        return f"torch tiles: unknown ({proc.stderr.strip().splitlines()[-1:]})"
    budget, *shapes = proc.stdout.split(" ", 1)[0], proc.stdout.split(" ", 1)[1].strip()
    return f"torch tile budget {int(budget) / 2**20:g} MiB per tile; (tq, tk) at L = {args.lengths}: {shapes[0]}"


def _cell(out, kind, base, framework, cuda):
    mib = (out["temp"] if framework == "jax" and cuda else out["peak"]) / 2**20
    ratio = f" ({mib / base:.2f}x)" if base and kind not in ("sdpa", "dpa") else ""
    text = f"{mib:.1f}{ratio}"
    if framework == "jax" and not cuda:
        text += f"; temp {out['temp'] / 2**20:.1f}"
    return mib, text


def table(framework, args):
    cuda = args.device.startswith("cuda")
    if framework == "torch":
        kinds, head = ("sdpa", "yat-ref", "yat-tiled"), "SDPA (nn.MultiheadAttention) | Yat reference | Yat tiled"
    else:
        kinds = ("dpa", "yat-ref", "yat-tiled") + (("yat-flash",) if args.jax_flash else ())
        head = "jax.nn.dot_product_attention | Yat reference | Yat tiled" + (" | Yat Pallas" if args.jax_flash else "")
    print(f"\n{framework}" + ("; JAX cells: MiB (ratio); temp = XLA temporaries MiB" if framework == "jax" else ""))
    print(f"\n| L | pass | {head} |")
    print("|---:|---|" + "---:|" * len(kinds))
    for length in args.lengths:
        for mode in args.modes:
            cells, base = [], None
            for kind in kinds:
                quadratic = kind == "yat-ref" or (kind == "dpa" and not cuda)  # XLA's CPU attention is L x L
                if quadratic and length > args.reference_max:
                    cells.append("not run")
                    continue
                out, err = run_case(kind, length, mode, args, framework)
                if out is None:
                    cells.append(err)
                    continue
                mib, text = _cell(out, kind, base, framework, cuda)
                base = mib if kind in ("sdpa", "dpa") else base
                cells.append(text)
                print(
                    f"  {framework} L={length} {mode} {kind}: {mib:.1f} MiB in {out['seconds']:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
            print(f"| {length} | {mode} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
