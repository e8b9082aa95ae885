"""Tiny Motion-I2V checkpoints for the example workflows and integration tests (random weights, seconds).

Every component has the released architecture at a tiny size (``models.motion_i2v.config.tiny_config``),
with two changes so that it plugs into the tiny SD 1.5 checkpoint of :mod:`tiny_sd15`:

- stage 1 and the ControlNet take 768-wide text embeddings (the CLIP of an SD 1.5 checkpoint);
- the stage-2 motion modules fit that checkpoint's one-level U-Net (320 channels, one layer per block), with
  a narrow attention (``dim_div`` 8).

The zero-initialised output layers (ControlNet zero convolutions, temporal ``proj_out``) get small random
weights, so that trajectories and motion modules visibly change the results. Each maker also writes
``models/checkpoints/tiny_sd15.safetensors`` next to the ``motion_models`` folder if it is missing, because
the Motion-I2V workflows load that SD 1.5 checkpoint with CheckpointLoaderSimple.
"""
from __future__ import annotations

import pathlib

import torch

STAGE1 = "motion_i2v_stage1_tiny.safetensors"
CONTROLNET = "motion_i2v_controlnet_tiny.safetensors"
FLOW_VAE = "motion_i2v_flow_vae_tiny.safetensors"
STAGE2 = "motion_i2v_stage2_tiny.safetensors"


def configs() -> dict[str, dict]:
    """The tiny configs of the four components (stage 2 matches :data:`tiny_sd15.UNET`)."""
    from tiny_sd15 import UNET

    from imagedynamics.models.motion_i2v.config import tiny_config

    stage1 = {**tiny_config("stage1"), "cross_attention_dim": UNET["context_dim"]}
    controlnet = {**tiny_config("controlnet"), "cross_attention_dim": UNET["context_dim"]}
    stage2 = {**tiny_config("stage2"), "block_out_channels": [UNET["model_channels"]],
              "layers_per_block": UNET["num_res_blocks"], "norm_num_groups": 32, "motion_module_resolutions": [1],
              "motion_module_mid_block": True}
    stage2["motion_module"] = {**stage2["motion_module"], "num_attention_heads": 4, "dim_div": 8}
    return {"stage1": stage1, "controlnet": controlnet, "flow_vae": tiny_config("flow_vae"), "stage2": stage2}


def _wake_zero_layers(model: torch.nn.Module, generator: torch.Generator, std: float = 0.05) -> None:
    """Small random weights in the layers that start at zero (ControlNet outputs, temporal proj_out)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(key in name for key in ("controlnet_down_blocks", "controlnet_mid_block",
                                           "controlnet_cond_embedding.layers.2", "proj_out")):
                p.copy_(torch.randn(p.shape, generator=generator) * std)


def make_component(path: pathlib.Path, component: str, seed: int = 0) -> None:
    from imagedynamics.models.motion_i2v.checkpoint import save
    from imagedynamics.models.motion_i2v.model import build_component

    torch.manual_seed(seed)
    config = configs()[component]
    model = build_component(component, config)
    _wake_zero_layers(model, torch.Generator().manual_seed(seed + 1))
    save(path, model, component, config)
    ensure_core_checkpoint(path)


def ensure_core_checkpoint(motion_model_path: pathlib.Path) -> None:
    """``<base>/models/checkpoints/tiny_sd15.safetensors`` for a file in ``<base>/models/motion_models``."""
    from tiny_sd15 import ensure_tiny_sd15

    ensure_tiny_sd15(pathlib.Path(motion_model_path).resolve().parents[2])


MAKERS = {
    STAGE1: lambda path: make_component(path, "stage1", 1),
    CONTROLNET: lambda path: make_component(path, "controlnet", 2),
    FLOW_VAE: lambda path: make_component(path, "flow_vae", 3),
    STAGE2: lambda path: make_component(path, "stage2", 4),
}
