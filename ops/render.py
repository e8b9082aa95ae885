"""Rendering frames from a picture and its reference-anchored motion by forward splatting (no weights).

GID renders frame t by softmax-splatting I0 with the displacement F_t, weighting by the mean motion magnitude
(moving pixels are assumed to be in front), then filling what no pixel reached. This module does that on
pixels, chunk by chunk, writing into a preallocated output so memory stays flat in the number of frames.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .fill import fill_holes
from .splat import softsplat

METRICS = ("motion", "none", "custom")
_METRIC_CHUNK = 16  # frames reduced at once by motion_magnitude_metric


def motion_magnitude_metric(displacement: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """GID's splat weight: W(p) = (1/T) sum_t ||F_t(p)||_2, times ``temperature``.

    Args:
        displacement: [T, 2, H, W] pixels.
        temperature: scale applied before the softmax (larger = sharper preference for moving pixels).

    Returns:
        [1, 1, H, W] float32 metric (larger = in front).
    """
    if displacement.ndim != 4 or displacement.shape[1] != 2:
        raise ValueError(f"displacement must be [T, 2, H, W], got {tuple(displacement.shape)}")
    total = torch.zeros(1, 1, *displacement.shape[-2:], dtype=torch.float32, device=displacement.device)
    for start in range(0, displacement.shape[0], _METRIC_CHUNK):  # chunks: no [T, 1, H, W] temporary
        chunk = displacement[start:start + _METRIC_CHUNK].float()
        total += chunk.norm(dim=1, keepdim=True).sum(dim=0, keepdim=True)
    return total * (float(temperature) / max(displacement.shape[0], 1))


def render_frames(image: torch.Tensor, displacement: torch.Tensor, metric: torch.Tensor | None = None,
                  fill: bool = True, chunk_size: int = 8, out: torch.Tensor | None = None,
                  blend: tuple[torch.Tensor, torch.Tensor] | None = None,
                  on_frames: Callable[[int, int], None] | None = None,
                  hole_threshold: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-splat ``image`` with every frame of ``displacement``; fill holes; return frames and hole fractions.

    Args:
        image: [1, C, H, W] the source picture I0 (any float dtype; computed in float32).
        displacement: [T, 2, H, W] reference-anchored displacements in pixels.
        metric: [1, 1, H, W] softmax-splatting metric (or [T, 1, H, W], one per frame, e.g. brightness
            constancy against known target frames), or None for average splatting.
        fill: fill pixels no source pixel reached (multi-scale push-pull) so no empty pixel remains.
        chunk_size: frames splatted at once; peak memory is about one chunk plus the output.
        out: optional preallocated [T, C, H, W] output (e.g. on the intermediate device).
        blend: optional (second_displacement [T, 2, H, W], alpha [T]) for looping by two-way blending:
            frame t = (1 - alpha_t) * render(displacement_t) + alpha_t * render(second_t), as in
            Holynski et al.'s Eulerian looping (both renders filled before blending).
        on_frames: called with (frames done, total) after each chunk (progress, interrupts).
        hole_threshold: bilinear coverage under which a pixel counts as a hole.

    Returns:
        (frames [T, C, H, W] in ``image``'s dtype, hole_fraction [T] before filling).

    Example:
        >>> img = torch.rand(1, 3, 32, 32)
        >>> disp = torch.zeros(4, 2, 32, 32)
        >>> frames, holes = render_frames(img, disp)
        >>> bool(torch.allclose(frames, img.expand(4, -1, -1, -1))), float(holes.max())
        (True, 0.0)
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be [1, C, H, W], got {tuple(image.shape)}")
    if displacement.ndim != 4 or displacement.shape[1] != 2 or displacement.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"displacement must be [T, 2, {image.shape[-2]}, {image.shape[-1]}], "
                         f"got {tuple(displacement.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if metric is not None and (metric.ndim != 4 or metric.shape[0] not in (1, displacement.shape[0])
                               or metric.shape[1] != 1 or metric.shape[-2:] != image.shape[-2:]):
        raise ValueError(f"metric must be [1 or T, 1, H, W] at the picture's size, got {tuple(metric.shape)}")
    total = displacement.shape[0]
    channels = image.shape[1]
    if out is None:
        out = torch.empty(total, channels, *image.shape[-2:], dtype=image.dtype, device=image.device)
    holes = torch.empty(total, dtype=torch.float32)
    source = image.float()
    moving = _moving_pixels(displacement, None if blend is None else blend[0])
    for start in range(0, total, chunk_size):
        stop = min(start + chunk_size, total)
        chunk_metric = metric if metric is None or metric.shape[0] == 1 else metric[start:stop]
        frames, hole = _render_chunk(source, displacement[start:stop], chunk_metric, fill, hole_threshold, moving)
        if blend is not None:
            second, alpha = blend
            other, other_hole = _render_chunk(source, second[start:stop], chunk_metric, fill, hole_threshold,
                                              moving)
            a = alpha[start:stop].to(frames).view(-1, 1, 1, 1)
            frames = torch.lerp(frames, other, a)  # exact where both renders agree (still pixels)
            hole = torch.maximum(hole, other_hole)
        out[start:stop] = frames.to(out.dtype).to(out.device)
        holes[start:stop] = hole
        if on_frames is not None:
            on_frames(stop, total)
    return out, holes


def _moving_pixels(displacement: torch.Tensor, second: torch.Tensor | None) -> torch.Tensor | None:
    """[1, 1, H, W] mask of source pixels that move in some frame, or None when every pixel moves."""
    moving = None
    for flow in (displacement, second):
        if flow is None:
            continue
        # amax and amin reduce in place; .abs() would copy the whole [T, 2, H, W] displacement
        nonzero = (flow.amax(dim=(0, 1)) != 0) | (flow.amin(dim=(0, 1)) != 0)
        moving = nonzero if moving is None else moving | nonzero
    moving = moving.float()[None, None]
    return None if bool(moving.all()) else moving


def _render_chunk(source: torch.Tensor, displacement: torch.Tensor, metric: torch.Tensor | None, fill: bool,
                  hole_threshold: float, moving: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    n = displacement.shape[0]
    flow = displacement.to(source.device, torch.float32)
    channels = source.shape[1]
    # A still pixel that no moving pixel reaches must come out bit-exact (x * w / w can be off by one ulp,
    # which flips a quantised value and makes still regions flicker): splat the moving mask along and
    # copy the source wherever it stays exactly zero.
    batch = source if moving is None else torch.cat([source, moving.to(source)], dim=1)
    batch = batch.expand(n, -1, -1, -1)
    if metric is None:
        frames, coverage = softsplat(batch, flow, None, mode="avg", return_weight=True)
    else:
        frames, coverage = softsplat(batch, flow, metric.to(flow).expand(n, -1, -1, -1).contiguous(),
                                     mode="soft", return_weight=True)
    if moving is not None:
        untouched = (frames[:, channels:] == 0) & (moving.to(frames) == 0) & (coverage >= hole_threshold)
        frames = torch.where(untouched, source.expand(n, -1, -1, -1), frames[:, :channels])
    hole = (coverage < hole_threshold).float().mean(dim=(1, 2, 3)).cpu()
    if fill:
        frames = fill_holes(frames, coverage, threshold=hole_threshold)
    return frames, hole
