"""Architecture configs of the four Motion-I2V components: the released full size and tiny test sizes.

A config is a plain JSON-able dict; :func:`resolve_config` fills defaults and rejects unknown keys. The
full-size configs reproduce the official classes' key sets and shapes exactly
(``shared/reference/motion_i2v_manifest.json``).

Component names and checkpoint families:

=================  =========================  =============================================================
component          family                     module
=================  =========================  =============================================================
``stage1``         ``motion_i2v.stage1``      :class:`~.unet3d.MotionI2VUNet3D` (8 -> 4 channels, strides)
``controlnet``     ``motion_i2v.controlnet``  :class:`~.controlnet.MotionI2VControlNet`
``flow_vae``       ``motion_i2v.flow_vae``    diffusers ``AutoencoderKL`` with 2 in/out channels
``stage2``         ``motion_i2v.stage2``      :class:`~.stage2.Stage2MotionModules` (motion modules only)
=================  =========================  =============================================================

Example:
    >>> cfg = full_config("stage1")
    >>> cfg["in_channels"], cfg["block_out_channels"], cfg["motion_module"]["max_len"]
    (8, [320, 640, 1280, 1280], 32)
"""
from __future__ import annotations

import copy
from typing import Any

from ..config import MAX_CHANNELS, MAX_FRAMES, MAX_LAYERS, MAX_LEVELS, MAX_SIZE, check_int, check_widths

COMPONENTS = ("stage1", "controlnet", "flow_vae", "stage2")
FAMILIES = {name: f"motion_i2v.{name}" for name in COMPONENTS}
COMPONENT_OF_FAMILY = {family: name for name, family in FAMILIES.items()}

_MOTION_MODULE = {
    "num_attention_heads": 8,
    "num_transformer_block": 1,
    "num_attention_blocks": 2,          # attention_block_types ["Temporal_Self", "Temporal_Self"]
    "temporal_position_encoding": True,
    "max_len": 32,
    "dim_div": 1,
}

_UNET = {
    "in_channels": 8,
    "out_channels": 4,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "num_attention_heads": 8,           # spatial heads (SD 1.5's legacy "attention_head_dim": 8)
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1.0,
    "use_stride_embedding": True,
    "motion_module_resolutions": [1, 2, 4, 8],
    "motion_module_mid_block": True,
    "motion_module": _MOTION_MODULE,
}

_CONTROLNET = {
    **{k: v for k, v in _UNET.items() if k not in ("out_channels", "up_block_types")},
    "conditioning_channels": 5,         # flow-VAE latent of the sparse flow (4) + mask at 1/8 (1)
    "conditioning_hidden_channels": 512,
}

_FLOW_VAE = {
    "in_channels": 2,
    "out_channels": 2,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
}

_STAGE2 = {
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "motion_module_resolutions": [1, 2, 4, 8],
    "motion_module_mid_block": True,
    "motion_module": _MOTION_MODULE,
}

_FULL = {"stage1": _UNET, "controlnet": _CONTROLNET, "flow_vae": _FLOW_VAE, "stage2": _STAGE2}

_TINY_MOTION = {**_MOTION_MODULE, "num_attention_heads": 4}
_TINY_UNET = {
    **_UNET,
    "block_out_channels": [16, 32],
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 1,
    "cross_attention_dim": 16,
    "num_attention_heads": 2,
    "norm_num_groups": 8,
    "motion_module_resolutions": [1, 2],
    "motion_module": _TINY_MOTION,
}
_TINY = {
    "stage1": _TINY_UNET,
    "controlnet": {**{k: v for k, v in _TINY_UNET.items() if k not in ("out_channels", "up_block_types")},
                   "conditioning_channels": 5, "conditioning_hidden_channels": 16},
    "flow_vae": {**_FLOW_VAE, "block_out_channels": [8, 8, 8, 8], "layers_per_block": 1, "norm_num_groups": 4,
                 "sample_size": 64},
    "stage2": {**_STAGE2, "block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8,
               "motion_module_resolutions": [1, 2], "motion_module": _TINY_MOTION},
}


def full_config(component: str) -> dict[str, Any]:
    """The released architecture of ``component`` (a deep copy you may edit)."""
    return copy.deepcopy(_FULL[_check_component(component)])


def tiny_config(component: str) -> dict[str, Any]:
    """A few-thousand-parameter variant for CPU tests (same code paths; 2 U-Net levels, 8x VAE)."""
    return copy.deepcopy(_TINY[_check_component(component)])


def stage2_unet_config(base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Config of a whole stage-2 U-Net (SD 1.5 + motion modules, no stride embedding, 4 -> 4 channels).

    The pack ships only the motion modules of stage 2 (the spatial SD 1.5 U-Net comes from the user's
    checkpoint); this builds the pure-PyTorch reference U-Net used by tests and scripts.
    ``base`` is a stage-1 config (default: full size).
    """
    cfg = copy.deepcopy(base if base is not None else _UNET)
    cfg.update(in_channels=4, out_channels=4, use_stride_embedding=False)
    return cfg


def stage2_config_from_unet(unet_config: dict[str, Any]) -> dict[str, Any]:
    """The ``stage2`` (motion modules) config matching a U-Net config."""
    return {k: copy.deepcopy(unet_config[k]) for k in _STAGE2}


def _check_component(component: str) -> str:
    if component not in COMPONENTS:
        raise ValueError(f"unknown Motion-I2V component {component!r}; expected one of {', '.join(COMPONENTS)}")
    return component


def resolve_config(component: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """Full-size defaults overridden by ``config``; unknown keys or values beyond the limits of
    ``models/config.py`` raise ``ValueError`` (checked before anything is built).

    A ``"conventions"`` entry (stored in checkpoints, see :data:`~.constants.CONVENTIONS`) is kept as is.
    """
    base = full_config(component)
    out = copy.deepcopy(base)
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"the {component} config must be a JSON object, got {type(config).__name__}")
    for key, value in (config or {}).items():
        if key == "conventions":
            out[key] = copy.deepcopy(value)
        elif key not in base:
            raise ValueError(f"unknown {component} config key {key!r}")
        elif key == "motion_module":
            if not isinstance(value, dict):
                raise ValueError(f"motion_module must be a JSON object, got {type(value).__name__}")
            unknown = set(value) - set(base[key])
            if unknown:
                raise ValueError(f"unknown motion_module config keys {sorted(unknown)}")
            out[key] = {**base[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    _check_limits(out)
    n = len(out.get("block_out_channels", []))
    for key in ("down_block_types", "up_block_types"):
        if key in out and len(out[key]) != n:
            raise ValueError(f"{key} has {len(out[key])} entries for {n} block_out_channels")
    return out


# key -> (low, high) for the integers a config may hold
_INT_LIMITS = {
    "in_channels": (1, 64), "out_channels": (1, 64), "latent_channels": (1, 64), "conditioning_channels": (1, 64),
    "layers_per_block": (1, MAX_LAYERS // 2), "cross_attention_dim": (1, 2 * MAX_CHANNELS),
    "num_attention_heads": (1, 128), "norm_num_groups": (1, 1024), "downsample_padding": (0, 8),
    "freq_shift": (0, 8), "conditioning_hidden_channels": (1, MAX_CHANNELS), "sample_size": (1, MAX_SIZE),
}
_MOTION_MODULE_LIMITS = {"num_attention_heads": (1, 128), "num_transformer_block": (1, MAX_LAYERS),
                         "num_attention_blocks": (1, MAX_LAYERS), "max_len": (1, MAX_FRAMES), "dim_div": (1, 64)}


def _check_limits(config: dict[str, Any]) -> None:
    for key, (low, high) in _INT_LIMITS.items():
        if key in config:
            check_int(key, config[key], low, high)
    if "block_out_channels" in config:
        check_widths("block_out_channels", config["block_out_channels"], divisor=config.get("norm_num_groups", 1))
    for key in ("down_block_types", "up_block_types"):
        if key in config and not (isinstance(config[key], list) and all(isinstance(t, str) for t in config[key])):
            raise ValueError(f"{key} must be a list of block type names, got {config[key]!r}")
    if "motion_module_resolutions" in config:
        check_widths("motion_module_resolutions", config["motion_module_resolutions"], high=64, max_levels=MAX_LEVELS)
    for key, (low, high) in _MOTION_MODULE_LIMITS.items():
        if key in config.get("motion_module", {}):
            check_int(f"motion_module.{key}", config["motion_module"][key], low, high)
