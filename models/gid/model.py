"""The GID motion prior as one module: spectral VAE + frequency-coordinated U-Net + normalisation statistics.

Its checkpoint format is in ``checkpoint.py``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..schedules import ddim_scheduler, ddpm_scheduler
from .config import GIDConfig
from .unet import GIDUNet
from .vae import build_vae


def picture_condition(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The U-Net's picture condition: [B, 3, H, W] in [0, 1] -> [B, 3, h, w] in [-1, 1] (antialiased resize).

    The null condition of classifier-free guidance is ``zeros`` of the same shape (a mid-grey picture).
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be [B, 3, H, W], got {tuple(image.shape)}")
    small = F.interpolate(image.float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return small.clamp(0, 1) * 2 - 1


class GIDModel(nn.Module):
    """Spectral VAE + frequency-coordinated U-Net + normalisation statistics s [K, 4].

    Example:
        >>> model = build_gid(GIDConfig.preset("tiny"))
        >>> cond = model.condition(torch.rand(1, 3, 40, 64))
        >>> cond.shape
        torch.Size([1, 3, 20, 32])
    """

    def __init__(self, config: GIDConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.vae = build_vae(config.vae)
        self.unet = GIDUNet(config)
        self.register_buffer("stats", torch.ones(config.num_frequencies, 4))

    @property
    def device(self) -> torch.device:
        return self.stats.device

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the networks' weights (the statistics stay float32)."""
        return self.unet.conv_in.weight.dtype

    @property
    def latent_size(self) -> tuple[int, int]:
        return self.config.latent_size

    # ------------------------------------------------------------------ conditioning
    def condition(self, image: torch.Tensor) -> torch.Tensor:
        """The U-Net's picture condition: [B, 3, H, W] in [0, 1] (any size) -> [B, 3, h, w] in [-1, 1]."""
        return picture_condition(image, self.latent_size).to(self.device, self.dtype)

    # ------------------------------------------------------------------ VAE
    def encode(self, slices: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """Normalised slices [N, 4, H, W] -> scaled latents [N, 4, h, w] (posterior sample or mean)."""
        posterior = self.vae.encode(slices.to(self.dtype)).latent_dist
        z = posterior.sample(generator=generator) if sample else posterior.mean
        return z * self.config.latent_scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [N, 4, h, w] -> normalised slices [N, 4, H, W] (float32)."""
        return self.vae.decode(latents / self.config.latent_scale).sample.float()

    # ------------------------------------------------------------------ denoiser
    def predict_noise(self, latents: torch.Tensor, timestep, condition: torch.Tensor,
                      coordinate: bool = True) -> torch.Tensor:
        """eps for B samples of K slices each.

        Args:
            latents: [B K, 4, h, w] ordered '(b k)'.
            timestep: scalar or [B K].
            condition: [B, 3, h, w] from :meth:`condition` (or zeros for the null condition).
            coordinate: frequency attention on (a stage-2 model) or off (stage 1 / independent slices).
        """
        k = self.config.num_frequencies
        if latents.shape[0] % k:
            raise ValueError(f"latents must be [B K, 4, h, w] with K = {k}, got {tuple(latents.shape)}")
        b = latents.shape[0] // k
        if condition.shape[0] != b:
            raise ValueError(f"condition has batch {condition.shape[0]}, latents hold {b} samples")
        frequency = torch.arange(k, device=latents.device).repeat(b)
        cond = condition.repeat_interleave(k, dim=0)
        return self.unet(latents, timestep, frequency, cond, num_frequencies=k if coordinate else None)

    # ------------------------------------------------------------------ schedulers
    def training_scheduler(self):
        """diffusers DDPMScheduler with this model's noise schedule (for ``add_noise`` in training)."""
        return ddpm_scheduler(self.config.diffusion)

    def sampling_scheduler(self, num_steps: int | None = None):
        """diffusers DDIMScheduler with this model's noise schedule (deterministic, eta = 0 by default), with
        ``set_timesteps(num_steps)`` applied when given (any count up to the schedule's length)."""
        return ddim_scheduler(self.config.diffusion, num_steps, self.device)


def build_gid(config: GIDConfig, stats: torch.Tensor | None = None) -> GIDModel:
    """A freshly initialised model (statistics s = 1 unless given)."""
    model = GIDModel(config)
    if stats is not None:
        model.stats.copy_(check_stats(stats, config.num_frequencies))
    return model


def check_stats(stats: torch.Tensor, k: int) -> torch.Tensor:
    """The per-frequency scales s [K, 4] as float32 (ValueError unless finite, positive and [K, 4])."""
    stats = torch.as_tensor(stats, dtype=torch.float32)
    if stats.shape != (k, 4):
        raise ValueError(f"stats must be [K, 4] = [{k}, 4], got {tuple(stats.shape)}")
    if not torch.isfinite(stats).all() or (stats <= 0).any():
        raise ValueError("stats must be finite and positive")
    return stats
