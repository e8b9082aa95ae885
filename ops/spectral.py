"""GID's spectral volumes: motion textures <-> temporal Fourier coefficients, normalisation, resampling.

A motion texture F = {F_t}, t = 0..T-1, is a displacement field [T, 2, H, W] in pixels (channel 0 = x right,
channel 1 = y down). Its spectral volume is the one-sided temporal FFT of every pixel's trajectory, keeping the
first K coefficients (GID Eq. 2; K = 16 in the paper).

Convention (``torch.fft.rfft(..., norm="backward")``, the forward transform is unscaled)::

    S_k = sum_{t=0}^{T-1} F_t exp(-2 pi i k t / T),                  k = 0 .. T//2

    F_t = (1/T) [ Re S_0 + 2 sum_{k=1}^{K-1} Re( S_k exp(2 pi i k t / T) ) ]

The inverse holds exactly for motion whose spectrum vanishes from bin K on (band-limited), with one subtlety:
when T is even and the Nyquist bin k = T/2 is kept (K = T//2 + 1), that bin enters with weight 1, not 2, and
only its real part counts (``irfft`` ignores the imaginary parts of bins 0 and T/2, which are zero for real
motion). At integer times it contributes Re(S_{T/2}) (-1)^t / T; between integer times this module continues
it as Re(S_{T/2}) cos(pi t) / T, one choice among many (the Nyquist component is not uniquely band-limited).
Consequences: a cosine of amplitude A (pixels) at bin 0 < k < T/2, F_t = A cos(2 pi k t / T + phi), has
S_k = (T/2) A exp(i phi) and every other bin zero; a constant offset c has S_0 = T c. Bin k is the frequency
k * fps / T Hz (``bin_frequencies``). Keeping K = T//2 + 1 bins keeps everything: the round trip is exact to
float rounding.

The Fourier series is periodic with period T frames: evaluated at fractional times it gives slow motion, and
t = T gives exactly the same displacement as t = 0 (a seamless loop): k t is reduced modulo T in float64 before
the trigonometry, so t and t + T get bitwise identical weights. GID's other slow-motion recipe, linear
interpolation of the motion texture in time, is ``to_motion(..., interpolation="linear")``.

Frequency-adaptive normalisation (GID Eq. 4) works per real channel, in the order (Re x, Im x, Re y, Im y)::

    S' = sign(S) sqrt(|S / s_k|),        S = sign(S') S'^2 s_k

with s_k the 95th percentile of |coefficient| at frequency k and channel c over a data set
(``frequency_stats``).

Example:
    >>> import torch
    >>> F = torch.randn(8, 2, 4, 4)
    >>> S = motion_to_spectrum(F, num_frequencies=5)        # 8 // 2 + 1 = 5 bins: everything
    >>> bool(torch.allclose(spectrum_to_motion(S, 8), F, atol=1e-5))
    True
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .containers import Motion, SpectralVolume
from .progress import ProgressFn, report

INTERPOLATIONS = ("fourier", "linear")
_BAND_ELEMENTS = 1 << 23  # to_motion works a band of rows at a time: about 32 MB of float32 per band


def _check_displacement(displacement: torch.Tensor, name: str = "displacement") -> None:
    if not isinstance(displacement, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(displacement).__name__}")
    if displacement.ndim != 4 or displacement.shape[1] != 2:
        raise ValueError(f"{name} must be [T, 2, H, W], got {tuple(displacement.shape)}")
    if displacement.is_complex() or not displacement.is_floating_point():
        raise ValueError(f"{name} must be a real floating tensor, got {displacement.dtype}")


def _check_coeffs(coeffs: torch.Tensor, name: str = "coeffs") -> None:
    if not isinstance(coeffs, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(coeffs).__name__}")
    if coeffs.ndim != 4 or coeffs.shape[1] != 2 or not coeffs.is_complex():
        raise ValueError(f"{name} must be complex [K, 2, H, W], got {tuple(coeffs.shape)} {coeffs.dtype}")
    if coeffs.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one frequency, got K = {coeffs.shape[0]}")


def bin_frequencies(num_frequencies: int, num_frames: int, fps: float) -> torch.Tensor:
    """Frequency in Hz of each kept bin: k * fps / T.

    Args:
        num_frequencies: K.
        num_frames: T, the period in frames.
        fps: frames per second.

    Returns:
        [K] float64 tensor (CPU).

    Example:
        >>> bin_frequencies(4, 150, 30.0).tolist()
        [0.0, 0.2, 0.4, 0.6]
    """
    if num_frequencies < 1 or num_frames < 1 or not fps > 0:
        raise ValueError(f"need num_frequencies >= 1, num_frames >= 1, fps > 0; got {num_frequencies}, "
                         f"{num_frames}, {fps}")
    return torch.arange(num_frequencies, dtype=torch.float64) * float(fps) / int(num_frames)


def motion_to_spectrum(displacement: torch.Tensor, num_frequencies: int | None = 16) -> torch.Tensor:
    """Spectral volume of a motion texture: the first K bins of the real FFT over time (norm="backward").

    Args:
        displacement: [T, 2, H, W] float, pixels.
        num_frequencies: K, the bins kept (DC included). ``None`` or anything above T//2 + 1 keeps all T//2 + 1.

    Returns:
        complex [K, 2, H, W] (complex64 for float32 input; the FFT runs in at least float32).

    Example:
        >>> t = torch.arange(10.0)
        >>> F = torch.zeros(10, 2, 1, 1)
        >>> F[:, 0, 0, 0] = 3.0 * torch.cos(2 * math.pi * 2 * t / 10)
        >>> S = motion_to_spectrum(F, 6)
        >>> round(S[2, 0, 0, 0].real.item(), 4), round(S[[0, 1, 3, 4, 5]].abs().max().item(), 4)
        (15.0, 0.0)
    """
    _check_displacement(displacement)
    if num_frequencies is not None and num_frequencies < 1:
        raise ValueError(f"num_frequencies must be >= 1, got {num_frequencies}")
    total = displacement.shape[0]
    keep = total // 2 + 1 if num_frequencies is None else min(int(num_frequencies), total // 2 + 1)
    x = displacement if displacement.dtype in (torch.float32, torch.float64) else displacement.float()
    return torch.fft.rfft(x, dim=0, norm="backward")[:keep]


def _series_basis(num_frequencies: int, num_frames: int, times: torch.Tensor,
                  dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine weights [N, K] such that F(t) = cos_w @ Re S - sin_w @ Im S (see module docstring)."""
    t = times.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    k = torch.arange(num_frequencies, dtype=torch.float64)
    # Reduce k t modulo T before the trigonometry, so that t and t + T give bitwise identical weights.
    cycles = torch.remainder(t[:, None] * k[None, :], float(num_frames)) / num_frames
    angle = 2.0 * math.pi * cycles
    weight = torch.full((num_frequencies,), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    nyquist = num_frames % 2 == 0 and num_frequencies == num_frames // 2 + 1
    cos_w = torch.cos(angle) * weight / num_frames
    sin_w = torch.sin(angle) * weight / num_frames
    sin_w[:, 0] = 0.0  # Im S_0 is ignored, as irfft does
    if nyquist:
        cos_w[:, -1] = torch.cos(math.pi * t) / num_frames  # real part only, weight 1
        sin_w[:, -1] = 0.0
    return cos_w.to(device=device, dtype=dtype), sin_w.to(device=device, dtype=dtype)


def spectrum_to_motion(coeffs: torch.Tensor, num_frames: int, times: torch.Tensor | None = None) -> torch.Tensor:
    """Motion texture from a spectral volume (inverse of ``motion_to_spectrum``).

    Args:
        coeffs: complex [K, 2, H, W], K <= num_frames // 2 + 1.
        num_frames: T, the period the coefficients were computed over.
        times: optional 1-D float tensor of (fractional) frame times; the Fourier series is evaluated there
            directly (periodic: t = T gives exactly the displacement at t = 0). Without it, the result is
            frames 0..T-1 by zero-padding to T//2 + 1 bins and ``torch.fft.irfft(n=T)``.

    Returns:
        [T or len(times), 2, H, W] real, the coefficients' real dtype, pixels.

    Example:
        >>> S = torch.zeros(3, 2, 1, 1, dtype=torch.complex64)
        >>> S[1, 0] = 4.0                                   # cosine of amplitude 4 * 2 / 8 = 1 px at bin 1
        >>> [round(v, 4) for v in spectrum_to_motion(S, 8)[:3, 0, 0, 0].tolist()]
        [1.0, 0.7071, 0.0]
        >>> spectrum_to_motion(S, 8, times=torch.tensor([0.0, 8.0]))[:, 0, 0, 0].tolist()
        [1.0, 1.0]
    """
    _check_coeffs(coeffs)
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    keep = coeffs.shape[0]
    if keep > num_frames // 2 + 1:
        raise ValueError(f"{keep} frequencies need at least {2 * (keep - 1)} frames, got num_frames = {num_frames}")
    if times is None:
        padded = coeffs
        if keep < num_frames // 2 + 1:
            pad = coeffs.new_zeros((num_frames // 2 + 1 - keep, *coeffs.shape[1:]))
            padded = torch.cat([coeffs, pad], dim=0)
        return torch.fft.irfft(padded, n=num_frames, dim=0, norm="backward")
    if not isinstance(times, torch.Tensor):
        times = torch.as_tensor(times, dtype=torch.float64)
    if times.ndim != 1 or times.is_complex():
        raise ValueError(f"times must be a 1-D real tensor, got {tuple(times.shape)} {times.dtype}")
    if not bool(torch.isfinite(times).all()):
        raise ValueError("times must be finite")
    real = torch.view_as_real(coeffs)  # [K, 2, H, W, 2]
    cos_w, sin_w = _series_basis(keep, num_frames, times, real.dtype, coeffs.device)
    flat_re = real[..., 0].reshape(keep, -1)
    flat_im = real[..., 1].reshape(keep, -1)
    out = cos_w @ flat_re - sin_w @ flat_im
    return out.reshape(times.shape[0], *coeffs.shape[1:])


def to_spectral_volume(motion: Motion, num_frequencies: int | None = 16) -> SpectralVolume:
    """``SpectralVolume`` of a ``Motion``: its first K temporal FFT bins, period T = motion.num_frames.

    Example:
        >>> sv = to_spectral_volume(Motion(torch.randn(30, 2, 8, 8), fps=15.0), 16)
        >>> sv.num_frequencies, sv.num_frames, sv.fps, sv.norm
        (16, 30, 15.0, 'backward')
    """
    if not isinstance(motion, Motion):
        raise TypeError(f"motion must be a Motion, got {type(motion).__name__}")
    coeffs = motion_to_spectrum(motion.displacement, num_frequencies)
    return SpectralVolume(coeffs=coeffs, num_frames=motion.num_frames, fps=float(motion.fps), norm="backward",
                          extras={"units": "pixels", "source": "motion"})


def to_motion(sv: SpectralVolume, num_frames: int | None = None, fps: float | None = None,
              slow_factor: float = 1.0, interpolation: str = "fourier", anchor_first_frame: bool = False,
              progress: ProgressFn | None = None) -> Motion:
    """Motion texture of a spectral volume, optionally slowed down and looped.

    Output frame j shows the spectrum's motion at source time t_j = j / slow_factor (in source frames, period
    ``sv.num_frames``). ``interpolation="fourier"`` evaluates the Fourier series at t_j (exact band-limited
    interpolation); ``"linear"`` linearly interpolates the integer-time motion texture (GID's slow motion),
    wrapping from frame T-1 to frame T = frame 0.

    Args:
        sv: the spectral volume (norm "backward").
        num_frames: frames to produce; default round(L * slow_factor) with L the loop guidance's loop length
            (``sv.loop_frames``, set by a loop-guided GID sampler) or else one full period T. Longer
            outputs repeat the period.
        fps: fps stored in the result; default sv.fps (slow motion plays the same period over more frames).
        slow_factor: > 0; 2 gives twice as many frames per period (half speed).
        interpolation: "fourier" or "linear".
        anchor_first_frame: subtract the displacement at t = 0 from every frame so that frame 0 is exactly zero
            (reference-anchored, the input picture itself); this only changes the DC term, so looping is kept.
        progress: ``ops.progress`` callback ``(rows done, H)``: the motion is made a band of rows at a time (each
            pixel's motion depends on its own coefficients only), so memory is the result plus one band.

    Returns:
        ``Motion`` [num_frames, 2, H, W]; ``loops`` is True when num_frames / slow_factor is a whole number of
        periods, i.e. the frame after the last one would equal frame 0, or is the guided loop length L.

    Example:
        >>> sv = to_spectral_volume(Motion(torch.randn(16, 2, 4, 4)), 9)
        >>> m = to_motion(sv, slow_factor=2.0)
        >>> m.num_frames, m.loops
        (32, True)
        >>> bool(torch.allclose(m.displacement[::2], to_motion(sv).displacement, atol=1e-5))
        True
    """
    if not isinstance(sv, SpectralVolume):
        raise TypeError(f"sv must be a SpectralVolume, got {type(sv).__name__}")
    if sv.norm != "backward":
        raise ValueError(f"only norm='backward' spectral volumes are supported, got {sv.norm!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    slow_factor = float(slow_factor)
    if not (math.isfinite(slow_factor) and slow_factor > 0):
        raise ValueError(f"slow_factor must be a finite number > 0, got {slow_factor}")
    period = int(sv.num_frames)
    loop_frames = int(sv.loop_frames or period)
    if num_frames is None:
        num_frames = max(1, round(loop_frames * slow_factor))
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    fps = float(sv.fps if fps is None else fps)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    times = torch.arange(num_frames, dtype=torch.float64) / slow_factor
    integer_times = slow_factor == 1.0 and num_frames <= period
    _, _, height, width = sv.coeffs.shape
    displacement = sv.coeffs.real.new_empty((num_frames, 2, height, width))
    rows = max(1, _BAND_ELEMENTS // max(1, (num_frames + period) * 2 * width))
    for top in range(0, height, rows):
        band = sv.coeffs[..., top:top + rows, :]
        if integer_times:
            part = spectrum_to_motion(band, period)[:num_frames]
        elif interpolation == "fourier":
            part = spectrum_to_motion(band, period, times=times)
        else:
            part = _interpolate_periodic(spectrum_to_motion(band, period), times)
        if anchor_first_frame:
            part = part - part[:1]  # frame 0 is time 0 in every mode
        displacement[..., top:top + rows, :] = part
        report(progress, min(top + rows, height), height)
    span = num_frames / slow_factor / period
    loops = (abs(span - round(span)) < 1e-9 and round(span) >= 1) or abs(num_frames / slow_factor - loop_frames) < 1e-9
    return Motion(displacement=displacement, fps=fps, loops=loops,
                  extras={"source": "spectral_volume", "slow_factor": slow_factor, "interpolation": interpolation})


def _interpolate_periodic(texture: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Linear interpolation in time of a periodic texture [T, ...] at float times (frame T = frame 0)."""
    period = texture.shape[0]
    t = torch.remainder(times.to(torch.float64), float(period))
    lower = torch.floor(t)
    frac = (t - lower).to(device=texture.device, dtype=texture.dtype)
    i0 = lower.long() % period
    i1 = (i0 + 1) % period
    shape = (-1,) + (1,) * (texture.ndim - 1)
    i0 = i0.to(texture.device)
    i1 = i1.to(texture.device)
    return texture[i0] * (1 - frac).view(shape) + texture[i1] * frac.view(shape)


# --------------------------------------------------------------------------------------------- normalisation


def spectrum_to_real(coeffs: torch.Tensor) -> torch.Tensor:
    """Complex [K, 2, H, W] -> real [K, 4, H, W] with channels (Re x, Im x, Re y, Im y)."""
    _check_coeffs(coeffs)
    k, _, h, w = coeffs.shape
    return torch.view_as_real(coeffs).permute(0, 1, 4, 2, 3).reshape(k, 4, h, w)


def real_to_spectrum(real: torch.Tensor) -> torch.Tensor:
    """Real [K, 4, H, W] (Re x, Im x, Re y, Im y) -> complex [K, 2, H, W]; inverse of ``spectrum_to_real``."""
    if real.ndim != 4 or real.shape[1] != 4 or real.is_complex():
        raise ValueError(f"real spectrum must be real [K, 4, H, W], got {tuple(real.shape)} {real.dtype}")
    k, _, h, w = real.shape
    if real.dtype not in (torch.float32, torch.float64):
        real = real.float()
    return torch.view_as_complex(real.reshape(k, 2, 2, h, w).permute(0, 1, 3, 4, 2).contiguous())


def _percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Percentile along the last dim with linear interpolation (numpy's default); selection, not a full sort."""
    count = values.shape[-1]
    position = (count - 1) * q / 100.0
    lo = int(math.floor(position))
    hi = min(lo + 1, count - 1)
    frac = position - lo
    low = torch.kthvalue(values, lo + 1, dim=-1).values
    if frac == 0.0 or hi == lo:
        return low
    high = torch.kthvalue(values, hi + 1, dim=-1).values
    return low * (1.0 - frac) + high * frac


def frequency_stats(coeffs: torch.Tensor | Sequence[torch.Tensor | SpectralVolume], percentile: float = 95.0,
                    eps: float = 1e-6, max_samples: int | None = None) -> torch.Tensor:
    """GID's normalisation scales s: per frequency and real channel, a percentile of |coefficient| over data.

    Args:
        coeffs: complex [K, 2, H, W], a batch [N, K, 2, H, W], or a list of [K, 2, H, W] tensors or
            ``SpectralVolume``s (sizes may differ; K must agree).
        percentile: in (0, 100]; GID uses 95.
        eps: lower bound of s (a channel that is always zero would otherwise divide by zero).
        max_samples: if given, use at most this many evenly spaced values per (frequency, channel) (all the
            values are otherwise held in memory at once: N * H * W per channel).

    Returns:
        s: float32 [K, 4], channels (Re x, Im x, Re y, Im y), every entry >= eps.

    Example:
        >>> S = torch.complex(torch.full((2, 2, 3, 3), 2.0), torch.full((2, 2, 3, 3), -5.0))
        >>> frequency_stats(S).tolist()[0]
        [2.0, 5.0, 2.0, 5.0]
    """
    if not (0.0 < float(percentile) <= 100.0):
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if isinstance(coeffs, torch.Tensor):
        if coeffs.ndim == 5:
            items = list(coeffs.unbind(0))
        elif coeffs.ndim == 4:
            items = [coeffs]
        else:
            raise ValueError(f"coeffs must be [K, 2, H, W] or [N, K, 2, H, W], got {tuple(coeffs.shape)}")
    else:
        items = [c.coeffs if isinstance(c, SpectralVolume) else c for c in coeffs]
    if not items:
        raise ValueError("frequency_stats needs at least one spectral volume")
    keep = items[0].shape[0]
    flats = []
    for i, item in enumerate(items):
        _check_coeffs(item, f"coeffs[{i}]")
        if item.shape[0] != keep:
            raise ValueError(f"every spectral volume must have K = {keep} frequencies, coeffs[{i}] has {item.shape[0]}")
        flats.append(spectrum_to_real(item).abs().float().reshape(keep, 4, -1))
    values = torch.cat(flats, dim=-1)
    if max_samples is not None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        if values.shape[-1] > max_samples:
            pick = torch.linspace(0, values.shape[-1] - 1, max_samples, device=values.device).round().long()
            values = values[..., pick]
    return _percentile(values, float(percentile)).clamp_min(eps)


def _check_stats(s: torch.Tensor, keep: int) -> None:
    if not isinstance(s, torch.Tensor) or s.shape != (keep, 4):
        raise ValueError(f"s must be a [K, 4] = [{keep}, 4] tensor, got "
                         f"{tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__}")
    if not bool((s > 0).all()):
        raise ValueError("every entry of s must be > 0")


def normalize_spectrum(coeffs: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """GID Eq. 4: S' = sign(S) sqrt(|S / s|) per real channel.

    Args:
        coeffs: complex [K, 2, H, W].
        s: [K, 4] positive scales from ``frequency_stats``.

    Returns:
        real [K, 4, H, W] (Re x, Im x, Re y, Im y); values near 1 at the s-th percentile.

    Example:
        >>> S = torch.complex(torch.full((1, 2, 1, 1), 8.0), torch.full((1, 2, 1, 1), -2.0))
        >>> normalize_spectrum(S, torch.full((1, 4), 2.0)).flatten().tolist()
        [2.0, -1.0, 2.0, -1.0]
    """
    real = spectrum_to_real(coeffs)
    _check_stats(s, real.shape[0])
    scale = s.to(device=real.device, dtype=real.dtype)[:, :, None, None]
    return torch.sign(real) * torch.sqrt(real.abs() / scale)


def denormalize_spectrum(normalized: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Inverse of ``normalize_spectrum``: S = sign(S') S'^2 s, back to complex [K, 2, H, W].

    Example:
        >>> S = torch.randn(3, 2, 4, 4, dtype=torch.complex64)
        >>> s = frequency_stats(S)
        >>> bool(torch.allclose(denormalize_spectrum(normalize_spectrum(S, s), s), S, atol=1e-5))
        True
    """
    if normalized.ndim != 4 or normalized.shape[1] != 4 or normalized.is_complex():
        raise ValueError(f"normalized must be real [K, 4, H, W], got {tuple(normalized.shape)} {normalized.dtype}")
    _check_stats(s, normalized.shape[0])
    x = normalized if normalized.dtype in (torch.float32, torch.float64) else normalized.float()
    scale = s.to(device=x.device, dtype=x.dtype)[:, :, None, None]
    return real_to_spectrum(torch.sign(x) * x.square() * scale)


# ------------------------------------------------------------------------------------------ editing, checks


def scale_amplitude(coeffs: torch.Tensor, factor: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Motion magnification / minification: multiply the coefficients (the inverse FFT is linear).

    Args:
        coeffs: complex [K, 2, H, W].
        factor: a real number (every bin), or [K] per-frequency factors (e.g. 0 for bins to remove), or
            [K, 1, H, W] / [1, 1, H, W] per-pixel factors.

    Returns:
        complex [K, 2, H, W]; its motion is the original motion times ``factor`` (bin by bin).

    Example:
        >>> S = torch.ones(3, 2, 1, 1, dtype=torch.complex64)
        >>> scale_amplitude(S, [1.0, 2.0, 0.0])[:, 0, 0, 0].real.tolist()
        [1.0, 2.0, 0.0]
    """
    _check_coeffs(coeffs)
    f = torch.as_tensor(factor, dtype=torch.float64 if coeffs.dtype == torch.complex128 else torch.float32,
                        device=coeffs.device)
    if f.is_complex():
        raise ValueError("factor must be real (a complex factor would shift phases)")
    if not bool(torch.isfinite(f).all()):
        raise ValueError("factor must be finite")
    if f.ndim == 1:
        if f.shape[0] != coeffs.shape[0]:
            raise ValueError(f"per-frequency factor must have K = {coeffs.shape[0]} entries, got {f.shape[0]}")
        f = f[:, None, None, None]
    elif f.ndim not in (0, 4):
        raise ValueError(f"factor must be a scalar, [K] or [K|1, 1, H, W], got shape {tuple(f.shape)}")
    return coeffs * f


def loop_gap(displacement: torch.Tensor) -> tuple[float, float]:
    """How seamlessly a motion texture loops: the F_{T-1} -> F_0 step against the typical step.

    Args:
        displacement: [T, 2, H, W], T >= 2.

    Returns:
        (gap, mean_step): gap = mean over pixels of ||F_0 - F_{T-1}||; mean_step = mean over pixels and the T-1
        consecutive pairs of ||F_{t+1} - F_t||. A seamless loop has gap of the order of mean_step or below.

    Example:
        >>> t = torch.arange(20.0)
        >>> F = torch.cos(2 * math.pi * t / 20)[:, None, None, None].expand(20, 2, 2, 2)
        >>> gap, step = loop_gap(F)
        >>> gap <= step
        True
    """
    _check_displacement(displacement)
    if displacement.shape[0] < 2:
        raise ValueError("loop_gap needs at least 2 frames")
    d = displacement.float()
    gap = (d[0] - d[-1]).norm(dim=0).mean()
    steps = (d[1:] - d[:-1]).norm(dim=1).mean()
    return float(gap), float(steps)
