"""The command-line entry points a user runs from the pack's folder."""
from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_train_lists_the_families_and_refuses_an_unknown_one():
    result = run("scripts/train.py", "nonsense")
    assert result.returncode == 2
    assert "gid" in result.stdout and "lvmm" in result.stdout and "renderer" in result.stdout


def test_train_reaches_each_trainer():
    for family in ("gid", "renderer", "long_animation", "long_animation_refiner"):
        result = run("scripts/train.py", family, "--help")
        assert result.returncode == 0, result.stderr
        assert "--videos" in result.stdout and "--resume" in result.stdout


def test_train_long_animation_needs_the_svd(tmp_path):
    result = run("scripts/train.py", "long_animation", "--videos", str(tmp_path), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "long_animation needs --svd" in result.stderr


def test_convert_reports_a_missing_file_clearly(tmp_path):
    result = run("scripts/convert_motion_i2v.py", str(tmp_path / "missing.bin"), "-o", str(tmp_path / "out.safetensors"))
    assert result.returncode != 0
    assert "missing.bin" in (result.stderr + result.stdout)
    assert not (tmp_path / "out.safetensors").exists()
