"""The "gid" family's entry for ``models.registry``: build a GIDModel from a checkpoint's config and tensors."""
from __future__ import annotations

import torch

from ..checkpoint import CheckpointError, load_state_dict_strict
from .config import GIDConfig
from .model import GIDModel


def from_checkpoint(family: str, config: dict, state_dict: dict[str, torch.Tensor]) -> GIDModel:
    """Build the model ``config["model"]`` describes and load ``state_dict`` strictly (eval mode, no grads)."""
    try:
        model_config = GIDConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"the GID config in the checkpoint's metadata is invalid ({exc})") from exc
    model = GIDModel(model_config)
    load_state_dict_strict(model, state_dict, name="GID checkpoint")
    return model.requires_grad_(False).eval()
