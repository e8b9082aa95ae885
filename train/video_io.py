"""Reading videos into tensors with OpenCV (no weights, no downloads)."""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F


def read_video(path: str | os.PathLike, max_frames: int | None = None, start: int = 0, stride: int = 1,
               long_side: int | None = None) -> tuple[torch.Tensor, float]:
    """Read frames of a video file.

    Args:
        path: any file OpenCV can decode (mp4, avi, mov, webm, ...).
        max_frames: keep at most this many frames (after ``start`` and ``stride``).
        start: index of the first frame kept.
        stride: keep every ``stride``-th frame.
        long_side: if given, resize so the longer side has this many pixels (area interpolation).

    Returns:
        (frames, fps): frames [T, 3, H, W] float32 RGB in [0, 1]; fps of the kept frames.

    Raises:
        ValueError: the file cannot be opened or holds no frames in the requested range.
    """
    import cv2

    capture = cv2.VideoCapture(os.fspath(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open video {os.fspath(path)!r}")
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 30.0)
    frames: list[np.ndarray] = []
    index = 0
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            if index >= start and (index - start) % stride == 0:
                if long_side is not None:
                    h, w = frame.shape[:2]
                    scale = long_side / max(h, w)
                    frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"video {os.fspath(path)!r} has no frames from index {start}")
    array = np.stack(frames).astype(np.float32) / 255.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous(), fps / stride


def read_video_cropped(path: str | os.PathLike, width: int, height: int, stride: int = 1,
                       max_frames: int | None = None) -> tuple[torch.Tensor, float]:
    """Frames of a video centre-cropped to the aspect of width x height and resized: ([N, 3, H, W] in [0, 1], fps).

    Used by the trainers, which need every clip at the model's training size.
    """
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open video {str(path)!r}")
    vw, vh = capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
    capture.release()
    if vw <= 0 or vh <= 0:
        raise ValueError(f"video {str(path)!r} has no frame size")
    scale = max(width / vw, height / vh)  # cover the target, then crop
    long_side = max(int(round(max(vw, vh) * scale)), 1)
    frames, fps = read_video(path, max_frames=max_frames, stride=stride, long_side=long_side)
    h, w = frames.shape[-2:]
    # crop the largest centred window with the target aspect, then resize exactly
    if w / h > width / height:
        cw, ch = max(1, round(h * width / height)), h
    else:
        cw, ch = w, max(1, round(w * height / width))
    top, left = (h - ch) // 2, (w - cw) // 2
    frames = frames[:, :, top:top + ch, left:left + cw]
    if (ch, cw) != (height, width):
        frames = F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False,
                               antialias=True).clamp(0, 1)
    return frames, fps
