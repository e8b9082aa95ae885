"""Motion-I2V in ComfyUI: stage 1 predicts flows from a picture, stage 2 patches the user's SD 1.5 MODEL.

MotionI2VPredictFlow (stage 1) runs the pack's flow U-Net, trajectory ControlNet and flow VAE
(``models/motion_i2v``) with the text embeddings of the core CLIPTextEncode and the picture's latent from the
core VAE, and outputs reference-anchored flows as ``DYN_MOTION``.

MotionI2VAnimate (stage 2) returns the user's MODEL with Motion-I2V's motion modules inserted and its sampling
on the schedule they were trained with, and a LATENT video for the core KSampler / SamplerCustomAdvanced; VAE
Decode decodes it. How the MODEL is patched (with ComfyUI's own machinery, no monkeypatching of the host):
:mod:`.motion_i2v_patch`.
"""
from __future__ import annotations

import math

import torch
from comfy_api.latest import io

from ...ops.containers import Motion
from ..common import (
    CATEGORY,
    CoreTracks,
    DynModel,
    DynMotion,
    NodeInputError,
    Progress,
    check_finite,
    checked_inputs,
    image_to_bchw,
    mask_to_b1hw,
    require_memory,
)
from ..control.sparse_flow import DynControl, SparseFlowControl, control_from_tracks, parse_tracks
from .motion_i2v_patch import PAIRING_OPTIONS, patch_model_with_motion_modules, video_latent

NODE_FLOW = "MotionI2VPredictFlow"
NODE_ANIMATE = "MotionI2VAnimate"
FAMILY_STAGE1 = "motion_i2v.stage1"
FAMILY_CONTROLNET = "motion_i2v.controlnet"
FAMILY_FLOW_VAE = "motion_i2v.flow_vae"
FAMILY_STAGE2 = "motion_i2v.stage2"
MAX_FRAMES = 32


# ------------------------------------------------------------------------------------------------ shared helpers


def text_embedding(conditioning, node: str, input_name: str, width: int | None = None) -> torch.Tensor:
    """The first entry of a core CONDITIONING (``[[tensor [B, L, D], {...}], ...]``) as ``[1, L, D]`` float32."""
    first = conditioning[0] if isinstance(conditioning, (list, tuple)) and conditioning else None
    if not isinstance(first, (list, tuple)) or not first or not torch.is_tensor(first[0]):
        raise NodeInputError(node, input_name, "CONDITIONING from CLIPTextEncode", type(conditioning).__name__)
    emb = conditioning[0][0]
    if emb.ndim != 3:
        raise NodeInputError(node, input_name, "text embeddings [B, tokens, width]", f"shape {tuple(emb.shape)}")
    if width is not None and emb.shape[-1] != width:
        raise NodeInputError(node, input_name, f"SD 1.5 text embeddings of width {width} (CLIPTextEncode with the "
                             "CLIP of an SD 1.5 checkpoint)", f"width {emb.shape[-1]}")
    check_finite(emb, node, input_name)
    return emb[:1].float()


def match_tokens(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat two ``[1, L, D]`` embeddings to a common length (their LCM), as ComfyUI does for long prompts.

    Cross-attention over a sequence repeated k times equals attention over the sequence itself.
    """
    la, lb = a.shape[1], b.shape[1]
    if la == lb:
        return a, b
    n = la * lb // math.gcd(la, lb)
    return a.repeat(1, n // la, 1), b.repeat(1, n // lb, 1)


def vae_latent(vae, pixels: torch.Tensor, node: str, input_name: str = "vae") -> torch.Tensor:
    """``vae.encode`` of an IMAGE ``[1, H, W, 3]`` (0..1) -> raw latent ``[1, 4, H/8, W/8]`` float32, checked."""
    if vae is None or not hasattr(vae, "encode"):
        raise NodeInputError(node, input_name, "a VAE (e.g. from CheckpointLoaderSimple)", type(vae).__name__)
    channels = getattr(vae, "latent_channels", 4)
    ratio = getattr(vae, "downscale_ratio", 8)
    if channels != 4 or ratio != 8:
        raise NodeInputError(node, input_name, "an SD 1.5 image VAE (4 latent channels, 8x)",
                             f"{channels} channels, ratio {ratio}")
    latent = vae.encode(pixels[..., :3])
    return latent[:1].float()


def _check_multiple_of_8(height: int, width: int, node: str, input_name: str) -> None:
    if height % 8 or width % 8:
        raise NodeInputError(node, input_name, "a picture whose width and height are multiples of 8 (resize it, "
                             "e.g. with Upscale Image to 512x320)", f"{width}x{height}")


def _describe(value) -> str:
    return "nothing" if value is None else type(value).__name__


def float32_on_cpu(device: torch.device, *handles) -> None:
    """Half-precision files (``--fp16``) run in float32 on a CPU, as ComfyUI runs its own models there."""
    if torch.device(device).type != "cpu":
        return
    for handle in handles:
        if handle is not None and any(p.dtype in (torch.float16, torch.bfloat16) for p in handle.model.parameters()):
            handle.model.float()


# ------------------------------------------------------------------------------------------------ stage 1


class MotionI2VPredictFlow(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_FLOW,
            display_name="Motion-I2V Predict Flow (stage 1)",
            category=f"{CATEGORY}/motion",
            description=(
                "Motion-I2V stage 1: predicts how every pixel of the picture moves over the next frames "
                "(reference-anchored flows, DDIM with classifier-free guidance), from the text, the picture, "
                "optional drawn trajectories (through the trajectory ControlNet) and a motion brush. Needs the "
                "converted stage-1, flow-VAE (and ControlNet) files in models/motion_models, and the CLIP and VAE "
                "of an SD 1.5 checkpoint."),
            inputs=[
                DynModel.Input("model", tooltip="The stage-1 flow U-Net (motion_i2v_stage1 file, LoadMotionModel)."),
                DynModel.Input("flow_vae", tooltip="The flow VAE (motion_i2v_flow_vae file, LoadMotionModel): "
                               "decodes the predicted flows, encodes the trajectories."),
                io.Conditioning.Input("positive", tooltip="What should happen (CLIPTextEncode with an SD 1.5 CLIP)."),
                io.Conditioning.Input("negative", tooltip="What to avoid (CLIPTextEncode, often empty)."),
                io.Image.Input("image", tooltip="The picture to animate; sides must be multiples of 8 (the demo: "
                               "512x320)."),
                io.Vae.Input("vae", tooltip="The SD 1.5 image VAE (from CheckpointLoaderSimple). Stage 1 was trained "
                             "with the picture in 0..1 entering the VAE; the node feeds (image + 1) / 2 to VAE "
                             "Encode to reproduce that."),
                io.Int.Input("num_frames", default=16, min=2, max=MAX_FRAMES,
                             tooltip="Frames of the motion, the picture (frame 0) included. Motion-I2V: 16 "
                             "(stage 2 renders at most 16)."),
                io.Int.Input("frame_stride", default=8, min=1, max=64,
                             tooltip="Motion strength: frame i is predicted as i x stride source frames after the "
                             "picture (training clips: stride 8). Larger = faster, larger motion."),
                io.Float.Input("cfg", default=7.0, min=0.0, max=30.0, step=0.1,
                               tooltip="Classifier-free guidance scale (demo: 7; <= 1 turns guidance off)."),
                io.Int.Input("steps", default=25, min=1, max=1000, tooltip="DDIM steps (demo: 25)."),
                io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=True,
                             tooltip="Seed of the initial noise."),
                io.Float.Input("fps", default=8.0, min=1.0, max=240.0, step=1.0,
                               tooltip="Frame rate recorded in the motion (8 plays the 16 frames in 2 s)."),
                DynModel.Input("controlnet", optional=True,
                               tooltip="The trajectory ControlNet (motion_i2v_controlnet file). Needed for "
                               "trajectories; with a brush it also marks still regions as 'no motion'; with "
                               "nothing drawn it runs on an empty control (see 'empty_control')."),
                DynControl.Input("control", optional=True,
                                 tooltip="Sparse trajectories from TracksToSparseFlow (re-rasterised here if their "
                                 "frame count or size differs)."),
                CoreTracks.Input("tracks", optional=True,
                                 tooltip="Shortcut for TracksToSparseFlow with its defaults (the demo's patches): core "
                                 "TRACKS (e.g. SparseTrajectoryToFlow's 'tracks'). Give this or 'control', not both."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Motion brush: 1 = may move, 0 = stays exactly still (its flow is zero). "
                              "Passed on to stage 2 with the motion."),
                io.Float.Input("control_scale", default=1.0, min=0.0, max=5.0, step=0.05, optional=True,
                               tooltip="Multiplies the ControlNet's residuals (demo: 1)."),
                io.Boolean.Input("empty_control", default=True, optional=True,
                                 tooltip="With a ControlNet connected but no trajectory and no brush, run it anyway "
                                 "on an empty control (flow 0.5 = no motion, mask 0), as the authors' demo always "
                                 "does. Off: the U-Net runs without the ControlNet then."),
            ],
            outputs=[DynMotion.Output("motion", display_name="motion",
                                      tooltip="Reference-anchored flows [num_frames,2,H,W] in pixels at the "
                                      "picture's size; frame 0 is zero. The brush travels with it to stage 2.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model, flow_vae, positive, negative, image, vae, num_frames, frame_stride, cfg, steps, seed,
                fps, controlnet=None, control=None, tracks=None, mask=None, control_scale=1.0,
                empty_control=True) -> io.NodeOutput:
        import comfy.model_management

        from ...models.motion_i2v.constants import LATENT_SCALE, stage1_image_for_comfy_vae
        from ...models.motion_i2v.sampler import make_control, sample_stage1, with_reference_frame

        node = NODE_FLOW
        _require(model, node, "model", FAMILY_STAGE1)
        _require(flow_vae, node, "flow_vae", FAMILY_FLOW_VAE)
        if controlnet is not None:
            _require(controlnet, node, "controlnet", FAMILY_CONTROLNET)
        cfg_unet = model.model.config
        n = num_frames - 1
        max_len = cfg_unet["motion_module"]["max_len"]
        if n > max_len:
            raise NodeInputError(node, "num_frames", f"at most {max_len + 1} frames for this model", str(num_frames))
        width = cfg_unet["cross_attention_dim"]
        cond = text_embedding(positive, node, "positive", width)
        uncond = text_embedding(negative, node, "negative", width)
        cond, uncond = match_tokens(cond, uncond)

        picture = image_to_bchw(image, node)[:1]
        height, width_px = picture.shape[-2:]
        _check_multiple_of_8(height, width_px, node, "image")
        # the flows at the picture's size, the sparse control and its mask, and the decoder's working copies
        require_memory(node, 48 * num_frames * height * width_px, ("image", "num_frames"),
                       f"flows of {num_frames} frames at {width_px}x{height}")
        factor = 2 ** (len(flow_vae.model.config.block_out_channels) - 1)
        if factor != 8:
            raise NodeInputError(node, "flow_vae", "a flow VAE with the image VAE's 8x factor", f"{factor}x")
        brush = mask_to_b1hw(mask, (height, width_px), node)
        static = None if brush is None else 1.0 - brush[0, 0]

        if control is not None and tracks is not None:
            raise NodeInputError(node, "tracks", "either 'control' or 'tracks', not both", "both")
        if tracks is not None:
            control = control_from_tracks(parse_tracks(tracks, node), height, width_px, num_frames)
        if control is not None and not isinstance(control, SparseFlowControl):
            raise NodeInputError(node, "control", "a DYN_CONTROL from TracksToSparseFlow", _describe(control))
        if control is not None and controlnet is None:
            raise NodeInputError(node, "controlnet", "the trajectory ControlNet (motion_i2v_controlnet) when "
                                 "trajectories are given", "nothing")

        handles = [h for h in (model, flow_vae, controlnet) if h is not None]
        comfy.model_management.load_models_gpu([h.patcher for h in handles])
        device = model.patcher.load_device
        float32_on_cpu(device, *handles)
        generator = torch.Generator("cpu").manual_seed(int(seed) % (2**63))
        pixels = stage1_image_for_comfy_vae(picture.movedim(1, -1))                 # [1, H, W, 3], 0..1
        image_latent = vae_latent(vae, pixels, node) * LATENT_SCALE
        if tuple(image_latent.shape[-2:]) != (height // 8, width_px // 8):
            raise NodeInputError(node, "vae", f"a latent of {width_px // 8}x{height // 8}",
                                 f"{image_latent.shape[-1]}x{image_latent.shape[-2]}")

        control_latent = None
        use_controlnet = controlnet is not None and (control is not None or static is not None or empty_control)
        if use_controlnet:
            if control is not None:
                sparse, sparse_mask = control.rasterise(height, width_px, num_frames)
                sparse, sparse_mask = sparse[1:], sparse_mask[1:]
            else:  # nothing drawn: an empty control, still regions (if brushed) given as "no motion"
                sparse = torch.zeros(n, 2, height, width_px)
                sparse_mask = torch.zeros(n, 1, height, width_px)
            control_latent = make_control(flow_vae.model, sparse.to(device).float(), sparse_mask.to(device).float(),
                                          static_mask=None if static is None else static.to(device),
                                          generator=generator)

        progress = Progress(steps)
        flows = sample_stage1(
            model.model, flow_vae.model, image_latent.to(device), cond.to(device), uncond.to(device),
            strides=[frame_stride * (i + 1) for i in range(n)], num_steps=steps, guidance_scale=cfg,
            controlnet=controlnet.model if use_controlnet else None, control=control_latent,
            control_scale=control_scale, static_mask=None if static is None else static.to(device),
            generator=generator, progress=progress)
        displacement = with_reference_frame(flows).float().to(comfy.model_management.intermediate_device())
        check_finite(displacement, node, "model")
        extras = {"source": NODE_FLOW, "frame_stride": frame_stride}
        return io.NodeOutput(Motion(displacement=displacement, fps=fps, brush=None if brush is None else brush.cpu(),
                                    extras=extras))


def _require(handle, node: str, input_name: str, family: str) -> None:
    if not hasattr(handle, "require") or not hasattr(handle, "family"):
        raise NodeInputError(node, input_name, f"a {family} model from LoadMotionModel", _describe(handle))
    handle.require(node, input_name, family)


# ------------------------------------------------------------------------------------------------ stage 2


class MotionI2VAnimate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_ANIMATE,
            display_name="Motion-I2V Animate (stage 2)",
            category=f"{CATEGORY}/motion",
            description=(
                "Motion-I2V stage 2: inserts the motion modules into your SD 1.5 MODEL (motion-augmented temporal "
                "attention guided by the flows), puts its sampling on the schedule they were trained with (linear "
                "betas 0.00085-0.012) and makes a LATENT video whose frame 0 is the picture. Sample it with the core "
                "KSampler and decode with VAE Decode. The official DDIM (25 steps, cfg 7) is KSampler with sampler "
                "'euler' (DDIM with eta 0; 'ddim' is the same but re-draws the still brush regions' noise), scheduler "
                "'ddim_uniform' (timesteps 961, 921, ..., 1 as diffusers' DDIM with steps_offset 1; exact for step "
                "counts dividing 1000: 25, 50), steps 25, cfg 7, denoise 1. The flows may come from "
                "MotionI2VPredictFlow or from a real video (MotionFromVideo: video-to-video)."),
            inputs=[
                io.Model.Input("model", tooltip="An SD 1.5 MODEL (CheckpointLoaderSimple); Motion-I2V's demo used "
                               "Realistic Vision 5.1."),
                io.Conditioning.Input("positive", tooltip="Passed through to the sampler."),
                io.Conditioning.Input("negative", tooltip="Passed through to the sampler."),
                DynModel.Input("motion_model", tooltip="The stage-2 motion modules (motion_i2v_stage2 file, "
                               "LoadMotionModel)."),
                DynMotion.Input("motion", tooltip="Reference-anchored flows (frame 0 = the picture); any size of the "
                                "picture's aspect (they are resized to every feature map)."),
                io.Int.Input("num_frames", default=16, min=2, max=16,
                             tooltip="Frames to render (at most the motion's frames, and 16: the temporal "
                             "attention of 2F-1 keys has 32 learnt positions)."),
                io.Latent.Input("latent", optional=True, tooltip="The picture encoded by the core VAE Encode (only "
                                "its first frame is used; the posterior mean, where the authors' demo draws a "
                                "posterior sample). Or give 'image' and 'vae'."),
                io.Image.Input("image", optional=True, tooltip="The picture (encoded here with 'vae' when no "
                               "'latent' is given)."),
                io.Vae.Input("vae", optional=True, tooltip="The SD 1.5 VAE to encode 'image'."),
                io.Mask.Input("mask", optional=True, tooltip="Motion brush, 1 = may move; other regions are reset to "
                              "the picture at every step. Default: the brush that came with the motion (if any)."),
                io.Combo.Input("reference_pairing", options=list(PAIRING_OPTIONS), default="official", optional=True,
                               tooltip="Whose picture features each frame's motion-augmented attention warps when the "
                               "sampler runs the cond and uncond videos in one batch. 'official': as the authors' "
                               "code (what the weights were trained and shown with): their .repeat tiling gives "
                               "frames 2, 4, ... of each branch the other branch's features. 'per video': every "
                               "video its own. When ComfyUI runs cond and uncond in separate calls (memory, "
                               "cfg 1) each call holds one video and both options use its own features."),
            ],
            outputs=[
                io.Model.Output("patched_model", display_name="model",
                                tooltip="The MODEL with the motion modules and the clean-reference rule."),
                io.Conditioning.Output("positive_out", display_name="positive",
                                       tooltip="The positive conditioning, unchanged."),
                io.Conditioning.Output("negative_out", display_name="negative",
                                       tooltip="The negative conditioning, unchanged."),
                io.Latent.Output("video_latent", display_name="latent",
                                 tooltip="num_frames latents with a noise mask (frame 0 and still regions = the "
                                 "picture, 0 where it may move): sample with denoise 1."),
            ],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model, positive, negative, motion_model, motion, num_frames, latent=None, image=None, vae=None,
                mask=None, reference_pairing="official") -> io.NodeOutput:
        import torch.nn.functional as F

        node = NODE_ANIMATE
        _require(motion_model, node, "motion_model", FAMILY_STAGE2)
        if not isinstance(motion, Motion):
            raise NodeInputError(node, "motion", "a DYN_MOTION (MotionI2VPredictFlow, MotionFromVideo, ...)",
                                 _describe(motion))
        check_finite(motion.displacement, node, "motion")
        limit = (motion_model.model.config["motion_module"]["max_len"] + 1) // 2
        if num_frames > limit:
            raise NodeInputError(node, "num_frames", f"at most {limit} frames for these motion modules",
                                 str(num_frames))
        if motion.num_frames < 2:
            raise NodeInputError(node, "motion", "motion of at least 2 frames", str(motion.num_frames))
        frames = min(num_frames, motion.num_frames)

        if latent is not None:
            samples = latent.get("samples") if isinstance(latent, dict) else None
            if not torch.is_tensor(samples) or samples.ndim != 4 or samples.shape[1] != 4:
                raise NodeInputError(node, "latent", "an SD 1.5 LATENT [B,4,h,w] (VAE Encode)",
                                     f"{tuple(samples.shape)}" if torch.is_tensor(samples) else _describe(latent))
            reference = samples[:1].float().cpu()
        elif image is not None:
            if vae is None:
                raise NodeInputError(node, "vae", "a VAE to encode 'image' (or connect 'latent')", "nothing")
            picture = image_to_bchw(image, node)
            _check_multiple_of_8(picture.shape[-2], picture.shape[-1], node, "image")
            reference = vae_latent(vae, picture[:1].movedim(1, -1), node).cpu()
        else:
            raise NodeInputError(node, "latent", "the picture: a LATENT from VAE Encode, or 'image' and 'vae'",
                                 "neither")
        check_finite(reference, node, "latent")
        h, w = reference.shape[-2:]
        mh, mw = motion.size
        if abs(mw / mh - w / h) > 0.02 * (w / h):
            raise NodeInputError(node, "motion", f"motion with the picture's aspect ratio ({8 * w}x{8 * h}); for a "
                                 "video of another shape, give MotionFromVideo the picture as 'target'",
                                 f"{mw}x{mh}")
        flows = motion.displacement[:frames].float().clone()
        flows[0] = 0.0

        brush = None
        if mask is not None:
            brush = mask_to_b1hw(mask, (mask.shape[-2], mask.shape[-1]), node)
        elif motion.brush is not None:
            brush = motion.brush.float()
        moving = None
        if brush is not None:
            moving = F.interpolate(brush.reshape(1, 1, *brush.shape[-2:]).float(), size=(h, w), mode="nearest")[0, 0]

        float32_on_cpu(motion_model.patcher.load_device, motion_model)
        patched = patch_model_with_motion_modules(model, motion_model, flows, reference, node, reference_pairing)
        return io.NodeOutput(patched, positive, negative, video_latent(reference, frames, moving))


NODES = [MotionI2VPredictFlow, MotionI2VAnimate]
