"""Motion-I2V's sparse-trajectory ControlNet: a trainable copy of the stage-1 encoder.

It copies the stage-1 U-Net's input convolution, time and stride embeddings, down blocks and middle block
(temporal modules included) and adds:

- ``controlnet_cond_embedding``: ``Conv3d(5 -> 512, (1,3,3)) -> SiLU -> Conv3d(512 -> 320, (1,3,3))``
  (the last one zero-initialised) on the 5-channel control ``cat([flow-VAE latent of the sparse flow (4,
  unscaled), sparse mask at latent size (1)])``, added after ``conv_in``;
- zero-initialised 1x1 convolutions on every skip (``controlnet_down_blocks``) and on the middle output
  (``controlnet_mid_block``). Their outputs are the residuals added to the stage-1 U-Net.

The released file stores these parameters under a ``controlnet.`` prefix (they were a submodule of the
stage-1 U-Net); :mod:`.convert` strips it.

Example:
    >>> import torch
    >>> from .config import tiny_config
    >>> net = MotionI2VControlNet(tiny_config("controlnet"))
    >>> down, mid = net(torch.randn(1, 8, 3, 8, 8), 500, torch.randn(1, 5, 16), strides=[8, 16, 24],
    ...                 control=torch.randn(1, 5, 3, 8, 8))
    >>> len(down), tuple(mid.shape)
    (4, (3, 32, 4, 4))
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import resolve_config
from .unet3d import (
    build_down_blocks,
    build_embeddings,
    build_mid_block,
    check_video_input,
    fold,
    frame_embedding,
    run_down_block,
    run_mid_block,
)


class ConditioningEmbedding(nn.Module):
    """``layers = [Conv3d(cin, hidden, (1,3,3)), SiLU, Conv3d(hidden, cout, (1,3,3))]``, last one zero-init.

    The (1, 3, 3) kernels never mix frames, so ``forward`` applies them per frame on ``[(B*F), cin, h, w]``.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int = 512) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv3d(in_channels, hidden_channels, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            nn.SiLU(),
            nn.Conv3d(hidden_channels, out_channels, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        )
        nn.init.zeros_(self.layers[2].weight)
        nn.init.zeros_(self.layers[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, act, last = self.layers
        x = F.conv2d(x, first.weight[:, :, 0], first.bias, padding=1)
        return F.conv2d(act(x), last.weight[:, :, 0], last.bias, padding=1)


def _zero_conv(channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(channels, channels, kernel_size=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class MotionI2VControlNet(nn.Module):
    """Sparse-trajectory ControlNet for the stage-1 U-Net.

    ``forward(sample, timestep, encoder_hidden_states, strides, control, scale=1.0)``:
        sample: ``[B, 8, F, h, w]``, the same input as the stage-1 U-Net.
        control: ``[B, 5, F, h, w]`` (see :func:`~.sampler.make_control`).
        Returns ``(down_residuals, mid_residual)``: a list of folded ``[(B*F), C, h', w']`` tensors, one per
        skip connection of the U-Net, and the middle-block residual, all multiplied by ``scale``.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = resolve_config("controlnet", config)
        self.config = cfg
        channels = cfg["block_out_channels"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], channels[0], kernel_size=3, padding=1)
        build_embeddings(self, cfg)
        self.controlnet_cond_embedding = ConditioningEmbedding(
            cfg["conditioning_channels"], channels[0], cfg["conditioning_hidden_channels"])
        self.down_blocks = build_down_blocks(cfg)
        zero = [_zero_conv(channels[0])]
        for level, ch in enumerate(channels):
            zero += [_zero_conv(ch) for _ in range(cfg["layers_per_block"])]
            if level < len(channels) - 1:
                zero.append(_zero_conv(ch))
        self.controlnet_down_blocks = nn.ModuleList(zero)
        self.mid_block = build_mid_block(cfg)
        self.controlnet_mid_block = _zero_conv(channels[-1])

    @classmethod
    def from_unet(cls, unet: nn.Module, config: dict[str, Any] | None = None) -> MotionI2VControlNet:
        """A ControlNet whose shared parts start as a copy of ``unet`` (a stage-1 :class:`MotionI2VUNet3D`)."""
        base = {k: v for k, v in unet.config.items() if k not in ("out_channels", "up_block_types")}
        net = cls({**base, **(config or {})})
        own = net.state_dict()
        shared = {k: v for k, v in unet.state_dict().items() if k in own and own[k].shape == v.shape}
        net.load_state_dict(shared, strict=False)
        return net

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float | int, encoder_hidden_states: torch.Tensor,
                strides: torch.Tensor | Sequence[float] | None, control: torch.Tensor,
                scale: float = 1.0) -> tuple[list[torch.Tensor], torch.Tensor]:
        cfg = self.config
        check_video_input(sample, cfg["in_channels"], encoder_hidden_states, cfg["cross_attention_dim"])
        batch, _, frames, h, w = sample.shape
        expected = (batch, cfg["conditioning_channels"], frames, h, w)
        if tuple(control.shape) != expected:
            raise ValueError(f"control must be {list(expected)} (flow latent + mask), got {tuple(control.shape)}")
        dtype = self.conv_in.weight.dtype
        emb = frame_embedding(self, timestep, batch, frames, strides, sample.device, dtype)
        context = encoder_hidden_states.to(dtype).repeat_interleave(frames, dim=0)

        x = self.conv_in(fold(sample.to(dtype))) + self.controlnet_cond_embedding(fold(control.to(dtype)))
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = run_down_block(block, x, emb, context, frames)
            skips.extend(block_skips)
        x = run_mid_block(self.mid_block, x, emb, context, frames)
        down = [conv(s) * scale for conv, s in zip(self.controlnet_down_blocks, skips)]
        return down, self.controlnet_mid_block(x) * scale
