"""Pictures of a spectral volume: per-frequency amplitude / phase maps and the power by frequency."""
from __future__ import annotations

import torch


def spectrum_maps(coeffs: torch.Tensor, gamma: float = 0.5) -> torch.Tensor:
    """Amplitude and phase of each frequency as colour pictures.

    Hue is the phase of the dominant axis (x or y, whichever is larger at that pixel), value is the amplitude
    ``sqrt(|S_x|^2 + |S_y|^2)`` normalised per frequency and raised to ``gamma`` (to show weak motion).

    Args:
        coeffs: complex [K, 2, H, W].

    Returns:
        [K, 3, H, W] float32 RGB in [0, 1].

    Example:
        >>> spectrum_maps(torch.zeros(3, 2, 4, 5, dtype=torch.complex64)).shape
        torch.Size([3, 3, 4, 5])
    """
    import kornia

    if coeffs.ndim != 4 or coeffs.shape[1] != 2 or not coeffs.is_complex():
        raise ValueError(f"coeffs must be complex [K, 2, H, W], got {tuple(coeffs.shape)} {coeffs.dtype}")
    c = coeffs.detach().cpu()
    amplitude = c.abs().pow(2).sum(dim=1).sqrt()  # [K, H, W]
    peak = amplitude.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    value = (amplitude / peak).pow(gamma)
    dominant = torch.where(c[:, 0].abs() >= c[:, 1].abs(), c[:, 0], c[:, 1])
    hue = torch.angle(dominant) + torch.pi  # [0, 2 pi], kornia's hue unit
    hsv = torch.stack([hue, torch.ones_like(value), value], dim=1).float()
    return kornia.color.hsv_to_rgb(hsv).clamp(0, 1)


BACKGROUND, AXES, TEXT, BAR = (20, 20, 20), (150, 150, 150), (220, 220, 220), (90, 190, 255)


def spectrum_power_plot(coeffs: torch.Tensor, frequencies_hz: torch.Tensor | None = None, height: int = 288,
                        width: int = 512) -> torch.Tensor:
    """Mean power of each frequency as a bar plot with axes: frequency (Hz) across, power (log scale) up.

    Bar k's height is log10 of ``mean(|S_k|^2)`` over pixels and both axes (px^2), between the decades around the
    smallest non-zero and the largest power; the y axis is labelled at every decade, the x axis at each bar (or
    every n-th bar when they are many) with its frequency. A spectrum of real motion falls off with frequency (GID
    Fig. 3). Zero-power bins (e.g. DC of a procedural spectrum) get no bar.

    Args:
        coeffs: complex [K, 2, H, W].
        frequencies_hz: [K] the bins' frequencies (``spectral.bin_frequencies``); None labels bins by index.
        height, width: of the picture, pixels (at least 120 x 160).

    Returns:
        [3, height, width] float32 RGB in [0, 1].

    Example:
        >>> plot = spectrum_power_plot(torch.ones(4, 2, 8, 8, dtype=torch.complex64), torch.arange(4.0) * 0.2)
        >>> plot.shape
        torch.Size([3, 288, 512])
    """
    import math

    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    if coeffs.ndim != 4 or not coeffs.is_complex():
        raise ValueError(f"coeffs must be complex [K, 2, H, W], got {tuple(coeffs.shape)}")
    if height < 120 or width < 160:
        raise ValueError(f"the plot needs at least 160 x 120 pixels, got {width} x {height}")
    power = coeffs.detach().cpu().abs().pow(2).mean(dim=(1, 2, 3)).double()
    k = power.shape[0]
    font = ImageFont.load_default(size=max(10, height // 24))
    picture = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    left, right, top, bottom = _plot_area(width, height)
    positive = power[power > 0]
    if positive.numel():
        smallest = float(positive.min().log10())
        low = math.floor(smallest) - (smallest - math.floor(smallest) < 0.3)  # the smallest bar stays visible
        high = max(math.ceil(float(positive.max().log10())), low + 1)
        for decade in range(low, high + 1):  # y ticks: every decade (at most about eight labels)
            if (decade - low) % max(1, math.ceil((high - low) / 8)):
                continue
            y = bottom - (bottom - top) * (decade - low) / (high - low)
            draw.line([(left - 4, y), (left, y)], fill=AXES)
            draw.text((left - 6, y), f"1e{decade}", fill=TEXT, font=font, anchor="rm")
        step = (right - left) / k
        for index in range(k):
            if power[index] <= 0:
                continue
            fraction = (float(power[index].log10()) - low) / (high - low)
            x0, x1 = left + step * (index + 0.15), left + step * (index + 0.85)
            draw.rectangle([x0, min(bottom - 2, bottom - (bottom - top) * fraction), max(x1 - 1, x0), bottom - 1],
                           fill=BAR)
    step = (right - left) / k
    every = max(1, math.ceil(k / max(1, (right - left) // 40)))  # x ticks at least ~40 px apart
    for index in range(0, k, every):
        x = left + step * (index + 0.5)
        label = f"{float(frequencies_hz[index]):.2g}" if frequencies_hz is not None else str(index)
        draw.line([(x, bottom), (x, bottom + 4)], fill=AXES)
        draw.text((x, bottom + 6), label, fill=TEXT, font=font, anchor="mt")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXES, width=1)
    draw.text((left, top - 6), "mean power |S|^2 (px^2, log scale)", fill=TEXT, font=font, anchor="ld")
    draw.text(((left + right) / 2, height - 4), "frequency (Hz)" if frequencies_hz is not None else
              "frequency bin", fill=TEXT, font=font, anchor="md")
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _plot_area(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) of the bars' area in a plot of that size: room for the labels around it."""
    return 58, width - 14, max(24, height // 9), height - max(40, height // 7)
