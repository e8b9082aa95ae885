"""Which module loads each checkpoint family.

A family module (``models/<family>/checkpoint.py``) exposes ``FAMILY``, ``save``, ``load`` and
``from_checkpoint(checkpoint, device="cpu", dtype=None) -> torch.nn.Module``, all thin over
``models.checkpoint.build_and_load`` (see that module and the README's "How to add a model family").
Modules are imported only when a checkpoint of their family is loaded.
"""
from __future__ import annotations

import importlib
import os

import torch

from .checkpoint import CheckpointError, open_checkpoint

# family -> module (relative to this package) exposing from_checkpoint(checkpoint, device, dtype)
FAMILIES: dict[str, str] = {
    "gid": ".gid.checkpoint",
    "renderer": ".renderer.checkpoint",
    "lvmm": ".lvmm.checkpoint",
    "long_animation": ".long_animation.checkpoint",
    "motion_i2v.stage1": ".motion_i2v.checkpoint",
    "motion_i2v.flow_vae": ".motion_i2v.checkpoint",
    "motion_i2v.controlnet": ".motion_i2v.checkpoint",
    "motion_i2v.stage2": ".motion_i2v.checkpoint",
}


def family_module(family: str, name: str = "checkpoint"):
    """The module that loads ``family`` (CheckpointError naming the known families otherwise)."""
    if family not in FAMILIES:
        raise CheckpointError(f"{name}: unknown family '{family}' (known: {', '.join(sorted(FAMILIES))})")
    return importlib.import_module(FAMILIES[family], __package__)


def build_from_file(path: str | os.PathLike, expected_family: str | tuple[str, ...] | None = None,
                    device: str | torch.device = "cpu", dtype: torch.dtype | None = None
                    ) -> tuple[str, dict, torch.nn.Module]:
    """Read a checkpoint, build its model (meta device first, then the file's tensors on ``device``); return
    (family, config, model) with the model in eval mode.

    Raises:
        CheckpointError: unreadable file, unknown or unexpected family, invalid config (limits included), or
            tensors that do not match the config. The message starts with the file name.
    """
    checkpoint = open_checkpoint(path, expected_family)
    module = family_module(checkpoint.family, checkpoint.name)
    try:
        model = module.from_checkpoint(checkpoint, device=device, dtype=dtype)
    except CheckpointError as exc:
        message = str(exc)
        prefix = f"{checkpoint.name}: "
        if message.startswith(prefix):
            message = message[len(prefix):]
        raise CheckpointError(f"{checkpoint.name} (a '{checkpoint.family}' checkpoint): {message}") from exc
    except RuntimeError as exc:  # e.g. out of memory while reading tensors
        raise CheckpointError(f"{checkpoint.name}: a '{checkpoint.family}' checkpoint that cannot be loaded "
                              f"({type(exc).__name__}: {exc})") from exc
    return checkpoint.family, checkpoint.config, model
