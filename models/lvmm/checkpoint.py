"""The ``lvmm`` checkpoint family: one ``.safetensors`` pack with every network of the model.

Tensors: ``predictor.*``, ``renderer.*``, ``vae.*``, ``encoder.*``, ``denoiser.*`` (the state dict of
:class:`~.model.LVMM`). Metadata config JSON: ``{"model": LVMMConfig.to_dict(), "conventions": {...}}``
(``config.conventions``).
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ..checkpoint import Checkpoint, build_and_load, open_checkpoint, save_checkpoint
from .config import LVMMConfig, conventions
from .model import LVMM

FAMILY = "lvmm"
VERSION = 1


def parse_config(meta: dict[str, Any]) -> LVMMConfig:
    """The :class:`LVMMConfig` of a checkpoint's metadata (ValueError / KeyError when invalid)."""
    return LVMMConfig.from_dict(meta["model"])


def from_checkpoint(checkpoint: Checkpoint, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> LVMM:
    """Build the :class:`LVMM` a checkpoint describes (meta device first) and give it the file's tensors."""
    return build_and_load(checkpoint, FAMILY, VERSION, "LVMM", parse_config, LVMM, device=device, dtype=dtype)


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> LVMM:
    """Read an ``lvmm`` checkpoint (CheckpointError: unreadable, another family, invalid config, wrong tensors)."""
    return from_checkpoint(open_checkpoint(path, FAMILY), device, dtype)


def save(path: str | os.PathLike, model: LVMM, config: LVMMConfig | None = None) -> None:
    """Write an ``lvmm`` checkpoint: all weights, the config and the conventions (atomic)."""
    config = config or model.config
    config.validate()
    meta = {"model": config.to_dict(), "conventions": conventions(config)}
    save_checkpoint(path, model.state_dict(), FAMILY, meta, version=VERSION)
