"""ComfyUI's core ``TRACKS`` type: ``{"track_path": [T, N, 2], "track_visibility": [T, N]}``, read and written.

Always pixels (the core type's convention). A bare [T, N, 2] tensor or array is read as a ``track_path``.
"""
from __future__ import annotations

import numpy as np
import torch

from .containers import Arrows, Tracks
from .document import ParsedItem, TrajectoryDocument
from .errors import TrajectoryFormatError
from .validation import check_coordinates, describe

__all__ = ["read_comfy", "read_containers", "tracks_from_comfy", "tracks_to_comfy"]


def tracks_to_comfy(tracks: Tracks) -> dict:
    """Core ComfyUI ``TRACKS``: ``{"track_path": [T, N, 2] float32, "track_visibility": [T, N] bool}`` (copies).

    The core type has no per-track timing: resample timed tracks first (:func:`~.resample.resample_tracks`).
    """
    return {"track_path": tracks.points.detach().clone(), "track_visibility": tracks.visibility.detach().clone()}


def _as_float_tensor(value, input_name: str, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64) if value.dtype != torch.float32 else value.detach()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TrajectoryFormatError(input_name, f"{what} must be a [T, N, 2] array of numbers; "
                                                f"got ragged or non-numeric data {describe(value)}") from None
    return torch.from_numpy(arr)


def _visibility(vis, path: torch.Tensor, input_name: str) -> torch.Tensor:
    if vis is None:
        return torch.ones(path.shape[:2], dtype=torch.bool, device=path.device)
    try:
        vis = torch.as_tensor(np.asarray(vis) if not isinstance(vis, torch.Tensor) else vis)
    except (TypeError, ValueError) as exc:
        raise TrajectoryFormatError(input_name, f"track_visibility is not a [T, N] array: {exc}") from None
    if vis.ndim == 3 and vis.shape[0] == 1 and path.shape[0] != 1:
        vis = vis[0]
    if vis.ndim == 3 and vis.shape[-1] == 1:
        vis = vis[..., 0]
    if vis.ndim == 2 and vis.shape[0] == path.shape[0] and vis.shape[1] == 1:
        vis = vis.expand(path.shape[0], path.shape[1])  # core WanMoveTracksFromCoords writes [T, 1] from a mask
    if tuple(vis.shape) != tuple(path.shape[:2]):
        raise TrajectoryFormatError(input_name, f"track_visibility must be [T, N] = {tuple(path.shape[:2])} "
                                                f"like track_path, got {tuple(vis.shape)}")
    return vis.to(device=path.device, dtype=torch.bool)


def tracks_from_comfy(data: dict, *, input_name: str = "tracks") -> Tracks:
    """Exact inverse of :func:`tracks_to_comfy` (no clipping, no rescaling). Raises TrajectoryFormatError."""
    if not isinstance(data, dict) or "track_path" not in data:
        raise TrajectoryFormatError(input_name, f"expected a TRACKS dict with 'track_path', got {describe(data)}")
    path = _as_float_tensor(data["track_path"], input_name, "track_path")
    if path.ndim == 4 and path.shape[0] == 1:
        path = path[0]
    if path.ndim != 3 or path.shape[-1] != 2:
        raise TrajectoryFormatError(input_name, f"track_path must be [T, N, 2], got shape {tuple(path.shape)}")
    if path.shape[0] == 0 or path.shape[1] == 0:
        raise TrajectoryFormatError(input_name, f"track_path is empty (shape {tuple(path.shape)}): no tracks")
    check_coordinates(path, input_name, lambda i: f"track_path frame {i[0]}, track {i[1]}")
    vis = _visibility(data.get("track_visibility"), path, input_name)
    return Tracks(path.clone(), vis.clone())


def read_comfy(obj, input_name: str) -> TrajectoryDocument:
    """A TRACKS dict (or a bare [T, N, 2] tensor / array) as a document of N tracks."""
    if not isinstance(obj, dict):
        obj = {"track_path": obj}
    tracks = tracks_from_comfy(obj, input_name=input_name)
    pts = tracks.points.detach().cpu().double().numpy()
    vis = tracks.visibility.detach().cpu().numpy()
    items = [ParsedItem(pts[:, n].copy(), f"track {n}", vis=vis[:, n].copy()) for n in range(tracks.num_tracks)]
    return TrajectoryDocument(tracks=items, is_comfy=True)


def read_containers(obj: Tracks | Arrows, input_name: str) -> TrajectoryDocument:
    """The pack's own containers as a document (pixels; timing kept)."""
    if isinstance(obj, Arrows):
        check_coordinates(torch.stack([obj.start, obj.end], 1), input_name, lambda i: f"arrow {i[0]}")
        return TrajectoryDocument(arrows=[
            ParsedItem(np.asarray([s, e], dtype=np.float64), f"arrow {i}", speed=float(v), is_arrow=True)
            for i, (s, e, v) in enumerate(zip(obj.start.tolist(), obj.end.tolist(), obj.speed.tolist()))],
            coordinates="pixels")
    doc = read_comfy(tracks_to_comfy(obj), input_name)
    for n, item in enumerate(doc.tracks):
        item.timing = obj.timing_of(n)
    return doc
