"""A procedural spectral volume: natural sway from nothing but a mask (no weights).

GID observed that the average power spectrum of real oscillatory motion (trees, flowers, water, candles) falls off
exponentially with frequency. ``procedural_spectrum`` draws a spectral volume with that shape:

    S_k(p) = m(p) * c * e_k * ( u(p) a_k(p) + r * u_perp(p) b_k(p) ),      k = 1 .. K-1,   S_0 = 0

- e_k = exp(-f_k / (2 * falloff)), f_k = k * fps / T Hz: the power |S_k|^2 falls off as exp(-f_k / falloff).
- a_k, b_k: independent complex Gaussian random fields, spatially smooth (white noise blurred by a Gaussian of
  std ``coherence_sigma`` pixels, scaled to unit variance). Their phases are random but coherent in space, so a
  region about ``coherence_sigma`` across sways as one piece; amplitudes vary smoothly (Rayleigh distributed).
- u(p): the unit "wind" direction (one direction, or a field), u_perp = (-u_y, u_x); r = ``perpendicular``
  (the smaller across-wind part). With ``direction=None`` both axes get equal amplitude (no preferred direction).
- m(p): the mask (0 = still; exactly zero motion there), times the direction field's relative length.
- c: one constant so that the peak displacement |F_t(p)| over the mask and a period is about ``strength`` pixels
  (measured on up to 4096 mask pixels; the motion is the un-anchored one, oscillating around the rest pose).
- The DC term is 0: the motion oscillates around the picture's pose. Frame 0 is therefore not exactly zero;
  ``spectral.to_motion(..., anchor_first_frame=True)`` makes it so.

The random numbers come from a CPU ``torch.Generator`` seeded with ``seed``: the same seed gives the same volume
whatever the device (up to the device's float rounding of the blur).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .progress import ProgressFn, report, sub_progress
from .spectral import bin_frequencies, spectrum_to_motion

_PEAK_SAMPLES = 4096
_GROUP_PIXELS = 1 << 21  # fields blurred at once: about 8 MB of float32 per group (and a progress update)


def smooth_noise(count: int, height: int, width: int, sigma: float, generator: torch.Generator,
                 device: torch.device | str | None = None, progress: ProgressFn | None = None) -> torch.Tensor:
    """``count`` independent smooth Gaussian random fields of unit variance: white noise blurred by N(0, sigma^2).

    Large sigmas are drawn on a coarse grid (spacing sigma / 4 pixels) and upsampled bilinearly, so the cost does
    not grow with sigma. The noise is drawn on the CPU from ``generator`` (deterministic), then moved to ``device``.
    The grid is padded by 3 sigma before blurring, so the statistics are the same at the borders as inside.
    The fields are blurred a few at a time (``progress(done, count)`` after each group; what it raises stops).

    Args:
        count: number of fields.
        height, width: output size in pixels.
        sigma: correlation length (Gaussian std) in pixels, > 0; below 0.3 the fields are white noise.
        generator: a CPU torch.Generator.
        device: where the blur and the result live.
        progress: ``ops.progress`` callback, in fields.

    Returns:
        [count, height, width] float32.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = smooth_noise(8, 64, 64, 6.0, g)
        >>> x.shape, 0.5 < float(x.std()) < 1.5
        (torch.Size([8, 64, 64]), True)
    """
    if count < 1 or height < 1 or width < 1:
        raise ValueError(f"count, height, width must be >= 1, got {count}, {height}, {width}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    device = torch.device("cpu") if device is None else torch.device(device)
    if sigma < 0.3:
        noise = torch.randn(count, height, width, generator=generator).to(device)
        report(progress, count, count)
        return noise
    factor = max(1.0, sigma / 4.0)
    coarse_sigma = sigma / factor
    hc = math.ceil((height - 1) / factor) + 1
    wc = math.ceil((width - 1) / factor) + 1
    radius = math.ceil(3.0 * coarse_sigma)
    # all the noise in one draw: the same numbers however the blur is grouped
    noise = torch.randn(count, 1, hc + 2 * radius, wc + 2 * radius, generator=generator).to(device)
    out = torch.empty(count, height, width, device=device)
    group = max(1, _GROUP_PIXELS // (height * width))
    for first in range(0, count, group):
        last = min(first + group, count)
        out[first:last] = _blur_noise(noise[first:last], coarse_sigma, radius, hc, wc, factor, height, width)
        report(progress, last, count)
    return out


def _blur_noise(noise: torch.Tensor, coarse_sigma: float, radius: int, hc: int, wc: int, factor: float,
                height: int, width: int) -> torch.Tensor:
    """[N, 1, hc + 2 r, wc + 2 r] white noise -> [N, height, width] unit-variance smooth fields."""
    import kornia

    size = 2 * radius + 1
    blurred = kornia.filters.gaussian_blur2d(noise, (size, size), (coarse_sigma, coarse_sigma), border_type="reflect")
    blurred = blurred[..., radius:radius + hc, radius:radius + wc]
    kernel = kornia.filters.get_gaussian_kernel1d(size, coarse_sigma, device=noise.device, dtype=blurred.dtype)
    blurred = blurred / kernel.square().sum()  # separable: variance of blurred white noise = (sum k^2)^2
    if factor > 1.0:
        out_h = round((hc - 1) * factor) + 1
        out_w = round((wc - 1) * factor) + 1
        blurred = F.interpolate(blurred, size=(max(out_h, height), max(out_w, width)), mode="bilinear",
                                align_corners=True)
    return blurred[:, 0, :height, :width]


def _prepare_mask(mask: torch.Tensor | None, height: int, width: int, device: torch.device) -> torch.Tensor:
    if mask is None:
        return torch.ones(height, width, device=device)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    m = mask
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.shape != (height, width):
        raise ValueError(f"mask must be [H, W] = [{height}, {width}] (or with leading 1s), got {tuple(mask.shape)}")
    m = m.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(m).all()) or float(m.min()) < 0 or float(m.max()) > 1:
        raise ValueError("mask values must be finite and in [0, 1]")
    return m


def _prepare_direction(direction, height: int, width: int,
                       device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Unit direction field [2, H, W] and relative weight [H, W] in [0, 1], or None (isotropic)."""
    if direction is None:
        return None
    if isinstance(direction, torch.Tensor) and direction.ndim >= 3:
        d = direction
        while d.ndim > 3 and d.shape[0] == 1:
            d = d[0]
        if d.shape != (2, height, width):
            raise ValueError(f"direction field must be [2, H, W] = [2, {height}, {width}], got {tuple(direction.shape)}")
        d = d.to(device=device, dtype=torch.float32)
        if not bool(torch.isfinite(d).all()):
            raise ValueError("direction field must be finite")
        length = d.norm(dim=0)
        top = float(length.max())
        if top <= 0:
            raise ValueError("direction field is zero everywhere")
        unit = d / length.clamp_min(1e-12)
        return unit, length / top
    values = torch.as_tensor(direction, dtype=torch.float64).flatten()
    if values.shape != (2,) or not bool(torch.isfinite(values).all()):
        raise ValueError(f"direction must be (dx, dy), a [2, H, W] field, or None; got {direction!r}")
    length = float(values.norm())
    if length == 0:
        raise ValueError("direction (dx, dy) must not be (0, 0); use None for no preferred direction")
    unit = (values / length).to(torch.float32).to(device)[:, None, None].expand(2, height, width)
    return unit, torch.ones(height, width, device=device)


def procedural_spectrum(height: int, width: int, mask: torch.Tensor | None = None,
                        direction: tuple[float, float] | torch.Tensor | None = (1.0, 0.0),
                        num_frequencies: int = 16, num_frames: int = 150, fps: float = 30.0, strength: float = 4.0,
                        falloff: float = 0.5, coherence_sigma: float | None = None, perpendicular: float = 0.3,
                        seed: int = 0, device: torch.device | str | None = None,
                        progress: ProgressFn | None = None) -> torch.Tensor:
    """Draw a natural-looking spectral volume (complex [K, 2, H, W]) for the pixels of a mask.

    Args:
        height, width: picture size in pixels.
        mask: [H, W] (or [1, H, W], [1, 1, H, W]) in [0, 1], 0 = never moves; None = everything moves.
        direction: the wind direction (dx, dy) in image axes (x right, y down); or a direction field [2, H, W]
            (e.g. from arrows), normalised per pixel, whose length relative to its maximum scales the local
            amplitude (zero-length pixels stay still); or None for no preferred direction.
        num_frequencies: K, bins kept (DC included), <= num_frames // 2 + 1.
        num_frames: T, the period in frames the coefficients describe.
        fps: frames per second (sets bin k's frequency, k * fps / T Hz).
        strength: approximate peak displacement in pixels (>= 0).
        falloff: Hz; the power spectrum falls off as exp(-f / falloff) (> 0; smaller = slower, smoother sway).
        coherence_sigma: pixels; size of the regions that move together. Default max(H, W) / 10.
        perpendicular: amplitude of the across-wind motion relative to the along-wind motion (>= 0).
        seed: random seed (CPU generator).
        device: device of the result (default CPU).
        progress: ``ops.progress`` callback, ``(done, 100)``: the random fields are most of the work.

    Returns:
        complex64 [K, 2, H, W] coefficients (norm "backward", pixels); zero at k = 0 and wherever mask == 0.

    Example:
        >>> mask = torch.zeros(32, 48)
        >>> mask[8:24, 10:40] = 1
        >>> S = procedural_spectrum(32, 48, mask, direction=(1.0, 0.2), num_frames=60, strength=3.0, seed=1)
        >>> S.shape, S.dtype, float(S[:, :, 0, 0].abs().max())
        (torch.Size([16, 2, 32, 48]), torch.complex64, 0.0)
    """
    height, width, num_frequencies, num_frames = int(height), int(width), int(num_frequencies), int(num_frames)
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height} x {width}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    if not 1 <= num_frequencies <= num_frames // 2 + 1:
        raise ValueError(f"num_frequencies must be in [1, {num_frames // 2 + 1}] for {num_frames} frames, "
                         f"got {num_frequencies}")
    for name, value in (("fps", fps), ("falloff", falloff)):
        if not (math.isfinite(float(value)) and float(value) > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value}")
    for name, value in (("strength", strength), ("perpendicular", perpendicular)):
        if not (math.isfinite(float(value)) and float(value) >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    if coherence_sigma is None:
        coherence_sigma = max(height, width) / 10.0
    if not (math.isfinite(float(coherence_sigma)) and float(coherence_sigma) > 0):
        raise ValueError(f"coherence_sigma must be a finite number > 0, got {coherence_sigma}")
    device = torch.device("cpu") if device is None else torch.device(device)

    m = _prepare_mask(mask, height, width, device)
    dir_info = _prepare_direction(direction, height, width, device)
    coeffs = torch.zeros(num_frequencies, 2, height, width, dtype=torch.complex64, device=device)
    if num_frequencies == 1 or float(strength) == 0.0:
        return coeffs

    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    moving = num_frequencies - 1
    # fields: [K-1, 2 (along / across, or x / y), 2 (re / im), H, W]
    fields = smooth_noise(moving * 4, height, width, float(coherence_sigma), generator, device,
                          progress=sub_progress(progress, 0, 90, 100))
    fields = fields.view(moving, 2, 2, height, width)
    complex_fields = torch.complex(fields[:, :, 0], fields[:, :, 1]) / math.sqrt(2.0)  # unit-variance complex
    envelope = torch.exp(-bin_frequencies(num_frequencies, num_frames, fps)[1:] / (2.0 * float(falloff)))
    complex_fields = complex_fields * envelope.to(device=device, dtype=torch.float32)[:, None, None, None]

    if dir_info is None:
        moving_coeffs = complex_fields
        weight = m
    else:
        unit, relative = dir_info
        across = torch.stack([-unit[1], unit[0]])
        along_field, across_field = complex_fields[:, 0:1], complex_fields[:, 1:2]
        moving_coeffs = unit[None] * along_field + float(perpendicular) * across[None] * across_field
        weight = m * relative
    coeffs[1:] = moving_coeffs * weight[None, None]

    peak = _peak_displacement(coeffs, num_frames, weight)
    if peak > 0:
        coeffs = coeffs * (float(strength) / peak)
    report(progress, 100, 100)
    return coeffs


def _peak_displacement(coeffs: torch.Tensor, num_frames: int, weight: torch.Tensor) -> float:
    """Max over (up to 4096 evenly spread) moving pixels and one period of ||F_t(p)||."""
    index = torch.nonzero(weight.flatten() > 0).flatten()
    if index.numel() == 0:
        return 0.0
    if index.numel() > _PEAK_SAMPLES:
        pick = torch.linspace(0, index.numel() - 1, _PEAK_SAMPLES, device=index.device).round().long()
        index = index[pick]
    flat = coeffs.flatten(2)[:, :, index]  # [K, 2, N]
    motion = spectrum_to_motion(flat[..., None], num_frames)  # [T, 2, N, 1]
    return float(motion.norm(dim=1).max())
