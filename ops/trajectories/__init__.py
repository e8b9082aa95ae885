"""Trajectories, arrows and brushes drawn by a user: one internal representation and parsers for every common format.

Internal representation (:mod:`.containers`)
--------------------------------------------
- :class:`Tracks`: ``points`` [T, N, 2] float32 pixels (x right, y down), ``visibility`` [T, N] bool and an
  optional per-track :class:`TrackTiming`. Point t of track n is where that track is at frame t (the same layout
  as ComfyUI's core ``TRACKS`` type).
- :class:`Arrows`: ``start`` [N, 2], ``end`` [N, 2] pixels and ``speed`` [N] (a multiplier, default 1.0).
- :class:`BrushStrokes`: a painted motion brush (:mod:`.brush`).

Pixel convention: pixel centres sit on integer coordinates, so a W x H picture spans x in [0, W-1], y in [0, H-1].
Normalised coordinates u, v in [0, 1] map to pixels by ``x = u * (W - 1)``, ``y = v * (H - 1)`` (0 is the centre
of the first pixel, 1 the centre of the last; ComfyUI's core ``GenerateTracks`` multiplies by W instead, which
differs by less than one pixel).

Accepted formats (``parse_trajectories`` / ``parse_arrows`` detect them), one module each:

1. Core ComfyUI ``TRACKS`` (:mod:`.comfy_tracks`): ``{"track_path": [T, N, 2] tensor or nested list,
   "track_visibility": [T, N]}``. Always pixels (the core type's convention) unless ``normalized=True`` is passed.
2. KJNodes spline-editor coordinate strings (:mod:`.point_lists`): ``'[{"x": 10, "y": 20}, ...]'`` (one track), a
   JSON list of such lists (several tracks), or a Python list of such JSON strings. Single quotes are accepted.
3. Motion-I2V drag lines (:mod:`.lines`): one ``x1,y1,x2,y2`` per line (commas and/or spaces); each line is a
   2-point track. Lines with 2k >= 6 numbers are k-point polylines; in arrow context a 5th number is the arrow's
   speed. Blank lines and lines starting with ``#`` are skipped.
4. DragNUWA / MotionCtrl point lists (:mod:`.point_lists`): ``[[[x, y], [x, y], ...], ...]`` (several tracks) or
   ``[[x, y], ...]`` (one); arrow pairs ``[[[x0, y0], [x1, y1]], ...]``.
5. The pack's canonical JSON (:mod:`.canonical`), written by the front-end editor and by
   :func:`to_canonical_json`: arrows, tracks (bare, or with a start frame, end frame and easing: :mod:`.timing`),
   visibility and a motion brush.

Every input first goes through one validated prologue (:mod:`.validation`: type, size, nesting depth; then
finiteness and magnitude of every number), so a malformed input raises :class:`TrajectoryFormatError` whose
message starts with the input's name and says what was expected, whatever the format. Tracks of different lengths
are resampled to the longest length with a monotone cubic (PCHIP) over the point index (:mod:`.resample`).
Points outside the picture are clipped to its border with a :class:`TrajectoryWarning` (``out_of_bounds="clip"``)
or rejected (``"error"``).

Example:
    >>> t = parse_trajectories('[[[10, 20], [30, 40], [50, 40]]]', width=64, height=64)
    >>> t.points.shape, t.num_frames, t.num_tracks
    (torch.Size([3, 1, 2]), 3, 1)
    >>> parse_trajectories(tracks_to_json(t), 64, 64) == t
    True
"""
from __future__ import annotations

from .brush import BrushStrokes
from .canonical import CANONICAL_KEYS, arrows_to_json, to_canonical_json, tracks_to_json
from .comfy_tracks import tracks_from_comfy, tracks_to_comfy
from .containers import Arrows, Tracks
from .document import TrajectoryDocument
from .errors import TrajectoryFormatError, TrajectoryWarning
from .parse import parse_arrows, parse_brush, parse_trajectories, read_document
from .resample import arrows_to_tracks, resample_tracks, tracks_to_arrows
from .timing import EASINGS, TrackTiming

__all__ = [
    "CANONICAL_KEYS",
    "EASINGS",
    "Arrows",
    "BrushStrokes",
    "TrackTiming",
    "TrajectoryDocument",
    "TrajectoryFormatError",
    "TrajectoryWarning",
    "Tracks",
    "arrows_to_json",
    "arrows_to_tracks",
    "parse_arrows",
    "parse_brush",
    "parse_trajectories",
    "read_document",
    "resample_tracks",
    "to_canonical_json",
    "tracks_from_comfy",
    "tracks_to_arrows",
    "tracks_to_comfy",
    "tracks_to_json",
]
