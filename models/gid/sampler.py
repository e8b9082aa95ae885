"""Sampling a spectral volume from a picture with a GID model (DDIM, classifier-free guidance, loop guidance).

Per call: the picture is resized to the model's resolution and downsampled to the latent size as the
condition; K slices of Gaussian noise (one per frequency) are denoised jointly by diffusers' DDIMScheduler
with eps = (1 + w) eps(z; n, c) - w eps(z; n, 0) (the null condition is a zero picture); the final latents
are decoded slice by slice, de-normalised with the model's statistics s, and the spectrum is resized to the
picture with its vectors scaled per axis (x by W_picture / W_model, y by H_picture / H_model).

With a :class:`~..guidance.LoopGuidance` each step also pulls the ends of the motion together: the x0-estimate
is decoded to the displacement at frames 0, 1, L and L + 1 only (direct Fourier-series evaluation,
``spectrum_to_motion(..., times=...)``), never the full T-frame motion. Frames L and L + 1 must be frames 0
and 1 again, so the loop of frames 0 .. L - 1 has no duplicated frame and no hold at the seam. With L = T (the
default) or a multiple of T, the series' period already gives exactly that: there is nothing to guide, and the
sampler samples without guidance (``cfg_w`` still applies). The guidance weight is resolved here: None =
:data:`LOOP_WEIGHT`, and so is the loss (``relative`` None = :data:`LOOP_RELATIVE`: the scale-invariant loss,
for which the decoder also evaluates the loop's frames 0 .. L - 1 for their amplitude), and u is scaled by
:func:`loop_scale` so that it means the same at every resolution. With ``checkpoint_denoiser`` (the default)
memory is kept in check layer by layer: the U-Net recomputes each layer in the backward pass (its
``gradient_checkpointing``) and the decoder runs in checkpointed chunks of 4 slices.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from ...ops.containers import SpectralVolume
from ...ops.progress import ProgressFn, report
from ...ops.spectral import denormalize_spectrum, spectrum_to_motion
from ..guidance import LoopGuidance
from .model import GIDModel

LOOP_WEIGHT = 200.0
"""GID's default loop guidance weight u (at 256 x 160, the paper's resolution; see :func:`loop_scale`)."""

LOOP_RELATIVE = True
"""GID's default loop loss: the scale-invariant L_g sg(A) / A (``guidance.relative_loop_losses``), not the
paper's plain Eq. 6, which shrinks draws that cannot loop at L to no motion (bench/RESULTS.md, 2026-12-04)."""

LOOP_REFERENCE_PIXELS = 256 * 160
"""The resolution at which u is GID's own u (the paper's 256 x 160 model)."""


def loop_scale(height: int, width: int) -> float:
    """s = sqrt(H W / (256 x 160)): the loop guidance weight's resolution scale for a GID model at H x W.

    The loss is a mean over pixels of displacements in pixels: at s times the resolution there are s^2 as many
    pixels (each latent element's share of the mean falls by s^2) and displacements are s times larger (the
    de-normalisation statistics grow with them), so the gradient per latent element falls by s; multiplying u
    by s keeps the update per element the same. s = 1 at the paper's resolution.

    Example:
        >>> loop_scale(160, 256), loop_scale(20, 32)
        (1.0, 0.125)
    """
    return math.sqrt(int(height) * int(width) / LOOP_REFERENCE_PIXELS)


def resize_spectrum(coeffs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a spectral volume [K, 2, H, W] (pixels at H x W) to ``size`` = (H', W'), rescaling vectors per axis.

    Real and imaginary parts are resampled bilinearly (antialiased when shrinking); the x coefficients are
    multiplied by W' / W and the y coefficients by H' / H (the inverse FFT is linear, so this is the same as
    resizing and rescaling every frame of the motion).

    Example:
        >>> S = torch.ones(2, 2, 4, 8, dtype=torch.complex64)
        >>> out = resize_spectrum(S, (8, 8))
        >>> out.shape, out[0, 0, 0, 0].real.item(), out[0, 1, 0, 0].real.item()
        (torch.Size([2, 2, 8, 8]), 1.0, 2.0)
    """
    if coeffs.ndim != 4 or coeffs.shape[1] != 2 or not coeffs.is_complex():
        raise ValueError(f"coeffs must be complex [K, 2, H, W], got {tuple(coeffs.shape)} {coeffs.dtype}")
    h, w = coeffs.shape[-2:]
    th, tw = int(size[0]), int(size[1])
    if (th, tw) == (h, w):
        return coeffs
    real = torch.view_as_real(coeffs).permute(0, 4, 1, 2, 3).reshape(-1, 1, h, w)
    real = F.interpolate(real, size=(th, tw), mode="bilinear", align_corners=False, antialias=th < h or tw < w)
    real = real.reshape(coeffs.shape[0], 2, 2, th, tw)
    scale = torch.tensor([tw / w, th / h], dtype=real.dtype, device=real.device).view(1, 1, 2, 1, 1)
    real = real * scale  # dims: K, (re, im), (x, y), H, W
    return torch.view_as_complex(real.permute(0, 2, 3, 4, 1).contiguous())


def _eps_fn(model: GIDModel, condition: torch.Tensor, guidance_scale: float, coordinate: bool):
    """(z [B, K, 4, h, w], t) -> guided eps [B, K, 4, h, w] (float32) for B samples of one picture's
    ``condition`` [B, 3, h, w]: eps = (1 + w) eps_c - w eps_u, null = a zero picture."""
    null = torch.zeros_like(condition)

    def eps_fn(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        flat = z.reshape(-1, *z.shape[2:]).to(model.dtype)  # '(b k)', as predict_noise wants
        if guidance_scale == 0:
            return model.predict_noise(flat, t, condition, coordinate).float().view_as(z)
        both = model.predict_noise(torch.cat([flat, flat]), t, torch.cat([condition, null]), coordinate).float()
        eps_c, eps_u = both.chunk(2)
        return ((1 + guidance_scale) * eps_c - guidance_scale * eps_u).view_as(z)

    return eps_fn


def _decode_spectra(model: GIDModel, latents: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Latents [B, n, 4, h, w] of slices start .. start + n - 1 -> de-normalised spectra [B, n, 2, H, W] (complex;
    pixels at the model's resolution). The VAE decodes all B n slices in one call."""
    b, n = latents.shape[:2]
    slices = model.decode(latents.reshape(b * n, *latents.shape[2:]).to(model.dtype))
    coeffs = denormalize_spectrum(slices, model.stats[start:start + n].repeat(b, 1))
    return coeffs.view(b, n, *coeffs.shape[1:])


def gid_endpoint_decoder(model: GIDModel, times: torch.Tensor, chunk: int = 4, checkpoint: bool = True) -> Callable:
    """x0 latents [B, K, 4, h, w] -> displacement at ``times`` of each of the B samples, as
    (first, first_next, last, last_next), each [B, 2, H, W] pixels at the model's resolution.

    ``times`` (``LoopGuidance.endpoint_times``): the 4 frame times (0, 1, L, L + 1), or all of 0, 1 .. L + 1
    (more than 4, for a relative loss), which adds a fifth element, the loop's frames 0 .. L - 1
    [B, L, 2, H, W].

    Decodes the K slices, de-normalises them and evaluates the Fourier series at the four times only. The
    series is linear in the coefficients, so the frames are summed over chunks of ``chunk`` slices; with
    ``checkpoint`` (and gradients on) each chunk's decoder activations are recomputed in the backward pass, so
    memory holds one chunk's activations (of all B samples) instead of all K slices'.
    """
    period = model.config.num_frames
    k = model.config.num_frequencies
    chunk = max(1, int(chunk))

    def contribution(x0_chunk: torch.Tensor, start: int) -> torch.Tensor:
        coeffs = _decode_spectra(model, x0_chunk, start)  # [B, n, 2, H, W]
        n = coeffs.shape[1]
        pad_before = coeffs.new_zeros((start, *coeffs.shape[2:]))
        pad_after = coeffs.new_zeros((k - start - n, *coeffs.shape[2:]))
        return torch.stack([spectrum_to_motion(torch.cat([pad_before, one, pad_after]), period, times=times)
                            for one in coeffs])  # [B, 4, 2, H, W]

    def decode(x0: torch.Tensor):
        if x0.ndim != 5 or x0.shape[1] != k:
            raise ValueError(f"x0 must be [B, {k}, 4, h, w], got {tuple(x0.shape)}")
        frames = None
        for start in range(0, k, chunk):
            part = x0[:, start:start + chunk]
            if checkpoint and torch.is_grad_enabled():
                value = torch.utils.checkpoint.checkpoint(contribution, part, start, use_reentrant=False)
            else:
                value = contribution(part, start)
            frames = value if frames is None else frames + value
        if len(times) > 4:
            return frames[:, 0], frames[:, 1], frames[:, -2], frames[:, -1], frames[:, :-2]
        return frames[:, 0], frames[:, 1], frames[:, 2], frames[:, 3]

    return decode


@torch.no_grad()
def sample_spectrum(model: GIDModel, image: torch.Tensor, num_steps: int = 250, guidance_scale: float = 1.75,
                    seed: int = 0, loop_guidance: LoopGuidance | None = None, coordinate: bool = True,
                    eta: float = 0.0, progress: ProgressFn | None = None,
                    output_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Sample a spectral volume for a picture.

    Args:
        model: a loaded :class:`GIDModel` (on the compute device).
        image: [1, 3, H, W] float in [0, 1], any size.
        num_steps: DDIM steps (GID: 250; 500 when looping).
        guidance_scale: w of classifier-free guidance, eps = (1 + w) eps_c - w eps_u (0 = conditional only).
        seed: seeds the initial noise (and the re-noising of loop guidance); drawn on the CPU, so the same
            seed gives the same noise on any device.
        loop_guidance: optional :class:`LoopGuidance`; its ``cfg_w`` (if not None) replaces ``guidance_scale``;
            its weight None means :data:`LOOP_WEIGHT` and its ``relative`` None :data:`LOOP_RELATIVE`; the
            weight is scaled by :func:`loop_scale`.
        coordinate: use the frequency attention (False = stage-1 behaviour, slices denoised independently).
        eta: DDIM eta (0 = deterministic).
        progress: ``progress(done, total)`` before the first step and after every step (``ops/progress.py``);
            with loop guidance also ``progress(i, total)`` again before each of step i + 1's passes and between
            each pass's forward and backward. What it raises (e.g. ``ops.progress.Interrupted``) stops sampling
            at once, with nothing returned.
        output_size: (H', W') of the result; default the picture's (H, W).

    Returns:
        complex64 [K, 2, H', W'] spectrum of the displacement in pixels at H' x W' (``model.config`` gives
        its period T, fps and FFT normalisation; see :func:`sample_spectral_volume`). The same as
        ``sample_spectra(..., seeds=[seed])[0]``.
    """
    return sample_spectra(model, image, num_steps, guidance_scale, [seed], loop_guidance, coordinate, eta,
                          progress, output_size)[0]


@torch.no_grad()
def sample_spectra(model: GIDModel, image: torch.Tensor, num_steps: int = 250, guidance_scale: float = 1.75,
                   seeds: Sequence[int] = (0,), loop_guidance: LoopGuidance | None = None, coordinate: bool = True,
                   eta: float = 0.0, progress: ProgressFn | None = None,
                   output_size: tuple[int, int] | None = None) -> torch.Tensor:
    """:func:`sample_spectrum` for B = len(seeds) samples of one picture, denoised as one batch.

    Sample b is the sample of ``seeds[b]`` alone, up to float rounding (the batched U-Net's sums may round
    differently): its noise is drawn from its own generator, the U-Net and the VAE treat samples independently,
    and loop guidance sums the samples' own losses (``models/guidance.py``), so each is guided with the full u.
    A batch costs little more than one sample where per-call overhead dominates (tiny models on a CPU).

    Args:
        seeds: one seed per sample (its initial noise, re-noising and DDIM eta noise).
        the rest: see :func:`sample_spectrum`.

    Returns:
        complex64 [B, K, 2, H', W'].
    """
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"image must be [1, 3, H, W], got {tuple(image.shape)}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    guidance_scale = LoopGuidance.guidance_scale(loop_guidance, guidance_scale, "guidance_scale")
    cfg = model.config
    device = model.device
    b, k = len(seeds), cfg.num_frequencies
    h, w = cfg.latent_size
    out_size = tuple(output_size) if output_size is not None else tuple(image.shape[-2:])

    scheduler = model.sampling_scheduler(num_steps)
    total = len(scheduler.timesteps)
    generator = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
    from diffusers.utils.torch_utils import randn_tensor

    latents = randn_tensor((b, k, 4, h, w), generator=generator, device=device, dtype=torch.float32)
    latents = latents * scheduler.init_noise_sigma
    condition = model.condition(image.to(device)).expand(b, -1, -1, -1)
    eps_fn = _eps_fn(model, condition, guidance_scale, coordinate)

    decoder = None
    layerwise = False
    scale = loop_scale(cfg.height, cfg.width)
    if loop_guidance is not None and int(loop_guidance.num_frames or cfg.num_frames) % cfg.num_frames == 0:
        loop_guidance = None  # the Fourier series loops over its own period exactly: L_g is identically zero
    if loop_guidance is not None:
        loop_guidance = loop_guidance.with_defaults(LOOP_WEIGHT, LOOP_RELATIVE)
        times = loop_guidance.endpoint_times(cfg.num_frames)
        decoder = gid_endpoint_decoder(model, times, checkpoint=loop_guidance.checkpoint_denoiser)
        if loop_guidance.checkpoint_denoiser and loop_guidance.through_denoiser:
            # finer than checkpointing the whole call: the U-Net keeps only each layer's input for the backward
            loop_guidance = dataclasses.replace(loop_guidance, checkpoint_denoiser=False)
            layerwise = True
    previous = model.unet.gradient_checkpointing
    model.unet.gradient_checkpointing = previous or layerwise
    try:
        report(progress, 0, total)
        for i, t in enumerate(scheduler.timesteps):
            if loop_guidance is None:
                eps = eps_fn(latents, t)
                latents = scheduler.step(eps, t, latents, eta=eta, generator=generator).prev_sample
            else:
                latents, _ = loop_guidance.step(scheduler, latents, i, eps_fn, decoder, generator=generator,
                                                scale=scale, check=lambda done=i: report(progress, done, total),
                                                eta=eta)
            report(progress, i + 1, total)
    finally:
        model.unet.gradient_checkpointing = previous

    coeffs = _decode_spectra(model, latents)
    return torch.stack([resize_spectrum(one.to(torch.complex64), out_size) for one in coeffs])


def sample_spectral_volume(model: GIDModel, image: torch.Tensor, **kwargs) -> SpectralVolume:
    """:func:`sample_spectrum` wrapped in a :class:`SpectralVolume` with the model's T, fps and normalisation.

    With loop guidance of a length L other than T, ``loop_frames`` = L: what ``ops.spectral.to_motion`` plays
    by default."""
    coeffs = sample_spectrum(model, image, **kwargs)
    guidance = kwargs.get("loop_guidance")
    period = model.config.num_frames
    loop_frames = int(guidance.num_frames) if guidance is not None and guidance.num_frames else None
    return SpectralVolume(coeffs=coeffs, num_frames=period, fps=model.config.fps, norm=model.config.norm,
                          extras={"units": "pixels", "source": "gid", "loop_guided": guidance is not None},
                          loop_frames=None if loop_frames == period else loop_frames)
