import pytest
import torch

from imagedynamics.ops.spectrum_viz import AXES, BAR, TEXT, _plot_area, spectrum_maps, spectrum_power_plot


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


def _bars(plot: torch.Tensor) -> list[tuple[int, int]]:
    """(left column, height in pixels) of each bar: runs of columns holding the bar colour."""
    bar = torch.tensor(BAR, dtype=torch.float32).view(3, 1, 1) / 255
    columns = ((plot - bar).abs().amax(dim=0) < 0.02).sum(dim=0)
    bars, start = [], None
    for x, count in enumerate(columns.tolist() + [0]):
        if count and start is None:
            start = x
        elif not count and start is not None:
            bars.append((start, int(columns[start:x].max())))
            start = None
    return bars


def test_power_plot_bars_fall_with_power_one_decade_a_bin():
    k = 4
    coeffs = torch.zeros(k, 2, 4, 4, dtype=torch.complex64)
    for i in range(k):
        coeffs[i] = 10.0 ** (-i / 2)  # power 10^-i
    plot = spectrum_power_plot(coeffs, torch.arange(k) * 0.5, height=200, width=300)
    assert plot.shape == (3, 200, 300) and 0 <= float(plot.min()) and float(plot.max()) <= 1
    heights = [h for _, h in _bars(plot)]
    assert len(heights) == k
    # log axis from 1e-3 to 1e0: one decade per bin, so the bars step down by equal amounts
    steps = [a - b for a, b in zip(heights, heights[1:])]
    assert min(steps) > 0 and max(steps) - min(steps) <= 2, heights


def test_power_plot_has_axes_and_labels_and_skips_zero_bins():
    coeffs = torch.zeros(3, 2, 4, 4, dtype=torch.complex64)
    coeffs[1], coeffs[2] = 1.0, 0.1  # DC is zero: no bar
    plot = spectrum_power_plot(coeffs, torch.tensor([0.0, 0.25, 0.5]), height=160, width=240)
    assert len(_bars(plot)) == 2
    left, right, top, bottom = _plot_area(240, 160)
    axes = torch.tensor(AXES, dtype=torch.float32) / 255
    assert torch.allclose(plot[:, top + 5:bottom - 5, left].T, axes.expand(bottom - top - 10, 3), atol=0.02)
    assert torch.allclose(plot[:, bottom, left + 5:right - 5].T, axes.expand(right - left - 10, 3), atol=0.02)
    text = (plot - torch.tensor(TEXT, dtype=torch.float32).view(3, 1, 1) / 255).abs().amax(dim=0) < 0.1
    assert text[:, :left - 4].any() and text[bottom + 4:, left:right].any()  # tick labels on both axes
    with pytest.raises(ValueError, match="at least"):
        spectrum_power_plot(coeffs, height=50, width=50)


def test_rejects_real_input():
    with pytest.raises(ValueError, match="complex"):
        spectrum_maps(torch.zeros(2, 2, 3, 3))
