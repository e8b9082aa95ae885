"""Trajectories, arrows and brushes drawn by a user: one internal representation and parsers for every common format.

Internal representation
-----------------------
- :class:`Tracks`: ``points`` [T, N, 2] float32 pixels (x right, y down) and ``visibility`` [T, N] bool. Point t of
  track n is where that track is at frame t (the same layout as ComfyUI's core ``TRACKS`` type).
- :class:`Arrows`: ``start`` [N, 2], ``end`` [N, 2] pixels and ``speed`` [N] (a multiplier, default 1.0).

Pixel convention: pixel centres sit on integer coordinates, so a W x H picture spans x in [0, W-1], y in [0, H-1].
Normalised coordinates u, v in [0, 1] map to pixels by ``x = u * (W - 1)``, ``y = v * (H - 1)`` (0 is the centre
of the first pixel, 1 the centre of the last; ComfyUI's core ``GenerateTracks`` multiplies by W instead, which
differs by less than one pixel).

Accepted formats (``parse_trajectories`` / ``parse_arrows`` detect them):

1. Core ComfyUI ``TRACKS``: ``{"track_path": [T, N, 2] tensor or nested list, "track_visibility": [T, N]}``.
   Always pixels (the core type's convention) unless ``normalized=True`` is passed.
2. KJNodes spline-editor coordinate strings: ``'[{"x": 10, "y": 20}, ...]'`` (one track), a JSON list of such
   lists (several tracks), or a Python list of such JSON strings. Single quotes are accepted.
3. Motion-I2V drag lines: one ``x1,y1,x2,y2`` per line (commas and/or spaces); each line is a 2-point track.
   Lines with 2k >= 6 numbers are k-point polylines; in arrow context a 5th number is the arrow's speed.
   Blank lines and lines starting with ``#`` are skipped.
4. DragNUWA / MotionCtrl point lists: ``[[[x, y], [x, y], ...], ...]`` (several tracks) or ``[[x, y], ...]`` (one).
5. The pack's canonical JSON, written by the front-end editor and by :func:`to_canonical_json`::

       {"version": 1,
        "coordinates": "pixels",            # or "normalized"; when absent, detected (see `normalized`)
        "width": 512, "height": 384,        # optional: size of the picture the coordinates were drawn on;
                                            #   coordinates are rescaled when the parser's size differs
        "arrows": [{"start": [x, y], "end": [x, y], "speed": 1.0}, ...],
        "tracks": [[[x, y], [x, y], ...], ...],
        "visibility": [[true, false, ...], ...],   # optional, one list per track, parallel to "tracks"
        "brush": {"mode": "move",           # "move": painted = may move; "static": painted = stays still
                  "strokes": [{"points": [[x, y], ...], "radius": 12.0, "erase": false}, ...]}}

   Arrows may also be written ``[[x0, y0], [x1, y1]]``, ``[[x0, y0], [x1, y1], speed]`` or
   ``[x0, y0, x1, y1(, speed)]``. The brush radius is in pixels (a fraction of the long side when normalised).

Tracks of different lengths are resampled to the longest length with a monotone cubic (PCHIP) over the point index,
see :func:`resample_tracks`. Points outside the picture are clipped to its border with a :class:`TrajectoryWarning`
(``out_of_bounds="clip"``) or rejected (``"error"``). Every malformed input raises :class:`TrajectoryFormatError`
whose message starts with the input's name and says what was expected.

Example:
    >>> t = parse_trajectories('[[[10, 20], [30, 40], [50, 40]]]', width=64, height=64)
    >>> t.points.shape, t.num_frames, t.num_tracks
    (torch.Size([3, 1, 2]), 3, 1)
    >>> parse_trajectories(tracks_to_json(t), 64, 64) == t
    True
"""
from __future__ import annotations

import json
import math
import numbers
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "Arrows",
    "BrushStrokes",
    "TrajectoryFormatError",
    "TrajectoryWarning",
    "Tracks",
    "arrows_to_json",
    "arrows_to_tracks",
    "parse_arrows",
    "parse_brush",
    "parse_trajectories",
    "resample_tracks",
    "to_canonical_json",
    "tracks_from_comfy",
    "tracks_to_arrows",
    "tracks_to_comfy",
    "tracks_to_json",
]

CANONICAL_KEYS = ("version", "coordinates", "width", "height", "arrows", "tracks", "visibility", "brush")


class TrajectoryFormatError(ValueError):
    """A trajectory / arrow / brush input that cannot be understood. ``str(e)`` starts with the input's name."""

    def __init__(self, input_name: str, detail: str):
        self.input_name = input_name
        self.detail = detail
        super().__init__(f"{input_name}: {detail}")


class TrajectoryWarning(UserWarning):
    """A trajectory input was accepted after a correction (points clipped to the picture)."""


# ----------------------------------------------------------------------------------------------------------------------
# Containers
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Tracks:
    """Point trajectories over time.

    Attributes:
        points: [T, N, 2] float32, pixels; ``points[t, n] = (x, y)`` of track n at frame t.
        visibility: [T, N] bool; False where the point is hidden (its position is kept, but carries less meaning).
            Defaults to all True.

    Two Tracks compare equal (``==``) when shapes, points and visibility are exactly equal.
    """

    points: torch.Tensor
    visibility: torch.Tensor | None = None

    def __post_init__(self) -> None:
        p = torch.as_tensor(self.points)
        if p.ndim != 3 or p.shape[-1] != 2:
            raise ValueError(f"Tracks.points must be [T, N, 2], got {tuple(p.shape)}")
        self.points = p.to(torch.float32)
        if self.visibility is None:
            self.visibility = torch.ones(p.shape[:2], dtype=torch.bool, device=p.device)
        v = torch.as_tensor(self.visibility, device=p.device)
        if tuple(v.shape) != tuple(p.shape[:2]):
            raise ValueError(f"Tracks.visibility must be [T, N] = {tuple(p.shape[:2])}, got {tuple(v.shape)}")
        self.visibility = v.to(torch.bool)

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_tracks(self) -> int:
        return int(self.points.shape[1])

    def to(self, device) -> Tracks:
        return Tracks(self.points.to(device), self.visibility.to(device))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tracks):
            return NotImplemented
        return (self.points.shape == other.points.shape
                and torch.equal(self.points.cpu(), other.points.cpu())
                and torch.equal(self.visibility.cpu(), other.visibility.cpu()))

    __hash__ = None  # mutable container

    def __repr__(self) -> str:
        return f"Tracks(num_frames={self.num_frames}, num_tracks={self.num_tracks})"


@dataclass(eq=False)
class Arrows:
    """Straight arrows with a speed each.

    Attributes:
        start: [N, 2] float32 pixels (x, y).
        end: [N, 2] float32 pixels.
        speed: [N] float32 multiplier of the arrow's vector (default 1.0).
    """

    start: torch.Tensor
    end: torch.Tensor
    speed: torch.Tensor | None = None

    def __post_init__(self) -> None:
        s = torch.as_tensor(self.start).to(torch.float32)
        e = torch.as_tensor(self.end).to(torch.float32)
        if s.ndim != 2 or s.shape[-1] != 2 or e.shape != s.shape:
            raise ValueError(f"Arrows.start and Arrows.end must both be [N, 2], got {tuple(s.shape)} and "
                             f"{tuple(e.shape)}")
        if self.speed is None:
            self.speed = torch.ones(s.shape[0], dtype=torch.float32, device=s.device)
        sp = torch.as_tensor(self.speed, device=s.device).to(torch.float32)
        if sp.ndim == 0:
            sp = sp.expand(s.shape[0]).clone()
        if tuple(sp.shape) != (s.shape[0],):
            raise ValueError(f"Arrows.speed must be [N] = ({s.shape[0]},), got {tuple(sp.shape)}")
        self.start, self.end, self.speed = s, e, sp

    @property
    def num_arrows(self) -> int:
        return int(self.start.shape[0])

    def vectors(self) -> torch.Tensor:
        """[N, 2] (end - start) * speed, pixels."""
        return (self.end - self.start) * self.speed[:, None]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Arrows):
            return NotImplemented
        return (self.start.shape == other.start.shape
                and all(torch.equal(a.cpu(), b.cpu()) for a, b in
                        ((self.start, other.start), (self.end, other.end), (self.speed, other.speed))))

    __hash__ = None

    def __repr__(self) -> str:
        return f"Arrows(num_arrows={self.num_arrows})"


@dataclass
class BrushStrokes:
    """A motion brush as painted strokes (the canonical JSON's ``"brush"``).

    Attributes:
        strokes: list of (points [K, 2] float64 numpy pixels, radius in pixels, erase flag).
        mode: "move" (painted pixels may move, the rest stays still) or "static" (painted pixels stay still).
    """

    strokes: list = field(default_factory=list)
    mode: str = "move"

    @property
    def invert(self) -> bool:
        """True when the painted region is the one that must stay still (pass to ``apply_brush(invert=...)``)."""
        return self.mode == "static"

    def to_mask(self, height: int, width: int) -> torch.Tensor:
        """Rasterise to a [H, W] float32 mask of painted pixels (1 = painted), with OpenCV round-capped lines."""
        import cv2

        canvas = np.zeros((int(height), int(width)), dtype=np.uint8)
        shift = 4  # sub-pixel precision of cv2 drawing: coordinates * 16
        for points, radius, erase in self.strokes:
            value = 0 if erase else 255
            pts = np.round(np.asarray(points, dtype=np.float64) * (1 << shift)).astype(np.int32)
            r = max(int(round(radius)), 0)
            for x, y in pts:
                cv2.circle(canvas, (int(x), int(y)), r << shift, value, thickness=-1, lineType=cv2.LINE_8, shift=shift)
            if len(pts) > 1 and r > 0:
                cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, value, thickness=2 * r + 1,
                              lineType=cv2.LINE_8, shift=shift)
        return torch.from_numpy(canvas.astype(np.float32) / 255.0)


# ----------------------------------------------------------------------------------------------------------------------
# ComfyUI TRACKS and canonical JSON writers
# ----------------------------------------------------------------------------------------------------------------------


def tracks_to_comfy(tracks: Tracks) -> dict:
    """Core ComfyUI ``TRACKS``: ``{"track_path": [T, N, 2] float32, "track_visibility": [T, N] bool}`` (copies)."""
    return {"track_path": tracks.points.detach().clone(), "track_visibility": tracks.visibility.detach().clone()}


def tracks_from_comfy(data: dict, *, input_name: str = "tracks") -> Tracks:
    """Exact inverse of :func:`tracks_to_comfy` (no clipping, no rescaling). Raises TrajectoryFormatError."""
    if not isinstance(data, dict) or "track_path" not in data:
        raise TrajectoryFormatError(input_name, f"expected a TRACKS dict with 'track_path', got {_describe(data)}")
    path = _as_float_tensor(data["track_path"], input_name, "track_path")
    if path.ndim == 4 and path.shape[0] == 1:
        path = path[0]
    if path.ndim != 3 or path.shape[-1] != 2:
        raise TrajectoryFormatError(input_name, f"track_path must be [T, N, 2], got shape {tuple(path.shape)}")
    if path.shape[0] == 0 or path.shape[1] == 0:
        raise TrajectoryFormatError(input_name, f"track_path is empty (shape {tuple(path.shape)}): no tracks")
    bad = ~torch.isfinite(path)
    if bad.any():
        t, n, _ = (int(i) for i in bad.nonzero()[0])
        raise TrajectoryFormatError(input_name, f"track_path frame {t}, track {n}: coordinate is "
                                                f"{float(path[t, n][bad[t, n]][0])} (NaN or infinite)")
    vis = data.get("track_visibility")
    if vis is None:
        vis = torch.ones(path.shape[:2], dtype=torch.bool, device=path.device)
    else:
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
        vis = vis.to(device=path.device)
    return Tracks(path.clone(), vis.to(torch.bool).clone())


def to_canonical_json(tracks: Tracks | None = None, arrows: Arrows | None = None, brush: BrushStrokes | None = None,
                      *, width: int | None = None, height: int | None = None, indent: int | None = None) -> str:
    """Write the pack's canonical JSON (pixel coordinates). Exact: parsing it gives back the same values."""
    doc: dict = {"version": 1, "coordinates": "pixels"}
    if width is not None and height is not None:
        doc["width"], doc["height"] = int(width), int(height)
    if arrows is not None:
        doc["arrows"] = [{"start": [float(x) for x in s], "end": [float(x) for x in e], "speed": float(v)}
                         for s, e, v in zip(arrows.start.tolist(), arrows.end.tolist(), arrows.speed.tolist())]
    if tracks is not None:
        pts = tracks.points.detach().cpu().permute(1, 0, 2).tolist()  # [N, T, 2]
        doc["tracks"] = [[[float(x), float(y)] for x, y in track] for track in pts]
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


# ----------------------------------------------------------------------------------------------------------------------
# Conversions and resampling
# ----------------------------------------------------------------------------------------------------------------------


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


def _resample_polyline(points: np.ndarray, vis: np.ndarray, num_frames: int, parameter: str):
    """points [L, 2] float64, vis [L] bool -> ([num_frames, 2], [num_frames]) by PCHIP; end points kept exactly."""
    length = len(points)
    if length == num_frames and parameter == "index":
        return points.copy(), vis.copy()
    queries = np.linspace(0.0, 1.0, num_frames)
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
    out[0] = points[0]
    if num_frames > 1:
        out[-1] = points[-1]
    nearest = np.clip(np.searchsorted(k, queries), 0, len(k) - 1)
    prev = np.clip(nearest - 1, 0, len(k) - 1)
    nearest = np.where(np.abs(k[prev] - queries) <= np.abs(k[nearest] - queries), prev, nearest)
    return out, vis[keep][nearest]


def resample_tracks(tracks: Tracks, num_frames: int, *, parameter: str = "index") -> Tracks:
    """Resample every track to ``num_frames`` points with a monotone cubic (PCHIP, no overshoot).

    Args:
        tracks: T points per track.
        num_frames: new T (>= 1).
        parameter: "index" (default): point k of T sits at time k / (T-1), keeping the drawn timing; resampling
            to the same T is the identity. "arclength": time is proportional to the distance travelled along the
            polyline, so the motion has constant speed along the path.

    Returns:
        Tracks [num_frames, N, 2]; the first and last points are kept exactly; visibility is taken from the nearest
        original point in time (ties go to the earlier point).

    Example:
        >>> t = Tracks(torch.tensor([[[0., 0.]], [[10., 0.]]]))
        >>> resample_tracks(t, 3).points[:, 0, 0].tolist()
        [0.0, 5.0, 10.0]
    """
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    pts = tracks.points.detach().cpu().double().numpy()
    vis = tracks.visibility.detach().cpu().numpy()
    out_p = np.empty((num_frames, tracks.num_tracks, 2))
    out_v = np.empty((num_frames, tracks.num_tracks), dtype=bool)
    for n in range(tracks.num_tracks):
        out_p[:, n], out_v[:, n] = _resample_polyline(pts[:, n], vis[:, n], int(num_frames), parameter)
    device = tracks.points.device
    return Tracks(torch.from_numpy(out_p).float().to(device), torch.from_numpy(out_v).to(device))


# ----------------------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class _Item:
    """One parsed trajectory or arrow before scaling: points [L, 2] float64 in the input's coordinates."""

    points: np.ndarray
    label: str
    vis: np.ndarray | None = None
    speed: float = 1.0
    is_arrow: bool = False


@dataclass
class _Doc:
    tracks: list = field(default_factory=list)
    arrows: list = field(default_factory=list)
    brush: dict | None = None
    coordinates: str | None = None  # "pixels" / "normalized" when declared
    size: tuple[int, int] | None = None  # (width, height) the coordinates were drawn on
    is_comfy: bool = False


def _describe(value, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, torch.Tensor) else f"tensor of shape {tuple(value.shape)}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _as_float_tensor(value, input_name: str, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64) if value.dtype != torch.float32 else value.detach()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TrajectoryFormatError(input_name, f"{what} must be a [T, N, 2] array of numbers; "
                                                f"got ragged or non-numeric data {_describe(value)}") from None
    return torch.from_numpy(arr)


def _number(v, input_name: str, label: str) -> float:
    if not _is_number(v):
        raise TrajectoryFormatError(input_name, f"{label}: expected a number, got {_describe(v)}")
    f = float(v)
    if not math.isfinite(f):
        raise TrajectoryFormatError(input_name, f"{label}: {f} is not a finite number (NaN or infinite)")
    return f


def _point(p, input_name: str, label: str) -> tuple[float, float]:
    if isinstance(p, dict):
        if "x" not in p or "y" not in p:
            raise TrajectoryFormatError(input_name, f"{label}: expected {{\"x\": .., \"y\": ..}} or [x, y], "
                                                    f"got {_describe(p)}")
        xy = (p["x"], p["y"])
    elif isinstance(p, (list, tuple)) and len(p) == 2:
        xy = tuple(p)
    else:
        raise TrajectoryFormatError(input_name, f"{label}: expected [x, y] numbers, got {_describe(p)}")
    if not (_is_number(xy[0]) and _is_number(xy[1])):
        raise TrajectoryFormatError(input_name, f"{label}: expected [x, y] numbers, got {_describe(p)}")
    x, y = float(xy[0]), float(xy[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise TrajectoryFormatError(input_name, f"{label}: coordinate is NaN or infinite ({x}, {y})")
    return x, y


def _is_pointlike(p) -> bool:
    if isinstance(p, dict):
        return "x" in p or "y" in p
    return isinstance(p, (list, tuple)) and len(p) == 2 and not any(isinstance(v, (list, tuple, dict)) for v in p)


def _track_item(obj, input_name: str, label: str) -> _Item:
    if not isinstance(obj, (list, tuple)):
        raise TrajectoryFormatError(input_name, f"{label}: expected a list of [x, y] points, got {_describe(obj)}")
    if len(obj) == 0:
        raise TrajectoryFormatError(input_name, f"{label} is empty: a trajectory needs at least 2 points")
    pts = [_point(p, input_name, f"{label}, point {k}") for k, p in enumerate(obj)]
    if len(pts) < 2:
        raise TrajectoryFormatError(input_name, f"{label} has only 1 point: a trajectory needs at least 2 "
                                                "(a start and an end)")
    return _Item(np.asarray(pts, dtype=np.float64), label)


def _arrow_item(obj, input_name: str, label: str) -> _Item:
    speed = 1.0
    if isinstance(obj, dict):
        unknown = set(obj) - {"start", "end", "speed"}
        if "start" not in obj or "end" not in obj or unknown:
            raise TrajectoryFormatError(input_name, f"{label}: expected {{\"start\": [x, y], \"end\": [x, y], "
                                                    f"\"speed\": s}}, got {_describe(obj, 60)}")
        a = _point(obj["start"], input_name, f"{label}, start")
        b = _point(obj["end"], input_name, f"{label}, end")
        if "speed" in obj:
            speed = _number(obj["speed"], input_name, f"{label}, speed")
    elif isinstance(obj, (list, tuple)) and len(obj) in (4, 5) and all(_is_number(v) for v in obj):
        vals = [_number(v, input_name, f"{label}, value {k}") for k, v in enumerate(obj)]
        a, b = (vals[0], vals[1]), (vals[2], vals[3])
        speed = vals[4] if len(vals) == 5 else 1.0
    elif isinstance(obj, (list, tuple)) and len(obj) in (2, 3) and all(_is_pointlike(p) for p in obj[:2]):
        a = _point(obj[0], input_name, f"{label}, start")
        b = _point(obj[1], input_name, f"{label}, end")
        if len(obj) == 3:
            speed = _number(obj[2], input_name, f"{label}, speed")
    else:
        raise TrajectoryFormatError(input_name, f"{label}: expected an arrow [[x0, y0], [x1, y1]] (optionally with a "
                                                f"speed), got {_describe(obj, 60)}")
    return _Item(np.asarray([a, b], dtype=np.float64), label, speed=speed, is_arrow=True)


_LINE_SPLIT = re.compile(r"[,\s;]+")


def _parse_lines(text: str, input_name: str, prefix: str) -> list[_Item]:
    items = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        label = f"{prefix}line {lineno}"
        fields = [f for f in _LINE_SPLIT.split(line) if f]
        try:
            vals = [float(f) for f in fields]
        except ValueError:
            raise TrajectoryFormatError(input_name, f"{label}: expected numbers 'x1,y1,x2,y2', got {line[:40]!r}"
                                        ) from None
        if any(not math.isfinite(v) for v in vals):
            raise TrajectoryFormatError(input_name, f"{label}: coordinate is NaN or infinite in {line[:40]!r}")
        if len(vals) == 5:
            items.append(_Item(np.asarray([vals[:2], vals[2:4]]), label, speed=vals[4], is_arrow=True))
        elif len(vals) >= 4 and len(vals) % 2 == 0:
            items.append(_Item(np.asarray(vals, dtype=np.float64).reshape(-1, 2), label, is_arrow=len(vals) == 4))
        else:
            raise TrajectoryFormatError(input_name, f"{label}: expected 4 numbers 'x1,y1,x2,y2' (or 5 with a speed), "
                                                    f"got {len(vals)} in {line[:40]!r}")
    if not items:
        raise TrajectoryFormatError(input_name, "no trajectory found: the text has no 'x1,y1,x2,y2' lines")
    return items


def _check_brackets(text: str, input_name: str, prefix: str) -> None:
    """Clear messages for unbalanced JSON brackets (json's own message is less helpful)."""
    stack: list[tuple[str, int]] = []
    pairs = {"]": "[", "}": "{"}
    in_string, escape, quote = False, False, ""
    for i, ch in enumerate(text):
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == quote:
                in_string = False
        elif ch in "\"'":
            in_string, quote = True, ch
        elif ch in "[{":
            stack.append((ch, i))
        elif ch in "]}":
            if not stack:
                raise TrajectoryFormatError(input_name, f"{prefix}unbalanced JSON at char {i}: {ch!r} closes nothing")
            opener, at = stack.pop()
            if opener != pairs[ch]:
                raise TrajectoryFormatError(input_name, f"{prefix}unbalanced JSON at char {i}: {ch!r} cannot close "
                                                        f"{opener!r} opened at char {at}")
    if stack:
        opener, at = stack[-1]
        raise TrajectoryFormatError(input_name, f"{prefix}unbalanced JSON at char {len(text)}: {opener!r} opened at "
                                                f"char {at} is never closed")


def _loads(text: str, input_name: str, prefix: str):
    _check_brackets(text, input_name, prefix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        if "'" in text:  # KJNodes-style strings written with single quotes
            try:
                return json.loads(text.replace("'", '"'))
            except json.JSONDecodeError:
                pass
        raise TrajectoryFormatError(input_name, f"{prefix}invalid JSON at char {first.pos} (line {first.lineno}, "
                                                f"column {first.colno}): {first.msg}") from None


def _collect_text(text: str, input_name: str, prefix: str, depth: int) -> _Doc:
    stripped = text.strip()
    if not stripped:
        raise TrajectoryFormatError(input_name, f"{prefix}is empty: expected trajectories (JSON or 'x1,y1,x2,y2' "
                                                "lines)")
    if stripped[0] in "[{\"'":
        obj = _loads(stripped, input_name, prefix)
        return _collect(obj, input_name, prefix, depth + 1)
    return _Doc(tracks=_parse_lines(stripped, input_name, prefix))


def _collect_list(obj: list, input_name: str, prefix: str, depth: int) -> _Doc:
    if len(obj) == 0:
        raise TrajectoryFormatError(input_name, f"{prefix}is an empty list: expected at least one trajectory")
    first = obj[0]
    if all(isinstance(o, str) for o in obj):  # KJNodes: a list of coordinate strings
        doc = _Doc()
        for i, s in enumerate(obj):
            sub = _collect_text(s, input_name, f"{prefix}string {i}: ", depth)
            doc.tracks += sub.tracks
            doc.arrows += sub.arrows
        return doc
    if isinstance(first, dict) and ("start" in first or "end" in first):
        return _Doc(arrows=[_arrow_item(o, input_name, f"{prefix}arrow {i}") for i, o in enumerate(obj)])
    if len(obj) == 3 and _is_number(obj[2]) and all(_is_pointlike(p) for p in obj[:2]):
        return _Doc(arrows=[_arrow_item(obj, input_name, f"{prefix}arrow 0")])  # [[x0, y0], [x1, y1], speed]
    if len(obj) == 2 and all(_is_number(v) for v in obj):
        raise TrajectoryFormatError(input_name, f"{prefix}got a single point {_describe(obj)}: expected a list "
                                                "of points [[x, y], [x, y], ...]")
    if _is_pointlike(first):  # one track: [[x, y], ...] or [{"x":..,"y":..}, ...]
        return _Doc(tracks=[_track_item(obj, input_name, f"{prefix}track 0")])
    if isinstance(first, (list, tuple)) and len(first) in (4, 5) and all(_is_number(v) for v in first):
        return _Doc(arrows=[_arrow_item(o, input_name, f"{prefix}arrow {i}") for i, o in enumerate(obj)])
    if all(_is_number(v) for v in obj):
        if len(obj) in (4, 5):
            return _Doc(arrows=[_arrow_item(obj, input_name, f"{prefix}arrow 0")])
        raise TrajectoryFormatError(input_name, f"{prefix}expected a list of [x, y] points, got a flat list of "
                                                f"{len(obj)} numbers")
    def has_speed(o) -> bool:
        return isinstance(o, (list, tuple)) and len(o) == 3 and _is_number(o[2]) and all(map(_is_pointlike, o[:2]))

    if any(has_speed(o) for o in obj):  # [[[x0, y0], [x1, y1], speed], ...]: a list of arrows
        return _Doc(arrows=[_arrow_item(o, input_name, f"{prefix}arrow {i}") for i, o in enumerate(obj)])
    return _Doc(tracks=[_track_item(o, input_name, f"{prefix}track {i}") for i, o in enumerate(obj)])


def _collect_canonical(obj: dict, input_name: str, prefix: str) -> _Doc:
    unknown = [k for k in obj if k not in CANONICAL_KEYS]
    if unknown:
        raise TrajectoryFormatError(input_name, f"{prefix}unknown key {unknown[0]!r}; expected some of "
                                                f"{', '.join(CANONICAL_KEYS)} (or a TRACKS dict with 'track_path')")
    doc = _Doc()
    coords = obj.get("coordinates")
    if coords is not None:
        if coords not in ("pixels", "normalized", "normalised"):
            raise TrajectoryFormatError(input_name, f"{prefix}'coordinates' must be 'pixels' or 'normalized', "
                                                    f"got {_describe(coords)}")
        doc.coordinates = "pixels" if coords == "pixels" else "normalized"
    if ("width" in obj) != ("height" in obj):
        raise TrajectoryFormatError(input_name, f"{prefix}'width' and 'height' must be given together")
    if "width" in obj:
        w, h = obj["width"], obj["height"]
        if not (isinstance(w, int) and isinstance(h, int) and not isinstance(w, bool) and w >= 1 and h >= 1):
            raise TrajectoryFormatError(input_name, f"{prefix}'width' and 'height' must be positive integers, got "
                                                    f"{_describe(w)} x {_describe(h)}")
        doc.size = (w, h)
    arrows = obj.get("arrows", [])
    if not isinstance(arrows, list):
        raise TrajectoryFormatError(input_name, f"{prefix}'arrows' must be a list, got {_describe(arrows)}")
    doc.arrows = [_arrow_item(a, input_name, f"{prefix}arrow {i}") for i, a in enumerate(arrows)]
    tracks = obj.get("tracks", [])
    if not isinstance(tracks, list):
        raise TrajectoryFormatError(input_name, f"{prefix}'tracks' must be a list of tracks, got {_describe(tracks)}")
    if tracks and _is_pointlike(tracks[0]):
        raise TrajectoryFormatError(input_name, f"{prefix}'tracks' must be a list of tracks [[[x, y], ...], ...]; "
                                                "got a single list of points (wrap it in one more [ ])")
    doc.tracks = [_track_item(t, input_name, f"{prefix}track {i}") for i, t in enumerate(tracks)]
    vis = obj.get("visibility")
    if vis is not None:
        if not isinstance(vis, list) or len(vis) != len(doc.tracks):
            raise TrajectoryFormatError(input_name, f"{prefix}'visibility' must be a list with one list per track "
                                                    f"({len(doc.tracks)}), got {_describe(vis)}")
        for i, (item, v) in enumerate(zip(doc.tracks, vis)):
            if not isinstance(v, list) or len(v) != len(item.points) or not all(isinstance(b, bool) for b in v):
                raise TrajectoryFormatError(input_name, f"{prefix}visibility of track {i}: expected "
                                                        f"{len(item.points)} true/false values, got {_describe(v)}")
            item.vis = np.asarray(v, dtype=bool)
    brush = obj.get("brush")
    if brush is not None and not isinstance(brush, dict):
        raise TrajectoryFormatError(input_name, f"{prefix}'brush' must be an object with 'strokes', got "
                                                f"{_describe(brush)}")
    doc.brush = brush
    return doc


def _collect_comfy(obj: dict, input_name: str) -> _Doc:
    tracks = tracks_from_comfy(obj, input_name=input_name)
    pts = tracks.points.detach().cpu().double().numpy()
    vis = tracks.visibility.detach().cpu().numpy()
    items = [_Item(pts[:, n].copy(), f"track {n}", vis=vis[:, n].copy()) for n in range(tracks.num_tracks)]
    return _Doc(tracks=items, is_comfy=True)


def _collect(obj, input_name: str, prefix: str = "", depth: int = 0) -> _Doc:
    if depth > 3:
        raise TrajectoryFormatError(input_name, f"{prefix}too deeply nested strings")
    if isinstance(obj, Tracks):
        return _collect_comfy(tracks_to_comfy(obj), input_name)
    if isinstance(obj, Arrows):
        return _Doc(arrows=[_Item(np.asarray([s, e], dtype=np.float64), f"arrow {i}", speed=float(v), is_arrow=True)
                            for i, (s, e, v) in enumerate(zip(obj.start.tolist(), obj.end.tolist(),
                                                              obj.speed.tolist()))])
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return _collect_comfy({"track_path": obj}, input_name)
    if isinstance(obj, (bytes, bytearray)):
        obj = obj.decode("utf-8", errors="replace")
    if isinstance(obj, str):
        return _collect_text(obj, input_name, prefix, depth)
    if isinstance(obj, dict):
        if "track_path" in obj:
            return _collect_comfy(obj, input_name)
        if "x" in obj and "y" in obj:
            raise TrajectoryFormatError(input_name, f"{prefix}got a single point {_describe(obj)}: expected a list of "
                                                    "points")
        return _collect_canonical(obj, input_name, prefix)
    if isinstance(obj, (list, tuple)):
        return _collect_list(list(obj), input_name, prefix, depth)
    if obj is None:
        raise TrajectoryFormatError(input_name, "no input (None): expected trajectories")
    raise TrajectoryFormatError(input_name, f"{prefix}unsupported input of type {type(obj).__name__}: expected a "
                                            "JSON string, a list of points or a TRACKS dict")


def _check_size(width, height) -> tuple[int, int]:
    w, h = int(width), int(height)
    if w < 1 or h < 1:
        raise ValueError(f"width and height must be >= 1, got {width} x {height}")
    return w, h


class _Scaler:
    """Maps the input's coordinates to pixels of a width x height picture, then clips or rejects."""

    def __init__(self, doc: _Doc, width: int, height: int, normalized, out_of_bounds: str, input_name: str,
                 items: list[_Item]):
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


def parse_trajectories(text_or_obj, width: int, height: int, *, normalized="auto", out_of_bounds: str = "clip",
                       input_name: str = "trajectories", parameter: str = "index") -> Tracks:
    """Parse trajectories in any supported format (see the module docstring) into :class:`Tracks` in pixels.

    Args:
        text_or_obj: a string (JSON, KJNodes coordinates, Motion-I2V lines), a list (of points, of tracks, of
            KJNodes strings), a TRACKS dict, a [T, N, 2] tensor/array, or a Tracks / Arrows object.
        width, height: size of the picture, pixels.
        normalized: "auto" (the format's declaration when it has one; TRACKS are pixels; otherwise normalised when
            every coordinate is in [0, 1]), True or False.
        out_of_bounds: "clip" (clip to the picture with a TrajectoryWarning) or "error" (TrajectoryFormatError).
        input_name: name used in error messages (the node input's name).
        parameter: time parameterisation used when tracks of different lengths are resampled (see resample_tracks).

    Returns:
        Tracks [T, N, 2] float32 (T = the longest track's length). In canonical JSON, "tracks" are used when
        present; otherwise each arrow becomes a 2-point track from start to start + speed * (end - start).

    Raises:
        TrajectoryFormatError: malformed input; the message starts with ``input_name``.
    """
    width, height = _check_size(width, height)
    doc = _collect(text_or_obj, input_name)
    items = doc.tracks if doc.tracks else doc.arrows
    if not items:
        raise TrajectoryFormatError(input_name, "contains no trajectory (no 'tracks' and no 'arrows')")
    scaler = _Scaler(doc, width, height, normalized, out_of_bounds, input_name, items)
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
        out_p[:, n], out_v[:, n] = _resample_polyline(p, v, length, parameter)
    return Tracks(torch.from_numpy(out_p).float(), torch.from_numpy(out_v))


def parse_arrows(text_or_obj, width: int, height: int, *, normalized="auto", out_of_bounds: str = "clip",
                 input_name: str = "arrows", allow_zero_length: bool = False) -> Arrows:
    """Parse arrows in any supported format (see the module docstring) into :class:`Arrows` in pixels.

    Accepted besides the trajectory formats: ``[[[x0, y0], [x1, y1]], ...]`` pairs (``[[x0, y0], [x1, y1], speed]``
    with a speed), ``[{"start": [x, y], "end": [x, y], "speed": s}, ...]``, rows ``[x0, y0, x1, y1(, speed)]``, and
    Motion-I2V lines ``x1,y1,x2,y2(,speed)``. A trajectory of more than 2 points becomes an arrow from its first to
    its last point with speed 1. In canonical JSON, "arrows" are used when present, otherwise "tracks".

    Raises:
        TrajectoryFormatError: malformed input, or an arrow of zero length (unless ``allow_zero_length``).
    """
    width, height = _check_size(width, height)
    doc = _collect(text_or_obj, input_name)
    items = doc.arrows if doc.arrows else doc.tracks
    if not items:
        raise TrajectoryFormatError(input_name, "contains no arrow (no 'arrows' and no 'tracks')")
    scaler = _Scaler(doc, width, height, normalized, out_of_bounds, input_name, items)
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


def parse_brush(text_or_obj, width: int, height: int, *, normalized="auto", out_of_bounds: str = "clip",
                input_name: str = "brush") -> BrushStrokes | None:
    """The canonical JSON's ``"brush"`` as :class:`BrushStrokes` in pixels (None when the document has no brush).

    Accepts the whole canonical document or the brush object ``{"mode": .., "strokes": [..]}`` itself.
    """
    width, height = _check_size(width, height)
    obj = text_or_obj
    if isinstance(obj, str):
        stripped = obj.strip()
        if not stripped:
            return None
        obj = _loads(stripped, input_name, "")
    if not isinstance(obj, dict):
        raise TrajectoryFormatError(input_name, f"expected a JSON object with 'brush' or 'strokes', got "
                                                f"{_describe(obj)}")
    declared = obj.get("coordinates")
    size = (obj["width"], obj["height"]) if "width" in obj and "height" in obj else None
    brush = obj.get("brush", obj if "strokes" in obj else None)
    if brush is None:
        return None
    if not isinstance(brush, dict) or not isinstance(brush.get("strokes", []), list):
        raise TrajectoryFormatError(input_name, f"'brush' must be {{\"mode\": .., \"strokes\": [..]}}, got "
                                                f"{_describe(brush)}")
    mode = brush.get("mode", "move")
    if mode not in ("move", "static"):
        raise TrajectoryFormatError(input_name, f"brush mode must be 'move' or 'static', got {_describe(mode)}")
    items, radii, erases = [], [], []
    for i, stroke in enumerate(brush.get("strokes", [])):
        label = f"stroke {i}"
        if not isinstance(stroke, dict) or "points" not in stroke:
            raise TrajectoryFormatError(input_name, f"{label}: expected {{\"points\": [[x, y], ...], \"radius\": r}}, "
                                                    f"got {_describe(stroke)}")
        pts = stroke["points"]
        if not isinstance(pts, list) or not pts:
            raise TrajectoryFormatError(input_name, f"{label} has no points")
        items.append(_Item(np.asarray([_point(p, input_name, f"{label}, point {k}") for k, p in enumerate(pts)]),
                           label))
        radius = _number(stroke.get("radius", 8.0), input_name, f"{label}, radius")
        if radius < 0:
            raise TrajectoryFormatError(input_name, f"{label}: radius must be >= 0, got {radius:g}")
        radii.append(radius)
        erases.append(bool(stroke.get("erase", False)))
    doc = _Doc(coordinates=None if declared is None else ("pixels" if declared == "pixels" else "normalized"),
               size=size)
    scaler = _Scaler(doc, width, height, normalized, out_of_bounds, input_name, items)
    radius_scale = 1.0
    if scaler.normalized:
        radius_scale = max(width, height) - 1
    elif scaler.scale is not None:
        radius_scale = float(scaler.scale.mean())
    strokes = [(scaler(it.points, it.label), r * radius_scale, e) for it, r, e in zip(items, radii, erases)]
    scaler.warn()
    return BrushStrokes(strokes, mode)
