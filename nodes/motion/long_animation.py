"""LongAnimationMotion: the long-animation paper's trained additions steering the user's Stable Video Diffusion.

The node takes the dense field drawn with arrows (SparseTrajectoryToFlow's Gaussian interpolation, Eqs. 5-7),
refines it with the additions' T, and returns the SVD MODEL patched with the motion encoder, the motion attention
(Eq. 4), the motion strength embedding (Eq. 8) and the static-camera LoRA (``long_animation_patch.py``). Sample it
with SVD_img2vid_Conditioning and KSampler, or with LongVideoReschedule for 100+ frames (the field is static, so
every segment, of any length, gets the same motion).
"""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ...ops.containers import Motion, VelocityField
from ..common import CATEGORY, DynFlow, DynModel, DynMotion, NodeInputError, check_finite, checked_inputs, image_to_bchw
from .long_animation_patch import patch_svd
from .motion_i2v import float32_on_cpu

NODE = "LongAnimationMotion"
FAMILY = "long_animation"


def static_field(flow: VelocityField | None, motion: Motion | None, node: str) -> torch.Tensor:
    """The one dense field ``[1, 2, H, W]`` px/frame of a DYN_FLOW (its mean over frames) or a DYN_MOTION (its mean
    frame-to-frame step, (D[T-1] - D[0]) / (T - 1)); NodeInputError unless exactly one is given."""
    if (flow is None) == (motion is None):
        raise NodeInputError(node, "flow", "one dense field: 'flow' (SparseTrajectoryToFlow) or 'motion'",
                             "both" if flow is not None else "neither")
    if flow is not None:
        if not isinstance(flow, VelocityField):
            raise NodeInputError(node, "flow", "a DYN_FLOW (SparseTrajectoryToFlow)", type(flow).__name__)
        check_finite(flow.velocity, node, "flow")
        field = flow.velocity.float().mean(0, keepdim=True)
        if flow.mask is not None:
            field = field * flow.mask.float().reshape(1, 1, *flow.mask.shape[-2:])
        return field.cpu()
    if not isinstance(motion, Motion):
        raise NodeInputError(node, "motion", "a DYN_MOTION", type(motion).__name__)
    check_finite(motion.displacement, node, "motion")
    if motion.num_frames < 2:
        raise NodeInputError(node, "motion", "motion of at least 2 frames", str(motion.num_frames))
    d = motion.displacement.float()
    return ((d[-1] - d[0]) / (motion.num_frames - 1))[None].cpu()


class LongAnimationMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Long Animation Motion (SVD)",
            category=f"{CATEGORY}/motion",
            description=(
                "Controllable Longer Image Animation's video model on your Stable Video Diffusion: the trained "
                "additions (a long_animation file from LoadMotionModel, trained with 'scripts/train.py "
                "long_animation') refine the arrows' dense field with T and steer SVD with it (motion encoder, "
                "motion attention in the temporal layers, motion strength embedding, static-camera LoRA). Sample "
                "the MODEL with SVD_img2vid_Conditioning and KSampler, or LongVideoReschedule for 100+ frames. "
                "Untrained (fresh) additions leave SVD's output unchanged, bit for bit."),
            inputs=[
                io.Model.Input("model", tooltip="A Stable Video Diffusion MODEL (svd or svd_xt, "
                               "ImageOnlyCheckpointLoader), the one the additions were trained on."),
                DynModel.Input("motion_model", tooltip="The additions (a long_animation file, LoadMotionModel)."),
                DynFlow.Input("flow", optional=True, tooltip="The dense field in pixels per frame: "
                              "SparseTrajectoryToFlow's 'flow' (arrows, Gaussian interpolation). Its mean over "
                              "frames is used, as one static field. Give this or 'motion'."),
                DynMotion.Input("motion", optional=True, tooltip="Or a reference-anchored motion: its mean "
                                "frame-to-frame step is used as the static field."),
                io.Image.Input("image", optional=True, tooltip="The picture (what SVD_img2vid_Conditioning gets); "
                               "T refines the field with it. Needed when 'refine' is on."),
                io.Float.Input("motion_strength", default=0.0, min=0.0, max=200.0, step=0.1,
                               tooltip="Global motion strength M_s (Eq. 8) in pixels per frame at the field's size: "
                               "larger = faster motion. 0 = the field's own M_s (its mean vector length, after "
                               "refinement)."),
                io.Boolean.Input("refine", default=True, tooltip="Refine the rough field with the additions' T "
                                 "(the paper's pixel-to-pixel refinement model) before conditioning."),
            ],
            outputs=[
                io.Model.Output("patched_model", display_name="model",
                                tooltip="The SVD MODEL with the additions (ComfyUI patches; the original is "
                                "unchanged)."),
                DynFlow.Output("refined_flow", display_name="flow",
                               tooltip="The field the MODEL is conditioned on (after T), for PreviewMotion / "
                               "EulerianMotion."),
            ],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model, motion_model, flow=None, motion=None, image=None, motion_strength=0.0,
                refine=True) -> io.NodeOutput:
        import torch.nn.functional as F

        from ...ops.motion_strength import motion_strength as strength_of

        require = getattr(motion_model, "require", None)
        if require is None:
            raise NodeInputError(NODE, "motion_model", "a DYN_MODEL from LoadMotionModel",
                                 type(motion_model).__name__)
        require(NODE, "motion_model", FAMILY)
        field = static_field(flow, motion, NODE)
        float32_on_cpu(motion_model.patcher.load_device, motion_model)
        if refine:
            if image is None:
                raise NodeInputError(NODE, "image", "the picture, for T to refine the field (or refine off)",
                                     "nothing")
            picture = image_to_bchw(image, NODE)[:1]
            picture = F.interpolate(picture, size=field.shape[-2:], mode="bilinear", align_corners=False)
            device = motion_model.load()
            with torch.no_grad():
                field = motion_model.model.refine(field.to(device), picture.clamp(0, 1).to(device)).cpu()
        strength = float(motion_strength) if motion_strength > 0 else float(strength_of(field))
        patched = patch_svd(model, motion_model, field, strength, NODE)
        return io.NodeOutput(patched, VelocityField(field, extras={"motion_strength": strength}))


NODES = [LongAnimationMotion]
