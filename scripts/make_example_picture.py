"""Writes examples/astronaut.png: scikit-image's ``astronaut`` (NASA, public domain) with a motion brush in its alpha.

Also examples/astronaut_512x320.png, the same picture resized and centre-cropped to Motion-I2V's 512 x 320 as the
authors' demo prepares its pictures (rows 96..415 of the square), for the Motion-I2V example graphs.

ComfyUI's LoadImage turns transparency into a MASK (mask = 1 - alpha), exactly as when a user paints a mask in
the front end's mask editor: here the flag is transparent, so it is the region that may move.
Run once; the result is committed so that the demo needs no scikit-image.
"""
from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The flag behind the astronaut, a polygon in the picture's pixels (512 x 512).
FLAG = [(0, 0), (96, 0), (94, 200), (66, 250), (36, 310), (22, 400), (16, 512), (0, 512)]


def main() -> None:
    import skimage.data
    from PIL import ImageDraw

    rgb = skimage.data.astronaut()
    brush = Image.new("L", (rgb.shape[1], rgb.shape[0]), 255)
    ImageDraw.Draw(brush).polygon(FLAG, fill=0)
    alpha = np.asarray(brush, dtype=np.uint8)
    out = ROOT / "examples" / "astronaut.png"
    picture = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    picture.save(out, optimize=True)
    print(out, out.stat().st_size)
    demo = ROOT / "examples" / "astronaut_512x320.png"
    picture.crop((0, 96, 512, 416)).save(demo, optimize=True)
    print(demo, demo.stat().st_size)


if __name__ == "__main__":
    main()
