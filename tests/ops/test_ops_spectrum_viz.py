import pytest
import torch

from imagedynamics.ops.spectrum_viz import spectrum_maps, spectrum_power_plot


def test_maps_are_dark_where_the_spectrum_is_zero_and_bright_at_the_peak():
    coeffs = torch.zeros(2, 2, 6, 6, dtype=torch.complex64)
    coeffs[1, 0, 2, 3] = 5 + 0j
    coeffs[1, 1, 4, 4] = 1j
    maps = spectrum_maps(coeffs)
    assert maps.shape == (2, 3, 6, 6)
    assert maps[0].max() == 0  # an all-zero frequency is black
    assert float(maps[1, :, 2, 3].max()) == pytest.approx(1.0, abs=1e-5)
    assert maps[1, :, 0, 0].max() == 0


def test_phase_changes_the_hue_not_the_brightness():
    a = torch.zeros(1, 2, 1, 2, dtype=torch.complex64)
    a[0, 0, 0, 0], a[0, 0, 0, 1] = 1.0, 1j
    maps = spectrum_maps(a)
    assert float(maps[0, :, 0, 0].max()) == pytest.approx(float(maps[0, :, 0, 1].max()), abs=1e-5)
    assert not torch.allclose(maps[0, :, 0, 0], maps[0, :, 0, 1])


def test_power_plot_bars_fall_with_power():
    k = 4
    coeffs = torch.zeros(k, 2, 4, 4, dtype=torch.complex64)
    for i in range(k):
        coeffs[i] = 10.0 ** (-i)
    plot = spectrum_power_plot(coeffs, height=100, width=80)
    heights = [(plot[2, :, i * 20 + 10] > 0.5).sum().item() for i in range(k)]
    assert heights == sorted(heights, reverse=True) and heights[0] > heights[-1]


def test_rejects_real_input():
    with pytest.raises(ValueError, match="complex"):
        spectrum_maps(torch.zeros(2, 2, 3, 3))
