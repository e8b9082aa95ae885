"""Motion-I2V's drag lines: one ``x1,y1,x2,y2`` per line (commas, spaces or semicolons).

Each line is a 2-point track (an arrow); a line of 2k >= 6 numbers is a k-point polyline, and a 5th number is the
arrow's speed. Blank lines and lines starting with ``#`` are skipped.
"""
from __future__ import annotations

import math
import re

import numpy as np

from . import validation
from .document import ParsedItem, TrajectoryDocument
from .errors import TrajectoryFormatError
from .validation import MAX_SPEED, read_number, read_point

__all__ = ["read_lines"]

_LINE_SPLIT = re.compile(r"[,\s;]+")


def _line_item(vals: list[float], input_name: str, label: str, line: str) -> ParsedItem:
    if any(not math.isfinite(v) for v in vals):
        raise TrajectoryFormatError(input_name, f"{label}: coordinate is NaN or infinite in {line[:40]!r}")
    if len(vals) == 5:
        points = [read_point(vals[0:2], input_name, label), read_point(vals[2:4], input_name, label)]
        speed = read_number(vals[4], input_name, f"{label}, speed", limit=MAX_SPEED,
                            meaning="an arrow's speed multiplies its length to give pixels per frame")
        return ParsedItem(np.asarray(points), label, speed=speed, is_arrow=True)
    if len(vals) >= 4 and len(vals) % 2 == 0:
        points = [read_point(vals[k:k + 2], input_name, label) for k in range(0, len(vals), 2)]
        return ParsedItem(np.asarray(points, dtype=np.float64), label, is_arrow=len(vals) == 4)
    raise TrajectoryFormatError(input_name, f"{label}: expected 4 numbers 'x1,y1,x2,y2' (or 5 with a speed), "
                                            f"got {len(vals)} in {line[:40]!r}")


def read_lines(text: str, input_name: str, prefix: str = "") -> TrajectoryDocument:
    """Text of ``x1,y1,x2,y2`` lines as a document of tracks (2-point ones are arrows)."""
    items = []
    count = 0
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
        count += len(vals)
        if count > validation.MAX_NUMBERS:
            raise TrajectoryFormatError(input_name, f"{label}: more than {validation.MAX_NUMBERS:,} numbers: too many points "
                                                    "for one input")
        items.append(_line_item(vals, input_name, label, line))
    if not items:
        raise TrajectoryFormatError(input_name, "no trajectory found: the text has no 'x1,y1,x2,y2' lines")
    return TrajectoryDocument(tracks=items)
