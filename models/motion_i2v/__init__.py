"""Motion-I2V (Shi et al. 2024) with its released weights: flow prediction, trajectory control, flow-guided rendering.

Modules:
    constants  latent scale, strides, scheduler settings, flow normalisation helpers
    config     full-size and tiny configs, component names and checkpoint families
    temporal   AnimateDiff-style temporal modules and the motion-augmented temporal attention
    unet3d     the stage-1 flow U-Net (also the stage-2 reference U-Net)
    controlnet the sparse-trajectory ControlNet
    flow_vae   the 2-channel flow VAE and pixel-flow encode/decode
    stage2     the stage-2 motion modules and where they go in an SD 1.5 U-Net
    model      build a component from its config
    checkpoint save / load components in the pack's checkpoint format (the four motion_i2v.* families)
    convert    released .bin files -> pack checkpoints (also a command line)
    sampler    DDIM samplers of stage 1 (flows) and stage 2 (latents)

Importing this package imports only torch; diffusers is imported by the modules that need it.
"""
from __future__ import annotations

from .config import COMPONENTS, FAMILIES, full_config, stage2_unet_config, tiny_config
from .constants import LATENT_SCALE, SCHEDULER_KWARGS, STRIDES, denormalise_flow, make_scheduler, normalise_flow

__all__ = [
    "COMPONENTS",
    "FAMILIES",
    "LATENT_SCALE",
    "SCHEDULER_KWARGS",
    "STRIDES",
    "denormalise_flow",
    "full_config",
    "make_scheduler",
    "normalise_flow",
    "stage2_unet_config",
    "tiny_config",
]
