"""LVMM at the paper's setting (512 x 512 frames, z 4 x 16 x 16): time per denoising step and peak memory for
K = 8, 40 and 150 latent frames, and the renderer's cost per frame.

Run: ``.venv/bin/python bench/bench_lvmm.py [--threads 1] [--repeats 3] [--ks 8,40,150]``

Every configuration runs in a fresh subprocess (so that its peak resident memory can be read from
``getrusage``): the model (random weights, ``LVMMConfig.preset("paper")``, 93 M parameters) is built, one
warm-up step runs, then ``--repeats`` timed steps. A denoising step is one DDIM step with classifier-free
guidance: the 3D U-Net on a batch of 2 (conditional + null) of [4 + 4 + 1, K, 16, 16] inputs. Peak memory is
the growth of the process's peak RSS over the step (model weights excluded).

Reference (same run): K = 8, the paper's trained length. The ratios show how the cost grows with K; the last
table compares sampling 150 frames directly (one K = 150 volume) with phased inference over segments of 8
latent frames (``models.long_video``, gamma = 0.8, image prior), whose per-call cost is the K = 8 step.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time, types, pathlib
root = pathlib.Path(sys.argv[1])
if "imagedynamics" not in sys.modules:
    pkg = types.ModuleType("imagedynamics"); pkg.__path__ = [str(root)]; sys.modules["imagedynamics"] = pkg
import torch
torch.set_num_threads(int(sys.argv[2]))
kind, k, repeats = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
from imagedynamics.models.lvmm import LVMM, LVMMConfig
from imagedynamics.models.lvmm.sampler import make_eps_fn
torch.manual_seed(0)
model = LVMM(LVMMConfig.preset("paper")).eval().requires_grad_(False)
def rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad():
    if kind == "denoiser":
        image = torch.rand(1, 3, 512, 512)
        visual = model.visual_component(image)
        tokens = model.condition(image)
        eps_fn = make_eps_fn(model, visual, tokens, 1.0)
        x = torch.randn(1, 4, k, 16, 16)
        run = lambda: eps_fn(x, torch.tensor(500))
    elif kind == "render":
        image = torch.rand(1, 3, 512, 512)
        pyramid = model.renderer.pyramid(image)
        flow, omega = torch.randn(k, 2, 128, 128), torch.rand(k, 1, 128, 128)
        run = lambda: model.render(image, flow, omega, pyramid)
    elif kind == "decode":
        z = torch.randn(k, 4, 16, 16)
        run = lambda: model.decode_motion(z)
    base = rss_kb()
    run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    peak = rss_kb()
print(json.dumps({"seconds": min(times), "peak_mb": (peak - base) / 1024.0,
                  "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                  "denoiser_m": sum(p.numel() for p in model.denoiser.parameters()) / 1e6}))
"""


def measure(kind: str, k: int, threads: int, repeats: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(threads), kind, str(k), str(repeats)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ks", default="8,40,150", help="latent frame counts; the first is the reference")
    parser.add_argument("--steps", type=int, default=250, help="DDIM steps for the whole-sampling estimate")
    args = parser.parse_args(argv)
    ks = [int(v) for v in args.ks.split(",")]
    print(f"LVMM paper preset, 512 x 512, z 4 x 16 x 16; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch threads {args.threads}, {datetime.date.today()}")
    rows = {k: measure("denoiser", k, args.threads, args.repeats) for k in ks}
    ref = rows[ks[0]]
    print(f"\nDenoising step (CFG: batch 2); 3D U-Net {ref['denoiser_m']:.1f} M of the model's {ref['params_m']:.1f} M "
          "parameters")
    print(f"{'K':>5} {'s / step':>10} {'x K=' + str(ks[0]):>10} {'peak MB':>9} {'x K=' + str(ks[0]):>10} "
          f"{'ms / frame':>11}")
    for k in ks:
        r = rows[k]
        print(f"{k:>5} {r['seconds']:>10.3f} {r['seconds'] / ref['seconds']:>10.2f} {r['peak_mb']:>9.0f} "
              f"{r['peak_mb'] / max(ref['peak_mb'], 1e-9):>10.2f} {1000 * r['seconds'] / k:>11.1f}")

    from importlib import import_module

    sys.path.insert(0, str(ROOT.parent))
    import types

    if "imagedynamics" not in sys.modules:
        pkg = types.ModuleType("imagedynamics")
        pkg.__path__ = [str(ROOT)]
        sys.modules["imagedynamics"] = pkg
    count = import_module("imagedynamics.models.long_video").count_denoiser_calls
    seg = ks[0]
    print(f"\nWhole sampling of the longest clip ({args.steps} DDIM steps), estimated from the step times:")
    longest = ks[-1]
    segments = -(-longest // seg)
    calls = count(args.steps, 0.8, segments)
    direct = args.steps * rows[longest]["seconds"]
    phased = calls * ref["seconds"]
    print(f"  direct, one K = {longest} volume: {direct:9.1f} s, peak {rows[longest]['peak_mb']:.0f} MB")
    print(f"  phased, {segments} segments of {seg} ({calls} calls): {phased:9.1f} s, peak {ref['peak_mb']:.0f} MB"
          f"  -> time x{phased / direct:.2f}, memory x{ref['peak_mb'] / max(rows[longest]['peak_mb'], 1e-9):.2f}")

    render = {n: measure("render", n, args.threads, args.repeats) for n in (1, 8)}
    decode = measure("decode", 8, args.threads, args.repeats)
    print("\nRenderer R at 512 x 512 (pyramid of I0 reused) and motion decoder D:")
    print(f"  R, 1 frame / pass: {1000 * render[1]['seconds']:.0f} ms, peak {render[1]['peak_mb']:.0f} MB")
    print(f"  R, 8 frames / pass: {1000 * render[8]['seconds'] / 8:.0f} ms per frame "
          f"(x{render[8]['seconds'] / 8 / render[1]['seconds']:.2f} of 1 / pass), peak {render[8]['peak_mb']:.0f} MB")
    print(f"  D, 8 latents: {1000 * decode['seconds'] / 8:.1f} ms per frame, peak {decode['peak_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
