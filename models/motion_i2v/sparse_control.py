"""Drawn trajectories -> the sparse flow Motion-I2V's trajectory ControlNet takes, as the authors' demo rasterises it.

The demo (``scripts/app.py`` of the official code, ``Drag.run``) turns each drawn track into a square patch of
constant flow around its start point, for every predicted frame:

- the track's points are resampled to the clip's frames with PCHIP over evenly spaced times (one drawn point
  per equal share of the clip); a track of a single point becomes the two points (x, y), (x + 1, y + 1);
- the patch of a track starting at (sx, sy) covers rows ``[max(int(sy) - u, 0), int(sy) + u)`` and columns
  ``[max(int(sx) - u, 0), int(sx + u))`` (the centre truncated, not rounded; half-open, so 2u x 2u pixels);
  ``u`` is the demo's "Flow Unit" slider, ``flow_unit_id`` = 64 by default at the demo's 512 x 320;
- frame t of the patch holds ``p(t) - p(0)`` in pixels and mask 1; a later track overwrites an earlier one
  where their patches overlap; everything else is flow 0, mask 0.

The pack's own rasterisation (:func:`ops.sparse_to_dense.tracks_to_sparse_flow`: small patches, the nearest
track's start wins) stays available; the demo's is the default for Motion-I2V because it is what the released
ControlNet was shown with.

Example:
    >>> import torch
    >>> from ...ops.trajectories import Tracks
    >>> track = Tracks(torch.tensor([[[10.7, 5.2]], [[14.7, 5.2]]]))          # 2 frames, 4 px to the right
    >>> flows, mask = demo_sparse_flow(track, 16, 32, num_frames=2, unit=2)
    >>> mask[1, 0].nonzero()[[0, -1]].tolist()                                # rows 3..6, columns 8..11
    [[3, 8], [6, 11]]
    >>> flows[1, 0, 5, 10].item(), flows[1, 1, 5, 10].item()
    (4.0, 0.0)
"""
from __future__ import annotations

import math

import torch

DEMO_FLOW_UNIT = 64
"""The demo's "Flow Unit" (``flow_unit_id``) default: half the side of a track's patch, in pixels at 512 x 320."""

DEMO_LONG_SIDE = 512
"""The long side of the demo's 512 x 320 pictures, for scaling the flow unit to other sizes."""

RASTERISATIONS = ("demo", "nearest track")
"""``demo``: :func:`demo_sparse_flow`; ``nearest track``: :func:`ops.sparse_to_dense.tracks_to_sparse_flow`."""


def demo_flow_unit(height: int, width: int) -> int:
    """The demo's flow unit scaled to a picture: 64 px at a long side of 512, proportional otherwise (>= 1).

    Example:
        >>> demo_flow_unit(320, 512), demo_flow_unit(64, 64)
        (64, 8)
    """
    return max(1, round(DEMO_FLOW_UNIT * max(height, width) / DEMO_LONG_SIDE))


def demo_sparse_flow(tracks, height: int, width: int, num_frames: int, unit: int | None = None, *,
                     parameter: str = "index") -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse, reference-anchored flows and masks rasterised as the official demo does (see the module doc).

    Args:
        tracks: :class:`ops.trajectories.Tracks` in pixels of this picture.
        height, width: picture size.
        num_frames: ``T`` frames, the reference frame 0 included.
        unit: half the patch side in pixels; default :func:`demo_flow_unit` (64 at 512 x 320).
        parameter: PCHIP time parameterisation ("index" as the demo, or "arclength").

    Returns:
        flows ``[T, 2, H, W]`` float32 pixels (frame 0 zero), mask ``[T, 1, H, W]`` float32 in {0, 1}; frame 0 has
        mask 1 on the patches. A point hidden at frame t (visibility False) writes nothing there for that frame.
    """
    from ...ops.trajectories import Tracks, resample_tracks

    if not isinstance(tracks, Tracks):
        raise TypeError(f"tracks must be a Tracks, got {type(tracks).__name__}")
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    unit = demo_flow_unit(height, width) if unit is None else int(unit)
    if unit < 1:
        raise ValueError(f"the flow unit must be >= 1 pixel, got {unit}")
    if tracks.num_frames == 1:        # the demo's "stationary point": a one-pixel drift down and to the right
        tracks = Tracks(torch.cat([tracks.points, tracks.points + 1.0]), tracks.visibility.repeat(2, 1))
    if tracks.num_frames != num_frames:
        tracks = resample_tracks(tracks, int(num_frames), parameter=parameter)
    points = tracks.points.float().cpu()
    visible = tracks.visibility.cpu()
    flows = torch.zeros(num_frames, 2, height, width)
    mask = torch.zeros(num_frames, 1, height, width)
    for n in range(points.shape[1]):
        sx, sy = float(points[0, n, 0]), float(points[0, n, 1])
        rows = slice(min(max(math.trunc(sy) - unit, 0), height), min(max(math.trunc(sy) + unit, 0), height))
        cols = slice(min(max(math.trunc(sx) - unit, 0), width), min(max(math.trunc(sx + unit), 0), width))
        frames = visible[:, n].nonzero().flatten()
        displacement = points[frames, n] - points[0, n]                    # [T', 2]
        flows[frames, :, rows, cols] = displacement[:, :, None, None]
        mask[frames, :, rows, cols] = 1.0
    flows[0] = 0.0
    return flows, mask
