"""``accelerate launch`` with two CPU processes (gloo): a tiny renderer training gives a loadable checkpoint and
the result of one process with the same global batch."""
from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from media import clip_path

from imagedynamics.models.registry import build_from_file
from imagedynamics.train.common import read_log
from imagedynamics.train.renderer import main

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


def _args(out: pathlib.Path, work: pathlib.Path, *extra: str) -> list[str]:
    # deterministic loss (brightness metric, no intention dropout), random flips seeded per sample, a cosine schedule
    # (no EMA here: it is per process and covered by the resume tests; it would import transformers twice more)
    return ["--videos", str(clip_path("carphone_pristine")), "--out", str(out), "--work-dir", str(work),
            "--preset", "tiny", "--size", "64", "--long-side", "64", "--max-frames-per-video", "8",
            "--start-every", "2", "--max-gap", "3", "--steps", "4", "--metric", "brightness", "--intention-dropout",
            "0", "--lr", "1e-3", "--log-every", "1000", "--lr-schedule", "cosine", *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    assert main(_args(one, tmp_path / "one.work", "--batch", "8")) == 0
    shutil.copytree(tmp_path / "one.work" / "data", tmp_path / "two.work" / "data")  # the same flows, measured once
    # accelerate's torchrun launcher; ACCELERATE_USE_CPU makes each process a gloo CPU rank (--cpu alone needs MPI)
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(_free_port()), str(ROOT / "scripts" / "train.py"), "renderer",
               *_args(two, tmp_path / "two.work", "--batch", "2", "--gradient-accumulation", "2")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    state = torch.load(tmp_path / "two.work" / "state" / "renderer.pt", weights_only=True)
    assert state["num_processes"] == 2 and state["step"] == 4
    assert sorted(p.name for p in (tmp_path / "two.work" / "state").glob("*.rng*.pt")) == [
        "renderer.rng0.pt", "renderer.rng1.pt"]
    # 2 processes x batch 2 x 2 micro-batches = 1 process x batch 8: the same samples, the same steps
    losses = [[float(r["loss"]) for r in read_log(work / "log.csv")] for work in (tmp_path / "one.work",
                                                                                 tmp_path / "two.work")]
    assert len(losses[1]) == 4 and losses[1] == pytest.approx(losses[0], rel=1e-5)
    family, _, model = build_from_file(two)
    reference = build_from_file(one)[2].state_dict()
    assert family == "renderer"
    for name, value in model.state_dict().items():
        assert torch.allclose(value, reference[name], atol=1e-5), name
    assert model.out.weight.abs().sum() > 0  # it did train
