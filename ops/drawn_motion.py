"""What a user draws on a picture (arrows, tracks, a brush) becomes motion: the logic of SparseTrajectoryToFlow.

:func:`motion_from_drawing` parses the drawing once (any format of :mod:`ops.trajectories`), combines a drawn
brush with a given mask, and makes

- mode ``"arrows"``: a velocity field by the long-animation paper's Gaussian interpolation (Eqs. 5-7; edge-aware
  on request), and the straight-line motion ``t * velocity`` for ``num_frames`` frames (loops come later, from
  the Eulerian integration);
- mode ``"tracks"``: dense motion that drags the region under each track along it (per-track timing applied),
  and its first step as the velocity field.

Everything is in pixels of the picture; pixels outside the brush get exactly zero motion.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import sparse_to_dense as s2d
from . import trajectories as tr
from .containers import Motion, VelocityField
from .progress import ProgressFn

__all__ = ["DRAWING_MODES", "DrawnMotion", "arrow_tracks", "combine_brush", "motion_from_drawing"]

DRAWING_MODES = ("arrows", "tracks")


@dataclass
class DrawnMotion:
    """The motion a drawing makes.

    Attributes:
        flow: velocity field [1, 2, H, W] (pixels per frame) with the brush [1, 1, H, W] as its mask (or None).
        motion: reference-anchored displacement [num_frames, 2, H, W], pixels.
        tracks: the trajectories it came from, at num_frames points (arrows: 2-point tracks from the start to the
            start plus the arrow's velocity), for the core TRACKS output.
    """

    flow: VelocityField
    motion: Motion
    tracks: tr.Tracks


def arrow_tracks(arrows: tr.Arrows, strength: float = 1.0) -> tr.Tracks:
    """2-point tracks from each arrow's start to ``start + (end - start) * speed * strength`` (one frame's motion)."""
    start = arrows.start.float()
    end = start + (arrows.end.float() - start) * arrows.speed.float().view(-1, 1) * float(strength)
    return tr.Tracks(points=torch.stack([start, end]))


def combine_brush(mask: torch.Tensor | None, drawn: tr.BrushStrokes | None, height: int, width: int,
                  input_name: str = "trajectories") -> torch.Tensor | None:
    """The region that may move, [H, W] in [0, 1]: the given mask, the drawn brush, or their union (None: all).

    Raises:
        TrajectoryFormatError: the drawn brush covers no pixel.
    """
    if drawn is None or not drawn.strokes:
        return mask
    painted = drawn.to_mask(height, width).to(mask.device if mask is not None else "cpu")
    if drawn.invert:
        painted = 1.0 - painted
    brush = painted if mask is None else torch.maximum(mask.float(), painted)
    if float(brush.max()) <= 0:
        raise tr.TrajectoryFormatError(input_name, "expected a brush that covers at least one pixel, got an empty "
                                                   "brush")
    return brush


def motion_from_drawing(drawing, picture: torch.Tensor, *, mode: str = "arrows", num_frames: int = 48,
                        strength: float = 1.0, sigma: float | None = None, threshold: float = 0.05,
                        edge_aware: bool = False, normalized="auto", out_of_bounds: str = "clip",
                        mask: torch.Tensor | None = None, input_name: str = "trajectories",
                        progress: ProgressFn | None = None) -> DrawnMotion:
    """Arrows or tracks drawn on a picture -> a velocity field, per-frame motion and the tracks.

    Args:
        drawing: the drawing in any format :func:`ops.trajectories.read_document` accepts (text, lists, TRACKS...).
        picture: [3, H, W] in [0, 1]: sets the size, and guides ``edge_aware``.
        mode: "arrows" (each arrow a velocity, Gaussian interpolation) or "tracks" (each track drags its region).
        num_frames: frames of the motion (tracks are resampled to it, with their timing).
        strength: multiplies every arrow's speed / every track's displacement.
        sigma: Gaussian width in pixels (None: the paper's 170 px at 512 px for arrows, max(H, W) / 8 for tracks).
        threshold: Eq. 7's R in pixels per frame (arrows).
        edge_aware: gate each arrow by its geodesic affinity over the picture (see
            :func:`ops.sparse_to_dense.edge_aware_arrow_field`).
        normalized, out_of_bounds: how coordinates are read (see :func:`ops.trajectories.parse_trajectories`).
        mask: optional [H, W] in [0, 1]: the region that may move; a brush in the drawing adds to it.
        input_name: the drawing's name in error messages.
        progress: ``progress(done, total)`` over the per-arrow / per-track work (may raise to interrupt).

    Returns:
        :class:`DrawnMotion`.

    Raises:
        TrajectoryFormatError: a malformed drawing, an empty brush, timing that does not fit ``num_frames``; the
            message starts with ``input_name``. ValueError: a bad mode or size.
    """
    if mode not in DRAWING_MODES:
        raise ValueError(f"mode must be one of {', '.join(DRAWING_MODES)}, got {mode!r}")
    if picture.ndim != 3 or picture.shape[0] != 3:
        raise ValueError(f"picture must be [3, H, W], got {tuple(picture.shape)}")
    height, width = picture.shape[-2:]
    read = dict(normalized=normalized, out_of_bounds=out_of_bounds, input_name=input_name)
    document = tr.read_document(drawing, input_name)  # parsed once, read as a brush and as arrows or tracks
    brush = combine_brush(mask, tr.parse_brush(document, width, height, **read), height, width, input_name)
    if mode == "arrows":
        arrows = tr.parse_arrows(document, width, height, **read)
        if edge_aware:  # each arrow's motion stays on its own side of the picture's edges
            velocity = s2d.edge_aware_arrow_field(arrows, picture, sigma=sigma, threshold=threshold,
                                                  strength=strength, progress=progress)
        else:
            velocity = s2d.gaussian_arrow_field(arrows, height, width, sigma=sigma, threshold=threshold,
                                                strength=strength, device=picture.device, progress=progress)
        if brush is not None:
            velocity = s2d.apply_brush(velocity, brush)
        steps = torch.arange(num_frames, dtype=torch.float32, device=velocity.device).view(-1, 1, 1, 1)
        displacement = velocity[None] * steps  # straight-line motion; loops come from EulerianMotion
        velocity, tracks = velocity[None], arrow_tracks(arrows, strength)
    else:
        tracks = tr.resample_tracks(tr.parse_trajectories(document, width, height, **read), num_frames,
                                    input_name=input_name)
        displacement = s2d.tracks_to_dense_motion(tracks, height, width, num_frames, sigma=sigma, brush=brush,
                                                  device=picture.device, progress=progress)
        displacement = displacement * strength
        velocity = displacement[1:2] - displacement[0:1]
    flow = VelocityField(velocity=velocity, mask=None if brush is None else brush[None, None])
    return DrawnMotion(flow=flow, motion=Motion(displacement=displacement, fps=30.0), tracks=tracks)
