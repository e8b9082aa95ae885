"""Any supported input -> :class:`Tracks`, :class:`Arrows` or :class:`BrushStrokes` in pixels of a picture.

:func:`read_document` runs the shared prologue (:func:`.validation.decode`), recognises the format and returns a
:class:`TrajectoryDocument`; the ``parse_*`` functions take an input or a document (parse once, read it several
ways), map its coordinates to the picture (normalised, drawn on another size, outside the picture) and build the
containers.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .brush import BrushStrokes, read_brush
from .canonical import CANONICAL_KEYS, read_canonical
from .comfy_tracks import read_comfy, read_containers
from .containers import Arrows, Tracks
from .document import ParsedItem, TrajectoryDocument
from .errors import TrajectoryFormatError, TrajectoryWarning
from .lines import read_lines
from .point_lists import read_point_list
from .resample import resample_polyline
from .validation import LinesText, decode, describe

__all__ = ["parse_arrows", "parse_brush", "parse_trajectories", "read_document"]


def _read_strings(obj: list, input_name: str, prefix: str, nesting: int) -> TrajectoryDocument:
    """KJNodes: a list of coordinate strings, each one or several tracks."""
    doc = TrajectoryDocument()
    for i, text in enumerate(obj):
        sub = read_document(text, input_name, f"{prefix}string {i}: ", nesting + 1)
        doc.tracks += sub.tracks
        doc.arrows += sub.arrows
    return doc


def read_document(value, input_name: str = "trajectories", prefix: str = "", nesting: int = 0) -> TrajectoryDocument:
    """Check and read an input in any supported format (see the package docstring), in its own coordinates.

    Raises:
        TrajectoryFormatError: malformed input; the message starts with ``input_name``.
    """
    if isinstance(value, TrajectoryDocument):
        return value
    if isinstance(value, (Tracks, Arrows)):
        return read_containers(value, input_name)
    obj = decode(value, input_name, prefix, nesting)
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return read_comfy(obj, input_name)
    if isinstance(obj, LinesText):
        return read_lines(obj, input_name, prefix)
    if isinstance(obj, dict):
        if "track_path" in obj:
            return read_comfy(obj, input_name)
        if "x" in obj and "y" in obj:
            raise TrajectoryFormatError(input_name, f"{prefix}got a single point {describe(obj)}: expected a list of "
                                                    "points")
        return read_canonical(obj, input_name, prefix)
    obj = list(obj)
    if obj and all(isinstance(o, str) for o in obj):
        return _read_strings(obj, input_name, prefix, nesting)
    return read_point_list(obj, input_name, prefix)


def _check_size(width, height) -> tuple[int, int]:
    w, h = int(width), int(height)
    if w < 1 or h < 1:
        raise ValueError(f"width and height must be >= 1, got {width} x {height}")
    return w, h


class _Scaler:
    """Maps the input's coordinates to pixels of a width x height picture, then clips or rejects."""

    def __init__(self, doc: TrajectoryDocument, width: int, height: int, normalized, out_of_bounds: str,
                 input_name: str, items: list[ParsedItem]):
        if out_of_bounds not in ("clip", "error"):
            raise ValueError(f"out_of_bounds must be 'clip' or 'error', got {out_of_bounds!r}")
        if normalized not in ("auto", True, False):
            raise ValueError(f"normalized must be 'auto', True or False, got {normalized!r}")
        self.width, self.height, self.mode, self.name = width, height, out_of_bounds, input_name
        if normalized == "auto":
            if doc.coordinates is not None:
                normalized = doc.coordinates == "normalized"
            elif doc.is_comfy:
                normalized = False
            else:
                normalized = bool(items) and all(((it.points >= 0) & (it.points <= 1)).all() for it in items)
        self.normalized = bool(normalized)
        if self.normalized:
            self.scale = np.array([width - 1, height - 1], dtype=np.float64)
        elif doc.size is not None and doc.size != (width, height):
            w0, h0 = doc.size
            self.scale = np.array([(width - 1) / max(w0 - 1, 1), (height - 1) / max(h0 - 1, 1)], dtype=np.float64)
        else:
            self.scale = None
        self.clipped = 0
        self.first_clipped = ""

    @property
    def length_scale(self) -> float:
        """Pixels per input unit of length (for a brush radius)."""
        if self.normalized:
            return float(max(self.width, self.height) - 1)
        return 1.0 if self.scale is None else float(self.scale.mean())

    def __call__(self, points: np.ndarray, label: str) -> np.ndarray:
        pts = points * self.scale if self.scale is not None else points
        hi = np.array([self.width - 1, self.height - 1], dtype=np.float64)
        outside = ((pts < 0) | (pts > hi)).any(axis=1)
        if outside.any():
            k = int(np.argmax(outside))
            where = f"{label}, point {k} at ({pts[k, 0]:g}, {pts[k, 1]:g})"
            if self.mode == "error":
                raise TrajectoryFormatError(self.name, f"{where} is outside the {self.width}x{self.height} picture "
                                                       f"(x in [0, {self.width - 1}], y in [0, {self.height - 1}])")
            self.clipped += int(outside.sum())
            self.first_clipped = self.first_clipped or where
            pts = np.clip(pts, 0.0, hi)
        return pts

    def warn(self) -> None:
        if self.clipped:
            warnings.warn(f"{self.name}: {self.clipped} point(s) outside the {self.width}x{self.height} picture were "
                          f"clipped to its border (first: {self.first_clipped})", TrajectoryWarning, stacklevel=3)


def _items_to_scale(text_or_obj, width, height, normalized, out_of_bounds: str, input_name: str,
                    prefer: str) -> tuple[list[ParsedItem], _Scaler]:
    """The document's tracks or arrows (``prefer``; the other kind when it has none), and their scaler."""
    width, height = _check_size(width, height)
    doc = read_document(text_or_obj, input_name)
    items = (doc.tracks or doc.arrows) if prefer == "tracks" else (doc.arrows or doc.tracks)
    if not items:
        kind = "trajectory" if prefer == "tracks" else "arrow"
        raise TrajectoryFormatError(input_name, f"contains no {kind} (no 'tracks' and no 'arrows')")
    return items, _Scaler(doc, width, height, normalized, out_of_bounds, input_name, items)


def parse_trajectories(text_or_obj, width: int, height: int, *, normalized="auto", out_of_bounds: str = "clip",
                       input_name: str = "trajectories", parameter: str = "index") -> Tracks:
    """Parse trajectories in any supported format (see the package docstring) into :class:`Tracks` in pixels.

    Args:
        text_or_obj: a string (JSON, KJNodes coordinates, Motion-I2V lines), a list (of points, of tracks, of
            KJNodes strings), a TRACKS dict, a [T, N, 2] tensor/array, a Tracks / Arrows object, or a
            :class:`TrajectoryDocument` from :func:`read_document`.
        width, height: size of the picture, pixels.
        normalized: "auto" (the format's declaration when it has one; TRACKS are pixels; otherwise normalised when
            every coordinate is in [0, 1]), True or False.
        out_of_bounds: "clip" (clip to the picture with a TrajectoryWarning) or "error" (TrajectoryFormatError).
        input_name: name used in error messages (the node input's name).
        parameter: time parameterisation used when tracks of different lengths are resampled (see resample_tracks).

    Returns:
        Tracks [T, N, 2] float32 (T = the longest track's length), with the per-track timing of the pack's JSON.
        In canonical JSON, "tracks" are used when present; otherwise each arrow becomes a 2-point track from start
        to start + speed * (end - start).

    Raises:
        TrajectoryFormatError: malformed input; the message starts with ``input_name``.
    """
    items, scaler = _items_to_scale(text_or_obj, width, height, normalized, out_of_bounds, input_name, "tracks")
    polylines = []
    for it in items:
        pts = it.points
        if it.is_arrow and it.speed != 1.0:
            pts = np.stack([pts[0], pts[0] + it.speed * (pts[-1] - pts[0])])
        vis = it.vis if it.vis is not None else np.ones(len(pts), dtype=bool)
        polylines.append((scaler(pts, it.label), vis))
    scaler.warn()
    length = max(len(p) for p, _ in polylines)
    out_p = np.empty((length, len(polylines), 2))
    out_v = np.empty((length, len(polylines)), dtype=bool)
    for n, (p, v) in enumerate(polylines):
        out_p[:, n], out_v[:, n] = resample_polyline(p, v, length, parameter)
    timing = tuple(it.timing for it in items)
    return Tracks(torch.from_numpy(out_p).float(), torch.from_numpy(out_v), timing)


def parse_arrows(text_or_obj, width: int, height: int, *, normalized="auto", out_of_bounds: str = "clip",
                 input_name: str = "arrows", allow_zero_length: bool = False) -> Arrows:
    """Parse arrows in any supported format (see the package docstring) into :class:`Arrows` in pixels.

    Accepted besides the trajectory formats: ``[[[x0, y0], [x1, y1]], ...]`` pairs (``[[x0, y0], [x1, y1], speed]``
    with a speed), ``[{"start": [x, y], "end": [x, y], "speed": s}, ...]``, rows ``[x0, y0, x1, y1(, speed)]``, and
    Motion-I2V lines ``x1,y1,x2,y2(,speed)``. A trajectory of more than 2 points becomes an arrow from its first to
    its last point with speed 1. In canonical JSON, "arrows" are used when present, otherwise "tracks".

    Raises:
        TrajectoryFormatError: malformed input, or an arrow of zero length (unless ``allow_zero_length``).
    """
    items, scaler = _items_to_scale(text_or_obj, width, height, normalized, out_of_bounds, input_name, "arrows")
    starts, ends, speeds = [], [], []
    for it in items:
        label = it.label.replace("track ", "arrow ")  # a trajectory read as an arrow
        pts = scaler(np.stack([it.points[0], it.points[-1]]), label)
        if not allow_zero_length and np.array_equal(pts[0], pts[1]):
            raise TrajectoryFormatError(input_name, f"{label} has zero length (start == end == "
                                                    f"({pts[0, 0]:g}, {pts[0, 1]:g})): drag from the start to the end")
        starts.append(pts[0])
        ends.append(pts[1])
        speeds.append(it.speed)
    scaler.warn()
    return Arrows(torch.from_numpy(np.asarray(starts)).float(), torch.from_numpy(np.asarray(ends)).float(),
                  torch.tensor(speeds, dtype=torch.float32))


def _is_brush_object(obj) -> bool:
    return isinstance(obj, dict) and "strokes" in obj and not any(k in obj for k in CANONICAL_KEYS)


def parse_brush(text_or_obj, width: int, height: int, *, normalized="auto", out_of_bounds: str = "clip",
                input_name: str = "brush") -> BrushStrokes | None:
    """The motion brush of the pack's JSON as :class:`BrushStrokes` in pixels; None when the input holds none.

    Accepts the whole canonical document (or its :class:`TrajectoryDocument`), or the brush object
    ``{"mode": .., "strokes": [..]}`` itself. Every other format (point lists, lines, TRACKS) holds no brush: None.
    """
    width, height = _check_size(width, height)
    if isinstance(text_or_obj, str) and not text_or_obj.strip():
        return None
    if isinstance(text_or_obj, (Tracks, Arrows)):
        return None  # parsed containers hold no brush
    if isinstance(text_or_obj, TrajectoryDocument):
        doc = text_or_obj
    else:
        obj = decode(text_or_obj, input_name)
        if _is_brush_object(obj):
            doc = TrajectoryDocument(brush=read_brush(obj, input_name))
        elif isinstance(obj, dict) and "track_path" not in obj:
            doc = read_canonical(obj, input_name)
        else:
            return None
    if doc.brush is None:
        return None
    brush = doc.brush
    scaler = _Scaler(doc, width, height, normalized, out_of_bounds, input_name, brush.strokes)
    radius_scale = scaler.length_scale
    strokes = [(scaler(it.points, it.label), r * radius_scale, e)
               for it, r, e in zip(brush.strokes, brush.radii, brush.erase)]
    scaler.warn()
    return BrushStrokes(strokes, brush.mode)
