"""Hole filling by multi-scale push-pull (Gortler et al., "The Lumigraph", 1996, pull-push interpolation).

Push: build a pyramid of coverage-weighted sums by 2x2 pooling down to 1x1, where each level's weight is clipped
to 1 (a coarse pixel with enough support is fully trusted). Pull: from the coarsest level up, every pixel keeps
its own normalised colour in proportion to its (clipped) weight and takes the rest from the 2x upsampled coarser
level. Known pixels are copied back unchanged at the end, so only holes change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["fill_holes"]


def _pool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 sum pooling; odd sizes are zero-padded on the bottom / right (padding carries no weight)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    return F.avg_pool2d(x, 2) * 4.0


def _up2(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Exact 2x bilinear upsampling (pixel-centre aligned), cropped to ``size`` (undoes :func:`_pool2`'s pad)."""
    up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return up[..., :size[0], :size[1]]


def fill_holes(image: torch.Tensor, coverage: torch.Tensor, threshold: float = 1e-3) -> torch.Tensor:
    """Fill every pixel with ``coverage < threshold`` by multi-scale push-pull; leave all others exactly unchanged.

    Known pixels (``coverage >= threshold``) enter the pyramid with weight ``min(coverage, 1)``, so barely covered
    pixels at splat borders influence the fill less than solid ones. The fill is smooth (bilinear pull) and
    reaches any hole size (the pyramid goes down to 1x1). If an image has no known pixel at all, it is returned
    as zeros (there is nothing to fill from). Computed in float32 (float64 for float64 input); output in
    ``image``'s dtype. Non-finite coverage counts as a hole.

    Args:
        image: [B, C, H, W] values (e.g. a softsplat output).
        coverage: [B, 1, H, W] accumulated splat weight (e.g. ``softsplat(..., return_weight=True)[1]``).
        threshold: coverage under which a pixel is a hole.

    Returns:
        [B, C, H, W], no hole left (unless an image had no known pixel).

    Example:
        >>> img = torch.tensor([[[[1.0, 0.0, 0.0, 3.0]]]])
        >>> cov = torch.tensor([[[[1.0, 0.0, 0.0, 1.0]]]])
        >>> fill_holes(img, cov)[0, 0, 0].tolist()
        [1.0, 1.5, 2.5, 3.0]
    """
    if not isinstance(image, torch.Tensor) or not isinstance(coverage, torch.Tensor):
        raise TypeError("image and coverage must be tensors")
    if image.ndim != 4:
        raise ValueError(f"image must be [B, C, H, W], got shape {tuple(image.shape)}")
    b, _, h, w = image.shape
    if coverage.ndim != 4 or tuple(coverage.shape) != (b, 1, h, w):
        raise ValueError(f"coverage must be [B, 1, H, W] = {(b, 1, h, w)}, got {tuple(coverage.shape)}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
    cov = coverage.to(dtype)
    known = cov >= threshold  # False for NaN
    if bool(known.all()):
        return image.clone()
    weight = torch.where(known, cov.clamp(max=1.0), 0.0)
    values = torch.where(known, image.to(dtype) * weight, 0.0)  # premultiplied; whatever is in a hole is ignored

    # Push: levels of (premultiplied values, weight <= 1), from half size down to 1x1.
    levels = []
    v, wt = values, weight
    while wt.shape[-2] > 1 or wt.shape[-1] > 1:
        v, wt = _pool2(v), _pool2(wt)
        scale = 1.0 / wt.clamp(min=1.0)  # normalise where the summed weight exceeds 1
        v, wt = v * scale, wt * scale
        levels.append((v, wt))

    # Pull: colour = own normalised value blended over the upsampled coarser colour by the weight. At full size
    # the holes (weight 0) take the upsampled colour and every other pixel keeps its own value.
    v, wt = levels.pop() if levels else (values, weight)
    colour = torch.where(wt > 0, v / wt.clamp(min=torch.finfo(dtype).tiny), 0.0)
    for v, wt in reversed(levels):
        colour = v + (1.0 - wt) * _up2(colour, v.shape[-2:])
    colour = _up2(colour, (h, w)) if (h, w) != tuple(colour.shape[-2:]) else colour
    filled = torch.where(known, image, colour.to(image.dtype))
    return filled
