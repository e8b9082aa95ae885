"""SoftmaxSplatRender: a picture and its motion become frames, by forward softmax splatting (no weights)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from comfy_api.latest import io

from ...ops.containers import Motion
from ...ops.progress import ProgressFn, report, sub_progress
from ..common import (
    CATEGORY,
    MEMORY_HEADROOM,
    DynModel,
    DynMotion,
    NodeInputError,
    Progress,
    check_finite,
    checked_inputs,
    format_bytes,
    free_memory,
    image_to_bchw,
    intermediate_device,
    mask_to_b1hw,
    require_memory,
)

NODE = "SoftmaxSplatRender"

logger = logging.getLogger(__name__)


class SoftmaxSplatRender(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Softmax Splat Render",
            category=f"{CATEGORY}/render",
            description=(
                "Renders one frame per motion frame by forward softmax splatting of the picture's pixels (GID "
                "section 4): where pixels collide, the one with the larger metric wins; pixels no source reached "
                "are filled by a multi-scale push-pull, so no empty pixel remains."),
            inputs=[
                io.Image.Input("image", tooltip="The source picture I0; a batch of B pictures (of one size) gives B x T "
                               "frames, each picture animated by the same motion."),
                DynMotion.Input("motion", tooltip="Reference-anchored motion of the picture's pixels."),
                io.Combo.Input("metric", options=list(METRICS), default=next(iter(METRICS)),
                               tooltip="Who is in front where pixels collide: moving pixels (GID's mean motion "
                               "magnitude), nobody (average), a mask, or a depth-like picture (brighter = nearer)."),
                io.Float.Input("metric_scale", default=1.0, min=0.0, max=1000.0, step=0.1,
                               tooltip="Temperature of the softmax: larger = harder preference for the front."),
                io.Boolean.Input("fill_holes", default=True,
                                 tooltip="Fill disoccluded pixels (push-pull). Off shows the holes as black."),
                io.Int.Input("chunk_size", default=8, min=1, max=256,
                             tooltip="Frames splatted at once: memory is about one chunk plus the output."),
                io.Mask.Input("metric_mask", optional=True, tooltip="For metric 'mask': 1 = in front."),
                io.Image.Input("depth", optional=True,
                               tooltip="For metric 'depth image': a depth-like picture, brighter = nearer."),
                io.Image.Input("target_frames", optional=True,
                               tooltip="For metric 'brightness constancy': the frames the motion leads to (e.g. "
                               "the clip MotionFromVideo measured); a pixel is in front where it matches its "
                               "destination (-|I_t(p + F_t(p)) - I0(p)|), which also works under camera pans; "
                               "pixels only badly matching sources reach are filled like holes."),
                DynModel.Input("renderer", optional=True,
                               tooltip="A learned renderer (family 'renderer') or an LVMM model from "
                               "LoadMotionModel: its decoder fills disocclusions instead of the push-pull fill; "
                               "LVMM's intention maps gate what is warped."),
            ],
            outputs=[io.Image.Output("frames", display_name="frames",
                                     tooltip="One frame per motion frame, at the picture's size."),
                     io.Float.Output("fps", display_name="fps",
                                     tooltip="The motion's frame rate: connect it to the Save / Create Video node's "
                                     "fps so that it is set in one place, where the motion is made.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, image, motion: Motion, metric, metric_scale, fill_holes, chunk_size, metric_mask=None,
                depth=None, target_frames=None, renderer=None) -> io.NodeOutput:
        from ...ops.render import render_frames

        if not isinstance(motion, Motion):
            raise NodeInputError(NODE, "motion", "a DYN_MOTION", type(motion).__name__)
        pictures = image_to_bchw(image, NODE)
        size = tuple(pictures.shape[-2:])
        if motion.size != size:
            raise NodeInputError(NODE, "motion", f"motion made for the picture's size {size[1]}x{size[0]}",
                                 f"{motion.size[1]}x{motion.size[0]}")
        check_finite(motion.displacement, NODE, "motion")
        handler = METRICS.get(metric)
        if handler is None:
            raise NodeInputError(NODE, "metric", f"one of {', '.join(METRICS)}", repr(metric))
        total, count = motion.num_frames, pictures.shape[0]
        # frames out, and the brightness-constancy metric and confidence (one value per pixel and frame each)
        kept = 4 * (3 * count + (2 if metric == BRIGHTNESS else 0)) * total * size[0] * size[1]
        if renderer is None:
            chunk_size = _chunk_that_fits(chunk_size, total, count, size, kept)
        else:
            require_memory(NODE, kept, ("motion", "image"), f"{count * total} frames at {size[1]}x{size[0]}")
        # one bar: the first pass over every frame (the metric), then the frames of every picture
        progress = Progress(total + count * total)
        chosen = handler(MetricInputs(metric_scale, motion, size, pictures[:1], metric_mask, depth, target_frames,
                                      sub_progress(progress, 0, total, total + count * total)))
        if renderer is not None:
            return io.NodeOutput(_render_learned(renderer, pictures, motion, chosen.metric, chunk_size, progress),
                                 float(motion.fps))
        splat_metric, confidence = chosen.metric, chosen.confidence
        blend = motion.blend  # the loop's second render, its weights and per-pixel phases
        # The output is written in place, chunk by chunk, in ComfyUI's [N,H,W,C] layout: memory is the output
        # plus one chunk, whatever the number of frames.
        out = torch.empty(count * total, *size, pictures.shape[1], dtype=torch.float32, device=intermediate_device())
        for index in range(count):
            view = out[index * total:(index + 1) * total].permute(0, 3, 1, 2)
            _, holes = render_frames(pictures[index:index + 1], motion.displacement, splat_metric, fill=fill_holes,
                                     chunk_size=chunk_size, blend=blend, out=view, confidence=confidence,
                                     on_frames=lambda done, _t, i=index: progress(total + i * total + done))
            logger.info("%s: picture %d: %d frames, holes before filling mean %.2f%% max %.2f%%", NODE, index,
                        total, 100 * float(holes.mean()), 100 * float(holes.max()))
        return io.NodeOutput(out.clamp_(0, 1), float(motion.fps))


def _chunk_that_fits(chunk_size: int, total: int, count: int, size: tuple[int, int], kept: int) -> int:
    """``chunk_size``, or fewer frames at once if that many would not fit in memory beside what the render keeps
    (``kept`` bytes); refused by name when not even one frame fits."""
    from ...ops.render import largest_chunk, render_memory

    free = free_memory()
    fits = largest_chunk(size[0], size[1], MEMORY_HEADROOM * free - kept, min(chunk_size, total))
    if fits < 1:
        require_memory(NODE, kept + render_memory(size[0], size[1], 1), ("motion", "image"),
                       f"{count * total} frames at {size[1]}x{size[0]}", free=free)
    if fits < min(chunk_size, total):
        logger.warning("%s: chunk_size %d -> %d frames at once, to fit in the %s of free memory", NODE, chunk_size,
                       fits, format_bytes(free))
    return max(fits, 1)


def _render_learned(renderer, pictures: torch.Tensor, motion: Motion, metric, chunk_size: int,
                    progress: Progress) -> torch.Tensor:
    """Frames from a learned renderer (family "renderer") or LVMM's renderer R, in ComfyUI's [N,H,W,C] layout;
    ``progress`` counts the first pass's T frames, then these."""
    from ..motion.load_model import MotionModel

    if not isinstance(renderer, MotionModel):
        raise NodeInputError(NODE, "renderer", "a DYN_MODEL from LoadMotionModel", type(renderer).__name__)
    renderer.require(NODE, "renderer", "renderer", "lvmm")
    device = renderer.load()
    total = motion.num_frames
    out = torch.empty(pictures.shape[0] * total, *pictures.shape[-2:], 3, dtype=torch.float32,
                      device=intermediate_device())
    for index in range(pictures.shape[0]):
        view = out[index * total:(index + 1) * total].permute(0, 3, 1, 2)
        picture = pictures[index:index + 1].to(device)
        part = sub_progress(progress, total + index * total, total, total + len(pictures) * total)
        if renderer.family == "lvmm":
            from ...models.lvmm import render_with_lvmm

            render_with_lvmm(renderer.model, picture, motion, chunk_size=chunk_size,
                             on_chunk=lambda start, frames, v=view: v[start:start + len(frames)].copy_(frames),
                             progress=part)
        else:
            from ...models.renderer.render import render_frames_learned

            render_frames_learned(renderer.model, picture, motion.displacement, metric=metric,
                                  intention=motion.intention, chunk_size=chunk_size, out=view,
                                  progress=part)
    return out.clamp_(0, 1)


@dataclass
class MetricInputs:
    """What a metric handler may use: the node's temperature, the motion, the picture and the optional inputs."""

    scale: float
    motion: Motion
    size: tuple[int, int]
    picture: torch.Tensor  # [1, 3, H, W]
    metric_mask: torch.Tensor | None
    depth: torch.Tensor | None
    target_frames: torch.Tensor | None
    progress: ProgressFn | None = None  # for a pass over every frame


@dataclass
class SplatMetric:
    """A handler's result: the splatting metric (None = average splatting) and, where the metric knows it, how far
    each source pixel can be trusted at its destination (the renderer fills untrusted ones like holes)."""

    metric: torch.Tensor | None
    confidence: torch.Tensor | None = None


def _motion_magnitude(inputs: MetricInputs) -> SplatMetric:
    from ...ops.render import motion_magnitude_metric

    if inputs.motion.metric is not None:  # a metric that came with the motion
        return SplatMetric(inputs.motion.metric * inputs.scale)
    return SplatMetric(motion_magnitude_metric(inputs.motion.displacement, temperature=inputs.scale,
                                               progress=inputs.progress))


def _average(inputs: MetricInputs) -> SplatMetric:
    return SplatMetric(None)


def _mask(inputs: MetricInputs) -> SplatMetric:
    if inputs.metric_mask is None:
        raise NodeInputError(NODE, "metric_mask", "a MASK when metric is 'mask (in front)'", "nothing")
    return SplatMetric(mask_to_b1hw(inputs.metric_mask, inputs.size, NODE, "metric_mask", allow_empty=True)
                       * inputs.scale)


def _depth(inputs: MetricInputs) -> SplatMetric:
    if inputs.depth is None:
        raise NodeInputError(NODE, "depth", "an IMAGE when metric is 'depth image'", "nothing")
    d = image_to_bchw(inputs.depth, NODE, "depth")[:1]
    if tuple(d.shape[-2:]) != inputs.size:
        raise NodeInputError(NODE, "depth", f"the picture's size {inputs.size[1]}x{inputs.size[0]}",
                             f"{d.shape[-1]}x{d.shape[-2]}")
    return SplatMetric(d.mean(dim=1, keepdim=True) * inputs.scale)


def _brightness_constancy(inputs: MetricInputs) -> SplatMetric:
    from ...models.renderer.metrics import brightness_confidence, brightness_constancy_metric

    motion, size = inputs.motion, inputs.size
    if inputs.target_frames is None:
        raise NodeInputError(NODE, "target_frames", "an IMAGE batch when metric is 'brightness constancy'",
                             "nothing")
    frames = inputs.target_frames
    if not (isinstance(frames, torch.Tensor) and frames.ndim == 4 and frames.shape[0] == motion.num_frames
            and tuple(frames.shape[1:3]) == size):
        got = (f"{frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}" if isinstance(frames, torch.Tensor)
               and frames.ndim == 4 else type(frames).__name__)
        raise NodeInputError(NODE, "target_frames", f"{motion.num_frames} frames of {size[1]}x{size[0]}", got)
    # frame by frame (a chunk at a time): the pass holds one chunk of warped targets, not the whole clip
    total = motion.num_frames
    metric = torch.empty(total, 1, *size)
    confidence = torch.empty(total, 1, *size) if inputs.scale > 0 else None
    for start in range(0, total, BRIGHTNESS_CHUNK):
        stop = min(start + BRIGHTNESS_CHUNK, total)
        targets = image_to_bchw(frames[start:stop], NODE, "target_frames")
        z = brightness_constancy_metric(inputs.picture.expand(stop - start, -1, -1, -1), targets,
                                        motion.displacement[start:stop].float())  # at the metric's own scale
        if confidence is not None:
            confidence[start:stop] = brightness_confidence(z)
        metric[start:stop] = z * inputs.scale  # the node's temperature on top of the metric's scale
        report(inputs.progress, stop, total)
    return SplatMetric(metric, confidence)


BRIGHTNESS = "brightness constancy (target frames)"
BRIGHTNESS_CHUNK = 8  # frames of the brightness-constancy metric computed at once
METRICS: dict[str, Callable[[MetricInputs], SplatMetric]] = {
    "motion magnitude (GID)": _motion_magnitude,
    "none (average)": _average,
    "mask (in front)": _mask,
    "depth image (nearer = in front)": _depth,
    BRIGHTNESS: _brightness_constancy,
}
"""The ``metric`` combo's options (in the widget's order) and the handler computing each."""
