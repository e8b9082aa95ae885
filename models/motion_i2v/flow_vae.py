"""The 2-channel flow VAE (SD VAE architecture, diffusers ``AutoencoderKL``) and pixel-flow encode/decode.

Example:
    >>> import torch
    >>> from .config import tiny_config
    >>> vae = build_flow_vae(tiny_config("flow_vae"))
    >>> z = encode_flow(vae, torch.zeros(3, 2, 32, 48), sample=False)
    >>> z.shape, decode_flow(vae, z).shape
    (torch.Size([3, 4, 4, 6]), torch.Size([3, 2, 32, 48]))
"""
from __future__ import annotations

from typing import Any

import torch

from .config import resolve_config
from .constants import LATENT_SCALE, denormalise_flow, normalise_flow


def build_flow_vae(config: dict[str, Any] | None = None):
    """A diffusers ``AutoencoderKL`` from a ``flow_vae`` config (full size by default)."""
    from diffusers import AutoencoderKL

    cfg = resolve_config("flow_vae", config)
    vae = AutoencoderKL(**{k: v for k, v in cfg.items() if k != "conventions"})
    vae.pack_config = cfg
    return vae


def vae_downscale(vae) -> int:
    """Spatial factor between flows and their latents (8 for the released VAE)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def encode_normalised(vae, values: torch.Tensor, scale: float = LATENT_SCALE,
                      generator: torch.Generator | None = None, sample: bool = True, chunk: int = 8) -> torch.Tensor:
    """Encode flow-VAE inputs already in 0..1 (``[N, 2, H, W]``) to latents ``[N, 4, H/8, W/8]`` times ``scale``.

    ``sample=True`` draws from the posterior like the official code; ``False`` takes its mean.
    """
    if values.ndim != 4 or values.shape[1] != vae.config.in_channels:
        raise ValueError(f"values must be [N, {vae.config.in_channels}, H, W], got {tuple(values.shape)}")
    factor = vae_downscale(vae)
    if values.shape[-2] % factor or values.shape[-1] % factor:
        raise ValueError(f"flow size {tuple(values.shape[-2:])} must be a multiple of {factor}")
    dtype = next(vae.parameters()).dtype
    out = []
    for part in values.split(chunk):
        dist = vae.encode(part.to(dtype)).latent_dist
        out.append(dist.sample(generator=generator) if sample else dist.mean)
    return torch.cat(out) * scale


def encode_flow(vae, flow: torch.Tensor, scale: float = LATENT_SCALE, generator: torch.Generator | None = None,
                sample: bool = True) -> torch.Tensor:
    """Pixel displacements ``[N, 2, H, W]`` -> latents ``[N, 4, H/8, W/8]`` (normalised, encoded, scaled)."""
    return encode_normalised(vae, normalise_flow(flow), scale, generator, sample)


def decode_flow(vae, latents: torch.Tensor, scale: float = LATENT_SCALE, static_mask: torch.Tensor | None = None,
                chunk: int = 4) -> torch.Tensor:
    """Latents ``[N, 4, h, w]`` (times ``scale``) -> pixel displacements ``[N, 2, 8h, 8w]`` (float32).

    ``static_mask`` ``[H, W]`` (1 = still) zeroes the flow there exactly, as the demo's motion brush does.
    """
    if latents.ndim != 4 or latents.shape[1] != vae.config.latent_channels:
        raise ValueError(f"latents must be [N, {vae.config.latent_channels}, h, w], got {tuple(latents.shape)}")
    dtype = next(vae.parameters()).dtype
    values = torch.cat([vae.decode((part / scale).to(dtype)).sample for part in latents.split(chunk)])
    return denormalise_flow(values.float(), static_mask)
