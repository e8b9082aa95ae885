"""Loop quality per Eulerian loop mode, measured on rendered 8-bit frames: sharpness and seam (issue 17).

For each scene, the Eulerian loop is rendered the way SoftmaxSplatRender renders EulerianMotion's output (motion-
magnitude metric, fill on), quantised to 8 bits as a saved file would be, and measured with ``ops.loop_metrics``:

- sharpness: the moving region's mean gradient magnitude, worst frame / frame 0 (1 = no frame is softer than the
  picture; a one-cross-fade loop's half-way frame double-exposes the region: two copies of the texture at half
  contrast each);
- seam: the wrap step (last frame -> first) over the median of the other steps (1 = seamless; ~0 = a hold; >> 1 a
  pop); max step: the largest step over the median (a pop anywhere in the loop).

Modes: ``old`` is the pack's blend before issue 17 (one cross-fade over the loop, plain lerp of the two filled
renders), reproduced here for reference; ``one cross-fade`` adds the per-pixel coverage weights; ``seamless`` is
EulerianMotion's default now (each region cross-fades at its own time over a fifth of the loop, coverage weights);
``ping-pong`` and ``no loop`` for comparison.

Scenes: the default workflow (workflows/cinemagraph.json: the astronaut's flag at 512 x 512, its arrows, 48 frames)
and two textured test pictures (scikit-image's ``coffee`` at 384 x 256 and a 256 x 256 crop of ``grass``, two arrows,
the whole picture flowing, 48 frames). ``no loop`` shows what the splatting alone costs: bilinear splatting at
sub-pixel offsets softens fine texture (grass's blades most), whatever the loop does.

Run: ``.venv/bin/python bench/bench_loops.py``
"""
from __future__ import annotations

import json
import pathlib
import sys
import time

import numpy as np
import torch
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
import conftest  # noqa: E402,F401  (makes the pack importable as `imagedynamics`)
from media import picture  # noqa: E402
from workflow_specs.training_free import FLAG_ARROWS  # noqa: E402

from imagedynamics.ops import eulerian, loop_metrics, sparse_to_dense, trajectories  # noqa: E402
from imagedynamics.ops.containers import LoopBlend  # noqa: E402
from imagedynamics.ops.render import motion_magnitude_metric, render_frames  # noqa: E402

FRAMES = 48
TEXTURE_ARROWS = {"arrows": [{"start": [60, 80], "end": [80, 90], "speed": 0.05},
                           {"start": [180, 170], "end": [200, 175], "speed": 0.05}]}


def flag_scene():
    rgba = np.asarray(Image.open(ROOT / "example_inputs" / "astronaut.png"))
    image = torch.from_numpy(rgba[..., :3].copy()).float().div(255).permute(2, 0, 1)[None]
    brush = torch.from_numpy((rgba[..., 3] == 0).astype(np.float32))  # Load Image's MASK: the transparent flag
    h, w = brush.shape
    arrows = trajectories.parse_arrows(json.dumps(FLAG_ARROWS), w, h)
    velocity = sparse_to_dense.apply_brush(sparse_to_dense.gaussian_arrow_field(arrows, h, w), brush)
    return "default workflow (flag, 512 px)", image, velocity, brush


def texture_scene(name: str):
    """A scikit-image picture, the whole of it flowing along two arrows; measured away from the borders."""
    image = picture(name)
    if name == "grass":  # a 256 x 256 crop at full resolution (downscaled, its blades are a pixel wide)
        image = image[..., :256, :256]
    else:
        image = torch.nn.functional.interpolate(image, size=(256, 384), mode="area")
    h, w = image.shape[-2:]
    arrows = trajectories.parse_arrows(json.dumps(TEXTURE_ARROWS), w, h)
    velocity = sparse_to_dense.gaussian_arrow_field(arrows, h, w)
    inside = torch.zeros(h, w)
    inside[16:-16, 16:-16] = 1  # away from the borders, where content enters the picture
    return f"textured picture ({name}, {w} x {h})", image, velocity, inside


def render_mode(mode: str, image: torch.Tensor, velocity: torch.Tensor, brush: torch.Tensor | None) -> torch.Tensor:
    """8-bit frames [T, 3, H, W] of one loop mode, as EulerianMotion + SoftmaxSplatRender make them."""
    h, w = image.shape[-2:]
    still = None if brush is None else brush <= 0
    if mode in ("ping-pong", "no loop"):
        d = eulerian.loop_motion(velocity, FRAMES, "pingpong" if mode == "ping-pong" else "none")
        if still is not None:
            d[:, :, still] = 0
        frames, _ = render_frames(image, d, motion_magnitude_metric(d))
    else:
        forward, backward, alpha = eulerian.loop_motion_pair(velocity, FRAMES)
        if still is not None:
            forward[:, :, still] = 0
            backward[:, :, still] = 0
        if mode == "seamless":
            moving = velocity.abs().amax(dim=0) > 0
            blend = LoopBlend(backward, alpha, eulerian.loop_phase(h, w, moving), eulerian.PHASE_WINDOW)
        else:
            blend = LoopBlend(backward, alpha)
        frames, _ = render_frames(image, forward, motion_magnitude_metric(forward), blend=blend,
                                  blend_coverage=mode != "old")
    return (frames.clamp(0, 1) * 255).round() / 255


MODES = ("old", "one cross-fade", "seamless", "ping-pong", "no loop")


def main() -> None:
    print(f"machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}; {FRAMES} frames, 8-bit")
    for scene in (flag_scene, lambda: texture_scene("coffee"), lambda: texture_scene("grass")):
        name, image, velocity, region = scene()
        brush = region if scene is flag_scene else None
        print(f"\n{name}: max speed {float(velocity.norm(dim=0).max()):.2f} px/frame")
        print("| mode | sharpness min / frame 0 | at frame | mean | seam (wrap / median step) | max step / median "
              "| render |")
        print("|---|---|---|---|---|---|---|")
        for mode in MODES:
            start = time.perf_counter()
            frames = render_mode(mode, image, velocity, brush)
            seconds = time.perf_counter() - start
            ratio = loop_metrics.sharpness_ratio(frames, region)
            steps = loop_metrics.frame_steps(frames, mask=region)
            print(f"| {mode} | {float(ratio.min()):.3f} | {int(ratio.argmin())} | {float(ratio.mean()):.3f} "
                  f"| {loop_metrics.seam_ratio(frames, region):.2f} | {float(steps.max() / steps[:-1].median()):.2f} "
                  f"| {seconds:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
