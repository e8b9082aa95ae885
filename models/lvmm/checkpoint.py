"""The ``lvmm`` checkpoint family: one ``.safetensors`` pack with every network of the model.

Tensors: ``predictor.*``, ``renderer.*``, ``vae.*``, ``encoder.*``, ``denoiser.*`` (the state dict of
:class:`~.model.LVMM`). Metadata config JSON: ``{"model": LVMMConfig.to_dict(), "conventions": {...}}``
(``config.conventions``). ``models.registry.build_from_file`` finds this module through the family name and
calls :func:`from_checkpoint`.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ..checkpoint import CheckpointError, load_checkpoint, load_state_dict_strict, save_checkpoint
from .config import LVMMConfig, conventions
from .model import LVMM

FAMILY = "lvmm"
FORMAT_VERSION = 1


def config_from_metadata(meta: dict[str, Any], name: str = "checkpoint") -> LVMMConfig:
    """The :class:`LVMMConfig` stored in a checkpoint's metadata (CheckpointError when absent or invalid)."""
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"{name}: its metadata has no LVMM model config")
    try:
        return LVMMConfig.from_dict(meta["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: the LVMM config in its metadata is invalid ({exc})") from exc


def from_checkpoint(family: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor],
                    name: str = "checkpoint") -> LVMM:
    """Build an :class:`LVMM` from a checkpoint's metadata config and load ``state_dict`` strictly (registry API)."""
    if family != FAMILY:
        raise CheckpointError(f"{name}: a '{family}' checkpoint, expected '{FAMILY}'")
    model = LVMM(config_from_metadata(config, name))
    load_state_dict_strict(model, state_dict, name=name)
    return model.requires_grad_(False).eval()


def save_lvmm(path: str | os.PathLike, model: LVMM, config: LVMMConfig | None = None) -> None:
    """Write an ``lvmm`` checkpoint: all weights, the config and the conventions (atomic)."""
    config = config or model.config
    config.validate()
    meta = {"model": config.to_dict(), "conventions": conventions(config)}
    save_checkpoint(path, model.state_dict(), FAMILY, meta, version=FORMAT_VERSION)


def load_lvmm(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> LVMM:
    """Read an ``lvmm`` checkpoint and build its model (eval mode, no gradients).

    Raises:
        CheckpointError: unreadable or truncated file, another family, an invalid config, or tensors that do not
            match the config (the message names the first offending keys).
    """
    name = os.path.basename(os.fspath(path))
    family, meta, state = load_checkpoint(path, expected_family=FAMILY, device="cpu")
    model = from_checkpoint(family, meta, state, name=name)
    model.to(device)
    if dtype is not None:
        model.to(dtype)
    return model
