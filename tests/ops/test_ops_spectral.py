"""Spectral volumes: FFT convention, round trips, slow motion, looping, normalisation, amplitude scaling."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imagedynamics.ops.containers import Motion, SpectralVolume
from imagedynamics.ops.spectral import (
    bin_frequencies,
    denormalize_spectrum,
    frequency_stats,
    loop_gap,
    motion_to_spectrum,
    normalize_spectrum,
    real_to_spectrum,
    scale_amplitude,
    spectrum_to_motion,
    spectrum_to_real,
    to_motion,
    to_spectral_volume,
)


def _fourier_reference(coeffs: np.ndarray, period: int, times: np.ndarray) -> np.ndarray:
    """The documented series, written independently in numpy float64 (no Nyquist bin in the inputs used here)."""
    keep = coeffs.shape[0]
    out = np.real(coeffs[0])[None] * np.ones((len(times), 1, 1, 1)) / period
    for k in range(1, keep):
        phase = np.exp(2j * np.pi * k * times / period)[:, None, None, None]
        out = out + 2.0 * np.real(coeffs[k][None] * phase) / period
    return out


@pytest.mark.parametrize("frames", [16, 15, 150])
def test_round_trip_all_bins_is_exact(frames):
    g = torch.Generator().manual_seed(frames)
    motion = torch.randn(frames, 2, 6, 5, generator=g) * 7.0
    coeffs = motion_to_spectrum(motion, num_frequencies=frames // 2 + 1)
    assert coeffs.shape == (frames // 2 + 1, 2, 6, 5) and coeffs.dtype == torch.complex64
    assert torch.allclose(spectrum_to_motion(coeffs, frames), motion, atol=1e-5 * 7.0 * frames ** 0.5)
    # None and too many frequencies both keep everything
    assert motion_to_spectrum(motion, None).shape[0] == frames // 2 + 1
    assert motion_to_spectrum(motion, 1000).shape[0] == frames // 2 + 1


def test_round_trip_float64_to_1e_5():
    motion = torch.randn(32, 2, 4, 4, dtype=torch.float64)
    back = spectrum_to_motion(motion_to_spectrum(motion, 17), 32)
    assert back.dtype == torch.float64
    assert (back - motion).abs().max() < 1e-12


@pytest.mark.parametrize("k,amplitude,phase", [(1, 2.5, 0.0), (3, 0.7, 1.1), (7, 4.0, -2.0)])
def test_pure_sinusoid_lands_in_its_bin_with_documented_amplitude(k, amplitude, phase):
    frames = 24
    t = torch.arange(frames, dtype=torch.float64)
    motion = torch.zeros(frames, 2, 3, 3, dtype=torch.float64)
    motion[:, 0] = (amplitude * torch.cos(2 * math.pi * k * t / frames + phase))[:, None, None]
    coeffs = motion_to_spectrum(motion, 13)
    expected = frames / 2 * amplitude * complex(math.cos(phase), math.sin(phase))
    assert torch.allclose(coeffs[k, 0], torch.full((3, 3), expected, dtype=torch.complex128), atol=1e-9)
    others = torch.ones(13, dtype=torch.bool)
    others[k] = False
    assert coeffs[others].abs().max() < 1e-9
    assert coeffs[:, 1].abs().max() < 1e-12  # nothing leaks into y


def test_constant_and_nyquist_conventions():
    frames = 10
    t = torch.arange(frames, dtype=torch.float64)
    motion = torch.zeros(frames, 2, 1, 1, dtype=torch.float64)
    motion[:, 0] = 3.0
    motion[:, 1] = (1.5 * (-1.0) ** t)[:, None, None]  # the Nyquist component
    coeffs = motion_to_spectrum(motion, 6)
    assert abs(coeffs[0, 0, 0, 0] - 3.0 * frames) < 1e-9
    assert abs(coeffs[5, 1, 0, 0] - 1.5 * frames) < 1e-9  # weight 1 at the Nyquist bin: S = T c
    assert torch.allclose(spectrum_to_motion(coeffs, frames), motion, atol=1e-12)
    # Fourier evaluation continues the Nyquist bin as Re(S) cos(pi t) / T
    times = torch.tensor([0.0, 0.5, 1.0, 2.25])
    series = spectrum_to_motion(coeffs, frames, times=times)[:, 1, 0, 0]
    assert torch.allclose(series, 1.5 * torch.cos(math.pi * times.double()), atol=1e-9)


def test_band_limited_motion_round_trips_through_16_frequencies():
    frames, keep = 150, 16
    rng = np.random.default_rng(0)
    coeffs = rng.normal(size=(keep, 2, 4, 3)) + 1j * rng.normal(size=(keep, 2, 4, 3))
    coeffs[0] = coeffs[0].real  # a real signal has a real DC term
    motion = _fourier_reference(coeffs, frames, np.arange(frames))
    measured = motion_to_spectrum(torch.from_numpy(motion), keep)
    assert np.allclose(measured.numpy(), coeffs, atol=1e-9)
    assert np.allclose(spectrum_to_motion(measured, frames).numpy(), motion, atol=1e-12)


def test_fourier_evaluation_matches_the_series_and_irfft():
    frames, keep = 40, 12
    rng = np.random.default_rng(1)
    coeffs = (rng.normal(size=(keep, 2, 3, 3)) + 1j * rng.normal(size=(keep, 2, 3, 3))).astype(np.complex64)
    tensor = torch.from_numpy(coeffs)
    times = np.array([0.0, 0.25, 1.5, 7.3, 39.9])
    series = spectrum_to_motion(tensor, frames, times=torch.from_numpy(times))
    reference = _fourier_reference(coeffs.astype(np.complex128), frames, times)  # Im S_0 is ignored, as irfft
    assert np.allclose(series.numpy(), reference, atol=1e-4)
    integer = spectrum_to_motion(tensor, frames, times=torch.arange(frames, dtype=torch.float32))
    assert torch.allclose(integer, spectrum_to_motion(tensor, frames), atol=1e-5)


@pytest.mark.parametrize("frames", [30, 31])
def test_fourier_evaluation_with_all_bins_equals_irfft(frames):
    motion = torch.randn(frames, 2, 4, 4)
    coeffs = motion_to_spectrum(motion, None)
    evaluated = spectrum_to_motion(coeffs, frames, times=torch.arange(frames, dtype=torch.float64))
    assert torch.allclose(evaluated, motion, atol=1e-5)


def test_loop_exact_t_equals_t_plus_period():
    coeffs = torch.randn(16, 2, 5, 5, dtype=torch.complex64) * 50
    times = torch.tensor([0.0, 0.375, 3.5, 149.25])  # exactly representable, so t + T is exact too
    a = spectrum_to_motion(coeffs, 150, times=times)
    b = spectrum_to_motion(coeffs, 150, times=times + 150.0)
    c = spectrum_to_motion(coeffs, 150, times=times + 3 * 150.0)
    assert torch.equal(a, b) and torch.equal(a, c)
    odd = torch.tensor([0.37, 77.7], dtype=torch.float64)
    assert torch.allclose(spectrum_to_motion(coeffs, 150, times=odd),
                          spectrum_to_motion(coeffs, 150, times=odd + 150.0), atol=1e-4)
    ends = spectrum_to_motion(coeffs, 150, times=torch.tensor([0.0, 1.0, 150.0]))
    assert torch.equal(ends[2], ends[0])
    assert torch.allclose(spectrum_to_motion(coeffs, 150, times=torch.tensor([150.0]))[0], a[0], atol=1e-5)


def test_slow_motion_fourier_and_linear():
    frames = 20
    motion = Motion(spectrum_to_motion(torch.randn(6, 2, 4, 4, dtype=torch.complex64) * 10, frames), fps=24.0)
    sv = to_spectral_volume(motion, 6)
    base = to_motion(sv)
    assert base.num_frames == frames and base.loops and base.fps == 24.0
    assert torch.allclose(base.displacement, motion.displacement, atol=1e-4)

    slow = to_motion(sv, slow_factor=2.0)
    assert slow.num_frames == 40 and slow.loops
    assert torch.allclose(slow.displacement[::2], base.displacement, atol=1e-4)
    gap, step = loop_gap(slow.displacement)
    assert gap < 2.0 * step

    linear = to_motion(sv, slow_factor=2.0, interpolation="linear")
    d = base.displacement
    assert torch.allclose(linear.displacement[::2], d, atol=1e-4)
    assert torch.allclose(linear.displacement[1::2][:-1], (d[:-1] + d[1:]) / 2, atol=1e-4)
    assert torch.allclose(linear.displacement[-1], (d[-1] + d[0]) / 2, atol=1e-4)  # wraps: frame T = frame 0

    # a non-integer number of periods is not a loop; several periods are
    assert not to_motion(sv, num_frames=25).loops
    longer = to_motion(sv, num_frames=3 * frames)
    assert longer.loops and torch.allclose(longer.displacement[2 * frames:], base.displacement, atol=1e-4)
    assert not to_motion(sv, slow_factor=1.5, num_frames=31).loops


def test_anchor_first_frame_only_shifts():
    sv = SpectralVolume(torch.randn(5, 2, 3, 3, dtype=torch.complex64) * 4, num_frames=12)
    plain = to_motion(sv).displacement
    anchored = to_motion(sv, anchor_first_frame=True).displacement
    assert anchored[0].abs().max() == 0
    assert torch.allclose(anchored, plain - plain[:1], atol=1e-6)
    slow = to_motion(sv, slow_factor=2.5, anchor_first_frame=True)
    assert slow.displacement[0].abs().max() == 0 and slow.num_frames == 30 and slow.loops


def test_real_view_channel_order():
    coeffs = torch.complex(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 4.0])).reshape(1, 2, 1, 1)
    real = spectrum_to_real(coeffs)
    assert real.flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert torch.equal(real_to_spectrum(real), coeffs)


def test_frequency_stats_matches_numpy_percentile():
    g = torch.Generator().manual_seed(3)
    batch = torch.complex(torch.randn(5, 4, 2, 6, 7, generator=g), torch.randn(5, 4, 2, 6, 7, generator=g))
    batch[..., 1, :, :] *= 10.0  # y much larger than x
    stats = frequency_stats(batch, percentile=95)
    assert stats.shape == (4, 4)
    parts = [batch.real[:, :, 0], batch.imag[:, :, 0], batch.real[:, :, 1], batch.imag[:, :, 1]]
    for c, part in enumerate(parts):
        expected = np.percentile(part.abs().permute(1, 0, 2, 3).reshape(4, -1).numpy(), 95, axis=1)
        assert np.allclose(stats[:, c].numpy(), expected, rtol=1e-5)
    # a list of volumes of different sizes pools all their values
    listed = frequency_stats([batch[0], batch[1, :, :, :3, :4], SpectralVolume(batch[2], num_frames=8)], 50)
    pooled = torch.cat([spectrum_to_real(batch[0]).abs().flatten(2), spectrum_to_real(batch[1, :, :, :3, :4])
                        .abs().flatten(2), spectrum_to_real(batch[2]).abs().flatten(2)], dim=-1)
    assert np.allclose(listed.numpy(), np.percentile(pooled.numpy(), 50, axis=-1), rtol=1e-5)
    sampled = frequency_stats(batch, percentile=95, max_samples=2000)
    assert torch.allclose(sampled, stats, rtol=0.1)


def test_frequency_stats_eps_for_zero_channels():
    coeffs = torch.zeros(3, 2, 4, 4, dtype=torch.complex64)
    coeffs[1, 0] = 2.0
    stats = frequency_stats(coeffs, eps=1e-6)
    assert stats[1, 0] == 2.0
    assert torch.all(stats[0] == 1e-6) and stats[1, 1] == 1e-6
    normalized = normalize_spectrum(coeffs, stats)
    assert torch.isfinite(normalized).all() and normalized[0].abs().max() == 0


def test_normalization_formula_and_exact_inverse():
    g = torch.Generator().manual_seed(5)
    coeffs = torch.complex(torch.randn(6, 2, 8, 8, generator=g), torch.randn(6, 2, 8, 8, generator=g))
    coeffs = coeffs * torch.logspace(3, 0, 6)[:, None, None, None]  # a falling spectrum
    stats = frequency_stats(coeffs)
    normalized = normalize_spectrum(coeffs, stats)
    assert normalized.shape == (6, 4, 8, 8) and not normalized.is_complex()
    real = spectrum_to_real(coeffs)
    expected = torch.sign(real) * torch.sqrt(real.abs() / stats[:, :, None, None])
    assert torch.allclose(normalized, expected)
    # the 95th percentile maps to 1: about 5 % of |values| exceed 1 in every channel, at every frequency
    above = (normalized.abs() > 1).float().mean(dim=(2, 3))
    assert torch.all((above > 0.02) & (above < 0.08))
    back = denormalize_spectrum(normalized, stats)
    assert back.is_complex() and torch.allclose(back, coeffs, rtol=1e-5, atol=1e-5)
    assert torch.allclose(normalize_spectrum(back, stats), normalized, atol=1e-5)


def test_scale_amplitude_is_motion_scaling():
    coeffs = torch.randn(5, 2, 4, 4, dtype=torch.complex64)
    motion = spectrum_to_motion(coeffs, 16)
    assert torch.allclose(spectrum_to_motion(scale_amplitude(coeffs, 2.5), 16), 2.5 * motion, atol=1e-5)
    only_two = scale_amplitude(coeffs, [0, 0, 1, 0, 0])
    assert only_two[[0, 1, 3, 4]].abs().max() == 0 and torch.equal(only_two[2], coeffs[2])
    pixel = torch.zeros(1, 1, 4, 4)
    pixel[..., 0, 0] = 1
    assert scale_amplitude(coeffs, pixel)[:, :, 1:].abs().max() == 0
    with pytest.raises(ValueError):
        scale_amplitude(coeffs, [1.0, 2.0])
    with pytest.raises(ValueError):
        scale_amplitude(coeffs, float("nan"))


def test_loop_gap_tells_loops_from_ramps():
    t = torch.arange(30.0)
    loop = torch.sin(2 * math.pi * t / 30)[:, None, None, None].expand(30, 2, 3, 3)
    gap, step = loop_gap(loop)
    # the wrap step 29 -> 0 is like the step 0 -> 1 (the steepest part of a sine), pi / 2 times the mean step
    assert gap == pytest.approx(float((loop[1] - loop[0]).norm(dim=0).mean()), rel=0.02)
    assert gap == pytest.approx(step * math.pi / 2, rel=0.02)
    ramp = t[:, None, None, None].expand(30, 2, 3, 3)
    gap, step = loop_gap(ramp)
    assert gap == pytest.approx(29 * math.sqrt(2), rel=1e-5) and step == pytest.approx(math.sqrt(2), rel=1e-5)


def test_spectral_volume_container_round_trip():
    motion = Motion(torch.randn(12, 2, 5, 6), fps=12.0)
    sv = to_spectral_volume(motion, None)
    assert isinstance(sv, SpectralVolume) and sv.num_frames == 12 and sv.fps == 12.0 and sv.num_frequencies == 7
    assert torch.allclose(to_motion(sv).displacement, motion.displacement, atol=1e-5)


def test_bin_frequencies():
    assert bin_frequencies(16, 150, 30.0)[-1].item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        bin_frequencies(0, 10, 30.0)


def test_gradcheck_fourier_evaluation():
    coeffs = torch.randn(3, 2, 1, 1, dtype=torch.complex128, requires_grad=True)
    times = torch.tensor([0.3, 2.7, 5.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda c: spectrum_to_motion(c, 6, times=times), (coeffs,))
    assert torch.autograd.gradcheck(lambda c: spectrum_to_motion(c, 6), (coeffs,))


def test_errors():
    with pytest.raises(ValueError, match=r"\[T, 2, H, W\]"):
        motion_to_spectrum(torch.zeros(4, 3, 2, 2))
    with pytest.raises(ValueError):
        motion_to_spectrum(torch.zeros(4, 2, 2, 2), 0)
    with pytest.raises(ValueError, match="complex"):
        spectrum_to_motion(torch.zeros(3, 2, 2, 2), 8)
    with pytest.raises(ValueError, match="frames"):
        spectrum_to_motion(torch.zeros(6, 2, 2, 2, dtype=torch.complex64), 8)
    with pytest.raises(ValueError, match="times"):
        spectrum_to_motion(torch.zeros(3, 2, 2, 2, dtype=torch.complex64), 8, times=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="finite"):
        spectrum_to_motion(torch.zeros(3, 2, 2, 2, dtype=torch.complex64), 8, times=torch.tensor([float("inf")]))
    sv = SpectralVolume(torch.zeros(3, 2, 2, 2, dtype=torch.complex64), num_frames=8)
    with pytest.raises(ValueError, match="slow_factor"):
        to_motion(sv, slow_factor=0.0)
    with pytest.raises(ValueError, match="interpolation"):
        to_motion(sv, interpolation="cubic")
    with pytest.raises(ValueError, match="percentile"):
        frequency_stats(sv.coeffs, percentile=0)
    with pytest.raises(ValueError, match="K = 3"):
        frequency_stats([sv.coeffs, sv.coeffs[:2]])
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        normalize_spectrum(sv.coeffs, torch.ones(2, 4))
    with pytest.raises(ValueError, match="> 0"):
        normalize_spectrum(sv.coeffs, torch.zeros(3, 4))
    with pytest.raises(ValueError):
        denormalize_spectrum(torch.zeros(3, 2, 2, 2), torch.ones(3, 4))
    with pytest.raises(ValueError, match="2 frames"):
        loop_gap(torch.zeros(1, 2, 2, 2))


def test_to_motion_reports_progress_by_bands_of_rows_and_stops_when_asked(monkeypatch):
    import imagedynamics.ops.spectral as spectral
    from imagedynamics.ops.progress import Interrupted

    sv = to_spectral_volume(Motion(torch.randn(12, 2, 10, 6)), 5)
    whole = to_motion(sv, num_frames=20, slow_factor=1.5, anchor_first_frame=True).displacement
    monkeypatch.setattr(spectral, "_BAND_ELEMENTS", 2 * (20 + 12) * 2 * 6)  # two rows a band
    seen = []
    banded = to_motion(sv, num_frames=20, slow_factor=1.5, anchor_first_frame=True,
                       progress=lambda done, total: seen.append((done, total))).displacement
    assert seen == [(2, 10), (4, 10), (6, 10), (8, 10), (10, 10)]
    assert torch.allclose(banded, whole, atol=1e-6)

    def stop(done, total):
        raise Interrupted("stop")

    with pytest.raises(Interrupted):
        to_motion(sv, progress=stop)
