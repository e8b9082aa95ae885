"""The motion brush drawn in the pack's JSON: ``"brush": {"mode": .., "strokes": [{"points", "radius", "erase"}]}``.

``mode`` "move": painted pixels may move, the rest stays still; "static": painted pixels stay still. The radius is
in pixels (a fraction of the long side when the coordinates are normalised); ``erase`` strokes unpaint.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .document import ParsedBrush, ParsedItem
from .errors import TrajectoryFormatError
from .validation import describe, read_number, read_point

__all__ = ["BRUSH_MODES", "BrushStrokes", "read_brush"]

BRUSH_MODES = ("move", "static")


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
        """Rasterise to a [H, W] float32 mask of painted pixels (1 = painted), with OpenCV round-capped lines.

        A radius beyond the picture's diagonal paints the same as the diagonal (and keeps OpenCV's integers small).
        """
        import cv2

        canvas = np.zeros((int(height), int(width)), dtype=np.uint8)
        shift = 4  # sub-pixel precision of cv2 drawing: coordinates * 16
        reach = int(np.ceil(np.hypot(height, width))) + 1
        for points, radius, erase in self.strokes:
            value = 0 if erase else 255
            pts = np.round(np.asarray(points, dtype=np.float64) * (1 << shift)).astype(np.int32)
            r = min(max(int(round(radius)), 0), reach)
            for x, y in pts:
                cv2.circle(canvas, (int(x), int(y)), r << shift, value, thickness=-1, lineType=cv2.LINE_8, shift=shift)
            if len(pts) > 1 and r > 0:
                cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, value, thickness=2 * r + 1,
                              lineType=cv2.LINE_8, shift=shift)
        return torch.from_numpy(canvas.astype(np.float32) / 255.0)


def read_brush(brush, input_name: str, prefix: str = "") -> ParsedBrush:
    """Check a brush object ``{"mode": .., "strokes": [..]}`` and read its strokes (input coordinates)."""
    if not isinstance(brush, dict) or not isinstance(brush.get("strokes", []), list):
        raise TrajectoryFormatError(input_name, f"{prefix}'brush' must be {{\"mode\": .., \"strokes\": [..]}}, got "
                                                f"{describe(brush)}")
    mode = brush.get("mode", "move")
    if mode not in BRUSH_MODES:
        raise TrajectoryFormatError(input_name, f"{prefix}brush mode must be 'move' or 'static', got {describe(mode)}")
    parsed = ParsedBrush(mode=mode)
    for i, stroke in enumerate(brush.get("strokes", [])):
        label = f"{prefix}stroke {i}"
        if not isinstance(stroke, dict) or "points" not in stroke:
            raise TrajectoryFormatError(input_name, f"{label}: expected {{\"points\": [[x, y], ...], \"radius\": r}}, "
                                                    f"got {describe(stroke)}")
        pts = stroke["points"]
        if not isinstance(pts, list) or not pts:
            raise TrajectoryFormatError(input_name, f"{label} has no points")
        points = [read_point(p, input_name, f"{label}, point {k}") for k, p in enumerate(pts)]
        parsed.strokes.append(ParsedItem(np.asarray(points, dtype=np.float64), label))
        radius = read_number(stroke.get("radius", 8.0), input_name, f"{label}, radius",
                             meaning="the brush radius is in pixels (a fraction of the long side when normalised)")
        if radius < 0:
            raise TrajectoryFormatError(input_name, f"{label}: radius must be >= 0, got {radius:g}")
        parsed.radii.append(radius)
        parsed.erase.append(bool(stroke.get("erase", False)))
    return parsed
