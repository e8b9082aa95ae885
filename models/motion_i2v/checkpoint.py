"""The ``motion_i2v.*`` checkpoint families for :mod:`models.registry` (``LoadMotionModel``).

``models.registry.build_from_file`` reads a file's family, config and tensors and calls
:func:`from_checkpoint`; this module builds the component named by the family on the meta device and gives it
the file's tensors (no random initialisation, no second copy), with the strict key and shape check of
:mod:`.loading`. Files come from :mod:`.convert` (the released weights) or :func:`.loading.save_component`.

Example:
    >>> import os, tempfile
    >>> from ..checkpoint import load_checkpoint
    >>> from .configs import tiny_config
    >>> from .loading import build_component, save_component
    >>> path = os.path.join(tempfile.mkdtemp(), "vae.safetensors")
    >>> save_component(path, build_component("flow_vae", tiny_config("flow_vae")), "flow_vae")
    >>> family, config, state = load_checkpoint(path)
    >>> type(from_checkpoint(family, config, state)).__name__
    'AutoencoderKL'
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError
from .configs import COMPONENT_OF_FAMILY, resolve_config
from .loading import build_component, check_state_dict


def from_checkpoint(family: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor],
                    name: str = "checkpoint") -> nn.Module:
    """Build the Motion-I2V component of ``family`` from its stored config and load ``state_dict`` strictly.

    Args:
        family: ``motion_i2v.stage1``, ``.controlnet``, ``.flow_vae`` or ``.stage2``.
        config: the metadata config (architecture keys plus ``"conventions"``).
        state_dict: the file's tensors, kept in their stored dtype (fp16 files stay fp16).

    Returns:
        The component in eval mode with gradients off; its resolved config is ``model.pack_config``.

    Raises:
        CheckpointError: an unknown family, an invalid config, or tensors that do not match the config.
    """
    component = COMPONENT_OF_FAMILY.get(family)
    if component is None:
        raise CheckpointError(f"{name}: '{family}' is not a Motion-I2V family "
                              f"(expected one of {', '.join(sorted(COMPONENT_OF_FAMILY))})")
    architecture = {k: v for k, v in (config or {}).items() if k != "conventions"}
    try:
        resolved = resolve_config(component, architecture)
        with torch.device("meta"):
            model = build_component(component, resolved)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: its Motion-I2V {component} config is invalid ({exc})") from exc
    check_state_dict(model, state_dict, name)
    model.load_state_dict(state_dict, strict=True, assign=True)
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise CheckpointError(f"{name}: tensors not in the file: {leftover[:3]}")
    model.pack_config = {**resolved, "conventions": (config or {}).get("conventions", {})}
    return model.requires_grad_(False).eval()

