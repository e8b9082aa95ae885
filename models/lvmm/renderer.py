"""Neural image renderer R (LVMM Sec. 3.1.1, Eq. 3; Johnson et al. 2016 layout per the supplement).

R(I0 | delta, omega) -> I_k:

* Feature pyramid of I0: a 7x7 conv (``outer_kernel``) at H x W (F0), two strided 3x3 convs to H/2 (F1) and H/4 (F2).
* Eq. 3 at every level: F'_l = W(F_l, delta_l) (.) omega_l, with delta_l, omega_l the flow (vectors rescaled,
  ``ops.warp.resize_flow``) and intention map resized to the level, W backward warping (``ops.warp``).
* Residual blocks on F'_2 (paper: six), then two upsampling blocks; at each finer level the decoder's feature
  fills in where omega is low: h_l = F'_l + (1 - omega_l) up(h_{l+1}) (the occlusion-aware blend of the
  authors' code: omega = 1 keeps the warped feature, omega = 0 synthesises).
* Output: W(I0, delta_0) + (1 - omega_0) conv(h_0): where omega = 1 the frame is I0 warped, where omega < 1
  the decoder corrects (synthesises) it from the warped context. (An implementation decision: the last conv is
  zero-initialised, so an untrained R is a plain backward warp, which is what P + R training starts from, and
  an imprecise omega costs nothing until the decoder has learnt something to add.)

Frames are rendered from I0 at any size (fully convolutional; sizes that are not multiples of 4 are padded by
replication and cropped back). The pyramid can be computed once and reused for many frames
(:meth:`NeuralRenderer.pyramid`), so rendering T frames in chunks keeps memory flat in T.

Example:
    >>> from .config import RendererConfig
    >>> r = NeuralRenderer(RendererConfig(widths=(8, 8, 8), num_res_blocks=1, norm_num_groups=4))
    >>> image = torch.rand(1, 3, 16, 16)
    >>> out = r(image, torch.zeros(1, 2, 4, 4), torch.ones(1, 1, 4, 4))   # no motion, warp everywhere
    >>> torch.allclose(out, image, atol=1e-5)
    True
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...ops.warp import backward_warp, resize_flow
from .config import RendererConfig
from .layers import ConvBlock, ResBlock


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


class NeuralRenderer(nn.Module):
    """R: I0 [B, 3, H, W] in [0, 1] + backward flow [B, 2, h, w] px (any h x w) + omega [B, 1, h, w] -> [B, 3, H, W]."""

    def __init__(self, config: RendererConfig):
        super().__init__()
        c0, c1, c2 = config.widths
        g = config.norm_num_groups
        self.enc0 = ConvBlock(3, c0, g, kernel_size=config.outer_kernel)
        self.enc1 = ConvBlock(c0, c1, g, stride=2)
        self.enc2 = ConvBlock(c1, c2, g, stride=2)
        self.res = nn.Sequential(*[ResBlock(c2, g) for _ in range(config.num_res_blocks)])
        self.up1 = ConvBlock(c2, c1, g)
        self.fuse1 = ConvBlock(c1, c1, g)
        self.up0 = ConvBlock(c1, c0, g)
        self.fuse0 = ConvBlock(c0, c0, g)
        self.out = nn.Conv2d(c0, 3, config.outer_kernel, 1, config.outer_kernel // 2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def pyramid(self, image: torch.Tensor) -> list[torch.Tensor]:
        """[F0, F1, F2] of I0 (padded to a multiple of 4 first); reuse it across frames."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be [B, 3, H, W], got {tuple(image.shape)}")
        x, _ = _pad_to(image, 4)
        f0 = self.enc0(x)
        f1 = self.enc1(f0)
        return [f0, f1, self.enc2(f1)]

    def forward(self, image: torch.Tensor, flow: torch.Tensor, intention: torch.Tensor,
                pyramid: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Render frames from I0.

        Args:
            image: I0 [B, 3, H, W] in [0, 1] (B = 1 is broadcast to the flow's batch).
            flow: backward flow [N, 2, h, w] in pixels at h x w (N = B, or any N when B = 1).
            intention: omega [N, 1, h, w] in [0, 1].
            pyramid: optional :meth:`pyramid` of ``image``.

        Returns:
            [N, 3, H, W].
        """
        if flow.ndim != 4 or flow.shape[1] != 2:
            raise ValueError(f"flow must be [N, 2, h, w], got {tuple(flow.shape)}")
        if intention.ndim != 4 or intention.shape[1] != 1 or intention.shape[0] != flow.shape[0]:
            raise ValueError(f"intention must be [N, 1, h, w] with N = {flow.shape[0]}, got {tuple(intention.shape)}")
        n = flow.shape[0]
        if image.shape[0] not in (1, n):
            raise ValueError(f"image batch {image.shape[0]} must be 1 or the flow's batch {n}")
        padded, (h, w) = _pad_to(image, 4)
        hp, wp = padded.shape[-2:]
        feats = self.pyramid(image) if pyramid is None else pyramid

        def level(size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
            # flow / omega on the unpadded frame, resized to this level's share of it, then padded
            fh, fw = round(size[0] * h / hp), round(size[1] * w / wp)
            fl = resize_flow(flow, (fh, fw))
            om = F.interpolate(intention.float(), size=(fh, fw), mode="bilinear", align_corners=False,
                               antialias=fh < intention.shape[-2])  # float32: no bf16 antialiasing on CPUs
            if (fh, fw) != tuple(size):
                fl = F.pad(fl, (0, size[1] - fw, 0, size[0] - fh), mode="replicate")
                om = F.pad(om, (0, size[1] - fw, 0, size[0] - fh), mode="replicate")
            return fl.to(image.dtype), om.clamp(0, 1).to(image.dtype)

        def warp(feature: torch.Tensor, fl: torch.Tensor) -> torch.Tensor:
            return backward_warp(feature.expand(n, -1, -1, -1), fl, padding_mode="border")

        f0, f1, f2 = feats
        fl2, om2 = level(f2.shape[-2:])
        fl1, om1 = level(f1.shape[-2:])
        fl0, om0 = level(f0.shape[-2:])
        h2 = self.res(warp(f2, fl2) * om2)
        prev1 = self.up1(F.interpolate(h2, size=f1.shape[-2:], mode="bilinear", align_corners=False))
        h1 = self.fuse1(warp(f1, fl1) * om1 + (1 - om1) * prev1)
        prev0 = self.up0(F.interpolate(h1, size=f0.shape[-2:], mode="bilinear", align_corners=False))
        h0 = self.fuse0(warp(f0, fl0) * om0 + (1 - om0) * prev0)
        warped = warp(padded, fl0)
        out = warped + (1 - om0) * self.out(h0)
        return out[..., :h, :w]
