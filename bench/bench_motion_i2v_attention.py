"""Benchmark: cost of Motion-I2V's motion-augmented temporal module vs the plain AnimateDiff temporal module.

Run:  .venv/bin/python bench/bench_motion_i2v_attention.py   (about half a minute on a 2-core CPU)

One temporal module (models/motion_i2v/temporal.py, random weights) at the stage-2 sizes of the official demo
(320x512 pictures, 16 frames, guidance batch of 2 videos), at the first U-Net level (C = 320, 40x64 tokens)
and the second one (C = 640, 20x32 tokens). The same module is timed without flows (vanilla: 16 keys per
query) and with flows (average splat of the reference features to 15 frames, then 31 interleaved keys per
query), interleaved runs, best of ``--repeats``. Reference = the vanilla module in the same run.
"""
from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import sys
import time
import types

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if "imagedynamics" not in sys.modules:  # import the pack as a package without its ComfyUI entry point
    package = types.ModuleType("imagedynamics")
    package.__path__ = [str(ROOT)]
    sys.modules["imagedynamics"] = package

from imagedynamics.models.motion_i2v.temporal import TemporalModule  # noqa: E402
from imagedynamics.ops.splat import softsplat  # noqa: E402


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(module, x, flows, reference, small, frames, repeats):
    """Best times of the vanilla module, the motion-augmented module and the splat alone, interleaved."""
    with torch.inference_mode():
        module(x, frames)
        module(x, frames, flows)                                      # warm-up
        vanilla = augmented = splat = float("inf")
        for _ in range(repeats):
            vanilla = min(vanilla, best_time(lambda: module(x, frames), 1))
            augmented = min(augmented, best_time(lambda: module(x, frames, flows), 1))
            splat = min(splat, best_time(lambda: softsplat(reference, small, mode="avg"), 1))
    return vanilla, augmented, splat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    frames, videos = 16, 2
    print(f"# motion-augmented temporal attention, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {datetime.date.today()}")
    print("| level | C | tokens | vanilla (s) | motion-augmented (s) | ratio | splat alone (s) |")
    print("|---|---|---|---|---|---|---|")
    for level, (channels, h, w) in enumerate([(320, 40, 64), (640, 20, 32)]):
        module = TemporalModule(channels).eval()
        torch.nn.init.normal_(module.temporal_transformer.proj_out.weight, std=0.02)
        x = torch.randn(videos * frames, channels, h, w)
        flows = torch.randn(frames, 2, 320, 512) * 8
        flows[0] = 0
        reference = torch.randn(videos * (frames - 1), channels, h, w)
        small = torch.randn(videos * (frames - 1), 2, h, w)
        vanilla, augmented, splat = measure(module, x, flows, reference, small, frames, args.repeats)
        print(f"| {level} | {channels} | {h}x{w} x {videos * frames} | {vanilla:.3f} | {augmented:.3f} | "
              f"{augmented / vanilla:.2f} | {splat:.3f} |")


if __name__ == "__main__":
    main()
