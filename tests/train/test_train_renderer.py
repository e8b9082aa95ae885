"""train/renderer.py: data pairs, the loss, a tiny training run that learns, resume, checkpoint output."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from media import clip_path

from imagedynamics.models.registry import build_from_file
from imagedynamics.models.renderer import ImageRenderer
from imagedynamics.ops.optical_flow import dis_flow
from imagedynamics.ops.progress import Interrupted
from imagedynamics.train.common import read_log
from imagedynamics.train.renderer import (
    PairDataset,
    RendererLoss,
    gradient_l1,
    main,
    multiscale_ssim_loss,
    pair_indices,
    prepare_video,
    random_intention,
    scene_cuts,
)
from imagedynamics.train.video_io import read_video

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


# Whole 64 x 52 frames (crop larger than the frame), no flips: every step sees the same batch, so the
# training loss is a clean measure of learning.
TINY = ["--preset", "tiny", "--size", "64", "--long-side", "64", "--max-frames-per-video", "4", "--start-every", "4",
        "--max-gap", "3", "--batch", "6", "--metric", "brightness", "--intention-dropout", "0", "--no-flip",
        "--lr", "1e-3", "--log-every", "1000"]


def _run(tmp_path, *extra, name="r", progress=None):
    out = tmp_path / f"{name}.safetensors"
    work = tmp_path / f"{name}.work"
    code = main(["--videos", str(clip_path("carphone_pristine")), "--out", str(out), "--work-dir", str(work),
                 *TINY, *extra], progress=progress)
    assert code == 0
    return out, work


def test_scene_cuts_on_a_real_clip():
    frames, _ = read_video(clip_path("bikes"), max_frames=34, long_side=64)
    assert scene_cuts(frames) == [30]  # bikes cuts to another shot between frames 29 and 30
    assert scene_cuts(frames[:29]) == []
    assert all((a < 30) == (b < 30) for a, b in pair_indices(34, 1, 8, [30]))


def test_pair_indices():
    assert pair_indices(5, 2, 2) == [(0, 1), (1, 0), (0, 2), (2, 0), (2, 3), (3, 2), (2, 4), (4, 2)]
    assert pair_indices(1, 1, 3) == []


def test_prepared_pairs_and_flips(tmp_path):
    settings = {"long_side": 64, "first_frame": 2, "max_frames": 3, "frame_stride": 1, "start_every": 1,
                "max_gap": 1, "flow_preset": "medium"}
    path = clip_path("carphone_pristine")
    cache = prepare_video(path, tmp_path, settings)
    assert prepare_video(path, tmp_path, settings) == cache  # reused
    frames, _ = read_video(path, max_frames=3, start=2, long_side=64)
    plain = PairDataset([cache], crop=512, flip=False)
    assert len(plain) == 4 and plain.crop == tuple(frames.shape[-2:])
    source, target, flow = plain[0]  # pair (0, 1) of the frames from index 2 on
    assert torch.allclose(source, frames[0], atol=1 / 255) and torch.allclose(target, frames[1], atol=1 / 255)
    assert torch.allclose(flow, dis_flow(frames[0], frames[1]), atol=2e-2)
    flipping = PairDataset([cache], crop=512, flip=True)
    for seed in range(20):
        torch.manual_seed(seed)
        s, t, f = flipping[0]
        if not torch.equal(s, source):
            break
    assert torch.equal(s, source.flip(-1)) and torch.equal(t, target.flip(-1))
    assert torch.equal(f[0], -flow[0].flip(-1)) and torch.equal(f[1], flow[1].flip(-1))
    crops = PairDataset([cache], crop=16, flip=False)
    assert crops[1][0].shape == (3, 16, 16)


def test_losses_exact_cases():
    a = torch.rand(2, 3, 32, 32)
    assert float(multiscale_ssim_loss(a, a)) < 1e-6
    assert float(multiscale_ssim_loss(a, 1 - a)) > 0.1
    assert float(gradient_l1(a, a + 0.3)) < 1e-6  # a constant offset has the same gradients
    gate = random_intention(64, 16, 16, 0.5, "cpu")
    zeroed = (gate.amin(dim=(1, 2, 3)) == 0).float().mean()
    assert 0.25 < float(zeroed) < 0.75 and set(gate.unique().tolist()) <= {0.0, 1.0}
    assert random_intention(2, 8, 8, 0.0, "cpu") is None
    with pytest.raises(ValueError, match="metric"):
        RendererLoss(metric="depth")


def test_training_loss_falls_and_checkpoint_loads(tmp_path):
    out, work = _run(tmp_path, "--steps", "40", "--validate-every", "20", "--validation-video", str(clip_path("bikes")))
    rows = read_log(work / "log.csv")
    losses = [float(r["loss"]) for r in rows]
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    n = len(losses) // 10
    first, last = sum(losses[:n]) / n, sum(losses[-n:]) / n
    assert last < first and last < losses[0]  # below the untrained renderer (= the pixel renderer)
    family, config, model = build_from_file(out)
    assert family == "renderer" and isinstance(model, ImageRenderer)
    assert config["training"]["steps"] == 40
    assert model.out.weight.abs().sum() > 0  # the zero-initialised residual has been trained
    assert json.loads((work / "state.json").read_text())["step"] == 40
    # the held-out clip's first frame splatted to its next 3 frames, beside the real ones, at steps 20 and 40
    from PIL import Image

    assert sorted(p.name for p in (work / "validation").glob("*.webp")) == ["renderer-0000020.webp",
                                                                           "renderer-0000040.webp"]
    with Image.open(work / "validation" / "renderer-0000040.webp") as webp:
        assert webp.n_frames == 4 and webp.size[0] == 2 * 64 + 2


def test_resume_continues_from_saved_step(tmp_path):
    out, work = _run(tmp_path, "--steps", "8", "--stop-after", "3", "--save-every", "100")
    assert not out.exists()
    assert json.loads((work / "state.json").read_text())["step"] == 3
    assert torch.load(work / "state" / "renderer.pt", weights_only=True)["step"] == 3
    _run(tmp_path, "--steps", "8", "--resume")
    steps = [int(r["step"]) for r in read_log(work / "log.csv")]
    assert steps == list(range(1, 9))  # 1-3, then 4-8 after the resume: nothing repeated, nothing skipped
    assert out.exists() and json.loads((work / "state.json").read_text())["step"] == 8
    with pytest.raises(ValueError, match="another renderer config"):
        _run(tmp_path, "--steps", "8", "--resume", "--preset", "small")


def test_progress_callback_stops_the_run(tmp_path):
    seen = []

    def stop_at_three(done, total):
        seen.append((done, total))
        if done == 3:
            raise Interrupted("stopped by the user")

    with pytest.raises(Interrupted, match="stopped by the user"):
        _run(tmp_path, "--steps", "8", "--save-every", "2", progress=stop_at_three)
    assert seen == [(1, 8), (2, 8), (3, 8)]
    out, work = tmp_path / "r.safetensors", tmp_path / "r.work"
    assert not out.exists()  # nothing partial: no checkpoint from a stopped run
    assert [int(r["step"]) for r in read_log(work / "log.csv")] == [1, 2, 3]  # stopped within the step
    assert json.loads((work / "state.json").read_text())["step"] == 2  # the last saved state stays resumable
    _run(tmp_path, "--steps", "8", "--resume")
    assert out.exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        main(["--videos", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "r.safetensors")])
    with pytest.raises(ValueError, match="lr"):
        main(["--videos", str(clip_path("bikes")), "--out", str(tmp_path / "r.safetensors"), "--lr", "0"])


RECIPE = ["--ema-decay", "0.9", "--lr-schedule", "cosine", "--warmup-steps", "20", "--gradient-accumulation", "2",
          "--metric", "mixed", "--intention-dropout", "0.5", "--flip", "--batch", "3"]


def test_resumed_run_equals_the_uninterrupted_run(tmp_path):
    # random metric choice, intention rectangles and flips: all of it must come back exactly after a resume
    straight, straight_work = _run(tmp_path, "--steps", "6", *RECIPE, name="straight")
    shutil.copytree(straight_work / "data", tmp_path / "resumed.work" / "data")  # the same flows, computed once
    _run(tmp_path, "--steps", "6", "--stop-after", "2", *RECIPE, name="resumed")
    resumed, resumed_work = _run(tmp_path, "--steps", "6", "--resume", *RECIPE, name="resumed")
    columns = ("step", "loss", "lr", "l1", "ssim", "hole")
    assert ([[r[c] for c in columns] for r in read_log(resumed_work / "log.csv")]
            == [[r[c] for c in columns] for r in read_log(straight_work / "log.csv")])
    a, b = build_from_file(straight)[2].state_dict(), build_from_file(resumed)[2].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lrs = [float(r["lr"]) for r in read_log(straight_work / "log.csv")]
    assert lrs[0] == pytest.approx(1e-3) and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1e-3  # cosine


def test_resnet34_encoder_and_perceptual_loss_from_user_files(tmp_path):
    from torchvision.models.vgg import make_layers

    torch.manual_seed(0)
    vgg = make_layers([8, "M", 16, "M", 16])  # a small network in torchvision's VGG layout stands in for a VGG-16
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, tmp_path / "vgg.pth")
    out, work = _run(tmp_path, "--steps", "2", "--encoder", "resnet34", "--perceptual-network",
                     str(tmp_path / "vgg.pth"), "--perceptual-weight", "0.5", "--gradient-checkpointing")
    rows = read_log(work / "log.csv")
    assert all(float(r["perceptual"]) > 0 for r in rows)
    family, config, model = build_from_file(out)
    assert config["encoder"] == "resnet34" and config["channels"] == [8, 64, 64]
    assert config["training"]["perceptual_network"] == "vgg.pth"
    with pytest.raises(ValueError, match="needs the resnet34 encoder"):
        _run(tmp_path, "--steps", "2", "--encoder-weights", str(tmp_path / "vgg.pth"), name="bad")
