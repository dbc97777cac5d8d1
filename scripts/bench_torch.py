"""Speed and memory of nmn.torch layers against the plain PyTorch layers they replace, as ratios.

Measured in one process, same device, same shapes: YatNMN vs nn.Linear + ReLU, YatConv2D vs nn.Conv2d + ReLU,
MultiHeadYatAttention vs nn.MultiheadAttention (batch first). For each pair: median time of the forward pass and
of forward + backward (eager and, with --compile, torch.compile), and memory: on CUDA the peak allocated during
forward + backward, on CPU the bytes autograd saves for the backward pass (a device-free proxy for activation
memory). Printed as a markdown table; ratio = Yat / plain (lower is better).

    python scripts/bench_torch.py                    # full sizes of issue 3, eager
    python scripts/bench_torch.py --compile          # eager and torch.compile
    python scripts/bench_torch.py --quick            # small sizes (a smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from nmn.torch import MultiHeadYatAttention, YatConv2D, YatNMN  # noqa: E402


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


def cases(quick: bool):
    if quick:
        return [
            ("dense 784->256, batch 64", lambda: YatNMN(784, 256), lambda: LinearReLU(784, 256), (64, 784)),
            ("conv 3x3 16->16, 8x16x16x16", lambda: YatConv2D(16, 16, 3, padding=1), lambda: ConvReLU(16, 16, 3),
             (8, 16, 16, 16)),
            ("attention E64 H4, B2 L128", lambda: MultiHeadYatAttention(64, 4), lambda: TorchMHA(64, 4),
             (2, 128, 64)),
        ]
    return [
        ("dense 784->256, batch 256", lambda: YatNMN(784, 256), lambda: LinearReLU(784, 256), (256, 784)),
        ("dense 4096->4096, batch 512", lambda: YatNMN(4096, 4096), lambda: LinearReLU(4096, 4096), (512, 4096)),
        ("conv 3x3 64->64, 32x64x32x32", lambda: YatConv2D(64, 64, 3, padding=1), lambda: ConvReLU(64, 64, 3),
         (32, 64, 32, 32)),
        ("attention E256 H8, B8 L512", lambda: MultiHeadYatAttention(256, 8), lambda: TorchMHA(256, 8),
         (8, 512, 256)),
    ]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_time(fn, device, warmup, repeat):
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def memory(model, x, device):
    """Peak CUDA bytes of forward + backward, or on CPU the bytes saved for backward."""
    if device.type == "cuda":
        model(x).sum().backward()                # allocate workspaces (cuBLAS, cuDNN) before measuring
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
    from torch.profiler import ProfilerActivity, profile as torch_profile

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

    from nmn.torch import (RotaryYatAttention, YatConv1D, YatConv3D, YatConvTranspose2D, YatEmbed)

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
        skip = {"alpha"} if getattr(layer, "use_performer", False) else set()   # ~0: cancels but for the 1e-6 shift
        pairs += [(p.grad, q.grad) for (n, p), q in zip(ref.named_parameters(), dev.parameters())
                  if p.grad is not None and n not in skip]
        for a, b in pairs:
            err = float((a - b.double().cpu()).abs().max() / a.abs().max().clamp_min(1e-30))
            worst = max(worst, err)
            assert err < 1e-3, f"{type(layer).__name__}: relative error {err:.3g} on {device}"
    embed = YatEmbed(10, 8).to(device)
    assert embed.attend(embed(torch.tensor([[1, 2]], device=device))).shape == (1, 2, 10)
    print(f"check on {device}: every layer kind matches CPU float64 (worst relative error {worst:.2g})\n")


def kernel_time(model, x, device, iters=3):
    """Summed GPU kernel time of one forward + backward (what the GPU works, without launch gaps)."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

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


def measure(model, x, device, warmup, repeat):
    model.zero_grad(set_to_none=True)

    def fwd():
        with torch.no_grad():
            model(x)

    def fwd_bwd():
        model(x).sum().backward()

    return median_time(fwd, device, warmup, repeat), median_time(fwd_bwd, device, warmup, repeat)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", default="", help="run the cases whose name contains this text")
    parser.add_argument("--profile", action="store_true", help="print the top kernels of each Yat fwd+bwd")
    parser.add_argument("--check", action="store_true", help="first compare every layer on --device with CPU float64")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}\n")
    if args.check:
        check_device(device)
    modes = ["eager"] + (["compiled"] if args.compile else [])
    rows = []
    for name, make_yat, make_ref, shape in cases(args.quick):
        if args.only and args.only not in name:
            continue
        x = torch.randn(shape, device=device)
        yat, ref = make_yat().to(device), make_ref().to(device)
        mem = memory(yat, x, device) / memory(ref, x, device)
        if args.profile:
            profile(yat, x, device, name)
        for mode in modes:
            y_m, r_m = (yat, ref) if mode == "eager" else (torch.compile(yat), torch.compile(ref))
            yf, yb = measure(y_m, x, device, args.warmup, args.repeat)
            rf, rb = measure(r_m, x, device, args.warmup, args.repeat)
            busy = ""
            if device.type == "cuda" and mode == "eager":
                busy = f"{kernel_time(y_m, x, device) / kernel_time(r_m, x, device):.2f}x"
            rows.append((name, mode, yf / rf, yb / rb, yf * 1e3, yb * 1e3, rf * 1e3, rb * 1e3, mem, busy))
            print(f"  {name} [{mode}] fwd {yf / rf:.2f}x fwd+bwd {yb / rb:.2f}x", file=sys.stderr, flush=True)
    mem_label = "peak memory" if device.type == "cuda" else "saved for backward"
    print(f"| layer (vs plain) | mode | fwd ratio | fwd+bwd ratio | Yat fwd / fwd+bwd (ms) | plain fwd / fwd+bwd (ms) "
          f"| {mem_label} ratio | GPU kernel-time ratio (fwd+bwd) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, mode, fr, br, yf, yb, rf, rb, mem, busy in rows:
        print(f"| {name} | {mode} | {fr:.2f}x | {br:.2f}x | {yf:.2f} / {yb:.2f} | {rf:.2f} / {rb:.2f} | {mem:.2f}x "
              f"| {busy or '-'} |")


if __name__ == "__main__":
    main()
