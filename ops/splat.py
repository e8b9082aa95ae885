"""Forward warping by bilinear splatting: summation, average, linear and softmax splatting.

Softmax splatting (Niklaus & Liu, "Softmax Splatting for Video Frame Interpolation", CVPR 2020) moves every
source pixel p to ``p + flow(p)`` and spreads its value over the four pixels around that point with the
bilinear kernel ``b``. With a per-pixel metric ``Z`` (larger = in front) the splatted image is

    out(q) = sum_p exp(Z(p)) b(q - p - flow(p)) x(p) / sum_p exp(Z(p)) b(q - p - flow(p)).

Written from the paper's formulas. Conventions: flow in pixels, channel 0 = x (to the right), channel 1 = y (down);
pixel centres at integer coordinates; the target of p is computed as ``p + flow(p)`` in the working precision.
Targets outside the image and non-finite targets are dropped.

How it is made fast (CPU and CUDA through the same PyTorch ops):

- the accumulator is padded by one pixel on the left / top and two on the right / bottom, and every target is
  first clamped to [-1, W] x [-1, H] (which moves no weight into the image, the kernel having support 1). Then
  the four taps of a pixel are one index (computed once, for all channels) into four shifted views of the
  accumulator, and taps that leave the image land in the padding instead of needing masks;
- the tap weights are products of per-axis weights computed once per pixel; the softmax factor is folded into
  the y weights;
- without autograd, the normalising weight (and the coverage) ride along as extra rows of the accumulation, so
  each tap is one multiply and one ``scatter_add_`` call; channels are processed in chunks whose accumulator
  stays in cache, and normalisation is fused with cropping the padding into the output.

Numerical robustness: accumulation is float32 whatever the input dtype (float64 if any operand is float64);
``soft`` subtracts a maximum from the metric before ``exp`` -- the per-batch-item maximum when the metric's range
is small enough that no covered pixel can underflow, otherwise (and always off the CPU, to avoid a host sync)
the maximum over the sources that reach each target pixel, so that a pixel reached only by far-behind sources
does not become a false hole. Outputs are normalised only where the accumulated weight is positive (else 0).

Backends: one eager PyTorch implementation for every device. No compiled backend: ``torch.compile`` of the
splat measured slower than this eager code on CPU (its scatters become atomic adds) after ~50 s of compiling, see
``bench/RESULTS_softsplat.md``; a Triton kernel could not be tested without a GPU.
"""
from __future__ import annotations

import torch

__all__ = ["MODES", "softsplat", "softsplat_reference"]

MODES = ("sum", "avg", "linear", "soft")

# Largest per-batch-item metric range (max - min) for which ``soft`` uses the global maximum: exp(-60) ~ 1e-26
# keeps every weight of a covered pixel far above float32's smallest normal number.
_GLOBAL_SHIFT_MAX_RANGE = 60.0
# Elements of a channel chunk's accumulator in the no-autograd CPU path: about 8 MB of float32.
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
        if not metric.is_floating_point():
            raise ValueError(f"metric must be a floating-point tensor, got {metric.dtype}")
        if metric.device != input.device:
            raise ValueError(f"metric is on {metric.device} but input is on {input.device}")


# --------------------------------------------------------------------------------------------------------------
# Taps
# --------------------------------------------------------------------------------------------------------------

def _padded_geometry(h: int, w: int) -> tuple[int, int, int, tuple[int, int, int, int]]:
    """Padded accumulator: (Hp, Wp, length of the four shifted views, the taps' offsets)."""
    hp, wp = h + 3, w + 3
    return hp, wp, hp * wp - wp - 1, (0, 1, wp, wp + 1)


def _taps(flow: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pixel base index and per-axis bilinear weights.

    Returns:
        base [B, N] int64: index of tap (x0, y0) in the padded accumulator, (x0, y0) = floor(p + flow(p));
        ax [2, B, N]: weights (1 - fx, fx) of columns x0 and x0 + 1; ay [2, B, N]: same for rows.
        Tap k = 2 j + i is pixel (x0 + i, y0 + j), index ``base + offsets[k]``, weight ``ax[i] * ay[j]``.
        ax and ay are differentiable w.r.t. flow.
    """
    b, _, h, w = flow.shape
    n = h * w
    _, wp, _, _ = _padded_geometry(h, w)
    f = flow.to(dtype)
    grid_x = torch.arange(w, dtype=dtype, device=flow.device)
    grid_y = torch.arange(h, dtype=dtype, device=flow.device).view(h, 1)
    tx = f[:, 0] + grid_x
    ty = f[:, 1] + grid_y
    # Clamping to [-1, W] x [-1, H] moves no weight into the image (the kernel has support 1); NaN -> -1 sends
    # non-finite targets into the padding.
    if torch.is_grad_enabled() and f.requires_grad:
        tx = tx.clamp(-1.0, float(w)).nan_to_num(-1.0)
        ty = ty.clamp(-1.0, float(h)).nan_to_num(-1.0)
        x0, y0 = tx.floor(), ty.floor()
        ax = torch.stack([1.0 - (tx - x0), tx - x0]).view(2, b, n)
        ay = torch.stack([1.0 - (ty - y0), ty - y0]).view(2, b, n)
    else:
        tx = tx.clamp_(-1.0, float(w)).nan_to_num_(-1.0)
        ty = ty.clamp_(-1.0, float(h)).nan_to_num_(-1.0)
        x0, y0 = tx.floor(), ty.floor()
        ax = torch.empty((2, b, n), dtype=dtype, device=flow.device)
        ay = torch.empty_like(ax)
        torch.sub(tx.view(b, n), x0.view(b, n), out=ax[1])
        torch.sub(ty.view(b, n), y0.view(b, n), out=ay[1])
        torch.sub(1.0, ax[1], out=ax[0])
        torch.sub(1.0, ay[1], out=ay[0])
    with torch.no_grad():
        if dtype == torch.float64 or (h + 3) * wp < 2**24:  # integer arithmetic is exact in floating point here
            base = torch.add(x0, y0, alpha=wp).add_(wp + 1).to(torch.int64).view(b, n)
        else:
            base = torch.add(x0.to(torch.int64), y0.to(torch.int64), alpha=wp).add_(wp + 1).view(b, n)
    return base, ax, ay


def _tap_weights(ax: torch.Tensor, ay: torch.Tensor) -> torch.Tensor:
    """[4, B, N] bilinear weight of each tap, k = 2 j + i."""
    return (ay[:, None] * ax[None]).flatten(0, 1)


def _softmax_factor(metric: torch.Tensor, base: torch.Tensor, ax: torch.Tensor, ay: torch.Tensor, lp: int,
                    offsets, force_per_target: bool = False) -> torch.Tensor:
    """exp(metric - shift): [1, B, N] with the per-batch-item maximum as shift, or [4, B, N] (one per tap) with
    the per-target maximum; 0 for sources with a non-finite metric (and for dead taps in the per-target case).

    The per-batch maximum is used when the metric's range is at most ``_GLOBAL_SHIFT_MAX_RANGE`` (CPU only: it
    needs the range on the host). The splatted result does not depend on the shift, which is not differentiated.
    """
    b = metric.shape[0]
    m = metric.to(ax.dtype).reshape(b, -1)
    if not force_per_target and m.device.type == "cpu":
        with torch.no_grad():
            hi = m.amax(dim=1, keepdim=True)
            spread = float((hi - m.amin(dim=1, keepdim=True)).max())
        if spread <= _GLOBAL_SHIFT_MAX_RANGE:  # also False for NaN / inf
            return (m - hi).exp()[None]
    finite = torch.isfinite(m)
    m = torch.where(finite, m, 0.0)
    lv = lp - offsets[-1]
    with torch.no_grad():
        live = (_tap_weights(ax, ay) > 0) & finite
        masked = torch.where(live, m, float("-inf"))
        top = torch.full((b, lp), float("-inf"), dtype=m.dtype, device=m.device)
        for k, off in enumerate(offsets):
            top[:, off:off + lv].scatter_reduce_(1, base, masked[k], reduce="amax")
        shift = torch.stack([top[:, off:off + lv].gather(1, base) for off in offsets])
        shift = torch.where(live, shift, 0.0)
    return torch.where(live, (m - shift).exp(), 0.0)


# --------------------------------------------------------------------------------------------------------------
# Accumulation
# --------------------------------------------------------------------------------------------------------------

def _accumulate(acc: torch.Tensor, values: torch.Tensor, weights: torch.Tensor, base: torch.Tensor,
                offsets: tuple[int, ...]) -> None:
    """acc[:, :, base + offsets[k]] += weights[k] * values for the four taps (in place, no autograd).

    acc: [B, C, Lp]; values: [B, C, N] (any float dtype); weights: [4, B, N] in acc's dtype; base: [B, N].
    """
    b, c, lp = acc.shape
    n = base.shape[1]
    lv = lp - offsets[-1]
    index = base[:, None, :].expand(b, c, n)
    src = torch.empty((b, c, n), dtype=acc.dtype, device=acc.device)
    for k, off in enumerate(offsets):
        torch.mul(values, weights[k][:, None, :], out=src)
        acc[:, :, off:off + lv].scatter_add_(2, index, src)


class _TapSplat(torch.autograd.Function):
    """Differentiable four-tap summation splat into the padded accumulator.

    forward(values [B, C, N], weights [4, B, N], base [B, N], lp, offsets) -> acc [B, C, Lp] in weights' dtype.
    Its adjoint is bilinear sampling: grad_values = sum_k weights[k] * grad_acc[base + off_k] and
    grad_weights[k] = sum_c values * grad_acc[base + off_k]. The backward is written with differentiable ops.
    """

    @staticmethod
    def forward(ctx, values, weights, base, lp, offsets):
        b, c, _ = values.shape
        acc = torch.zeros((b, c, lp), dtype=weights.dtype, device=values.device)
        _accumulate(acc, values, weights, base, offsets)
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
        grad_values = 0.0 if ctx.needs_input_grad[0] else None
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


def _safe_denominator(den: torch.Tensor, mode: str) -> torch.Tensor:
    """The divisor of a normalised mode: numerator / divisor is 0 wherever no weight arrived.

    ``avg`` / ``soft`` weights are >= 0, so a zero sum comes with a zero numerator: clamping the sum to the smallest
    normal number gives 0 / tiny = 0 there (and leaves every normal sum exact). ``linear`` weights may have any sign:
    non-positive sums become +inf, so x / inf = 0.
    """
    if mode == "linear":
        return torch.where(den > 0, den, float("inf"))
    return den.clamp(min=torch.finfo(den.dtype).tiny)


def softsplat(input: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None = None, mode: str = "soft",
              return_weight: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Forward-warp ``input`` by ``flow`` with bilinear splatting (summation, average, linear or softmax).

    Every source pixel p goes to ``t = p + flow(p)`` and is spread over the four pixels around t with
    bilinear weights ``b``. Targets outside the image and non-finite targets are dropped. Per target pixel q:

    - ``"sum"``:    out(q) = sum_p b x(p)
    - ``"avg"``:    out(q) = sum_p b x(p) / sum_p b
    - ``"linear"``: out(q) = sum_p b Z(p) x(p) / sum_p b Z(p)            (Z >= 0 expected, e.g. inverse depth)
    - ``"soft"``:   out(q) = sum_p b exp(Z(p)) x(p) / sum_p b exp(Z(p))   (Z larger = in front)

    Normalised modes give 0 where no weight arrived (``"linear"``: where the weight sum is not positive).
    ``metric=None`` with ``"linear"`` or ``"soft"`` is the same as ``"avg"``. Sources with a non-finite metric are
    dropped. Accumulation is float32 (float64 if any operand is float64); the output has ``input``'s dtype.
    Differentiable w.r.t. ``input``, ``flow`` and ``metric`` (first order; twice through the autograd path's
    differentiable backward). Without autograd the work runs in place, chunked over channels.

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
    hp, wp, _, offsets = _padded_geometry(h, w)
    lp = hp * wp
    if mode in ("linear", "soft") and metric is None:
        mode = "avg"
    tracked = (input, flow) if metric is None else (input, flow, metric)
    wd = torch.float64 if any(t.dtype == torch.float64 for t in tracked) else torch.float32
    autograd = force_autograd or (torch.is_grad_enabled() and any(t.requires_grad for t in tracked))
    need_coverage = return_weight or mode == "avg"

    with torch.set_grad_enabled(autograd):
        base, ax, ay = _taps(flow, wd)
        factor = None  # per-source metric factor, [1 or 4, B, N]
        if mode == "soft":
            factor = _softmax_factor(metric, base, ax, ay, lp, offsets, force_per_target)
        elif mode == "linear":
            m = metric.to(wd).reshape(1, b, n)
            factor = torch.where(torch.isfinite(m), m, 0.0)
        values = input.reshape(b, c, n)

        if not autograd:
            return _splat_no_grad(values, base, ax, ay, factor, mode, need_coverage, return_weight, (h, w),
                                  input.dtype)

        bilinear = _tap_weights(ax, ay)
        weights = bilinear if factor is None else bilinear * factor
        ones = torch.ones((b, 1, n), dtype=wd, device=input.device)
        out = _crop(_TapSplat.apply(values, weights, base, lp, offsets), h, w)
        coverage = _crop(_TapSplat.apply(ones, bilinear, base, lp, offsets), h, w) if need_coverage else None
        if mode == "sum":
            out = out.contiguous()
        else:
            den = coverage if mode == "avg" else _crop(_TapSplat.apply(ones, weights, base, lp, offsets), h, w)
            out = out / _safe_denominator(den, mode)
        out = out.to(input.dtype)
        if return_weight:
            return out, coverage.to(input.dtype)
        return out


def _splat_no_grad(values, base, ax, ay, factor, mode, need_coverage, return_weight, size, out_dtype):
    """The inference path: in place, chunked over channels, normalisation fused with cropping.

    Rows of the accumulator: the chunk's channels, then (first chunk only) the normalising weight
    ``bilinear * factor`` (linear / soft) and the coverage ``bilinear`` (when needed). With a single chunk the
    tap weight is written straight into its row of the source buffer and the values are multiplied by that row.
    """
    b, c, n = values.shape
    h, w = size
    hp, wp, lv, offsets = _padded_geometry(h, w)
    lp = hp * wp
    wd = ax.dtype
    device = values.device
    per_tap = factor is not None and factor.shape[0] == 4
    # fold a per-source factor (exp(metric - max) or the linear metric) into the y weights
    ayw = ay * factor if (factor is not None and not per_tap) else ay
    extra = (factor is not None) + need_coverage
    step = c if device.type != "cpu" else max(1, min(c, _CHUNK_ELEMENTS // max(1, b * lp)))
    starts = list(range(0, c, step)) or [0]
    cc_max = min(step, c)
    acc = torch.empty((b, cc_max + extra, lp), dtype=wd, device=device)
    buffer = torch.empty((b, cc_max + extra, n), dtype=wd, device=device)
    shared = None  # tap weights, reused by every chunk when there are several
    if len(starts) > 1:
        shared = _tap_weights(ax, ayw)
        if per_tap:
            shared *= factor
    elif extra == 0:
        scratch = torch.empty((b, n), dtype=wd, device=device)

    out = torch.empty((b, c, h, w), dtype=out_dtype, device=device)
    den = coverage = None
    for c0 in starts:
        c1 = min(c, c0 + step)
        cc = c1 - c0
        first = c0 == 0
        rows = cc + (extra if first else 0)
        chunk_acc = acc[:, :rows].zero_()
        src = buffer[:, :rows]
        index = base[:, None, :].expand(b, rows, n)
        chunk = values[:, c0:c1]
        for k, off in enumerate(offsets):
            i, j = k % 2, k // 2
            if shared is not None:
                weight = shared[k]
                if first and extra:
                    buffer[:, cc].copy_(weight)
            else:
                weight = buffer[:, cc] if extra else scratch
                torch.mul(ax[i], ayw[j], out=weight)
                if per_tap:
                    weight.mul_(factor[k])
            if first and need_coverage and factor is not None:
                torch.mul(ax[i], ay[j], out=buffer[:, cc + 1])
            if cc:
                torch.mul(chunk, weight[:, None, :], out=src[:, :cc])
            chunk_acc[:, :, off:off + lv].scatter_add_(2, index, src)
        cropped = _crop(chunk_acc, h, w)
        if first:
            if return_weight:
                coverage = cropped[:, rows - 1:rows].to(out_dtype, copy=True)
            if mode != "sum":  # row cc: the normalising weight, or the coverage for avg
                den = _safe_denominator(cropped[:, cc:cc + 1], mode)
            cropped = cropped[:, :cc]
        if cc == 0:
            continue
        target = out[:, c0:c1]
        if den is None:
            target.copy_(cropped)
        elif out_dtype == wd:
            torch.div(cropped, den, out=target)
        else:
            target.copy_(cropped / den)
    if return_weight:
        return out, coverage
    return out


# --------------------------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------------------------

def softsplat_reference(input: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None = None,
                        mode: str = "soft", return_weight: bool = False
                        ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Straightforward softmax splatting: four ``scatter_add_`` calls over a [B, C+1(+1), H*W] accumulator.

    Same semantics as :func:`softsplat` (float32 or float64, normalisation channel appended to the input, masks for taps
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
    tracked = (input, flow) if metric is None else (input, flow, metric)
    wd = torch.float64 if any(t.dtype == torch.float64 for t in tracked) else torch.float32
    x = input.to(wd)
    f = flow.to(wd)
    ones = torch.ones((b, 1, h, w), dtype=wd, device=x.device)
    if mode == "sum":
        channels = [x]
    elif mode == "avg":
        channels = [x, ones]
    else:
        m = metric.to(wd)
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
    gx = torch.arange(w, dtype=wd, device=x.device).view(1, 1, w)
    gy = torch.arange(h, dtype=wd, device=x.device).view(1, h, 1)
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
