"""The long-animation additions on a tiny SVD built from ComfyUI's own classes, sampled in-process by ComfyUI's own
sampler. Run by tests/integration/test_integration_long_animation.py as a subprocess (``python
long_animation_inprocess.py``), so that ComfyUI's modules never enter the pytest process; prints one JSON object.

What it measures:

- ``zero_init_identical``: ComfyUI's sampler (euler, 2 steps, cfg 2.5) on the SVD MODEL and on the MODEL patched
  by :func:`nodes.motion.long_animation_patch.patch_svd` with freshly initialised (zero-output) additions give
  bit-identical latents (``torch.equal``); ``unpatched_after`` the same after the patched run (ComfyUI undid it);
- ``trained_changes``: max |difference| when the additions are randomised (they are not inert then);
- ``comfy_vs_trainer``: max |U-Net output of the ComfyUI-patched MODEL (object, emb and LoRA weight patches) - the
  same U-Net with :func:`models.long_animation.attach.install` (the trainer's path)| for randomised additions,
  and ``output_scale`` the output's magnitude;
- ``long_frames``, ``long_finite_range``: LongVideoReschedule (26 segments of 4 frames, 2 steps, gamma 0.5) on the
  patched MODEL gives 104 finite frames;
- ``errors``: the messages for an SD 1.5 MODEL, additions for another SVD size, and a MODEL patched twice.
"""
from __future__ import annotations

import json

from inprocess import ModelHolder, setup_host

FRAMES, SIZE, STEPS, CFG = 4, 8, 2, 2.5
NODE = "LongAnimationMotion"


def _conditioning(context: int, latent):
    extra = {"motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}
    g = __import__("torch").Generator().manual_seed(3)
    torch = __import__("torch")
    positive = [[torch.randn(1, 1, context, generator=g), dict(extra, concat_latent_image=latent)]]
    negative = [[torch.zeros(1, 1, context), dict(extra, concat_latent_image=torch.zeros_like(latent))]]
    return positive, negative


def _randomise(additions, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in additions.named_parameters():
            if not name.startswith("refiner."):
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 / max(1, p[0].numel()) ** 0.5 if p.ndim > 1
                                                             else 0.05))
    return additions


def _tiny_sd15():
    import comfy.model_patcher
    import comfy.supported_models
    import torch

    unet = {"use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
            "adm_in_channels": None, "in_channels": 4, "out_channels": 4, "model_channels": 32,
            "num_res_blocks": [1], "channel_mult": [1], "transformer_depth": [1], "transformer_depth_output": [1, 1],
            "transformer_depth_middle": 1, "use_linear_in_transformer": False, "context_dim": 32,
            "use_temporal_resblock": False, "use_temporal_attention": False, "num_heads": 2}
    config = comfy.supported_models.SD15(unet)
    config.unet_config["num_heads"], config.unet_config["num_head_channels"] = 2, -1
    model = config.get_model({})
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def main() -> dict:
    setup_host()
    import comfy.model_management
    import comfy.sample
    import torch
    from tiny_svd import CONTEXT, tiny_svd

    from imagedynamics.models.long_animation.attach import MotionConditioning, install
    from imagedynamics.models.long_animation.config import LongAnimationConfig, SVDFit, tiny_config
    from imagedynamics.models.long_animation.model import LongAnimationModel
    from imagedynamics.nodes.motion.long_animation_patch import patch_svd

    torch.manual_seed(0)
    model = tiny_svd()
    torch.manual_seed(1)
    holder = ModelHolder(LongAnimationModel(tiny_config()).eval())
    flows = torch.zeros(1, 2, 8 * SIZE, 8 * SIZE)
    flows[:, 0, 16:48, 16:48] = 3.0                                   # a square moving right, 3 px / frame
    noise = torch.randn(FRAMES, 4, SIZE, SIZE)
    picture = torch.randn(1, 4, SIZE, SIZE)
    positive, negative = _conditioning(CONTEXT, picture)

    def sample(m):
        return comfy.sample.sample(m, noise, STEPS, CFG, "euler", "karras", positive, negative,
                                   torch.zeros(FRAMES, 4, SIZE, SIZE), disable_pbar=True, seed=0).float()

    plain = sample(model)
    fresh = sample(patch_svd(model, holder, flows, 3.0, NODE))
    plain_after = sample(model)
    _randomise(holder.model, 7)
    patched = patch_svd(model, holder, flows, 3.0, NODE)
    trained = sample(patched)

    # one U-Net forward: ComfyUI's patches (applied by load_models_gpu) against the trainer's install
    unet = model.model.diffusion_model
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2 * FRAMES, 8, SIZE, SIZE, generator=g)
    timesteps = torch.full((2 * FRAMES,), 0.5)
    context = torch.randn(2 * FRAMES, 1, CONTEXT, generator=g)
    y = torch.randn(2 * FRAMES, 768, generator=g)
    kwargs = {"num_video_frames": FRAMES, "image_only_indicator": torch.zeros(2, FRAMES)}
    comfy.model_management.load_models_gpu([patched])
    with torch.no_grad():
        via_comfy = unet(x, timesteps, context, y, transformer_options=dict(
            patched.model_options["transformer_options"]), **kwargs)
    patched.detach()
    comfy.model_management.unload_all_models()
    conditioning = MotionConditioning(holder.model, flows, 3.0)
    installed = install(unet, holder.model, conditioning)
    with torch.no_grad():
        via_trainer = unet(x, timesteps, context, y, transformer_options=conditioning.transformer_options(),
                           **kwargs)
    installed.remove()
    with torch.no_grad():
        restored = unet(x, timesteps, context, y, transformer_options={}, **kwargs)
        base = unet(x, timesteps, context, y, transformer_options={}, **kwargs)

    errors = {}
    for name, call in {
        "sd15": lambda: patch_svd(_tiny_sd15(), holder, flows, 3.0, NODE),
        "other_size": lambda: patch_svd(model, ModelHolder(LongAnimationModel(tiny_config(
            SVDFit(block_channels=(32,) * 7, block_levels=(0, 1, 1, 1, 1, 0, 0), head_channels=16, model_channels=32,
                   time_embed_dim=128)))), flows, 3.0, NODE),
        "paper_size": lambda: patch_svd(model, ModelHolder(_meta(LongAnimationConfig)), flows, 3.0, NODE),
        "twice": lambda: patch_svd(patch_svd(model, holder, flows, 3.0, NODE), holder, flows, 3.0, NODE),
    }.items():
        try:
            call()
            errors[name] = None
        except ValueError as error:
            errors[name] = f"{type(error).__name__}: {error}"
    long_frames, long_range, long_time = _long_video(patched, positive, negative)
    errors.update(_node_errors(model, holder))
    node_plain, node_patched, node_flow, node_strength = _node_run(model, holder.model, sample, flows)
    return {
        "long_frames": long_frames, "long_finite_range": long_range, "long_seconds": long_time,
        "node_fresh_identical": bool(torch.equal(node_plain, plain)),
        "node_trained_changes": (node_patched - plain).abs().max().item(),
        "node_flow_shape": list(node_flow.shape),
        "node_flow_error": (node_flow - flows).abs().max().item(),
        "node_strength": node_strength,
        "zero_init_identical": bool(torch.equal(plain, fresh)),
        "unpatched_after": bool(torch.equal(plain, plain_after)),
        "trained_changes": (trained - plain).abs().max().item(),
        "comfy_vs_trainer": (via_comfy - via_trainer).abs().max().item(),
        "installed_changes": (via_trainer - base).abs().max().item(),
        "removed_identical": bool(torch.equal(restored, base)),
        "output_scale": via_trainer.abs().max().item(),
        "errors": errors,
    }


def _motion_model(additions, family: str = "long_animation"):
    """A real DYN_MODEL (``nodes.motion.load_model.MotionModel``) around ``additions``, as LoadMotionModel makes."""
    import comfy.model_patcher
    import torch

    from imagedynamics.nodes.motion.load_model import ManagedModule, MotionModel

    patcher = comfy.model_patcher.ModelPatcher(ManagedModule(additions), load_device=torch.device("cpu"),
                                               offload_device=torch.device("cpu"))
    return MotionModel(family, {}, patcher, f"tiny_{family}.safetensors")


def _node_run(model, additions, sample, flows):
    """LongAnimationMotion itself: fresh additions -> identical samples; trained -> changed; T's field back."""
    import torch

    from imagedynamics.models.long_animation.config import tiny_config
    from imagedynamics.models.long_animation.model import LongAnimationModel
    from imagedynamics.nodes.motion.long_animation import LongAnimationMotion
    from imagedynamics.ops.containers import VelocityField

    image = torch.rand(1, 8 * SIZE, 8 * SIZE, 3)
    field = VelocityField(flows.repeat(3, 1, 1, 1))
    fresh = _motion_model(LongAnimationModel(tiny_config()).eval())
    out = LongAnimationMotion.execute(model=model, motion_model=fresh, flow=field, image=image, motion_strength=0.0,
                                      refine=True)
    plain = sample(out.args[0])
    refined = out.args[1]
    trained = LongAnimationMotion.execute(model=model, motion_model=_motion_model(additions), flow=field,
                                          image=image, motion_strength=5.0, refine=False)
    return plain, sample(trained.args[0]), refined.velocity, refined.extras["motion_strength"]


def _long_video(patched, positive, negative):
    """LongVideoReschedule (the node's execute, ComfyUI's samplers) on the patched SVD: 26 segments of 4 frames."""
    import time

    import torch

    from imagedynamics.nodes.motion.long_video import LongVideoReschedule

    start = time.perf_counter()
    out = LongVideoReschedule.execute(model=patched, positive=positive, negative=negative,
                                      latent={"samples": torch.zeros(FRAMES, 4, SIZE, SIZE)}, seed=0, steps=2,
                                      cfg=CFG, sampler_name="euler", scheduler="karras", num_segments=26, gamma=0.5,
                                      omega=0.2, overlap=0, crossfade=False, noise_prior="none", shuffle="frame")
    samples = out.args[0]["samples"]
    finite = bool(torch.isfinite(samples).all())
    return int(samples.shape[0]), (samples.max() - samples.min()).item() if finite else -1.0, \
        time.perf_counter() - start


def _node_errors(model, holder):
    import torch

    from imagedynamics.nodes.motion.long_animation import LongAnimationMotion
    from imagedynamics.ops.containers import VelocityField

    field = VelocityField(torch.zeros(1, 2, 8 * SIZE, 8 * SIZE))
    dyn = _motion_model(holder.model)
    calls = {
        "node_no_field": dict(model=model, motion_model=dyn, refine=False),
        "node_no_image": dict(model=model, motion_model=dyn, flow=field, refine=True),
        "node_other_family": dict(model=model, motion_model=_motion_model(holder.model, "renderer"), flow=field,
                                  refine=False),
        "node_sd15": dict(model=_tiny_sd15(), motion_model=dyn, flow=field, refine=False),
    }
    out = {}
    for name, kwargs in calls.items():
        try:
            LongAnimationMotion.execute(**kwargs)
            out[name] = None
        except ValueError as error:
            out[name] = f"{type(error).__name__}: {error}"
    return out


def _meta(config_class):
    import torch

    from imagedynamics.models.long_animation.model import LongAnimationModel

    with torch.device("meta"):
        return LongAnimationModel(config_class())


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()))
