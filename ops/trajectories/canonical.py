"""The pack's own JSON, written by the canvas editor and by :func:`to_canonical_json`, and its reader::

    {"version": 1,
     "coordinates": "pixels",            # or "normalized"; when absent, detected (see parse_trajectories)
     "width": 512, "height": 384,        # optional: size of the picture the coordinates were drawn on;
                                         #   coordinates are rescaled when the parser's size differs
     "arrows": [{"start": [x, y], "end": [x, y], "speed": 1.0}, ...],
     "tracks": [[[x, y], [x, y], ...],                                        # a bare track, or a timed one:
                {"points": [[x, y], ...], "start": 4, "end": 20, "easing": "ease-in-out"}, ...],
     "visibility": [[true, false, ...], ...],   # optional, one list per track, parallel to its points
     "brush": {"mode": "move",           # "move": painted = may move; "static": painted = stays still
               "strokes": [{"points": [[x, y], ...], "radius": 12.0, "erase": false}, ...]}}

Arrows may also be written ``[[x0, y0], [x1, y1]]``, ``[[x0, y0], [x1, y1], speed]`` or ``[x0, y0, x1, y1(, speed)]``.
Track timing (start / end frame, easing) is described in :mod:`.timing`. ``"size"`` (an older editor's note) is
ignored.
"""
from __future__ import annotations

import json

import numpy as np

from .brush import read_brush
from .containers import Arrows, Tracks
from .document import TrajectoryDocument
from .errors import TrajectoryFormatError
from .point_lists import read_arrow, read_track
from .timing import read_timing, timing_to_dict
from .validation import describe, is_pointlike

__all__ = ["CANONICAL_KEYS", "arrows_to_json", "read_canonical", "to_canonical_json", "tracks_to_json"]

CANONICAL_KEYS = ("version", "coordinates", "width", "height", "arrows", "tracks", "visibility", "brush")
_EDITOR_NOTES = ("size",)


def _read_size(obj: dict, input_name: str, prefix: str) -> tuple[int, int] | None:
    if ("width" in obj) != ("height" in obj):
        raise TrajectoryFormatError(input_name, f"{prefix}'width' and 'height' must be given together")
    if "width" not in obj:
        return None
    w, h = obj["width"], obj["height"]
    if not (isinstance(w, int) and isinstance(h, int) and not isinstance(w, bool) and w >= 1 and h >= 1):
        raise TrajectoryFormatError(input_name, f"{prefix}'width' and 'height' must be positive integers, got "
                                                f"{describe(w)} x {describe(h)}")
    return w, h


def _read_track_entry(obj, input_name: str, label: str):
    if isinstance(obj, dict):
        if "points" not in obj:
            raise TrajectoryFormatError(input_name, f"{label}: expected a list of points or {{\"points\": [[x, y], "
                                                    f"...], \"start\": frame, \"end\": frame, \"easing\": ..}}, got "
                                                    f"{describe(obj, 60)}")
        timing = read_timing(obj, input_name, label)
        item = read_track(obj["points"], input_name, label)
        item.timing = timing
        return item
    return read_track(obj, input_name, label)


def read_canonical(obj: dict, input_name: str, prefix: str = "") -> TrajectoryDocument:
    """A dict in the pack's JSON as a document (input coordinates)."""
    unknown = [k for k in obj if k not in CANONICAL_KEYS and k not in _EDITOR_NOTES]
    if unknown:
        raise TrajectoryFormatError(input_name, f"{prefix}unknown key {unknown[0]!r}; expected some of "
                                                f"{', '.join(CANONICAL_KEYS)} (or a TRACKS dict with 'track_path')")
    doc = TrajectoryDocument()
    coords = obj.get("coordinates")
    if coords is not None:
        if coords not in ("pixels", "normalized", "normalised"):
            raise TrajectoryFormatError(input_name, f"{prefix}'coordinates' must be 'pixels' or 'normalized', "
                                                    f"got {describe(coords)}")
        doc.coordinates = "pixels" if coords == "pixels" else "normalized"
    doc.size = _read_size(obj, input_name, prefix)
    arrows = obj.get("arrows", [])
    if not isinstance(arrows, list):
        raise TrajectoryFormatError(input_name, f"{prefix}'arrows' must be a list, got {describe(arrows)}")
    doc.arrows = [read_arrow(a, input_name, f"{prefix}arrow {i}") for i, a in enumerate(arrows)]
    tracks = obj.get("tracks", [])
    if not isinstance(tracks, list):
        raise TrajectoryFormatError(input_name, f"{prefix}'tracks' must be a list of tracks, got {describe(tracks)}")
    if tracks and is_pointlike(tracks[0]):
        raise TrajectoryFormatError(input_name, f"{prefix}'tracks' must be a list of tracks [[[x, y], ...], ...]; "
                                                "got a single list of points (wrap it in one more [ ])")
    doc.tracks = [_read_track_entry(t, input_name, f"{prefix}track {i}") for i, t in enumerate(tracks)]
    vis = obj.get("visibility")
    if vis is not None:
        if not isinstance(vis, list) or len(vis) != len(doc.tracks):
            raise TrajectoryFormatError(input_name, f"{prefix}'visibility' must be a list with one list per track "
                                                    f"({len(doc.tracks)}), got {describe(vis)}")
        for i, (item, v) in enumerate(zip(doc.tracks, vis)):
            if not isinstance(v, list) or len(v) != len(item.points) or not all(isinstance(b, bool) for b in v):
                raise TrajectoryFormatError(input_name, f"{prefix}visibility of track {i}: expected "
                                                        f"{len(item.points)} true/false values, got {describe(v)}")
            item.vis = np.asarray(v, dtype=bool)
    if obj.get("brush") is not None:
        doc.brush = read_brush(obj["brush"], input_name, prefix)
    return doc


def _track_entry(points: list, timing) -> list | dict:
    track = [[float(x), float(y)] for x, y in points]
    return track if timing is None else {"points": track, **timing_to_dict(timing)}


def to_canonical_json(tracks: Tracks | None = None, arrows: Arrows | None = None, brush=None, *,
                      width: int | None = None, height: int | None = None, indent: int | None = None) -> str:
    """Write the pack's canonical JSON (pixel coordinates). Exact: parsing it gives back the same values,
    per-track timing included. ``brush`` is a :class:`~.brush.BrushStrokes`."""
    doc: dict = {"version": 1, "coordinates": "pixels"}
    if width is not None and height is not None:
        doc["width"], doc["height"] = int(width), int(height)
    if arrows is not None:
        doc["arrows"] = [{"start": [float(x) for x in s], "end": [float(x) for x in e], "speed": float(v)}
                         for s, e, v in zip(arrows.start.tolist(), arrows.end.tolist(), arrows.speed.tolist())]
    if tracks is not None:
        pts = tracks.points.detach().cpu().permute(1, 0, 2).tolist()  # [N, T, 2]
        doc["tracks"] = [_track_entry(track, tracks.timing_of(n)) for n, track in enumerate(pts)]
        if not bool(tracks.visibility.all()):
            doc["visibility"] = tracks.visibility.detach().cpu().t().tolist()
    if brush is not None:
        doc["brush"] = {"mode": brush.mode, "strokes": [
            {"points": np.asarray(p, dtype=np.float64).tolist(), "radius": float(r), "erase": bool(e)}
            for p, r, e in brush.strokes]}
    return json.dumps(doc, indent=indent)


def tracks_to_json(tracks: Tracks, *, width: int | None = None, height: int | None = None) -> str:
    """Canonical JSON with the tracks only; ``parse_trajectories(tracks_to_json(t), W, H) == t`` for in-picture t."""
    return to_canonical_json(tracks=tracks, width=width, height=height)


def arrows_to_json(arrows: Arrows, *, width: int | None = None, height: int | None = None) -> str:
    """Canonical JSON with the arrows only; ``parse_arrows(arrows_to_json(a), W, H) == a`` for in-picture a."""
    return to_canonical_json(arrows=arrows, width=width, height=height)
