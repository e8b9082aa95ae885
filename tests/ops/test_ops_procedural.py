"""The procedural spectral prior: masks, determinism, falloff, strength, direction, coherence, looping."""
from __future__ import annotations

import math

import pytest
import torch

from imagedynamics.ops.procedural import procedural_spectrum, smooth_noise
from imagedynamics.ops.spectral import bin_frequencies, loop_gap, spectrum_to_motion


def _disc_mask(h, w, cy, cx, r):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (((ys - cy) ** 2 + (xs - cx) ** 2) <= r * r).float()


def test_zero_outside_mask_and_at_dc():
    mask = _disc_mask(48, 64, 24, 30, 14)
    coeffs = procedural_spectrum(48, 64, mask, direction=(0.6, -0.8), num_frames=60, strength=5.0, seed=2)
    assert coeffs.shape == (16, 2, 48, 64) and coeffs.dtype == torch.complex64
    outside = mask == 0
    assert coeffs[:, :, outside].abs().max() == 0
    assert coeffs[0].abs().max() == 0
    assert coeffs[1:, :, ~outside].abs().min() > 0
    motion = spectrum_to_motion(coeffs, 60)
    assert motion[:, :, outside].abs().max() == 0


def test_soft_mask_scales_motion():
    mask = torch.full((32, 32), 0.25)
    mask[:, 16:] = 1.0
    coeffs = procedural_spectrum(32, 32, mask, coherence_sigma=200.0, num_frames=40, seed=0)
    # with a huge coherence length the field is nearly uniform, so the mask ratio shows in the amplitudes
    ratio = coeffs[:, :, :, 4].abs().mean() / coeffs[:, :, :, 28].abs().mean()
    assert ratio.item() == pytest.approx(0.25, rel=0.1)


def test_seeded_determinism():
    kwargs = dict(mask=_disc_mask(40, 40, 20, 20, 12), num_frames=50, strength=3.0)
    a = procedural_spectrum(40, 40, seed=7, **kwargs)
    b = procedural_spectrum(40, 40, seed=7, **kwargs)
    c = procedural_spectrum(40, 40, seed=8, **kwargs)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 0.1 * a.abs().max()


def test_power_falls_off_exponentially_with_frequency():
    falloff, fps, frames = 0.6, 30.0, 150
    coeffs = procedural_spectrum(96, 96, None, direction=None, num_frames=frames, fps=fps, falloff=falloff,
                                 coherence_sigma=3.0, seed=11)
    power = coeffs[1:].abs().square().sum(1).mean(dim=(1, 2)).double()
    freqs = bin_frequencies(16, frames, fps)[1:]
    assert torch.all(power[:-1] > power[1:] * 0.8)  # falling (up to sampling noise)
    slope = torch.linalg.lstsq(torch.stack([freqs, torch.ones_like(freqs)], 1), power.log()[:, None]).solution[0]
    assert slope.item() == pytest.approx(-1.0 / falloff, rel=0.15)  # log P = -f / falloff + c


def test_strength_is_about_the_peak_displacement():
    for strength in (1.5, 12.0):
        coeffs = procedural_spectrum(40, 56, None, num_frames=90, strength=strength, seed=4)
        peak = spectrum_to_motion(coeffs, 90).norm(dim=1).max().item()
        assert peak == pytest.approx(strength, rel=0.1)
    assert procedural_spectrum(16, 16, strength=0.0).abs().max() == 0


def test_wind_direction_dominates():
    angle = math.radians(30.0)
    u = torch.tensor([math.cos(angle), math.sin(angle)])
    coeffs = procedural_spectrum(64, 64, None, direction=(u[0].item(), u[1].item()), perpendicular=0.3,
                                 num_frames=60, coherence_sigma=3.0, seed=5)
    motion = spectrum_to_motion(coeffs, 60)
    along = (motion * u[None, :, None, None]).sum(1)
    across = (motion * torch.tensor([-u[1], u[0]])[None, :, None, None]).sum(1)
    ratio = (across.square().mean() / along.square().mean()).sqrt().item()
    assert ratio == pytest.approx(0.3, rel=0.15)
    isotropic = spectrum_to_motion(procedural_spectrum(64, 64, None, direction=None, num_frames=60,
                                                       coherence_sigma=3.0, seed=5), 60)
    rx, ry = isotropic[:, 0].square().mean(), isotropic[:, 1].square().mean()
    assert (rx / ry).sqrt().item() == pytest.approx(1.0, rel=0.15)


def test_direction_field_sets_direction_and_local_amplitude():
    field = torch.zeros(2, 32, 48)
    field[1, :, :16] = 2.0  # left third sways vertically at full strength
    field[0, :, 16:32] = 1.0  # middle third horizontally at half strength
    coeffs = procedural_spectrum(32, 48, None, direction=field, perpendicular=0.0, num_frames=40,
                                 coherence_sigma=100.0, seed=3)
    assert coeffs[:, 0, :, :16].abs().max() == 0 and coeffs[:, 1, :, 16:32].abs().max() == 0
    assert coeffs[:, :, :, 32:].abs().max() == 0  # zero-length direction: still
    left = coeffs[:, 1, :, 12:16].abs().mean()
    middle = coeffs[:, 0, :, 16:20].abs().mean()
    assert (middle / left).item() == pytest.approx(0.5, rel=0.15)


def test_regions_move_as_one_piece():
    sigma = 12.0
    coeffs = procedural_spectrum(96, 96, None, num_frames=60, coherence_sigma=sigma, seed=9)
    motion = spectrum_to_motion(coeffs, 60)[:, 0]  # x displacement [T, H, W]

    def correlation(shift):
        a, b = motion[:, :, :-shift].flatten(), motion[:, :, shift:].flatten()
        a, b = a - a.mean(), b - b.mean()
        return float((a * b).mean() / (a.std() * b.std()))

    # Gaussian-blurred noise has correlation exp(-r^2 / (4 sigma^2)) at distance r
    assert correlation(2) > 0.95
    assert correlation(12) == pytest.approx(math.exp(-144 / (4 * sigma ** 2)), abs=0.15)
    assert abs(correlation(60)) < 0.2


def test_result_loops_seamlessly():
    coeffs = procedural_spectrum(32, 32, None, num_frames=150, seed=1)
    gap, step = loop_gap(spectrum_to_motion(coeffs, 150))
    assert gap < 2.0 * step


def test_smooth_noise_unit_variance_everywhere():
    g = torch.Generator().manual_seed(0)
    for sigma in (0.1, 2.0, 30.0):
        fields = smooth_noise(64, 48, 40, sigma, g)
        assert fields.shape == (64, 48, 40)
        assert fields.var().item() == pytest.approx(1.0, rel=0.15)
        border = torch.cat([fields[:, :3].flatten(), fields[:, -3:].flatten()])
        assert border.var().item() == pytest.approx(1.0, rel=0.2)


def test_errors():
    with pytest.raises(ValueError, match="mask"):
        procedural_spectrum(8, 8, torch.ones(8, 9))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        procedural_spectrum(8, 8, torch.full((8, 8), 2.0))
    with pytest.raises(ValueError, match="num_frequencies"):
        procedural_spectrum(8, 8, num_frequencies=20, num_frames=30)
    with pytest.raises(ValueError, match="direction"):
        procedural_spectrum(8, 8, direction=(0.0, 0.0))
    with pytest.raises(ValueError, match="direction field"):
        procedural_spectrum(8, 8, direction=torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="strength"):
        procedural_spectrum(8, 8, strength=-1.0)
    with pytest.raises(ValueError, match="falloff"):
        procedural_spectrum(8, 8, falloff=0.0)
    with pytest.raises(ValueError, match="coherence_sigma"):
        procedural_spectrum(8, 8, coherence_sigma=float("nan"))


def test_progress_is_reported_to_the_end_and_an_interrupt_stops_the_draw(monkeypatch):
    import imagedynamics.ops.procedural as procedural
    from imagedynamics.ops.progress import Interrupted

    whole = procedural_spectrum(24, 32, num_frames=30, num_frequencies=6, seed=4)
    monkeypatch.setattr(procedural, "_GROUP_PIXELS", 24 * 32 * 3)  # three fields a group: seven groups of 20
    seen = []
    grouped = procedural_spectrum(24, 32, num_frames=30, num_frequencies=6, seed=4,
                                  progress=lambda done, total: seen.append((done, total)))
    assert torch.allclose(grouped, whole, atol=1e-6)  # the same noise, however it is grouped
    assert len(seen) == 8 and seen[-1] == (100, 100) and [d for d, _ in seen] == sorted(d for d, _ in seen)

    def stop(done, total):
        raise Interrupted("stop")

    with pytest.raises(Interrupted):
        procedural_spectrum(24, 32, num_frames=30, num_frequencies=6, progress=stop)
