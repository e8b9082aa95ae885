"""The spectral VAE: diffusers' AutoencoderKL over one normalised frequency slice, and its training loss.

One frequency slice is the normalised real [4, H, W] tensor of one frequency of a spectral volume (channels
re_x, im_x, re_y, im_y, GID Eq. 4). The VAE compresses it to 4 latent channels at 1 / f of the resolution;
the same VAE serves every frequency (the frequency is not an input: the normalisation makes the slices alike).

Loss (GID Sec. 6): L1 reconstruction + 0.2 x multi-scale gradient consistency + 1e-6 x KL, each summed over
a slice and averaged over the batch as in LDM's autoencoder (so that the paper's weights keep their balance).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import VAEConfig

L1_WEIGHT = 1.0
GRADIENT_WEIGHT = 0.2
KL_WEIGHT = 1e-6


def build_vae(config: VAEConfig):
    """A diffusers AutoencoderKL with 4 input, 4 output and ``config.latent_channels`` latent channels.

    Example:
        >>> vae = build_vae(VAEConfig(block_out_channels=(16, 16), layers_per_block=1, norm_num_groups=8))
        >>> vae.encode(torch.zeros(2, 4, 40, 64)).latent_dist.mean.shape
        torch.Size([2, 4, 20, 32])
    """
    from diffusers import AutoencoderKL

    levels = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=4, out_channels=4, latent_channels=config.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_num_groups, mid_block_add_attention=config.mid_block_attention,
        scaling_factor=1.0, force_upcast=False)


def multiscale_gradient_loss(prediction: torch.Tensor, target: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Multi-scale gradient consistency (MegaDepth / MiDaS): L1 of the spatial gradients of the residual.

    At scales 1, 1/2, 1/4, ... (average pooling, up to ``scales`` levels while the map is at least 4 px) the
    forward differences of R = prediction - target are penalised: sum |dR/dx| + |dR/dy|.

    Args:
        prediction, target: [B, C, H, W].

    Returns:
        [B] per-sample sums over channels, pixels and scales.
    """
    if prediction.shape != target.shape or prediction.ndim != 4:
        raise ValueError(f"prediction and target must be equal [B, C, H, W], got {tuple(prediction.shape)} "
                         f"and {tuple(target.shape)}")
    residual = prediction - target
    total = residual.new_zeros(residual.shape[0])
    for level in range(scales):
        if level:
            if min(residual.shape[-2:]) < 8:
                break
            residual = F.avg_pool2d(residual, 2, ceil_mode=True)
        dx = residual[..., :, 1:] - residual[..., :, :-1]
        dy = residual[..., 1:, :] - residual[..., :-1, :]
        total = total + dx.abs().flatten(1).sum(1) + dy.abs().flatten(1).sum(1)
    return total


def vae_loss(vae, slices: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """GID's VAE objective on a batch of normalised frequency slices.

    Args:
        vae: the AutoencoderKL from :func:`build_vae` (possibly wrapped by accelerate; only called).
        slices: [B, 4, H, W] normalised slices.

    Returns:
        (loss, parts): the scalar loss to back-propagate, and per-element means of its parts for logging
        (``l1``: mean absolute reconstruction error in normalised units; ``grad``; ``kl``).
    """
    if slices.ndim != 4 or slices.shape[1] != 4:
        raise ValueError(f"slices must be [B, 4, H, W], got {tuple(slices.shape)}")
    posterior = vae.encode(slices).latent_dist
    reconstruction = vae.decode(posterior.sample(generator=generator)).sample
    l1 = (reconstruction - slices).abs().flatten(1).sum(1)
    grad = multiscale_gradient_loss(reconstruction, slices)
    kl = posterior.kl()
    loss = (L1_WEIGHT * l1 + GRADIENT_WEIGHT * grad + KL_WEIGHT * kl).mean()
    n = slices[0].numel()
    parts = {"l1": float(l1.detach().mean()) / n, "grad": float(grad.detach().mean()) / n,
             "kl": float(kl.detach().mean())}
    return loss, parts
