"""Small building blocks shared by LVMM's networks: conv blocks, residual blocks, an hourglass (U-Net)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with at most ``groups`` groups that divide ``channels``."""
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels)


class ConvBlock(nn.Sequential):
    """conv k x k (stride s) -> GroupNorm -> SiLU."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2),
                         group_norm(out_channels, groups), nn.SiLU())


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv(SiLU(GN(conv(SiLU(GN(x))))))."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(group_norm(channels, groups), nn.SiLU(), nn.Conv2d(channels, channels, 3, 1, 1),
                                  group_norm(channels, groups), nn.SiLU(), nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Hourglass(nn.Module):
    """A small U-Net: one conv block per level on the way down (2x average pooling between levels), one per
    level on the way up (bilinear 2x upsampling, concatenated skip). Output: ``widths[0]`` channels at the
    input size, which must be divisible by 2 ** (len(widths) - 1).

    Example:
        >>> net = Hourglass(3, (8, 16), groups=4)
        >>> net(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8, 8])
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], groups: int):
        super().__init__()
        self.down = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.down.append(ConvBlock(prev, w, groups))
            prev = w
        self.up = nn.ModuleList(ConvBlock(widths[i + 1] + widths[i], widths[i], groups)
                                for i in reversed(range(len(widths) - 1)))
        self.out_channels = widths[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.avg_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x
