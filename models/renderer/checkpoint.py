"""The ``renderer`` checkpoint family: one ``.safetensors`` file with an :class:`~.model.ImageRenderer`.

Tensors: the model's state dict. Metadata config JSON: ``ImageRendererConfig.to_dict()`` plus optional
``training`` notes (size, steps, metric) that the loader ignores. ``models.registry.build_from_file`` finds this
module through the family name and calls :func:`from_checkpoint`.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ..checkpoint import CheckpointError, load_checkpoint, load_state_dict_strict, save_checkpoint
from .model import ImageRenderer, ImageRendererConfig

FAMILY = "renderer"
FORMAT_VERSION = 1


def config_from_metadata(config: dict[str, Any], name: str = "checkpoint") -> ImageRendererConfig:
    """The :class:`ImageRendererConfig` stored in a checkpoint (CheckpointError when invalid)."""
    try:
        return ImageRendererConfig.from_dict(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{name}: the renderer config in its metadata is invalid ({exc})") from exc


def from_checkpoint(family: str, config: dict[str, Any], state_dict: dict[str, torch.Tensor],
                    name: str = "checkpoint") -> ImageRenderer:
    """Build an :class:`ImageRenderer` from its config and load ``state_dict`` strictly (registry API)."""
    if family != FAMILY:
        raise CheckpointError(f"{name}: a '{family}' checkpoint, expected '{FAMILY}'")
    model = ImageRenderer(config_from_metadata(config, name))
    load_state_dict_strict(model, state_dict, name=name)
    return model.requires_grad_(False).eval()


def save_renderer(path: str | os.PathLike, model: ImageRenderer, training: dict[str, Any] | None = None) -> None:
    """Write ``model`` as a ``renderer`` checkpoint; ``training`` notes go into the config's ``training`` key."""
    config = model.config.to_dict()
    if training:
        config["training"] = dict(training)
    save_checkpoint(path, model.state_dict(), FAMILY, config, version=FORMAT_VERSION)


def load_renderer(path: str | os.PathLike, device: str | torch.device = "cpu") -> ImageRenderer:
    """Load a ``renderer`` checkpoint (CheckpointError for another family or a damaged file)."""
    family, config, state_dict = load_checkpoint(path, FAMILY)
    return from_checkpoint(family, config, state_dict, os.path.basename(os.fspath(path))).to(device)
