"""bench/device_check.py, exercised on the CPU with --cpu (the tiny presets): every trainer phase and sampler runs
and reports throughput and its bf16 / fp32 agreement; without a GPU and without --cpu it refuses clearly."""
from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_device_check_runs_every_trainer_and_sampler_on_the_cpu(tmp_path):
    out = tmp_path / "device.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "device_check.py"), "--cpu", "--steps", "2",
                           "--json", str(out)], env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [r["workload"] for r in report["trainers"]] == [
        "gid/tiny/vae", "gid/tiny/stage1", "gid/tiny/stage2", "lvmm/tiny/pr", "lvmm/tiny/vae", "lvmm/tiny/finetune",
        "lvmm/tiny/denoiser", "renderer/tiny/renderer", "refiner/tiny/refiner"]
    for row in report["trainers"]:
        assert row["samples_per_s"] > 0 and row["steps"] == 2 and row["peak_gib"] is None  # no CUDA memory on CPUs
        assert math.isfinite(row["loss_fp32"]) and 0 <= row["loss_relative"] < 0.5, row
        assert -1 <= row["grad_cosine"] <= 1 and row["grad_cosine"] > 0.5, row  # bf16 gradients point the same way
    names = " ".join(r["sampler"] for r in report["samplers"])
    for part in ("sample_spectrum", "sample_latent_motion", "render_with_lvmm", "phased long video",
                 "render_frames_learned", "pixel renderer", "sample_stage1"):
        assert part in names, part
    for row in report["samplers"]:
        assert row["per_s_fp32"] > 0
        assert row["relative_rms"] is None or 0 <= row["relative_rms"] < 0.5, row


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the check would run on it")
def test_device_check_needs_a_gpu_or_the_cpu_flag(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("device_check", ROOT / "bench" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_info:
        module.main([])
    assert exit_info.value.code == 2 and "--cpu" in capsys.readouterr().err
