"""Tracks over time: resampling to a number of frames (monotone cubic, per-track timing), arrows <-> tracks."""
from __future__ import annotations

import numpy as np
import torch

from .containers import Arrows, Tracks
from .timing import check_timing, path_parameters

__all__ = ["arrows_to_tracks", "resample_polyline", "resample_tracks", "tracks_to_arrows"]


def arrows_to_tracks(arrows: Arrows, num_frames: int = 2) -> Tracks:
    """Each arrow becomes a straight track from ``start`` to ``start + speed * (end - start)`` over num_frames."""
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    s = torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64, device=arrows.start.device)[:, None, None]
    start = arrows.start.double()[None]
    pts = start + s * arrows.vectors().double()[None]
    pts[0] = arrows.start.double()
    return Tracks(pts.float())


def tracks_to_arrows(tracks: Tracks) -> Arrows:
    """Each track becomes an arrow from its first to its last point (speed 1)."""
    return Arrows(tracks.points[0].clone(), tracks.points[-1].clone())


def _pchip_1d(knots: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    from scipy.interpolate import PchipInterpolator

    if len(knots) == 1:
        return np.repeat(values[:1], len(queries), axis=0)
    return PchipInterpolator(knots, values, axis=0, extrapolate=True)(queries)


def resample_polyline(points: np.ndarray, vis: np.ndarray, num_frames: int, parameter: str = "index",
                      at: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One track by PCHIP: points [L, 2] float64, vis [L] bool -> ([num_frames, 2], [num_frames]).

    ``at`` is the path parameter s in [0, 1] of each output frame (default: evenly spaced, s = t / (T - 1));
    frames at s = 0 and s = 1 get the first and last points exactly. Without ``at``, resampling to the same length
    with ``parameter="index"`` is the identity.
    """
    length = len(points)
    if at is None and length == num_frames and parameter == "index":
        return points.copy(), vis.copy()
    queries = np.linspace(0.0, 1.0, num_frames) if at is None else np.asarray(at, dtype=np.float64)
    knots = np.linspace(0.0, 1.0, length)
    keep = np.ones(length, dtype=bool)
    if parameter == "arclength" and length > 1:
        seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        if cum[-1] > 0:
            keep = np.concatenate([[True], seg > 0])  # PCHIP needs strictly increasing knots
            knots = cum / cum[-1]
    elif parameter not in ("index", "arclength"):
        raise ValueError(f"parameter must be 'index' or 'arclength', got {parameter!r}")
    k, p = knots[keep], points[keep]
    out = _pchip_1d(k, p, queries) if num_frames > 1 else p[:1].copy()
    out[queries <= 0.0] = points[0]
    out[queries >= 1.0] = points[-1]
    nearest = np.clip(np.searchsorted(k, queries), 0, len(k) - 1)
    prev = np.clip(nearest - 1, 0, len(k) - 1)
    nearest = np.where(np.abs(k[prev] - queries) <= np.abs(k[nearest] - queries), prev, nearest)
    return out, vis[keep][nearest]


def resample_tracks(tracks: Tracks, num_frames: int, *, parameter: str = "index",
                    input_name: str = "tracks") -> Tracks:
    """Resample every track to ``num_frames`` points with a monotone cubic (PCHIP, no overshoot).

    Args:
        tracks: T points per track, optionally with per-track timing (:mod:`.timing`).
        num_frames: new T (>= 1).
        parameter: "index" (default): point k of T sits at path parameter k / (T-1), keeping the drawn timing;
            resampling an untimed track to the same T is the identity. "arclength": the parameter is proportional
            to the distance travelled along the polyline, so the motion has constant speed along the path.
        input_name: the input named in timing errors.

    Returns:
        Tracks [num_frames, N, 2] without timing: a timed track sits at its first point up to frame ``start``,
        travels its path (eased) until frame ``end`` and stays at its last point after it; an untimed one travels
        from frame 0 to the last frame. The first and last points are kept exactly; visibility is taken from the
        nearest original point along the path (ties go to the earlier point).

    Raises:
        TrajectoryFormatError: a track's timing does not fit ``num_frames`` (e.g. its end is past the last frame).

    Example:
        >>> t = Tracks(torch.tensor([[[0., 0.]], [[10., 0.]]]))
        >>> resample_tracks(t, 3).points[:, 0, 0].tolist()
        [0.0, 5.0, 10.0]
    """
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    num_frames = int(num_frames)
    pts = tracks.points.detach().cpu().double().numpy()
    vis = tracks.visibility.detach().cpu().numpy()
    out_p = np.empty((num_frames, tracks.num_tracks, 2))
    out_v = np.empty((num_frames, tracks.num_tracks), dtype=bool)
    for n in range(tracks.num_tracks):
        timing = tracks.timing_of(n)
        at = None
        if timing is not None:
            check_timing(timing, num_frames, input_name, f"track {n}")
            at = path_parameters(timing, num_frames)
        out_p[:, n], out_v[:, n] = resample_polyline(pts[:, n], vis[:, n], num_frames, parameter, at)
    device = tracks.points.device
    return Tracks(torch.from_numpy(out_p).float().to(device), torch.from_numpy(out_v).to(device))
