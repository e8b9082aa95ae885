"""MotionI2VAnimate's patched MODEL sampled in-process by ComfyUI's own sampler, against the library's sample_stage2.

Run by tests/integration/test_integration_motion_i2v.py as a subprocess (``python motion_i2v_inprocess.py``), so
that ComfyUI's modules never enter the pytest process; prints one JSON object of measurements.

The models: the tiny SD 1.5 U-Net of :mod:`tiny_sd15` (random weights, loaded by ``comfy.sd`` as UNETLoader
does) patched by :func:`nodes.motion.motion_i2v_patch.patch_model_with_motion_modules` with random tiny
stage-2 motion modules, and the same weights in the library's pure-PyTorch stage-2 U-Net
(:class:`models.motion_i2v.unet3d.MotionI2VUNet3D`, diffusers blocks, keys mapped by ComfyUI's
``unet_to_diffusers``). What it measures:

- ``alphas_cumprod_error``: max |1 / (1 + sigma_t^2) - prod_{s<=t} (1 - beta_s)| over the patched
  ``model_sampling``'s 1000 sigmas, betas linear 0.00085..0.012 (float64 formula);
- ``sd15_alpha_bar_501`` / ``patched_alpha_bar_501``: the checkpoint's own schedule against the patched one;
- ``reference_timesteps`` / ``frame_timesteps``: the timesteps ComfyUI's U-Net received for frame 0 and for the
  other frames at every call (a DIFFUSION_MODEL wrapper records them), and ``reference_input_error``: max
  |U-Net input of frame 0 - 0.18215 z0|;
- ``cond_or_uncond``: the batch layouts the calls had;
- ``comfy_vs_library`` (official pairing) and ``comfy_vs_library_per_video``: max |ComfyUI's KSampler result
  (euler, ddim_uniform, 3 steps, cfg 5) x 0.18215 - sample_stage2's| with the library started from ComfyUI's
  first state; ``pairings_differ``: max |official - per video| of ComfyUI's results; ``latent_range``;
- ``pairing_*``: the reference index the runner gives a 5-frame batch ordered [uncond, cond] or [cond, uncond]
  (``cond_or_uncond`` [1, 0] / [0, 1]) and a call holding one video.
"""
from __future__ import annotations

import json

from inprocess import ModelHolder, setup_host

FRAMES, SIZE, STEPS, CFG = 4, 8, 3, 5.0


def models():
    """(ComfyUI MODEL, stage-2 holder, library U-Net with the same weights)."""
    import comfy.sd
    import comfy.utils
    import torch
    from tiny_motion_i2v import configs
    from tiny_sd15 import _Random, tiny_unet_state_dict

    from imagedynamics.models.motion_i2v.config import stage2_unet_config
    from imagedynamics.models.motion_i2v.stage2 import Stage2MotionModules
    from imagedynamics.models.motion_i2v.unet3d import MotionI2VUNet3D

    ldm = tiny_unet_state_dict(_Random(5), prefix="")
    model = comfy.sd.load_diffusion_model_state_dict(dict(ldm))
    stage2 = configs()["stage2"]
    torch.manual_seed(6)
    modules = Stage2MotionModules(stage2).eval()
    with torch.no_grad():
        for name, p in modules.named_parameters():
            if "proj_out" in name:
                p.normal_(0.0, 0.05)                      # wake the zero-initialised outputs
    base = {"block_out_channels": stage2["block_out_channels"], "down_block_types": ["CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D"], "layers_per_block": stage2["layers_per_block"],
            "cross_attention_dim": 768, "num_attention_heads": 8, "norm_num_groups": 32,
            "motion_module_resolutions": stage2["motion_module_resolutions"],
            "motion_module_mid_block": stage2["motion_module_mid_block"], "motion_module": stage2["motion_module"]}
    library = MotionI2VUNet3D(stage2_unet_config(base)).eval()
    mapping = comfy.utils.unet_to_diffusers(model.model.model_config.unet_config)
    state = {key: ldm[mapping[key]].float() for key in mapping if key in library.state_dict()}
    spatial = {k for k in library.state_dict() if ".motion_modules." not in k}
    if set(state) != spatial:
        raise RuntimeError(f"unmapped library keys: {sorted(spatial - set(state))[:5]}")
    library.load_state_dict(state, strict=False)
    modules.load_into_unet(library)
    return model, ModelHolder(modules), library


def main() -> dict:
    setup_host()
    import comfy.patcher_extension
    import comfy.sample
    import torch

    from imagedynamics.models.motion_i2v.sampler import sample_stage2
    from imagedynamics.nodes.motion.motion_i2v_patch import MotionRunner, patch_model_with_motion_modules, video_latent

    torch.manual_seed(0)
    model, holder, library = models()
    reference = torch.randn(1, 4, SIZE, SIZE)                     # raw VAE latent of "the picture"
    flows = torch.randn(FRAMES, 2, 8 * SIZE, 8 * SIZE) * 4
    flows[0] = 0
    cond, uncond = torch.randn(1, 7, 768), torch.randn(1, 7, 768)
    noise = torch.randn(FRAMES, 4, SIZE, SIZE)
    seen = {"reference": [], "frames": [], "input_error": 0.0, "layouts": []}

    def record(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        seen["layouts"].append(list(transformer_options.get("cond_or_uncond", [])))
        seen["reference"] += timesteps[0::FRAMES].tolist()
        seen["frames"].append(sorted(set(timesteps.reshape(-1, FRAMES)[:, 1:].flatten().tolist())))
        error = (x[0::FRAMES].float() - 0.18215 * reference).abs().max().item()
        seen["input_error"] = max(seen["input_error"], error)
        return executor(x, timesteps, context, y, control, transformer_options, **kwargs)

    def comfy_sample(pairing: str) -> torch.Tensor:
        patched = patch_model_with_motion_modules(model, holder, flows, reference, "MotionI2VAnimate", pairing)
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test", record)
        latent = video_latent(reference, FRAMES, None)
        return comfy.sample.sample(patched, noise, STEPS, CFG, "euler", "ddim_uniform", [[cond, {}]],
                                   [[uncond, {}]], latent["samples"], noise_mask=latent["noise_mask"],
                                   disable_pbar=True, seed=0).float(), patched

    official, patched = comfy_sample("official")
    sampling = patched.get_model_object("model_sampling")
    sigmas = sampling.sigmas.double()
    betas = torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64)
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    per_video, _ = comfy_sample("per video")

    sigma0 = float(sigmas[1 + (1000 // STEPS) * (STEPS - 1)])
    start = (noise * sigma0 / (1 + sigma0 ** 2) ** 0.5).permute(1, 0, 2, 3)[None]   # ComfyUI's x_T, VP scale
    library_out = {}
    for pairing in ("official", "per video"):
        library_out[pairing] = sample_stage2(library, 0.18215 * reference, flows, cond, uncond, num_steps=STEPS,
                                             guidance_scale=CFG, pairing=pairing, latents=start.clone())
    original = model.get_model_object("model_sampling")
    runner = MotionRunner(holder.model, flows, 5)                  # 5 frames: F - 1 even, the tiling is asymmetric
    return {
        "pairing_uncond_first": runner.pairing_for(2, [1, 0]).tolist(),
        "pairing_cond_first": runner.pairing_for(2, [0, 1]).tolist(),
        "pairing_split_call": runner.pairing_for(1, [0]).tolist(),
        "alphas_cumprod_error": (1 / (1 + sigmas ** 2) - alphas_cumprod).abs().max().item(),
        "sd15_alpha_bar_501": 1 / (1 + float(original.sigmas[501]) ** 2),
        "patched_alpha_bar_501": 1 / (1 + float(sigmas[501]) ** 2),
        "reference_timesteps": seen["reference"],
        "frame_timesteps": seen["frames"],
        "reference_input_error": seen["input_error"],
        "cond_or_uncond": seen["layouts"],
        "comfy_vs_library": (official * 0.18215 - library_out["official"]).abs().max().item(),
        "comfy_vs_library_per_video": (per_video * 0.18215 - library_out["per video"]).abs().max().item(),
        "pairings_differ": (official - per_video).abs().max().item(),
        "latent_range": (official.max() - official.min()).item(),
        "frame0_error": (official[0] - reference[0]).abs().max().item(),
    }


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()))
