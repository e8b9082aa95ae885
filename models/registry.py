"""Which module builds each checkpoint family.

A family module exposes ``from_checkpoint(family: str, config: dict, state_dict: dict) -> torch.nn.Module``:
it builds the architecture from ``config`` and loads ``state_dict`` strictly
(``models.checkpoint.load_state_dict_strict``).
Modules are imported only when a checkpoint of their family is loaded.
"""
from __future__ import annotations

import importlib
import os

import torch

from .checkpoint import CheckpointError, load_checkpoint

# family -> module (relative to this package) exposing from_checkpoint(family, config, state_dict)
FAMILIES: dict[str, str] = {
    "gid": ".gid.checkpoint",
    "renderer": ".renderer.checkpoint",
    "lvmm": ".lvmm.checkpoint",
    "motion_i2v.stage1": ".motion_i2v.checkpoint",
    "motion_i2v.flow_vae": ".motion_i2v.checkpoint",
    "motion_i2v.controlnet": ".motion_i2v.checkpoint",
    "motion_i2v.stage2": ".motion_i2v.checkpoint",
}


def build_from_file(path: str | os.PathLike, expected_family: str | tuple[str, ...] | None = None
                    ) -> tuple[str, dict, torch.nn.Module]:
    """Read a checkpoint, build its model on the CPU and load it strictly; return (family, config, model)."""
    family, config, state_dict = load_checkpoint(path, expected_family)
    if family not in FAMILIES:
        raise CheckpointError(f"{os.path.basename(os.fspath(path))}: unknown family '{family}' "
                              f"(known: {', '.join(sorted(FAMILIES))})")
    module = importlib.import_module(FAMILIES[family], __package__)
    try:
        model = module.from_checkpoint(family, config, state_dict)
    except CheckpointError as exc:
        raise CheckpointError(f"{os.path.basename(os.fspath(path))} (a '{family}' checkpoint): {exc}") from exc
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a config the architecture cannot take
        raise CheckpointError(f"{os.path.basename(os.fspath(path))}: a '{family}' checkpoint whose config does not "
                              f"build its model ({type(exc).__name__}: {exc})") from exc
    return family, config, model.eval()
