"""The long-animation paper's additions to SVD as one ``nn.Module`` (:class:`LongAnimationModel`).

Every addition is zero-initialised where it joins SVD, so a fresh model leaves SVD's output bit-identical:

- :class:`MotionEncoder`: a CNN from a dense motion field ``[N, 2, H, W]`` (pixels at the picture's size: each
  frame's displacement from frame 0, ``attach.MotionConditioning.encoder_input``; version-1 configs: the flow) to features at every latent level of SVD (``[N, C_l, h / 2^l, w / 2^l]``,
  ``h = H / 8``);
- :class:`MotionAttention` (Eq. 4), one per spatio-temporal transformer: attention over the frames of each
  latent position with Q and K from the latent, V from the motion features, out projection zero-initialised;
  its output is added to the temporal transformer block's (``attach.MotionTemporalBlock``);
- :class:`StrengthEmbedding` (Eq. 8's M_s): sinusoid -> MLP, last layer zero-initialised, added to SVD's
  timestep embedding (equivalent to concatenating it and widening the first layer that reads it);
- :class:`LoRA`: the static-camera LoRA (rank 16 by default) of every temporal attention linear layer
  (``config.LORA_TARGETS``), ``up`` zero-initialised; applied as ComfyUI's own LoRA weight patches
  (``W + alpha / rank * up @ down``) or, for training, as the same update through ``torch.nn.utils.parametrize``;
- :attr:`LongAnimationModel.refiner`: the refinement model T (``refiner.FlowRefiner``).

The module builds on the meta device and holds only parameters (no buffers).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import CONTEXT_TARGETS, LORA_TARGETS, LongAnimationConfig
from .refiner import FlowRefiner


def sinusoid(values: torch.Tensor, dim: int) -> torch.Tensor:
    """``[N]`` scalars -> ``[N, dim]`` sinusoidal features (diffusers' ``get_timestep_embedding``, cos first)."""
    from diffusers.models.embeddings import get_timestep_embedding

    return get_timestep_embedding(values.float().reshape(-1), dim, flip_sin_to_cos=True, downscale_freq_shift=0)


class MotionEncoder(nn.Module):
    """CNN: motion field ``[N, 2, H, W]`` px (a displacement or a flow) -> features ``[N, C_l, h_l, w_l]`` for each latent level l.

    The field is resampled to the latent size ``(h, w)`` (area average; its values rescaled to pixels at 8 x the
    latent size), divided by ``flow_scale``, then level 0 is a 3 x 3 conv stack and each further level a stride-2
    3 x 3 conv (sizes ``ceil(h / 2^l)``, as SVD's downsamplers) with its own stack.
    """

    def __init__(self, channels: tuple[int, ...], blocks: int, flow_scale: float) -> None:
        super().__init__()
        self.flow_scale = float(flow_scale)
        self.stem = nn.Conv2d(2, channels[0], 3, padding=1)
        self.levels = nn.ModuleList()
        for level, width in enumerate(channels):
            layers: list[nn.Module] = []
            if level:
                layers += [nn.SiLU(), nn.Conv2d(channels[level - 1], width, 3, stride=2, padding=1)]
            for _ in range(blocks):
                layers += [nn.SiLU(), nn.Conv2d(width, width, 3, padding=1)]
            self.levels.append(nn.Sequential(*layers))

    def forward(self, flows: torch.Tensor, latent_size: tuple[int, int]) -> list[torch.Tensor]:
        """Features per level for ``flows`` [N, 2, H, W] (px/frame at H x W) and the latent size (h, w)."""
        h, w = int(latent_size[0]), int(latent_size[1])
        height, width = flows.shape[-2:]
        x = flows.float()
        if (height, width) != (8 * h, 8 * w):
            x = F.interpolate(x, size=(8 * h, 8 * w), mode="bilinear", align_corners=False)
            x = x * torch.tensor([8 * w / width, 8 * h / height], device=x.device).view(1, 2, 1, 1)
        x = F.adaptive_avg_pool2d(x, (h, w)).to(self.stem.weight.dtype) / self.flow_scale
        x = self.stem(x)
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


class MotionAttention(nn.Module):
    """Eq. 4 over frames: ``softmax(Q K^T / sqrt(d)) V`` with Q, K from the latent and V from motion features.

    Args:
        channels: the spatio-temporal transformer's channels C (its temporal tokens' width).
        motion_channels: the motion encoder's channels at this block's level.
        head_channels: channels per head (SVD: 64).
    """

    def __init__(self, channels: int, motion_channels: int, head_channels: int) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = nn.LayerNorm(channels)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(channels, channels, bias=False)
        self.to_v = nn.Linear(motion_channels, channels, bias=False)
        self.to_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, x: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """``x`` [S, T, C] temporal tokens (S = videos x positions), ``motion`` [S, T, C_m] -> [S, T, C]."""
        s, t, c = x.shape
        n = self.norm(x)

        def heads(v: torch.Tensor) -> torch.Tensor:
            return v.view(s, t, self.heads, c // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.to_q(n)), heads(self.to_k(n)), heads(self.to_v(motion)))
        return self.to_out(out.transpose(1, 2).reshape(s, t, c))


class StrengthEmbedding(nn.Module):
    """M_s (px/frame) -> ``[N, time_embed_dim]``: sinusoid of ``M_s * scale`` then an MLP, last layer zero."""

    def __init__(self, model_channels: int, time_embed_dim: int, scale: float) -> None:
        super().__init__()
        self.model_channels, self.scale = model_channels, float(scale)
        self.linear_1 = nn.Linear(model_channels, time_embed_dim)
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)
        nn.init.zeros_(self.linear_2.weight)
        nn.init.zeros_(self.linear_2.bias)

    def forward(self, strength: torch.Tensor) -> torch.Tensor:
        features = sinusoid(strength * self.scale, self.model_channels).to(self.linear_1.weight)
        return self.linear_2(F.silu(self.linear_1(features)))


class LoRA(nn.Module):
    """One low-rank update ``alpha / rank * up @ down`` of a ``[out, in]`` weight (``up`` zero-initialised)."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        self.down = nn.Parameter(torch.empty(rank, in_features))
        self.up = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.down, a=5 ** 0.5)
        self.alpha, self.rank = float(alpha), int(rank)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def delta(self) -> torch.Tensor:
        """The weight update ``[out, in]`` (float32, as ComfyUI computes LoRA patches)."""
        return self.scale * (self.up.float() @ self.down.float())


def lora_name(target: str) -> str:
    """``attn1.to_out.0`` -> ``attn1_to_out_0`` (module names cannot hold dots)."""
    return target.replace(".", "_")


class LongAnimationModel(nn.Module):
    """The additions for the SVD named by ``config.svd`` (module docstring).

    Attributes:
        encoder: :class:`MotionEncoder`.
        adapters: one :class:`MotionAttention` per (spatio-temporal transformer, temporal block), index
            ``block * time_depth + depth``.
        strength: :class:`StrengthEmbedding`.
        lora: per adapter index, a ``ModuleDict`` of :class:`LoRA` keyed by :func:`lora_name` of
            :data:`~.config.LORA_TARGETS` (empty when ``lora_rank`` is 0).
        refiner: T (:class:`~.refiner.FlowRefiner`).
    """

    def __init__(self, config: LongAnimationConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else LongAnimationConfig()
        svd = config.svd
        self.encoder = MotionEncoder(config.encoder_channels, config.encoder_blocks, config.flow_scale)
        self.adapters = nn.ModuleList()
        self.lora = nn.ModuleList()
        for channels, level in zip(svd.block_channels, svd.block_levels):
            for _ in range(svd.time_depth):
                self.adapters.append(MotionAttention(channels, config.encoder_channels[level], svd.head_channels))
                self.lora.append(nn.ModuleDict(
                    {lora_name(t): LoRA(svd.context_dim if t in CONTEXT_TARGETS else channels, channels,
                                        config.lora_rank, config.lora_alpha)
                     for t in LORA_TARGETS} if config.lora_rank else {}))
        self.strength = StrengthEmbedding(svd.model_channels, svd.time_embed_dim, config.strength_scale)
        self.refiner = FlowRefiner(config.refiner)

    def refine(self, rough_flow: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """T: ``[B, 2, H, W]`` px/frame rough field and ``[B, 3, H, W]`` picture in [0, 1] -> refined field."""
        weight = next(self.refiner.parameters())
        return self.refiner(rough_flow.to(weight), image.to(weight)).float()

    def video_parameters(self) -> list[nn.Parameter]:
        """The video model's trainable parameters (everything but T, which ``train/refiner.py`` trains)."""
        refiner = {id(p) for p in self.refiner.parameters()}
        return [p for p in self.parameters() if id(p) not in refiner]


def parameter_counts(model: LongAnimationModel) -> dict[str, int]:
    """Parameters of each component (encoder, adapters, strength, lora, refiner) and their total."""
    counts = {name: sum(p.numel() for p in getattr(model, name).parameters())
              for name in ("encoder", "adapters", "strength", "lora", "refiner")}
    counts["total"] = sum(counts.values())
    return counts
