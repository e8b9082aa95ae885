"""Rendering many frames with a learned :class:`~.model.ImageRenderer`, chunk by chunk (memory flat in T)."""
from __future__ import annotations

import torch

from ...ops.progress import ProgressFn, report
from .model import ImageRenderer


def render_frames_learned(model: ImageRenderer, image: torch.Tensor, displacement: torch.Tensor,
                          metric: torch.Tensor | None = None, intention: torch.Tensor | None = None,
                          chunk_size: int = 4, out: torch.Tensor | None = None,
                          progress: ProgressFn | None = None, clamp: bool = True,
                          return_holes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Render every frame of a reference-anchored motion from one picture with a learned renderer.

    The picture is encoded once; frames are splatted and decoded ``chunk_size`` at a time and written into
    ``out``, so peak memory is about one chunk's pyramids plus the output (as ``ops.render.render_frames``).
    Runs without autograd on the model's device; inputs are moved there chunk by chunk.

    Args:
        model: an :class:`ImageRenderer` (e.g. from ``models.registry.build_from_file``).
        image: [1, 3, H, W] I0 in [0, 1].
        displacement: [T, 2, H, W] pixels (frame t: where each pixel of I0 is at time t).
        metric: [1, 1, H, W] splatting metric (e.g. ``ops.render.motion_magnitude_metric``) or None.
        intention: [T, 1, H, W] (or [1, 1, H, W]) in [0, 1], LVMM's intention map, or None.
        chunk_size: frames rendered at once.
        out: optional preallocated [T, 3, H, W] output (any device / float dtype).
        progress: ``progress(frames done, T)`` before the first and after each chunk (``ops/progress.py``); what
            it raises stops rendering at once.
        clamp: clamp the frames to [0, 1].
        return_holes: also return the hole fraction per frame before filling, [T] float32 on the CPU.

    Returns:
        frames [T, 3, H, W] (``out`` when given, else in ``image``'s dtype and device), and the hole fractions.

    Example:
        >>> from .config import ImageRendererConfig
        >>> model = ImageRenderer(ImageRendererConfig.preset("tiny"))
        >>> frames = render_frames_learned(model, torch.rand(1, 3, 16, 16), torch.zeros(5, 2, 16, 16))
        >>> frames.shape
        torch.Size([5, 3, 16, 16])
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"image must be [1, 3, H, W], got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    h, w = image.shape[-2:]
    if not isinstance(displacement, torch.Tensor) or displacement.ndim != 4 or displacement.shape[1] != 2 \
            or tuple(displacement.shape[-2:]) != (h, w):
        raise ValueError(f"displacement must be [T, 2, {h}, {w}], got "
                         f"{tuple(displacement.shape) if isinstance(displacement, torch.Tensor) else displacement}")
    total = displacement.shape[0]
    if metric is not None and tuple(metric.shape) != (1, 1, h, w):
        raise ValueError(f"metric must be [1, 1, {h}, {w}], got {tuple(metric.shape)}")
    if intention is not None and (intention.ndim != 4 or intention.shape[1] != 1
                                  or intention.shape[0] not in (1, total) or tuple(intention.shape[-2:]) != (h, w)):
        raise ValueError(f"intention must be [{total}, 1, {h}, {w}], got {tuple(intention.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if out is None:
        out = torch.empty(total, 3, h, w, dtype=image.dtype, device=image.device)
    elif tuple(out.shape) != (total, 3, h, w):
        raise ValueError(f"out must be [{total}, 3, {h}, {w}], got {tuple(out.shape)}")
    holes = torch.empty(total, dtype=torch.float32)
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    with torch.inference_mode():
        source = image.to(device, dtype)
        pyramid = model.encode(source)
        m = None if metric is None else metric.to(device, torch.float32)
        report(progress, 0, total)
        for start in range(0, total, chunk_size):
            stop = min(start + chunk_size, total)
            gate = None
            if intention is not None:
                gate = intention if intention.shape[0] == 1 else intention[start:stop]
                gate = gate.to(device, torch.float32).expand(stop - start, -1, -1, -1)
            frames, hole = model.render(source, pyramid, displacement[start:stop].to(device, torch.float32), m, gate,
                                        return_holes=True)
            if clamp:
                frames = frames.clamp(0, 1)
            out[start:stop] = frames.to(device=out.device, dtype=out.dtype)
            holes[start:stop] = hole.float().cpu()
            report(progress, stop, total)
    if return_holes:
        return out, holes
    return out
