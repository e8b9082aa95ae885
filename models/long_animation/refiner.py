"""The long-animation paper's refinement model T: a rough arrow field -> a realistic flow field.

"Controllable Longer Image Animation" (Sec. 3.2) turns the user's arrows into a dense field by Gaussian
interpolation (Eqs. 5-7, ``ops.sparse_to_dense.gaussian_arrow_field``) and then "develops and constructs a
pixel-to-pixel refinement model T [after Isola et al., pix2pix], which transitions from a dense optical flow
field to a refined optical flow field". The paper gives no architecture; :class:`FlowRefiner` is a small U-Net
(diffusers' ``ResnetBlock2D`` at every level, skip connections, a global context at the bottom, since the
Gaussian's sigma is a third of the frame) that sees the rough field and the picture and adds a residual to the
field. Its last convolution is zero-initialised, so an untrained T is exactly the identity: the pack's
training-free path is unchanged until T is trained (``train/refiner.py``: pairs of a Gaussian field from sparse
samples of a video's DIS flow -> that flow; AdamW 5e-3 as the paper).

Units: flows are velocities in pixels per frame at the picture's H x W (channel 0 = x right, 1 = y down), the
pack's ``DYN_FLOW`` convention. The network works in resolution-free units, ``flow * flow_scale / max(H, W)``
(``flow_scale`` = 100: per cent of the long side per frame), and its residual is scaled back, so one T serves
every resolution; H and W need not be multiples of anything (the input is padded by replication to the U-Net's
multiple and the output cropped back).

Example:
    >>> refiner = FlowRefiner(RefinerConfig.preset("tiny"))
    >>> rough = torch.randn(1, 2, 37, 50)
    >>> torch.equal(refiner(rough, torch.rand(1, 3, 37, 50)), rough)   # identity at initialisation
    True
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MAX_LAYERS, check_int, check_widths, from_dict, stored_version, to_dict

__all__ = ["REFINER_PRESETS", "FlowRefiner", "RefinerConfig"]

REFINER_PRESETS = ("pix2pix", "default", "small", "tiny")


@dataclass
class RefinerConfig:
    """Architecture of :class:`FlowRefiner` (a sub-config of the long-animation family's config, also stored alone).

    Attributes:
        channels: feature channels per U-Net level; level l works at 1 / 2^l of the picture, so
            ``len(channels)`` levels (1 to 6) need the input padded to a multiple of 2^(levels - 1).
        blocks: residual blocks per level on the way down (and per level on the way up).
        norm_num_groups: GroupNorm groups of every block (divides every entry of ``channels``).
        flow_scale: the network's flow unit: it sees ``flow * flow_scale / max(H, W)`` (100: per cent of the
            long side per frame) and its residual is multiplied back by ``max(H, W) / flow_scale``.
        global_context: add a projection of the mean of the bottom level's features to every position (the
            arrows' Gaussians span a third of the frame, wider than the U-Net's receptive field at small depths).
    """

    CONFIG_VERSION: ClassVar[int] = 1
    CONFIG_NAME: ClassVar[str] = "refiner config"

    channels: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 1
    norm_num_groups: int = 8
    flow_scale: float = 100.0
    global_context: bool = True

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.validate()

    @property
    def levels(self) -> int:
        return len(self.channels)

    @property
    def multiple(self) -> int:
        """H and W are padded to a multiple of this (2^(levels - 1))."""
        return 2 ** (self.levels - 1)

    def validate(self) -> None:
        """ValueError when the config is inconsistent or beyond the limits of ``models/config.py``."""
        check_int("refiner.norm_num_groups", self.norm_num_groups, 1, 64)
        check_widths("refiner.channels", self.channels, divisor=self.norm_num_groups)
        check_int("refiner.blocks", self.blocks, 1, MAX_LAYERS)
        if isinstance(self.flow_scale, bool) or not isinstance(self.flow_scale, (int, float)) or not (
                0.0 < float(self.flow_scale) <= 1e6):
            raise ValueError(f"refiner.flow_scale must be a number in (0, 1e6], got {self.flow_scale!r}")
        if not isinstance(self.global_context, bool):
            raise ValueError(f"refiner.global_context must be true or false, got {self.global_context!r}")

    def to_dict(self, version: bool = False) -> dict[str, Any]:
        """JSON-shaped data; ``version=True`` puts ``"version"`` first (for a file holding this config alone; as a
        field of the family's config it is stored without one)."""
        return to_dict(self, self.CONFIG_VERSION if version else None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefinerConfig:
        """Inverse of :meth:`to_dict`; ValueError on unknown keys, wrong types, limits or a newer version."""
        stored_version(data, cls.CONFIG_NAME, cls.CONFIG_VERSION)
        return from_dict(cls, data, ignore=("version",), where="RefinerConfig")

    def replace(self, **changes) -> RefinerConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str = "default") -> RefinerConfig:
        """``pix2pix``: the paper's size class (Isola et al.'s U-Net widths 64 .. 512, 6 levels; 46.2 M parameters,
        pix2pix's generator has 54 M); ``default`` (32 .. 256, 4 levels, 3.0 M); ``small`` (16 .. 128, 0.76 M);
        ``tiny`` for tests (8, 16, 16; 28 k)."""
        presets = {"pix2pix": cls(channels=(64, 128, 256, 512, 512, 512), blocks=1, norm_num_groups=32),
                   "default": cls(),
                   "small": cls(channels=(16, 32, 64, 128), blocks=1, norm_num_groups=8),
                   "tiny": cls(channels=(8, 16, 16), blocks=1, norm_num_groups=4)}
        if name not in presets:
            raise ValueError(f"refiner preset must be one of {list(presets)}, got {name!r}")
        return presets[name]


def _block(in_channels: int, out_channels: int, groups: int) -> nn.Module:
    from diffusers.models.resnet import ResnetBlock2D

    return ResnetBlock2D(in_channels=in_channels, out_channels=out_channels, temb_channels=None, groups=groups,
                         eps=1e-6)


class FlowRefiner(nn.Module):
    """T: ``forward(rough_flow [B, 2, H, W] px/frame, image [B, 3, H, W] in [0, 1]) -> refined [B, 2, H, W]
    px/frame`` (module docstring). Identity at initialisation (zero last layer); builds on the meta device.

    Set ``gradient_checkpointing = True`` (``train.common.enable_gradient_checkpointing``) to recompute the
    blocks' activations in the backward pass.
    """

    def __init__(self, config: RefinerConfig | None = None):
        super().__init__()
        self.config = config = config if config is not None else RefinerConfig()
        config.validate()
        ch, groups = config.channels, config.norm_num_groups
        self.gradient_checkpointing = False
        self.stem = nn.Conv2d(2 + 3, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        for level, width in enumerate(ch):
            self.down_blocks.append(nn.ModuleList(_block(width, width, groups) for _ in range(config.blocks)))
            if level < config.levels - 1:
                self.downsamplers.append(nn.Conv2d(width, ch[level + 1], 3, stride=2, padding=1))
        self.context = nn.Conv2d(ch[-1], ch[-1], 1) if config.global_context else None
        self.upsamplers = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for level in reversed(range(config.levels - 1)):
            width = ch[level]
            self.upsamplers.append(nn.Conv2d(ch[level + 1], width, 3, padding=1))
            blocks = [_block(2 * width, width, groups)] + [_block(width, width, groups)
                                                            for _ in range(config.blocks - 1)]
            self.up_blocks.append(nn.ModuleList(blocks))
        self.norm_out = nn.GroupNorm(groups, ch[0], eps=1e-6)
        self.out = nn.Conv2d(ch[0], 2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _run(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(block, x, None, use_reentrant=False)
        return block(x, None)

    def forward(self, rough_flow: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The refined flow field [B, 2, H, W] in pixels per frame (the rough field plus T's residual).

        Args:
            rough_flow: [B, 2, H, W] pixels per frame (e.g. the Gaussian arrow field of Eqs. 5-7).
            image: [B, 3, H, W] the picture, values in [0, 1].
        """
        if rough_flow.ndim != 4 or rough_flow.shape[1] != 2:
            raise ValueError(f"rough_flow must be [B, 2, H, W], got {tuple(rough_flow.shape)}")
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[0] != rough_flow.shape[0] or (
                image.shape[-2:] != rough_flow.shape[-2:]):
            raise ValueError(f"image must be [B, 3, H, W] = [{rough_flow.shape[0]}, 3, {rough_flow.shape[-2]}, "
                             f"{rough_flow.shape[-1]}] like rough_flow, got {tuple(image.shape)}")
        height, width = rough_flow.shape[-2:]
        unit = float(self.config.flow_scale) / max(height, width)  # pixels per frame -> network units
        dtype = self.stem.weight.dtype
        x = torch.cat([rough_flow.to(dtype) * unit, image.to(dtype) * 2.0 - 1.0], dim=1)
        m = self.config.multiple
        pad_h, pad_w = (-height) % m, (-width) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        h = self.stem(x)
        skips = []
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = self._run(block, h)
            if level < len(self.downsamplers):
                skips.append(h)
                h = self.downsamplers[level](h)
        if self.context is not None:
            h = h + self.context(h.mean(dim=(-2, -1), keepdim=True))
        for upsample, blocks in zip(self.upsamplers, self.up_blocks):
            skip = skips.pop()
            h = upsample(F.interpolate(h, size=skip.shape[-2:], mode="nearest"))
            h = torch.cat([h, skip], dim=1)
            for block in blocks:
                h = self._run(block, h)
        residual = self.out(F.silu(self.norm_out(h)))[..., :height, :width]
        return rough_flow + residual.to(rough_flow.dtype) / unit
