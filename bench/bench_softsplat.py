"""Benchmark of ops/splat.py's softsplat against a straightforward reference and against backward warping.

Run:  .venv/bin/python bench/bench_softsplat.py [--rounds N] [--threads T] [--cpu-time] [--compile]

``--cpu-time`` runs on one thread and times with the thread's CPU clock instead of the wall clock: a measurement
that other processes competing for the cores barely disturb (use it when the machine is shared and busy).

Prints, measured side by side in one run on this machine:
- the machine's copy bandwidth (``tensor.clone()`` into fresh memory, and ``copy_`` into an existing buffer);
- for [1, 3, 512, 512] and [4, 32, 256, 256] float32, ``soft`` mode: the reference (four ``scatter_add_`` over a
  [B, C+1, H*W] accumulator), ``softsplat``, and ``backward_warp`` (``grid_sample`` backward warping of the same
  tensors, grid built from the same pixel flow; the bare ``grid_sample`` call with a prebuilt grid is listed
  too), with min / median wall times, effective GB/s and the two ratios the issue asks for;
- agreement with a brute-force loop reference (float32, pixels with coverage >= 1e-2, every mode);
- float16 / bfloat16 against float32, and a +-1e4 metric (no NaN / inf, no covered pixel emptied).
"""
from __future__ import annotations

import argparse
import datetime
import math
import pathlib
import platform
import statistics
import sys
import time
import types

import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[1]
if "imagedynamics" not in sys.modules:  # import the pack as a package without its ComfyUI entry point
    package = types.ModuleType("imagedynamics")
    package.__path__ = [str(ROOT)]
    sys.modules["imagedynamics"] = package

from imagedynamics.ops.splat import MODES, softsplat, softsplat_reference  # noqa: E402
from imagedynamics.ops.warp import backward_warp, flow_grid  # noqa: E402

SHAPES = [(1, 3, 512, 512), (4, 32, 256, 256)]


def smooth_flow(b: int, h: int, w: int, magnitude: float = 8.0, seed: int = 0) -> torch.Tensor:
    """A smooth random motion field (bilinear upsampling of a coarse random grid) plus 0.5 px of noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(b, 2, 8, 8, generator=g) * magnitude
    flow = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return flow + 0.5 * torch.randn(b, 2, h, w, generator=g)


def copy_bandwidth(mbytes: int = 64) -> tuple[float, float]:
    x = torch.rand(mbytes * 2**20 // 4)
    dst = torch.empty_like(x)
    fresh, reused = [], []
    for _ in range(10):
        t = time.perf_counter()
        y = x.clone()
        fresh.append(time.perf_counter() - t)
        del y
        t = time.perf_counter()
        dst.copy_(x)
        reused.append(time.perf_counter() - t)
    moved = 2 * x.numel() * 4 / 1e9  # read + write
    return moved / min(fresh), moved / min(reused)


CLOCK = time.perf_counter


def time_interleaved(fns: dict, rounds: int) -> dict:
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = CLOCK()
            fn()
            times[k].append(CLOCK() - t)
    return {k: (min(v), statistics.median(v)) for k, v in times.items()}


def _contenders(x, flow, metric, grid) -> dict:
    return {
        "ref": lambda: softsplat_reference(x, flow, metric, mode="soft"),
        "soft": lambda: softsplat(x, flow, metric, mode="soft"),
        "warp": lambda: backward_warp(x, flow),
        "grid": lambda: F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True),
    }


def brute_force(x, flow, metric, mode):
    """Loop reference in float64 from the definition (targets in float32 as the operator computes them)."""
    b, c, h, w = x.shape
    tx = (flow[:, 0].float() + torch.arange(w, dtype=torch.float32)).double()
    ty = (flow[:, 1].float() + torch.arange(h, dtype=torch.float32).view(h, 1)).double()
    out = torch.zeros(b, c, h, w, dtype=torch.float64)
    cov = torch.zeros(b, 1, h, w, dtype=torch.float64)
    xs = x.double()
    for bi in range(b):
        acc = {}
        for y in range(h):
            for x_ in range(w):
                px, py = float(tx[bi, y, x_]), float(ty[bi, y, x_])
                if not (math.isfinite(px) and math.isfinite(py)):
                    continue
                z = 0.0 if metric is None else float(metric[bi, 0, y, x_])
                x0, y0 = math.floor(px), math.floor(py)
                for yi in (y0, y0 + 1):
                    for xi in (x0, x0 + 1):
                        if 0 <= xi < w and 0 <= yi < h:
                            weight = (1 - abs(px - xi)) * (1 - abs(py - yi))
                            acc.setdefault((yi, xi), []).append((weight, z, xs[bi, :, y, x_]))
        for (yi, xi), items in acc.items():
            cov[bi, 0, yi, xi] = sum(i[0] for i in items)
            if mode == "sum":
                f = [i[0] for i in items]
                out[bi, :, yi, xi] = sum(fa * i[2] for fa, i in zip(f, items))
                continue
            if mode == "soft":
                top = max((i[1] for i in items if i[0] > 0), default=0.0)
                f = [i[0] * math.exp(i[1] - top) for i in items]
            elif mode == "linear":
                f = [i[0] * i[1] for i in items]
            else:
                f = [i[0] for i in items]
            if sum(f) > 0:
                out[bi, :, yi, xi] = sum(fa * i[2] for fa, i in zip(f, items)) / sum(f)
    return out, cov


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--cpu-time", action="store_true", help="one thread, timed by its CPU clock")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile of the reference (a candidate optional backend)")
    args = parser.parse_args()
    global CLOCK
    if args.cpu_time:
        torch.set_num_threads(1)
        CLOCK = time.thread_time
    elif args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if pathlib.Path("/proc/cpuinfo").exists() else platform.processor()
    load = open("/proc/loadavg").read().split()[:3] if pathlib.Path("/proc/loadavg").exists() else ["?"]
    print(f"# softsplat benchmark  {datetime.date.today()}  torch {torch.__version__}  {cpu}  "
          f"threads={torch.get_num_threads()}  clock={'thread CPU time' if args.cpu_time else 'wall'}  "
          f"loadavg(1,5,15 min)={' '.join(load)}")
    fresh, reused = copy_bandwidth()
    print(f"copy bandwidth: clone (fresh memory) {fresh:.1f} GB/s, copy_ (existing buffer) {reused:.1f} GB/s\n")

    print("| shape | reference ms (min/med) | softsplat ms (min/med) | backward_warp ms (min/med) "
          "| grid_sample only ms | ref / softsplat | softsplat / backward_warp | softsplat GB/s | backward_warp GB/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for shape in SHAPES:
        b, c, h, w = shape
        x = torch.rand(shape)
        flow = smooth_flow(b, h, w)
        metric = flow.norm(dim=1, keepdim=True)  # GID-like: moving pixels in front
        grid = flow_grid(flow)
        with torch.no_grad():
            t = time_interleaved(_contenders(x, flow, metric, grid), args.rounds)
        splat_bytes = (x.numel() * 2 + flow.numel() + metric.numel()) * 4
        warp_bytes = (x.numel() * 2 + flow.numel()) * 4
        r_ref = t["ref"][0] / t["soft"][0]
        r_warp = t["soft"][0] / t["warp"][0]
        verdicts.append((shape, r_ref, r_warp))
        print(f"| {list(shape)} | {t['ref'][0] * 1e3:.1f} / {t['ref'][1] * 1e3:.1f} "
              f"| {t['soft'][0] * 1e3:.1f} / {t['soft'][1] * 1e3:.1f} "
              f"| {t['warp'][0] * 1e3:.1f} / {t['warp'][1] * 1e3:.1f} | {t['grid'][0] * 1e3:.1f} "
              f"| {r_ref:.2f}x | {r_warp:.2f}x | {splat_bytes / t['soft'][0] / 1e9:.2f} "
              f"| {warp_bytes / t['warp'][0] / 1e9:.2f} |")
    for shape, r_ref, r_warp in verdicts:
        print(f"{list(shape)}: softsplat is {r_ref:.2f}x faster than the reference (need >= 2: "
              f"{'PASS' if r_ref >= 2 else 'FAIL'}), {r_warp:.2f}x the time of backward_warp (need <= 4: "
              f"{'PASS' if r_warp <= 4 else 'FAIL'})")

    print("\n## agreement with the brute-force loop reference (float32, pixels with coverage >= 1e-2)")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 20, 24, generator=g)
    flow = torch.randn(2, 2, 20, 24, generator=g) * 3
    flow[0, :, 5, 5] = float("nan")
    for mode in MODES:
        metric = None
        if mode == "soft":
            metric = torch.randn(2, 1, 20, 24, generator=g) * 3
        elif mode == "linear":
            metric = torch.rand(2, 1, 20, 24, generator=g) + 0.1
        with torch.no_grad():
            out, cov = softsplat(x, flow, metric, mode=mode, return_weight=True)
        ref, ref_cov = brute_force(x, flow, metric, mode)
        mask = ref_cov >= 1e-2
        err = ((out.double() - ref).abs() * mask).max().item()
        cov_err = (cov.double() - ref_cov).abs().max().item()
        print(f"{mode:6s}: max |out - brute force| = {err:.2e}, max |coverage - brute force| = {cov_err:.2e}  "
              f"({'PASS' if err <= 1e-5 else 'FAIL'} at 1e-5)")

    print("\n## low precision against float32 ([1, 3, 512, 512], soft)")
    x = torch.rand(1, 3, 512, 512)
    flow = smooth_flow(1, 512, 512, seed=3)
    metric = flow.norm(dim=1, keepdim=True)
    full = softsplat(x, flow, metric)
    for dtype in (torch.float16, torch.bfloat16):
        low = [t.to(dtype) for t in (x, flow, metric)]
        out = softsplat(*low)
        same_inputs = softsplat(*[t.float() for t in low])
        eps = torch.finfo(dtype).eps
        e1 = (out.float() - same_inputs).abs().max().item()
        e2 = (out.float() - full).abs()
        print(f"{str(dtype):15s}: max error vs float32 on the same (rounded) inputs {e1:.2e} = {e1 / eps:.2f} eps "
              f"(eps {eps:.1e}); vs float32 inputs: mean {e2.mean().item():.1e}, 99th percentile "
              f"{e2.flatten().kthvalue(int(0.99 * e2.numel())).values.item():.1e} (the rounded flow moves targets); "
              f"finite: {bool(torch.isfinite(out).all())}")

    print("\n## metric of +-1e4 (soft)")
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 256, 256, generator=g)
    flow = torch.randn(2, 2, 256, 256, generator=g) * 3
    metric = (torch.rand(2, 1, 256, 256, generator=g) * 2 - 1) * 1e4
    out, cov = softsplat(x, flow, metric, return_weight=True)
    emptied = int(((out == 0).all(dim=1, keepdim=True) & (cov >= 1e-3)).sum())
    ref = softsplat_reference(x, flow, metric)  # per-batch maximum only: far-behind-only pixels underflow to 0
    ref_emptied = int(((ref == 0).all(dim=1, keepdim=True) & (cov >= 1e-3)).sum())
    print(f"softsplat: NaN {int(out.isnan().sum())}, inf {int(out.isinf().sum())}, covered pixels emptied "
          f"{emptied} of {int((cov >= 1e-3).sum())}; the reference (global maximum only) empties {ref_emptied}")

    if args.compile:
        print("\n## torch.compile of the reference (candidate optional backend), [1, 3, 512, 512]")
        x = torch.rand(1, 3, 512, 512)
        flow = smooth_flow(1, 512, 512)
        metric = flow.norm(dim=1, keepdim=True)
        t0 = time.perf_counter()
        compiled = torch.compile(softsplat_reference, dynamic=False)
        compiled(x, flow, metric)
        print(f"compile time {time.perf_counter() - t0:.1f} s")
        t = time_interleaved({"compiled": lambda: compiled(x, flow, metric),
                              "softsplat": lambda: softsplat(x, flow, metric)}, args.rounds)
        print(f"compiled reference {t['compiled'][0] * 1e3:.1f} ms, softsplat {t['softsplat'][0] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
