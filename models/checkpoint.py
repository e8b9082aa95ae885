"""The pack's checkpoint format: one ``.safetensors`` file per model, config and conventions in its metadata.

Metadata keys (all strings, as safetensors requires):
    ``imagedynamics.family``   the model family, e.g. "gid", "lvmm", "renderer", "motion_i2v.stage1"
    ``imagedynamics.version``  format version of that family
    ``imagedynamics.config``   JSON of the architecture config and conventions (resolution, T, fps, norm stats)

A loader needs nothing but the file: read the family and config, build the model, load strictly.
"""
from __future__ import annotations

import json
import os
from typing import Any

import torch

FAMILY_KEY = "imagedynamics.family"
VERSION_KEY = "imagedynamics.version"
CONFIG_KEY = "imagedynamics.config"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: corrupt, of another family, or not matching its config."""


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], family: str,
                    config: dict[str, Any], version: int = 1) -> None:
    """Write ``state_dict`` to ``path`` with the family and config in the safetensors metadata.

    Tensors are made contiguous and moved to the CPU; shared storage is cloned (safetensors refuses aliases).
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    metadata = {FAMILY_KEY: family, VERSION_KEY: str(version), CONFIG_KEY: json.dumps(config, sort_keys=True)}
    tmp = f"{os.fspath(path)}.partial"
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name


def read_header(path: str | os.PathLike) -> tuple[str, int, dict[str, Any]]:
    """Return (family, version, config) from a checkpoint's metadata without loading its tensors."""
    from safetensors import safe_open

    name = os.path.basename(os.fspath(path))
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for truncated or foreign files
        raise CheckpointError(f"{name}: not a readable .safetensors file ({exc})") from exc
    if FAMILY_KEY not in metadata:
        raise CheckpointError(
            f"{name}: no '{FAMILY_KEY}' in its metadata; it is not an ImageDynamics checkpoint "
            "(foreign weights must be converted first, see the README)")
    try:
        config = json.loads(metadata.get(CONFIG_KEY, "{}"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{name}: its '{CONFIG_KEY}' metadata is not valid JSON ({exc})") from exc
    return metadata[FAMILY_KEY], int(metadata.get(VERSION_KEY, "1")), config


def load_checkpoint(path: str | os.PathLike, expected_family: str | tuple[str, ...] | None = None,
                    device: str | torch.device = "cpu") -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """Load a checkpoint; return (family, config, state_dict).

    Raises:
        CheckpointError: the file is corrupt or truncated, or its family is not ``expected_family``.
    """
    from safetensors.torch import load_file

    family, _, config = read_header(path)
    if expected_family is not None:
        allowed = (expected_family,) if isinstance(expected_family, str) else tuple(expected_family)
        if family not in allowed:
            raise CheckpointError(
                f"{os.path.basename(os.fspath(path))}: a '{family}' checkpoint, expected {' or '.join(allowed)}")
    try:
        state_dict = load_file(os.fspath(path), device=str(device))
    except Exception as exc:
        raise CheckpointError(f"{os.path.basename(os.fspath(path))}: tensors cannot be read ({exc})") from exc
    return family, config, state_dict


def load_state_dict_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], name: str = "checkpoint") -> None:
    """Load with strict key and shape checking and an error that names the first offending keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches (first: {'; '.join(mismatched[:3])})")
        raise CheckpointError(f"{name} does not match its config: " + "; ".join(parts))
    module.load_state_dict(state_dict, strict=True)
