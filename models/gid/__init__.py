"""Generative Image Dynamics: the learned prior over spectral volumes (VAE + frequency-coordinated U-Net).

Public API::

    GIDConfig.preset("full" | "small" | "tiny", **overrides)     configs (``config.py``)
    build_gid(config, stats=None) -> GIDModel                     a fresh model (``model.py``)
    save(path, model, config=None, stats=None)                    the "gid" checkpoint family (``checkpoint.py``)
    load(path, device="cpu", dtype=None) -> GIDModel              strict; CheckpointError on a bad file
    sample_spectrum(model, image, num_steps, guidance_scale, seed, loop_guidance, progress)
        -> complex [K, 2, H, W]
    sample_spectra(model, image, num_steps, guidance_scale, seeds, loop_guidance, progress)
        -> complex [B, K, 2, H, W], one sample per seed, denoised as one batch
    sample_spectral_volume(...) -> SpectralVolume

Training: ``python -m <package>.train.gid --videos DIR --out model.safetensors`` (``train/gid.py``).
"""
from .checkpoint import FAMILY, from_checkpoint, load, save
from .config import PRESETS, DiffusionConfig, GIDConfig, UNetConfig, VAEConfig, conventions
from .losses import DenoisingLoss
from .model import GIDModel, build_gid, picture_condition
from .sampler import (
    LOOP_RELATIVE,
    LOOP_WEIGHT,
    gid_endpoint_decoder,
    loop_scale,
    resize_spectrum,
    sample_spectra,
    sample_spectral_volume,
    sample_spectrum,
)
from .unet import FrequencyAttention, GIDUNet
from .vae import build_vae, multiscale_gradient_loss, vae_loss

__all__ = [
    "DenoisingLoss", "picture_condition",
    "PRESETS", "DiffusionConfig", "GIDConfig", "UNetConfig", "VAEConfig", "FAMILY", "GIDModel", "build_gid",
    "conventions", "from_checkpoint", "load", "save", "LOOP_RELATIVE", "LOOP_WEIGHT", "gid_endpoint_decoder", "loop_scale",
    "resize_spectrum",
    "sample_spectra", "sample_spectral_volume", "sample_spectrum", "FrequencyAttention", "GIDUNet", "build_vae",
    "multiscale_gradient_loss", "vae_loss",
]
