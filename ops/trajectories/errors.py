"""The two signals of the trajectory parsers: a format error that names the input, and a correction warning."""
from __future__ import annotations


class TrajectoryFormatError(ValueError):
    """A trajectory / arrow / brush input that cannot be understood. ``str(e)`` starts with the input's name."""

    def __init__(self, input_name: str, detail: str):
        self.input_name = input_name
        self.detail = detail
        super().__init__(f"{input_name}: {detail}")


class TrajectoryWarning(UserWarning):
    """A trajectory input was accepted after a correction (points clipped to the picture)."""
