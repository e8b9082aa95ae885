"""PreviewMotion: look at any motion: flow colours, arrows and tracks over the picture."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ...ops.containers import Motion, VelocityField
from ..common import (
    CATEGORY,
    CoreTracks,
    DynFlow,
    DynMotion,
    NodeInputError,
    bchw_to_image,
    checked_inputs,
    image_to_bchw,
    mask_to_b1hw,
)

NODE = "PreviewMotion"


class PreviewMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Preview Motion",
            category=f"{CATEGORY}/render",
            description=("Draws motion over the picture: the flow as a colour wheel (hue = direction, saturation = "
                         "speed), blended with the picture, the trajectories as lines and the brush as an overlay."),
            inputs=[
                io.Image.Input("image", tooltip="The picture the motion belongs to."),
                DynFlow.Input("flow", optional=True, tooltip="A velocity field to show."),
                DynMotion.Input("motion", optional=True,
                                tooltip="Reference-anchored motion: shows the displacement of its last frame."),
                CoreTracks.Input("tracks", optional=True, tooltip="Trajectories to draw (core TRACKS)."),
                io.Mask.Input("mask", optional=True, tooltip="A motion brush to show as a blue overlay."),
                io.Float.Input("opacity", default=0.6, min=0.0, max=1.0, step=0.05,
                               tooltip="How strongly the flow colours cover the picture."),
            ],
            outputs=[io.Image.Output("preview", display_name="preview",
                                     tooltip="The picture with the motion drawn over it.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, image, opacity, flow=None, motion=None, tracks=None, mask=None) -> io.NodeOutput:
        from ...ops.flow_viz import draw_tracks, flow_to_color, overlay_mask
        from ...ops.trajectories import tracks_from_comfy

        picture = image_to_bchw(image, NODE)[0]
        size = tuple(picture.shape[-2:])
        field = None
        if flow is not None:
            if not isinstance(flow, VelocityField):
                raise NodeInputError(NODE, "flow", "a DYN_FLOW", type(flow).__name__)
            field = flow.velocity[0]
        elif motion is not None:
            if not isinstance(motion, Motion):
                raise NodeInputError(NODE, "motion", "a DYN_MOTION", type(motion).__name__)
            field = motion.displacement[-1]
        if field is not None and tuple(field.shape[-2:]) != size:
            raise NodeInputError(NODE, "flow" if flow is not None else "motion",
                                 f"motion of the picture's size {size[1]}x{size[0]}",
                                 f"{field.shape[-1]}x{field.shape[-2]}")
        out = picture.float()
        if field is not None:
            colours = flow_to_color(field.float().cpu())
            moving = (field.norm(dim=0, keepdim=True) > 0).float().cpu()
            out = out * (1 - opacity * moving) + colours * opacity * moving
        if mask is not None:
            out = overlay_mask(out, mask_to_b1hw(mask, size, NODE, allow_empty=True)[0, 0], alpha=0.35 * opacity)
        if tracks is not None:
            out = draw_tracks(out, tracks_from_comfy(tracks))
        return io.NodeOutput(bchw_to_image(torch.as_tensor(out)[None]))
