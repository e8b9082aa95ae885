"""The one validated prologue every trajectory format goes through, and the checked readers the formats share.

:func:`decode` runs before any format is recognised and bounds what the rest may meet:

- **type**: text (str / bytes), lists, dicts, tensors, arrays, or the parsed containers; anything else is refused;
- **sizes**: at most :data:`MAX_TEXT_CHARS` characters and :data:`MAX_NUMBERS` numbers;
- **nesting depth**: at most :data:`MAX_DEPTH` levels of brackets (JSON nested 1,000 deep is refused before the
  JSON decoder recurses into it), and at most :data:`MAX_STRING_NESTING` levels of JSON inside JSON strings;
- **syntax**: unbalanced brackets and invalid JSON named with their position.

Then every format reads its numbers through :func:`read_number` and :func:`read_point` (or, for arrays,
:func:`check_coordinates`), which check **finiteness** and **magnitude**: coordinates within
:data:`MAX_COORDINATE` of the origin, speeds within :data:`MAX_SPEED`, so that nothing past the parser overflows.
Every refusal is a :class:`~.errors.TrajectoryFormatError` that starts with the input's name.
"""
from __future__ import annotations

import json
import math
import numbers
import re

import numpy as np
import torch

from .errors import TrajectoryFormatError

__all__ = [
    "MAX_COORDINATE",
    "MAX_DEPTH",
    "MAX_NUMBERS",
    "MAX_SPEED",
    "MAX_STRING_NESTING",
    "MAX_TEXT_CHARS",
    "LinesText",
    "check_coordinates",
    "decode",
    "describe",
    "is_number",
    "is_pointlike",
    "read_number",
    "read_point",
]

MAX_TEXT_CHARS = 32 * 2 ** 20
"""Longest accepted text (32 Mi characters: about four million numbers)."""
MAX_NUMBERS = 4_000_000
"""Most numbers in one input (two million points)."""
MAX_DEPTH = 8
"""Deepest bracket nesting; the deepest format needs 6 (a brush stroke's point in the pack's JSON)."""
MAX_STRING_NESTING = 3
"""Deepest nesting of JSON text inside JSON strings (KJNodes lists of coordinate strings need 2)."""
MAX_COORDINATE = 1e6
"""Largest |x| or |y| (and brush radius) accepted, in the input's units: far outside any picture."""
MAX_SPEED = 1e3
"""Largest |speed| of an arrow (a multiplier of its length, giving pixels per frame)."""


class LinesText(str):
    """Text that is not JSON: the line-based formats (Motion-I2V's ``x1,y1,x2,y2``) read it."""


def describe(value, limit: int = 40) -> str:
    """A short repr for error messages (tensors by shape)."""
    text = repr(value) if not isinstance(value, torch.Tensor) else f"tensor of shape {tuple(value.shape)}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def is_pointlike(p) -> bool:
    """``[x, y]`` or ``{"x": .., "y": ..}`` (not checked further)."""
    if isinstance(p, dict):
        return "x" in p or "y" in p
    return isinstance(p, (list, tuple)) and len(p) == 2 and not any(isinstance(v, (list, tuple, dict)) for v in p)


def read_number(v, input_name: str, label: str, *, limit: float = MAX_COORDINATE, meaning: str = "") -> float:
    """A finite number with |v| <= limit, as float. ``meaning`` explains the limit in the error."""
    if not is_number(v):
        raise TrajectoryFormatError(input_name, f"{label}: expected a number, got {describe(v)}")
    f = float(v)
    if not math.isfinite(f):
        raise TrajectoryFormatError(input_name, f"{label}: {f} is not a finite number (NaN or infinite)")
    if abs(f) > limit:
        raise TrajectoryFormatError(input_name, f"{label}: {f:g} is out of range (at most {limit:g} in magnitude)"
                                                + (f"; {meaning}" if meaning else ""))
    return f


def _check_magnitude(x: float, y: float, input_name: str, label: str) -> None:
    if abs(x) > MAX_COORDINATE or abs(y) > MAX_COORDINATE:
        raise TrajectoryFormatError(input_name, f"{label}: coordinate ({x:g}, {y:g}) is far outside any picture "
                                                f"(|x| and |y| at most {MAX_COORDINATE:g})")


def read_point(p, input_name: str, label: str) -> tuple[float, float]:
    """``[x, y]`` or ``{"x": x, "y": y}`` -> (x, y): numbers, finite, within :data:`MAX_COORDINATE`."""
    if isinstance(p, dict):
        if "x" not in p or "y" not in p:
            raise TrajectoryFormatError(input_name, f"{label}: expected {{\"x\": .., \"y\": ..}} or [x, y], "
                                                    f"got {describe(p)}")
        xy = (p["x"], p["y"])
    elif isinstance(p, (list, tuple)) and len(p) == 2:
        xy = tuple(p)
    else:
        raise TrajectoryFormatError(input_name, f"{label}: expected [x, y] numbers, got {describe(p)}")
    if not (is_number(xy[0]) and is_number(xy[1])):
        raise TrajectoryFormatError(input_name, f"{label}: expected [x, y] numbers, got {describe(p)}")
    x, y = float(xy[0]), float(xy[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise TrajectoryFormatError(input_name, f"{label}: coordinate is NaN or infinite ({x}, {y})")
    _check_magnitude(x, y, input_name, label)
    return x, y


def check_coordinates(points: torch.Tensor, input_name: str, where) -> None:
    """Vectorised :func:`read_point` checks for a [..., 2] tensor; ``where(index)`` labels the first bad point."""
    bad = ~torch.isfinite(points)
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0][:-1])
        value = float(points[index][bad[index]][0])
        raise TrajectoryFormatError(input_name, f"{where(index)}: coordinate is {value} (NaN or infinite)")
    far = points.abs() > MAX_COORDINATE
    if far.any():
        index = tuple(int(i) for i in far.nonzero()[0][:-1])
        x, y = (float(v) for v in points[index])
        _check_magnitude(x, y, input_name, where(index))


# Strings (single- or double-quoted, possibly unterminated) and brackets: the only tokens the scan needs.
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"?' r"|'(?:[^'\\]|\\.)*'?" r"|[\[\]{}]", re.S)
_CLOSES = {"]": "[", "}": "{"}


def _scan_brackets(text: str, input_name: str, prefix: str) -> None:
    """Balanced brackets and nesting depth, with positions (for text the JSON decoder refused: its own messages
    are less helpful)."""
    stack: list[tuple[str, int]] = []
    for match in _STRUCTURE.finditer(text):
        ch, i = match.group(), match.start()
        if ch in "[{":
            stack.append((ch, i))
            if len(stack) > MAX_DEPTH:
                raise TrajectoryFormatError(input_name, f"{prefix}brackets nested more than {MAX_DEPTH} deep at char "
                                                        f"{i}: trajectories need at most 6 ([[x, y], ...] lists "
                                                        "inside an object)")
        elif ch in "]}":
            if not stack:
                raise TrajectoryFormatError(input_name, f"{prefix}unbalanced JSON at char {i}: {ch!r} closes nothing")
            opener, at = stack.pop()
            if opener != _CLOSES[ch]:
                raise TrajectoryFormatError(input_name, f"{prefix}unbalanced JSON at char {i}: {ch!r} cannot close "
                                                        f"{opener!r} opened at char {at}")
    if stack:
        opener, at = stack[-1]
        raise TrajectoryFormatError(input_name, f"{prefix}unbalanced JSON at char {len(text)}: {opener!r} opened at "
                                                f"char {at} is never closed")


def _loads(text: str, input_name: str, prefix: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        first = exc
    _scan_brackets(text, input_name, prefix)  # a clearer message for unbalanced or deep brackets
    if "'" in text:  # KJNodes-style strings written with single quotes
        try:
            return json.loads(text.replace("'", '"'))
        except (json.JSONDecodeError, RecursionError):
            pass
    if isinstance(first, RecursionError):
        raise TrajectoryFormatError(input_name, f"{prefix}JSON nested too deeply") from None
    raise TrajectoryFormatError(input_name, f"{prefix}invalid JSON at char {first.pos} (line {first.lineno}, "
                                            f"column {first.colno}): {first.msg}") from None


def _check_structure(obj, input_name: str, prefix: str) -> None:
    """Nesting depth and value count of lists and dicts, without recursion."""
    stack = [(obj, 0)]
    count = 0
    while stack:
        item, depth = stack.pop()
        if depth >= MAX_DEPTH:
            raise TrajectoryFormatError(input_name, f"{prefix}lists nested more than {MAX_DEPTH} deep: "
                                                    "trajectories need at most 6")
        values = item.values() if isinstance(item, dict) else item
        children = [v for v in values if isinstance(v, (list, tuple, dict))]
        count += len(values) - len(children)
        if count > MAX_NUMBERS:
            raise TrajectoryFormatError(input_name, f"{prefix}more than {MAX_NUMBERS:,} numbers: too many points "
                                                    "for one input")
        stack.extend((child, depth + 1) for child in children)


def decode(value, input_name: str, prefix: str = "", nesting: int = 0):
    """The prologue: check an input's type, size and nesting, decode JSON text; no format is assumed yet.

    Args:
        value: text (str / bytes), a list / tuple / dict, or a tensor or array (parsed containers are handled by
            the callers, :mod:`.parse`, so that this module needs none of the format modules).
        input_name: the input's name, the start of every error message.
        prefix: where in the input this value sits (e.g. ``"string 2: "``), for nested strings.
        nesting: how many JSON strings this value sits inside.

    Returns:
        decoded JSON (lists, dicts, numbers) for JSON text, :class:`LinesText` for other text, and lists, dicts,
        tensors and arrays as given (lists and dicts checked for depth and size).

    Raises:
        TrajectoryFormatError: no input, an unsupported type, empty or oversized text, deep nesting, bad JSON.
    """
    if nesting > MAX_STRING_NESTING:
        raise TrajectoryFormatError(input_name, f"{prefix}too deeply nested strings")
    if value is None:
        raise TrajectoryFormatError(input_name, "no input (None): expected trajectories")
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise TrajectoryFormatError(input_name, f"{prefix}text of {len(value):,} characters is too long (at most "
                                                    f"{MAX_TEXT_CHARS:,})")
        stripped = value.strip()
        if not stripped:
            raise TrajectoryFormatError(input_name, f"{prefix}is empty: expected trajectories (JSON or "
                                                    "'x1,y1,x2,y2' lines)")
        if stripped[0] not in "[{\"'":
            return LinesText(stripped)
        value = _loads(stripped, input_name, prefix)
        if isinstance(value, str):  # JSON text inside a JSON string
            return decode(value, input_name, prefix, nesting + 1)
    if isinstance(value, (list, tuple, dict)):
        _check_structure(value, input_name, prefix)
        return value
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value
    raise TrajectoryFormatError(input_name, f"{prefix}unsupported input of type {type(value).__name__}: expected a "
                                            "JSON string, a list of points or a TRACKS dict")
