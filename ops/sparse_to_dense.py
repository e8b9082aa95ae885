"""Sparse user motion (arrows, trajectories) to dense motion fields, and the motion brush.

Conventions: pixels at the picture's H x W, pixel centres on integer coordinates, channel 0 = x (right),
channel 1 = y (down). Velocity fields are [2, H, W] in pixels per frame; motions are reference-anchored
displacements [T, 2, H, W] in pixels (frame t = where pixel p of the first frame is at time t, minus p).

- :func:`gaussian_arrow_field`: arrows -> dense velocity, Eqs. 5-7 of "Controllable Longer Image Animation".
- :func:`geodesic_affinity`, :func:`edge_aware_refine`, :func:`edge_aware_arrow_field`: keep that motion from
  bleeding across object boundaries of the picture.
- :func:`apply_brush`: the motion brush; pixels outside it get exactly zero motion.
- :func:`tracks_to_sparse_flow`: trajectories -> per-frame sparse displacements + masks (Motion-I2V's "sparse flow",
  its ControlNet input).
- :func:`tracks_to_dense_motion`: trajectories -> dense reference-anchored motion, so a drawn path drags the region
  under it.

Memory does not grow with arrows x pixels or tracks x pixels: arrows and tracks are taken in chunks of at most
:data:`CHUNK_ELEMENTS` weights (chunk size x H x W) and accumulated into one field. The loops over chunks report
progress (``ops.progress``), so a callback can show it and interrupt them.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .progress import ProgressFn, report, sub_progress
from .trajectories import Arrows, Tracks, TrajectoryFormatError, resample_tracks

__all__ = [
    "apply_brush",
    "default_sigma",
    "edge_aware_arrow_field",
    "edge_aware_refine",
    "gaussian_arrow_field",
    "geodesic_affinity",
    "tracks_to_dense_motion",
    "tracks_to_sparse_flow",
]


def default_sigma(height: int, width: int) -> float:
    """The long-animation paper's Gaussian width, proportional to the frame size: 170 px at 512 px."""
    return 170.0 * max(int(height), int(width)) / 512.0


def _check_size(height: int, width: int) -> tuple[int, int]:
    h, w = int(height), int(width)
    if h < 1 or w < 1:
        raise ValueError(f"height and width must be >= 1, got {height} x {width}")
    return h, w


def _pixel_grid(height: int, width: int, device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    ys = torch.arange(height, device=device, dtype=dtype)[:, None].expand(height, width)
    xs = torch.arange(width, device=device, dtype=dtype)[None, :].expand(height, width)
    return xs, ys


CHUNK_ELEMENTS = 1 << 20
"""Most [K, H, W] per-arrow or per-track weights held at once (4 MB of float32, a few such temporaries), whatever
the number of arrows or tracks."""


def _chunks(count: int, height: int, width: int, cap: int | None = None) -> list[slice]:
    """Slices of ``count`` arrows or tracks whose [K, H, W] maps stay within CHUNK_ELEMENTS (and ``cap``)."""
    size = max(1, CHUNK_ELEMENTS // max(1, height * width))
    if cap is not None:
        size = min(size, cap)
    return [slice(i, min(i + size, count)) for i in range(0, count, size)]


def _squared_distances(points: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """[K, H, W] squared distance of every pixel to each of the [K, 2] points."""
    return (xs[None] - points[:, 0, None, None]) ** 2 + (ys[None] - points[:, 1, None, None]) ** 2


def _as_guide(guide: torch.Tensor, height: int, width: int) -> torch.Tensor:
    g = guide[None] if guide.ndim == 3 else guide
    if g.ndim != 4 or g.shape[0] != 1 or g.shape[1] not in (1, 3):
        raise ValueError(f"guide must be a [3, H, W] (or [1, H, W]) picture, got {tuple(guide.shape)}")
    if tuple(g.shape[-2:]) != (height, width):
        raise ValueError(f"guide is {g.shape[-2]}x{g.shape[-1]} but the field is {height}x{width}")
    return g.float()


# ----------------------------------------------------------------------------------------------------------------------
# Arrows -> dense velocity (Eqs. 5-7)
# ----------------------------------------------------------------------------------------------------------------------


def gaussian_arrow_field(arrows: Arrows, height: int, width: int, sigma: float | None = None, threshold: float = 0.05,
                         strength: float = 1.0, *, affinity: torch.Tensor | None = None, device=None,
                         progress: ProgressFn | None = None) -> torch.Tensor:
    """Dense velocity from arrows by Gaussian interpolation (Controllable Longer Image Animation, Eqs. 5-7).

    With f_s^i = (end_i - start_i) * speed_i * strength placed at arrow i's start point s_i (Eq. 5),
    every pixel p gets (Eq. 6)

        f_d(p) = sum_i exp(-(|p - s_i| / sigma)^2) * a_i(p) * f_s^i

    and then (Eq. 7) f_d(p) = 0 wherever |f_d(p)| <= threshold. ``a_i`` is an optional per-arrow affinity
    (1 everywhere when None, which is the paper's formula; see :func:`edge_aware_arrow_field`).

    Units: the arrow vectors are read as pixels per frame, so the field is a velocity in pixels per frame (an
    arrow's own start pixel, far from other arrows, moves by exactly its vector times speed times strength per
    frame). To make an arrow mean "displacement over a clip of N frames", pass ``strength=1/N``. ``threshold`` (R)
    is in the same units, applied after ``strength``.

    Args:
        arrows: N arrows in pixels.
        height, width: field size, pixels.
        sigma: Gaussian width in pixels; default 170 * max(H, W) / 512 ("proportional to the frame size").
        threshold: R of Eq. 7, pixels per frame (0 disables it).
        strength: global multiplier of every arrow.
        affinity: optional [N, H, W] in [0, 1], multiplies arrow i's weight.
        progress: ``progress(done, total)`` after each chunk of arrows (see ``ops.progress``).

    Returns:
        [2, H, W] float32 velocity, pixels per frame.

    Example:
        >>> a = Arrows(torch.tensor([[32., 32.]]), torch.tensor([[36., 32.]]))
        >>> f = gaussian_arrow_field(a, 64, 64)
        >>> f[:, 32, 32].tolist()
        [4.0, 0.0]
    """
    height, width = _check_size(height, width)
    if not isinstance(arrows, Arrows):
        raise TypeError(f"arrows must be an Arrows, got {type(arrows).__name__}")
    device = torch.device(device) if device is not None else arrows.start.device
    if affinity is not None and tuple(affinity.shape) != (arrows.num_arrows, height, width):
        raise ValueError(f"affinity must be [N, H, W] = {(arrows.num_arrows, height, width)}, "
                         f"got {tuple(affinity.shape)}")
    affinity_of = None if affinity is None else (lambda part, _progress: affinity[part])
    return _arrow_field(arrows, height, width, sigma, threshold, strength, device, affinity_of, progress)


def _arrow_field(arrows: Arrows, height: int, width: int, sigma: float | None, threshold: float, strength: float,
                 device, affinity_of: Callable | None, progress: ProgressFn | None, cap: int | None = None
                 ) -> torch.Tensor:
    """Eqs. 5-7 over chunks of arrows; ``affinity_of(slice, progress)`` gives a chunk's [K, H, W] affinities."""
    sigma = default_sigma(height, width) if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    xs, ys = _pixel_grid(height, width, device)
    field = torch.zeros(2, height * width, device=device, dtype=torch.float32)
    starts = arrows.start.to(device, torch.float32)
    vectors = (arrows.vectors() * float(strength)).to(device, torch.float32)
    inv_s2 = 1.0 / (sigma * sigma)
    chunks = _chunks(arrows.num_arrows, height, width, cap)
    for k, part in enumerate(chunks):
        weight = torch.exp(-_squared_distances(starts[part], xs, ys) * inv_s2)  # [K, H, W]
        if affinity_of is not None:
            weight *= affinity_of(part, sub_progress(progress, k, 1, len(chunks))).to(device, torch.float32)
        field.addmm_(vectors[part].t(), weight.view(weight.shape[0], -1))  # sum_i w_i(p) f_i
        report(progress, k + 1, len(chunks))
    field = field.view(2, height, width)
    if threshold > 0:
        field = torch.where((field.square().sum(0, keepdim=True).sqrt() > threshold), field, torch.zeros_like(field))
    return field


# ----------------------------------------------------------------------------------------------------------------------
# Edge awareness
# ----------------------------------------------------------------------------------------------------------------------

_COST_CAP = 30.0


def _cummin(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Running minimum along ``dim`` by doubling (log2(n) elementwise minima): the same values as
    ``torch.cummin(x, dim).values``, several times faster on CPU (no indices, no strided sequential pass)."""
    n = x.shape[dim]
    x = x.clone()
    shift = 1
    while shift < n:
        smaller = torch.minimum(x.narrow(dim, shift, n - shift), x.narrow(dim, 0, n - shift))
        x.narrow(dim, shift, n - shift).copy_(smaller)
        shift *= 2
    return x


def _scan_axis(total: torch.Tensor, step: torch.Tensor, dim: int) -> torch.Tensor:
    """One forward and one backward min-plus scan of path costs along ``dim`` (vectorised running minima).

    ``step`` holds the cost between index i-1 and i along ``dim`` (0 at i = 0). With S = cumsum(step):
    forward  C'(i) = min_{k<=i} C(k) + S(i) - S(k) = S(i) + cummin(C - S)(i);
    backward C'(i) = min_{k>=i} C(k) + S(k) - S(i) = -S(i) + reverse-cummin(C + S)(i).
    """
    prefix = torch.cumsum(step, dim=dim)
    total = torch.minimum(total, prefix + _cummin(total - prefix, dim))
    backward = torch.flip(_cummin(torch.flip(total + prefix, dims=(dim,)), dim), dims=(dim,))
    return torch.minimum(total, backward - prefix).clamp_max_(_COST_CAP)


def geodesic_affinity(guide: torch.Tensor, seeds: torch.Tensor, *, sigma_color: float = 0.1, tolerance: float = 0.03,
                      work_size: int = 128, smooth: bool = True, max_iterations: int = 64,
                      progress: ProgressFn | None = None) -> torch.Tensor:
    """How reachable every pixel is from each seed without crossing an edge of the picture, in [0, 1].

    a_i(p) = exp(-C_i(p)), where C_i(p) is the cheapest 4-connected path from seed i to p with step cost
    ``(max(|I(q) - I(q')| - tolerance, 0) / sigma_color)^2`` (|.| = RGB Euclidean distance of the guide, values in
    [0, 1]). Inside a region C stays ~0 (a ~ 1), so distance fall-off is left to the caller; one step across a strong
    edge costs a lot (a black/white edge: a ~ 0). Costs add up along the path, so several moderate edges also stop it.

    Computed at a working resolution (long side ``work_size``) on a guide pre-smoothed by kornia's self-guided filter
    (texture below ~0.1 contrast is flattened, strong edges kept), by alternating row and column min-plus scans
    until nothing changes (each scan crosses the whole picture, so a few rounds suffice); then upsampled
    bilinearly and snapped to the full-resolution edges with kornia's guided filter (grey guidance).

    Args:
        guide: [3, H, W] picture in [0, 1].
        seeds: [N, 2] seed points (x, y) in pixels (e.g. ``arrows.start``).
        sigma_color: colour-distance scale of the step cost.
        tolerance: colour steps below this cost nothing (texture, noise).
        work_size: long side of the working resolution.
        smooth: pre-smooth the guide with kornia.filters.guided_blur.
        max_iterations: cap on the rounds of row + column scans.
        progress: ``progress(round, max_iterations)`` after each round of scans (see ``ops.progress``).

    Returns:
        [N, H, W] float32 in [0, 1]. Memory is N x H x W: for many seeds, call it on chunks of them (as
        :func:`edge_aware_arrow_field` does).
    """
    import kornia

    if seeds.ndim != 2 or seeds.shape[-1] != 2:
        raise ValueError(f"seeds must be [N, 2] points, got {tuple(seeds.shape)}")
    height, width = guide.shape[-2:]
    g = _as_guide(guide, height, width)
    device = g.device
    n = int(seeds.shape[0])
    if n == 0:
        return torch.zeros(0, height, width, device=device)
    scale = min(1.0, work_size / max(height, width))
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    small = F.interpolate(g, size=(h, w), mode="area") if (h, w) != (height, width) else g
    if smooth and min(h, w) >= 5:
        small = kornia.filters.guided_blur(small, small, kernel_size=5, eps=0.01)
    small = small[0]
    # seed pixels at the working resolution (half-pixel convention of area resizing)
    sx = ((seeds[:, 0].to(device).double() + 0.5) * (w / width) - 0.5).round().clamp(0, w - 1).long()
    sy = ((seeds[:, 1].to(device).double() + 0.5) * (h / height) - 0.5).round().clamp(0, h - 1).long()

    def step_cost(diff: torch.Tensor) -> torch.Tensor:
        cost = ((diff.square().sum(0).sqrt() - tolerance).clamp_min(0) / sigma_color).square()
        return cost.clamp_max(_COST_CAP)  # a step that costs the cap is a wall; keeps the prefix sums small

    step_x = F.pad(step_cost(small[:, :, 1:] - small[:, :, :-1]), (1, 0))  # [h, w], cost between x-1 and x
    step_y = F.pad(step_cost(small[:, 1:] - small[:, :-1]), (0, 0, 1, 0))  # [h, w], cost between y-1 and y
    # path costs above _COST_CAP are "unreachable" (affinity < 1e-13); capping keeps the rounds few and finite
    total = torch.full((n, h, w), _COST_CAP, device=device, dtype=torch.float32)
    total[torch.arange(n, device=device), sy, sx] = 0.0
    rounds = max(1, int(max_iterations))
    for i in range(rounds):
        updated = _scan_axis(_scan_axis(total, step_x, dim=-1), step_y, dim=-2)
        change = float((total - updated).max())
        total = updated
        report(progress, i + 1, rounds)
        if change < 1e-3:  # affinities within 0.1 %
            break
    affinity = torch.exp(-total)[None]  # [1, N, h, w]
    if (h, w) != (height, width):
        affinity = F.interpolate(affinity, size=(height, width), mode="bilinear", align_corners=False)
        radius = max(1, round(1.0 / scale))
        luma = g.mean(1, keepdim=True)  # grey guidance: the colour edges were already used at the working size
        affinity = kornia.filters.guided_blur(luma, affinity, kernel_size=2 * radius + 1, eps=1e-3)
    return affinity[0].clamp(0.0, 1.0)


def _field_peaks(field: torch.Tensor, max_seeds: int = 64, work_size: int = 128) -> torch.Tensor:
    """[K, 2] pixel positions of the local maxima of |field| (the arrow starts of a Gaussian arrow field)."""
    mag = field.float().square().sum(0).sqrt()[None, None]
    height, width = mag.shape[-2:]
    scale = min(1.0, work_size / max(height, width))
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    small = F.interpolate(mag, size=(h, w), mode="area") if (h, w) != (height, width) else mag
    peak = (small == F.max_pool2d(small, 5, stride=1, padding=2)) & (small > 0.05 * small.max()) & (small > 0)
    ys, xs = peak[0, 0].nonzero(as_tuple=True)
    values = small[0, 0, ys, xs]
    order = values.argsort(descending=True)[:max_seeds]
    pts = torch.stack([(xs[order].float() + 0.5) / (w / width) - 0.5, (ys[order].float() + 0.5) / (h / height) - 0.5],
                      dim=-1)
    return pts


_AFFINITY_CHUNK = 16
"""Most seeds whose geodesic affinities are computed together (each chunk takes well under a second)."""


def edge_aware_refine(field: torch.Tensor, guide: torch.Tensor, *, seeds=None, sigma_color: float = 0.1,
                      tolerance: float = 0.03, work_size: int = 128, progress: ProgressFn | None = None
                      ) -> torch.Tensor:
    """Remove the motion that a smooth field spreads across object boundaries of the picture.

    ``out(p) = field(p) * max_i a_i(p)`` with ``a_i`` the :func:`geodesic_affinity` of seed i: motion is kept in the
    regions reachable from a seed without crossing a strong edge of ``guide`` and fades on the other side.
    Pixels where ``field`` is exactly zero stay exactly zero (threshold R and brush are preserved).

    Args:
        field: [2, H, W] velocity (e.g. from :func:`gaussian_arrow_field`).
        guide: [3, H, W] picture in [0, 1], same size.
        seeds: where the motion comes from: an :class:`Arrows` (its starts), [K, 2] points, or None to use the local
            maxima of |field| (the arrow starts of a Gaussian arrow field).
        sigma_color, tolerance, work_size: see :func:`geodesic_affinity`.
        progress: ``progress(done, total)`` over the chunks of seeds.

    Returns:
        [2, H, W] float32.

    With several arrows on both sides of an edge, prefer :func:`edge_aware_arrow_field`, which gates each arrow by
    its own affinity instead of the union.
    """
    if field.ndim != 3 or field.shape[0] != 2:
        raise ValueError(f"field must be [2, H, W], got {tuple(field.shape)}")
    height, width = field.shape[-2:]
    _as_guide(guide, height, width)
    if seeds is None:
        points = _field_peaks(field, work_size=work_size)
    elif isinstance(seeds, Arrows):
        points = seeds.start
    else:
        points = torch.as_tensor(seeds, dtype=torch.float32)
    if points.shape[0] == 0:
        return field.float().clone()
    points = points.to(field.device)
    gate = torch.zeros(height, width, device=field.device)
    chunks = _chunks(points.shape[0], height, width, cap=_AFFINITY_CHUNK)
    for k, part in enumerate(chunks):  # the union max_i a_i, one chunk of seeds at a time
        affinity = geodesic_affinity(guide, points[part], sigma_color=sigma_color, tolerance=tolerance,
                                     work_size=work_size, progress=sub_progress(progress, k, 1, len(chunks)))
        gate = torch.maximum(gate, affinity.amax(0))
        report(progress, k + 1, len(chunks))
    out = field.float() * gate[None]
    return torch.where(field == 0, torch.zeros_like(out), out)


def edge_aware_arrow_field(arrows: Arrows, guide: torch.Tensor, sigma: float | None = None, threshold: float = 0.05,
                           strength: float = 1.0, *, sigma_color: float = 0.1, tolerance: float = 0.03,
                           work_size: int = 128, progress: ProgressFn | None = None) -> torch.Tensor:
    """Eqs. 5-7 with each arrow's Gaussian weight multiplied by its geodesic affinity: an arrow moves its own region.

    ``f_d(p) = sum_i exp(-(|p - s_i| / sigma)^2) a_i(p) f_s^i``, then Eq. 7's threshold. Same units as
    :func:`gaussian_arrow_field`; ``guide`` is [3, H, W] in [0, 1] and sets the size. The affinities are computed
    for a chunk of arrows at a time and accumulated, so memory stays bounded for any number of arrows;
    ``progress(done, total)`` reports the chunks (and the scan rounds within each).
    """
    height, width = guide.shape[-2:]
    _as_guide(guide, height, width)
    if not isinstance(arrows, Arrows):
        raise TypeError(f"arrows must be an Arrows, got {type(arrows).__name__}")
    starts = arrows.start.to(guide.device)

    def affinity_of(part: slice, chunk_progress) -> torch.Tensor:
        return geodesic_affinity(guide, starts[part], sigma_color=sigma_color, tolerance=tolerance,
                                 work_size=work_size, progress=chunk_progress)

    return _arrow_field(arrows, height, width, sigma, threshold, strength, guide.device, affinity_of, progress,
                        cap=_AFFINITY_CHUNK)


# ----------------------------------------------------------------------------------------------------------------------
# Motion brush
# ----------------------------------------------------------------------------------------------------------------------


def apply_brush(field: torch.Tensor, mask: torch.Tensor, invert: bool = False, *,
                input_name: str = "brush") -> torch.Tensor:
    """Restrict motion to a painted region: ``field * m`` with m = mask (or 1 - mask when ``invert``).

    Where m == 0 the result is exactly 0 (not merely small); soft values in (0, 1) scale the motion.

    Args:
        field: [2, H, W] or [T, 2, H, W] velocity or displacement.
        mask: [H, W] (or [1, H, W], [1, 1, H, W]: a ComfyUI MASK of batch 1) in [0, 1]; 1 = may move.
        invert: the mask marks what must stay still.
        input_name: the name used in error messages.

    Raises:
        TrajectoryFormatError: the mask's size differs from the field's, or it holds NaN.
    """
    if field.ndim not in (3, 4) or field.shape[-3] != 2:
        raise ValueError(f"field must be [2, H, W] or [T, 2, H, W], got {tuple(field.shape)}")
    m = torch.as_tensor(mask)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise TrajectoryFormatError(input_name, f"expected one [H, W] mask, got shape {tuple(mask.shape)}")
    if tuple(m.shape) != tuple(field.shape[-2:]):
        raise TrajectoryFormatError(input_name, f"the mask is {m.shape[0]}x{m.shape[1]} (H x W) but the motion is "
                                                f"{field.shape[-2]}x{field.shape[-1]}; resize the mask to the picture")
    m = m.to(field.device, torch.float32)
    if torch.isnan(m).any():
        raise TrajectoryFormatError(input_name, "the mask contains NaN")
    m = m.clamp(0.0, 1.0)
    if invert:
        m = 1.0 - m
    out = field * m
    return torch.where(m > 0, out, torch.zeros_like(out))


# ----------------------------------------------------------------------------------------------------------------------
# Trajectories -> sparse displacements (Motion-I2V's sparse flow) and dense motion
# ----------------------------------------------------------------------------------------------------------------------


def _tracks_for(tracks: Tracks, num_frames: int, parameter: str, input_name: str = "tracks") -> Tracks:
    if not isinstance(tracks, Tracks):
        raise TypeError(f"tracks must be a Tracks, got {type(tracks).__name__}")
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if tracks.num_frames != num_frames or tracks.timing is not None:
        tracks = resample_tracks(tracks, int(num_frames), parameter=parameter, input_name=input_name)
    return tracks


def _anchors(points0: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, 2] long: the pixel nearest each start point, inside the picture."""
    x = points0[:, 0].round().clamp(0, width - 1)
    y = points0[:, 1].round().clamp(0, height - 1)
    return torch.stack([x, y], dim=-1).long()


def tracks_to_sparse_flow(tracks: Tracks, height: int, width: int, num_frames: int, radius: int | None = None, *,
                          parameter: str = "index", device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame sparse, reference-anchored displacements and masks, as Motion-I2V's trajectory ControlNet takes them
    (its "sparse flow").

    The tracks are first resampled to ``num_frames`` points with PCHIP (:func:`resample_tracks`). For frame t, the
    square patch of +-radius pixels around the pixel nearest track n's start gets ``p_n(t) - p_n(0)`` and mask 1;
    everything else gets 0 and mask 0. Where patches overlap, the track whose start is nearest wins. A hidden point
    (visibility False) leaves its patch at displacement 0, mask 0 for that frame. Frame 0 is zero, with mask 1 on the
    patches.

    Args:
        tracks: trajectories in pixels.
        height, width: picture size.
        num_frames: N frames (including the reference frame 0).
        radius: patch half-size in pixels; default max(2, round(max(H, W) / 128)) (4 at 512 px).
        parameter: PCHIP time parameterisation, "index" or "arclength".

    Returns:
        displacements [N, 2, H, W] float32 pixels, mask [N, 1, H, W] float32 in {0, 1}.
    """
    height, width = _check_size(height, width)
    tracks = _tracks_for(tracks, num_frames, parameter)
    device = torch.device(device) if device is not None else tracks.points.device
    radius = max(2, round(max(height, width) / 128)) if radius is None else int(radius)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    pts = tracks.points.to(device)
    vis = tracks.visibility.to(device)
    disp = pts - pts[:1]  # [T, N, 2]
    anchors = _anchors(pts[0], height, width)
    xs, ys = _pixel_grid(height, width, device)
    owner = torch.full((height, width), -1, dtype=torch.long, device=device)
    best = torch.full((height, width), float("inf"), device=device)
    for n in range(tracks.num_tracks):
        ax, ay = int(anchors[n, 0]), int(anchors[n, 1])
        x0, x1 = max(ax - radius, 0), min(ax + radius, width - 1) + 1
        y0, y1 = max(ay - radius, 0), min(ay + radius, height - 1) + 1
        d = (xs[y0:y1, x0:x1] - pts[0, n, 0]) ** 2 + (ys[y0:y1, x0:x1] - pts[0, n, 1]) ** 2
        closer = d < best[y0:y1, x0:x1]
        best[y0:y1, x0:x1] = torch.where(closer, d, best[y0:y1, x0:x1])
        owner[y0:y1, x0:x1] = torch.where(closer, torch.full_like(d, n, dtype=torch.long), owner[y0:y1, x0:x1])
    covered = owner >= 0
    idx = owner.clamp_min(0)
    sparse = disp[:, idx].permute(0, 3, 1, 2).contiguous()  # [T, 2, H, W]
    mask = (vis[:, idx] & covered[None]).float()[:, None]  # [T, 1, H, W]
    sparse = sparse * mask
    sparse[0] = 0.0
    return sparse, mask


def _hold_hidden(points: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
    """Replace hidden points by the track's last visible position (forward fill in time)."""
    out = points.clone()
    for t in range(1, points.shape[0]):
        hidden = ~visibility[t]
        out[t, hidden] = out[t - 1, hidden]
    return out


def tracks_to_dense_motion(tracks: Tracks, height: int, width: int, num_frames: int, sigma: float | None = None,
                           brush: torch.Tensor | None = None, *, invert_brush: bool = False, parameter: str = "index",
                           device=None, progress: ProgressFn | None = None,
                           input_name: str = "tracks") -> torch.Tensor:
    """Dense reference-anchored motion that drags the region under each drawn path along it.

    Tracks are resampled to ``num_frames`` with PCHIP (and their per-track timing); track n has displacement d_n(t) = p_n(t) - p_n(0) and is
    anchored at a_n, the pixel nearest its start. For every pixel p and frame t:

        w_n(p) = exp(-(|p - a_n| / sigma)^2) / |p - a_n|^2          (Gaussian-weighted inverse-distance weights)
        u_t(p) = sum_n w_n(p) d_n(t) / sum_n w_n(p)                  (normalised: interpolates the tracks exactly)
        g(p)   = 1 - prod_n (1 - exp(-(|p - a_n| / sigma)^2))        (fall-off: 1 at every anchor, -> 0 far away)
        D_t(p) = g(p) * u_t(p),   D_t(a_n) = d_n(t) exactly,   D_0 = 0,

    then the brush (:func:`apply_brush`): pixels outside it get exactly 0. A track hidden at frame t holds its last
    visible position; tracks hidden at frame 0 are ignored. Several tracks anchored on the same pixel share it
    (their mean). Stationary tracks pin their region (d = 0).

    Args:
        tracks: trajectories in pixels.
        height, width: picture size.
        num_frames: number of output frames.
        sigma: fall-off width in pixels; default max(H, W) / 8 (64 px at 512 px): the region within ~sigma/3 of a
            path's start moves almost rigidly with it.
        brush: optional [H, W] mask in [0, 1] of what may move (``invert_brush``: what must stay still).
        parameter: PCHIP time parameterisation, "index" or "arclength".
        progress: ``progress(done, total)`` after each chunk of tracks (see ``ops.progress``).
        input_name: the input named in timing errors.

    Returns:
        [num_frames, 2, H, W] float32 displacement, pixels. Memory: the output plus one chunk of [K, H, W]
        weights; the normalised weights are accumulated over chunks of tracks (a running softmax).

    Example:
        >>> t = Tracks(torch.tensor([[[10., 10.]], [[20., 14.]]]))
        >>> m = tracks_to_dense_motion(t, 32, 32, num_frames=3)
        >>> m[-1, :, 10, 10].tolist(), m[0].abs().max().item()
        ([10.0, 4.0], 0.0)
    """
    height, width = _check_size(height, width)
    tracks = _tracks_for(tracks, num_frames, parameter, input_name)
    device = torch.device(device) if device is not None else tracks.points.device
    sigma = max(height, width) / 8.0 if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    out = torch.zeros(int(num_frames), 2, height, width, device=device)
    keep = tracks.visibility[0].to(device)
    if keep.any() and num_frames > 1:
        pts = _hold_hidden(tracks.points.to(device), tracks.visibility.to(device))[:, keep]  # [T, N, 2]
        disp = (pts - pts[:1]).float()
        anchors = _anchors(pts[0], height, width)
        _blend_tracks(out, disp, anchors, sigma, progress)
        _pin_anchors(out, disp, anchors)
    if brush is not None:
        out = apply_brush(out, brush, invert=invert_brush)
    return out


def _blend_tracks(out: torch.Tensor, disp: torch.Tensor, anchors: torch.Tensor, sigma: float,
                  progress: ProgressFn | None) -> None:
    """out [T, 2, H, W] = g(p) * sum_n w_n(p) d_n(t) / sum_n w_n(p), over chunks of tracks.

    log w_n = -d2 / sigma^2 - log d2 is normalised by a running softmax: a running maximum of the logits, and a
    numerator and denominator rescaled whenever it grows, so only one chunk of weights exists at a time.
    """
    num_frames, _, height, width = out.shape
    xs, ys = _pixel_grid(height, width, out.device)
    inv_s2 = 1.0 / (sigma * sigma)
    numerator = out.view(num_frames * 2, height * width)  # accumulated in place in the output
    denominator = torch.zeros(height * width, device=out.device)
    peak = torch.full((height * width,), float("-inf"), device=out.device)
    still = torch.ones(height * width, device=out.device)  # prod_n (1 - G_n)
    chunks = _chunks(anchors.shape[0], height, width)
    for k, part in enumerate(chunks):
        d2 = _squared_distances(anchors[part].float(), xs, ys).view(-1, height * width)  # [K, H*W]
        still *= (1.0 - torch.exp(-d2 * inv_s2)).prod(0)
        logits = -d2 * inv_s2 - torch.log(d2.clamp_min(1e-12))
        new_peak = torch.maximum(peak, logits.amax(0))
        rescale = torch.exp(peak - new_peak)
        weights = torch.exp(logits - new_peak)
        numerator.mul_(rescale)
        numerator.addmm_(disp[:, part].permute(0, 2, 1).reshape(num_frames * 2, -1), weights)
        denominator.mul_(rescale).add_(weights.sum(0))
        peak = new_peak
        report(progress, k + 1, len(chunks))
    numerator.mul_((1.0 - still) / denominator)


def _pin_anchors(out: torch.Tensor, disp: torch.Tensor, anchors: torch.Tensor) -> None:
    """Exact interpolation at the anchors: each anchor pixel gets the mean of the tracks sharing it; frame 0 is 0."""
    num_frames, _, height, width = out.shape
    flat = anchors[:, 1] * width + anchors[:, 0]
    pixels, which = torch.unique(flat, return_inverse=True)
    total = torch.zeros(num_frames, 2, pixels.shape[0], device=out.device)
    total.index_add_(2, which, disp.permute(0, 2, 1))
    count = torch.bincount(which, minlength=pixels.shape[0]).float()
    out.view(num_frames, 2, -1)[:, :, pixels] = total / count
    out[0] = 0.0
