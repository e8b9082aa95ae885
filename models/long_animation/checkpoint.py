"""The ``long_animation`` checkpoint family: the paper's additions to SVD (:class:`~.model.LongAnimationModel`).

Tensors: the model's state dict (motion encoder, motion attention adapters, strength embedding, LoRA, T).
Metadata config JSON: ``LongAnimationConfig.to_dict()`` (the SVD it fits included) plus optional ``training``
notes that the loader ignores.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ..checkpoint import Checkpoint, build_and_load, open_checkpoint, save_checkpoint
from .config import LongAnimationConfig
from .model import LongAnimationModel

FAMILY = "long_animation"
VERSION = 1


def from_checkpoint(checkpoint: Checkpoint, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> LongAnimationModel:
    """Build the additions a checkpoint describes (meta device first) and give them the file's tensors."""
    return build_and_load(checkpoint, FAMILY, VERSION, "long_animation", LongAnimationConfig.from_dict,
                          LongAnimationModel, device=device, dtype=dtype)


def load(path: str | os.PathLike, device: str | torch.device = "cpu",
         dtype: torch.dtype | None = None) -> LongAnimationModel:
    """Read a ``long_animation`` checkpoint (CheckpointError: unreadable, another family, invalid config, tensors)."""
    return from_checkpoint(open_checkpoint(path, FAMILY), device, dtype)


def save(path: str | os.PathLike, model: LongAnimationModel, training: dict[str, Any] | None = None) -> None:
    """Write ``model`` as a ``long_animation`` checkpoint; ``training`` notes go into the config's ``training``."""
    config = model.config.to_dict()
    if training:
        config["training"] = dict(training)
    save_checkpoint(path, model.state_dict(), FAMILY, config, version=VERSION)
