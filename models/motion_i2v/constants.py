"""Motion-I2V conventions that the released weights were trained with, in one place.

Every number here comes from the official demo (``scripts/app.py`` and the flowgen inference config of
github.com/G-U-N/Motion-I2V, recorded in ``shared/reference/motion_i2v_manifest.json`` "notes"): change
none of them without new weights.

- Latents of both VAEs are multiplied by :data:`LATENT_SCALE` before the U-Nets see them, except the
  sparse-flow control latent, which enters the ControlNet unscaled.
- Flows enter the flow VAE normalised: ``dx / W``, ``dy / H`` (so -1..1 spans the frame), then mapped to
  0..1 by ``(f + 1) / 2``; 0.5 means "no motion". Decoding reverses it with a clamp to -1..1.
- Stage 1 predicts the flows of frames 1..15 relative to frame 0; frame ``i`` gets the "frame stride"
  :data:`STRIDES` ``[i - 1]`` = 8 i (the 16-frame training clips were sampled 8 source frames apart).
- Stage 1 receives the picture in 0..1 where a diffusers VAE expects -1..1 (an oddity of the demo that the
  weights learnt). Through ComfyUI's VAE Encode, which maps 0..1 to -1..1 itself, feed ``(image + 1) / 2``
  so that the encoder sees 0..1; see :func:`stage1_image_for_comfy_vae`. Stage 2 uses the normal range.

Example:
    >>> scheduler = make_scheduler()
    >>> scheduler.config.num_train_timesteps, STRIDES[:3]
    (1000, (8, 16, 24))
"""
from __future__ import annotations

from typing import Any

import torch

LATENT_SCALE = 0.18215
"""SD 1.5 latent scale, used for the image latent and the flow latent of stage 1 and stage 2 latents."""

STRIDES = tuple(range(8, 121, 8))
"""Frame-stride values of the 15 predicted flows (frames 1..15), fed through the timestep sinusoid."""

NUM_FRAMES = 16
"""Frames of a clip: the reference frame plus ``len(STRIDES)`` predicted frames."""

HEIGHT, WIDTH = 320, 512
"""Resolution of the official demo (pixels)."""

NUM_INFERENCE_STEPS = 25
GUIDANCE_SCALE = 7.0
CONTROL_SCALE = 1.0

SCHEDULER_KWARGS: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "steps_offset": 1,
    "clip_sample": False,
}
"""diffusers ``DDIMScheduler`` settings of both stages (flowgen inference.yaml)."""

CONVENTIONS: dict[str, Any] = {
    "latent_scale": LATENT_SCALE,
    "strides": list(STRIDES),
    "num_frames": NUM_FRAMES,
    "resolution": [HEIGHT, WIDTH],
    "scheduler": "DDIMScheduler",
    "scheduler_kwargs": SCHEDULER_KWARGS,
    "num_inference_steps": NUM_INFERENCE_STEPS,
    "guidance_scale": GUIDANCE_SCALE,
    "flow_normalisation": "dx/W, dy/H, then (f+1)/2 -> 0..1 (0.5 = still); decode (out*2-1).clamp(-1,1) * (W, H)",
    "stage1_image_range": "0..1 into a VAE that expects -1..1",
    "flow_layout": "reference-anchored displacement [T,2,H,W] in pixels, channel 0 = x right, 1 = y down",
}
"""Stored in every converted checkpoint's config under ``"conventions"``."""


REFERENCE_TIMESTEP = 1
"""Stage 2 embeds frame 0 (the clean reference latent) at this timestep at every step, and frames 1..F-1 at the
step's own timestep (the official stage-2 U-Net's ``one_t_emb``)."""


def make_scheduler():
    """A fresh diffusers ``DDIMScheduler`` with the settings of :data:`SCHEDULER_KWARGS`."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER_KWARGS)


def training_betas() -> torch.Tensor:
    """``[1000]`` float32 betas both stages were trained with: linear in beta from 0.00085 to 0.012.

    This is diffusers' ``beta_schedule="linear"``; SD 1.5 checkpoints themselves use "scaled_linear" (linear in
    sqrt(beta)), which ComfyUI calls "linear". Computed exactly as diffusers' DDIMScheduler does (float32), so
    that a ComfyUI ``model_sampling`` built from it has the scheduler's own ``alphas_cumprod``.

    Example:
        >>> betas = training_betas()
        >>> betas.shape, round(float(betas[0]), 5), round(float(betas[-1]), 5)
        (torch.Size([1000]), 0.00085, 0.012)
    """
    return make_scheduler().betas.clone()


def _check_flow(flow: torch.Tensor, name: str) -> None:
    if not torch.is_tensor(flow):
        raise TypeError(f"{name} must be a tensor, got {type(flow).__name__}")
    if flow.ndim < 3 or flow.shape[-3] != 2:
        raise ValueError(f"{name} must have shape [..., 2, H, W], got {tuple(flow.shape)}")


def normalise_flow(flow: torch.Tensor) -> torch.Tensor:
    """Pixel displacements -> the flow VAE's input range.

    Args:
        flow: ``[..., 2, H, W]`` displacements in pixels at this resolution (channel 0 = x, 1 = y).

    Returns:
        ``[..., 2, H, W]`` values ``(dx / W + 1) / 2`` and ``(dy / H + 1) / 2``: 0.5 = no motion, 0 and 1 =
        a full frame width/height to the left/right (up/down).

    Example:
        >>> normalise_flow(torch.zeros(1, 2, 4, 8)).unique().tolist()
        [0.5]
    """
    _check_flow(flow, "flow")
    h, w = flow.shape[-2:]
    scale = flow.new_tensor([w, h]).view(2, 1, 1)
    return (flow / scale + 1.0) * 0.5


def denormalise_flow(values: torch.Tensor, static_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Flow VAE output -> pixel displacements: ``(v * 2 - 1).clamp(-1, 1) * (W, H)``.

    Args:
        values: ``[..., 2, H, W]`` decoder output (0.5 = no motion).
        static_mask: optional ``[H, W]`` (or broadcastable ``[..., 1, H, W]``) in 0..1, 1 = keep still; the
            flow is multiplied by ``1 - static_mask`` (the demo's motion brush), so 1 gives exactly zero.

    Returns:
        ``[..., 2, H, W]`` displacements in pixels.

    Example:
        >>> denormalise_flow(torch.ones(1, 2, 4, 8))[0, :, 0, 0].tolist()
        [8.0, 4.0]
    """
    _check_flow(values, "values")
    h, w = values.shape[-2:]
    flow = (values * 2.0 - 1.0).clamp(-1.0, 1.0)
    if static_mask is not None:
        flow = flow * (1.0 - _as_mask(static_mask, (h, w)).to(flow))
    return flow * values.new_tensor([w, h]).view(2, 1, 1)


def _as_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[H, W]`` or ``[..., 1, H, W]`` mask of the given spatial size, kept broadcastable against flows."""
    if mask.shape[-2:] != torch.Size(size):
        raise ValueError(f"mask must be {size[0]}x{size[1]} like the flow, got {tuple(mask.shape)}")
    if mask.ndim == 2:
        return mask
    if mask.shape[-3] != 1:
        raise ValueError(f"mask must have shape [H, W] or [..., 1, H, W], got {tuple(mask.shape)}")
    return mask


def stage1_image_for_comfy_vae(image: torch.Tensor) -> torch.Tensor:
    """Map a 0..1 picture so that ComfyUI's VAE Encode (which applies ``x * 2 - 1``) feeds 0..1 to the encoder.

    Stage 1 was trained with the picture in 0..1 entering the SD VAE directly; stage 2 uses the picture as
    ComfyUI normally encodes it.
    """
    return (image + 1.0) * 0.5
