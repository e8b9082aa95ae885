"""Rendering frames from a picture and its reference-anchored motion by forward splatting (no weights).

GID renders frame t by softmax-splatting I0 with the displacement F_t, weighting by the mean motion magnitude
(moving pixels are assumed to be in front), then filling what no pixel reached. This module does that on
pixels, chunk by chunk, writing into a preallocated output so memory stays flat in the number of frames.

Two kinds of hole are filled differently. Content that enters through the picture's border (a pan, a tilt, an
object sliding in) has no source pixel anywhere in I0; the best guess is to continue the border along the
motion, which is what sampling I0 along the inverted flow with border clamping does (:func:`extend_border`).
Disocclusions inside the picture (background revealed behind a moving object) are filled by multi-scale
push-pull from the surrounding pixels (``ops.fill.fill_holes``).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .containers import LoopBlend
from .fill import fill_holes
from .progress import ProgressFn, report
from .splat import softsplat
from .warp import backward_warp

METRICS = ("motion", "none", "custom")
_METRIC_CHUNK = 16  # frames reduced at once by motion_magnitude_metric


# Working memory of render_frames beyond its inputs and output, measured by bench/bench_render_memory.py (peak RSS
# growth on the CPU at 256, 512 and 1024 px, fill on, with and without a loop blend and a metric): 120-210 bytes per
# pixel and frame of a chunk (the splatted channels, coverage, the inverted flow for the border extension, push-pull's
# pyramid), about 100-200 per pixel, and some MiB whatever the size. Rounded up:
RENDER_BYTES_FIXED = 24 << 20
RENDER_BYTES_PER_PIXEL = 160
RENDER_BYTES_PER_PIXEL_AND_FRAME = 180


def render_memory(height: int, width: int, chunk_size: int) -> int:
    """Bytes :func:`render_frames` needs while it works (beyond the picture, the motion and the output), for
    frames of ``height`` x ``width`` splatted ``chunk_size`` at a time.

    Example:
        >>> render_memory(512, 512, 8) / 2**20   # MiB
        424.0
    """
    pixels = int(height) * int(width)
    return RENDER_BYTES_FIXED + pixels * (RENDER_BYTES_PER_PIXEL + RENDER_BYTES_PER_PIXEL_AND_FRAME * int(chunk_size))


def largest_chunk(height: int, width: int, budget: float, most: int) -> int:
    """The most frames (at most ``most``) :func:`render_frames` may splat at once within ``budget`` bytes of working
    memory; 0 when not even one frame fits.

    Example:
        >>> largest_chunk(512, 512, 2**30, 8), largest_chunk(512, 512, 120 * 2**20, 8), largest_chunk(512, 512, 0, 8)
        (8, 1, 0)
    """
    pixels = int(height) * int(width)
    frames = ((float(budget) - RENDER_BYTES_FIXED) / pixels - RENDER_BYTES_PER_PIXEL) // RENDER_BYTES_PER_PIXEL_AND_FRAME
    return int(max(0, min(int(most), frames)))


def motion_magnitude_metric(displacement: torch.Tensor, temperature: float = 1.0,
                            progress: ProgressFn | None = None) -> torch.Tensor:
    """GID's splat weight: W(p) = (1/T) sum_t ||F_t(p)||_2, times ``temperature``.

    Args:
        displacement: [T, 2, H, W] pixels.
        temperature: scale applied before the softmax (larger = sharper preference for moving pixels).
        progress: ``progress(frames done, T)`` after every 16 frames (``ops/progress.py``); what it raises stops.

    Returns:
        [1, 1, H, W] float32 metric (larger = in front).
    """
    if displacement.ndim != 4 or displacement.shape[1] != 2:
        raise ValueError(f"displacement must be [T, 2, H, W], got {tuple(displacement.shape)}")
    total = torch.zeros(1, 1, *displacement.shape[-2:], dtype=torch.float32, device=displacement.device)
    for start in range(0, displacement.shape[0], _METRIC_CHUNK):  # chunks: no [T, 1, H, W] temporary
        chunk = displacement[start:start + _METRIC_CHUNK].float()
        total += chunk.norm(dim=1, keepdim=True).sum(dim=0, keepdim=True)
        report(progress, min(start + _METRIC_CHUNK, displacement.shape[0]), displacement.shape[0])
    return total * (float(temperature) / max(displacement.shape[0], 1))


def render_frames(image: torch.Tensor, displacement: torch.Tensor, metric: torch.Tensor | None = None,
                  fill: bool = True, chunk_size: int = 8, out: torch.Tensor | None = None,
                  blend: LoopBlend | tuple[torch.Tensor, torch.Tensor] | None = None,
                  on_frames: Callable[[int, int], None] | None = None,
                  hole_threshold: float = 1e-3, border: bool = True, confidence: torch.Tensor | None = None,
                  min_confidence: float = 0.05, blend_coverage: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-splat ``image`` with every frame of ``displacement``; fill holes; return frames and hole fractions.

    Args:
        image: [1, C, H, W] the source picture I0 (any float dtype; computed in float32).
        displacement: [T, 2, H, W] reference-anchored displacements in pixels.
        metric: [1, 1, H, W] softmax-splatting metric (or [T, 1, H, W], one per frame, e.g. brightness
            constancy against known target frames), or None for average splatting.
        fill: fill pixels no source pixel reached (multi-scale push-pull) so no empty pixel remains.
        chunk_size: frames splatted at once; peak memory is about one chunk plus the output.
        out: optional preallocated [T, C, H, W] output (e.g. on the intermediate device).
        blend: optional :class:`~.containers.LoopBlend` (or the pair (second_displacement [T, 2, H, W],
            alpha [T])) for looping by two-way blending, as in Holynski et al.'s Eulerian looping: frame t mixes
            render(displacement_t) and render(second_t) with the backward weight a = ``LoopBlend.alpha`` (one
            value per frame, or per pixel with a phase map). See ``blend_coverage`` for how.
        on_frames: called with (frames done, total) after each chunk (progress, interrupts).
        hole_threshold: bilinear coverage under which a pixel counts as a hole.
        border: with ``fill``, holes whose content enters through the picture's border are filled by extending
            the border along the motion (:func:`extend_border`) before push-pull fills the rest.
        confidence: optional [1 or T, 1, H, W] in [0, 1]: how much each source pixel's motion can be trusted
            (e.g. ``exp(brightness_constancy_metric)``: 1 = its colour matches at its destination). With ``fill``,
            frame pixels whose splatted confidence is under ``min_confidence`` are filled like holes: sources
            that are occluded or carried by a wrong flow (at depth edges, or leaving the frame) do not win a
            pixel just because nothing else lands there. Hole fractions still count bilinear coverage only.
        min_confidence: threshold for ``confidence``.
        blend_coverage: with ``blend``, weigh each render per pixel by how faithfully it covers the pixel as well:
            w_f = (1 - a) q(c_f)^2, w_b = a q(c_b)^2 with c the render's bilinear coverage before filling and
            q(c) = min(c, 1 / c) (1 = one source pixel's worth; less = stretched or a hole the fill made up; more =
            squeezed, several sources averaged), frame = (w_f I_f + w_b I_b + tau lerp(I_f, I_b, a)) / (w_f + w_b +
            tau), tau = 0.05 (so a pixel neither covers falls back to the plain cross-fade, and the weights change
            smoothly). Both directions are resolved per pixel, as one joint splat of both would, instead of
            averaging a filled hole or a smear with a sharp render. False: the plain lerp of the two filled renders
            (Holynski et al.'s blend, the pack's blend before issue 17). Either way a = 0 gives the first render
            exactly, a = 1 the second, and pixels where the renders agree are bit-exact.

    Returns:
        (frames [T, C, H, W] in ``image``'s dtype, hole_fraction [T] before filling).

    Example:
        >>> img = torch.rand(1, 3, 32, 32)
        >>> disp = torch.zeros(4, 2, 32, 32)
        >>> frames, holes = render_frames(img, disp)
        >>> bool(torch.allclose(frames, img.expand(4, -1, -1, -1))), float(holes.max())
        (True, 0.0)
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be [1, C, H, W], got {tuple(image.shape)}")
    if displacement.ndim != 4 or displacement.shape[1] != 2 or displacement.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"displacement must be [T, 2, {image.shape[-2]}, {image.shape[-1]}], "
                         f"got {tuple(displacement.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if metric is not None and (metric.ndim != 4 or metric.shape[0] not in (1, displacement.shape[0])
                               or metric.shape[1] != 1 or metric.shape[-2:] != image.shape[-2:]):
        raise ValueError(f"metric must be [1 or T, 1, H, W] at the picture's size, got {tuple(metric.shape)}")
    if confidence is not None and (confidence.ndim != 4 or confidence.shape[0] not in (1, displacement.shape[0])
                                   or confidence.shape[1] != 1 or confidence.shape[-2:] != image.shape[-2:]):
        raise ValueError(f"confidence must be [1 or T, 1, H, W] at the picture's size, got {tuple(confidence.shape)}")
    total = displacement.shape[0]
    channels = image.shape[1]
    if out is None:
        out = torch.empty(total, channels, *image.shape[-2:], dtype=image.dtype, device=image.device)
    holes = torch.empty(total, dtype=torch.float32)
    source = image.float()
    if blend is not None and not isinstance(blend, LoopBlend):
        blend = LoopBlend(blend[0], blend[1])
    if blend is not None and (blend.displacement.shape != displacement.shape):
        raise ValueError(f"blend displacement must be {tuple(displacement.shape)} like the displacement, got "
                         f"{tuple(blend.displacement.shape)}")
    moving = _moving_pixels(displacement, None if blend is None else blend.displacement)
    for start in range(0, total, chunk_size):
        stop = min(start + chunk_size, total)
        chunk_metric = metric if metric is None or metric.shape[0] == 1 else metric[start:stop]
        trust = None
        if confidence is not None and fill:
            trust = (confidence if confidence.shape[0] == 1 else confidence[start:stop], float(min_confidence))
        frames, hole, coverage = _render_chunk(source, displacement[start:stop], chunk_metric, fill, hole_threshold,
                                               moving, border, trust)
        if blend is not None:
            other, other_hole, other_coverage = _render_chunk(source, blend.displacement[start:stop], chunk_metric,
                                                              fill, hole_threshold, moving, border)
            a = blend.alpha(start, stop).to(frames)
            frames = _blend(frames, other, a, coverage if blend_coverage else None, other_coverage)
            hole = torch.maximum(hole, other_hole)
        out[start:stop] = frames.to(out.dtype).to(out.device)
        holes[start:stop] = hole
        if on_frames is not None:
            on_frames(stop, total)
    return out, holes


BLEND_TAU = 0.05  # render_frames' blend_coverage: the plain cross-fade's weight beside the coverage weights


def _blend(first: torch.Tensor, second: torch.Tensor, alpha: torch.Tensor, first_coverage: torch.Tensor | None,
           second_coverage: torch.Tensor) -> torch.Tensor:
    """Two renders [n, C, H, W] mixed with the second's weight alpha ([n, 1, 1 or H, 1 or W]); coverage-weighted
    when ``first_coverage`` is given (see render_frames' ``blend_coverage``)."""
    plain = torch.lerp(first, second, alpha)
    if first_coverage is None:
        mixed = plain
    else:
        def quality(coverage: torch.Tensor) -> torch.Tensor:
            return torch.minimum(coverage, 1.0 / coverage.clamp_min(1e-6)).square()

        w_first = (1.0 - alpha) * quality(first_coverage)
        w_second = alpha * quality(second_coverage)
        mixed = (w_first * first + w_second * second + BLEND_TAU * plain) / (w_first + w_second + BLEND_TAU)
    # exact where only one render counts and where both agree (still pixels stay bit-exact)
    mixed = torch.where(alpha <= 0, first, torch.where(alpha >= 1, second, mixed))
    return torch.where(first == second, first, mixed)


def _moving_pixels(displacement: torch.Tensor, second: torch.Tensor | None) -> torch.Tensor | None:
    """[1, 1, H, W] mask of source pixels that move in some frame, or None when every pixel moves."""
    moving = None
    for flow in (displacement, second):
        if flow is None:
            continue
        # amax and amin reduce in place; .abs() would copy the whole [T, 2, H, W] displacement
        nonzero = (flow.amax(dim=(0, 1)) != 0) | (flow.amin(dim=(0, 1)) != 0)
        moving = nonzero if moving is None else moving | nonzero
    moving = moving.float()[None, None]
    return None if bool(moving.all()) else moving


def extend_border(frames: torch.Tensor, coverage: torch.Tensor, source: torch.Tensor, inverse: torch.Tensor,
                  threshold: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill the holes whose content enters through the picture's border by continuing the border along the motion.

    A hole pixel q whose inverse flow leads outside the picture (q + inverse(q) off the grid) shows content that
    was not in I0 at all; sampling I0 there with border clamping repeats the border pixel the motion brings in
    (the camera's pan or tilt continues the scene the way the border looks). Push-pull would instead average
    the colours around the hole, mixing whatever touches it. Other holes are left for push-pull.

    Args:
        frames: [N, C, H, W] splatted frames (hole values ignored).
        coverage: [N, 1, H, W] bilinear coverage of the splat.
        source: [1 or N, C, H, W] the picture I0.
        inverse: [N, 2, H, W] pixels, the inverted flow on the frames' grid with its holes filled (target pixel
            q came from q + inverse(q) in I0; e.g. ``ops.warp.invert_flow``).
        threshold: coverage under which a pixel is a hole.

    Returns:
        (frames with the entering holes filled, coverage with those pixels set to 1), both [N, ., H, W].

    Example:
        >>> image = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 3, 4)   # columns 0 1 2 3
        >>> frames = torch.zeros(1, 1, 3, 4); frames[..., 1:] = image[..., :3]  # moved 1 px right
        >>> coverage = torch.ones(1, 1, 3, 4); coverage[..., 0] = 0           # column 0 entered from the left
        >>> inverse = torch.full((1, 2, 3, 4), -1.0); inverse[:, 1] = 0
        >>> extend_border(frames, coverage, image, inverse)[0][0, 0, 0].tolist()
        [0.0, 0.0, 1.0, 2.0]
    """
    n, _, h, w = frames.shape
    hole = coverage < threshold
    if not bool(hole.any()):
        return frames, coverage
    x = torch.arange(w, device=inverse.device, dtype=inverse.dtype).view(1, 1, w) + inverse[:, 0]
    y = torch.arange(h, device=inverse.device, dtype=inverse.dtype).view(1, h, 1) + inverse[:, 1]
    # half a pixel of slack: a sample within the outermost pixels' extent is still inside the picture
    outside = ((x < -0.5) | (x > w - 0.5) | (y < -0.5) | (y > h - 0.5))[:, None]
    entering = hole & outside
    if not bool(entering.any()):
        return frames, coverage
    extended = backward_warp(source.expand(n, -1, -1, -1).to(frames.dtype), inverse.to(frames.dtype),
                             padding_mode="border")
    return torch.where(entering, extended, frames), torch.where(entering, torch.ones_like(coverage), coverage)


def _render_chunk(source: torch.Tensor, displacement: torch.Tensor, metric: torch.Tensor | None, fill: bool,
                  hole_threshold: float, moving: torch.Tensor | None, border: bool = True,
                  trust: tuple[torch.Tensor, float] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frames [n, C, H, W], hole fraction [n] before filling, bilinear coverage [n, 1, H, W] before filling)."""
    n = displacement.shape[0]
    flow = displacement.to(source.device, torch.float32)
    channels = source.shape[1]
    # A still pixel that no moving pixel reaches must come out bit-exact (x * w / w can be off by one ulp,
    # which flips a quantised value and makes still regions flicker): splat the moving mask along and
    # copy the source wherever it stays exactly zero. With ``border`` the negated flow rides along too: splatted,
    # it is the inverted flow (where each frame pixel came from), which extend_border needs.
    parts = [source.expand(n, -1, -1, -1)]
    if moving is not None:
        parts.append(moving.to(source).expand(n, -1, -1, -1))
    invert = fill and border
    if invert:
        parts.append(-flow)
    if trust is not None:  # rides along too: the splatted confidence is the front sources' mean confidence
        parts.append(trust[0].to(flow).expand(n, -1, -1, -1))
    batch = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    if metric is None:
        splat, coverage = softsplat(batch, flow, None, mode="avg", return_weight=True)
    else:
        splat, coverage = softsplat(batch, flow, metric.to(flow).expand(n, -1, -1, -1).contiguous(),
                                    mode="soft", return_weight=True)
    frames = splat[:, :channels]
    if moving is not None:
        untouched = (splat[:, channels:channels + 1] == 0) & (moving.to(frames) == 0) & (coverage >= hole_threshold)
        frames = torch.where(untouched, source.expand(n, -1, -1, -1), frames)
    hole = (coverage < hole_threshold).float().mean(dim=(1, 2, 3)).cpu()
    if fill:
        known = coverage
        if trust is not None:
            known = torch.where(splat[:, -1:] < trust[1], torch.zeros_like(coverage), coverage)
        if invert and bool((known < hole_threshold).any()):
            first = channels + (0 if moving is None else 1)
            inverse = fill_holes(splat[:, first:first + 2], coverage, threshold=hole_threshold)
            frames, known = extend_border(frames, known, source, inverse, hole_threshold)
        frames = fill_holes(frames, known, threshold=hole_threshold)
    return frames, hole, coverage
