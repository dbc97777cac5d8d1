"""Speed and memory of nmn.torch layers against the plain PyTorch layers they replace, as ratios.

Measured in one process, same device, same shapes: YatNMN vs nn.Linear + ReLU, YatConv2D vs nn.Conv2d + ReLU,
MultiHeadYatAttention vs nn.MultiheadAttention (batch first). For each pair: median time of the forward pass and
of forward + backward (eager and, with --compile, torch.compile), and memory: on CUDA the peak allocated during
forward + backward, on CPU the bytes autograd saves for the backward pass (a device-free proxy for activation
memory). Printed as a markdown table; ratio = Yat / plain (lower is better). Plain, nmn (and, with --old, the
earlier release) are timed in interleaved rounds in one process, so load on the machine hits all alike; the
time of a row is the median over rounds.

    python scripts/bench_torch.py                    # full sizes of issue 3, eager
    python scripts/bench_torch.py --compile          # eager and torch.compile
    python scripts/bench_torch.py --quick            # small sizes (a smoke run)
    python scripts/bench_torch.py --threads 1 --cpu-time   # CPU time, steadier on a loaded machine
    pip install --no-deps --target /tmp/nmn035 "nmn==0.3.5"
    python scripts/bench_torch.py --old /tmp/nmn035  # plain, nmn and nmn 0.3.5 side by side
    python scripts/bench_torch.py --floor --threads 1 --cpu-time --repeat 40   # the eager floor of dense
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn as nn

from nmn.core.options import DEFAULT_EPSILON
from nmn.torch import MultiHeadYatAttention, YatConv2D, YatNMN


class LinearReLU(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(nn.Linear(i, o), nn.ReLU())


class ConvReLU(nn.Sequential):
    def __init__(self, c, m, k):
        super().__init__(nn.Conv2d(c, m, k, padding=k // 2), nn.ReLU())


class TorchMHA(nn.Module):
    def __init__(self, e, h):
        super().__init__()
        self.mha = nn.MultiheadAttention(e, h, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


class OldMHA(nn.Module):
    """nmn 0.3.5's ``MultiHeadYatAttention`` called as self-attention (its forward returns a tuple)."""

    def __init__(self, old, e, h):
        super().__init__()
        self.mha = old.MultiHeadYatAttention(embed_dim=e, num_heads=h)

    def forward(self, x):
        out = self.mha(x)
        return out[0] if isinstance(out, tuple) else out


def attention_path(e: int, h: int, b: int, n: int) -> str:
    """The path ``nmn.torch.functional.yat_attention`` takes for ``(b, n, h, e / h)`` float32 heads on the CPU:
    ``reference``, or ``tiled tq x tk`` (the tile from ``NMN_ATTENTION_TILE_BYTES``), as ``NMN_ATTENTION_IMPL``
    and the size rule pick it."""
    from nmn._torch import _chunked

    heads = torch.empty(b, n, h, e // h, device="meta")
    if _chunked.pick(heads, heads) != "chunked":
        return "reference"
    tq, tk = _chunked.tiles(heads, heads)
    return f"tiled {tq}x{tk}"


def cases(quick: bool):
    """``(name, make nmn layer, make plain layer, make old layer from the old module, input shape)``."""
    dense = lambda i, o, b: (
        f"dense {i}->{o}, batch {b}",
        lambda: YatNMN(i, o),
        lambda: LinearReLU(i, o),
        lambda old: old.YatNMN(i, o),
        (b, i),
    )
    conv = lambda c, n, s: (
        f"conv 3x3 {c}->{c}, {n}x{c}x{s}x{s}",
        lambda: YatConv2D(c, c, 3, padding=1),
        lambda: ConvReLU(c, c, 3),
        lambda old: old.YatConv2D(c, c, 3, padding=1),
        (n, c, s, s),
    )
    attn = lambda e, h, b, n: (
        f"attention E{e} H{h}, B{b} L{n} ({attention_path(e, h, b, n)} on CPU)",
        lambda: MultiHeadYatAttention(e, h),
        lambda: TorchMHA(e, h),
        lambda old: OldMHA(old, e, h),
        (b, n, e),
    )
    if quick:
        return [dense(784, 256, 64), conv(16, 8, 16), attn(64, 4, 2, 128)]
    return [dense(784, 256, 256), dense(4096, 4096, 512), conv(64, 32, 32), attn(256, 8, 8, 512)]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def memory(model, x, device):
    """Peak CUDA bytes of forward + backward, or on CPU the bytes saved for backward."""
    if device.type == "cuda":
        model(x).sum().backward()  # allocate workspaces (cuBLAS, cuDNN) before measuring
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        model(x).sum().backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    out.sum().backward()
    return sum(saved)


def profile(model, x, device, name):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for _ in range(2):
        model(x).sum().backward()
    _sync(device)
    with torch_profile(activities=activities) as prof:
        for _ in range(3):
            model(x).sum().backward()
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"--- profile of {name} (3 x fwd+bwd)", file=sys.stderr)
    print(prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=60), file=sys.stderr)


def check_device(device):
    """Outputs and gradients of every layer kind on ``device`` (float32) against CPU float64."""
    import copy

    from nmn.torch import RotaryYatAttention, YatConv1D, YatConv3D, YatConvTranspose2D, YatEmbed

    layers = [
        (YatNMN(16, 8, learnable_epsilon=True), (5, 16)),
        (YatNMN(16, 8, spherical=True), (5, 16)),
        (YatConv1D(4, 6, 3, padding="causal", dilation=2, groups=2), (2, 4, 11)),
        (YatConv2D(4, 6, 3, stride=2, padding=1, padding_mode="circular"), (2, 4, 9, 9)),
        (YatConv3D(2, 4, 2, padding="same"), (1, 2, 5, 5, 5)),
        (YatConvTranspose2D(4, 6, 3, stride=2, padding="same", groups=2), (2, 4, 4, 4)),
        (MultiHeadYatAttention(16, 4), (2, 7, 16)),
        (MultiHeadYatAttention(16, 4, use_performer=True, num_features=8, causal=True), (2, 7, 16)),
        (RotaryYatAttention(16, 4, max_seq_len=32, causal=True), (2, 7, 16)),
    ]
    worst = 0.0
    for layer, shape in layers:
        x64 = torch.randn(shape, dtype=torch.float64)
        ref = copy.deepcopy(layer).double()
        dev = copy.deepcopy(layer).to(device)
        xs = [x64.clone().requires_grad_(True), x64.float().to(device).requires_grad_(True)]
        outs = [ref(xs[0]), dev(xs[1])]
        for o in outs:
            o.square().sum().backward()
        pairs = [(outs[0], outs[1]), (xs[0].grad, xs[1].grad)]
        skip = {"alpha"} if getattr(layer, "use_performer", False) else set()  # ~0: cancels but for the 1e-6 shift
        pairs += [
            (p.grad, q.grad)
            for (n, p), q in zip(ref.named_parameters(), dev.parameters())
            if p.grad is not None and n not in skip
        ]
        for a, b in pairs:
            err = float((a - b.double().cpu()).abs().max() / a.abs().max().clamp_min(1e-30))
            worst = max(worst, err)
            assert err < 1e-3, f"{type(layer).__name__}: relative error {err:.3g} on {device}"
    embed = YatEmbed(10, 8).to(device)
    assert embed.attend(embed(torch.tensor([[1, 2]], device=device))).shape == (1, 2, 10)
    print(f"check on {device}: every layer kind matches CPU float64 (worst relative error {worst:.2g})\n")


def kernel_time(model, x, device, iters=3):
    """Summed GPU kernel time of one forward + backward (what the GPU works, without launch gaps)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model(x).sum().backward()
    _sync(device)
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            model(x).sum().backward()
        _sync(device)
    total = 0.0
    for evt in prof.events():
        if getattr(evt, "device_type", None) == torch.autograd.DeviceType.CUDA:
            total += evt.time_range.elapsed_us()
    return total / iters


def interleaved(fns, device, warmup, repeat, clock=time.perf_counter):
    """Median seconds of each function, timed in alternating rounds (one call of each per round) by ``clock``.

    Every other round runs the functions in reverse order: a function's place in a round (what ran just before
    it, what is left in the caches) moved its time by 3-5 % here, and alternating cancels that out.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    _sync(device)
    times = [[] for _ in fns]
    order = list(range(len(fns)))
    for r in range(repeat):
        for i in order if r % 2 == 0 else order[::-1]:
            t0 = clock()
            fns[i]()
            _sync(device)
            times[i].append(clock() - t0)
    return [statistics.median(t) for t in times]


def _floor_times(n, i, o, device, repeat, clock):
    """``(plain, Yat floor, YatNMN)`` forward seconds for ``x (n, i)`` and ``o`` outputs (see :func:`floor`)."""
    x = torch.randn(n, i, device=device)
    layer = YatNMN(i, o).to(device)
    w, b = layer.weight.detach(), layer.bias.detach()

    def plain():
        torch.relu(torch.addmm(b, x, w.t()))

    def yat_floor():
        num = torch.addmm(b, x, w.t())
        const = torch.linalg.vector_norm(w, 2, 1).square().add_(b, alpha=2.0).add_(DEFAULT_EPSILON)
        den = torch.add(const, num, alpha=-2.0).add_(torch.linalg.vector_norm(x, 2, 1, True).square())
        num.square_().div_(den.clamp_min_(DEFAULT_EPSILON))

    def yat_layer():
        layer(x)

    with torch.no_grad():
        return interleaved([plain, yat_floor, yat_layer], device, 3, repeat, clock)


def floor(device, repeat, clock, shapes=((256, 784, 256), (512, 4096, 4096))):
    """The eager floor of the Yat dense forward: the fewest torch ops it needs, timed against Linear+ReLU's.

    Plain: ``addmm`` + ``relu`` (what ``nn.Linear`` + ``nn.ReLU`` run). Yat floor: the same ``addmm`` (bias in
    the GEMM), the two row norms, three passes for the distance (new tensor, add, clamp) and two for
    ``num^2 / den``, written inline with no Python around them; the layer is ``YatNMN`` as users call it. Each
    pass of the floor is a torch kernel of its own in eager mode, so its ratio is about where eager code built
    from torch's ops stops; a fused kernel (``torch.compile``, or a GPU kernel) is what removes those passes.
    """
    rows = [(f"dense {i}->{o}, batch {n}", *_floor_times(n, i, o, device, repeat, clock)) for n, i, o in shapes]
    print("| forward, no grad | addmm + relu (ms) | Yat floor (ms) | floor / plain | YatNMN (ms) | YatNMN / plain |")
    print("|---|---|---|---|---|---|")
    for name, tp, tf, tl in rows:
        print(f"| {name} | {tp * 1e3:.3f} | {tf * 1e3:.3f} | {tf / tp:.2f}x | {tl * 1e3:.3f} | {tl / tp:.2f}x |")


def measure(models, x, device, warmup, repeat, clock=time.perf_counter):
    """``[(fwd seconds, fwd+bwd seconds)]`` of each model, all timed in the same interleaved rounds."""

    def fwd(model):
        def run():
            with torch.no_grad():
                model(x)

        return run

    def fwd_bwd(model):
        def run():
            model(x).sum().backward()

        return run

    for model in models:
        model.zero_grad(set_to_none=True)
    f = interleaved([fwd(m) for m in models], device, warmup, repeat, clock)
    b = interleaved([fwd_bwd(m) for m in models], device, warmup, repeat, clock)
    return list(zip(f, b))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", default="", help="run the cases whose name contains this text")
    parser.add_argument("--profile", action="store_true", help="print the top kernels of each Yat fwd+bwd")
    parser.add_argument(
        "--floor", action="store_true", help="time the fewest eager ops a Yat dense forward needs (then stop)"
    )
    parser.add_argument("--check", action="store_true", help="first compare every layer on --device with CPU float64")
    parser.add_argument(
        "--old",
        metavar="PATH",
        help="also time the earlier release installed with "
        "pip install --no-deps --target PATH nmn==0.3.5 (imported as nmn_old)",
    )
    parser.add_argument("--threads", type=int, help="torch.set_num_threads before timing")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by the process's CPU time instead of the wall clock (CPU only; steadier on a shared machine, "
        "best with --threads 1)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    old = None
    if args.old:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from old_nmn import load_old

        old = load_old(args.old, "torch")
    device = torch.device(args.device)
    if args.cpu_time and device.type != "cpu":
        parser.error(f"--cpu-time times CPU work only; --device is {device}")
    clock = time.process_time if args.cpu_time else time.perf_counter
    torch.manual_seed(0)
    print(
        f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"clock {'process CPU time' if args.cpu_time else 'wall'}\n"
    )
    if args.floor:
        floor(device, args.repeat, clock)
        return
    if args.check:
        check_device(device)
    modes = ["eager"] + (["compiled"] if args.compile else [])
    rows = []
    for name, make_yat, make_ref, make_old, shape in cases(args.quick):
        if args.only and args.only not in name:
            continue
        x = torch.randn(shape, device=device)
        yat, ref = make_yat().to(device), make_ref().to(device)
        prev = make_old(old).to(device) if old is not None else None
        mem = memory(yat, x, device) / memory(ref, x, device)
        if args.profile:
            profile(yat, x, device, name)
        for mode in modes:
            models = [ref, yat] + ([prev] if prev is not None else [])
            if mode == "compiled":
                models = [torch.compile(m) for m in models]
            times = measure(models, x, device, args.warmup, args.repeat, clock)
            (rf, rb), (yf, yb) = times[:2]
            of, ob = times[2] if prev is not None else (None, None)
            busy = ""
            if device.type == "cuda" and mode == "eager":
                busy = f"{kernel_time(models[1], x, device) / kernel_time(models[0], x, device):.2f}x"
            rows.append((name, mode, rf, rb, yf, yb, of, ob, mem, busy))
            print(f"  {name} [{mode}] fwd {yf / rf:.2f}x fwd+bwd {yb / rb:.2f}x", file=sys.stderr, flush=True)
    mem_label = "peak memory" if device.type == "cuda" else "saved for backward"
    print(
        f"| layer (vs plain) | mode | plain fwd / fwd+bwd (ms) | nmn fwd / fwd+bwd (ms) | nmn fwd ratio / fwd+bwd ratio "
        f"| 0.3.5 fwd / fwd+bwd (ms) | 0.3.5 fwd ratio / fwd+bwd ratio | nmn speed-up over 0.3.5 fwd / fwd+bwd "
        f"| {mem_label} ratio | GPU kernel-time ratio (fwd+bwd) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, mode, rf, rb, yf, yb, of, ob, mem, busy in rows:
        olds = (
            f"{of * 1e3:.2f} / {ob * 1e3:.2f} | {of / rf:.2f}x / {ob / rb:.2f}x | {of / yf:.2f}x / {ob / yb:.2f}x"
            if of is not None
            else "- | - | -"
        )
        print(
            f"| {name} | {mode} | {rf * 1e3:.2f} / {rb * 1e3:.2f} | {yf * 1e3:.2f} / {yb * 1e3:.2f} "
            f"| {yf / rf:.2f}x / {yb / rb:.2f}x | {olds} | {mem:.2f}x | {busy or '-'} |"
        )


if __name__ == "__main__":
    main()
