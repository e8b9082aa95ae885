"""Training objectives of the GID prior: the VAE's (re-exported from ``vae.py``) and the denoiser's eps-MSE."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..schedules import ddpm_scheduler
from .config import GIDConfig
from .model import picture_condition
from .vae import vae_loss

__all__ = ["DenoisingLoss", "vae_loss"]


class DenoisingLoss:
    """GID Eq. 3 on VAE latents: || eps - eps_theta(z_n; n, frequency, picture) ||^2, with condition dropout.

    Stage 1 (``coordinate=False``): batches (picture [B, 3, H, W] in [0, 1], slices [B, 4, H, W], frequency [B]).
    Stage 2 (``coordinate=True``): batches (picture [B, 3, H, W], volumes [B, K, 4, H, W]); the K slices of a
    sample share one timestep and one condition and are denoised jointly (frequency attention on).
    The picture condition is replaced by the null condition (zeros) with probability
    ``config.unet.condition_dropout`` per sample, so that classifier-free guidance works at sampling time.

    Args:
        vae: the (frozen) spectral VAE; latents are posterior samples times ``config.latent_scale``.
        config: the model config (noise schedule, latent size, dropout).
        coordinate: stage 2 when True.

    Call: ``loss, extras = DenoisingLoss(...)(unet, batch)``; random numbers come from torch's global RNG.
    """

    def __init__(self, vae, config: GIDConfig, coordinate: bool):
        self.scheduler = ddpm_scheduler(config.diffusion)
        self.vae, self.config, self.coordinate = vae, config, coordinate

    def __call__(self, unet, batch) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        if self.coordinate:
            picture, volume = batch
            b, k = volume.shape[:2]
            slices = volume.reshape(b * k, *volume.shape[2:])
            frequency = torch.arange(k, device=slices.device).repeat(b)
        else:
            picture, slices, frequency = batch
            b, k = slices.shape[0], 1
        with torch.no_grad():
            z = self.vae.encode(slices.to(next(self.vae.parameters()).dtype)).latent_dist.sample()
            z = z.float() * cfg.latent_scale
            condition = picture_condition(picture, cfg.latent_size)
            keep = (torch.rand(b, device=z.device) >= cfg.unet.condition_dropout).float()
            condition = condition * keep[:, None, None, None]
        timesteps = torch.randint(0, cfg.diffusion.num_train_timesteps, (b,), device=z.device)
        timesteps = timesteps.repeat_interleave(k)
        condition = condition.repeat_interleave(k, dim=0)
        noise = torch.randn_like(z)
        noisy = self.scheduler.add_noise(z, noise, timesteps)
        eps = unet(noisy, timesteps, frequency, condition, num_frequencies=k if self.coordinate else None)
        return F.mse_loss(eps.float(), noise), {}
