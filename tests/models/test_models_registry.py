"""The checkpoint format and the family registry: round trips and clear errors."""
from __future__ import annotations

import pytest
import torch

from imagedynamics.models import registry
from imagedynamics.models.checkpoint import (
    CheckpointError,
    check_shapes,
    load_checkpoint,
    read_header,
    save_checkpoint,
)


def test_round_trip_keeps_family_config_and_tensors_exactly(tmp_path):
    state = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, state, family="gid", config={"k": 4, "nested": {"x": [1, 2]}})
    family, version, config = read_header(path)
    assert (family, version, config) == ("gid", 1, {"k": 4, "nested": {"x": [1, 2]}})
    _, _, loaded = load_checkpoint(path, expected_family="gid")
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    assert not list(tmp_path.glob("*.partial"))


def test_errors_name_the_problem(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {"w": torch.zeros(2)}, family="renderer", config={})
    with pytest.raises(CheckpointError, match="'renderer' checkpoint, expected gid"):
        load_checkpoint(path, expected_family="gid")
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="not a readable"):
        read_header(truncated)
    from safetensors.torch import save_file

    foreign = tmp_path / "f.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an ImageDynamics checkpoint"):
        read_header(foreign)


def test_unknown_family_and_unbuildable_config_are_checkpoint_errors(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, {"w": torch.zeros(2)}, family="nonsense", config={})
    with pytest.raises(CheckpointError, match="unknown family 'nonsense'"):
        registry.build_from_file(path)
    save_checkpoint(path, {"w": torch.zeros(2)}, family="gid", config={"model": {"bogus": 1}})
    with pytest.raises(CheckpointError, match="m.safetensors .a .gid. checkpoint.: the GID config .* is invalid"):
        registry.build_from_file(path)


def test_shape_check_names_missing_unexpected_and_mismatched_keys():
    module = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match=r"1 missing keys \(first: bias\).*1 unexpected keys \(first: extra\)"):
        check_shapes(module, {"weight": (2, 3), "extra": (1,)})
    with pytest.raises(CheckpointError, match=r"shape mismatches \(first: weight: file \(3, 3\) vs model \(2, 3\)"):
        check_shapes(module, {"weight": (3, 3), "bias": (2,)})
    check_shapes(module, {"weight": (2, 3), "bias": (2,)})  # an exact match passes
