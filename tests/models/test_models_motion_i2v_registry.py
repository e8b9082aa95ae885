"""Motion-I2V checkpoints through the pack's registry (what LoadMotionModel calls): all four families."""
from __future__ import annotations

import pytest
import torch

from imagedynamics.models.checkpoint import Checkpoint, CheckpointError, save_checkpoint
from imagedynamics.models.motion_i2v.checkpoint import from_checkpoint, save
from imagedynamics.models.motion_i2v.config import FAMILIES, tiny_config
from imagedynamics.models.motion_i2v.model import build_component
from imagedynamics.models.registry import build_from_file


@pytest.mark.parametrize("component", ["stage1", "controlnet", "flow_vae", "stage2"])
@pytest.mark.parametrize("fp16", [False, True])
def test_every_family_loads_bit_exactly(tmp_path, component, fp16):
    torch.manual_seed(0)
    model = build_component(component, tiny_config(component))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))                       # no zero-initialised layer left to hide a mix-up
    path = tmp_path / f"{component}.safetensors"
    save(path, model, component, fp16=fp16)
    family, config, loaded = build_from_file(path)
    assert family == FAMILIES[component] and config["conventions"]["latent_scale"] == 0.18215
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    expected = {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    got = loaded.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


def test_wrong_tensors_or_family_raise_checkpoint_errors(tmp_path):
    state = build_component("stage2", tiny_config("stage2")).state_dict()
    config = tiny_config("stage2")
    state.pop(next(iter(state)))
    with pytest.raises(CheckpointError, match="missing"):
        from_checkpoint(Checkpoint.from_state_dict("motion_i2v.stage2", config, state))
    with pytest.raises(CheckpointError, match="not a Motion-I2V family"):
        from_checkpoint(Checkpoint.from_state_dict("motion_i2v.stage3", config, state))
    with pytest.raises(CheckpointError, match="config in its metadata is invalid"):
        from_checkpoint(Checkpoint.from_state_dict("motion_i2v.stage2", {**config, "bogus": 1}, state))
    path = tmp_path / "odd.safetensors"
    save_checkpoint(path, {"x": torch.zeros(1)}, "motion_i2v.flow_vae", tiny_config("flow_vae"))
    with pytest.raises(CheckpointError):
        build_from_file(path)
