"""GID's frequency-coordinated denoising U-Net, assembled from diffusers' blocks.

Input per frequency slice: the noisy 4-channel latent concatenated with the picture downsampled to the latent
size (3 channels in [-1, 1]; the null condition for classifier-free guidance is all zeros), 7 channels in all.
The timestep embedding (sinusoidal -> MLP, as in LDM) gets a learned frequency embedding added to it, so one
network denoises every frequency slice (GID Sec. 4.2, stage 1).

Every spatial layer (resnet, followed by self-attention on the coarser levels) is followed by a
:class:`FrequencyAttention` layer: the (B K) slices of a batch are regrouped '(b k) c h w -> (b h w) k c'
(einops) and attend to each other along the frequency axis. Its output projection starts at zero, so a model
with frequency attention switched on computes exactly what the stage-1 model did until stage 2 trains it.

Stage 1: ``forward(..., num_frequencies=None)`` (attention off), random single slices.
Stage 2: ``forward(..., num_frequencies=K)`` on the K slices of each sample jointly, all but the parameters
of the frequency attention frozen (:meth:`GIDUNet.frequency_attention_parameters`).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.utils.checkpoint
from einops import rearrange

from .config import GIDConfig


def sinusoidal_positions(length: int, channels: int, device=None, dtype=None) -> torch.Tensor:
    """[length, channels] fixed sinusoidal encoding of the positions 0 .. length - 1 (Vaswani et al.)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    half = channels // 2
    frequency = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
    angles = position * frequency[None]
    encoding = torch.cat([angles.sin(), angles.cos()], dim=1)
    if encoding.shape[1] < channels:
        encoding = torch.nn.functional.pad(encoding, (0, channels - encoding.shape[1]))
    return encoding.to(dtype or torch.float32)


class FrequencyAttention(nn.Module):
    """Self-attention across the K frequency slices of each sample, at every pixel; zero-initialised output.

    Input [(B K), C, H, W] -> same shape: x + proj(attention(norm(x) + position encoding over k)).
    """

    def __init__(self, channels: int, head_dim: int, norm_groups: int):
        super().__init__()
        from diffusers.models.attention_processor import Attention

        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        self.attention = Attention(query_dim=channels, heads=channels // head_dim, dim_head=head_dim, bias=True,
                                   out_bias=True)
        nn.init.zeros_(self.attention.to_out[0].weight)
        nn.init.zeros_(self.attention.to_out[0].bias)

    def forward(self, x: torch.Tensor, num_frequencies: int) -> torch.Tensor:
        bk, c, h, w = x.shape
        if bk % num_frequencies:
            raise ValueError(f"batch {bk} is not a multiple of num_frequencies {num_frequencies}")
        seq = rearrange(self.norm(x), "(b k) c h w -> (b h w) k c", k=num_frequencies)
        seq = seq + sinusoidal_positions(num_frequencies, c, device=x.device, dtype=seq.dtype)[None]
        out = self.attention(seq)
        return x + rearrange(out, "(b h w) k c -> (b k) c h w", k=num_frequencies, h=h, w=w)


class _Level(nn.Module):
    """One resolution level: [resnet, spatial attention or identity, frequency attention] x n, then resampling."""

    def __init__(self, resnets, attentions, freq_attentions, resample):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions)
        self.freq_attentions = nn.ModuleList(freq_attentions)
        self.resample = resample


class GIDUNet(nn.Module):
    """Noise predictor eps_theta(z_n; n, frequency, picture) for frequency slices of spectral-volume latents.

    Example:
        >>> from imagedynamics.models.gid.config import GIDConfig
        >>> cfg = GIDConfig.preset("tiny")
        >>> unet = GIDUNet(cfg)
        >>> z = torch.randn(2 * cfg.num_frequencies, 4, *cfg.latent_size)
        >>> k = torch.arange(cfg.num_frequencies).repeat(2)
        >>> unet(z, torch.tensor(500), k, torch.zeros(8, 3, *cfg.latent_size), num_frequencies=4).shape
        torch.Size([8, 4, 20, 32])
    """

    def __init__(self, config: GIDConfig):
        super().__init__()
        from diffusers.models.attention_processor import Attention
        from diffusers.models.downsampling import Downsample2D
        from diffusers.models.embeddings import TimestepEmbedding, Timesteps
        from diffusers.models.resnet import ResnetBlock2D
        from diffusers.models.upsampling import Upsample2D

        cfg = config.unet
        widths = tuple(cfg.block_out_channels)
        groups = cfg.norm_num_groups
        temb_dim = widths[0] * 4
        self.num_frequencies = config.num_frequencies
        self.gradient_checkpointing = False

        def resnet(cin, cout):
            return ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=temb_dim, groups=groups, eps=1e-5)

        def spatial(c, on):
            if not on:
                return nn.Identity()
            return Attention(c, heads=c // cfg.attention_head_dim, dim_head=cfg.attention_head_dim, eps=1e-5,
                             norm_num_groups=groups, residual_connection=True, bias=True, upcast_softmax=True,
                             _from_deprecated_attn_block=True)

        def freq(c):
            return FrequencyAttention(c, cfg.frequency_head_dim, groups)

        self.conv_in = nn.Conv2d(4 + 3, widths[0], 3, padding=1)
        self.time_proj = Timesteps(widths[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(widths[0], temb_dim)
        self.frequency_embedding = nn.Embedding(config.num_frequencies, temb_dim)

        self.down = nn.ModuleList()
        channels = widths[0]
        for i, width in enumerate(widths):
            resnets, attns, freqs = [], [], []
            for _ in range(cfg.layers_per_block):
                resnets.append(resnet(channels, width))
                attns.append(spatial(width, cfg.spatial_attention[i]))
                freqs.append(freq(width))
                channels = width
            last = i == len(widths) - 1
            down = None if last else Downsample2D(width, use_conv=True, out_channels=width, padding=1, name="op")
            self.down.append(_Level(resnets, attns, freqs, down))

        self.mid = _Level([resnet(widths[-1], widths[-1]), resnet(widths[-1], widths[-1])],
                          [spatial(widths[-1], True)], [freq(widths[-1])], None)

        self.up = nn.ModuleList()
        reversed_widths = list(reversed(widths))
        out_channels = reversed_widths[0]
        for i, width in enumerate(reversed_widths):
            prev_out = out_channels
            out_channels = width
            in_channels = reversed_widths[min(i + 1, len(widths) - 1)]
            level = len(widths) - 1 - i
            resnets, attns, freqs = [], [], []
            n = cfg.layers_per_block + 1
            for j in range(n):
                skip = in_channels if j == n - 1 else out_channels
                resnets.append(resnet((prev_out if j == 0 else out_channels) + skip, out_channels))
                attns.append(spatial(out_channels, cfg.spatial_attention[level]))
                freqs.append(freq(out_channels))
            up = None if level == 0 else Upsample2D(out_channels, use_conv=True, out_channels=out_channels)
            self.up.append(_Level(resnets, attns, freqs, up))

        self.norm_out = nn.GroupNorm(groups, widths[0], eps=1e-5)
        self.conv_out = nn.Conv2d(widths[0], 4, 3, padding=1)

    # ------------------------------------------------------------------ parameter groups
    def frequency_attention_parameters(self) -> list[nn.Parameter]:
        """The parameters trained in stage 2."""
        return [p for name, p in self.named_parameters() if ".freq_attentions." in name]

    def freeze_for_stage2(self) -> None:
        """Freeze everything but the frequency attention (GID's stage 2)."""
        trainable = {id(p) for p in self.frequency_attention_parameters()}
        for p in self.parameters():
            p.requires_grad_(id(p) in trainable)

    # ------------------------------------------------------------------ forward
    def _run(self, module, *args):
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def _layer(self, level: _Level, j: int, h, temb, num_frequencies):
        h = self._run(level.resnets[j], h, temb)
        if j < len(level.attentions) and not isinstance(level.attentions[j], nn.Identity):
            h = self._run(level.attentions[j], h)
        if num_frequencies is not None and j < len(level.freq_attentions):
            h = self._run(level.freq_attentions[j], h, num_frequencies)
        return h

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int | float, frequency: torch.Tensor,
                condition: torch.Tensor, num_frequencies: int | None = None) -> torch.Tensor:
        """Predict the noise of a batch of noisy frequency-slice latents.

        Args:
            sample: [N, 4, h, w] noisy latents; with ``num_frequencies = K`` ordered '(b k)' (K slices of one
                sample consecutive).
            timestep: scalar or [N] diffusion timesteps (0 .. num_train_timesteps - 1).
            frequency: [N] long, the frequency index 0 .. K - 1 of each slice.
            condition: [N, 3, h, w] the picture at latent size in [-1, 1] (zeros = null condition).
            num_frequencies: None for stage 1 (slices independent, frequency attention off), or K to
                coordinate each group of K consecutive slices.

        Returns:
            [N, 4, h, w] predicted noise.
        """
        if sample.ndim != 4 or sample.shape[1] != 4:
            raise ValueError(f"sample must be [N, 4, h, w], got {tuple(sample.shape)}")
        n = sample.shape[0]
        if condition.shape != (n, 3, *sample.shape[-2:]):
            raise ValueError(f"condition must be [{n}, 3, {sample.shape[-2]}, {sample.shape[-1]}], "
                             f"got {tuple(condition.shape)}")
        frequency = torch.as_tensor(frequency, device=sample.device).long().reshape(-1)
        if frequency.numel() != n:
            raise ValueError(f"frequency must hold {n} indices, got {frequency.numel()}")
        out_of_range = frequency.device.type == "cpu" and (
            int(frequency.min()) < 0 or int(frequency.max()) >= self.num_frequencies)
        if out_of_range:  # (checked on the CPU only: on a GPU it would synchronise every call)
            raise ValueError(f"frequency indices must be in [0, {self.num_frequencies - 1}]")
        if num_frequencies is not None and n % num_frequencies:
            raise ValueError(f"N = {n} is not a multiple of num_frequencies = {num_frequencies}")
        timestep = torch.as_tensor(timestep, device=sample.device).reshape(-1)
        if timestep.numel() == 1:
            timestep = timestep.expand(n)

        t_emb = self.time_proj(timestep).to(sample.dtype)
        temb = self.time_embedding(t_emb) + self.frequency_embedding(frequency).to(sample.dtype)

        h = self.conv_in(torch.cat([sample, condition.to(sample.dtype)], dim=1))
        skips = [h]
        for level in self.down:
            for j in range(len(level.resnets)):
                h = self._layer(level, j, h, temb, num_frequencies)
                skips.append(h)
            if level.resample is not None:
                h = level.resample(h)
                skips.append(h)

        h = self._layer(self.mid, 0, h, temb, num_frequencies)
        h = self._run(self.mid.resnets[1], h, temb)

        for level in self.up:
            for j in range(len(level.resnets)):
                h = torch.cat([h, skips.pop()], dim=1)
                h = self._layer(level, j, h, temb, num_frequencies)
            if level.resample is not None:
                h = level.resample(h, output_size=tuple(skips[-1].shape[-2:]))

        return self.conv_out(torch.nn.functional.silu(self.norm_out(h)))
