"""Measurements of looping animations on rendered frames and on motion: sharpness, frame-to-frame steps, the seam.

A good loop keeps the moving region as sharp in every frame as in frame 0 (a two-way cross-fade of two renders can
double-expose it half-way), and its wrap step (last frame -> first) looks like any other step: a ratio near 1 to
the typical step. A ratio near 0 is a hold (the motion stops at the seam), a ratio well above 1 a pop.

Frames are [T, C, H, W] in [0, 1]; motion is reference-anchored displacement [T, 2, H, W] in pixels (channel 0 = x,
1 = y). Masks are [H, W], [1, H, W] or [1, 1, H, W], non-zero = inside (fractional values weight the pixels);
None = the whole frame. Pure torch and kornia: no ComfyUI.
"""
from __future__ import annotations

import torch

__all__ = ["region_sharpness", "sharpness_ratio", "frame_steps", "seam_ratio", "motion_steps", "motion_seam_ratio",
           "motion_amplitude", "moving_region"]


def _check_sequence(x: torch.Tensor, name: str, channels: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        want = f"[T, {channels}, H, W]" if channels is not None else "[T, C, H, W]"
        raise ValueError(f"{name} must be {want}, got {shape}")
    if x.shape[0] < 1:
        raise ValueError(f"{name} has no frames")
    return x.float()


def _weights(mask: torch.Tensor | None, height: int, width: int, device) -> torch.Tensor | None:
    """[1, 1, H, W] float weights from a mask, or None for the whole frame."""
    if mask is None:
        return None
    m = mask.float()
    while m.ndim < 4:
        m = m[None]
    if m.ndim != 4 or m.shape[:2] != (1, 1) or tuple(m.shape[-2:]) != (height, width):
        raise ValueError(f"mask must be [H, W], [1, H, W] or [1, 1, H, W] with H, W = {height}, {width}, "
                         f"got {tuple(mask.shape)}")
    m = m.to(device)
    if float(m.sum()) <= 0:
        raise ValueError("mask is empty: nothing to measure")
    return m


def _mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Per-frame mean of values [T, C, H, W] (over C, H, W), weighted by [1, 1, H, W] weights if given -> [T]."""
    if weights is None:
        return values.mean(dim=(1, 2, 3))
    return (values * weights).sum(dim=(1, 2, 3)) / (weights.sum() * values.shape[1])


def region_sharpness(frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean gradient magnitude of each frame inside ``mask``: a ghosted (double-exposed) or blurred frame scores less.

    The gradient is kornia's normalised Sobel gradient of the frame's grey level (mean of the channels), replicate-
    padded; its length is averaged.

    Args:
        frames: [T, C, H, W] in [0, 1].
        mask: where to measure (see the module docstring), or None for the whole frame.

    Returns:
        [T] float32, grey levels per pixel (about 0 on a flat frame).

    Example:
        >>> grain = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> ghost = 0.5 * (grain + grain.roll(3, dims=-1))   # a double exposure: gradients partly cancel
        >>> s = region_sharpness(torch.cat([grain, ghost])); bool(s[1] < 0.8 * s[0])
        True

    A single isolated edge exposed twice at half contrast keeps its mean gradient (the two half edges add up): the
    measure sees ghosting where the two copies overlap, that is on texture.
    """
    import kornia

    x = _check_sequence(frames, "frames")
    grey = x.mean(dim=1, keepdim=True)
    gradient = kornia.filters.spatial_gradient(grey, mode="sobel", normalized=True)  # [T, 1, 2, H, W]
    magnitude = gradient.norm(dim=2)  # no epsilon under the root: a flat region measures exactly 0
    return _mean(magnitude, _weights(mask, *x.shape[-2:], x.device))


def sharpness_ratio(frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Each frame's :func:`region_sharpness` divided by frame 0's: [T], 1 at frame 0; the loop's worst frame is the
    minimum. Raises if frame 0 is flat inside the mask (nothing to compare to)."""
    s = region_sharpness(frames, mask)
    if float(s[0]) <= 1e-8:
        raise ValueError("frame 0 has no texture inside the mask: sharpness ratios are undefined")
    return s / s[0]


def frame_steps(frames: torch.Tensor, wrap: bool = True, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference of each frame to the next, inside ``mask``.

    Args:
        frames: [T, C, H, W] in [0, 1].
        wrap: add the loop's wrap step (frame T-1 -> frame 0) as the last entry.
        mask: where to measure, or None for the whole frame.

    Returns:
        [T] with ``wrap`` (entry t = |F_{t+1 mod T} - F_t|), else [T - 1]; grey levels per pixel and channel.

    Example:
        >>> ramp = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2) / 10
        >>> [round(v, 3) for v in frame_steps(ramp).tolist()]
        [0.1, 0.1, 0.1, 0.3]
    """
    x = _check_sequence(frames, "frames")
    weights = _weights(mask, *x.shape[-2:], x.device)
    following = torch.cat([x[1:], x[:1]]) if wrap else x[1:]
    return _mean((following - x[:following.shape[0]]).abs(), weights)


def _ratio(steps: torch.Tensor, typical: str) -> float:
    if typical not in ("median", "mean"):
        raise ValueError(f"typical must be 'median' or 'mean', got {typical!r}")
    if steps.shape[0] < 3:
        raise ValueError("a seam ratio needs at least 3 frames (the wrap step and two others)")
    typical = float(steps[:-1].median() if typical == "median" else steps[:-1].mean())
    if typical <= 0:
        return float("inf") if float(steps[-1]) > 0 else 1.0
    return float(steps[-1]) / typical


def seam_ratio(frames: torch.Tensor, mask: torch.Tensor | None = None, typical: str = "median") -> float:
    """The loop's wrap step (frame T-1 -> frame 0) divided by the median (or ``typical="mean"``: the mean) of the
    other steps (:func:`frame_steps`).

    1 = the seam is as big as a typical step; about 0 = a hold at the seam; well above 1 = a pop. Inf when every
    other step is zero but the wrap is not (a still clip that jumps), 1 for a clip with no change at all.

    Example:
        >>> pingpong = torch.tensor([0.0, 0.1, 0.2, 0.1]).view(4, 1, 1, 1).expand(4, 1, 2, 2)
        >>> round(seam_ratio(pingpong), 3)
        1.0
    """
    return _ratio(frame_steps(frames, wrap=True, mask=mask), typical)


def motion_steps(displacement: torch.Tensor, wrap: bool = True, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean end-point length of each frame-to-frame change of the displacement, inside ``mask``, in pixels.

    Args:
        displacement: [T, 2, H, W] pixels.
        wrap: add the wrap step |D_0 - D_{T-1}| as the last entry.
        mask: where to measure, or None for the whole frame.

    Returns:
        [T] with ``wrap``, else [T - 1]; pixels per frame.

    Example:
        >>> d = torch.zeros(4, 2, 2, 2); d[:, 0] = torch.arange(4.0).view(4, 1, 1)
        >>> motion_steps(d).tolist()
        [1.0, 1.0, 1.0, 3.0]
    """
    d = _check_sequence(displacement, "displacement", 2)
    weights = _weights(mask, *d.shape[-2:], d.device)
    following = torch.cat([d[1:], d[:1]]) if wrap else d[1:]
    return _mean((following - d[:following.shape[0]]).norm(dim=1, keepdim=True), weights)


def motion_seam_ratio(displacement: torch.Tensor, mask: torch.Tensor | None = None, typical: str = "median") -> float:
    """:func:`seam_ratio` of a motion: the wrap step |D_0 - D_{T-1}| over the median (or mean) of the other steps
    (:func:`motion_steps`)."""
    return _ratio(motion_steps(displacement, wrap=True, mask=mask), typical)


def motion_amplitude(displacement: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """How far the pixels move about their mean position: the root-mean-square over frames of
    ``D_t - mean_t D``, averaged over the pixels inside ``mask``, in pixels (0 for a still motion).

    Example:
        >>> d = torch.zeros(4, 2, 2, 2); d[:, 0] = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(4, 1, 1)
        >>> motion_amplitude(d)
        1.0
    """
    d = _check_sequence(displacement, "displacement", 2)
    weights = _weights(mask, *d.shape[-2:], d.device)
    deviation = (d - d.mean(dim=0, keepdim=True)).square().sum(dim=1, keepdim=True).mean(dim=0, keepdim=True).sqrt()
    return float(_mean(deviation, weights)[0])


def moving_region(displacement: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """[1, 1, H, W] bool: the pixels that move more than ``threshold`` pixels in some frame of ``displacement``
    [T, 2, H, W] (where to measure a loop's sharpness)."""
    d = _check_sequence(displacement, "displacement", 2)
    return (d.norm(dim=1).amax(dim=0) > float(threshold))[None, None]
