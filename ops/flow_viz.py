"""Previews of motion: flow colour wheel, arrows and tracks drawn over a picture, mask overlays.

Pictures are [3, H, W] float in [0, 1] (channel order RGB); colours are (r, g, b) tuples in [0, 1].
"""
from __future__ import annotations

import numpy as np
import torch

from .trajectories import Arrows, Tracks

__all__ = ["color_wheel", "draw_arrows", "draw_tracks", "flow_to_color", "overlay_mask", "TRACK_PALETTE"]

# Hue segments of the Middlebury colour wheel (Baker et al., "A Database and Evaluation Methodology for Optical Flow"):
# red-yellow, yellow-green, green-cyan, cyan-blue, blue-magenta, magenta-red, with these numbers of steps.
_SEGMENTS = (15, 6, 4, 11, 13, 6)

TRACK_PALETTE = ((1.0, 0.25, 0.25), (0.25, 0.8, 1.0), (1.0, 0.85, 0.1), (0.6, 1.0, 0.3), (1.0, 0.4, 0.9),
                 (1.0, 0.6, 0.2), (0.5, 0.5, 1.0), (0.2, 1.0, 0.8))


def color_wheel(device=None) -> torch.Tensor:
    """[55, 3] float32 in [0, 1]: the Middlebury wheel's colours, red -> yellow -> green -> cyan -> blue -> magenta
    and back towards red. In each segment one channel is 1, one ramps (up or down) in steps of 1/n, one is 0."""
    rows = []
    # (steps, channel that is 1, channel that ramps, ramp goes up)
    for n, full, ramp, up in zip(_SEGMENTS, (0, 1, 1, 2, 2, 0), (1, 0, 2, 1, 0, 2), (True, False, True, False, True,
                                                                                       False)):
        block = np.zeros((n, 3))
        block[:, full] = 1.0
        steps = np.floor(255.0 * np.arange(n) / n) / 255.0
        block[:, ramp] = steps if up else 1.0 - steps
        rows.append(block)
    return torch.tensor(np.concatenate(rows), dtype=torch.float32, device=device)


def flow_to_color(flow: torch.Tensor, max_magnitude: float | None = None) -> torch.Tensor:
    """Colour-code a flow with the Middlebury colour wheel: hue = direction, saturation = magnitude.

    Direction (y down): right = red, down = yellow/orange, left = cyan, up = blue/violet. Zero motion is white;
    a vector of length ``max_magnitude`` is the fully saturated wheel colour; longer vectors are the wheel colour
    darkened to 75 %.

    Args:
        flow: [2, H, W] or [T, 2, H, W], pixels (channel 0 = x right, channel 1 = y down).
        max_magnitude: normalisation length in pixels; default the largest vector of ``flow`` (per call, so a batch
            shares one scale).

    Returns:
        [3, H, W] or [T, 3, H, W] float32 RGB in [0, 1].

    Example:
        >>> f = torch.zeros(2, 4, 4); f[0, :, 2:] = 1.0
        >>> c = flow_to_color(f)
        >>> c[:, 0, 0].tolist(), [round(x, 2) for x in c[:, 0, 3].tolist()]
        ([1.0, 1.0, 1.0], [1.0, 0.0, 0.0])
    """
    if flow.ndim not in (3, 4) or flow.shape[-3] != 2:
        raise ValueError(f"flow must be [2, H, W] or [T, 2, H, W], got {tuple(flow.shape)}")
    f = flow.float()
    u, v = f[..., 0, :, :], f[..., 1, :, :]
    u = torch.nan_to_num(u, nan=0.0)
    v = torch.nan_to_num(v, nan=0.0)
    radius = torch.sqrt(u * u + v * v)
    scale = float(radius.max()) if max_magnitude is None else float(max_magnitude)
    if not scale > 0:
        scale = 1.0
    rad = radius / scale
    wheel = color_wheel(f.device)
    n = wheel.shape[0]
    angle = torch.atan2(-v, -u) / torch.pi  # in [-1, 1]
    fk = (angle + 1.0) / 2.0 * (n - 1)
    k0 = fk.floor().long().clamp(0, n - 1)
    k1 = (k0 + 1) % n
    frac = (fk - k0.float())[..., None]
    col = (1.0 - frac) * wheel[k0] + frac * wheel[k1]  # [..., H, W, 3]
    r = rad[..., None]
    col = torch.where(r <= 1.0, 1.0 - r * (1.0 - col), col * 0.75)
    return col.movedim(-1, -3).clamp(0.0, 1.0).contiguous()


def _to_canvas(image: torch.Tensor) -> np.ndarray:
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be [3, H, W] (or [1, H, W]), got {tuple(image.shape)}")
    img = image.detach().float().cpu()
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return np.ascontiguousarray(img.clamp(0, 1).permute(1, 2, 0).numpy())


def _from_canvas(canvas: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(canvas).permute(2, 0, 1).contiguous().to(like.device)


def _shifted(point, shift: int) -> tuple[int, int]:
    return int(round(float(point[0]) * (1 << shift))), int(round(float(point[1]) * (1 << shift)))


def draw_arrows(image: torch.Tensor, arrows: Arrows, color=(1.0, 0.2, 0.2), thickness: int = 2, *,
                use_speed: bool = False, tip_length: float = 0.25) -> torch.Tensor:
    """Draw arrows (start -> end) over a picture with OpenCV (anti-aliased, sub-pixel positions).

    Args:
        image: [3, H, W] in [0, 1].
        arrows: pixels.
        color: (r, g, b) in [0, 1].
        thickness: line width in pixels.
        use_speed: draw start -> start + speed * (end - start) instead of start -> end.
        tip_length: arrow head length as a fraction of the arrow's length.

    Returns:
        [3, H, W] float32, a new tensor.
    """
    import cv2

    canvas = _to_canvas(image)
    shift = 4
    ends = arrows.start + arrows.vectors() if use_speed else arrows.end
    for s, e in zip(arrows.start.tolist(), ends.tolist()):
        if s == e:
            cv2.circle(canvas, _shifted(s, shift), max(thickness, 1) << shift, tuple(map(float, color)), -1,
                       cv2.LINE_AA, shift)
            continue
        cv2.arrowedLine(canvas, _shifted(s, shift), _shifted(e, shift), tuple(map(float, color)), int(thickness),
                        cv2.LINE_AA, shift, tipLength=float(tip_length))
    return _from_canvas(canvas, image)


def draw_tracks(image: torch.Tensor, tracks: Tracks, colors=None, thickness: int = 2, *, point_radius: int = 3,
                frame: int | None = None) -> torch.Tensor:
    """Draw every track as a polyline with a dot at its start and an arrow head at its end (OpenCV).

    Args:
        image: [3, H, W] in [0, 1].
        tracks: pixels; hidden points (visibility False) break the polyline.
        colors: list of (r, g, b) in [0, 1], cycled over tracks (default :data:`TRACK_PALETTE`).
        thickness: line width in pixels.
        point_radius: radius of the start dot.
        frame: if given, draw the path only up to this frame and a dot at the track's position there.

    Returns:
        [3, H, W] float32, a new tensor.
    """
    import cv2

    canvas = _to_canvas(image)
    colors = list(colors) if colors is not None else list(TRACK_PALETTE)
    shift = 4
    pts = tracks.points.detach().cpu()
    vis = tracks.visibility.detach().cpu()
    last = tracks.num_frames - 1 if frame is None else max(0, min(int(frame), tracks.num_frames - 1))
    for n in range(tracks.num_tracks):
        color = tuple(float(c) for c in colors[n % len(colors)])
        for t in range(last):
            if vis[t, n] and vis[t + 1, n]:
                a, b = pts[t, n].tolist(), pts[t + 1, n].tolist()
                if t == last - 1 and frame is None and a != b:
                    total = float(torch.linalg.norm(pts[last, n] - pts[0, n])) or 1.0
                    seg = float(np.hypot(b[0] - a[0], b[1] - a[1]))
                    tip = min(0.9, max(0.2, 0.2 * total / max(seg, 1e-6)))
                    cv2.arrowedLine(canvas, _shifted(a, shift), _shifted(b, shift), color, int(thickness),
                                    cv2.LINE_AA, shift, tipLength=tip)
                else:
                    cv2.line(canvas, _shifted(a, shift), _shifted(b, shift), color, int(thickness), cv2.LINE_AA, shift)
        cv2.circle(canvas, _shifted(pts[0, n].tolist(), shift), int(point_radius) << shift, color, -1, cv2.LINE_AA,
                   shift)
        if frame is not None:
            cv2.circle(canvas, _shifted(pts[last, n].tolist(), shift), (int(point_radius) + 1) << shift, color, 1,
                       cv2.LINE_AA, shift)
    return _from_canvas(canvas, image)


def overlay_mask(image: torch.Tensor, mask: torch.Tensor, color=(0.2, 0.6, 1.0), alpha: float = 0.5) -> torch.Tensor:
    """Tint the masked region: ``image * (1 - alpha * m) + color * alpha * m``.

    Args:
        image: [3, H, W] in [0, 1].
        mask: [H, W] (or [1, H, W]) in [0, 1].
        color: (r, g, b) in [0, 1].
        alpha: opacity of the tint where m = 1.

    Returns:
        [3, H, W] float32.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3, H, W], got {tuple(image.shape)}")
    m = mask[0] if mask.ndim == 3 and mask.shape[0] == 1 else mask
    if m.ndim != 2 or tuple(m.shape) != tuple(image.shape[-2:]):
        raise ValueError(f"mask must be [H, W] = {tuple(image.shape[-2:])}, got {tuple(mask.shape)}")
    m = m.to(image.device, torch.float32).clamp(0, 1)[None] * float(alpha)
    tint = torch.tensor(color, dtype=torch.float32, device=image.device)[:, None, None]
    return image.float() * (1.0 - m) + tint * m
