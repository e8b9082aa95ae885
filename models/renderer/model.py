"""A learned image-based renderer: softmax splatting of a feature pyramid and a synthesis decoder.

After GID section 3 ("image-based rendering") and LVMM's renderer R (Eq. 3, intention gating), written from the
papers with the pack's ops:

1. Encoder: a feature pyramid of I0 at 1, 1/2, 1/4, ... (``channels`` per level); the RGB picture is kept as
   extra channels of level 0. ``encoder="conv"``: a small conv net; ``encoder="resnet34"``: GID's ResNet-34
   (``backbones.ResNetPyramid``, torchvision's layout: random init or the user's own weights), whose stem and
   layers give levels 1 .. 5 (64, 64, 128, 256, 512 channels) under a full-resolution conv level 0.
2. Every level is softmax-splatted (``ops.splat.softsplat``) with the displacement resized to that level and its
   vectors rescaled (``ops.warp.resize_flow``), weighted by the metric resized to that level (GID: the mean motion
   magnitude; larger = in front; ``None`` = average splatting). Each level's bilinear *coverage* (the
   accumulated bilinear weight, not the exp-weighted sum) is passed on as an extra channel, so the decoder knows
   where the holes are; with ``fill_features`` the holes of the splatted features are first filled by push-pull,
   so that inside a hole the decoder gets the surrounding context at every level rather than zeros.
3. Optional intention map (LVMM, 1 = warp, 0 = synthesise): each level's splatted features are multiplied by the
   map resized to that level (area averaging, like the metric), and the map itself is an extra channel.
4. Base frame: the splatted RGB with its holes (coverage * intention < ``hole_threshold``) filled as the pixel
   renderer fills them: content entering through the border continued along the inverted flow
   (``ops.render.extend_border``, with ``extend_border``), the rest by multi-scale push-pull
   (``ops.fill.fill_holes``) -- exactly the pixel renderer's frame (``ops.render.render_frames``) when no
   intention is given.
5. Synthesis decoder: a U-Net-like decoder from the coarsest level up (bilinear upsampling, the level's
   splatted features concatenated, residual blocks), whose last convolution is zero-initialised and whose output
   is *added* to the base frame. An untrained renderer therefore reproduces the pixel renderer exactly, and
   training only has to learn corrections (disocclusions, collisions, the metric's mistakes).
   With ``guided_fill`` the decoder also sees a second candidate for the holes: I0 backward-warped with the
   inverted, push-pull-filled flow (``ops.warp.invert_flow``), which continues structures along the motion
   (e.g. content entering at the border under a pan) where push-pull only blurs.

No normalisation layers that depend on the batch or the picture (the ResNet's batch norms use frozen
statistics): the network is local (a pixel depends on a bounded neighbourhood), which keeps it independent of
the picture size and lets frames be rendered in chunks or crops with identical results.

Shapes: I0 [B, 3, H, W] in [0, 1]; displacement [B, 2, H, W] pixels (ch 0 = x right, ch 1 = y down; pixel p of I0
goes to p + d(p)); metric [B, 1, H, W]; intention [B, 1, H, W] in [0, 1]. Any H, W (levels use ceil(H / 2^l)).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from ...ops.fill import fill_holes
from ...ops.render import extend_border
from ...ops.splat import softsplat
from ...ops.warp import backward_warp, invert_flow, resize_flow
from .backbones import ResNetPyramid
from .config import ImageRendererConfig


class ResBlock(nn.Module):
    """x + conv3x3(SiLU(conv3x3(SiLU(x)))), no normalisation (keeps the network local)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


def _conv_act(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.SiLU())


def level_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """(H_l, W_l) of every pyramid level: ceil(H / 2^l), as stride-2 3x3 convolutions with padding 1 give."""
    sizes = [(int(height), int(width))]
    for _ in range(1, levels):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


class ImageRenderer(nn.Module):
    """Learned forward-splatting renderer (see the module docstring).

    Example:
        >>> model = ImageRenderer(ImageRendererConfig.preset("tiny"))
        >>> image, disp = torch.rand(2, 3, 24, 40), torch.randn(2, 2, 24, 40)
        >>> model(image, disp).shape
        torch.Size([2, 3, 24, 40])
    """

    def __init__(self, config: ImageRendererConfig | None = None):
        super().__init__()
        self.config = config = config or ImageRendererConfig()
        ch, dec = config.channels, config.decoder_channels
        self.gradient_checkpointing = False
        if config.encoder == "resnet34":
            self.encoder = ResNetPyramid(config.levels, ch[0])
        else:
            self.encoder = nn.ModuleList()
            for level, c in enumerate(ch):
                cin = 3 if level == 0 else ch[level - 1]
                self.encoder.append(nn.Sequential(_conv_act(cin, c, 1 if level == 0 else 2), _conv_act(c, c)))
        # decoder input per level: splatted features (+ RGB at level 0), coverage, intention; level 0 also gets
        # the base frame and (optionally) the flow-guided fill
        extra0 = 3 + 3 + (3 if config.guided_fill else 0)
        self.decoder_in = nn.ModuleList()
        self.decoder_blocks = nn.ModuleList()
        for level in range(config.levels):
            cin = ch[level] + 2 + (extra0 if level == 0 else 0)
            if level < config.levels - 1:
                cin += dec[level + 1]
            self.decoder_in.append(_conv_act(cin, dec[level]))
            self.decoder_blocks.append(nn.Sequential(*[ResBlock(dec[level]) for _ in range(config.blocks)]))
        self.out = nn.Conv2d(dec[0], 3, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    # ------------------------------------------------------------------------------------------------ encoder

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Feature pyramid of I0: [level 0: [B, 3 + channels[0], H, W], level l: [B, channels[l], H_l, W_l]].

        Compute it once per picture and reuse it for every frame (:meth:`render`).
        """
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be [B, 3, H, W], got "
                             f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
        if isinstance(self.encoder, ResNetPyramid):
            features = self.encoder(image)
        else:
            x, features = image, []
            for block in self.encoder:
                x = self._checkpointed(block, x)
                features.append(x)
        return [torch.cat([image.to(features[0].dtype), features[0]], 1), *features[1:]]

    def _checkpointed(self, module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        """``module(*args)``, recomputed in the backward pass when ``gradient_checkpointing`` is on (training)."""
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def load_encoder_weights(self, path) -> None:
        """Initialise the ResNet-34 encoder from the user's torchvision ResNet-34 weights file (ValueError for
        another encoder or a file that does not hold those weights)."""
        from .backbones import load_state_file

        if not isinstance(self.encoder, ResNetPyramid):
            raise ValueError("encoder weights can only be loaded into the resnet34 encoder")
        self.encoder.load_resnet_weights(load_state_file(path), name=str(path))

    def _decode_level(self, level: int) -> nn.Module:
        return nn.Sequential(self.decoder_in[level], self.decoder_blocks[level])

    # ------------------------------------------------------------------------------------------------ render

    def forward(self, image: torch.Tensor, displacement: torch.Tensor, metric: torch.Tensor | None = None,
                intention: torch.Tensor | None = None) -> torch.Tensor:
        """Render I0 moved by ``displacement``.

        Args:
            image: [B, 3, H, W] I0 in [0, 1].
            displacement: [B, 2, H, W] pixels, where each pixel of I0 goes (forward / reference-anchored).
            metric: [B, 1, H, W] softmax-splatting metric (larger = in front) or None (average splatting).
            intention: [B, 1, H, W] in [0, 1] (LVMM; 1 = warp, 0 = synthesise) or None (= all ones).

        Returns:
            [B, 3, H, W] frames (not clamped).
        """
        return self.render(image, self.encode(image), displacement, metric, intention)

    def render(self, image: torch.Tensor, pyramid: list[torch.Tensor], displacement: torch.Tensor,
               metric: torch.Tensor | None = None, intention: torch.Tensor | None = None,
               return_holes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Render N frames from an encoded picture; image / pyramid with batch 1 are broadcast to N.

        Args:
            image: [B, 3, H, W] I0 (B = N or 1).
            pyramid: :meth:`encode` of ``image``.
            displacement: [N, 2, H, W] pixels.
            metric: [B or N, 1, H, W] or None.
            intention: [N, 1, H, W] in [0, 1] or None.
            return_holes: also return the hole fraction [N] before filling (coverage < hole_threshold).

        Returns:
            frames [N, 3, H, W] (and hole fractions [N], float32).
        """
        cfg = self.config
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be [B, 3, H, W], got "
                             f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
        b, _, h, w = image.shape
        if (not isinstance(displacement, torch.Tensor) or displacement.ndim != 4 or displacement.shape[1] != 2
                or tuple(displacement.shape[-2:]) != (h, w)):
            raise ValueError(f"displacement must be [N, 2, {h}, {w}], got "
                             f"{tuple(displacement.shape) if isinstance(displacement, torch.Tensor) else displacement}")
        n = displacement.shape[0]
        if b not in (1, n):
            raise ValueError(f"image batch {b} must be 1 or the displacement's batch {n}")
        if len(pyramid) != cfg.levels:
            raise ValueError(f"pyramid must have {cfg.levels} levels, got {len(pyramid)}")
        if metric is not None and (metric.ndim != 4 or metric.shape[1] != 1 or metric.shape[0] not in (1, n)
                                   or tuple(metric.shape[-2:]) != (h, w)):
            raise ValueError(f"metric must be [1 or {n}, 1, {h}, {w}], got {tuple(metric.shape)}")
        if intention is not None and (intention.ndim != 4 or intention.shape[1] != 1
                                      or intention.shape[0] not in (1, n) or tuple(intention.shape[-2:]) != (h, w)):
            raise ValueError(f"intention must be [{n}, 1, {h}, {w}], got {tuple(intention.shape)}")

        dtype = pyramid[0].dtype
        device = pyramid[0].device
        flow = displacement.to(device, torch.float32)
        if metric is not None:
            metric = metric.to(device, torch.float32).expand(n, -1, -1, -1)
        if intention is not None:
            intention = intention.to(device, torch.float32).expand(n, -1, -1, -1)
        mode = "avg" if metric is None else "soft"
        sizes = level_sizes(h, w, cfg.levels)

        inputs = []
        for level, (feat, size) in enumerate(zip(pyramid, sizes)):
            if tuple(feat.shape[-2:]) != size:
                raise ValueError(f"pyramid level {level} is {tuple(feat.shape[-2:])}, expected {size}")
            flow_l = flow if level == 0 else resize_flow(flow, size)
            metric_l = None
            if metric is not None:
                metric_l = metric if level == 0 else F.adaptive_avg_pool2d(metric, size)
            splat, coverage = softsplat(feat.expand(n, -1, -1, -1), flow_l.to(feat.dtype),
                                        None if metric_l is None else metric_l.to(feat.dtype), mode=mode,
                                        return_weight=True)
            rgb = splat[:, :3]
            if cfg.fill_features:
                splat = fill_holes(splat, coverage, threshold=cfg.hole_threshold)
            if intention is None:
                gate = torch.ones_like(coverage)
            else:
                gate = intention if level == 0 else F.adaptive_avg_pool2d(intention, size)  # exact for ones
                gate = gate.to(splat.dtype)
                splat = splat * gate
            if level == 0:
                raw_coverage = coverage
                # where the intention map says "synthesise" (gate ~ 0) the base is filled like a hole
                keep = coverage if intention is None else coverage * gate
                inverse = None
                if cfg.guided_fill or cfg.extend_border:
                    with torch.no_grad():
                        inverse = invert_flow(flow, metric, threshold=cfg.hole_threshold)
                known = keep
                if cfg.extend_border:
                    rgb, known = extend_border(rgb, keep, image, inverse, cfg.hole_threshold)
                base = fill_holes(rgb, known, threshold=cfg.hole_threshold)
                extras = [base]
                if cfg.guided_fill:
                    with torch.no_grad():
                        guided = backward_warp(image.expand(n, -1, -1, -1).float(), inverse)
                    extras.append(guided.to(dtype))
                inputs.append(torch.cat([splat, coverage.clamp(0, 1), gate, *extras], 1))
            else:
                inputs.append(torch.cat([splat, coverage.clamp(0, 1), gate], 1))

        x = None
        for level in reversed(range(cfg.levels)):
            feats = inputs[level]
            if x is not None:
                x = F.interpolate(x, size=sizes[level], mode="bilinear", align_corners=False)
                feats = torch.cat([feats, x], 1)
            x = self._checkpointed(self._decode_level(level), feats)
        frames = base.to(dtype) + self.out(x)
        if return_holes:
            holes = (raw_coverage < cfg.hole_threshold).float().mean(dim=(1, 2, 3))
            return frames, holes
        return frames
