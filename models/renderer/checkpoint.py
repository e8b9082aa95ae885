"""The ``renderer`` checkpoint family: one ``.safetensors`` file with an :class:`~.model.ImageRenderer`.

Tensors: the model's state dict. Metadata config JSON: ``ImageRendererConfig.to_dict()`` plus optional
``training`` notes (size, steps, metric) that the loader ignores.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ..checkpoint import Checkpoint, build_and_load, open_checkpoint, save_checkpoint
from .config import ImageRendererConfig
from .model import ImageRenderer

FAMILY = "renderer"
VERSION = 1


def from_checkpoint(checkpoint: Checkpoint, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> ImageRenderer:
    """Build the :class:`ImageRenderer` a checkpoint describes (meta device first) and give it the file's tensors."""
    return build_and_load(checkpoint, FAMILY, VERSION, "renderer", ImageRendererConfig.from_dict, ImageRenderer,
                          device=device, dtype=dtype)


def load(path: str | os.PathLike, device: str | torch.device = "cpu",
         dtype: torch.dtype | None = None) -> ImageRenderer:
    """Read a ``renderer`` checkpoint (CheckpointError: unreadable, another family, invalid config, wrong tensors)."""
    return from_checkpoint(open_checkpoint(path, FAMILY), device, dtype)


def save(path: str | os.PathLike, model: ImageRenderer, training: dict[str, Any] | None = None) -> None:
    """Write ``model`` as a ``renderer`` checkpoint; ``training`` notes go into the config's ``training`` key."""
    config = model.config.to_dict()
    if training:
        config["training"] = dict(training)
    save_checkpoint(path, model.state_dict(), FAMILY, config, version=VERSION)
