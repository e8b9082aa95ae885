"""The GID motion prior as one module (VAE + U-Net + normalisation statistics) and its checkpoint format.

Checkpoint: family ``"gid"``, one ``.safetensors`` file (``models/checkpoint.py``). Tensors: ``vae.*``,
``unet.*`` and ``stats`` ([K, 4] per-frequency scales s of GID Eq. 4, channels re_x, im_x, re_y, im_y).
Metadata config JSON: ``{"model": GIDConfig.to_dict(), "stats": s as nested lists, "conventions": {...}}``
where the conventions say what the spectra mean: T, fps, resolution, FFT normalisation, pixel units.
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import CheckpointError, load_checkpoint, load_state_dict_strict, save_checkpoint
from ..schedules import ddim_scheduler, ddpm_scheduler
from .config import GIDConfig
from .unet import GIDUNet
from .vae import build_vae

FAMILY = "gid"
FORMAT_VERSION = 1


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

    def sampling_scheduler(self):
        """diffusers DDIMScheduler with this model's noise schedule (deterministic, eta = 0 by default)."""
        return ddim_scheduler(self.config.diffusion)


def build_gid(config: GIDConfig, stats: torch.Tensor | None = None) -> GIDModel:
    """A freshly initialised model (statistics s = 1 unless given)."""
    model = GIDModel(config)
    if stats is not None:
        model.stats.copy_(_check_stats(stats, config.num_frequencies))
    return model


def _check_stats(stats: torch.Tensor, k: int) -> torch.Tensor:
    stats = torch.as_tensor(stats, dtype=torch.float32)
    if stats.shape != (k, 4):
        raise ValueError(f"stats must be [K, 4] = [{k}, 4], got {tuple(stats.shape)}")
    if not torch.isfinite(stats).all() or (stats <= 0).any():
        raise ValueError("stats must be finite and positive")
    return stats


def conventions(config: GIDConfig) -> dict:
    """What the predicted spectra mean (stored with every checkpoint)."""
    return {
        "num_frames": config.num_frames, "fps": config.fps, "width": config.width, "height": config.height,
        "num_frequencies": config.num_frequencies, "fft_norm": config.norm,
        "fft": "torch.fft.rfft over time of the reference-anchored displacement [T, 2, H, W] (frame 0 included)",
        "units": "pixels at width x height; channel 0 = x (right), 1 = y (down)",
        "normalisation": "GID Eq. 4 per frequency and real channel (re_x, im_x, re_y, im_y): "
                         f"sign(S) sqrt(|S / s|), s = {config.percentile:g}th percentile of |S| over the data",
    }


def save_gid(path: str | os.PathLike, model: GIDModel, config: GIDConfig | None = None,
             stats: torch.Tensor | None = None) -> None:
    """Write a ``gid`` checkpoint: weights, statistics, config and conventions (atomic)."""
    config = config or model.config
    stats = _check_stats(model.stats.detach().cpu() if stats is None else stats, config.num_frequencies)
    state = {k: v for k, v in model.state_dict().items() if k != "stats"}
    state["stats"] = stats
    meta = {"model": config.to_dict(), "stats": stats.tolist(), "conventions": conventions(config)}
    save_checkpoint(path, state, FAMILY, meta, version=FORMAT_VERSION)


def load_gid(path: str | os.PathLike, device: str | torch.device = "cpu",
             dtype: torch.dtype | None = None) -> GIDModel:
    """Read a ``gid`` checkpoint, build its model, load strictly; returns the model in eval mode.

    Raises:
        CheckpointError: unreadable or truncated file, another family, an invalid config, or tensors that do
            not match the config (the message names the first offending keys).
    """
    name = os.path.basename(os.fspath(path))
    _, meta, state = load_checkpoint(path, expected_family=FAMILY, device="cpu")
    try:
        config = GIDConfig.from_dict(meta["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: the GID config in its metadata is invalid ({exc})") from exc
    model = GIDModel(config)
    load_state_dict_strict(model, state, name=name)
    if "stats" in meta and torch.tensor(meta["stats"]).shape != model.stats.shape:
        raise CheckpointError(f"{name}: metadata stats {torch.tensor(meta['stats']).shape} do not match "
                              f"[K, 4] = {tuple(model.stats.shape)}")
    model.requires_grad_(False)
    model.to(device)
    if dtype is not None:
        model.vae.to(dtype)
        model.unet.to(dtype)
    return model.eval()
