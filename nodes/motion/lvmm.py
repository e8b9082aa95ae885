"""PredictLatentMotion: LVMM's latent motion trajectories from one picture (sampling, transfer, slow motion)."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ...ops.containers import Motion
from ..common import (
    CATEGORY,
    DynGuidance,
    DynLongSchedule,
    DynModel,
    DynMotion,
    NodeInputError,
    Progress,
    checked_inputs,
    image_to_bchw,
    library_error,
    require_memory,
)

NODE = "PredictLatentMotion"


class PredictLatentMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE,
            display_name="Predict Latent Motion (LVMM)",
            category=f"{CATEGORY}/motion",
            description=(
                "LVMM: samples a trajectory in the model's latent motion space for the picture (DDIM with "
                "classifier-free guidance) and decodes it into per-frame motion with intention maps. With "
                "'transfer_from', the motion of another clip is put on this picture instead (LVMM Fig. 4: "
                "z_k = v_target + (z'_k - z'_0)). Render it with SoftmaxSplatRender, or with the model's own "
                "renderer by connecting the same model there."),
            inputs=[
                DynModel.Input("model", tooltip="An LVMM model from LoadMotionModel."),
                io.Image.Input("image", tooltip="The picture to animate (the first of a batch)."),
                io.Int.Input("num_frames", default=0, min=0, max=4096,
                             tooltip="Frames including the picture itself; 0 = the model's K + 1, the source "
                             "clip's length when transferring, or the long_schedule's length + 1 (its total_frames, "
                             "or num_segments segments of K latent frames); with a long_schedule, anything else "
                             "than 0 must be that length."),
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="DDIM steps (the paper uses 250)."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=30.0, step=0.05,
                               tooltip="Classifier-free guidance weight w: eps = (1 + w) eps_c - w eps_u."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
                             tooltip="Seed of the sampler's noise."),
                io.Float.Input("motion_strength", default=1.0, min=0.0, max=10.0, step=0.05,
                               tooltip="Scales the motion component of the latents: 0 = still, 2 = stronger."),
                io.Float.Input("slow_motion", default=1.0, min=1.0, max=16.0, step=0.5,
                               tooltip="Interpolates the decoded displacements in time: 2 = half speed."),
                DynGuidance.Input("guidance", optional=True,
                                  tooltip="LoopGuidance for a seamless loop: num_frames is then the loop's length "
                                  "(0 = K - 1); two more frames are sampled, pulled towards the first two and "
                                  "dropped, so the loop has no duplicated frame."),
                io.Image.Input("transfer_from", optional=True,
                               tooltip="Frames of a clip whose motion is transferred onto the picture."),
                DynLongSchedule.Input("long_schedule", optional=True,
                                      tooltip="LongVideoSchedule: phased segments of K latent frames for long "
                                      "motions."),
                io.ClipVision.Input("clip_vision", optional=True,
                                    tooltip="For an LVMM trained with --clip-vision: the same CLIP vision model "
                                    "(Load CLIP Vision); its embedding of the picture is the image token."),
                io.Clip.Input("clip", optional=True,
                              tooltip="For an LVMM trained with --text-encoder: the same CLIP-L text encoder "
                              "(e.g. an SD 1.5 checkpoint's CLIP); it encodes the prompt."),
                io.String.Input("prompt", multiline=True, default="", optional=True,
                                tooltip="What should move and how, for an LVMM trained with captions (plain "
                                "text; empty = no text). Needs 'clip'."),
            ],
            outputs=[DynMotion.Output("motion", display_name="motion",
                                      tooltip="Reference-anchored motion with intention maps.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model, image, num_frames, steps, cfg, seed, motion_strength, slow_motion, guidance=None,
                transfer_from=None, long_schedule=None, clip_vision=None, clip=None, prompt="") -> io.NodeOutput:
        import dataclasses

        from ...models.lvmm import sample_latent_motion
        from .load_model import MotionModel
        from .lvmm_condition import clip_condition

        if not isinstance(model, MotionModel):
            raise NodeInputError(NODE, "model", "a DYN_MODEL from LoadMotionModel", type(model).__name__)
        model.require(NODE, "model", "lvmm")
        picture = image_to_bchw(image, NODE)[:1]
        frames = None if transfer_from is None else image_to_bchw(transfer_from, NODE, "transfer_from")
        if frames is not None and frames.shape[0] < 2:
            raise NodeInputError(NODE, "transfer_from", "a clip of at least 2 frames", f"{frames.shape[0]}")
        if guidance is not None and (frames is not None or long_schedule is not None):
            raise NodeInputError(NODE, "guidance", "loop guidance without transfer_from or long_schedule",
                                 "both connected")
        schedule = None if long_schedule is None else dataclasses.replace(long_schedule, seed=seed)
        trained = model.model.config.num_frames
        if schedule is not None and num_frames:
            _check_schedule_length(schedule, num_frames, trained)
        frames_in = num_frames or (len(frames) if frames is not None else _schedule_frames(schedule, trained))
        if guidance is not None and not num_frames:
            frames_in = guidance.num_frames or trained - 1  # the loop's frames (two more are sampled, then dropped)
        frames_out = round((frames_in - 1) * slow_motion) + 1
        height, width = picture.shape[-2:]
        require_memory(NODE, 12 * frames_out * height * width, ("num_frames", "slow_motion", "image"),
                       f"the motion of {frames_out} frames at {width}x{height}")  # displacement and intention
        condition = None
        if frames is None:  # transfer takes the motion from the clip: no condition
            condition = clip_condition(NODE, model.model.config.encoder, picture.permute(0, 2, 3, 1), clip_vision,
                                       clip, prompt)
        device = model.load()
        progress = Progress(steps)
        try:
            with torch.inference_mode(False):  # loop guidance differentiates through the model
                motion: Motion = sample_latent_motion(
                    model.model, picture.clone().to(device), num_frames=num_frames or None, steps=steps, cfg=cfg,
                    seed=seed, motion_strength=motion_strength, loop_guidance=guidance,
                    transfer_from=None if frames is None else frames.clone().to(device), slow_factor=slow_motion,
                    long_video=schedule, progress=progress,
                    condition={k: v.to(device) for k, v in (condition or {}).items()})
        except ValueError as error:
            raise library_error(NODE, error, LIBRARY_ARGUMENTS, "model", "settings this LVMM model can sample") \
                from error
        return io.NodeOutput(motion)


# The library's words for the node's inputs, in its error messages.
LIBRARY_ARGUMENTS = {"image": "image", "num_frames": "num_frames", "num_latent_frames": "num_frames",
                     "steps": "steps", "cfg": "cfg", "slow_factor": "slow_motion", "transfer_from": "transfer_from",
                     "LoopGuidance": "guidance", "loop guidance": "guidance", "long_video": "long_schedule",
                     "long-video": "long_schedule", "overlap": "long_schedule"}


def _schedule_frames(schedule, trained: int) -> int:
    """Frames of the motion without num_frames: the long schedule's length + 1, else the model's K + 1."""
    if schedule is None or (schedule.num_segments, schedule.total_frames) == (None, None):
        return trained + 1
    try:
        return schedule.resolve_length(trained) + 1
    except ValueError as error:
        raise NodeInputError(NODE, "long_schedule", f"a schedule for segments of this model's {trained} latent "
                             "frames", str(error)) from error


def _check_schedule_length(schedule, num_frames: int, segment_frames: int) -> None:
    """A num_frames other than 0 must agree with the long schedule's own length (frame 0 + its latent frames)."""
    if (schedule.num_segments, schedule.total_frames) == (None, None):
        return
    length = _schedule_frames(schedule, segment_frames)
    if num_frames != length:
        made = (f"{schedule.total_frames} latent frames" if schedule.total_frames is not None else
                f"{schedule.num_segments} segments of {segment_frames} latent frames sharing {schedule.overlap}")
        raise NodeInputError(NODE, "num_frames", f"0 or {length}: the long_schedule's length (the picture and "
                             f"{made}; or set total_frames there)", str(num_frames))


NODES = [PredictLatentMotion]
