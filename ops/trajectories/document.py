"""What every format parser produces: a document of items in the input's own coordinates, before scaling.

The parsers (:mod:`.comfy_tracks`, :mod:`.canonical`, :mod:`.lines`, :mod:`.point_lists`) only read and check;
:mod:`.parse` maps a document to pixels of a given picture and builds :class:`~.containers.Tracks` /
:class:`~.containers.Arrows` / :class:`~.brush.BrushStrokes` from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .timing import TrackTiming

__all__ = ["ParsedBrush", "ParsedItem", "TrajectoryDocument"]


@dataclass
class ParsedItem:
    """One trajectory or arrow: points [L, 2] float64 in the input's coordinates.

    Attributes:
        points: [L, 2] float64 (an arrow: its start and end).
        label: where it came from, for messages ("track 2", "line 5", "arrow 0").
        vis: [L] bool visibility, or None (all visible).
        speed: the arrow's speed (1.0 for trajectories).
        is_arrow: written as an arrow (a 2-point item whose speed stretches it).
        timing: the track's :class:`TrackTiming`, or None.
    """

    points: np.ndarray
    label: str
    vis: np.ndarray | None = None
    speed: float = 1.0
    is_arrow: bool = False
    timing: TrackTiming | None = None


@dataclass
class ParsedBrush:
    """The canonical JSON's ``"brush"``, read and checked: one item per stroke (points in input coordinates)."""

    mode: str = "move"
    strokes: list = field(default_factory=list)  # ParsedItem per stroke
    radii: list = field(default_factory=list)  # float, input units
    erase: list = field(default_factory=list)  # bool


@dataclass
class TrajectoryDocument:
    """A parsed input, format-independent. Build one with :func:`~.parse.read_document`.

    Attributes:
        tracks, arrows: lists of :class:`ParsedItem`.
        brush: the drawn motion brush (only the pack's JSON holds one), or None.
        coordinates: "pixels" / "normalized" when the input declares its units, else None.
        size: (width, height) of the picture the coordinates were drawn on, when declared.
        is_comfy: read from a core TRACKS (pixels by definition).
    """

    tracks: list = field(default_factory=list)
    arrows: list = field(default_factory=list)
    brush: ParsedBrush | None = None
    coordinates: str | None = None
    size: tuple[int, int] | None = None
    is_comfy: bool = False
