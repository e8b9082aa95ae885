"""models/long_animation/refiner.py: T is the identity at initialisation, builds on the meta device, works at any
resolution in resolution-free units, and its config holds the shared limits."""
from __future__ import annotations

import pytest
import torch

from imagedynamics.models.long_animation.refiner import REFINER_PRESETS, FlowRefiner, RefinerConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("size", [(32, 32), (37, 50), (5, 3), (64, 40)])
def test_identity_at_initialisation_any_resolution(size):
    torch.manual_seed(0)
    refiner = FlowRefiner(RefinerConfig.preset("tiny"))
    rough = torch.randn(2, 2, *size) * 5
    out = refiner(rough, torch.rand(2, 3, *size))
    assert out.shape == rough.shape and out.dtype == rough.dtype
    assert torch.equal(out, rough)  # bit-exact: the zero last layer adds exactly 0


def test_meta_build_and_parameter_counts():
    counts = {}
    for name in REFINER_PRESETS:
        with torch.device("meta"):
            model = FlowRefiner(RefinerConfig.preset(name))
        assert all(p.is_meta for p in model.parameters())
        counts[name] = sum(p.numel() for p in model.parameters())
    # the figures in the README and the preset docstring
    assert round(counts["pix2pix"] / 1e6, 1) == 46.2 and round(counts["default"] / 1e6, 1) == 3.0
    assert round(counts["small"] / 1e6, 2) == 0.76 and counts["tiny"] < 30_000
    # every tensor is a parameter or a persistent buffer (the checkpoint loader assigns them all)
    model = FlowRefiner(RefinerConfig.preset("tiny"))
    assert set(model.state_dict()) == {n for n, _ in model.named_parameters()} | {
        n for n, _ in model.named_buffers()}


def test_residual_units_scale_with_resolution():
    # the network works in per cent of the long side per frame: a unit residual is max(H, W) / 100 pixels
    refiner = FlowRefiner(RefinerConfig.preset("tiny"))
    with torch.no_grad():
        refiner.out.bias.copy_(torch.tensor([1.0, -2.0]))
    for h, w in ((64, 48), (128, 96), (30, 200)):
        rough = torch.zeros(1, 2, h, w)
        out = refiner(rough, torch.rand(1, 3, h, w))
        unit = max(h, w) / 100.0
        assert torch.allclose(out[0, 0], torch.full((h, w), unit)) and torch.allclose(out[0, 1],
                                                                                      torch.full((h, w), -2 * unit))


def test_trains_and_gradient_checkpointing_matches():
    torch.manual_seed(1)
    refiner = FlowRefiner(RefinerConfig.preset("tiny"))
    rough, image = torch.randn(2, 2, 20, 24), torch.rand(2, 3, 20, 24)
    refiner(rough, image).square().mean().backward()
    assert refiner.out.weight.grad.abs().sum() > 0  # the zero layer gets a gradient, so T can learn
    with torch.no_grad():
        torch.nn.init.normal_(refiner.out.weight, std=0.1)
    refiner.zero_grad()
    plain = refiner(rough, image)
    plain.square().mean().backward()
    grads = [p.grad.clone() for p in refiner.parameters()]
    refiner.zero_grad()
    refiner.gradient_checkpointing = True
    checkpointed = refiner(rough, image)
    checkpointed.square().mean().backward()
    assert torch.allclose(plain, checkpointed)
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(grads, refiner.parameters()))


def test_config_round_trip_and_limits():
    config = RefinerConfig.preset("small")
    assert RefinerConfig.from_dict(config.to_dict()) == config
    assert RefinerConfig.from_dict(config.to_dict(version=True)) == config
    assert config.to_dict(version=True)["version"] == RefinerConfig.CONFIG_VERSION
    assert config.to_dict()["channels"] == [16, 32, 64, 128]
    with pytest.raises(ValueError, match="channels"):
        RefinerConfig(channels=(32768,), norm_num_groups=8)  # a tiny file must not ask for a huge network
    with pytest.raises(ValueError, match="channels"):
        RefinerConfig(channels=(8,) * 7, norm_num_groups=8)  # too many levels
    with pytest.raises(ValueError, match="divisible"):
        RefinerConfig(channels=(12, 16), norm_num_groups=8)
    with pytest.raises(ValueError, match="blocks"):
        RefinerConfig(blocks=0)
    with pytest.raises(ValueError, match="flow_scale"):
        RefinerConfig(flow_scale=0.0)
    with pytest.raises(ValueError, match="RefinerConfig.blocks"):
        RefinerConfig.from_dict({"blocks": "many"})
    with pytest.raises(ValueError, match="unknown"):
        RefinerConfig.from_dict({"layers": 3})
    with pytest.raises(ValueError, match="newer"):
        RefinerConfig.from_dict({"version": RefinerConfig.CONFIG_VERSION + 1})
    with pytest.raises(ValueError, match="preset"):
        RefinerConfig.preset("huge")


def test_bad_inputs():
    refiner = FlowRefiner(RefinerConfig.preset("tiny"))
    with pytest.raises(ValueError, match="rough_flow"):
        refiner(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="image"):
        refiner(torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="image"):
        refiner(torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 8, 8))


def test_docstring_examples():
    import doctest

    import imagedynamics.models.long_animation.refiner as module

    result = doctest.testmod(module)
    assert result.attempted and not result.failed
