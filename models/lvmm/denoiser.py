"""Motion denoiser eps_theta (LVMM Sec. 3.2.3, Eq. 10) and the image condition encoder that feeds it.

**Denoiser.** A conditional 3D U-Net (VDM, Ho et al. 2022) over K latent frames: diffusers'
``UNet3DConditionModel`` (spatial resnets + temporal convs, spatial / cross / temporal attention; four blocks
down and four up at the paper's setting). Its input is x_t [B, C, K, h, w] concatenated along channels with
the visual component v = z0 repeated over the K frames (Eq. 6; the network still predicts the noise of z, not
of u = z - v) and, by default, one channel holding (k + 1) / K_train for latent frame k (diffusers' temporal
attention has no positional encoding; the channel tells each frame how far it is from I0).

**Condition encoder.** The paper encodes I0 (and a text) with ImageBind (1024-d tokens for cross-attention;
non-commercial licence, not available here). The self-contained encoder is a small CNN trained with the
denoiser and shipped in the same checkpoint: strided conv blocks on I0 at the flow resolution, pooled to grid x
grid tokens plus one global token, projected to ``embed_dim`` with learned position embeddings. Instead or in
addition, the user's CLIP vision and CLIP-L text embeddings (``clip.py``) each give one token through a trained
linear layer, as ImageBind's image and text tokens do in the paper. The null condition of classifier-free
guidance is all-zero tokens (the authors' code), used with probability ``condition_dropout`` in training.

Example:
    >>> from .config import LVMMConfig
    >>> cfg = LVMMConfig.preset("tiny")
    >>> enc, den = ConditionEncoder(cfg.encoder), MotionDenoiser(cfg)
    >>> tokens = enc(torch.rand(2, 3, 16, 16))
    >>> eps = den(torch.randn(2, 4, 4, 4, 4), torch.tensor([10, 500]), torch.randn(2, 4, 4, 4), tokens)
    >>> tokens.shape, eps.shape
    (torch.Size([2, 5, 32]), torch.Size([2, 4, 4, 4, 4]))
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import EncoderConfig, LVMMConfig
from .layers import ConvBlock


class ConditionEncoder(nn.Module):
    """I0 [B, 3, h, w] in [0, 1] (+ CLIP embeddings) -> tokens y [B, num_tokens, embed_dim] (``EncoderConfig``).

    Token order: the CNN's global token and grid x grid tokens (``own_tokens``), then the CLIP image token, then
    the CLIP text token; every token gets a learned position embedding, then a LayerNorm.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        if config.own_tokens:
            layers, prev = [], 3
            for w in config.widths:
                layers.append(ConvBlock(prev, w, config.norm_num_groups, stride=2))
                prev = w
            self.net = nn.Sequential(*layers)
            self.grid = int(config.grid)
            self.proj = nn.Linear(prev, config.embed_dim)
            self.global_proj = nn.Linear(prev, config.embed_dim)
        if config.clip_vision_dim:
            self.clip_vision_proj = nn.Linear(config.clip_vision_dim, config.embed_dim)
        if config.clip_text_dim:
            self.clip_text_proj = nn.Linear(config.clip_text_dim, config.embed_dim)
        self.position = nn.Parameter(torch.randn(1, config.num_tokens, config.embed_dim) * 0.02)
        self.norm = nn.LayerNorm(config.embed_dim)

    def forward(self, image: torch.Tensor, clip_vision: torch.Tensor | None = None,
                clip_text: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens of a batch: ``image`` [B, 3, h, w] at the flow size (the CNN's input), ``clip_vision`` [B, Dv] and
        ``clip_text`` [B, Dt] the CLIP embeddings the config asks for (ValueError when one is missing or of
        another width)."""
        cfg = self.config
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be [B, 3, h, w], got {tuple(image.shape)}")
        b = image.shape[0]
        tokens = []
        if cfg.own_tokens:
            f = self.net(image * 2 - 1)
            local = nn.functional.adaptive_avg_pool2d(f, self.grid).flatten(2).transpose(1, 2)  # [B, g*g, C]
            tokens += [self.global_proj(f.mean(dim=(2, 3))).unsqueeze(1), self.proj(local)]
        for name, dim, value in (("clip_vision", cfg.clip_vision_dim, clip_vision),
                                 ("clip_text", cfg.clip_text_dim, clip_text)):
            if not dim:
                continue
            if value is None:
                raise ValueError(f"this LVMM is conditioned on a {name.replace('_', ' ')} embedding ({dim} wide): "
                                 f"pass {name}")
            if value.ndim != 2 or tuple(value.shape) not in ((b, dim), (1, dim)):
                raise ValueError(f"{name} must be [{b}, {dim}], got {tuple(value.shape)}")
            layer = getattr(self, f"{name}_proj")
            tokens.append(layer(value.to(layer.weight.dtype).expand(b, -1)).unsqueeze(1))
        return self.norm(torch.cat(tokens, dim=1) + self.position)


class MotionDenoiser(nn.Module):
    """eps_theta(x_t, t, y; v): [B, C, K, h, w] -> [B, C, K, h, w] (see the module docstring)."""

    def __init__(self, config: LVMMConfig):
        super().__init__()
        from diffusers import UNet3DConditionModel

        d = config.denoiser
        levels = d.num_levels
        c = config.latent_channels
        self.latent_channels = c
        self.trained_frames = int(config.num_frames)
        self.frame_position = bool(d.frame_position)
        self.unet = UNet3DConditionModel(
            sample_size=config.latent_size[0], in_channels=2 * c + int(self.frame_position), out_channels=c,
            down_block_types=("CrossAttnDownBlock3D",) * (levels - 1) + ("DownBlock3D",),
            up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * (levels - 1),
            block_out_channels=tuple(d.block_out_channels), layers_per_block=d.layers_per_block,
            norm_num_groups=d.norm_num_groups, cross_attention_dim=config.encoder.embed_dim,
            attention_head_dim=d.num_heads)  # diffusers' UNet3D reads this as the number of heads

    def forward(self, sample: torch.Tensor, timestep, visual: torch.Tensor, tokens: torch.Tensor,
                frame_offset: int = 0) -> torch.Tensor:
        """Noise estimate.

        Args:
            sample: x_t [B, C, K, h, w] (any K).
            timestep: scalar or [B].
            visual: v = z0 [B, C, h, w].
            tokens: y [B, N, D] (zeros for the null condition).
            frame_offset: index of ``sample``'s first latent frame minus 1 (0 = it is z_1).
        """
        if sample.ndim != 5 or sample.shape[1] != self.latent_channels:
            raise ValueError(f"sample must be [B, {self.latent_channels}, K, h, w], got {tuple(sample.shape)}")
        b, _, k, h, w = sample.shape
        if visual.shape != (b, self.latent_channels, h, w):
            raise ValueError(f"visual must be {(b, self.latent_channels, h, w)}, got {tuple(visual.shape)}")
        parts = [sample, visual.to(sample.dtype).unsqueeze(2).expand(-1, -1, k, -1, -1)]
        if self.frame_position:
            pos = (torch.arange(k, device=sample.device, dtype=sample.dtype) + 1 + frame_offset) / self.trained_frames
            parts.append(pos.view(1, 1, k, 1, 1).expand(b, 1, k, h, w))
        t = torch.as_tensor(timestep, device=sample.device)
        if t.ndim == 0:
            t = t.expand(b)
        return self.unet(torch.cat(parts, dim=1), t, encoder_hidden_states=tokens.to(sample.dtype)).sample
