"""Build, save and load Motion-I2V components in the pack's checkpoint format (:mod:`models.checkpoint`).

A converted file carries its family (``motion_i2v.stage1`` / ``.controlnet`` / ``.flow_vae`` / ``.stage2``)
and its architecture config (plus the :data:`~.constants.CONVENTIONS`) in its metadata, so
:func:`load_component` needs nothing but the path.

Example:
    >>> import tempfile, os
    >>> from .configs import tiny_config
    >>> model = build_component("stage2", tiny_config("stage2"))
    >>> path = os.path.join(tempfile.mkdtemp(), "mm.safetensors")
    >>> save_component(path, model, "stage2")
    >>> component, config, loaded = load_component(path)
    >>> component, type(loaded).__name__
    ('stage2', 'Stage2MotionModules')
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .configs import COMPONENT_OF_FAMILY, FAMILIES, resolve_config
from .constants import CONVENTIONS


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


def compare_state_dict(expected: dict[str, tuple[int, ...]], actual: dict[str, tuple[int, ...]],
                       limit: int = 5) -> list[str]:
    """Human-readable differences between two ``{key: shape}`` maps (empty when identical)."""
    problems = []
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(actual) if tuple(expected[k]) != tuple(actual[k]))
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:limit])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:limit])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (first: " + "; ".join(
            f"{k}: {tuple(actual[k])} vs expected {tuple(expected[k])}" for k in mismatched[:limit]) + ")")
    return problems


def shapes(state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def check_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], name: str = "checkpoint") -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly the model's keys and shapes."""
    problems = compare_state_dict(shapes(model.state_dict()), shapes(state_dict))
    if problems:
        raise CheckpointError(f"{name} does not match its config: " + "; ".join(problems))


def save_component(path: str | os.PathLike, model_or_state: nn.Module | dict[str, torch.Tensor], component: str,
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
    save_checkpoint(path, state, FAMILIES[component], config)


def load_component(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                   component: str | None = None) -> tuple[str, dict[str, Any], nn.Module]:
    """Load a converted component: returns ``(component, config, model)`` with the model in eval mode.

    The model is built on the meta device and receives the file's tensors directly (no random
    initialisation, no second copy). ``dtype`` casts floating tensors (default: the file's dtype).

    Raises:
        CheckpointError: not a Motion-I2V checkpoint, of another component than ``component``, or keys or
            shapes that do not match its config.
    """
    expected = None if component is None else FAMILIES[component]
    allowed = tuple(FAMILIES.values()) if expected is None else expected
    family, config, state = load_checkpoint(path, expected_family=allowed, device=device)
    name = COMPONENT_OF_FAMILY[family]
    with torch.device("meta"):
        model = build_component(name, {k: v for k, v in config.items() if k != "conventions"})
    check_state_dict(model, state, os.path.basename(os.fspath(path)))
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise CheckpointError(f"{os.path.basename(os.fspath(path))}: tensors not in the file: {leftover[:3]}")
    return name, config, model.eval()
