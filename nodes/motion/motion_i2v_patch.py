"""How MotionI2VAnimate turns the user's SD 1.5 MODEL into Motion-I2V's stage 2, with ComfyUI's own machinery.

Nothing of the host is monkeypatched; everything goes on a ModelPatcher clone and is undone when ComfyUI
unpatches it:

- **schedule**: an object patch of ``model_sampling`` (as core's ModelSamplingDiscrete node does) with the
  schedule the motion modules were trained with, linear betas 0.00085..0.012 (:func:`motion_i2v_sampling`).
  SD 1.5's own schedule is linear in sqrt(beta): at t = 501 its alpha_bar is 0.275 against 0.160.
- **motion modules**: object patches replace ``diffusion_model.input_blocks[i]``, ``middle_block`` and
  ``output_blocks[i]`` (the places listed by :func:`models.motion_i2v.stage2.comfy_sd15_insertions`) by a
  ``TimestepEmbedSequential`` holding the *same* layers under the same names, whose iteration adds one step:
  the temporal module, after the block's last ResBlock / SpatialTransformer and before its Upsample (after
  element 1 in the middle block). Weight names, LoRA patches and offloading are unchanged; the motion modules
  live in their own ModelPatcher, registered as an additional model so ComfyUI loads and offloads them with
  the U-Net. A ``forward_timestep_embed_patch`` runs each step with the call's ``transformer_options``, which
  say which videos of the batch are cond and uncond (for the reference pairing);
- **the reference frame**: an APPLY_MODEL wrapper gives the U-Net the *clean* reference latent as frame 0 of
  every video at every step, embedded at t = 1 as the official U-Net does: frame 0's sigma is set to
  sigma(t = 1) and its model input to ``z0 / c_in(sigma(1))``, so that after ComfyUI's input scaling the
  U-Net sees exactly ``z0`` (paper section 3.3; the library's :func:`~models.motion_i2v.sampler.sample_stage2`);
- **the LATENT** (:func:`video_latent`) holds the reference latent in frame 0 and in the still (unbrushed)
  regions, zeros where the picture may move, and a ``noise_mask`` (0 for frame 0 and the still regions, 1
  elsewhere). The core sampler then starts the moving regions from noise alone, keeps frame 0 on the
  reference and returns it equal to the reference latent, and resets the still regions to the reference
  noised to the current sigma with the initial noise at every step (the demo's brush).
"""
from __future__ import annotations

import functools

import torch

from ..common import NodeInputError

PATCH_KEY = "imagedynamics_motion_i2v"
PAIRING_OPTIONS = ("official", "per video")


@functools.lru_cache(maxsize=1)
def _sampling_class():
    import comfy.model_sampling

    class MotionI2VSampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
        """Epsilon prediction on Motion-I2V's training schedule (linear betas 0.00085..0.012, 1000 steps)."""

        def __init__(self) -> None:
            from ...models.motion_i2v.constants import training_betas

            super().__init__(model_config=None)
            self._register_schedule(given_betas=training_betas())

    return MotionI2VSampling


def motion_i2v_sampling():
    """A ComfyUI ``model_sampling`` on Motion-I2V's schedule: ``alphas_cumprod`` = diffusers' DDIMScheduler's.

    ``sigmas[t] = sqrt((1 - alpha_bar_t) / alpha_bar_t)`` with ``alpha_bar_t = prod_{s <= t} (1 - beta_s)`` and
    ``beta`` linear from 0.00085 to 0.012; the sigmas of the ``ddim_uniform`` scheduler at 25 steps are then those
    of diffusers' timesteps 961, 921, ..., 1.
    """
    return _sampling_class()()


class TemporalStep:
    """One temporal module as an extra step of a U-Net block.

    Not an ``nn.Module``: it holds no weights of its own (they live in the stage-2 ModelPatcher), so the
    patched block's parameters, names and offloading are exactly those of the original block. ComfyUI's
    ``forward_timestep_embed`` runs it through :func:`run_temporal_step` (registered as a
    ``forward_timestep_embed_patch``), with the call's ``transformer_options``.
    """

    def __init__(self, runner: MotionRunner, name: str) -> None:
        self.runner, self.name = runner, name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.runner.run(self.name, x)


def run_temporal_step(step: TemporalStep, x, emb, context, transformer_options, *_):
    """``forward_timestep_embed_patch`` handler: the step with the cond / uncond layout of this call."""
    return step.runner.run(step.name, x, (transformer_options or {}).get("cond_or_uncond"))


def official_order(cond_or_uncond: list[int] | None, videos: int) -> list[int] | None:
    """Each video's position in the official guidance batch ``[uncond..., cond...]`` (None: keep the order).

    ComfyUI marks the chunks of a batch with ``cond_or_uncond`` (0 = cond, 1 = uncond); with one video per
    chunk, uncond chunks go first, in their order, then cond chunks.
    """
    if not cond_or_uncond or len(cond_or_uncond) != videos:
        return None
    ranked = sorted(range(videos), key=lambda i: (0 if cond_or_uncond[i] == 1 else 1, i))
    position = [0] * videos
    for rank, video in enumerate(ranked):
        position[video] = rank
    return position


class MotionRunner:
    """Runs the stage-2 motion modules on ``[(B*F), C, h, w]`` features with the flows of one video.

    Args:
        modules: the :class:`~models.motion_i2v.stage2.Stage2MotionModules`.
        flows: ``[F, 2, H, W]`` reference-anchored pixel displacements (frame 0 = zeros).
        num_frames: ``F``.
        pairing: ``"official"`` or ``"per video"`` (:func:`~models.motion_i2v.temporal.reference_pairing`).
        node: the node named in errors.
    """

    def __init__(self, modules: torch.nn.Module, flows: torch.Tensor, num_frames: int,
                 pairing: str = "official", node: str = "MotionI2VAnimate") -> None:
        self.modules, self.flows, self.num_frames, self.pairing = modules, flows, num_frames, pairing
        self.node = node
        self._flows_on: dict[torch.device, torch.Tensor] = {}

    def flows_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._flows_on:
            self._flows_on[device] = self.flows.to(device)
        return self._flows_on[device]

    def pairing_for(self, videos: int, cond_or_uncond: list[int] | None = None):
        """The pairing of this call's ``videos`` videos: the official tiling in the official batch order."""
        from ...models.motion_i2v.temporal import reference_pairing

        if self.pairing != "official" or videos == 1:
            return reference_pairing(videos, self.num_frames, "per video")
        return reference_pairing(videos, self.num_frames, "official", official_order(cond_or_uncond, videos))

    def run(self, name: str, x: torch.Tensor, cond_or_uncond: list[int] | None = None) -> torch.Tensor:
        frames = self.num_frames
        if x.shape[0] % frames:
            raise RuntimeError(f"{self.node}: the U-Net got a batch of {x.shape[0]} frames, not a whole number of "
                               f"{frames}-frame videos; sample the LATENT of {self.node} as it is (no batch "
                               "changes between the node and the sampler)")
        module = self.modules.module(name)
        weight = next(module.parameters())
        if weight.device != x.device:  # ComfyUI loads the modules with the U-Net; this is only a fallback
            module.to(x.device)
            weight = next(module.parameters())
        pairing = self.pairing_for(x.shape[0] // frames, cond_or_uncond)
        out = module(x.to(weight.dtype), num_frames=frames, flows=self.flows_on(x.device), pairing=pairing)
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


def _insert_motion_modules(patched, modules, runner: MotionRunner, node: str) -> None:
    from comfy.ldm.modules.diffusionmodules.openaimodel import TimestepEmbedSequential

    from ...models.motion_i2v.stage2 import comfy_sd15_insertions

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
    patched.set_model_forward_timestep_embed_patch((TemporalStep, run_temporal_step))


def reference_frame_wrapper(reference_in: torch.Tensor, frames: int):
    """APPLY_MODEL wrapper: frame 0 of every video is the clean reference latent, embedded at t = 1.

    ``reference_in``: ``[1, 4, h, w]`` reference latent after the latent format's ``process_in``.
    """
    from ...models.motion_i2v.constants import REFERENCE_TIMESTEP

    def clean_reference_frame(executor, x, t, *args, **kwargs):
        if x.shape[0] % frames == 0 and tuple(x.shape[-2:]) == tuple(reference_in.shape[-2:]):
            sampling = executor.class_obj.model_sampling
            reference_t = torch.full((x.shape[0] // frames,), float(REFERENCE_TIMESTEP), device=t.device)
            sigma = sampling.sigma(reference_t).to(t.device, t.dtype)
            ones = torch.ones((sigma.shape[0],) + tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
            c_in = sampling.calculate_input(sigma, ones)
            x, t = x.clone(), t.clone()
            x[0::frames] = reference_in.to(x.device, x.dtype) / c_in
            t[0::frames] = sigma
        return executor(x, t, *args, **kwargs)

    return clean_reference_frame


def patch_model_with_motion_modules(model, motion_model, flows: torch.Tensor, reference: torch.Tensor,
                                    node: str, pairing: str = "official"):
    """A clone of ``model`` (ModelPatcher of an SD 1.5 U-Net) running Motion-I2V's stage 2 (see module doc).

    Args:
        model: the core MODEL (epsilon prediction).
        motion_model: the stage-2 :class:`~nodes.motion.load_model.MotionModel`.
        flows: ``[F, 2, H, W]`` reference-anchored flows in pixels, frame 0 = zeros.
        reference: ``[1, 4, h, w]`` raw (unscaled) VAE latent of the picture.
        node: the node named in errors.
        pairing: ``"official"`` or ``"per video"``.
    """
    import comfy.model_sampling
    import comfy.patcher_extension

    if pairing not in PAIRING_OPTIONS:
        raise NodeInputError(node, "reference_pairing", f"one of {', '.join(PAIRING_OPTIONS)}", repr(pairing))
    patched = model.clone()
    try:
        patched.get_model_object("diffusion_model.input_blocks")
        patched.get_model_object("diffusion_model.output_blocks")
        sampling = patched.get_model_object("model_sampling")
    except AttributeError as error:
        raise NodeInputError(node, "model", "an SD 1.5 MODEL (a U-Net with input/middle/output blocks)",
                             type(patched.model).__name__) from error
    if not isinstance(sampling, comfy.model_sampling.EPS) or isinstance(
            sampling, (comfy.model_sampling.V_PREDICTION, comfy.model_sampling.X0)):
        raise NodeInputError(node, "model", "an epsilon-prediction SD 1.5 MODEL (the motion modules were trained "
                             "on one)", type(sampling).__name__)
    modules = motion_model.model
    frames = int(flows.shape[0])
    runner = MotionRunner(modules, flows.float().cpu(), frames, pairing, node)
    _insert_motion_modules(patched, modules, runner, node)
    patched.set_additional_models(PATCH_KEY, [motion_model.patcher])
    patched.add_object_patch("model_sampling", motion_i2v_sampling())
    reference_in = patched.get_model_object("latent_format").process_in(reference.float().clone())
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, PATCH_KEY,
                                 reference_frame_wrapper(reference_in, frames))
    return patched


def video_latent(reference: torch.Tensor, frames: int, moving: torch.Tensor | None) -> dict:
    """LATENT of ``frames`` frames with its noise mask (see the module doc).

    Args:
        reference: ``[1, 4, h, w]`` raw VAE latent of the picture.
        frames: ``F``.
        moving: optional ``[h, w]`` brush at latent size, 1 = may move (binarised at 0.5, as the demo's);
            ``None`` = everything may move.

    Returns:
        ``{"samples": [F, 4, h, w], "noise_mask": [F, 1, h, w]}``: samples = the reference where the mask is 0
        (frame 0, still regions) and 0 elsewhere, so that the sampler's first input there is noise alone.
    """
    h, w = reference.shape[-2:]
    mask = torch.ones(frames, 1, h, w)
    mask[0] = 0.0
    if moving is not None:
        mask[1:] = (moving.float() > 0.5).float().view(1, 1, h, w)
    samples = reference.float().repeat(frames, 1, 1, 1) * (1.0 - mask)
    return {"samples": samples.contiguous(), "noise_mask": mask}
