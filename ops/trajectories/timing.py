"""Per-track timing: when a drawn path starts and ends within the clip, and how it accelerates (easing).

A track of the pack's JSON may be an object instead of a bare point list::

    {"points": [[x, y], ...], "start": 4, "end": 20, "easing": "ease-in-out"}

``start`` and ``end`` are frame indices of the output clip (numbers; defaults 0 and num_frames - 1). Before
``start`` the region sits at the first point; between ``start`` and ``end`` it travels the path, with the easing
applied to the path parameter s in [0, 1] (s = 0 at the first point, 1 at the last); after ``end`` it stays at the
last point. A track with no timing (a bare point list) behaves exactly like a timed one with the defaults and
"linear".

Easings map u = (t - start) / (end - start) in [0, 1] to s in [0, 1] (cubic, as CSS and most animation tools):
``linear`` s = u; ``ease-in`` s = u^3; ``ease-out`` s = 1 - (1 - u)^3; ``ease-in-out`` 4 u^3 below u = 1/2,
1 - (2 - 2u)^3 / 2 above.

Example:
    >>> path_parameters(TrackTiming(start=2, end=4), 6).tolist()
    [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    >>> path_parameters(TrackTiming(easing="ease-in"), 3).tolist()
    [0.0, 0.125, 1.0]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import TrajectoryFormatError
from .validation import describe, read_number

__all__ = ["EASINGS", "TIMING_KEYS", "TrackTiming", "check_timing", "path_parameters", "read_timing", "timing_to_dict"]


TIMING_KEYS = ("points", "start", "end", "easing")
"""The keys of a timed track object in the pack's JSON."""


def _ease_in_out(u: np.ndarray) -> np.ndarray:
    return np.where(u < 0.5, 4.0 * u ** 3, 1.0 - (2.0 - 2.0 * u) ** 3 / 2.0)


EASINGS = {
    "linear": lambda u: u,
    "ease-in": lambda u: u ** 3,
    "ease-out": lambda u: 1.0 - (1.0 - u) ** 3,
    "ease-in-out": _ease_in_out,
}
"""Easing name -> function of u in [0, 1] (numpy, elementwise) with f(0) = 0 and f(1) = 1."""


@dataclass(frozen=True)
class TrackTiming:
    """When one track moves, in frames of the output clip.

    Attributes:
        start: first frame of the motion (None: frame 0).
        end: frame where the track reaches its last point (None: the last frame, num_frames - 1).
        easing: one of :data:`EASINGS`.
    """

    start: float | None = None
    end: float | None = None
    easing: str = "linear"

    def __post_init__(self) -> None:
        if self.easing not in EASINGS:
            raise ValueError(f"easing must be one of {', '.join(EASINGS)}, got {self.easing!r}")

    @property
    def is_default(self) -> bool:
        """True when this timing is the one a bare point list has (frame 0 to the last frame, linear)."""
        return self.start is None and self.end is None and self.easing == "linear"

    def frames(self, num_frames: int) -> tuple[float, float]:
        """(start, end) frame indices for a clip of ``num_frames`` frames."""
        start = 0.0 if self.start is None else float(self.start)
        end = float(num_frames - 1) if self.end is None else float(self.end)
        return start, end


def check_timing(timing: TrackTiming, num_frames: int, input_name: str, label: str) -> None:
    """Raise TrajectoryFormatError unless ``0 <= start < end <= num_frames - 1``."""
    start, end = timing.frames(num_frames)
    last = int(num_frames) - 1
    if start < 0:
        raise TrajectoryFormatError(input_name, f"{label}: 'start' must be a frame index >= 0, got {start:g}")
    if end > last:
        raise TrajectoryFormatError(input_name, f"{label}: 'end' is frame {end:g}, past the last frame {last} "
                                                f"(num_frames = {num_frames}); lower it or raise num_frames")
    if not end > start:
        raise TrajectoryFormatError(input_name, f"{label}: 'end' (frame {end:g}) must come after 'start' "
                                                f"(frame {start:g})")


def path_parameters(timing: TrackTiming, num_frames: int) -> np.ndarray:
    """[num_frames] float64 path parameter s in [0, 1] of each output frame (0 = first point, 1 = last).

    Call :func:`check_timing` first; frames at or before ``start`` get exactly 0, at or after ``end`` exactly 1.
    """
    start, end = timing.frames(num_frames)
    t = np.arange(int(num_frames), dtype=np.float64)
    u = np.clip((t - start) / (end - start), 0.0, 1.0) if end > start else (t >= end).astype(np.float64)
    s = np.clip(EASINGS[timing.easing](u), 0.0, 1.0)
    s[u <= 0.0] = 0.0
    s[u >= 1.0] = 1.0
    return s



def read_timing(obj: dict, input_name: str, label: str) -> TrackTiming | None:
    """The timing of a track written as ``{"points": .., "start": .., "end": .., "easing": ..}`` (None if default).

    Checks what can be checked without the clip's length (``check_timing`` does the rest): frames are finite
    numbers, ``start >= 0``, ``end > start`` when both are given, and the easing is known.
    """
    unknown = [k for k in obj if k not in TIMING_KEYS]
    if unknown:
        raise TrajectoryFormatError(input_name, f"{label}: unknown key {unknown[0]!r}; a timed track has "
                                                f"{', '.join(TIMING_KEYS)}")
    start = read_number(obj["start"], input_name, f"{label}, start") if obj.get("start") is not None else None
    end = read_number(obj["end"], input_name, f"{label}, end") if obj.get("end") is not None else None
    easing = obj.get("easing", "linear")
    if easing is None:
        easing = "linear"
    if not isinstance(easing, str) or easing not in EASINGS:
        raise TrajectoryFormatError(input_name, f"{label}: unknown easing {describe(easing)}; expected one of "
                                                f"{', '.join(EASINGS)}")
    if start is not None and start < 0:
        raise TrajectoryFormatError(input_name, f"{label}: 'start' must be a frame index >= 0, got {start:g}")
    if end is not None and end < 0:
        raise TrajectoryFormatError(input_name, f"{label}: 'end' must be a frame index >= 0, got {end:g}")
    if start is not None and end is not None and not end > start:
        raise TrajectoryFormatError(input_name, f"{label}: 'end' (frame {end:g}) must come after 'start' "
                                                f"(frame {start:g})")
    timing = TrackTiming(start, end, easing)
    return None if timing.is_default else timing


def timing_to_dict(timing: TrackTiming) -> dict:
    """The JSON fields of a timing (frames that are whole numbers written as integers)."""
    def frame(v: float):
        return int(v) if float(v).is_integer() else float(v)

    out: dict = {}
    if timing.start is not None:
        out["start"] = frame(timing.start)
    if timing.end is not None:
        out["end"] = frame(timing.end)
    out["easing"] = timing.easing
    return out
