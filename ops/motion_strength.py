"""Global motion strength M_s of "Controllable Longer Image Animation" (Eq. 8), and scaling a field to a target M_s.

Eq. 8: M_s = sum_{k=0}^{N-1} |F_{k->k+1}| / N, "the arithmetic mean of the absolute value of the motion fields"
between consecutive frames. The paper does not say how |F| reduces over pixels; here |F(p)| is the Euclidean
length of the flow vector at pixel p and the mean runs over the frame pairs and the pixels, so M_s is in pixels per
frame at the clip's resolution (a clip translating by 3 px per frame has M_s = 3, whatever its size). The paper's
quoted values (MS 100 .. 400) are in a normalisation it does not give; a model trained with this M_s takes values
of this scale. M_s is linear in the field (|c F| = |c| |F|), so :func:`scale_to_strength` scales any field to a
chosen M_s exactly.

Example:
    >>> flows = torch.zeros(4, 2, 8, 8)
    >>> flows[:, 0] = 3.0
    >>> flows[:, 1] = 4.0
    >>> float(motion_strength(flows))
    5.0
"""
from __future__ import annotations

import torch

__all__ = ["motion_strength", "scale_to_strength"]


def _check_flows(flows: torch.Tensor) -> torch.Tensor:
    if not isinstance(flows, torch.Tensor):
        raise TypeError(f"flows must be a tensor, got {type(flows).__name__}")
    if flows.ndim < 3 or flows.shape[-3] != 2:
        raise ValueError(f"flows must be [..., 2, H, W] (e.g. [T - 1, 2, H, W] frame-to-frame flows), "
                         f"got {tuple(flows.shape)}")
    if flows.numel() == 0:
        raise ValueError(f"flows must not be empty, got {tuple(flows.shape)}")
    return flows


def motion_strength(flows: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """M_s (Eq. 8): the mean length of the frame-to-frame flow vectors, pixels per frame.

    Args:
        flows: [T - 1, 2, H, W] flows F_{k->k+1} in pixels per frame (any leading dimensions: [..., 2, H, W]; a
            single static field [2, H, W] is one frame pair).
        mask: optional [H, W] (or broadcastable to flows' [..., H, W]) weights in [0, 1]: the mean over the
            masked pixels only (e.g. the motion brush). None: every pixel.

    Returns:
        A 0-dim float32 tensor, pixels per frame (0 when the mask is empty).
    """
    flows = _check_flows(flows).float()
    length = flows.square().sum(dim=-3).sqrt()  # [..., H, W]
    if mask is None:
        return length.mean()
    weight = mask.to(length).expand_as(length)
    total = weight.sum()
    return torch.where(total > 0, (length * weight).sum() / total.clamp_min(1e-12), torch.zeros_like(total))


def scale_to_strength(flows: torch.Tensor, target: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``flows`` scaled by one factor so that ``motion_strength(result, mask) == target`` (up to rounding).

    Args:
        flows: [..., 2, H, W] pixels per frame.
        target: the wanted M_s in pixels per frame (>= 0).
        mask: as :func:`motion_strength`.

    Raises:
        ValueError: a negative or non-finite target, or a still field (M_s = 0) asked for a positive target.
    """
    target = float(target)
    if not target >= 0 or target == float("inf"):
        raise ValueError(f"target motion strength must be a finite number >= 0, got {target}")
    current = float(motion_strength(flows, mask))
    if current == 0.0:
        if target == 0.0:
            return flows.clone()
        raise ValueError(f"a still field (motion strength 0) cannot be scaled to motion strength {target}")
    return flows * (target / current)
