"""SoftmaxSplatRender: a picture and its motion become frames, by forward softmax splatting (no weights)."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ...ops.containers import Motion
from ..common import (
    CATEGORY,
    DynModel,
    DynMotion,
    NodeInputError,
    Progress,
    check_finite,
    image_to_bchw,
    intermediate_device,
    mask_to_b1hw,
)

NODE = "SoftmaxSplatRender"
METRICS = ["motion magnitude (GID)", "none (average)", "mask (in front)", "depth image (nearer = in front)",
           "brightness constancy (target frames)"]


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
                io.Combo.Input("metric", options=METRICS, default=METRICS[0],
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
            outputs=[io.Image.Output("frames", tooltip="One frame per motion frame, at the picture's size.")],
        )

    @classmethod
    def execute(cls, image, motion: Motion, metric, metric_scale, fill_holes, chunk_size, metric_mask=None,
                depth=None, target_frames=None, renderer=None) -> io.NodeOutput:
        from ...ops.render import motion_magnitude_metric, render_frames

        if not isinstance(motion, Motion):
            raise NodeInputError(NODE, "motion", "a DYN_MOTION", type(motion).__name__)
        pictures = image_to_bchw(image, NODE)
        size = tuple(pictures.shape[-2:])
        if motion.size != size:
            raise NodeInputError(NODE, "motion", f"motion made for the picture's size {size[1]}x{size[0]}",
                                 f"{motion.size[1]}x{motion.size[0]}")
        check_finite(motion.displacement, NODE, "motion")
        splat_metric = _metric(metric, metric_scale, motion, size, metric_mask, depth, motion_magnitude_metric,
                               pictures[:1], target_frames)
        if renderer is not None:
            return io.NodeOutput(_render_learned(renderer, pictures, motion, splat_metric, chunk_size))
        # brightness constancy also says how far each source pixel can be trusted: exp(-50 |colour error|)
        confidence = (splat_metric / metric_scale).exp() if metric == METRICS[4] and metric_scale > 0 else None
        blend = motion.extras.get("blend")
        total = motion.num_frames
        progress = Progress(total * pictures.shape[0])
        # The output is written in place, chunk by chunk, in ComfyUI's [N,H,W,C] layout: memory is the output
        # plus one chunk, whatever the number of frames.
        out = torch.empty(pictures.shape[0] * total, *size, pictures.shape[1], dtype=torch.float32,
                          device=intermediate_device())
        for index in range(pictures.shape[0]):
            view = out[index * total:(index + 1) * total].permute(0, 3, 1, 2)
            _, holes = render_frames(pictures[index:index + 1], motion.displacement, splat_metric, fill=fill_holes,
                                     chunk_size=chunk_size, blend=blend, out=view, confidence=confidence,
                                     on_frames=lambda done, _t, i=index: progress(i * total + done))
            print(f"[ImageDynamics] {NODE}: picture {index}: {total} frames, holes before filling "
                  f"mean {float(holes.mean()):.2%} max {float(holes.max()):.2%}")
        return io.NodeOutput(out.clamp_(0, 1))


def _render_learned(renderer, pictures: torch.Tensor, motion: Motion, metric, chunk_size: int) -> torch.Tensor:
    """Frames from a learned renderer (family "renderer") or LVMM's renderer R, in ComfyUI's [N,H,W,C] layout."""
    from ..motion.load_model import MotionModel

    if not isinstance(renderer, MotionModel):
        raise NodeInputError(NODE, "renderer", "a DYN_MODEL from LoadMotionModel", type(renderer).__name__)
    renderer.require(NODE, "renderer", "renderer", "lvmm")
    device = renderer.load()
    total = motion.num_frames
    out = torch.empty(pictures.shape[0] * total, *pictures.shape[-2:], 3, dtype=torch.float32,
                      device=intermediate_device())
    progress = Progress(total * pictures.shape[0])
    for index in range(pictures.shape[0]):
        view = out[index * total:(index + 1) * total].permute(0, 3, 1, 2)
        picture = pictures[index:index + 1].to(device)
        if renderer.family == "lvmm":
            from ...models.lvmm import render_with_lvmm

            frames = render_with_lvmm(renderer.model, picture, motion, chunk_size=chunk_size,
                                      progress=lambda done, _t, i=index: progress(i * total + done))
            view.copy_(frames.to(view))
        else:
            from ...models.renderer.render import render_frames_learned

            render_frames_learned(renderer.model, picture, motion.displacement, metric=metric,
                                  intention=motion.intention, chunk_size=chunk_size, out=view,
                                  on_frames=lambda done, _t, i=index: progress(i * total + done))
    return out.clamp_(0, 1)


def _metric(kind, scale, motion, size, metric_mask, depth, motion_magnitude_metric, picture,
            target_frames) -> torch.Tensor | None:
    if kind == METRICS[1]:
        return None
    if kind == METRICS[2]:
        if metric_mask is None:
            raise NodeInputError(NODE, "metric_mask", "a MASK when metric is 'mask (in front)'", "nothing")
        return mask_to_b1hw(metric_mask, size, NODE, "metric_mask", allow_empty=True) * scale
    if kind == METRICS[3]:
        if depth is None:
            raise NodeInputError(NODE, "depth", "an IMAGE when metric is 'depth image'", "nothing")
        d = image_to_bchw(depth, NODE, "depth")[:1]
        if tuple(d.shape[-2:]) != size:
            raise NodeInputError(NODE, "depth", f"the picture's size {size[1]}x{size[0]}",
                                 f"{d.shape[-1]}x{d.shape[-2]}")
        return d.mean(dim=1, keepdim=True) * scale
    if kind == METRICS[4]:
        from ...models.renderer.metrics import brightness_constancy_metric

        if target_frames is None:
            raise NodeInputError(NODE, "target_frames", "an IMAGE batch when metric is 'brightness constancy'",
                                 "nothing")
        targets = image_to_bchw(target_frames, NODE, "target_frames")
        if targets.shape[0] != motion.num_frames or tuple(targets.shape[-2:]) != size:
            raise NodeInputError(NODE, "target_frames", f"{motion.num_frames} frames of {size[1]}x{size[0]}",
                                 f"{targets.shape[0]} frames of {targets.shape[-1]}x{targets.shape[-2]}")
        source = picture.expand(motion.num_frames, -1, -1, -1)
        # the metric's own scale (50 on [0, 1] pictures) times the node's temperature
        return brightness_constancy_metric(source, targets, motion.displacement.float()) * scale
    if motion.metric is not None:
        return motion.metric * scale
    return motion_magnitude_metric(motion.displacement, temperature=scale)
