"""Writes docs/icon.png, the pack's icon in the Comfy Registry (``Icon`` in pyproject.toml): the example picture's
flag coloured by its arrows' motion (hue = direction, as Preview Motion draws it), with the arrows on top.

Run once (``.venv/bin/python scripts/make_icon.py``); the result is committed.
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _package import import_pack  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
CROP, SIZE = 240, 400  # the top-left 240 x 240 of the picture (flag and face), shown at 400 x 400
ARROWS = [((15, 25), (55, 45)), ((70, 40), (75, 85)), ((30, 110), (10, 150)), ((60, 170), (85, 205))]


def main() -> None:
    import_pack()
    from imagedynamics.ops.flow_viz import draw_arrows, flow_to_color
    from imagedynamics.ops.sparse_to_dense import gaussian_arrow_field
    from imagedynamics.ops.trajectories import Arrows

    rgba = np.asarray(Image.open(ROOT / "example_inputs" / "astronaut.png").convert("RGBA"), dtype=np.float32) / 255
    picture = torch.from_numpy(rgba[:CROP, :CROP, :3].copy()).permute(2, 0, 1)
    moving = torch.from_numpy(1.0 - rgba[:CROP, :CROP, 3].copy())  # the transparent flag: the motion brush
    arrows = Arrows(start=torch.tensor([a for a, _ in ARROWS], dtype=torch.float32),
                    end=torch.tensor([b for _, b in ARROWS], dtype=torch.float32))
    field = gaussian_arrow_field(arrows, CROP, CROP, sigma=40.0, threshold=0.0)
    colour = flow_to_color(field * moving)
    blended = picture * (1 - 0.6 * moving) + colour * 0.6 * moving
    big = torch.nn.functional.interpolate(blended[None], size=(SIZE, SIZE), mode="bicubic", align_corners=False)[0]
    scale = SIZE / CROP
    drawn = draw_arrows(big.clamp(0, 1), Arrows(start=arrows.start * scale, end=arrows.end * scale),
                        color=(1.0, 1.0, 1.0), thickness=5)
    out = ROOT / "docs" / "icon.png"
    Image.fromarray((drawn.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)).save(out, optimize=True)
    print(out, out.stat().st_size)


if __name__ == "__main__":
    main()
