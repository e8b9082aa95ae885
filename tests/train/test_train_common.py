"""The shared training recipe (train/common.py): exact resume, EMA, schedules, accumulation, checkpointing,
validation output and the global-batch order, on a small model whose loss draws random numbers."""
from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from imagedynamics.train.common import (
    CSVLog,
    Phase,
    Recipe,
    ResumableLoader,
    StopRun,
    enable_gradient_checkpointing,
    load_phase_weights,
    make_lr_scheduler,
    phase_state_path,
    read_log,
    split_validation,
    train_phase,
)
from imagedynamics.train.validation import plot_losses, side_by_side, write_animation

pytestmark = pytest.mark.usefixtures("one_thread")
FIELDS = ("phase", "step", "loss", "lr", "elapsed")


class NoisyPoints(torch.utils.data.Dataset):
    """x [4] -> y = sum(x); every item gets fresh random jitter (an augmentation drawn from torch's generator)."""

    def __init__(self, n: int = 16, jitter: float = 0.1):
        self.x = torch.linspace(-1, 1, n * 4).reshape(n, 4)
        self.jitter = jitter

    def __len__(self):
        return self.x.shape[0]

    def __getitem__(self, i):
        x = self.x[i] + self.jitter * torch.randn(4)
        return x, x.sum(0, keepdim=True)


class NoisyLoss:
    """MSE with noise on the input drawn from torch's global generator (like diffusion noise) and dropout."""

    def __init__(self, noise: float = 0.1):
        self.noise = noise

    def __call__(self, model, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(model(x + self.noise * torch.randn_like(x)), y), {}


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.2), torch.nn.SiLU(), torch.nn.Linear(16, 1))


def _run(work, recipe, steps=10, stop_after=None, resume=False, batch=4, noise=0.1, jitter=0.1, validate=None,
         progress=None, model=None):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = model or _model()
    phase = Phase("p", model, list(model.parameters()), ResumableLoader(NoisyPoints(jitter=jitter), batch, seed=3),
                  NoisyLoss(noise), steps, 1e-2, recipe=recipe, validate=validate)
    log = CSVLog(work / "log.csv", FIELDS)
    step = torch.load(phase_state_path(work, "p"), weights_only=True)["step"] if resume else 0
    trained, _ = train_phase(accelerator, phase, work, log, resume_step=step, save_every=1000, stop_after=stop_after,
                             seed=5, progress=progress)
    return trained, read_log(work / "log.csv")


RECIPE = Recipe("cosine", warmup_steps=20, ema_decay=0.9, gradient_accumulation=2)


def test_resumed_run_equals_the_uninterrupted_run_step_for_step(tmp_path):
    straight, rows = _run(tmp_path / "a", RECIPE)
    with pytest.raises(StopRun):
        _run(tmp_path / "b", RECIPE, stop_after=4)
    resumed, resumed_rows = _run(tmp_path / "b", RECIPE, resume=True)
    assert [(r["step"], r["loss"], r["lr"]) for r in resumed_rows] == [(r["step"], r["loss"], r["lr"]) for r in rows]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)  # bit-identical weights: data, noise, dropout, optimiser, schedule, EMA restored
    state = torch.load(phase_state_path(tmp_path / "b", "p"), weights_only=True)
    assert state["ema"]["optimization_step"] == 10 and state["scheduler"]["last_epoch"] == 10


def test_resume_without_the_saved_generators_would_differ(tmp_path):
    # the equality above is not trivial: with the generators seeded afresh the losses change
    _, rows = _run(tmp_path / "a", RECIPE)
    with pytest.raises(StopRun):
        _run(tmp_path / "b", RECIPE, stop_after=4)
    for rng in (tmp_path / "b" / "state").glob("*.rng*.pt"):
        rng.unlink()
    _, resumed_rows = _run(tmp_path / "b", RECIPE, resume=True)
    assert [r["loss"] for r in resumed_rows[4:]] != [r["loss"] for r in rows[4:]]


def test_ema_is_diffusers_moving_average_of_the_trajectory(tmp_path):
    trajectory = []
    model = _model()
    start = [p.detach().clone() for p in model.parameters()]
    _run(tmp_path / "plain", Recipe(), steps=12, model=model,
         progress=lambda done, total: trajectory.append([p.detach().clone() for p in model.parameters()]))
    averaged, _ = _run(tmp_path / "ema", Recipe(ema_decay=0.8), steps=12)
    shadow = start
    for n, params in enumerate(trajectory, start=1):
        decay = 0.0 if n <= 1 else min(0.8, n / (9 + n))  # EMAModel.get_decay: (1 + s) / (10 + s), s = n - 1
        shadow = [s - (1 - decay) * (s - p) for s, p in zip(shadow, params)]
    for s, p, last in zip(shadow, averaged.parameters(), trajectory[-1]):
        assert torch.allclose(p, s, atol=1e-6)
        assert not torch.allclose(p, last, atol=1e-4)  # the EMA weights are not the last weights
    saved = load_phase_weights(phase_state_path(tmp_path / "ema", "p"))
    for (name, value), p in zip(saved.items(), averaged.parameters()):
        assert torch.equal(value, p.detach()), name


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_warmup_then_schedule(schedule):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_lr_scheduler(optimizer, Recipe(schedule, warmup_steps=10), steps=110)
    lrs = []
    for _ in range(110):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs[:11] == pytest.approx([k / 10 for k in range(11)])  # linear warm-up from 0
    expected_mid = {"constant": 1.0, "cosine": 0.5, "linear": 0.5}[schedule]
    assert lrs[60] == pytest.approx(expected_mid)
    assert lrs[-1] == pytest.approx({"constant": 1.0, "cosine": 0.5 * (1 + math.cos(math.pi * 99 / 100)),
                                     "linear": 0.01}[schedule])
    # warm-up is capped at a tenth of short phases
    assert Recipe(warmup_steps=500).warmup_for(200) == 20


def test_logged_learning_rate_follows_the_schedule(tmp_path):
    _, rows = _run(tmp_path, Recipe("cosine", warmup_steps=4), steps=40)
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[0] == 0 and lrs[2] == pytest.approx(0.5e-2) and lrs[4] == pytest.approx(1e-2)
    assert lrs[22] == pytest.approx(0.5e-2, rel=1e-3) and lrs[-1] < 1e-4


def test_gradient_accumulation_equals_the_large_batch(tmp_path):
    big, _ = _run(tmp_path / "big", Recipe(), steps=6, batch=8, noise=0.0, jitter=0.0, model=_eval_model())
    small, _ = _run(tmp_path / "small", Recipe(gradient_accumulation=2), steps=6, batch=4, noise=0.0, jitter=0.0,
                    model=_eval_model())
    for a, b in zip(big.parameters(), small.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    other, _ = _run(tmp_path / "other", Recipe(), steps=6, batch=4, noise=0.0, jitter=0.0, model=_eval_model())
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(big.parameters(), other.parameters()))


def _eval_model():
    model = _model()
    model[1].p = 0.0  # no dropout: a deterministic loss
    return model


def test_one_process_sees_what_two_processes_see_together():
    loader = ResumableLoader(NoisyPoints(n=24), 4, seed=1)
    single = loader.batches(0, rank=0, world=1)
    ranks = [loader.batches(0, rank=r, world=2) for r in range(2)]
    big = ResumableLoader(NoisyPoints(n=24), 8, seed=1).batches(0)
    for step in range(9):  # three epochs of 3 global batches of 8
        x8, _ = next(big)
        x4 = torch.cat([next(r)[0] for r in ranks])
        assert torch.equal(x8, x4), step  # the same items, with the same random jitter
    first = torch.cat([next(single)[0] for _ in range(2)])  # two micro-batches of 4 = one batch of 8
    assert torch.equal(first, ResumableLoader(NoisyPoints(n=24), 8, seed=1).batches(0).__next__()[0])
    assert not torch.equal(first, torch.cat([next(single)[0] for _ in range(2)]))
    later = next(ResumableLoader(NoisyPoints(n=24), 8, seed=1).batches(4))[0]
    stream = ResumableLoader(NoisyPoints(n=24), 8, seed=1).batches(0)
    assert torch.equal(later, [next(stream) for _ in range(5)][-1][0])  # resuming at a batch = skipping to it


def test_validation_writes_an_animation_and_the_loss_curve_without_changing_training(tmp_path):
    calls = []

    def validate(model):
        assert not model.training and not torch.is_grad_enabled()
        calls.append(1)
        torch.rand(100)  # validation may draw random numbers: training must not notice
        t = torch.linspace(0, 1, 5).view(5, 1, 1, 1)
        return (t * torch.ones(5, 3, 12, 16)).clamp(0, 1)

    _, plain = _run(tmp_path / "plain", Recipe(), steps=8)
    _, rows = _run(tmp_path / "val", Recipe(validate_every=3), steps=8, validate=validate)
    assert [r["loss"] for r in rows] == [r["loss"] for r in plain]
    assert len(calls) == 3  # steps 3, 6 and the phase's end
    files = sorted(p.name for p in (tmp_path / "val" / "validation").glob("*.webp"))
    assert files == ["p-0000003.webp", "p-0000006.webp", "p-0000008.webp"]
    webp = Image.open(tmp_path / "val" / "validation" / "p-0000008.webp")
    assert webp.n_frames == 5 and webp.size == (16, 12)
    webp.seek(4)
    assert webp.convert("RGB").getpixel((3, 3))[0] > 240  # the last frame is white
    png = Image.open(tmp_path / "val" / "loss.png")
    assert png.format == "PNG" and png.size[0] >= 300


def test_plots_and_side_by_side(tmp_path):
    rows = [{"phase": "a", "step": str(i), "loss": str(1 / i)} for i in range(1, 50)]
    rows += [{"phase": "b", "step": "1", "loss": "0.5"}]
    path = plot_losses(rows, tmp_path / "loss.png")
    image = Image.open(path)
    assert image.size == (640, 220)
    assert plot_losses([], tmp_path / "none.png") is None
    clip = side_by_side(torch.zeros(2, 3, 4, 5), torch.ones(4, 3, 6, 5))
    assert clip.shape == (4, 3, 6, 12) and float(clip[3, 0, 5, 0]) == 1.0  # padded white, repeated in time
    with pytest.raises(ValueError, match="frames"):
        write_animation(tmp_path / "bad.webp", torch.zeros(3, 4, 4))


def test_gradient_checkpointing_switches_on_and_keeps_the_gradients():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=4, out_channels=4, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                        norm_num_groups=4, latent_channels=2).train()
    x = torch.randn(2, 4, 16, 16)
    vae(x).sample.square().mean().backward()
    plain = [p.grad.clone() for p in vae.parameters()]
    vae.zero_grad()
    holder = torch.nn.Module()
    holder.vae = vae
    assert enable_gradient_checkpointing(holder) == 1 and vae.is_gradient_checkpointing
    vae(x).sample.square().mean().backward()
    for a, p in zip(plain, vae.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6)
    assert enable_gradient_checkpointing(torch.nn.Linear(2, 2)) == 0


def test_the_validation_video_is_held_out(tmp_path):
    import argparse

    videos = [tmp_path / f"{name}.mp4" for name in ("a", "b", "c")]
    for v in videos:
        v.write_bytes(b"")
    on, off = Recipe(validate_every=10), Recipe()
    none = argparse.Namespace(validation_video=None)
    assert split_validation(videos, none, off) == (videos, None, False)
    assert split_validation(videos, none, on) == (videos[:2], videos[2], True)  # the last one is left out
    chosen = argparse.Namespace(validation_video=str(videos[0]))
    assert split_validation(videos, chosen, on) == (videos[1:], videos[0], True)
    assert split_validation(videos[:1], none, on) == (videos[:1], videos[0], False)  # one video: not held out
    with pytest.raises(ValueError, match="--validation-video"):
        split_validation(videos, argparse.Namespace(validation_video=str(tmp_path / "missing.mp4")), on)
