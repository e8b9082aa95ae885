"""Motion encoder E / decoder D (LVMM Sec. 3.1.2): a KL autoencoder over p = [delta, omega], and its losses.

The body is diffusers' ``AutoencoderKL`` (LDM's KL-regularised autoencoder, continuous 4-channel latent,
LVMM supplement Sec. 2.1) with 3 input / output channels. Its input is p normalised by the model
(``LVMM.normalize_motion``): [delta / flow_scale, 2 omega - 1].

**Linear shortcut** (an implementation decision): :class:`MotionVAE` adds to the posterior mean a 1x1
projection of p average-pooled by the latent factor f, and to the decoder's output a 1x1 projection of z
upsampled bilinearly. The body's last layers start at zero, so an untrained VAE is the linear code
"p pooled f x f" (which already keeps the low-frequency flow that dominates the motion) and training adds
what the linear code misses. This makes the small models of the tests usable after a few hundred steps instead
of tens of thousands, and keeps latent differences u = z_k - z_0 (Eq. 6) close to linear in the flow, which is
what cross-scene motion transfer (Fig. 4) relies on.

Eq. 4's flow regularisation is the MSE between p and D(E(p)); the supplement adds a KL term (weight 1e-6) and a
multi-scale gradient consistency loss (:func:`multiscale_gradient_loss`, as in LFDM); the pixel regularisation
(the frame rendered by the frozen R from D(E(p)) against I_k) lives in the trainer, which has R.

Example:
    >>> from .config import LVMMConfig
    >>> vae = MotionVAE(LVMMConfig.preset("tiny"))
    >>> p = torch.zeros(1, 3, 32, 32); p[:, 0] = 0.5                        # a uniform flow
    >>> z = vae.encode(p).mean
    >>> z.shape, round(float(vae.decode(z).detach()[0, 0, 16, 16]), 4)      # the linear code keeps it exactly
    (torch.Size([1, 4, 4, 4]), 0.5)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import LVMMConfig


class MotionVAE(nn.Module):
    """E / D over normalised p [B, 3, h, w] <-> z [B, C, h / f, w / f] (unscaled latents).

    ``encode(p)`` returns diffusers' ``DiagonalGaussianDistribution`` (``.mean``, ``.sample()``, ``.kl()``);
    ``decode(z)`` returns p [B, 3, h, w].
    """

    def __init__(self, config: LVMMConfig):
        super().__init__()
        from diffusers import AutoencoderKL

        v = config.vae
        levels = len(v.block_out_channels)
        self.factor = v.downsample_factor
        self.latent_channels = c = v.latent_channels
        self.ae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                                up_block_types=("UpDecoderBlock2D",) * levels,
                                block_out_channels=tuple(v.block_out_channels), layers_per_block=v.layers_per_block,
                                latent_channels=c, norm_num_groups=v.norm_num_groups,
                                sample_size=config.flow_size[0])
        self.shortcut_in = nn.Conv2d(3, c, 1)
        self.shortcut_out = nn.Conv2d(c, 3, 1)
        with torch.no_grad():
            eye = torch.eye(max(c, 3))
            self.shortcut_in.weight.copy_(eye[:c, :3].view(c, 3, 1, 1))
            self.shortcut_out.weight.copy_(eye[:3, :c].view(3, c, 1, 1))
            self.shortcut_in.bias.zero_()
            self.shortcut_out.bias.zero_()
            self.ae.quant_conv.weight[:c].zero_()  # the body's mean starts at 0 ...
            self.ae.quant_conv.bias[:c].zero_()
            self.ae.quant_conv.weight[c:].mul_(0.01)  # ... with a narrow posterior (std ~ 0.02)
            self.ae.quant_conv.bias[c:].fill_(-8.0)
            self.ae.decoder.conv_out.weight.zero_()  # ... and the body's decoder output at 0
            self.ae.decoder.conv_out.bias.zero_()

    def encode(self, p: torch.Tensor):
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        if p.ndim != 4 or p.shape[1] != 3:
            raise ValueError(f"p must be [B, 3, h, w], got {tuple(p.shape)}")
        moments = self.ae.quant_conv(self.ae.encoder(p))
        linear = self.shortcut_in(F.avg_pool2d(p, self.factor))
        pad = torch.zeros_like(linear)
        return DiagonalGaussianDistribution(moments + torch.cat([linear, pad], dim=1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(f"z must be [B, {self.latent_channels}, h, w], got {tuple(z.shape)}")
        body = self.ae.decode(z).sample
        linear = F.interpolate(self.shortcut_out(z), size=body.shape[-2:], mode="bilinear", align_corners=False)
        return body + linear


def build_motion_vae(config: LVMMConfig) -> MotionVAE:
    """The motion VAE of ``config``."""
    return MotionVAE(config)


def multiscale_gradient_loss(prediction: torch.Tensor, target: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Mean L1 difference of horizontal and vertical finite differences at ``scales`` dyadic scales.

    Example:
        >>> x = torch.rand(1, 3, 16, 16)
        >>> round(float(multiscale_gradient_loss(x, x)), 6), round(float(multiscale_gradient_loss(x + 1.0, x)), 6)
        (0.0, 0.0)
    """
    if prediction.shape != target.shape or prediction.ndim != 4:
        raise ValueError(f"prediction and target must be [B, C, H, W] of one shape, got {tuple(prediction.shape)} "
                         f"and {tuple(target.shape)}")
    total = prediction.new_zeros(())
    p, t = prediction.float(), target.float()
    used = 0
    for s in range(scales):
        if s:
            if min(p.shape[-2:]) < 4:
                break
            p, t = F.avg_pool2d(p, 2), F.avg_pool2d(t, 2)
        dx = (p[..., :, 1:] - p[..., :, :-1]) - (t[..., :, 1:] - t[..., :, :-1])
        dy = (p[..., 1:, :] - p[..., :-1, :]) - (t[..., 1:, :] - t[..., :-1, :])
        total = total + dx.abs().mean() + dy.abs().mean()
        used += 1
    return total / max(used, 1)


def motion_vae_loss(vae: MotionVAE, p: torch.Tensor, config: LVMMConfig, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Flow part of Eq. 4 on normalised p [B, 3, h, w].

    Returns:
        (loss, reconstruction D(E(p)) [B, 3, h, w] (from a posterior sample), parts for logging).
    """
    posterior = vae.encode(p)
    z = posterior.sample(generator=generator)
    recon = vae.decode(z)
    mse = F.mse_loss(recon.float(), p.float())
    grad = multiscale_gradient_loss(recon, p)
    kl = posterior.kl().mean()
    v = config.vae
    loss = mse + v.gradient_weight * grad + v.kl_weight * kl
    return loss, recon, {"flow_mse": float(mse.detach()), "grad": float(grad.detach()), "kl": float(kl.detach())}
