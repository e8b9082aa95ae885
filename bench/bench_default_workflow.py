"""The default workflow's render at 512 x 512 on this machine: frames per second, against a plain reference.

What ``workflows/cinemagraph.json`` computes, through the library (no server, so only the pack's work is
timed): arrows -> Gaussian velocity field -> seamless Eulerian loop (forward and backward displacements) ->
softmax splatting of both with the motion-magnitude metric, hole filling, blending. The reference renders the
same frames with ``softsplat_reference`` (four ``scatter_add_`` calls) in the same run.

Run: ``.venv/bin/python bench/bench_default_workflow.py``
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
from workflow_specs.training_free import FLAG_ARROWS  # noqa: E402

import imagedynamics.ops.render as render_module  # noqa: E402
from imagedynamics.ops import eulerian, sparse_to_dense, trajectories  # noqa: E402
from imagedynamics.ops.render import motion_magnitude_metric, render_frames  # noqa: E402
from imagedynamics.ops.splat import softsplat, softsplat_reference  # noqa: E402

FRAMES = 48


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rgba = np.asarray(Image.open(ROOT / "example_inputs" / "astronaut.png"))
    image = torch.from_numpy(rgba[..., :3].copy()).float().div(255).permute(2, 0, 1)[None]
    mask = torch.from_numpy((rgba[..., 3] == 0).astype(np.float32))
    h, w = mask.shape

    def motion():
        arrows = trajectories.parse_arrows(json.dumps(FLAG_ARROWS), w, h)
        velocity = sparse_to_dense.apply_brush(sparse_to_dense.gaussian_arrow_field(arrows, h, w), mask)
        return eulerian.loop_motion_pair(velocity, FRAMES)

    forward, backward, alpha = motion()
    metric = motion_magnitude_metric(forward)

    def render():
        render_frames(image, forward, metric, blend=(backward, alpha))

    def render_reference():
        render_module.softsplat = softsplat_reference
        try:
            render_frames(image, forward, metric, blend=(backward, alpha))
        finally:
            render_module.softsplat = softsplat

    t_motion = best_of(3, motion)
    t_render = best_of(3, render)
    t_reference = best_of(3, render_reference)
    print(f"machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"motion (arrows -> field -> two-way Eulerian loop, {FRAMES} frames): {t_motion:.3f} s")
    print(f"render, pack softsplat:      {t_render:.3f} s = {2 * FRAMES / t_render:.1f} splats/s, "
          f"{FRAMES / t_render:.1f} looped frames/s")
    print(f"render, 4x scatter_add_ ref: {t_reference:.3f} s = {FRAMES / t_reference:.1f} looped frames/s")
    print(f"ratio reference / pack: {t_reference / t_render:.2f}x")
    print(f"whole workflow compute: {FRAMES / (t_motion + t_render):.1f} frames/s at {w}x{h}")


if __name__ == "__main__":
    main()
