"""Small checkpoints the example workflows name, made by the tests in seconds (no downloads).

``MAKERS[file name] = function(path)`` writes that checkpoint. The workflows in ``workflows/`` name these
files so that the tests can run them; users replace them with their own trained models.
"""
from __future__ import annotations

import pathlib
from collections.abc import Callable

MAKERS: dict[str, Callable[[pathlib.Path], None]] = {}
