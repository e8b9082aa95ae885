"""Build the four Motion-I2V components from their configs (:mod:`.config`); their checkpoints are in
:mod:`.checkpoint`.

Example:
    >>> from .config import tiny_config
    >>> model = build_component("stage2", tiny_config("stage2"))
    >>> type(model).__name__, sorted(model_config(model))[:2]
    ('Stage2MotionModules', ['block_out_channels', 'layers_per_block'])
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .config import resolve_config


def build_component(component: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate ``component`` ("stage1", "controlnet", "flow_vae", "stage2") from a config.

    Build under ``with torch.device("meta"):`` to get the structure without allocating weights.
    """
    if component == "stage1":
        from .unet3d import MotionI2VUNet3D

        return MotionI2VUNet3D(config)
    if component == "controlnet":
        from .controlnet import MotionI2VControlNet

        return MotionI2VControlNet(config)
    if component == "flow_vae":
        from .flow_vae import build_flow_vae

        return build_flow_vae(config)
    if component == "stage2":
        from .stage2 import Stage2MotionModules

        return Stage2MotionModules(config)
    resolve_config(component, None)  # raises the "unknown component" error
    raise AssertionError


def model_config(model: nn.Module) -> dict[str, Any]:
    """The resolved config a component was built from."""
    cfg = getattr(model, "pack_config", None) or getattr(model, "config", None)
    if not isinstance(cfg, dict):
        raise TypeError(f"{type(model).__name__} was not built by build_component")
    return cfg
