"""Benchmark: phased inference with a shared noise reschedule vs independent segments (models/long_video).

Run:  .venv/bin/python bench/bench_long_video.py            (about a minute on a 2-core CPU)

1. Time and denoiser calls, K = 5 segments, gamma = 0.8, omega = 0.2, image noise prior, 25 DDIM steps, a
   3D-convolutional denoiser with a timestep embedding (``tests/video_denoisers.TinyVideoDenoiser``, width 32, 2 blocks,
   untrained: the cost is what matters), latents [1, 4, 16, 32, 32]. Phased and independent runs are
   interleaved in alternating order; the best of ``--repeats`` is kept for each (wall clock and process CPU
   time), and the median CPU time of one denoiser call in each sampler is printed (when it differs, other jobs
   on the machine loaded one of the runs).
   Pass: calls == count_denoiser_calls, wall-time ratio <= 0.6.
2. Peak memory, 10 segments vs 2 segments, each in a fresh subprocess: the peak resident set size during
   sampling minus the resident size just before (Linux VmHWM after a reset through /proc/self/clear_refs),
   with the segments streamed to a consumer that drops them. glibc's mmap threshold is fixed
   (MALLOC_MMAP_THRESHOLD_=65536) so that freed tensors leave the resident set at once and the peak measures
   live memory. Latents [1, 4, 16, 64, 64] (1 MiB per segment), 10 DDIM steps. A control run keeps every
   segment, to show that the measurement sees a growth in K. Pass: streamed ratio <= 1.3.

Torch runs on one thread: on a shared 2-core machine two OpenMP threads spin against the other jobs and made
the same denoiser call up to 7x slower and erratic; both samplers use the same setting.
3. Seams and diversity with the exact denoiser of a Gaussian video prior (``tests/video_denoisers.GaussianVideoDenoiser``):
   seam ratio (mean change at seams / inside segments) without and with a 4-frame cross-fade, for phased
   and independent sampling, the mean absolute difference between segments, and the standard deviation of
   the animated texture (latent minus the still picture) in segment 0 and in the later segments, next to that
   of exact draws from the prior.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import time
import types

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if "imagedynamics" not in sys.modules:  # import the pack as a package without its ComfyUI entry point
    package = types.ModuleType("imagedynamics")
    package.__path__ = [str(ROOT)]
    sys.modules["imagedynamics"] = package

from diffusers import DDIMScheduler  # noqa: E402

from imagedynamics.models.long_video import (  # noqa: E402
    RescheduleConfig,
    count_denoiser_calls,
    independent_sample,
    iter_independent_segments,
    iter_phased_segments,
    phased_sample,
    seam_statistics,
)

sys.path.insert(0, str(ROOT / "tests"))
from video_denoisers import GaussianVideoDenoiser, TinyVideoDenoiser  # noqa: E402


class Counting:
    """Counts denoiser calls and records the process CPU time of each."""

    def __init__(self, net):
        self.net = net
        self.calls = 0
        self.seconds = []

    def __call__(self, x, t, cond):
        self.calls += 1
        start = time.process_time()
        out = self.net(x, t, cond)
        self.seconds.append(time.process_time() - start)
        return out


def bench_time(repeats: int, steps: int = 25, segments: int = 5, gamma: float = 0.8) -> dict:
    torch.manual_seed(0)
    net = TinyVideoDenoiser(channels=4, width=32, depth=2).eval()
    shape = (1, 4, 16, 32, 32)
    image = torch.randn(1, 4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    scheduler = DDIMScheduler(clip_sample=False)
    config = RescheduleConfig(gamma=gamma, omega=0.2, num_segments=segments, seed=0)
    with torch.no_grad():                                     # warm-up
        for _ in range(3):
            net(torch.randn(shape), torch.tensor(500))
    best = {"phased": float("inf"), "independent": float("inf")}
    best_cpu = dict(best)
    per_call = {"phased": [], "independent": []}
    calls = {}
    for repeat in range(repeats):
        order = ("phased", "independent") if repeat % 2 == 0 else ("independent", "phased")
        for name in order:
            counting = Counting(net)
            start, start_cpu = time.perf_counter(), time.process_time()
            if name == "phased":
                phased_sample(counting, scheduler, shape, steps, None, config, image_latent=image,
                              on_segment=lambda s: None)
            else:
                independent_sample(counting, scheduler, shape, steps, None, config, on_segment=lambda s: None)
            best[name] = min(best[name], time.perf_counter() - start)
            best_cpu[name] = min(best_cpu[name], time.process_time() - start_cpu)
            per_call[name] += counting.seconds
            calls[name] = counting.calls
    median_ms = {k: 1000 * torch.tensor(v).median().item() for k, v in per_call.items()}
    return {"steps": steps, "segments": segments, "gamma": gamma, "shape": list(shape), "repeats": repeats,
            "time_phased_s": best["phased"], "time_independent_s": best["independent"],
            "time_ratio": best["phased"] / best["independent"],
            "cpu_phased_s": best_cpu["phased"], "cpu_independent_s": best_cpu["independent"],
            "cpu_ratio": best_cpu["phased"] / best_cpu["independent"],
            "call_ms_phased": median_ms["phased"], "call_ms_independent": median_ms["independent"],
            "calls_phased": calls["phased"], "calls_independent": calls["independent"],
            "calls_formula": count_denoiser_calls(steps, gamma, segments, True),
            "calls_ratio": calls["phased"] / calls["independent"]}


def _status_kib(key: str) -> int:
    return int(re.search(key + r":\s+(\d+)", pathlib.Path("/proc/self/status").read_text()).group(1))


def memory_child(segments: int, keep: bool) -> None:
    """Runs in a subprocess: prints the peak RSS growth (MiB) of one phased run."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = TinyVideoDenoiser(channels=4, width=8, depth=1).eval()
    shape = (1, 4, 16, 64, 64)                                # 1 MiB per segment latent
    scheduler = DDIMScheduler(clip_sample=False)
    config = RescheduleConfig(gamma=0.8, omega=0.2, num_segments=segments, seed=0)
    with torch.no_grad():
        net(torch.randn(shape), torch.tensor(500))
    kept = []
    consume = kept.append if keep else (lambda s: float(s.latent.mean()))
    rss_before = _status_kib("VmRSS")
    pathlib.Path("/proc/self/clear_refs").write_text("5")     # reset the peak (VmHWM) to the current RSS
    phased_sample(net, scheduler, shape, 10, None, config, on_segment=consume)
    peak = _status_kib("VmHWM")
    print(json.dumps({"segments": segments, "keep": keep, "peak_growth_mib": (peak - rss_before) / 1024,
                      "segment_mib": 4 * torch.Size(shape).numel() / 2 ** 20}))


def bench_memory() -> dict:
    results = {}
    for keep in (False, True):
        for segments in (2, 10):
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(segments)]
                                 + (["--keep"] if keep else []), capture_output=True, text=True, check=True,
                                 env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0"))
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results[("keep" if keep else "stream", segments)] = row["peak_growth_mib"]
            results["segment_mib"] = row["segment_mib"]
    return {"stream_2": results[("stream", 2)], "stream_10": results[("stream", 10)],
            "keep_2": results[("keep", 2)], "keep_10": results[("keep", 10)],
            "stream_ratio": results[("stream", 10)] / results[("stream", 2)],
            "keep_ratio": results[("keep", 10)] / results[("keep", 2)], "segment_mib": results["segment_mib"]}


def bench_quality(seeds: int = 4) -> dict:
    frames = 16
    shape = (1, 2, frames, 8, 8)
    scheduler = DDIMScheduler(clip_sample=False)
    rows = {}
    den = GaussianVideoDenoiser(torch.zeros(1, 2, 1, 8, 8), frames, scheduler.alphas_cumprod, std=0.5, frame_scale=2.0)
    rows["prior_texture_std"] = den.sample(64, 2, torch.Generator().manual_seed(0)).std().item()
    for name, sampler in (("phased", iter_phased_segments), ("independent", iter_independent_segments)):
        for overlap in (0, 4):
            ratios, zone_max, diffs, std_first, std_later = [], [], [], [], []
            for seed in range(seeds):
                mean = torch.randn(1, 2, 1, 8, 8, generator=torch.Generator().manual_seed(100 + seed))
                den = GaussianVideoDenoiser(mean, frames, scheduler.alphas_cumprod, std=0.5, frame_scale=2.0)
                config = RescheduleConfig(num_segments=5, overlap=overlap, seed=seed)
                chunks = [s.latent for s in sampler(den, scheduler, shape, 25, None, config)]
                stats = seam_statistics(chunks, overlap=overlap)
                ratios.append(stats["ratio"])
                zone_max.append(stats["zone_max_ratio"])
                if overlap == 0:
                    diffs += [(chunks[k] - chunks[j]).abs().mean().item() for j in range(5) for k in range(j + 1, 5)]
                    std_first.append((chunks[0] - mean).std().item())
                    std_later += [(c - mean).std().item() for c in chunks[1:]]
            rows[f"{name}_O{overlap}"] = {"seam_ratio": sum(ratios) / seeds, "zone_max_ratio": max(zone_max)}
            if diffs:
                rows[f"{name}_O{overlap}"]["segment_mad"] = sum(diffs) / len(diffs)
                rows[f"{name}_O{overlap}"]["texture_std"] = (sum(std_first) / len(std_first),
                                                             sum(std_later) / len(std_later))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-child", type=int, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, args.keep)
        return
    torch.set_num_threads(1)
    print(f"# long-video benchmark, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}")
    t = bench_time(args.repeats)
    print(f"time: K={t['segments']} gamma={t['gamma']} T={t['steps']} latents {t['shape']}")
    print(f"  denoiser calls: phased {t['calls_phased']} (formula {t['calls_formula']}), independent "
          f"{t['calls_independent']}, ratio {t['calls_ratio']:.3f}")
    print(f"  time: phased {t['time_phased_s']:.2f} s, independent {t['time_independent_s']:.2f} s, "
          f"ratio {t['time_ratio']:.3f} (target <= 0.6) -> {'PASS' if t['time_ratio'] <= 0.6 else 'FAIL'}")
    print(f"  process CPU time: phased {t['cpu_phased_s']:.2f} s, independent {t['cpu_independent_s']:.2f} s, "
          f"ratio {t['cpu_ratio']:.3f}; median denoiser call: phased {t['call_ms_phased']:.1f} ms, "
          f"independent {t['call_ms_independent']:.1f} ms (best of {t['repeats']} interleaved runs)")
    m = bench_memory()
    print(f"memory (peak RSS growth during sampling, segment latent {m['segment_mib']:.1f} MiB, 10 steps):")
    print(f"  streamed: K=2 {m['stream_2']:.1f} MiB, K=10 {m['stream_10']:.1f} MiB, ratio {m['stream_ratio']:.3f} "
          f"(target <= 1.3) -> {'PASS' if m['stream_ratio'] <= 1.3 else 'FAIL'}")
    print(f"  control, all segments kept: K=2 {m['keep_2']:.1f} MiB, K=10 {m['keep_10']:.1f} MiB, "
          f"ratio {m['keep_ratio']:.3f}")
    q = bench_quality()
    print("seams and diversity (Gaussian video prior, K=5, L=16, 25 DDIM steps, mean of 4 seeds):")
    print(f"  texture std of exact draws from the prior: {q.pop('prior_texture_std'):.3f}")
    for name, row in q.items():
        extra = ""
        if "segment_mad" in row:
            extra = (f", mean |segment i - segment j| {row['segment_mad']:.3f}, texture std segment 0 "
                     f"{row['texture_std'][0]:.3f} / later {row['texture_std'][1]:.3f}")
        print(f"  {name:15s} seam ratio {row['seam_ratio']:.2f}, worst seam-zone transition / outside "
              f"{row['zone_max_ratio']:.2f}{extra}")
    ok = t["calls_phased"] == t["calls_formula"] and t["time_ratio"] <= 0.6 and m["stream_ratio"] <= 1.3
    print("ALL PASS" if ok else "SOME TARGETS MISSED")


if __name__ == "__main__":
    main()
