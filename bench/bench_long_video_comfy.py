"""Benchmark: LongVideoReschedule's ComfyUI path vs K independent KSampler runs, same model and settings.

Run:  .venv/bin/python bench/bench_long_video_comfy.py            (about a minute on a 2-core CPU)

In-process with ComfyUI's modules from ``.host/ComfyUI`` (no server): the tiny Cosmos-Predict2 video model of
the integration tests (``tests/integration/tiny_long_video.py``: 15.3 M parameters, a real ComfyUI
``CosmosPredict2`` loaded by ``comfy.sd.load_diffusion_model``), a 5-D latent [1, 16, 4, 8, 8] (64 tokens),
1024-wide conditioning tokens, cfg 4, euler / simple, T = 25 steps, K = 5 segments.

* phased: ``nodes.motion.long_video.sample_long_video`` (gamma 0.8, omega 0.2, image noise prior);
* independent: ``comfy.sample.sample`` (what KSampler runs) K times with seeds seed .. seed + K - 1.

Denoiser evaluations are counted with a ``sampler_post_cfg_function`` (once per evaluation, cond and uncond
batched). Runs are interleaved in alternating order; the best of ``--repeats`` wall-clock and process-CPU times
is kept for each. Pass: phased calls == T + (K-1)(T-M) + (T-M) with M = ceil(gamma T), time ratio <= 0.6.
Torch runs on one thread (on a shared 2-core machine two OpenMP threads spinning against other jobs make every
operator of a small model tens of times slower, and erratic).
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import pathlib
import platform
import sys
import tempfile
import time
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
HOST = ROOT / ".host" / "ComfyUI"


def setup():
    sys.path.insert(0, str(HOST))
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from comfy.cli_args import args

    args.cpu = True
    if "imagedynamics" not in sys.modules:  # the pack as a package, without its ComfyUI entry point
        package = types.ModuleType("imagedynamics")
        package.__path__ = [str(ROOT)]
        sys.modules["imagedynamics"] = package


class Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self, args):
        self.calls += 1
        return args["denoised"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--segments", type=int, default=5)
    parser.add_argument("--gamma", type=float, default=0.8)
    options = parser.parse_args()
    setup()
    os.chdir(HOST)
    import comfy.sample
    import comfy.sd
    import torch
    from tiny_long_video import make_tiny_cosmos

    from imagedynamics.nodes.motion.long_video import make_config, sample_long_video

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "tiny_cosmos.safetensors"
        make_tiny_cosmos(path)
        model = comfy.sd.load_diffusion_model(str(path))
    counter = Counter()
    model = model.clone()
    model.set_model_sampler_post_cfg_function(counter)
    g = torch.Generator().manual_seed(0)
    positive, negative = [[torch.randn(1, 77, 1024, generator=g), {}]], [[torch.zeros(1, 77, 1024), {}]]
    latent = {"samples": torch.zeros(1, 16, 4, 8, 8)}
    t, k, gamma, seed, cfg = options.steps, options.segments, options.gamma, 7, 4.0
    config = make_config("bench", gamma=gamma, omega=0.2, num_segments=k, overlap=0, crossfade=True,
                         noise_prior="image", shuffle="frame", seed=seed)

    def phased():
        return sample_long_video(model, positive, negative, latent, seed=seed, steps=t, cfg=cfg, sampler_name="euler",
                                 scheduler="simple", config=config)["samples"]

    def independent():
        out = []
        for i in range(k):
            noise = comfy.sample.prepare_noise(latent["samples"], seed + i)
            out.append(comfy.sample.sample(model, noise, t, cfg, "euler", "simple", positive, negative,
                                           latent["samples"], disable_pbar=True, seed=seed + i))
        return torch.cat(out, dim=2)

    runs = {"phased": phased, "independent": independent}
    best = {name: {"wall": math.inf, "cpu": math.inf, "calls": None} for name in runs}
    phased()  # warm-up (model load, first-call allocations)
    for r in range(options.repeats):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            counter.calls = 0
            wall, cpu = time.perf_counter(), time.process_time()
            video = runs[name]()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert video.shape[2] == k * latent["samples"].shape[2] and torch.isfinite(video).all()
            best[name]["wall"] = min(best[name]["wall"], wall)
            best[name]["cpu"] = min(best[name]["cpu"], cpu)
            best[name]["calls"] = counter.calls
            print(f"  run {r + 1} {name:11s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  calls {counter.calls}")
    m = math.ceil(gamma * t - 1e-9)
    formula = t + (k - 1) * (t - m) + (t - m)
    print(f"\n{datetime.date.today()}  {platform.machine()}  {os.cpu_count()} CPUs  torch {torch.__version__}  "
          f"1 thread")
    print(f"K = {k}, T = {t}, gamma = {gamma}: M = {m}; formula T + (K-1)(T-M) + (T-M) = {formula}; "
          f"independent K T = {k * t}")
    p, i = best["phased"], best["independent"]
    print(f"calls      phased {p['calls']:5d}   independent {i['calls']:5d}   ratio {p['calls'] / i['calls']:.3f}")
    print(f"wall (s)   phased {p['wall']:5.2f}   independent {i['wall']:5.2f}   ratio {p['wall'] / i['wall']:.3f}")
    print(f"cpu (s)    phased {p['cpu']:5.2f}   independent {i['cpu']:5.2f}   ratio {p['cpu'] / i['cpu']:.3f}")
    ok = p["calls"] == formula and i["calls"] == k * t and p["wall"] / i["wall"] <= 0.6
    print("PASS" if ok else "FAIL", "(calls == formula, wall ratio <= 0.6)")


if __name__ == "__main__":
    main()
