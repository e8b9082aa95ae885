"""Motion-I2V in ComfyUI: stage 1 predicts flows from a picture, stage 2 patches the user's SD 1.5 MODEL.

MotionI2VPredictFlow (stage 1) runs the pack's flow U-Net, trajectory ControlNet and flow VAE
(``models/motion_i2v``) with the text embeddings of the core CLIPTextEncode and the picture's latent from the
core VAE, and outputs reference-anchored flows as ``DYN_MOTION``.

MotionI2VAnimate (stage 2) returns the user's MODEL with Motion-I2V's motion modules inserted, and a LATENT
video for the core KSampler / SamplerCustomAdvanced; VAE Decode decodes it. How the MODEL is patched (no
monkeypatching of the host; everything goes through the ModelPatcher clone, undone when ComfyUI unpatches):

- object patches replace ``diffusion_model.input_blocks[i]``, ``middle_block`` and ``output_blocks[i]`` (the
  places listed by :func:`models.motion_i2v.stage2.comfy_sd15_insertions`) by a ``TimestepEmbedSequential``
  holding the *same* layers under the same names, whose iteration adds one step: the temporal module, after
  the block's last ResBlock / SpatialTransformer and before its Upsample (after element 1 in the middle
  block). Weight names, LoRA patches and offloading are unchanged; the motion modules live in their own
  ModelPatcher, registered as an additional model so ComfyUI loads and offloads them with the U-Net;
- an APPLY_MODEL wrapper gives the U-Net the *clean* reference latent as frame 0 of every video in the batch
  at every step (the model input is set to ``z0 / c_in(sigma)``, so that after ComfyUI's input scaling the
  U-Net sees exactly ``z0``), as Motion-I2V's stage 2 does (paper section 3.3; the library's
  :func:`~models.motion_i2v.sampler.sample_stage2`);
- the LATENT carries a ``noise_mask``: 0 for frame 0 (and for still brush regions of the other frames), 1
  elsewhere, so the core sampler keeps frame 0 on the noised-reference path, returns frame 0 equal to the
  reference latent, and resets still regions to the noised reference at every step (the demo's brush).
"""
from __future__ import annotations

import functools
import math

import torch
from comfy_api.latest import io

from ...ops.containers import Motion
from ..common import (
    CATEGORY,
    DynModel,
    DynMotion,
    NodeInputError,
    Progress,
    Tracks,
    check_finite,
    image_to_bchw,
    mask_to_b1hw,
)
from ..control.sparse_flow import DynControl, SparseFlowControl, control_from_tracks, parse_tracks

NODE_FLOW = "MotionI2VPredictFlow"
NODE_ANIMATE = "MotionI2VAnimate"
FAMILY_STAGE1 = "motion_i2v.stage1"
FAMILY_CONTROLNET = "motion_i2v.controlnet"
FAMILY_FLOW_VAE = "motion_i2v.flow_vae"
FAMILY_STAGE2 = "motion_i2v.stage2"
PATCH_KEY = "imagedynamics_motion_i2v"
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
                               "trajectories; with a brush alone it also marks still regions as 'no motion'."),
                DynControl.Input("control", optional=True,
                                 tooltip="Sparse trajectories from TracksToSparseFlow (re-rasterised here if their "
                                 "frame count or size differs)."),
                Tracks.Input("tracks", optional=True,
                             tooltip="Shortcut for TracksToSparseFlow with the automatic patch radius: core TRACKS "
                             "(e.g. SparseTrajectoryToFlow's 'tracks'). Give this or 'control', not both."),
                io.Mask.Input("mask", optional=True,
                              tooltip="Motion brush: 1 = may move, 0 = stays exactly still (its flow is zero). "
                              "Passed on to stage 2 with the motion."),
                io.Float.Input("control_scale", default=1.0, min=0.0, max=5.0, step=0.05, optional=True,
                               tooltip="Multiplies the ControlNet's residuals (demo: 1)."),
            ],
            outputs=[DynMotion.Output("motion", tooltip="Reference-anchored flows [num_frames,2,H,W] in pixels at the "
                                      "picture's size; frame 0 is zero. The brush travels with it to stage 2.")],
        )

    @classmethod
    def execute(cls, model, flow_vae, positive, negative, image, vae, num_frames, frame_stride, cfg, steps, seed,
                fps, controlnet=None, control=None, tracks=None, mask=None, control_scale=1.0) -> io.NodeOutput:
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
        use_controlnet = controlnet is not None and (control is not None or static is not None)
        if use_controlnet:
            if control is not None:
                sparse, sparse_mask = control.rasterise(height, width_px, num_frames)
                sparse, sparse_mask = sparse[1:], sparse_mask[1:]
            else:  # a brush alone: nothing drawn, still regions given as "no motion"
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
            generator=generator, callback=lambda i, t, latents: progress(i + 1, steps))
        displacement = with_reference_frame(flows).float().to(comfy.model_management.intermediate_device())
        check_finite(displacement, node, "model")
        extras = {"source": NODE_FLOW, "frame_stride": frame_stride}
        if brush is not None:
            extras["brush"] = brush.cpu()
        return io.NodeOutput(Motion(displacement=displacement, fps=fps, extras=extras))


def _require(handle, node: str, input_name: str, family: str) -> None:
    if not hasattr(handle, "require") or not hasattr(handle, "family"):
        raise NodeInputError(node, input_name, f"a {family} model from LoadMotionModel", _describe(handle))
    handle.require(node, input_name, family)


# ------------------------------------------------------------------------------------------------ stage 2


class TemporalStep:
    """One temporal module as an extra step of a U-Net block (called by ComfyUI's ``forward_timestep_embed``).

    Not an ``nn.Module``: it holds no weights of its own (they live in the stage-2 ModelPatcher), so the
    patched block's parameters, names and offloading are exactly those of the original block.
    """

    def __init__(self, runner: MotionRunner, name: str) -> None:
        self.runner, self.name = runner, name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.runner.run(self.name, x)


class MotionRunner:
    """Runs the stage-2 motion modules on ``[(B*F), C, h, w]`` features with the flows of one video."""

    def __init__(self, modules: torch.nn.Module, flows: torch.Tensor, num_frames: int) -> None:
        self.modules, self.flows, self.num_frames = modules, flows, num_frames
        self._flows_on: dict[torch.device, torch.Tensor] = {}

    def flows_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._flows_on:
            self._flows_on[device] = self.flows.to(device)
        return self._flows_on[device]

    def run(self, name: str, x: torch.Tensor) -> torch.Tensor:
        frames = self.num_frames
        if x.shape[0] % frames:
            raise RuntimeError(f"{NODE_ANIMATE}: the U-Net got a batch of {x.shape[0]} frames, not a whole number of "
                               f"{frames}-frame videos; sample the LATENT of {NODE_ANIMATE} as it is (no batch "
                               "changes between the node and the sampler)")
        module = self.modules.module(name)
        weight = next(module.parameters())
        if weight.device != x.device:  # ComfyUI loads the modules with the U-Net; this is only a fallback
            module.to(x.device)
            weight = next(module.parameters())
        out = module(x.to(weight.dtype), num_frames=frames, flows=self.flows_on(x.device))
        return out.to(x.dtype)


@functools.lru_cache(maxsize=1)
def _motion_block_class():
    from comfy.ldm.modules.diffusionmodules.openaimodel import TimestepEmbedSequential

    class MotionBlock(TimestepEmbedSequential):
        """The same layers as ``block`` (same names), iterated with ``step`` inserted at ``position``."""

        def __init__(self, block, position: int, step: TemporalStep) -> None:
            super().__init__(*block._modules.values())
            self.motion_position = position
            self.motion_step = step

        def __iter__(self):
            layers = list(self._modules.values())
            p = self.motion_position
            return iter(layers[:p] + [self.motion_step] + layers[p:])

    return MotionBlock


def _block_position(block, kind: str) -> int:
    """Where the temporal step goes: after element 1 in the middle block, else before a trailing Upsample."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import Upsample

    layers = list(block._modules.values())
    if kind == "middle_block":
        return 2
    if layers and isinstance(layers[-1], Upsample):
        return len(layers) - 1
    return len(layers)


def _channels_before(block, position: int) -> int | None:
    """Channels of the features at ``position`` in a block (ResBlock.out_channels / SpatialTransformer.in_channels)."""
    for layer in reversed(list(block._modules.values())[:position]):
        for attribute in ("out_channels", "in_channels"):
            value = getattr(layer, attribute, None)
            if isinstance(value, int):
                return value
    return None


def patch_model_with_motion_modules(model, motion_model, flows: torch.Tensor, reference: torch.Tensor,
                                    node: str = NODE_ANIMATE):
    """A clone of ``model`` (ModelPatcher of an SD 1.5 U-Net) running the stage-2 motion modules (see module doc).

    Args:
        model: the core MODEL.
        motion_model: the stage-2 :class:`~nodes.motion.load_model.MotionModel`.
        flows: ``[F, 2, H, W]`` reference-anchored flows in pixels, frame 0 = zeros.
        reference: ``[1, 4, h, w]`` raw (unscaled) VAE latent of the picture.
    """
    from comfy.ldm.modules.diffusionmodules.openaimodel import TimestepEmbedSequential

    from ...models.motion_i2v.stage2 import comfy_sd15_insertions

    modules = motion_model.model
    patched = model.clone()
    try:
        patched.get_model_object("diffusion_model.input_blocks")
        patched.get_model_object("diffusion_model.output_blocks")
    except AttributeError as error:
        raise NodeInputError(node, "model", "an SD 1.5 MODEL (a U-Net with input/middle/output blocks)",
                             type(patched.model).__name__) from error
    frames = int(flows.shape[0])
    runner = MotionRunner(modules, flows.float().cpu(), frames)
    block_class = _motion_block_class()
    for name, kind, index in comfy_sd15_insertions(modules.config):
        path = f"diffusion_model.{kind}" if kind == "middle_block" else f"diffusion_model.{kind}.{index}"
        try:
            block = patched.get_model_object(path)
        except (AttributeError, IndexError) as error:
            raise NodeInputError(node, "model", f"an SD 1.5 U-Net with a block {path.split('.', 1)[1]} for the "
                                 f"motion module {name}", "a smaller U-Net") from error
        if isinstance(block, block_class):
            raise NodeInputError(node, "model", "a MODEL without Motion-I2V motion modules",
                                 f"one already patched by {node}")
        if not isinstance(block, TimestepEmbedSequential):
            raise NodeInputError(node, "model", "an SD 1.5 MODEL", f"a {type(block).__name__} at {path}")
        position = _block_position(block, kind)
        channels = _channels_before(block, position)
        wanted = modules.module(name).temporal_transformer.norm.num_channels
        if channels != wanted:
            raise NodeInputError(node, "motion_model", f"motion modules that fit this U-Net ({name} has {wanted} "
                                 f"channels)", f"{channels} channels at {path.split('.', 1)[1]}")
        patched.add_object_patch(path, block_class(block, position, TemporalStep(runner, name)))
    patched.set_additional_models(PATCH_KEY, [motion_model.patcher])

    latent_format = patched.get_model_object("latent_format")
    reference_in = latent_format.process_in(reference.float().clone())

    def clean_reference_frame(executor, x, t, *args, **kwargs):
        """Frame 0 of every video: the clean reference latent as the U-Net's input (after c_in scaling)."""
        if x.shape[0] % frames == 0 and tuple(x.shape[-2:]) == tuple(reference_in.shape[-2:]):
            sampling = executor.class_obj.model_sampling
            sigma = t[0::frames]
            ones = torch.ones((sigma.shape[0],) + tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
            c_in = sampling.calculate_input(sigma, ones)
            x = x.clone()
            x[0::frames] = reference_in.to(x.device, x.dtype) / c_in
        return executor(x, t, *args, **kwargs)

    import comfy.patcher_extension

    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, PATCH_KEY, clean_reference_frame)
    return patched


def video_latent(reference: torch.Tensor, frames: int, moving: torch.Tensor | None) -> dict:
    """LATENT of ``frames`` frames: the reference latent everywhere, and the noise mask (see module doc).

    ``moving``: optional ``[h, w]`` brush at latent size, 1 = may move; ``None`` = everything may move.
    """
    h, w = reference.shape[-2:]
    mask = torch.ones(frames, 1, h, w)
    mask[0] = 0.0
    if moving is not None:
        mask[1:] = moving.float().clamp(0, 1).view(1, 1, h, w)
    return {"samples": reference.float().repeat(frames, 1, 1, 1).contiguous(), "noise_mask": mask}


class MotionI2VAnimate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_ANIMATE,
            display_name="Motion-I2V Animate (stage 2)",
            category=f"{CATEGORY}/motion",
            description=(
                "Motion-I2V stage 2: inserts the motion modules into your SD 1.5 MODEL (motion-augmented temporal "
                "attention guided by the flows) and makes a LATENT video whose frame 0 is the picture. Sample it "
                "with the core KSampler (demo: ddim, 25 steps, cfg 7) and decode with VAE Decode. The flows may come "
                "from MotionI2VPredictFlow or from a real video (MotionFromVideo: video-to-video)."),
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
                                "its first frame is used). Or give 'image' and 'vae'."),
                io.Image.Input("image", optional=True, tooltip="The picture (encoded here with 'vae' when no "
                               "'latent' is given)."),
                io.Vae.Input("vae", optional=True, tooltip="The SD 1.5 VAE to encode 'image'."),
                io.Mask.Input("mask", optional=True, tooltip="Motion brush, 1 = may move; other regions are reset to "
                              "the picture at every step. Default: the brush that came with the motion (if any)."),
            ],
            outputs=[
                io.Model.Output("patched_model", display_name="model",
                                tooltip="The MODEL with the motion modules and the clean-reference rule."),
                io.Conditioning.Output("positive_out", display_name="positive",
                                       tooltip="The positive conditioning, unchanged."),
                io.Conditioning.Output("negative_out", display_name="negative",
                                       tooltip="The negative conditioning, unchanged."),
                io.Latent.Output("video_latent", display_name="latent",
                                 tooltip="num_frames latents (frame 0 = the picture) with a noise mask: sample with "
                                 "denoise 1."),
            ],
        )

    @classmethod
    def execute(cls, model, positive, negative, motion_model, motion, num_frames, latent=None, image=None, vae=None,
                mask=None) -> io.NodeOutput:
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
        elif isinstance(motion.extras.get("brush"), torch.Tensor):
            brush = motion.extras["brush"].float()
        moving = None
        if brush is not None:
            moving = F.interpolate(brush.reshape(1, 1, *brush.shape[-2:]).float(), size=(h, w), mode="nearest")[0, 0]

        float32_on_cpu(motion_model.patcher.load_device, motion_model)
        patched = patch_model_with_motion_modules(model, motion_model, flows, reference, node)
        return io.NodeOutput(patched, positive, negative, video_latent(reference, frames, moving))


NODES = [MotionI2VPredictFlow, MotionI2VAnimate]
