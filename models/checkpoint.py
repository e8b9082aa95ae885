"""The pack's checkpoint format and the one loader every model family goes through.

A checkpoint is one ``.safetensors`` file per model, with three metadata keys (all strings, as safetensors
requires):
    ``imagedynamics.family``   the model family, e.g. "gid", "lvmm", "renderer", "motion_i2v.stage1"
    ``imagedynamics.version``  format version of that family (an integer)
    ``imagedynamics.config``   JSON of the architecture config and conventions (resolution, T, fps, norm stats)

A loader needs nothing but the file. :func:`open_checkpoint` reads the family, version, config and the tensors'
names and shapes (no tensor data); :func:`build_and_load` parses and validates the config (its limits refuse a
tiny file that asks for a huge model), builds the model on the meta device (no memory), compares names and
shapes with the file, and only then reads the tensors straight into the model (``assign=True``: one copy).

Every family's ``checkpoint.py`` is thin over :func:`build_and_load`::

    FAMILY = "renderer"
    VERSION = 1

    def from_checkpoint(checkpoint, device="cpu", dtype=None):
        return build_and_load(checkpoint, FAMILY, VERSION, "renderer", ImageRendererConfig.from_dict, ImageRenderer,
                              device=device, dtype=dtype)

    def load(path, device="cpu", dtype=None):
        return from_checkpoint(open_checkpoint(path, FAMILY), device, dtype)

    def save(path, model):
        save_checkpoint(path, model.state_dict(), FAMILY, model.config.to_dict(), VERSION)
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from .config import parse_version

FAMILY_KEY = "imagedynamics.family"
VERSION_KEY = "imagedynamics.version"
CONFIG_KEY = "imagedynamics.config"

C = TypeVar("C")
M = TypeVar("M", bound=torch.nn.Module)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: corrupt, of another family, or not matching its config."""


def save_checkpoint(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], family: str,
                    config: dict[str, Any], version: int = 1) -> None:
    """Write ``state_dict`` to ``path`` with the family and config in the safetensors metadata.

    Tensors are made contiguous and moved to the CPU; shared storage is cloned (safetensors refuses aliases).
    The file is written under a temporary name and renamed, so a failed save never leaves half a checkpoint.
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    metadata = {FAMILY_KEY: family, VERSION_KEY: str(version), CONFIG_KEY: json.dumps(config, sort_keys=True)}
    tmp = f"{os.fspath(path)}.partial"
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, path)


@dataclass
class Checkpoint:
    """A checkpoint's header: what is in the file, without its tensor data.

    Attributes:
        name: the file name (for messages).
        family, version, config: from the metadata.
        shapes: ``{tensor name: shape}`` of every stored tensor.
        path: the file (None for an in-memory checkpoint, :meth:`from_state_dict`).
    """

    name: str
    family: str
    version: int
    config: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]
    path: str | None = None
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @classmethod
    def from_state_dict(cls, family: str, config: dict[str, Any], state_dict: Mapping[str, torch.Tensor],
                        name: str = "checkpoint", version: int = 1) -> Checkpoint:
        """An in-memory checkpoint (what a file would hold), e.g. for tests and converters."""
        state = dict(state_dict)
        return cls(name, family, int(version), dict(config), {k: tuple(v.shape) for k, v in state.items()},
                   state_dict=state)

    def tensors(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """All tensors, read onto ``device`` (CheckpointError when the data cannot be read)."""
        if self.state_dict is not None:
            return {k: v.to(device) for k, v in self.state_dict.items()}
        from safetensors.torch import load_file

        try:
            return load_file(self.path, device=str(device))
        except Exception as exc:  # safetensors raises several types for damaged data
            raise CheckpointError(f"{self.name}: tensors cannot be read ({exc})") from exc


def _name(path: str | os.PathLike) -> str:
    return os.path.basename(os.fspath(path))


def open_checkpoint(path: str | os.PathLike, expected_family: str | tuple[str, ...] | None = None) -> Checkpoint:
    """Read a checkpoint's metadata and tensor shapes (no tensor data).

    Raises:
        CheckpointError: not a readable .safetensors file, not an ImageDynamics checkpoint, a version or config
            that cannot be parsed, or a family other than ``expected_family``.
    """
    from safetensors import safe_open

    name = _name(path)
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            metadata = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for truncated or foreign files
        raise CheckpointError(f"{name}: not a readable .safetensors file ({exc})") from exc
    if FAMILY_KEY not in metadata:
        raise CheckpointError(
            f"{name}: no '{FAMILY_KEY}' in its metadata; it is not an ImageDynamics checkpoint "
            "(foreign weights must be converted first, see the README)")
    family = metadata[FAMILY_KEY]
    if expected_family is not None:
        allowed = (expected_family,) if isinstance(expected_family, str) else tuple(expected_family)
        if family not in allowed:
            raise CheckpointError(f"{name}: a '{family}' checkpoint, expected {' or '.join(allowed)}")
    try:
        version = parse_version(metadata.get(VERSION_KEY, "1"), f"its '{VERSION_KEY}'", current=1 << 30)
    except ValueError as exc:
        raise CheckpointError(f"{name}: {exc}") from exc
    try:
        config = json.loads(metadata.get(CONFIG_KEY, "{}"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{name}: its '{CONFIG_KEY}' metadata is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{name}: its '{CONFIG_KEY}' metadata must be a JSON object, got "
                              f"{type(config).__name__}")
    return Checkpoint(name, family, version, config, shapes, path=os.fspath(path))


def read_header(path: str | os.PathLike) -> tuple[str, int, dict[str, Any]]:
    """Return (family, version, config) from a checkpoint's metadata without loading its tensors."""
    checkpoint = open_checkpoint(path)
    return checkpoint.family, checkpoint.version, checkpoint.config


def load_checkpoint(path: str | os.PathLike, expected_family: str | tuple[str, ...] | None = None,
                    device: str | torch.device = "cpu") -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """Load a whole checkpoint as data; return (family, config, state_dict) (for tools and tests).

    Raises:
        CheckpointError: the file is corrupt or truncated, or its family is not ``expected_family``.
    """
    checkpoint = open_checkpoint(path, expected_family)
    return checkpoint.family, checkpoint.config, checkpoint.tensors(device)


def compare_shapes(expected: Mapping[str, tuple[int, ...]], actual: Mapping[str, tuple[int, ...]],
                   limit: int = 3) -> list[str]:
    """Human-readable differences between a model's ``{name: shape}`` and a file's (empty when they match)."""
    problems = []
    missing = [k for k in expected if k not in actual]
    unexpected = [k for k in actual if k not in expected]
    mismatched = [f"{k}: file {tuple(actual[k])} vs model {tuple(expected[k])}"
                  for k in expected if k in actual and tuple(actual[k]) != tuple(expected[k])]
    if missing:
        problems.append(f"{len(missing)} missing keys (first: {', '.join(missing[:limit])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:limit])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (first: {'; '.join(mismatched[:limit])})")
    return problems


def check_shapes(model: torch.nn.Module, shapes: Mapping[str, tuple[int, ...]], name: str = "checkpoint") -> None:
    """CheckpointError unless ``shapes`` (a file's) has exactly the model's state-dict names and shapes."""
    problems = compare_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()}, shapes)
    if problems:
        raise CheckpointError(f"{name}: the file does not match its config: " + "; ".join(problems))


def build_and_load(checkpoint: Checkpoint, family: str | tuple[str, ...], version: int, what: str,
                   parse_config: Callable[[dict[str, Any]], C], build: Callable[[C], M], *,
                   device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> M:
    """Build a family's model from a checkpoint: config, limits, meta build, name and shape check, then the data.

    Args:
        checkpoint: from :func:`open_checkpoint` (or :meth:`Checkpoint.from_state_dict`).
        family: the family (or families) this loader accepts.
        version: the newest format version this code reads.
        what: the model's name in messages ("GID", "renderer", ...).
        parse_config: the stored config dict -> the family's config (validated: ValueError, TypeError or
            KeyError on anything wrong, limits included).
        build: config -> model; called under ``torch.device("meta")``, so it allocates nothing.
        device: where the tensors are read to.
        dtype: cast floating tensors to this dtype (default: as stored).

    Returns:
        the model in eval mode with gradients off; its config is what ``parse_config`` returned.

    Raises:
        CheckpointError: another family, a newer version, an invalid config, or tensors whose names or shapes
            do not match the config (the message names the first offending keys).
    """
    allowed = (family,) if isinstance(family, str) else tuple(family)
    name = checkpoint.name
    if checkpoint.family not in allowed:
        raise CheckpointError(f"{name}: a '{checkpoint.family}' checkpoint, expected {' or '.join(allowed)}")
    if checkpoint.version > version:
        raise CheckpointError(f"{name}: format version {checkpoint.version} of '{checkpoint.family}' is newer "
                              f"than this code ({version}); update the pack")
    try:
        config = parse_config(checkpoint.config)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{name}: the {what} config in its metadata is invalid ({exc})") from exc
    try:
        with torch.device("meta"):
            model = build(config)
    except (KeyError, TypeError, ValueError) as exc:  # a combination the architecture cannot take
        raise CheckpointError(f"{name}: the {what} config in its metadata does not build a model "
                              f"({type(exc).__name__}: {exc})") from exc
    check_shapes(model, checkpoint.shapes, name)
    state = checkpoint.tensors(device)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:  # a tensor outside the state dict (a non-persistent buffer) would stay unallocated
        raise CheckpointError(f"{name}: {what} tensors not in the file: {', '.join(leftover[:3])}")
    return model.requires_grad_(False).eval()
