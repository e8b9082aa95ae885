"""Phased inference with a shared noise reschedule (models/long_video).

The denoiser is the exact eps-prediction of a Gaussian video prior (a still picture animated by a smooth
space-time texture, ``video_denoisers.GaussianVideoDenoiser`` in tests/), so the samples have real temporal structure without
training, and every run takes milliseconds.
"""
from __future__ import annotations

import sys
import weakref

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
)
from video_denoisers import GaussianVideoDenoiser, TinyVideoDenoiser

from imagedynamics.models.long_video import (
    NoiseBank,
    RescheduleConfig,
    SeamJoiner,
    count_denoiser_calls,
    independent_sample,
    iter_independent_segments,
    iter_phased_segments,
    phased_sample,
    restart_step,
    seam_statistics,
    segments_for_frames,
)
from imagedynamics.models.long_video.schedulers import coefficients, to_eps
from imagedynamics.ops.progress import Interrupted

L = 16
SHAPE = (1, 2, L, 8, 8)
STEPS = 25


def _mean(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 2, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _scheduler(kind: str):
    if kind == "ddim":
        return DDIMScheduler(clip_sample=False)
    if kind == "ddpm":
        return DDPMScheduler(clip_sample=False)
    if kind == "dpm++":
        return DPMSolverMultistepScheduler()
    if kind == "dpm-sde":
        return DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++")
    raise ValueError(kind)


class Counting:
    """Wraps a denoiser and counts its evaluations."""

    def __init__(self, denoiser):
        self.denoiser = denoiser
        self.calls = 0

    def __call__(self, x, t, cond):
        self.calls += 1
        return self.denoiser(x, t, cond)


def _denoiser(scheduler, frame_scale: float = 2.0, mean_seed: int = 0) -> GaussianVideoDenoiser:
    return GaussianVideoDenoiser(_mean(mean_seed), L, scheduler.alphas_cumprod, std=0.5, frame_scale=frame_scale)


def _segments(kind="ddim", step_kwargs=None, sampler=iter_phased_segments, frame_scale=2.0, **config):
    scheduler = _scheduler(kind)
    config.setdefault("num_segments", 4)
    cfg = RescheduleConfig(**config)
    return [s.latent for s in sampler(_denoiser(scheduler, frame_scale), scheduler, SHAPE, STEPS, None, cfg,
                                      step_kwargs=step_kwargs)]


def _mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().mean().item()


# ---------------------------------------------------------------------------------------------- cost formula

def test_restart_step_and_formula_by_hand():
    assert restart_step(25, 0.8) == 20
    assert restart_step(10, 0.75) == 8          # ceil(7.5)
    assert restart_step(25, 0.0) == 0
    # T + (K - 1)(T - M) + (T - M)
    assert count_denoiser_calls(25, 0.8, 5) == 25 + 4 * 5 + 5
    assert count_denoiser_calls(25, 0.8, 5, noise_prior=False) == 25 + 4 * 5
    assert count_denoiser_calls(25, 0.8, 5, noise_prior="trajectory") == 45
    assert count_denoiser_calls(25, 1.0, 5) == 25
    assert count_denoiser_calls(25, 0.8, 1) == 25
    assert count_denoiser_calls(25, 0.0, 3) == 25 + 2 * 25 + 25


@pytest.mark.parametrize("kind", ["ddim", "ddpm", "dpm++"])
@pytest.mark.parametrize("gamma,prior,k", [(0.8, "image", 5), (0.5, "trajectory", 3), (0.8, "none", 2),
                                           (1.0, "image", 3), (0.0, "image", 2), (0.8, "image", 1)])
def test_counted_calls_equal_formula(kind, gamma, prior, k):
    scheduler = _scheduler(kind)
    counting = Counting(_denoiser(scheduler))
    seen = []
    cfg = RescheduleConfig(gamma=gamma, noise_prior=prior, num_segments=k)
    video = phased_sample(counting, scheduler, SHAPE, STEPS, None, cfg, progress=lambda d, n: seen.append((d, n)))
    expected = count_denoiser_calls(STEPS, gamma, k, prior)
    assert counting.calls == expected
    assert seen[0] == (0, expected) and seen[-1] == (expected, expected) and len(seen) == expected + 1
    assert video.shape == (1, 2, k * L, 8, 8)
    baseline = Counting(_denoiser(scheduler))
    independent_sample(baseline, scheduler, SHAPE, STEPS, None, cfg)
    assert baseline.calls == k * STEPS


# ------------------------------------------------------------------------------------------ degenerate cases

@pytest.mark.parametrize("kind,step_kwargs", [("ddim", None), ("ddim", {"eta": 1.0}), ("ddpm", None)])
def test_gamma_one_gives_exact_copies(kind, step_kwargs):
    segs = _segments(kind, step_kwargs, gamma=1.0, omega=0.2, shuffle="frame")
    for s in segs[1:]:
        assert torch.equal(s, segs[0])


@pytest.mark.parametrize("kind", ["ddim", "dpm++"])
def test_omega_zero_trajectory_prior_unshuffled_copies_segment_zero(kind):
    """Deterministic samplers: n~(t_M) = eps_M, so every segment restarts from z_M exactly."""
    segs = _segments(kind, omega=0.0, shuffle="none", noise_prior="trajectory")
    for s in segs[1:]:
        assert torch.equal(s, segs[0])
    # the same settings with a frame shuffle do move the later segments
    shuffled = _segments(kind, omega=0.0, shuffle="frame", noise_prior="trajectory")
    assert torch.equal(shuffled[0], segs[0])
    assert all(_mad(s, segs[0]) > 0.02 for s in shuffled[1:])


@pytest.mark.parametrize("kind,step_kwargs", [("ddim", None), ("ddpm", None), ("dpm-sde", None)])
@pytest.mark.parametrize("prior", ["image", "none"])
def test_omega_zero_unshuffled_later_segments_are_copies_of_each_other(kind, step_kwargs, prior):
    """Every later segment gets the same bank noise, also as the variance noise of stochastic samplers."""
    segs = _segments(kind, step_kwargs, omega=0.0, shuffle="none", noise_prior=prior)
    for s in segs[2:]:
        assert torch.equal(s, segs[1])
    assert _mad(segs[1], segs[0]) > 0.02


# -------------------------------------------------------------------------------------------- the behaviour

@pytest.mark.parametrize("kind,step_kwargs", [("ddim", None), ("ddim", {"eta": 0.5}), ("ddpm", None)])
def test_segments_differ_but_share_contours(kind, step_kwargs):
    phased = _segments(kind, step_kwargs, omega=0.2, num_segments=4)
    independent = _segments(kind, step_kwargs, sampler=iter_independent_segments, num_segments=4)
    assert torch.equal(phased[0], independent[0])               # same seed, same segment 0
    indep_diff = sum(_mad(s, independent[0]) for s in independent[1:]) / 3
    for i in range(4):
        for j in range(i + 1, 4):
            d = _mad(phased[i], phased[j])
            assert d > 0.1 * indep_diff, (i, j, d, indep_diff)   # not copies
            assert d < 0.6 * indep_diff, (i, j, d, indep_diff)   # contours shared through z_M


def test_more_omega_means_more_diversity():
    def spread(omega):
        segs = _segments(omega=omega, shuffle="none", noise_prior="image", num_segments=3)
        return _mad(segs[1], segs[2])
    assert spread(0.0) == 0.0
    assert 0.0 < spread(0.1) < spread(0.4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seams_within_two_times_inside_change_with_crossfade(seed):
    chunks = _segments(num_segments=5, overlap=4, crossfade=True, seed=seed)
    stats = seam_statistics(chunks, overlap=4)
    assert stats["ratio"] <= 2.0, stats
    assert stats["zone_max_ratio"] <= 2.0, stats                 # no transition in a dissolve is a jump
    plain = seam_statistics(_segments(num_segments=5, overlap=0, seed=seed))
    assert plain["ratio"] > stats["ratio"]                       # the cross-fade is what makes the seams smooth


def test_independent_seams_are_no_better_without_overlap():
    """Disjoint windows: phased and independent segments both jump at the seams (what the cross-fade fixes)."""
    phased = seam_statistics(_segments(num_segments=5, seed=3))
    independent = seam_statistics(_segments(num_segments=5, seed=3, sampler=iter_independent_segments))
    assert phased["ratio"] > 1.5 and independent["ratio"] > 1.5


def test_stochastic_noise_is_injected_without_variance_noise_argument():
    """DDPM draws its noise itself; with the bank injected it must equal DDIM(eta=1), which takes it as an
    argument (both are the same ancestral update on the same timesteps)."""
    import diffusers.schedulers.scheduling_ddpm as ddpm_module
    original = ddpm_module.randn_tensor
    ddpm = _segments("ddpm", num_segments=3)
    ddim = _segments("ddim", {"eta": 1.0}, num_segments=3)
    assert ddpm_module.randn_tensor is original
    for a, b in zip(ddpm, ddim):
        assert torch.allclose(a, b, atol=1e-5)


def test_image_latent_steers_later_segments_only():
    scheduler = _scheduler("ddim")
    den = _denoiser(scheduler)
    cfg = RescheduleConfig(num_segments=3, omega=0.0, shuffle="none")
    a = [s.latent for s in iter_phased_segments(den, scheduler, SHAPE, STEPS, None, cfg, image_latent=_mean(0))]
    b = [s.latent for s in iter_phased_segments(den, scheduler, SHAPE, STEPS, None, cfg,
                                                image_latent=_mean(0) + 1.0)]
    assert torch.equal(a[0], b[0])
    assert _mad(a[1], b[1]) > 0.01


@pytest.mark.parametrize("scheduler", [EulerDiscreteScheduler(), EulerAncestralDiscreteScheduler()])
def test_sigma_schedulers_with_a_conv_denoiser(scheduler):
    torch.manual_seed(0)
    net = TinyVideoDenoiser(channels=2, width=8, depth=1).eval()
    counting = Counting(net)
    cfg = RescheduleConfig(num_segments=3)
    video = phased_sample(counting, scheduler, (1, 2, 4, 8, 8), 10, None, cfg)
    assert video.shape == (1, 2, 12, 8, 8) and torch.isfinite(video).all()
    assert counting.calls == count_denoiser_calls(10, 0.8, 3)
    segs = video.split(4, dim=2)
    assert _mad(segs[1], segs[0]) > 1e-3 and _mad(segs[2], segs[1]) > 1e-3
    copies = phased_sample(net, scheduler, (1, 2, 4, 8, 8), 10, None, RescheduleConfig(num_segments=3, gamma=1.0))
    assert all(torch.equal(s, copies[:, :, :4]) for s in copies.split(4, dim=2))


# ------------------------------------------------------------------------------------------ noise bank, eps

def test_frame_shuffle_uses_every_prior_frame_k_minus_1_times():
    k, frames = 5, 6
    prior = torch.arange(frames, dtype=torch.float32).reshape(1, 1, frames, 1, 1).expand(1, 2, frames, 3, 3)
    bank = NoiseBank([prior, prior], num_segments=k, omega=0.0, shuffle="frame", seed=4)
    for level in range(2):
        used = torch.cat([bank.noise(s, level)[0, 0, :, 0, 0] for s in range(1, k)])
        assert torch.equal(used.sort().values, torch.arange(frames).float().repeat_interleave(k - 1))
        for s in range(1, k):                           # a frame carries one prior frame in all its pixels
            n = bank.noise(s, level)
            assert torch.equal(n, n[:, :, :, :1, :1].expand_as(n))
    assert not torch.equal(bank.source_frames(1, 0), bank.source_frames(1, 1))   # new permutation per level
    plain = NoiseBank([prior], num_segments=k, omega=0.0, shuffle="none")
    assert plain.noise(3, 0) is prior


def test_bank_omega_noise_is_seeded_and_scaled():
    zero = torch.zeros(1, 2, 4, 3, 3)
    a = NoiseBank([zero], 3, omega=0.5, shuffle="none", seed=1)
    b = NoiseBank([zero], 3, omega=1.0, shuffle="none", seed=1)
    assert torch.allclose(2.0 * a.noise(1, 0), b.noise(1, 0))
    assert torch.equal(a.noise(2, 0), a.noise(2, 0))
    assert not torch.equal(a.noise(1, 0), a.noise(2, 0))


@pytest.mark.parametrize("scheduler", [DDIMScheduler(prediction_type="v_prediction"),
                                       DDIMScheduler(prediction_type="sample"),
                                       EulerDiscreteScheduler(prediction_type="v_prediction")])
def test_to_eps_recovers_the_noise(scheduler):
    scheduler.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)
    a, s = coefficients(scheduler, 4)
    xt = a * x0 + s * eps
    r = (a * a + s * s) ** 0.5
    if scheduler.config.prediction_type == "v_prediction":
        out = (a * eps - s * x0) / r
    else:
        out = x0
    assert torch.allclose(to_eps(scheduler, out, xt, 4), eps, atol=1e-5)


# -------------------------------------------------------------------------------- layout, streaming, joiner

def test_crossfade_values_and_hard_cut():
    a, b = torch.zeros(1, 1, 5, 1, 1), torch.ones(1, 1, 5, 1, 1)
    joiner = SeamJoiner(overlap=3, crossfade=True)
    video = torch.cat([joiner.push(a, False), joiner.push(b, True)], dim=2).flatten()
    assert video.tolist() == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    cut = SeamJoiner(overlap=3, crossfade=False)
    video = torch.cat([cut.push(a, False), cut.push(b, True)], dim=2).flatten()
    assert video.tolist() == [0.0] * 5 + [1.0] * 2


def test_total_frames_layout():
    assert segments_for_frames(40, 16, 4) == 3
    scheduler = _scheduler("ddim")
    cfg = RescheduleConfig(total_frames=37, overlap=4)
    outs = list(iter_phased_segments(_denoiser(scheduler), scheduler, SHAPE, 5, None, cfg))
    assert [o.index for o in outs] == [0, 1, 2]
    assert [o.start_frame for o in outs] == [0, 12, 24]
    assert [o.latent.shape[2] for o in outs] == [12, 12, 13]
    assert sum(o.latent.shape[2] for o in outs) == 37


def test_frame_dim_one_layout():
    """SVD-style [B, L, C, h, w]: the same Gaussian model seen through a permuting wrapper."""
    scheduler = _scheduler("ddim")
    den = _denoiser(scheduler)

    def svd_layout(x, t, cond):
        return den(x.transpose(1, 2), t, cond).transpose(1, 2)

    segs = [s.latent for s in iter_phased_segments(svd_layout, scheduler, (1, L, 2, 8, 8), STEPS, None,
                                                   RescheduleConfig(num_segments=3, overlap=2), frame_dim=1)]
    assert [s.shape[1] for s in segs] == [14, 14, 16]           # 3 * 16 - 2 * 2 frames
    stats = seam_statistics(segs, frame_dim=1, overlap=2)
    assert stats["ratio"] <= 2.0


def test_streaming_holds_no_emitted_segment():
    scheduler = _scheduler("ddim")
    refs = []
    for seg in iter_phased_segments(_denoiser(scheduler), scheduler, SHAPE, 10, None,
                                    RescheduleConfig(num_segments=5, overlap=2)):
        refs.append(weakref.ref(seg.latent))
        del seg
        if len(refs) > 1:
            assert refs[-2]() is None, "the generator still references the previous segment"
    kept = []
    phased_sample(_denoiser(scheduler), scheduler, SHAPE, 10, None, RescheduleConfig(num_segments=3),
                  on_segment=kept.append)
    assert [k.index for k in kept] == [0, 1, 2]


def test_a_raising_progress_callback_stops_sampling_at_once():
    scheduler = _scheduler("ddim")
    counting = Counting(_denoiser(scheduler))
    seen = []

    def stop_at_seven(done, total):
        seen.append(done)
        if done == 7:
            raise Interrupted("stopped by the user")

    kept = []
    with pytest.raises(Interrupted):
        phased_sample(counting, scheduler, SHAPE, 10, None, RescheduleConfig(num_segments=3), on_segment=kept.append,
                      progress=stop_at_seven)
    assert counting.calls == 7 and seen == list(range(8))  # (0, total) first, then one report per call
    assert kept == []  # segment 0 needs 10 calls: nothing partial was emitted


def test_scheduler_is_not_mutated_and_factory_works():
    scheduler = _scheduler("ddim")
    before = scheduler.num_inference_steps
    den = _denoiser(scheduler)
    a = phased_sample(den, scheduler, SHAPE, 8, None, RescheduleConfig(num_segments=2))
    b = phased_sample(den, lambda: DDIMScheduler(clip_sample=False), SHAPE, 8, None, RescheduleConfig(num_segments=2))
    assert scheduler.num_inference_steps == before
    assert torch.equal(a, b)


# -------------------------------------------------------------------------------------------- exceptions

@pytest.mark.parametrize("kwargs", [dict(gamma=1.5), dict(omega=-0.1), dict(shuffle="segment"),
                                    dict(noise_prior="video"), dict(num_segments=2, total_frames=30),
                                    dict(num_segments=0), dict(overlap=-1)])
def test_config_rejects(kwargs):
    with pytest.raises(ValueError):
        RescheduleConfig(**kwargs)


def test_sampler_rejects_bad_inputs():
    scheduler = _scheduler("ddim")
    den = _denoiser(scheduler)
    with pytest.raises(ValueError, match="num_segments or total_frames"):
        phased_sample(den, scheduler, SHAPE, 5, None, RescheduleConfig())
    with pytest.raises(ValueError, match="overlap"):
        phased_sample(den, scheduler, SHAPE, 5, None, RescheduleConfig(num_segments=2, overlap=L))
    with pytest.raises(ValueError, match="segment_length"):
        phased_sample(den, scheduler, SHAPE, 5, None, RescheduleConfig(num_segments=2, segment_length=L + 1))
    with pytest.raises(ValueError, match="image_latent"):
        phased_sample(den, scheduler, SHAPE, 5, None, RescheduleConfig(num_segments=2),
                      image_latent=torch.zeros(1, 3, 1, 8, 8))
    with pytest.raises(ValueError, match="image_latent"):
        phased_sample(den, scheduler, SHAPE, 5, None, RescheduleConfig(num_segments=2),
                      image_latent=torch.zeros(2, 2, 1, 8, 8))
    with pytest.raises(ValueError, match="denoiser returned"):
        phased_sample(lambda x, t, c: x[:, :1], scheduler, SHAPE, 5, None, RescheduleConfig(num_segments=2))
    with pytest.raises(TypeError):
        phased_sample(den, object(), SHAPE, 5, None, RescheduleConfig(num_segments=2))
    with pytest.raises(ValueError):
        count_denoiser_calls(25, 0.8, 0)



@pytest.mark.parametrize("module", [f"imagedynamics.models.long_video.{name}"
                                    for name in ("noise_bank", "schedulers", "seams", "phased")] + ["video_denoisers"])
def test_docstring_examples(module):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
