"""Benchmark: GID spectral-volume sampling, time per DDIM step per frequency slice and peak memory.

Measures, at 256 x 160 and 512 x 288 (the paper's two settings), K = 16 frequency slices, classifier-free
guidance on (two U-Net passes per step):

* plain DDIM sampling,
* with LoopGuidance (u = 200, 2 recurrences, a loop of half the period; the gradient goes through the U-Net,
  which is checkpointed),
* (256 x 160 only) LoopGuidance variants: without checkpointing the U-Net, and without differentiating
  through it (eps treated as constant).

Time per step = the median duration of the DDIM steps after the first (which includes lazy imports and warm-up),
from the sampler's progress callback, so set-up and the final decode are excluded;
per slice = that / K. The reference of each ratio (loop guidance overhead) is the plain run of the same size
in the same invocation. Every configuration runs in its own child process so that its peak memory is its own:
peak RSS (CPU, Linux /proc) or torch.cuda.max_memory_allocated (CUDA) above the memory held after the model
was built.

Widths: on CPU the default is the ``small`` preset's networks (U-Net 25 M, VAE 0.9 M parameters) run at the
full resolutions: the ``full`` networks (U-Net 100 M) take minutes per guided step on a 2-core CPU. On a GPU
pass ``--widths full``.

    .venv/bin/python bench/bench_gid.py [--widths small|full] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _import_package():
    import types

    if "imagedynamics" not in sys.modules:
        package = types.ModuleType("imagedynamics")
        package.__path__ = [str(ROOT)]
        sys.modules["imagedynamics"] = package


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def child(args) -> dict:
    import torch

    _import_package()
    from imagedynamics.models.gid import GIDConfig, build_gid, sample_spectrum
    from imagedynamics.models.guidance import LoopGuidance

    torch.manual_seed(0)
    w, h = (int(v) for v in args.size.split("x"))
    cfg = GIDConfig.preset(args.widths, width=w, height=h)
    model = build_gid(cfg, stats=torch.full((cfg.num_frequencies, 4), 40.0)).to(args.device).eval()
    model.requires_grad_(False)
    image = torch.rand(1, 3, h, w)
    guidance = None
    if args.mode != "plain":
        # a loop of half the period: over the period itself the series loops exactly and the sampler skips guidance
        guidance = LoopGuidance(weight=200.0, recurrences=2, cfg_w=1.75, num_frames=cfg.num_frames // 2,
                                checkpoint_denoiser=args.mode != "loop_nockpt",
                                through_denoiser=args.mode != "loop_const_eps")
    cuda = args.device.startswith("cuda")

    stamps: list[float] = []
    seen: list[int] = []

    def progress(done, total):
        if seen and seen[-1] == done:  # loop guidance also calls back inside a step (interrupt checks)
            return
        seen.append(done)
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
            f.write("5")
    steps = args.steps
    start = time.perf_counter()
    sample_spectrum(model, image, num_steps=steps, guidance_scale=1.75, seed=0, loop_guidance=guidance,
                    progress=progress)
    peak = (torch.cuda.max_memory_allocated() if cuda else _rss("VmHWM")) - base
    durations = [b - a for a, b in zip([start] + stamps[:-1], stamps)]
    timed = sorted(durations[1:])  # the first step includes lazy imports and allocator warm-up
    per_step = timed[len(timed) // 2]
    return {"size": args.size, "mode": args.mode, "widths": args.widths, "k": cfg.num_frequencies,
            "durations": durations, "per_step": per_step, "per_step_per_slice": per_step / cfg.num_frequencies,
            "peak_bytes": peak, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default=None, choices=("small", "full"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="256x160,512x288")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="256x160", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="plain", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.widths = args.widths or ("full" if args.device.startswith("cuda") else "small")
    if args.child:
        print("RESULT " + json.dumps(child(args)))
        return

    jobs = []
    for size in args.sizes.split(","):
        jobs += [(size, "plain"), (size, "loop")]
        if size == "256x160":
            jobs += [(size, "loop_nockpt"), (size, "loop_const_eps")]
    results = {}
    for size, mode in jobs:
        steps = 3 if mode == "plain" else 2
        cmd = [sys.executable, __file__, "--child", "--size", size, "--mode", mode, "--widths", args.widths,
               "--device", args.device, "--steps", str(steps)]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if not line:
            print(out.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"child {size} {mode} failed")
        r = json.loads(line[0][7:])
        results[(size, mode)] = r
        print(f"{size:>8} {mode:<15} step {r['per_step']:8.3f} s  per slice {r['per_step_per_slice'] * 1e3:9.1f} ms"
              f"  peak +{r['peak_bytes'] / 2**20:8.0f} MiB", flush=True)

    print(f"\nGID sampling, {args.widths} widths, K = 16, CFG on, device {args.device}")
    print("| size | mode | s / step | ms / step / slice | peak memory (MiB) | time vs plain | memory vs plain |")
    print("|---|---|---|---|---|---|---|")
    for (size, mode), r in results.items():
        ref = results[(size, "plain")]
        print(f"| {size} | {mode} | {r['per_step']:.3f} | {r['per_step_per_slice'] * 1e3:.1f} | "
              f"{r['peak_bytes'] / 2**20:.0f} | {r['per_step'] / ref['per_step']:.2f}x | "
              f"{r['peak_bytes'] / max(ref['peak_bytes'], 1):.2f}x |")


if __name__ == "__main__":
    main()
