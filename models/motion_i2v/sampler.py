"""DDIM samplers of both Motion-I2V stages, as the official demo runs them, over pure-PyTorch modules.

Stage 1 (:func:`sample_stage1`): noise ``[1, 4, N, h, w]`` -> flow latents, the U-Net seeing
``cat([image latent, noisy flow latent])`` with per-frame strides, classifier-free guidance (uncond first),
optional ControlNet residuals (same control for both halves), then the flow VAE decodes
``latents / 0.18215`` and the output maps to pixels; a motion brush multiplies the flow by ``1 - static``.

Stage 2 (:func:`sample_stage2`, reference implementation over :class:`~.unet3d.MotionI2VUNet3D` built with
:func:`~.config.stage2_unet_config`), as the official ``AnimationPipeline`` runs it: DDIM on the linear-beta
schedule the weights were trained with; the clean reference latent replaces frame 0 before every step and at
the end, and is embedded at ``t = 1`` whatever the step; the reference features are paired with the guidance
pair's videos as the official motion module tiles them (``pairing``); with a motion brush, still regions are
reset to the reference latent noised (with the initial noise) to the next timestep, after every step but
the last.

Both samplers report ``progress(done, total)`` after every step (:mod:`ops.progress`); a callback that raises
stops them and nothing is returned.

Example:
    >>> import torch
    >>> from .config import tiny_config
    >>> from .unet3d import MotionI2VUNet3D
    >>> from .flow_vae import build_flow_vae
    >>> unet, vae = MotionI2VUNet3D(tiny_config("stage1")), build_flow_vae(tiny_config("flow_vae"))
    >>> flows = sample_stage1(unet, vae, torch.randn(1, 4, 4, 4), torch.randn(1, 3, 16), torch.randn(1, 3, 16),
    ...                       strides=[8, 16], num_steps=2, generator=torch.Generator().manual_seed(0))
    >>> flows.shape                                    # [N, 2, H, W] pixels
    torch.Size([2, 2, 32, 32])
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...ops.progress import ProgressFn, report
from .constants import (
    CONTROL_SCALE,
    GUIDANCE_SCALE,
    NUM_INFERENCE_STEPS,
    REFERENCE_TIMESTEP,
    STRIDES,
    make_scheduler,
    normalise_flow,
)
from .flow_vae import decode_flow, encode_normalised, vae_downscale


def _randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=torch.float32).to(device)


def _initial_latents(scheduler, shape: tuple[int, ...], latents: torch.Tensor | None,
                     generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """The sampler's starting latents [1, 4, F, h, w] (float32): the caller's, or seeded noise at the first sigma."""
    if latents is None:
        return _randn(shape, generator, device) * scheduler.init_noise_sigma
    if tuple(latents.shape) != shape:
        raise ValueError(f"latents must be {list(shape)}, got {tuple(latents.shape)}")
    return latents.float()


def _mask2d(mask: torch.Tensor, size: tuple[int, int], name: str) -> torch.Tensor:
    mask = torch.as_tensor(mask)
    while mask.ndim > 2 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != torch.Size(size):
        raise ValueError(f"{name} must be [H, W] = {list(size)}, got {tuple(mask.shape)}")
    return mask.float()


def downsample_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[..., H, W]`` mask -> ``[..., h, w]`` by nearest sampling (the demo's ``scale_factor = 1/8``)."""
    lead = mask.shape[:-2]
    flat = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    return F.interpolate(flat, size=size, mode="nearest").reshape(*lead, *size)


def with_reference_frame(flows: torch.Tensor) -> torch.Tensor:
    """``[N, 2, H, W]`` flows of frames 1..N -> ``[N+1, 2, H, W]`` with frame 0's zero flow first (stage 2)."""
    return torch.cat([torch.zeros_like(flows[:1]), flows])


def make_control(flow_vae: nn.Module, sparse_flow: torch.Tensor, sparse_mask: torch.Tensor,
                 static_mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 sample: bool = True) -> torch.Tensor:
    """The ControlNet's 5-channel condition from sparse trajectories and a motion brush.

    Args:
        flow_vae: the flow VAE.
        sparse_flow: ``[N, 2, H, W]`` pixel displacements from frame 0 for frames 1..N, valid where the mask is 1.
        sparse_mask: ``[N, 1, H, W]`` or ``[H, W]``, 1 where ``sparse_flow`` is given.
        static_mask: optional ``[H, W]``, 1 = must stay still (motion brush: 1 outside the painted area);
            its pixels become "given, zero motion".
        sample: draw from the VAE posterior like the demo (``False``: its mean).

    Returns:
        ``[N, 5, H/8, W/8]``: flow-VAE latent of the normalised sparse flow (unset = 0.5, not scaled) and the
        mask sampled at latent size.
    """
    if sparse_flow.ndim != 4 or sparse_flow.shape[1] != 2:
        raise ValueError(f"sparse_flow must be [N, 2, H, W], got {tuple(sparse_flow.shape)}")
    n, _, h, w = sparse_flow.shape
    mask = torch.as_tensor(sparse_mask, device=sparse_flow.device).float()
    if mask.ndim == 2:
        mask = mask.expand(n, 1, h, w)
    if mask.shape != (n, 1, h, w):
        raise ValueError(f"sparse_mask must be [N, 1, H, W] or [H, W] = {[n, 1, h, w]}, got {tuple(mask.shape)}")
    values = normalise_flow(sparse_flow.float())
    if static_mask is not None:
        still = _mask2d(static_mask, (h, w), "static_mask").to(values.device)
        values = (values - 0.5) * (1.0 - still) + 0.5
        mask = torch.where(still > 0, torch.ones_like(mask), mask)
    values = (values - 0.5) * mask + 0.5
    latent = encode_normalised(flow_vae, values, scale=1.0, generator=generator, sample=sample).float()
    return torch.cat([latent, downsample_mask(mask, tuple(latent.shape[-2:]))], dim=1)


def _guided(eps: torch.Tensor, guidance_scale: float, cfg: bool) -> torch.Tensor:
    if not cfg:
        return eps
    uncond, cond = eps.chunk(2)
    return uncond + guidance_scale * (cond - uncond)


def _context(cond: torch.Tensor, uncond: torch.Tensor | None, guidance_scale: float) -> tuple[torch.Tensor, bool]:
    if cond.ndim != 3 or cond.shape[0] != 1:
        raise ValueError(f"cond must be [1, L, D] text embeddings, got {tuple(cond.shape)}")
    cfg = uncond is not None and guidance_scale > 1.0
    if cfg and uncond.shape[0] != 1:
        raise ValueError(f"uncond must be [1, L, D], got {tuple(uncond.shape)}")
    if cfg and uncond.shape[1] != cond.shape[1]:
        raise ValueError("cond and uncond must have the same token count (pad or repeat them)")
    return (torch.cat([uncond, cond]) if cfg else cond), cfg


@torch.no_grad()
def sample_stage1(unet: nn.Module, flow_vae: nn.Module, image_latent: torch.Tensor, cond: torch.Tensor,
                  uncond: torch.Tensor | None = None, *, strides: Sequence[float] = STRIDES,
                  num_steps: int = NUM_INFERENCE_STEPS, guidance_scale: float = GUIDANCE_SCALE,
                  controlnet: nn.Module | None = None, control: torch.Tensor | None = None,
                  control_scale: float = CONTROL_SCALE, static_mask: torch.Tensor | None = None,
                  generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
                  progress: ProgressFn | None = None) -> torch.Tensor:
    """Predict ``N = len(strides)`` reference-anchored flows from a picture (Motion-I2V stage 1, DDIM).

    Args:
        unet: stage-1 :class:`~.unet3d.MotionI2VUNet3D`.
        flow_vae: the flow VAE (decodes the result).
        image_latent: ``[1, 4, h, w]`` SD-VAE latent of the picture times 0.18215 (see
            :func:`~.constants.stage1_image_for_comfy_vae` for the picture's range).
        cond, uncond: ``[1, L, D]`` text embeddings; guidance runs when ``uncond`` is given and
            ``guidance_scale > 1``.
        strides: frame strides of the predicted frames (default 8, 16, ..., 120).
        controlnet, control: optional :class:`~.controlnet.MotionI2VControlNet` and its ``[N, 5, h, w]``
            condition from :func:`make_control`; ``control_scale`` multiplies its residuals.
        static_mask: optional ``[H, W]`` motion brush, 1 = still: the flow there is exactly zero.
        generator: for the initial noise; ``latents`` ``[1, 4, N, h, w]`` replaces that noise.
        progress: ``progress(done, num_steps)`` after every step; may raise to stop.

    Returns:
        ``[N, 2, H, W]`` float32 displacements in pixels (``H, W = 8h, 8w``), frame i+1 relative to frame 0.
    """
    if image_latent.ndim != 4 or image_latent.shape[:2] != (1, 4):
        raise ValueError(f"image_latent must be [1, 4, h, w], got {tuple(image_latent.shape)}")
    if (controlnet is None) != (control is None):
        raise ValueError("controlnet and control go together")
    device = image_latent.device
    n = len(strides)
    h, w = image_latent.shape[-2:]
    context, cfg = _context(cond.to(device), None if uncond is None else uncond.to(device), guidance_scale)
    batch = context.shape[0]
    if control is not None:
        if tuple(control.shape) != (n, 5, h, w):
            raise ValueError(f"control must be [N, 5, h, w] = {[n, 5, h, w]}, got {tuple(control.shape)}")
        control = control.to(device).permute(1, 0, 2, 3)[None].expand(batch, -1, -1, -1, -1)
    factor = vae_downscale(flow_vae)
    still = None if static_mask is None else _mask2d(static_mask, (h * factor, w * factor), "static_mask")
    stride_t = torch.as_tensor(list(strides), dtype=torch.float32, device=device)

    scheduler = make_scheduler()
    scheduler.set_timesteps(num_steps, device=device)
    latents = _initial_latents(scheduler, (1, 4, n, h, w), latents, generator, device)
    image = image_latent.float()[:, :, None].expand(-1, -1, n, -1, -1)
    for i, t in enumerate(scheduler.timesteps):
        x = torch.cat([image, latents], dim=1).expand(batch, -1, -1, -1, -1)
        x = scheduler.scale_model_input(x, t)
        residuals = None
        if controlnet is not None:
            residuals = controlnet(x, t, context, stride_t, control, scale=control_scale)
        eps = unet(x, t, context, strides=stride_t, control=residuals).float()
        latents = scheduler.step(_guided(eps, guidance_scale, cfg), t, latents).prev_sample
        report(progress, i + 1, len(scheduler.timesteps))
    flow_latents = latents[0].permute(1, 0, 2, 3)                       # [N, 4, h, w]
    return decode_flow(flow_vae, flow_latents, static_mask=None if still is None else still.to(device))


@torch.no_grad()
def sample_stage2(unet: nn.Module, reference_latent: torch.Tensor, flows: torch.Tensor, cond: torch.Tensor,
                  uncond: torch.Tensor | None = None, *, num_steps: int = NUM_INFERENCE_STEPS,
                  guidance_scale: float = GUIDANCE_SCALE, static_mask: torch.Tensor | None = None,
                  pairing: str = "official", generator: torch.Generator | None = None,
                  latents: torch.Tensor | None = None, progress: ProgressFn | None = None) -> torch.Tensor:
    """Render ``F`` frame latents from the reference latent and flows (Motion-I2V stage 2, DDIM).

    Args:
        unet: stage-2 :class:`~.unet3d.MotionI2VUNet3D` (``stage2_unet_config``: 4 channels, no strides).
        reference_latent: ``[1, 4, h, w]`` SD-VAE latent of the picture (normal -1..1 input) times 0.18215. The
            official pipeline draws it from the VAE posterior (``latent_dist.sample()``); ComfyUI's VAE Encode
            gives the posterior mean.
        flows: ``[F, 2, H, W]`` pixel displacements of every frame from frame 0 (frame 0 = zeros, see
            :func:`with_reference_frame`), at any resolution (the attention rescales them).
        cond, uncond: ``[1, L, D]`` text embeddings; guidance (uncond first, as officially) runs when
            ``uncond`` is given and ``guidance_scale > 1``.
        static_mask: optional ``[H, W]`` (any resolution) motion brush, 1 = still.
        pairing: ``"official"`` or ``"per video"`` (:func:`~.temporal.reference_pairing`).
        generator, latents: the initial noise ``[1, 4, F, h, w]`` (drawn with ``generator`` unless given).
        progress: ``progress(done, num_steps)`` after every step; may raise to stop.

    Returns:
        ``[F, 4, h, w]`` latents (times 0.18215); frame 0 is exactly ``reference_latent``.
    """
    if reference_latent.ndim != 4 or reference_latent.shape[:2] != (1, 4):
        raise ValueError(f"reference_latent must be [1, 4, h, w], got {tuple(reference_latent.shape)}")
    if flows.ndim != 4 or flows.shape[1] != 2:
        raise ValueError(f"flows must be [F, 2, H, W], got {tuple(flows.shape)}")
    device = reference_latent.device
    frames = flows.shape[0]
    h, w = reference_latent.shape[-2:]
    context, cfg = _context(cond.to(device), None if uncond is None else uncond.to(device), guidance_scale)
    batch = context.shape[0]
    flows = flows.to(device).float()[None]
    still = None
    if static_mask is not None:
        mask = torch.as_tensor(static_mask)
        still = downsample_mask(mask.reshape(mask.shape[-2:]).to(device), (h, w))  # [h, w]

    scheduler = make_scheduler()
    scheduler.set_timesteps(num_steps, device=device)
    latents = _initial_latents(scheduler, (1, 4, frames, h, w), latents, generator, device)
    noise = latents.clone()
    latents = latents.clone()
    reference = reference_latent.float()[:, :, None]                      # [1, 4, 1, h, w]
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        latents[:, :, :1] = reference
        x = scheduler.scale_model_input(latents.expand(batch, -1, -1, -1, -1), t)
        eps = unet(x, t, context, flows=flows, pairing=pairing, reference_timestep=REFERENCE_TIMESTEP).float()
        latents = scheduler.step(_guided(eps, guidance_scale, cfg), t, latents).prev_sample
        if still is not None and i < len(timesteps) - 1:
            noised = scheduler.add_noise(reference.expand_as(noise), noise, timesteps[i + 1:i + 2])
            latents = noised * still + latents * (1.0 - still)
        report(progress, i + 1, len(timesteps))
    latents[:, :, :1] = reference
    return latents[0].permute(1, 0, 2, 3)
