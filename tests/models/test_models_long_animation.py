"""The long-animation family (models/long_animation/): zero-initialised additions, the SVD they fit, the motion
conditioning's layouts, and the full-size components on the meta device (their parameter counts are the README's).

The additions on a real (tiny) ComfyUI SVD -- bit-identical when fresh, ComfyUI's patches = the trainer's install --
are tested in tests/integration/test_integration_long_animation.py."""
from __future__ import annotations

import pytest
import torch

from imagedynamics.models.long_animation.attach import MotionConditioning, fit_from_unet
from imagedynamics.models.long_animation.config import TINY_SVD, LongAnimationConfig, SVDFit, tiny_config
from imagedynamics.models.long_animation.model import LongAnimationModel, parameter_counts

pytestmark = pytest.mark.usefixtures("one_thread")


def test_fresh_additions_output_exact_zeros_where_they_join_svd():
    torch.manual_seed(0)
    model = LongAnimationModel(tiny_config())
    x = torch.randn(6, 4, 32)
    motion = torch.randn(6, 4, 8)
    assert torch.equal(model.adapters[0](x, motion), torch.zeros_like(x))
    assert torch.equal(model.strength(torch.tensor([0.0, 3.0, 50.0])), torch.zeros(3, TINY_SVD.time_embed_dim))
    for loras in model.lora:
        assert len(loras) == 8 and all(torch.equal(lora.delta(), torch.zeros_like(lora.delta()))
                                       for lora in loras.values())
    flow = torch.randn(2, 2, 16, 16)
    assert torch.equal(model.refine(flow, torch.rand(2, 3, 16, 16)), flow)      # T is the identity at init


def test_trained_additions_respond_to_motion_and_strength():
    torch.manual_seed(0)
    model = LongAnimationModel(tiny_config())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x = torch.randn(6, 4, 32)
    a, b = model.adapters[0](x, torch.randn(6, 4, 8)), model.adapters[0](x, torch.randn(6, 4, 8))
    assert (a - b).abs().max() > 1e-3
    s = model.strength(torch.tensor([1.0, 5.0]))
    assert (s[0] - s[1]).abs().max() > 1e-3


def test_full_size_components_build_on_the_meta_device_with_the_readme_counts():
    counts = {}
    for preset in ("paper", "small"):
        with torch.device("meta"):
            model = LongAnimationModel(LongAnimationConfig.preset(preset))
        assert all(p.is_meta for p in model.parameters())
        counts[preset] = {k: round(v / 1e6, 2) for k, v in parameter_counts(model).items()}
    assert counts["paper"] == {"encoder": 2.32, "adapters": 39.69, "strength": 2.05, "lora": 3.32,
                               "refiner": 46.23, "total": 93.61}
    assert counts["small"]["total"] < counts["paper"]["total"]
    assert len(LongAnimationConfig().svd.block_channels) == 16           # SVD's 16 spatio-temporal transformers


@pytest.mark.parametrize("change, message", [
    ({"encoder_channels": (8, 16, 32)}, "encoder_channels must give 4 entries"),
    ({"svd": SVDFit(block_levels=(0,) * 15)}, "block_levels must give 16 entries"),
    ({"svd": SVDFit(block_channels=(320,) * 15 + (100,))}, r"block_channels\[15\] = 100 must be divisible by 64"),
    ({"lora_rank": 1000}, r"lora_rank must be an integer in \[0, 256\]"),
])
def test_inconsistent_configs_are_refused_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        LongAnimationConfig(**change)


def test_config_round_trips_through_json():
    config = tiny_config()
    assert LongAnimationConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        LongAnimationConfig.from_dict({**config.to_dict(), "motion_bucket": 3})


def test_a_static_field_conditions_every_frame_and_video_and_a_wrong_frame_count_is_named():
    torch.manual_seed(0)
    model = LongAnimationModel(tiny_config())
    flows = torch.randn(1, 2, 64, 64)
    cond = MotionConditioning(model, flows, 2.0)
    tokens = cond.features(1, 16, 5, 2, (8, 8), torch.device("cpu"))          # level 1: 4 x 4 positions
    assert tokens.shape == (2 * 16, 5, 16)
    assert torch.equal(tokens[:16], tokens[16:])                               # one field for both videos
    assert (tokens[:, 0] - tokens[:, 4]).abs().max() > 1e-3                    # each frame its own displacement
    per_frame = MotionConditioning(model, torch.randn(3, 2, 64, 64), 2.0)
    with pytest.raises(RuntimeError, match="a motion field of 3 frames for a U-Net call of 5-frame videos"):
        per_frame.features(0, 64, 5, 1, (8, 8), torch.device("cpu"))
    emb = torch.randn(10, TINY_SVD.time_embed_dim)
    assert torch.equal(cond(emb, 32, {}), emb)                                 # fresh: strength adds zeros


def test_the_encoder_sees_each_frames_displacement_from_frame_0():
    """Eq. 3 (``motion_input = "displacement"``): a static field of v px/frame gives frame k k * v (here
    uniform, so the trajectories stay in it); per-frame flows (the trainer's, last flow repeated) their
    trajectory sums, the repeated last one unused. ``"flow"`` (config version 1) feeds the flows unchanged,
    and a version-1 file's config loads with that meaning."""
    model = LongAnimationModel(tiny_config())
    field = torch.zeros(1, 2, 16, 16)
    field[:, 0], field[:, 1] = 1.5, -0.5
    got = MotionConditioning(model, field, 1.0).encoder_input(5)
    assert got.shape == (1, 5, 2, 16, 16)
    for k in range(5):
        assert torch.allclose(got[0, k], k * field[0]), k
    flows = torch.zeros(1, 4, 2, 16, 16)
    for k, speed in enumerate((1.0, 2.0, 3.0, 99.0)):
        flows[:, k, 0] = speed
    got = MotionConditioning(model, flows, 1.0).encoder_input(4)
    assert got[0, :, 0, 8, 8].tolist() == [0.0, 1.0, 3.0, 6.0]
    old = tiny_config().replace(motion_input="flow")
    assert torch.equal(MotionConditioning(LongAnimationModel(old), field, 1.0).encoder_input(5), field[None])
    stored = {k: v for k, v in tiny_config().to_dict().items() if k != "motion_input"}
    assert LongAnimationConfig.from_dict({**stored, "version": 1}).motion_input == "flow"
    assert LongAnimationConfig.from_dict(tiny_config().to_dict()).motion_input == "displacement"
    with pytest.raises(ValueError, match="motion_input must be one of"):
        tiny_config().replace(motion_input="velocity")


def test_fit_from_unet_needs_temporal_attention():
    with pytest.raises(ValueError, match="no spatio-temporal transformers"):
        fit_from_unet(torch.nn.Sequential(torch.nn.Linear(2, 2)))
