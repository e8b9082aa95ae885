"""Backward warping with pixel-unit flows, flow resizing, flow composition and flow inversion.

Conventions (the pack's): flows are [B, 2, H, W] in pixels, channel 0 = x (to the right), channel 1 = y (down),
pixel centres at integer coordinates (pixel (0, 0) is centred at (0, 0)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .fill import fill_holes
from .splat import softsplat

__all__ = ["backward_warp", "compose_flows", "flow_grid", "invert_flow", "resize_flow"]

_MODES = ("bilinear", "nearest", "bicubic")
_PADDINGS = ("zeros", "border", "reflection")


def _check_flow(flow: torch.Tensor, name: str = "flow") -> None:
    if not isinstance(flow, torch.Tensor):
        raise TypeError(f"{name} must be a tensor")
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"{name} must be [B, 2, H, W], got shape {tuple(flow.shape)}")
    if not flow.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {flow.dtype}")


def flow_grid(flow: torch.Tensor, align_corners: bool = True) -> torch.Tensor:
    """The ``grid_sample`` grid [B, H, W, 2] (normalised to [-1, 1]) that samples at ``p + flow(p)``.

    With ``align_corners=True`` pixel x maps to ``2 x / (W - 1) - 1``; with ``False`` to ``(2 x + 1) / W - 1``;
    both put pixel centres at integer pixel coordinates, they differ only in how ``padding_mode`` treats the
    border. Computed in float32 (float64 for float64 flows).

    Example:
        >>> flow_grid(torch.zeros(1, 2, 2, 3))[0, 0].tolist()
        [[-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]]
    """
    _check_flow(flow)
    _, _, h, w = flow.shape
    dtype = torch.float64 if flow.dtype == torch.float64 else torch.float32
    f = flow.to(dtype)
    gx = torch.arange(w, dtype=dtype, device=flow.device)
    gy = torch.arange(h, dtype=dtype, device=flow.device).view(h, 1)
    x = f[:, 0] + gx
    y = f[:, 1] + gy
    if align_corners:
        x = x * (2.0 / (w - 1)) - 1.0 if w > 1 else x * 0.0
        y = y * (2.0 / (h - 1)) - 1.0 if h > 1 else y * 0.0
    else:
        x = (2.0 * x + 1.0) / w - 1.0
        y = (2.0 * y + 1.0) / h - 1.0
    return torch.stack([x, y], dim=-1)


def backward_warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border",
                  align_corners: bool = True) -> torch.Tensor:
    """Backward warping: ``output(p) = image(p + flow(p))`` with ``grid_sample`` underneath.

    Args:
        image: [B, C, H, W] any float dtype (float16 / bfloat16 are sampled in float32 on CPU).
        flow: [B, 2, H, W] pixels, channel 0 = x (right), 1 = y (down); where to look for each output pixel.
        mode: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"`` -- what is sampled outside the image.
        align_corners: see :func:`flow_grid`; does not change where pixel centres are, only the border.

    Returns:
        [B, C, H, W] in ``image``'s dtype; differentiable w.r.t. ``image`` and ``flow``.

    Example:
        >>> img = torch.arange(4.).view(1, 1, 1, 4)
        >>> flow = torch.ones(1, 2, 1, 4); flow[:, 1] = 0     # look one pixel to the right
        >>> backward_warp(img, flow)[0, 0, 0].tolist()
        [1.0, 2.0, 3.0, 3.0]
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError("image must be a tensor")
    if image.ndim != 4:
        raise ValueError(f"image must be [B, C, H, W], got shape {tuple(image.shape)}")
    _check_flow(flow)
    b, _, h, w = image.shape
    if tuple(flow.shape) != (b, 2, h, w):
        raise ValueError(f"flow shape {tuple(flow.shape)} does not match image {tuple(image.shape)}: "
                         f"expected {(b, 2, h, w)}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if padding_mode not in _PADDINGS:
        raise ValueError(f"padding_mode must be one of {_PADDINGS}, got {padding_mode!r}")
    work = image if image.dtype in (torch.float32, torch.float64) or image.device.type != "cpu" else image.float()
    grid = flow_grid(flow, align_corners).to(work.dtype)
    out = F.grid_sample(work, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    return out.to(image.dtype)


def resize_flow(flow: torch.Tensor, size: tuple[int, int] | int, mode: str = "bilinear") -> torch.Tensor:
    """Resize a flow field to ``size`` = (H', W') and scale its vectors: x by W'/W and y by H'/H.

    The field is resampled with pixel-centre alignment (``align_corners=False``), anti-aliased when shrinking
    (bilinear / bicubic). A displacement of d pixels at W is d * W'/W pixels at W'.

    Args:
        flow: [B, 2, H, W] pixels.
        size: (H', W') or an int for a square size.
        mode: ``"bilinear"``, ``"bicubic"``, ``"nearest"`` or ``"area"``.

    Returns:
        [B, 2, H', W'] in ``flow``'s dtype.

    Example:
        >>> f = torch.zeros(1, 2, 8, 16); f[:, 0] = 4.0; f[:, 1] = 2.0
        >>> resize_flow(f, (16, 64))[0, :, 0, 0].tolist()
        [16.0, 4.0]
    """
    _check_flow(flow)
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or int(size[0]) < 1 or int(size[1]) < 1:
        raise ValueError(f"size must be (H, W) with positive entries, got {size}")
    if mode not in ("bilinear", "bicubic", "nearest", "area"):
        raise ValueError(f"mode must be 'bilinear', 'bicubic', 'nearest' or 'area', got {mode!r}")
    h2, w2 = int(size[0]), int(size[1])
    _, _, h, w = flow.shape
    work = flow if flow.dtype in (torch.float32, torch.float64) else flow.float()
    if (h2, w2) != (h, w):
        kwargs = {}
        if mode in ("bilinear", "bicubic"):
            kwargs = {"align_corners": False, "antialias": h2 < h or w2 < w}
        work = F.interpolate(work, size=(h2, w2), mode=mode, **kwargs)
    scale = torch.tensor([w2 / w, h2 / h], dtype=work.dtype, device=work.device).view(1, 2, 1, 1)
    return (work * scale).to(flow.dtype)


def compose_flows(flow_a: torch.Tensor, flow_b: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Chain two flows: ``f_ab(p) = f_a(p) + f_b(p + f_a(p))``.

    ``flow_a`` maps frame 0 to frame a (e.g. a reference-anchored displacement f_{0->a}: pixel p of frame 0 is at
    p + f_a(p) in frame a); ``flow_b`` maps frame a to frame b on frame a's grid (a frame-to-frame flow
    f_{a->b}). The result is f_{0->b} on frame 0's grid. ``flow_b`` is sampled bilinearly at p + f_a(p);
    outside frame a it is extended by ``padding_mode`` (``"border"``: the nearest edge vector).

    Args:
        flow_a: [B, 2, H, W] pixels.
        flow_b: [B, 2, H, W] pixels.
        padding_mode: how ``flow_b`` is sampled outside the image (see :func:`backward_warp`).

    Returns:
        [B, 2, H, W] in ``flow_a``'s dtype.

    Example:
        >>> a = torch.zeros(1, 2, 4, 4); a[:, 0] = 1.0           # everything moves 1 px right
        >>> b = torch.zeros(1, 2, 4, 4); b[:, 1] = 2.0           # then 2 px down
        >>> compose_flows(a, b)[0, :, 1, 1].tolist()
        [1.0, 2.0]
    """
    _check_flow(flow_a, "flow_a")
    _check_flow(flow_b, "flow_b")
    if flow_a.shape != flow_b.shape:
        raise ValueError(f"flow_a {tuple(flow_a.shape)} and flow_b {tuple(flow_b.shape)} must have the same shape")
    sampled = backward_warp(flow_b.to(flow_a.dtype), flow_a, padding_mode=padding_mode, align_corners=True)
    return flow_a + sampled


def invert_flow(flow: torch.Tensor, metric: torch.Tensor | None = None, fill: bool = True,
                threshold: float = 1e-3, return_coverage: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Approximate inverse of a flow by splatting: ``g(p + f(p)) ~= -f(p)``.

    Each source pixel carries ``-f(p)`` to where it lands (average splatting, or softmax splatting when a
    ``metric`` says which source is in front where several land on the same pixel). Pixels that nothing reaches
    are filled by push-pull (:func:`~imagedynamics.ops.fill.fill_holes`) unless ``fill=False`` (then they are 0).

    Args:
        flow: [B, 2, H, W] pixels (forward flow, frame a -> frame b, on frame a's grid).
        metric: optional [B, 1, H, W] softmax-splatting metric (larger = in front).
        fill: fill unreached pixels.
        threshold: coverage under which a pixel counts as unreached.
        return_coverage: also return the splat coverage [B, 1, H, W].

    Returns:
        [B, 2, H, W] backward flow on frame b's grid (and the coverage).

    Example:
        >>> f = torch.zeros(1, 2, 6, 6); f[:, 0] = 2.0
        >>> invert_flow(f)[0, 0, 3].tolist()
        [-2.0, -2.0, -2.0, -2.0, -2.0, -2.0]
    """
    _check_flow(flow)
    mode = "avg" if metric is None else "soft"
    inverse, coverage = softsplat(-flow, flow, metric, mode=mode, return_weight=True)
    if fill:
        inverse = fill_holes(inverse, coverage, threshold=threshold)
    if return_coverage:
        return inverse, coverage
    return inverse
