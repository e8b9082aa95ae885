"""Point lists: DragNUWA / MotionCtrl tracks, KJNodes spline coordinates, arrow pairs and rows.

- tracks ``[[[x, y], [x, y], ...], ...]`` (several) or ``[[x, y], ...]`` (one), as DragNUWA and MotionCtrl write;
- KJNodes spline-editor coordinates: the same with ``{"x": .., "y": ..}`` points (a list of such lists is several
  tracks; a list of KJNodes *strings* is read by :mod:`.parse`, each string on its own);
- arrows: pairs ``[[x0, y0], [x1, y1]]``, with a speed ``[[x0, y0], [x1, y1], speed]``, objects
  ``{"start": [x, y], "end": [x, y], "speed": s}`` and rows ``[x0, y0, x1, y1(, speed)]``.

:func:`read_track` and :func:`read_arrow` read one item; the pack's JSON (:mod:`.canonical`) uses them too.
"""
from __future__ import annotations

import numpy as np

from .document import ParsedItem, TrajectoryDocument
from .errors import TrajectoryFormatError
from .validation import MAX_SPEED, describe, is_number, is_pointlike, read_number, read_point

__all__ = ["read_arrow", "read_point_list", "read_speed", "read_track"]


def read_speed(v, input_name: str, label: str) -> float:
    return read_number(v, input_name, label, limit=MAX_SPEED,
                       meaning="an arrow's speed multiplies its length to give pixels per frame")


def read_track(obj, input_name: str, label: str) -> ParsedItem:
    """A list of at least 2 points ``[x, y]`` / ``{"x": .., "y": ..}``."""
    if not isinstance(obj, (list, tuple)):
        raise TrajectoryFormatError(input_name, f"{label}: expected a list of [x, y] points, got {describe(obj)}")
    if len(obj) == 0:
        raise TrajectoryFormatError(input_name, f"{label} is empty: a trajectory needs at least 2 points")
    pts = [read_point(p, input_name, f"{label}, point {k}") for k, p in enumerate(obj)]
    if len(pts) < 2:
        raise TrajectoryFormatError(input_name, f"{label} has only 1 point: a trajectory needs at least 2 "
                                                "(a start and an end)")
    return ParsedItem(np.asarray(pts, dtype=np.float64), label)


def read_arrow(obj, input_name: str, label: str) -> ParsedItem:
    """An arrow as an object, a pair of points (with an optional speed) or a row of 4 or 5 numbers."""
    speed = 1.0
    if isinstance(obj, dict):
        unknown = set(obj) - {"start", "end", "speed"}
        if "start" not in obj or "end" not in obj or unknown:
            raise TrajectoryFormatError(input_name, f"{label}: expected {{\"start\": [x, y], \"end\": [x, y], "
                                                    f"\"speed\": s}}, got {describe(obj, 60)}")
        a = read_point(obj["start"], input_name, f"{label}, start")
        b = read_point(obj["end"], input_name, f"{label}, end")
        if "speed" in obj:
            speed = read_speed(obj["speed"], input_name, f"{label}, speed")
    elif isinstance(obj, (list, tuple)) and len(obj) in (4, 5) and all(is_number(v) for v in obj):
        a = read_point(obj[0:2], input_name, f"{label}, start")
        b = read_point(obj[2:4], input_name, f"{label}, end")
        if len(obj) == 5:
            speed = read_speed(obj[4], input_name, f"{label}, speed")
    elif isinstance(obj, (list, tuple)) and len(obj) in (2, 3) and all(is_pointlike(p) for p in obj[:2]):
        a = read_point(obj[0], input_name, f"{label}, start")
        b = read_point(obj[1], input_name, f"{label}, end")
        if len(obj) == 3:
            speed = read_speed(obj[2], input_name, f"{label}, speed")
    else:
        raise TrajectoryFormatError(input_name, f"{label}: expected an arrow [[x0, y0], [x1, y1]] (optionally with a "
                                                f"speed), got {describe(obj, 60)}")
    return ParsedItem(np.asarray([a, b], dtype=np.float64), label, speed=speed, is_arrow=True)


def _has_speed(o) -> bool:
    return isinstance(o, (list, tuple)) and len(o) == 3 and is_number(o[2]) and all(map(is_pointlike, o[:2]))


def _arrows(obj: list, input_name: str, prefix: str) -> TrajectoryDocument:
    return TrajectoryDocument(arrows=[read_arrow(o, input_name, f"{prefix}arrow {i}") for i, o in enumerate(obj)])


def read_point_list(obj: list, input_name: str, prefix: str = "") -> TrajectoryDocument:
    """A JSON list of tracks or arrows, recognised by the shape of its first items."""
    if len(obj) == 0:
        raise TrajectoryFormatError(input_name, f"{prefix}is an empty list: expected at least one trajectory")
    first = obj[0]
    if isinstance(first, dict) and ("start" in first or "end" in first):
        return _arrows(obj, input_name, prefix)
    if _has_speed(obj):  # [[x0, y0], [x1, y1], speed]: one arrow
        return _arrows([obj], input_name, prefix)
    if len(obj) == 2 and all(is_number(v) for v in obj):
        raise TrajectoryFormatError(input_name, f"{prefix}got a single point {describe(obj)}: expected a list "
                                                "of points [[x, y], [x, y], ...]")
    if is_pointlike(first):  # one track: [[x, y], ...] or [{"x":..,"y":..}, ...]
        return TrajectoryDocument(tracks=[read_track(obj, input_name, f"{prefix}track 0")])
    if isinstance(first, (list, tuple)) and len(first) in (4, 5) and all(is_number(v) for v in first):
        return _arrows(obj, input_name, prefix)
    if all(is_number(v) for v in obj):
        if len(obj) in (4, 5):
            return _arrows([obj], input_name, prefix)
        raise TrajectoryFormatError(input_name, f"{prefix}expected a list of [x, y] points, got a flat list of "
                                                f"{len(obj)} numbers")
    if any(_has_speed(o) for o in obj):  # [[[x0, y0], [x1, y1], speed], ...]: a list of arrows
        return _arrows(obj, input_name, prefix)
    return TrajectoryDocument(tracks=[read_track(o, input_name, f"{prefix}track {i}") for i, o in enumerate(obj)])
