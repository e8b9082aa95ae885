"""Motion brushes drawn as strokes (what the canvas editor writes) rasterised into a mask."""
from __future__ import annotations

import numpy as np
import torch


def rasterize_strokes(strokes: list[dict], height: int, width: int, base: torch.Tensor | None = None) -> torch.Tensor:
    """Paint brush strokes into a mask.

    Args:
        strokes: ``[{"points": [[x, y], ...], "radius": r, "erase": bool}, ...]`` in pixels, painted in order;
            an erase stroke clears what it covers.
        height, width: size of the mask.
        base: optional [H, W] mask in [0, 1] to paint onto (e.g. a mask the user connected); zeros otherwise.

    Returns:
        [H, W] float32 mask in [0, 1].

    Raises:
        ValueError: a stroke without points, or with a radius that is not a positive number.

    Example:
        >>> m = rasterize_strokes([{"points": [[2, 2], [6, 2]], "radius": 1}], 5, 9)
        >>> float(m[2, 4]), float(m[4, 4])
        (1.0, 0.0)
    """
    import cv2

    canvas = np.zeros((height, width), np.float32) if base is None else base.detach().float().cpu().numpy().copy()
    for index, stroke in enumerate(strokes):
        points = np.asarray(stroke.get("points", []), dtype=np.float64)
        if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] != 2 or not np.isfinite(points).all():
            raise ValueError(f"brush stroke {index}: expected 'points' as a non-empty list of finite [x, y]")
        radius = stroke.get("radius", 8)
        if not isinstance(radius, (int, float)) or not np.isfinite(radius) or radius <= 0:
            raise ValueError(f"brush stroke {index}: expected a positive 'radius', got {radius!r}")
        value = 0.0 if stroke.get("erase") else 1.0
        pts = np.round(points).astype(np.int32)
        thickness = max(1, int(round(2 * radius)))
        for p in pts:
            cv2.circle(canvas, (int(p[0]), int(p[1])), int(round(radius)), value, thickness=-1)
        if len(pts) > 1:
            cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, value, thickness=thickness)
    return torch.from_numpy(np.clip(canvas, 0.0, 1.0))
