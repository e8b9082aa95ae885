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


def spectrum_power_plot(coeffs: torch.Tensor, height: int = 256, width: int = 512) -> torch.Tensor:
    """Mean power per frequency (log scale) as a bar plot on a dark background.

    Args:
        coeffs: complex [K, 2, H, W].

    Returns:
        [3, height, width] float32 RGB in [0, 1]; bar k's height is proportional to log10 of its mean power,
        from the smallest non-zero power to the largest.
    """
    if coeffs.ndim != 4 or not coeffs.is_complex():
        raise ValueError(f"coeffs must be complex [K, 2, H, W], got {tuple(coeffs.shape)}")
    power = coeffs.detach().cpu().abs().pow(2).mean(dim=(1, 2, 3)).double()
    k = power.shape[0]
    plot = torch.full((3, height, width), 0.08)
    positive = power[power > 0]
    if positive.numel() == 0:
        return plot
    low, high = positive.min().log10(), positive.max().log10()
    span = max(float(high - low), 1e-6)
    bar = width / k
    for index in range(k):
        if power[index] <= 0:
            continue
        fraction = 0.05 + 0.95 * float(power[index].log10() - low) / span
        top = int(round(height * (1 - fraction)))
        left, right = int(round(index * bar + bar * 0.15)), int(round((index + 1) * bar - bar * 0.15))
        plot[:, top:, left:max(right, left + 1)] = torch.tensor([0.35, 0.75, 1.0]).view(3, 1, 1)
    return plot
