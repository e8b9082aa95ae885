"""Motion-I2V's video U-Net: SD 1.5 spatial blocks (diffusers) with temporal modules after each block layer.

Stage 1 (flow prediction) is this U-Net with 8 input channels ``[image latent (4), noisy flow latent (4)]``,
4 output channels, and a per-frame *frame-stride* embedding added to the time embedding:
``emb[f] = time_embedding(sinusoid(t)) + stride_embedding(sinusoid(stride[f]))`` (the same 320-channel
sinusoid serves both). Stage 2 (rendering) is the same architecture with 4 input channels, no stride
embedding, and motion-augmented temporal attention driven by flows (see :mod:`.temporal`); the pack ships
only its motion modules (:mod:`.stage2`) and builds this class for stage 2 only as a reference and in tests.

Spatial layers run on frames folded into the batch (``[(B*F), C, h, w]``, video-major); this is exactly the
"inflated" per-frame convolutions and GroupNorms of the official model. Inside every block the order is
``resnet -> cross-attention -> temporal module`` per layer, then the down/up-sampler; in the middle block
``resnet -> attention -> temporal module -> resnet``.

Example:
    >>> import torch
    >>> from .config import tiny_config
    >>> unet = MotionI2VUNet3D(tiny_config("stage1"))
    >>> x = torch.randn(1, 8, 3, 8, 8)                  # [B, C, F, h, w]
    >>> ctx = torch.randn(1, 5, 16)
    >>> unet(x, 999, ctx, strides=[8, 16, 24]).shape
    torch.Size([1, 4, 3, 8, 8])
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2DCrossAttn, get_down_block, get_up_block
from torch import nn

from .config import resolve_config
from .temporal import reference_pairing, temporal_module_from_config


def build_embeddings(module: nn.Module, cfg: dict[str, Any]) -> None:
    """Add ``time_proj``, ``time_embedding`` and (stage 1) ``stride_embedding`` to ``module``."""
    c0 = cfg["block_out_channels"][0]
    module.time_proj = Timesteps(c0, cfg["flip_sin_to_cos"], cfg["freq_shift"])
    module.time_embedding = TimestepEmbedding(c0, 4 * c0)
    module.stride_embedding = TimestepEmbedding(c0, 4 * c0) if cfg["use_stride_embedding"] else None


def _has_motion(cfg: dict[str, Any], level: int) -> bool:
    return 2 ** level in cfg["motion_module_resolutions"]


def build_down_blocks(cfg: dict[str, Any]) -> nn.ModuleList:
    """diffusers down blocks, each with a ``motion_modules`` list (one per resnet) when its level has them."""
    blocks = nn.ModuleList()
    channels = cfg["block_out_channels"]
    out_ch = channels[0]
    for level, block_type in enumerate(cfg["down_block_types"]):
        in_ch, out_ch = out_ch, channels[level]
        block = get_down_block(
            block_type, num_layers=cfg["layers_per_block"], in_channels=in_ch, out_channels=out_ch,
            temb_channels=4 * channels[0], add_downsample=level < len(channels) - 1, resnet_eps=cfg["norm_eps"],
            resnet_act_fn=cfg["act_fn"], num_attention_heads=cfg["num_attention_heads"],
            attention_head_dim=out_ch // cfg["num_attention_heads"], resnet_groups=cfg["norm_num_groups"],
            cross_attention_dim=cfg["cross_attention_dim"], downsample_padding=cfg["downsample_padding"])
        if _has_motion(cfg, level):
            block.motion_modules = nn.ModuleList(
                [temporal_module_from_config(out_ch, cfg) for _ in range(cfg["layers_per_block"])])
        blocks.append(block)
    return blocks


def build_mid_block(cfg: dict[str, Any]) -> nn.Module:
    ch = cfg["block_out_channels"][-1]
    block = UNetMidBlock2DCrossAttn(
        in_channels=ch, temb_channels=4 * cfg["block_out_channels"][0], resnet_eps=cfg["norm_eps"],
        resnet_act_fn=cfg["act_fn"], output_scale_factor=cfg["mid_block_scale_factor"],
        cross_attention_dim=cfg["cross_attention_dim"], num_attention_heads=cfg["num_attention_heads"],
        resnet_groups=cfg["norm_num_groups"])
    if cfg["motion_module_mid_block"]:
        block.motion_modules = nn.ModuleList([temporal_module_from_config(ch, cfg)])
    return block


def build_up_blocks(cfg: dict[str, Any]) -> nn.ModuleList:
    blocks = nn.ModuleList()
    rev = list(reversed(cfg["block_out_channels"]))
    levels = len(rev)
    out_ch = rev[0]
    for i, block_type in enumerate(cfg["up_block_types"]):
        prev_ch, out_ch = out_ch, rev[i]
        in_ch = rev[min(i + 1, levels - 1)]
        block = get_up_block(
            block_type, num_layers=cfg["layers_per_block"] + 1, in_channels=in_ch, out_channels=out_ch,
            prev_output_channel=prev_ch, temb_channels=4 * cfg["block_out_channels"][0],
            add_upsample=i < levels - 1, resnet_eps=cfg["norm_eps"], resnet_act_fn=cfg["act_fn"],
            resolution_idx=i, num_attention_heads=cfg["num_attention_heads"],
            attention_head_dim=out_ch // cfg["num_attention_heads"], resnet_groups=cfg["norm_num_groups"],
            cross_attention_dim=cfg["cross_attention_dim"])
        if _has_motion(cfg, levels - 1 - i):
            block.motion_modules = nn.ModuleList(
                [temporal_module_from_config(out_ch, cfg) for _ in range(cfg["layers_per_block"] + 1)])
        blocks.append(block)
    return blocks


def _cross_attention(attn: nn.Module, h: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    return attn(h, encoder_hidden_states=context, return_dict=False)[0]


def run_down_block(block: nn.Module, h: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, num_frames: int,
                   flows: torch.Tensor | None = None,
                   pairing: str | torch.Tensor = "official") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One down block on folded frames; returns the output and its skip features."""
    attentions = getattr(block, "attentions", None)
    motion = getattr(block, "motion_modules", None)
    skips = []
    for i, resnet in enumerate(block.resnets):
        h = resnet(h, temb)
        if attentions is not None:
            h = _cross_attention(attentions[i], h, context)
        if motion is not None:
            h = motion[i](h, num_frames, flows, pairing)
        skips.append(h)
    for sampler in block.downsamplers or ():
        h = sampler(h)
        skips.append(h)
    return h, skips


def run_mid_block(block: nn.Module, h: torch.Tensor, temb: torch.Tensor, context: torch.Tensor, num_frames: int,
                  flows: torch.Tensor | None = None, pairing: str | torch.Tensor = "official") -> torch.Tensor:
    motion = getattr(block, "motion_modules", None)
    h = block.resnets[0](h, temb)
    for i, (attention, resnet) in enumerate(zip(block.attentions, block.resnets[1:])):
        h = _cross_attention(attention, h, context)
        if motion is not None:
            h = motion[i](h, num_frames, flows, pairing)
        h = resnet(h, temb)
    return h


def run_up_block(block: nn.Module, h: torch.Tensor, skips: list[torch.Tensor], temb: torch.Tensor,
                 context: torch.Tensor, num_frames: int, flows: torch.Tensor | None = None,
                 upsample_size: tuple[int, int] | None = None,
                 pairing: str | torch.Tensor = "official") -> torch.Tensor:
    """One up block; consumes ``len(block.resnets)`` skips from the end of ``skips`` (in place)."""
    attentions = getattr(block, "attentions", None)
    motion = getattr(block, "motion_modules", None)
    for i, resnet in enumerate(block.resnets):
        h = resnet(torch.cat([h, skips.pop()], dim=1), temb)
        if attentions is not None:
            h = _cross_attention(attentions[i], h, context)
        if motion is not None:
            h = motion[i](h, num_frames, flows, pairing)
    for sampler in block.upsamplers or ():
        h = sampler(h, upsample_size)
    return h


def frame_timesteps(timestep: torch.Tensor | float | int, batch: int, num_frames: int, device: torch.device,
                    reference_timestep: float | None = None) -> torch.Tensor:
    """``[(B*F)]`` float timesteps, one per frame (video-major): the step's, and ``reference_timestep`` for frame 0.

    Example:
        >>> frame_timesteps(961, batch=2, num_frames=3, device="cpu", reference_timestep=1).tolist()
        [1.0, 961.0, 961.0, 1.0, 961.0, 961.0]
    """
    t = torch.as_tensor(timestep, device=device).float().reshape(-1)
    if t.numel() == 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ValueError(f"{t.numel()} timesteps for a batch of {batch}")
    t = t.repeat_interleave(num_frames)
    if reference_timestep is not None:
        t = t.clone()
        t[0::num_frames] = float(reference_timestep)
    return t


def frame_embedding(module: nn.Module, timestep: torch.Tensor | float | int, batch: int, num_frames: int,
                    strides: torch.Tensor | Sequence[float] | None, device: torch.device,
                    dtype: torch.dtype, reference_timestep: float | None = None) -> torch.Tensor:
    """Per-frame embedding ``[(B*F), 4*C0]``: time embedding (+ stride embedding when the module has one).

    Args:
        timestep: scalar or ``[B]`` diffusion timestep(s).
        strides: ``[F]`` or ``[B, F]`` frame strides (stage 1, e.g. :data:`~.constants.STRIDES`), else None.
        reference_timestep: stage 2: frame 0 of every video is embedded at this timestep (the official
            U-Net's ``t = 1`` for the clean reference latent, :data:`~.constants.REFERENCE_TIMESTEP`).
    """
    t = frame_timesteps(timestep, batch, num_frames, device, reference_timestep)
    emb = module.time_embedding(module.time_proj(t).to(dtype))
    if module.stride_embedding is not None:
        if strides is None:
            raise ValueError("this model has a frame-stride embedding: pass strides ([F] or [B, F])")
        s = torch.as_tensor(strides, device=device).float()
        if s.ndim == 1:
            s = s[None].expand(batch, -1)
        if s.shape != (batch, num_frames):
            raise ValueError(f"strides must be [F] or [B, F] with F={num_frames}, B={batch}; got {tuple(s.shape)}")
        emb = emb + module.stride_embedding(module.time_proj(s.reshape(-1)).to(dtype))
    elif strides is not None:
        raise ValueError("this model has no frame-stride embedding; strides must be None")
    return emb


def fold(sample: torch.Tensor) -> torch.Tensor:
    """``[B, C, F, h, w]`` -> ``[(B*F), C, h, w]``."""
    b, c, f, h, w = sample.shape
    return sample.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def unfold(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``[(B*F), C, h, w]`` -> ``[B, C, F, h, w]``."""
    bf, c, h, w = x.shape
    return x.reshape(bf // num_frames, num_frames, c, h, w).permute(0, 2, 1, 3, 4)


def check_video_input(sample: torch.Tensor, channels: int, context: torch.Tensor, cross_dim: int) -> None:
    if sample.ndim != 5 or sample.shape[1] != channels:
        raise ValueError(f"sample must be [B, {channels}, F, h, w], got {tuple(sample.shape)}")
    if context.ndim != 3 or context.shape[-1] != cross_dim or context.shape[0] != sample.shape[0]:
        raise ValueError(f"encoder_hidden_states must be [B={sample.shape[0]}, L, {cross_dim}], "
                         f"got {tuple(context.shape)}")


class MotionI2VUNet3D(nn.Module):
    """Stage-1 flow U-Net (or, with ``use_stride_embedding=False`` and 4 inputs, the stage-2 U-Net).

    Args:
        config: a config from :func:`~.config.full_config` / :func:`~.config.tiny_config` ("stage1") or
            :func:`~.config.stage2_unet_config`; missing keys take full-size values.

    ``forward(sample, timestep, encoder_hidden_states, strides=None, control=None, flows=None)``:
        sample: ``[B, in_channels, F, h, w]`` (stage 1: ``cat([image latent, noisy flow latent], dim=1)``).
        timestep: scalar or ``[B]``.
        encoder_hidden_states: ``[B, L, cross_attention_dim]`` text embeddings.
        strides: stage 1 frame strides ``[F]`` or ``[B, F]``.
        control: optional ``(down_residuals, mid_residual)`` from :class:`~.controlnet.MotionI2VControlNet`,
            folded ``[(B*F), C, h', w']`` tensors added to the skips and the middle output.
        flows: stage 2 only: ``[F, 2, H, W]`` or ``[Bf, F, 2, H, W]`` pixel displacements from frame 0.
        pairing: stage 2: whose reference features each video warps (:func:`~.temporal.reference_pairing`).
        reference_timestep: stage 2: embed frame 0 at this timestep (official: 1) instead of ``timestep``.
        Returns ``[B, out_channels, F, h, w]`` (the predicted noise).
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = resolve_config("stage1", config)
        self.config = cfg
        c0 = cfg["block_out_channels"][0]
        self.conv_in = nn.Conv2d(cfg["in_channels"], c0, kernel_size=3, padding=1)
        build_embeddings(self, cfg)
        self.down_blocks = build_down_blocks(cfg)
        self.mid_block = build_mid_block(cfg)
        self.up_blocks = build_up_blocks(cfg)
        self.conv_norm_out = nn.GroupNorm(cfg["norm_num_groups"], c0, eps=cfg["norm_eps"])
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(c0, cfg["out_channels"], kernel_size=3, padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float | int, encoder_hidden_states: torch.Tensor,
                strides: torch.Tensor | Sequence[float] | None = None,
                control: tuple[Sequence[torch.Tensor], torch.Tensor] | None = None,
                flows: torch.Tensor | None = None, pairing: str | torch.Tensor = "official",
                reference_timestep: float | None = None) -> torch.Tensor:
        cfg = self.config
        check_video_input(sample, cfg["in_channels"], encoder_hidden_states, cfg["cross_attention_dim"])
        batch, _, frames = sample.shape[:3]
        dtype = self.conv_in.weight.dtype
        x = fold(sample.to(dtype))
        emb = frame_embedding(self, timestep, batch, frames, strides, x.device, dtype, reference_timestep)
        pairing = reference_pairing(batch, frames, pairing)         # resolved once for every motion module
        context = encoder_hidden_states.to(dtype).repeat_interleave(frames, dim=0)

        h = self.conv_in(x)
        skips = [h]
        for block in self.down_blocks:
            h, block_skips = run_down_block(block, h, emb, context, frames, flows, pairing)
            skips.extend(block_skips)
        if control is not None:
            down_residuals, mid_residual = control
            if len(down_residuals) != len(skips):
                raise ValueError(f"{len(down_residuals)} ControlNet residuals for {len(skips)} skip connections")
            skips = [s + r.to(s.dtype) for s, r in zip(skips, down_residuals)]
        h = run_mid_block(self.mid_block, h, emb, context, frames, flows, pairing)
        if control is not None:
            h = h + mid_residual.to(h.dtype)
        for i, block in enumerate(self.up_blocks):
            size = None
            if i < len(self.up_blocks) - 1:
                nxt = skips[-len(block.resnets) - 1]
                if tuple(nxt.shape[-2:]) != (2 * h.shape[-2], 2 * h.shape[-1]):
                    size = tuple(nxt.shape[-2:])
            h = run_up_block(block, h, skips, emb, context, frames, flows, size, pairing)
        h = self.conv_out(self.conv_act(self.conv_norm_out(h)))
        return unfold(h, frames)
