"""The ``gid`` checkpoint family: one ``.safetensors`` file with a :class:`~.model.GIDModel`.

Tensors: ``vae.*``, ``unet.*`` and ``stats`` ([K, 4] per-frequency scales s of GID Eq. 4, channels re_x, im_x,
re_y, im_y). Metadata config JSON: ``{"model": GIDConfig.to_dict(), "stats": s as nested lists, "conventions":
{...}}``, where the conventions say what the spectra mean: T, fps, resolution, FFT normalisation, pixel units.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ..checkpoint import Checkpoint, build_and_load, open_checkpoint, save_checkpoint
from .config import GIDConfig, conventions
from .model import GIDModel, check_stats

FAMILY = "gid"
VERSION = 1


def parse_config(meta: dict[str, Any]) -> GIDConfig:
    """The :class:`GIDConfig` of a checkpoint's metadata (ValueError / KeyError when invalid)."""
    config = GIDConfig.from_dict(meta["model"])
    if "stats" in meta:
        check_stats(meta["stats"], config.num_frequencies)
    return config


def from_checkpoint(checkpoint: Checkpoint, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> GIDModel:
    """Build the model a checkpoint describes (meta device first) and give it the file's tensors.

    ``dtype`` casts the networks; the statistics stay float32. Eval mode, no gradients.
    """
    model = build_and_load(checkpoint, FAMILY, VERSION, "GID", parse_config, GIDModel, device=device)
    if dtype is not None:
        model.vae.to(dtype)
        model.unet.to(dtype)
    return model


def load(path: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> GIDModel:
    """Read a ``gid`` checkpoint (CheckpointError: unreadable, another family, invalid config, wrong tensors)."""
    return from_checkpoint(open_checkpoint(path, FAMILY), device, dtype)


def save(path: str | os.PathLike, model: GIDModel, config: GIDConfig | None = None,
         stats: torch.Tensor | None = None) -> None:
    """Write a ``gid`` checkpoint: weights, statistics, config and conventions (atomic)."""
    config = config or model.config
    stats = check_stats(model.stats.detach().cpu() if stats is None else stats, config.num_frequencies)
    state = {k: v for k, v in model.state_dict().items() if k != "stats"}
    state["stats"] = stats
    meta = {"model": config.to_dict(), "stats": stats.tolist(), "conventions": conventions(config)}
    save_checkpoint(path, state, FAMILY, meta, version=VERSION)
