"""Forward warping by bilinear splatting: summation, average, linear and softmax splatting.

Softmax splatting (Niklaus & Liu, "Softmax Splatting for Video Frame Interpolation", CVPR 2020) moves every
source pixel p to ``p + flow(p)`` and distributes its value over the four pixels around that point with the
bilinear kernel ``b``. With a per-pixel metric ``Z`` (larger = in front) the splatted image is

    out(q) = sum_p exp(Z(p)) b(q - p - flow(p)) x(p) / sum_p exp(Z(p)) b(q - p - flow(p)).

Written from the paper's formulas. Conventions: flow in pixels, channel 0 = x (to the right), channel 1 = y (down);
pixel centres at integer coordinates. Targets outside the image and non-finite targets are dropped.

How it is made fast (CPU and CUDA through the same PyTorch ops):

- the four taps' weights are computed once per pixel for all channels; the target index is computed once too:
  the accumulator is padded by one pixel on the left/top and two on the right/bottom, so the four taps of a pixel
  are the same index into four shifted views of the accumulator, and taps that leave the image land in the
  padding instead of needing masks (any target is first clamped to [-1, W] x [-1, H], which moves no weight
  into the image);
- the normalising weight (and the coverage) are accumulated as one-channel scatters of the tap weights;
- without autograd, the channels are accumulated in chunks that stay in cache, and normalisation is fused
  with cropping the padding into the output.

Numerical robustness: accumulation is float32 whatever the input dtype; ``soft`` subtracts a maximum from the
metric before ``exp`` -- the per-batch-item maximum when the metric's range is small enough that no weight can
underflow, otherwise (and always on non-CPU devices, to avoid a host sync) the maximum over the sources landing on
each target pixel, so that a pixel reached only by far-behind sources is not turned into a false hole; results
are normalised only where the accumulated weight is positive (elsewhere 0).
"""
from __future__ import annotations

import torch

__all__ = ["MODES", "softsplat", "softsplat_reference"]

MODES = ("sum", "avg", "linear", "soft")

# Largest per-batch-item metric range (max - min) for which exp(metric - max) cannot underflow to the point of
# emptying a covered pixel; above it, ``soft`` uses a per-target maximum.
_GLOBAL_SHIFT_MAX_RANGE = 60.0
# Elements of a channel chunk's accumulator in the no-autograd path (float32): about 8 MB, cache-friendly.
_CHUNK_ELEMENTS = 1 << 21


def _check(input: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None, mode: str) -> None:
    if not isinstance(input, torch.Tensor) or not isinstance(flow, torch.Tensor):
        raise TypeError("input and flow must be tensors")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if input.ndim != 4:
        raise ValueError(f"input must be [B, C, H, W], got shape {tuple(input.shape)}")
    if not input.is_floating_point():
        raise ValueError(f"input must be a floating-point tensor, got {input.dtype}")
    b, _, h, w = input.shape
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be [B, 2, H, W], got shape {tuple(flow.shape)}")
    if tuple(flow.shape) != (b, 2, h, w):
        raise ValueError(f"flow shape {tuple(flow.shape)} does not match input {tuple(input.shape)}: "
                         f"expected {(b, 2, h, w)}")
    if not flow.is_floating_point():
        raise ValueError(f"flow must be a floating-point tensor, got {flow.dtype}")
    if flow.device != input.device:
        raise ValueError(f"flow is on {flow.device} but input is on {input.device}")
    if metric is not None:
        if mode in ("sum", "avg"):
            raise ValueError(f"metric is only used by modes 'linear' and 'soft', not {mode!r}; pass metric=None")
        if not isinstance(metric, torch.Tensor) or metric.ndim != 4 or tuple(metric.shape) != (b, 1, h, w):
            shape = tuple(metric.shape) if isinstance(metric, torch.Tensor) else type(metric).__name__
            raise ValueError(f"metric must be [B, 1, H, W] = {(b, 1, h, w)}, got {shape}")
        if metric.device != input.device:
            raise ValueError(f"metric is on {metric.device} but input is on {input.device}")


# --------------------------------------------------------------------------------------------------------------
# Taps: one padded base index per pixel and four weights per pixel.
# --------------------------------------------------------------------------------------------------------------

def _padded_geometry(h: int, w: int) -> tuple[int, int, int, tuple[int, int, int, int]]:
    """Padded accumulator geometry: (Hp, Wp, length of the shifted views, tap offsets)."""
    hp, wp = h + 3, w + 3
    return hp, wp, hp * wp - wp - 1, (0, 1, wp, wp + 1)


def _taps(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Base index [B, N] (int64, padded layout) and tap weights [4, B, N] (float32, differentiable in flow).

    Tap k = 2 * j + i is the pixel (x0 + i, y0 + j) with (x0, y0) = floor(p + flow(p)); its index in the padded
    accumulator is ``base + offsets[k]``.
    """
    b, _, h, w = flow.shape
    n = h * w
    _, wp, _, _ = _padded_geometry(h, w)
    f = flow.float()
    grid_x = torch.arange(w, dtype=torch.float32, device=flow.device)
    grid_y = torch.arange(h, dtype=torch.float32, device=flow.device).view(h, 1)
    grad = torch.is_grad_enabled() and f.requires_grad
    tx = f[:, 0] + grid_x
    ty = f[:, 1] + grid_y
    # Clamping to [-1, W] x [-1, H] moves no weight into the image (the bilinear kernel has support 1), and sends
    # non-finite targets into the padding: NaN -> -1.
    if grad:
        tx = tx.clamp(-1.0, float(w)).nan_to_num(-1.0)
        ty = ty.clamp(-1.0, float(h)).nan_to_num(-1.0)
    else:
        tx = tx.clamp_(-1.0, float(w)).nan_to_num_(-1.0)
        ty = ty.clamp_(-1.0, float(h)).nan_to_num_(-1.0)
    x0 = tx.floor()
    y0 = ty.floor()
    base = torch.add(x0.to(torch.int64), y0.to(torch.int64), alpha=wp).add_(wp + 1).view(b, n)
    if grad:
        ax = torch.stack([1.0 - (tx - x0), tx - x0])  # [2, B, H, W]
        ay = torch.stack([1.0 - (ty - y0), ty - y0])
    else:
        ax = torch.empty((2, b, h, w), dtype=torch.float32, device=flow.device)
        ay = torch.empty_like(ax)
        torch.sub(tx, x0, out=ax[1])
        torch.sub(ty, y0, out=ay[1])
        torch.sub(1.0, ax[1], out=ax[0])
        torch.sub(1.0, ay[1], out=ay[0])
    weights = (ay[:, None] * ax[None]).view(4, b, n)
    return base, weights


def _shift_logits(metric: torch.Tensor, base: torch.Tensor, weights: torch.Tensor, lv: int, offsets,
                  force_per_target: bool = False) -> torch.Tensor:
    """exp(metric - shift) per tap, [4, B, N] float32; 0 for taps with zero weight or non-finite metric.

    The shift is the per-batch-item maximum when the metric's range is at most ``_GLOBAL_SHIFT_MAX_RANGE`` (CPU
    only, it needs the range on the host), otherwise the maximum over the sources that reach each target pixel.
    Either way the splatted result is mathematically unchanged; the shift is not differentiated.
    """
    b = metric.shape[0]
    m = metric.float().reshape(b, -1)
    if not force_per_target and m.device.type == "cpu":
        with torch.no_grad():
            lo, hi = torch.aminmax(m, dim=1)
            spread = float((hi - lo).max())
        if spread <= _GLOBAL_SHIFT_MAX_RANGE:  # also False for NaN / inf
            return (m - hi[:, None]).exp()[None]
    finite = torch.isfinite(m)
    m = torch.where(finite, m, 0.0)
    with torch.no_grad():
        live = (weights > 0) & finite
        masked = torch.where(live, m.detach(), float("-inf"))
        top = torch.full((b, lv + offsets[-1]), float("-inf"), device=m.device)
        for k, off in enumerate(offsets):
            top[:, off:off + lv].scatter_reduce_(1, base, masked[k], reduce="amax")
        shift = torch.stack([top[:, off:off + lv].gather(1, base) for off in offsets])
        shift = torch.where(live, shift, 0.0)
    return torch.where(live, (m - shift).exp(), 0.0)


# --------------------------------------------------------------------------------------------------------------
# Accumulation
# --------------------------------------------------------------------------------------------------------------

def _accumulate(acc: torch.Tensor, values: torch.Tensor | None, weights: torch.Tensor, base: torch.Tensor,
                offsets, lv: int, buffer: torch.Tensor | None = None) -> None:
    """acc[:, :, base + off_k] += weights[k] * values, for the four taps (in place, no autograd).

    acc: [B, C, Lp] float32; values: [B, C, N] (any float dtype) or None for one channel of ones;
    weights: [4, B, N] float32; base: [B, N] int64.
    """
    b, c, _ = acc.shape
    n = base.shape[1]
    index = base[:, None, :].expand(b, c, n)
    for k, off in enumerate(offsets):
        if values is None:
            src = weights[k][:, None, :]
        else:
            src = buffer if buffer is not None else torch.empty((b, c, n), dtype=torch.float32, device=acc.device)
            torch.mul(values, weights[k][:, None, :], out=src)
        acc[:, :, off:off + lv].scatter_add_(2, index, src)


class _TapSplat(torch.autograd.Function):
    """Differentiable four-tap summation splat into the padded accumulator.

    forward(values [B, C, N], weights [4, B, N], base [B, N], lp, offsets) -> acc [B, C, Lp] float32.
    Its adjoint is bilinear sampling: grad_values = sum_k weights[k] * grad_acc[base + off_k] and
    grad_weights[k] = sum_c values * grad_acc[base + off_k]. The backward is written with differentiable ops.
    """

    @staticmethod
    def forward(ctx, values, weights, base, lp, offsets):
        b, c, _ = values.shape
        lv = lp - offsets[-1]
        acc = torch.zeros((b, c, lp), dtype=torch.float32, device=values.device)
        _accumulate(acc, values, weights, base, offsets, lv)
        ctx.save_for_backward(values, weights, base)
        ctx.offsets = offsets
        return acc

    @staticmethod
    def backward(ctx, grad_acc):
        values, weights, base = ctx.saved_tensors
        offsets = ctx.offsets
        b, c, n = values.shape
        lv = grad_acc.shape[2] - offsets[-1]
        index = base[:, None, :].expand(b, c, n)
        grad_values = torch.zeros((b, c, n), dtype=torch.float32, device=values.device) \
            if ctx.needs_input_grad[0] else None
        grad_weights = [] if ctx.needs_input_grad[1] else None
        for k, off in enumerate(offsets):
            sampled = grad_acc[:, :, off:off + lv].gather(2, index)
            if grad_values is not None:
                grad_values = grad_values + weights[k][:, None, :] * sampled
            if grad_weights is not None:
                grad_weights.append((sampled * values).sum(1))
        if grad_values is not None:
            grad_values = grad_values.to(values.dtype)
        if grad_weights is not None:
            grad_weights = torch.stack(grad_weights)
        return grad_values, grad_weights, None, None, None


def _crop(acc: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b, c, _ = acc.shape
    return acc.view(b, c, h + 3, w + 3)[:, :, 1:h + 1, 1:w + 1]


def _safe_denominator(den: torch.Tensor) -> torch.Tensor:
    """den where positive, +inf elsewhere: x / inf = 0 gives 'normalise only where the weight is positive'."""
    return torch.where(den > 0, den, torch.full_like(den, float("inf")))


def softsplat(input: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None = None, mode: str = "soft",
              return_weight: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Forward-warp ``input`` by ``flow`` with bilinear splatting (summation, average, linear or softmax).

    Every source pixel p goes to ``t = p + flow(p)`` and is spread over the four pixels around t with
    bilinear weights ``b``. Targets outside the image and non-finite targets are dropped. Per target pixel q:

    - ``"sum"``:    out(q) = sum_p b x(p)
    - ``"avg"``:    out(q) = sum_p b x(p) / sum_p b
    - ``"linear"``: out(q) = sum_p b Z(p) x(p) / sum_p b Z(p)            (Z >= 0 expected, e.g. inverse depth)
    - ``"soft"``:   out(q) = sum_p b exp(Z(p)) x(p) / sum_p b exp(Z(p))   (Z larger = in front)

    Normalised modes give 0 where the accumulated weight is not positive. ``metric=None`` with ``"linear"`` or
    ``"soft"`` is the same as ``"avg"``. Sources with a non-finite metric are dropped. Accumulation is float32;
    the output has ``input``'s dtype. Differentiable w.r.t. ``input``, ``flow`` and ``metric``.

    Args:
        input: [B, C, H, W] values to splat (any float dtype).
        flow: [B, 2, H, W] displacement in pixels; channel 0 = x (right), channel 1 = y (down).
        metric: [B, 1, H, W] splatting metric Z (``"linear"`` and ``"soft"`` only), or None.
        mode: ``"sum"``, ``"avg"``, ``"linear"`` or ``"soft"``.
        return_weight: also return the coverage.

    Returns:
        [B, C, H, W] splatted values, or (values, coverage [B, 1, H, W]) with ``return_weight``: coverage is the
        accumulated *bilinear* weight sum_p b (whatever the mode), so holes are ``coverage < threshold``.

    Example:
        >>> x = torch.arange(12.).view(1, 1, 3, 4)
        >>> flow = torch.zeros(1, 2, 3, 4); flow[:, 0] = 1.0   # everything moves one pixel right
        >>> out, cov = softsplat(x, flow, mode="avg", return_weight=True)
        >>> out[0, 0].tolist()
        [[0.0, 0.0, 1.0, 2.0], [0.0, 4.0, 5.0, 6.0], [0.0, 8.0, 9.0, 10.0]]
        >>> cov[0, 0, 0].tolist()
        [0.0, 1.0, 1.0, 1.0]
    """
    return _softsplat(input, flow, metric, mode, return_weight)


def _softsplat(input, flow, metric, mode, return_weight, force_per_target=False, force_autograd=False):
    _check(input, flow, metric, mode)
    b, c, h, w = input.shape
    n = h * w
    hp, wp, lv, offsets = _padded_geometry(h, w)
    lp = hp * wp
    if mode in ("linear", "soft") and metric is None:
        mode = "avg"
    tracked = (input, flow) if metric is None else (input, flow, metric)
    autograd = force_autograd or (torch.is_grad_enabled() and any(t.requires_grad for t in tracked))

    with torch.set_grad_enabled(autograd):
        base, bilinear = _taps(flow)
        if mode == "soft":
            weights = bilinear * _shift_logits(metric, base, bilinear, lv, offsets, force_per_target)
        elif mode == "linear":
            m = metric.float().reshape(1, b, n)
            weights = bilinear * torch.where(torch.isfinite(m), m, 0.0)
        else:
            weights = bilinear
        values = input.reshape(b, c, n)

        if autograd:
            ones = torch.ones((b, 1, n), dtype=torch.float32, device=input.device)
            acc = _TapSplat.apply(values, weights, base, lp, offsets)
            out = _crop(acc, h, w)
            coverage = _crop(_TapSplat.apply(ones, bilinear, base, lp, offsets), h, w) \
                if (return_weight or mode == "avg") else None
            if mode == "sum":
                out = out.contiguous()
            else:
                den = coverage if mode == "avg" else _crop(_TapSplat.apply(ones, weights, base, lp, offsets), h, w)
                out = out / _safe_denominator(den)
            out = out.to(input.dtype)
            if return_weight:
                return out, coverage.to(input.dtype)
            return out

        # No autograd: chunked in-place accumulation; the normalising weight and the coverage ride along as extra
        # channels of the first chunk (one scatter call per tap, balanced over threads); normalisation is fused
        # with cropping the padding away.
        extras = []
        if mode in ("linear", "soft"):
            extras.append(weights)
        if return_weight or mode == "avg":
            extras.append(bilinear)
        e = len(extras)
        out = torch.empty((b, c, h, w), dtype=input.dtype, device=input.device)
        step = c if input.device.type != "cpu" else max(1, min(c, _CHUNK_ELEMENTS // max(1, b * lp)))
        acc = torch.empty((b, min(step, c) + e, lp), dtype=torch.float32, device=input.device)
        buffer = torch.empty((b, min(step, c) + e, n), dtype=torch.float32, device=input.device)
        den = coverage = None
        for c0 in range(0, c, step):
            c1 = min(c, c0 + step)
            rows = c1 - c0 + (e if c0 == 0 else 0)
            chunk_acc = acc[:, :rows].zero_()
            _accumulate_rows(chunk_acc, values[:, c0:c1], weights, extras if c0 == 0 else [], base, offsets, lv,
                             buffer[:, :rows])
            cropped = _crop(chunk_acc, h, w)
            if c0 == 0:
                if return_weight or mode == "avg":
                    coverage = cropped[:, rows - 1:rows].to(input.dtype, copy=True)
                if mode != "sum":
                    den = _safe_denominator(cropped[:, c1 - c0:c1 - c0 + 1])
                cropped = cropped[:, :c1 - c0]
            target = out[:, c0:c1]
            if den is None:
                target.copy_(cropped)
            elif out.dtype == torch.float32:
                torch.div(cropped, den, out=target)
            else:
                target.copy_(cropped / den)
        if return_weight:
            return out, coverage
        return out


def _accumulate_rows(acc: torch.Tensor, values: torch.Tensor, weights: torch.Tensor, extras: list[torch.Tensor],
                     base: torch.Tensor, offsets, lv: int, buffer: torch.Tensor) -> None:
    """Like :func:`_accumulate` with extra one-channel rows: acc rows = [values * weights[k], *extras[k]]."""
    b, rows, _ = acc.shape
    cv = values.shape[1]
    n = base.shape[1]
    index = base[:, None, :].expand(b, rows, n)
    for k, off in enumerate(offsets):
        if cv == 0 and len(extras) == 1:
            src = extras[0][k][:, None, :]
        else:
            src = buffer
            if cv:
                torch.mul(values, weights[k][:, None, :], out=buffer[:, :cv])
            for i, extra in enumerate(extras):
                buffer[:, cv + i].copy_(extra[k])
        acc[:, :, off:off + lv].scatter_add_(2, index, src)


# --------------------------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------------------------

def softsplat_reference(input: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None = None,
                        mode: str = "soft", return_weight: bool = False
                        ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Straightforward softmax splatting: four ``scatter_add_`` calls over a [B, C+1(+1), H*W] accumulator.

    Same semantics as :func:`softsplat` (float32, normalisation channel appended to the input, masks for taps
    outside the image, per-batch-item metric maximum subtracted before ``exp``), written the obvious way; it is
    the baseline of the benchmark and a cross-check in the tests. Differentiable through autograd.

    Example:
        >>> x, flow = torch.rand(1, 3, 8, 8), torch.randn(1, 2, 8, 8)
        >>> bool(torch.allclose(softsplat_reference(x, flow, mode="avg"), softsplat(x, flow, mode="avg"),
        ...                     atol=1e-6))
        True
    """
    _check(input, flow, metric, mode)
    b, c, h, w = input.shape
    if mode in ("linear", "soft") and metric is None:
        mode = "avg"
    x = input.float()
    f = flow.float()
    ones = torch.ones((b, 1, h, w), dtype=torch.float32, device=x.device)
    if mode == "sum":
        channels = [x]
    elif mode == "avg":
        channels = [x, ones]
    else:
        m = metric.float()
        finite = torch.isfinite(m)
        m = torch.where(finite, m, 0.0)
        if mode == "linear":
            z = m * finite
        else:
            z = (m - m.amax(dim=(1, 2, 3), keepdim=True)).exp() * finite
        channels = [x * z, z]
    if return_weight:
        channels.append(ones)
    src = torch.cat(channels, 1).reshape(b, -1, h * w)
    k = src.shape[1]
    gx = torch.arange(w, dtype=torch.float32, device=x.device).view(1, 1, w)
    gy = torch.arange(h, dtype=torch.float32, device=x.device).view(1, h, 1)
    tx = f[:, 0] + gx
    ty = f[:, 1] + gy
    x0 = tx.floor()
    y0 = ty.floor()
    acc = torch.zeros_like(src)
    for dy in (0, 1):
        for dx in (0, 1):
            xi = x0 + dx
            yi = y0 + dy
            weight = (1 - (tx - x0 - dx).abs()) * (1 - (ty - y0 - dy).abs())
            valid = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)  # False for NaN
            weight = torch.where(valid, weight, 0.0)
            index = torch.where(valid, yi * w + xi, 0.0).long().view(b, 1, h * w).expand(b, k, h * w)
            acc.scatter_add_(2, index, src * weight.view(b, 1, h * w))
    acc = acc.view(b, k, h, w)
    if mode == "sum":
        out = acc[:, :c]
    else:
        den = acc[:, c:c + 1]
        out = torch.where(den > 0, acc[:, :c] / torch.where(den > 0, den, 1.0), 0.0)
    out = out.to(input.dtype)
    if return_weight:
        return out, acc[:, -1:].to(input.dtype)
    return out
