"""The four ``motion_i2v.*`` checkpoint families: one component per ``.safetensors`` file.

Families ``motion_i2v.stage1`` / ``.controlnet`` / ``.flow_vae`` / ``.stage2`` (:data:`FAMILIES`). Tensors: the
component's state dict, in the stored dtype (``--fp16`` files stay fp16 unless a dtype is asked for). Metadata
config JSON: the component's architecture config (:func:`.config.resolve_config` keys) plus
``"conventions"`` (:data:`.constants.CONVENTIONS`). Files come from :mod:`.convert` (the released weights) or
:func:`save`; the component is built on the meta device and receives the file's tensors (no random
initialisation, no second copy).

Example:
    >>> import os, tempfile
    >>> from .config import tiny_config
    >>> from .model import build_component
    >>> path = os.path.join(tempfile.mkdtemp(), "vae.safetensors")
    >>> save(path, build_component("flow_vae", tiny_config("flow_vae")), "flow_vae")
    >>> type(load(path)).__name__, load(path).pack_component
    ('AutoencoderKL', 'flow_vae')
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..checkpoint import Checkpoint, CheckpointError, build_and_load, open_checkpoint, save_checkpoint
from .config import COMPONENT_OF_FAMILY, FAMILIES, resolve_config
from .constants import CONVENTIONS
from .model import build_component, model_config

FAMILY = "motion_i2v"  # the prefix of the four families: FAMILY + "." + component
VERSION = 1


def from_checkpoint(checkpoint: Checkpoint, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> nn.Module:
    """Build the Motion-I2V component of the checkpoint's family and give it the file's tensors.

    Returns:
        The component in eval mode with gradients off; its resolved config (with the conventions) is
        ``model.pack_config`` and its component name ``model.pack_component``.

    Raises:
        CheckpointError: an unknown family, an invalid config, or tensors that do not match the config.
    """
    component = COMPONENT_OF_FAMILY.get(checkpoint.family)
    if component is None:
        raise CheckpointError(f"{checkpoint.name}: '{checkpoint.family}' is not a Motion-I2V family "
                              f"(expected one of {', '.join(sorted(COMPONENT_OF_FAMILY))})")

    def parse_config(meta: dict[str, Any]) -> dict[str, Any]:
        return resolve_config(component, {k: v for k, v in meta.items() if k != "conventions"})

    model = build_and_load(checkpoint, checkpoint.family, VERSION, f"Motion-I2V {component}", parse_config,
                           lambda config: build_component(component, config), device=device, dtype=dtype)
    model.pack_config = {**parse_config(checkpoint.config), "conventions": checkpoint.config.get("conventions", {})}
    model.pack_component = component
    return model


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         component: str | None = None) -> nn.Module:
    """Load a converted component (any of the four, or only ``component``); see :func:`from_checkpoint`.

    ``dtype`` casts floating tensors as they are read (default: the file's dtype).
    """
    allowed = tuple(FAMILIES.values()) if component is None else FAMILIES[component]
    return from_checkpoint(open_checkpoint(path, allowed), device, dtype)


def save(path: str | os.PathLike, model_or_state: nn.Module | dict[str, torch.Tensor], component: str,
         config: dict[str, Any] | None = None, fp16: bool = False) -> None:
    """Write one component in the pack's format (``fp16=True`` stores floating tensors as float16).

    ``model_or_state`` is a built component (its config is used unless ``config`` is given) or a state dict
    (then ``config`` is required). The stored config includes :data:`~.constants.CONVENTIONS`.
    """
    if isinstance(model_or_state, nn.Module):
        state = model_or_state.state_dict()
        config = config if config is not None else model_config(model_or_state)
    else:
        if config is None:
            raise ValueError("saving a bare state dict needs its config")
        state = model_or_state
    config = {**resolve_config(component, config), "conventions": CONVENTIONS}
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_checkpoint(path, state, FAMILIES[component], config, version=VERSION)
