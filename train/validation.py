"""What a user watches during training: animated WebP validation samples and the loss curve (PNG), with Pillow.

``write_animation`` writes frames [T, 3, H, W] in [0, 1] as a looping animated WebP; ``side_by_side`` puts the
real clip next to the model's rendering; ``plot_losses`` draws the CSV log of a run (one panel per phase, the loss
on a log scale, raw and smoothed). No plotting library is needed.
"""
from __future__ import annotations

import math
import os
import pathlib

import torch

PANEL = (320, 220)  # width, height of one phase's panel
MARGIN = (44, 22, 10, 26)  # left, top, right, bottom


def to_uint8_frames(frames: torch.Tensor):
    """[T, 3, H, W] float in [0, 1] -> list of PIL images (clamped, rounded)."""
    from PIL import Image

    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be [T, 3, H, W], got "
                         f"{tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__}")
    array = (frames.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in array]


def write_animation(path: str | os.PathLike, frames: torch.Tensor, fps: float = 8.0) -> pathlib.Path:
    """Write ``frames`` [T, 3, H, W] in [0, 1] as a looping animated WebP (atomic). Returns the path."""
    images = to_uint8_frames(frames)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    images[0].save(tmp, format="WEBP", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)),
                   loop=0, quality=85, method=4)
    os.replace(tmp, path)
    return path


def side_by_side(*clips: torch.Tensor, gap: int = 2) -> torch.Tensor:
    """Clips [T_i, 3, H, W] next to each other (white gaps), each repeated in time to the longest's length."""
    length = max(c.shape[0] for c in clips)
    height = max(c.shape[-2] for c in clips)
    parts = []
    for i, clip in enumerate(clips):
        clip = clip.detach().float().cpu()
        index = torch.arange(length) * clip.shape[0] // length
        clip = clip[index]
        if clip.shape[-2] < height:
            clip = torch.nn.functional.pad(clip, (0, 0, 0, height - clip.shape[-2]), value=1.0)
        if i:
            parts.append(torch.ones(length, 3, height, gap))
        parts.append(clip)
    return torch.cat(parts, dim=-1)


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_losses(rows: list[dict[str, str]], path: str | os.PathLike) -> pathlib.Path | None:
    """Draw the loss of every phase of a CSV log (rows with ``phase``, ``step``, ``loss``) into a PNG.

    One panel per phase, in the order the phases first appear; the y axis is log10(loss); the light line is
    every step, the dark one a running mean over a twentieth of the steps. Returns the path (None: no rows).
    """
    from PIL import Image, ImageDraw

    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        try:
            step, loss = int(row["step"]), float(row["loss"])
        except (KeyError, ValueError):
            continue
        if math.isfinite(loss) and loss > 0:
            series.setdefault(row.get("phase", ""), []).append((step, loss))
    if not series:
        return None
    width, height = PANEL
    image = Image.new("RGB", (width * len(series), height), "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = MARGIN
    for p, (name, points) in enumerate(series.items()):
        x0 = p * width
        points.sort()
        steps = [s for s, _ in points]
        logs = [math.log10(v) for _, v in points]
        lo, hi = min(logs), max(logs)
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        s0, s1 = steps[0], max(steps[-1], steps[0] + 1)
        box = (x0 + left, top, x0 + width - right, height - bottom)
        draw.rectangle(box, outline=(160, 160, 160))

        def xy(s, y, box=box, s0=s0, s1=s1, lo=lo, hi=hi):
            return (box[0] + (box[2] - box[0]) * (s - s0) / (s1 - s0),
                    box[3] - (box[3] - box[1]) * (y - lo) / (hi - lo))

        for decade in range(math.floor(lo), math.ceil(hi) + 1):
            if lo < decade < hi:
                y = xy(s0, decade)[1]
                draw.line((box[0], y, box[2], y), fill=(225, 225, 225))
                draw.text((x0 + 2, y - 6), f"1e{decade}", fill=(150, 150, 150))
        draw.text((x0 + 2, box[1]), f"{10 ** hi:.3g}", fill=(90, 90, 90))
        draw.text((x0 + 2, box[3] - 10), f"{10 ** lo:.3g}", fill=(90, 90, 90))
        if len(points) > 1:
            draw.line([xy(s, y) for s, y in zip(steps, logs)], fill=(170, 195, 235), width=1)
            smooth = _smooth(logs, max(1, len(logs) // 20))
            draw.line([xy(s, y) for s, y in zip(steps, smooth)], fill=(25, 70, 160), width=2)
        else:
            x, y = xy(steps[0], logs[0])
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(25, 70, 160))
        draw.text((box[0], 4), f"{name}: loss {points[-1][1]:.4g} at step {steps[-1]}", fill=(0, 0, 0))
        draw.text((box[0], height - bottom + 6), f"{s0}", fill=(90, 90, 90))
        draw.text((box[2] - 6 * len(str(steps[-1])), height - bottom + 6), f"{steps[-1]}", fill=(90, 90, 90))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
