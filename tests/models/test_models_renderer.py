"""The learned image-based renderer (models/renderer): shapes, pixel-renderer equivalence, gating, checkpoints."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from media import picture

from imagedynamics.models import renderer
from imagedynamics.models.checkpoint import CheckpointError, save_checkpoint
from imagedynamics.models.registry import build_from_file
from imagedynamics.models.renderer import (
    ImageRenderer,
    ImageRendererConfig,
    brightness_constancy_metric,
    level_sizes,
    render_frames_learned,
)
from imagedynamics.ops.render import motion_magnitude_metric, render_frames

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


def _swirl(t: int, h: int, w: int, amplitude: float = 6.0) -> torch.Tensor:
    """[T, 2, H, W]: a hard-edged disk circling over a still background: leaves holes and collisions."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    blob = ((xs ** 2 + ys ** 2) < 0.25).float()
    frames = []
    for i in range(t):
        a = 2 * math.pi * (i + 1) / t
        frames.append(torch.stack([blob * amplitude * math.cos(a), blob * amplitude * math.sin(a)]))
    return torch.stack(frames)


def _randomise_output(model: ImageRenderer, seed: int = 0) -> ImageRenderer:
    """Give the zero-initialised last layer random weights (a stand-in for a trained decoder)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.out.weight.copy_(torch.randn(model.out.weight.shape, generator=g) * 0.05)
        model.out.bias.copy_(torch.randn(model.out.bias.shape, generator=g) * 0.01)
    return model


def _tiny(**changes) -> ImageRenderer:
    torch.manual_seed(0)
    config = ImageRendererConfig.preset("tiny")
    for k, v in changes.items():
        setattr(config, k, v)
    return ImageRenderer(config).eval()


# ------------------------------------------------------------------------------------------------ config / shapes


def test_config_round_trip_and_validation():
    config = ImageRendererConfig(channels=(4, 8), decoder_channels=(6, 10), blocks=3, guided_fill=False)
    again = ImageRendererConfig.from_dict({**config.to_dict(), "training": {"steps": 5}})
    assert again == config and again.levels == 2
    with pytest.raises(ValueError, match="channels"):
        ImageRendererConfig(channels=())
    with pytest.raises(ValueError, match="decoder_channels"):
        ImageRendererConfig(channels=(4, 8), decoder_channels=(4,))
    with pytest.raises(ValueError, match="newer"):
        ImageRendererConfig.from_dict({"version": 99})
    with pytest.raises(ValueError, match="preset"):
        ImageRendererConfig.preset("huge")


def test_version_1_configs_keep_the_fill_they_were_trained_with():
    old = {k: v for k, v in ImageRendererConfig().to_dict().items() if k != "extend_border"}
    assert ImageRendererConfig.from_dict({**old, "version": 1}).extend_border is False
    assert ImageRendererConfig.from_dict(ImageRendererConfig().to_dict()).extend_border is True


@pytest.mark.parametrize("size", [(24, 40), (23, 37), (9, 5)])
def test_shapes(size):
    h, w = size
    model = _tiny()
    image = torch.rand(2, 3, h, w)
    pyramid = model.encode(image)
    expected = level_sizes(h, w, 3)
    assert [tuple(p.shape[-2:]) for p in pyramid] == expected
    assert pyramid[0].shape[1] == 3 + model.config.channels[0]  # RGB kept as level-0 channels
    assert torch.equal(pyramid[0][:, :3], image)
    out = model(image, torch.randn(2, 2, h, w) * 2, torch.rand(2, 1, h, w), torch.rand(2, 1, h, w))
    assert out.shape == (2, 3, h, w) and torch.isfinite(out).all()
    # one picture broadcast to several frames
    frames, holes = model.render(image[:1], model.encode(image[:1]), torch.randn(4, 2, h, w), None, None,
                                 return_holes=True)
    assert frames.shape == (4, 3, h, w) and holes.shape == (4,)


def test_exceptions():
    model = _tiny()
    image = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="image"):
        model(torch.rand(1, 4, 16, 16), torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="displacement"):
        model(image, torch.zeros(1, 2, 16, 15))
    with pytest.raises(ValueError, match="metric"):
        model(image, torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="intention"):
        model(image, torch.zeros(1, 2, 16, 16), None, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="batch"):
        model(torch.rand(2, 3, 16, 16), torch.zeros(3, 2, 16, 16))
    with pytest.raises(ValueError, match="chunk_size"):
        render_frames_learned(model, image, torch.zeros(2, 2, 16, 16), chunk_size=0)
    with pytest.raises(ValueError, match="image"):
        render_frames_learned(model, torch.rand(2, 3, 16, 16), torch.zeros(2, 2, 16, 16))


# ------------------------------------------------------------------------------------------------ behaviour


@pytest.mark.parametrize("use_metric", [True, False])
def test_untrained_renderer_reproduces_pixel_renderer(use_metric):
    image = picture("astronaut", 64)
    disp = _swirl(3, 64, 64, amplitude=8.0)
    metric = motion_magnitude_metric(disp) if use_metric else None
    expected, holes = render_frames(image, disp, metric)
    assert float(holes.max()) > 0.005  # the swirl leaves holes, so the fill is exercised
    model = _tiny()
    with torch.no_grad():
        out = model(image.expand(3, -1, -1, -1), disp, None if metric is None else metric.expand(3, -1, -1, -1))
    assert torch.allclose(out, expected, atol=1e-5)
    frames, learned_holes = render_frames_learned(model, image, disp, metric, chunk_size=2, return_holes=True)
    assert torch.allclose(frames, expected.clamp(0, 1), atol=1e-5)
    assert torch.allclose(learned_holes, holes)


def test_randomised_decoder_changes_output():
    image = picture("astronaut", 32)
    disp = _swirl(1, 32, 32)
    model = _tiny()
    with torch.no_grad():
        base = model(image, disp)
        changed = _randomise_output(model)(image, disp)
    assert (changed - base).abs().max() > 1e-3


def test_intention_gating():
    h = w = 96
    image = picture("astronaut", h)
    disp = _swirl(1, h, w, amplitude=4.0)
    metric = motion_magnitude_metric(disp)
    gate = torch.ones(1, 1, h, w)
    gate[..., :16, :16] = 0.0
    for model in (_tiny(), _randomise_output(_tiny())):
        with torch.no_grad():
            free = model(image, disp, metric)
            ones = model(image, disp, metric, torch.ones(1, 1, h, w))
            gated = model(image, disp, metric, gate)
        assert torch.equal(ones, free)  # intention 1 everywhere = no intention map
        assert (gated - free)[..., :16, :16].abs().amax() > 1e-3  # changed where the map says "synthesise"
        assert torch.equal(gated[..., 64:, 64:], free[..., 64:, 64:])  # unchanged far from it (local network)
    # untrained: only the gated pixels change (they are filled like holes), everything else is the pixel frame
    model = _tiny()
    with torch.no_grad():
        diff = (model(image, disp, metric, gate) - model(image, disp, metric)).abs().amax(dim=1)[0]
    outside = torch.ones(h, w, dtype=torch.bool)
    outside[:16, :16] = False
    assert float(diff[outside].max()) == 0.0


def test_chunked_equals_unchunked():
    image = picture("astronaut", 40)
    disp = _swirl(5, 40, 40)
    metric = motion_magnitude_metric(disp)
    intention = torch.rand(5, 1, 40, 40)
    model = _randomise_output(_tiny(), seed=3)
    calls = []
    one = render_frames_learned(model, image, disp, metric, intention, chunk_size=1, progress=lambda d, t: calls.append((d, t)))
    out = torch.full((5, 3, 40, 40), -1.0)
    two = render_frames_learned(model, image, disp, metric, intention, chunk_size=3, out=out)
    assert two is out
    assert calls == [(i, 5) for i in range(0, 6)]
    assert torch.allclose(one, two, atol=1e-6)
    with torch.no_grad():
        direct = model(image.expand(5, -1, -1, -1), disp, metric.expand(5, -1, -1, -1), intention).clamp(0, 1)
    assert torch.allclose(one, direct, atol=1e-6)


def test_gradients_reach_every_parameter():
    model = _randomise_output(_tiny())
    model.train()
    image = torch.rand(2, 3, 20, 20)
    out = model(image, torch.randn(2, 2, 20, 20), torch.rand(2, 1, 20, 20))
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert model.encoder[0][0][0].weight.grad.abs().sum() > 0  # through the splatting of the features


# ------------------------------------------------------------------------------------------------ metric


def test_brightness_constancy_metric_exact_and_errors():
    a = torch.rand(1, 3, 12, 12)
    flow = torch.zeros(1, 2, 12, 12)
    flow[:, 1] = 3.0
    b = torch.roll(a, 3, dims=-2)
    z = brightness_constancy_metric(a, b, flow, scale=10.0)
    assert z.shape == (1, 1, 12, 12) and float(z[..., :9, :].abs().max()) < 1e-4
    wrong = brightness_constancy_metric(a, b, torch.zeros_like(flow), scale=10.0)
    expected = (b - a).abs().mean(1, keepdim=True) * -10.0
    assert torch.allclose(wrong, expected, atol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        brightness_constancy_metric(a, b[..., :6], flow)
    with pytest.raises(ValueError, match="flow"):
        brightness_constancy_metric(a, b, flow[:, :1])


def test_brightness_metric_beats_motion_metric_under_a_pan():
    # The background pans 4 px right; a tracked object stays put. GID's motion magnitude puts the panning
    # background in front of the object; brightness constancy knows the object is what is visible.
    torch.manual_seed(0)
    h, w, shift = 48, 64, 4
    background = F.interpolate(torch.rand(1, 3, h // 4, w // 4), size=(h, w), mode="bilinear")
    obj = torch.zeros(1, 1, h, w)
    obj[..., 16:32, 24:40] = 1.0
    colour = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)
    frame0 = background * (1 - obj) + colour * obj
    frame1 = torch.roll(background, shift, dims=-1) * (1 - obj) + colour * obj
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0] = shift * (1 - obj[:, 0])
    model = _tiny()
    region = (..., slice(16, 32), slice(24, 40))
    with torch.no_grad():
        by_motion = model(frame0, flow, motion_magnitude_metric(flow))
        by_brightness = model(frame0, flow, brightness_constancy_metric(frame0, frame1, flow))
    err_motion = (by_motion - frame1)[region].abs().mean()
    err_brightness = (by_brightness - frame1)[region].abs().mean()
    assert err_brightness < 0.01 < err_motion


# ------------------------------------------------------------------------------------------------ checkpoints


def test_checkpoint_round_trip_through_registry(tmp_path):
    model = _randomise_output(_tiny(), seed=1)
    path = tmp_path / "r.safetensors"
    renderer.save(path, model, training={"steps": 3})
    family, config, loaded = build_from_file(path, expected_family="renderer")
    assert family == "renderer" and isinstance(loaded, ImageRenderer)
    assert config["training"] == {"steps": 3} and loaded.config == model.config
    image, disp = torch.rand(1, 3, 20, 24), torch.randn(1, 2, 20, 24)
    with torch.no_grad():
        assert torch.equal(loaded(image, disp), model(image, disp))
    assert torch.equal(renderer.load(path).out.weight, model.out.weight)


def test_checkpoint_errors(tmp_path):
    model = _tiny()
    wrong = tmp_path / "gid.safetensors"
    save_checkpoint(wrong, model.state_dict(), "gid", model.config.to_dict())
    with pytest.raises(CheckpointError, match="expected renderer"):
        build_from_file(wrong, expected_family="renderer")
    with pytest.raises(CheckpointError, match="'gid' checkpoint"):
        renderer.load(wrong)
    good = tmp_path / "r.safetensors"
    renderer.save(good, model)
    truncated = tmp_path / "truncated.safetensors"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        build_from_file(truncated)
    mismatched = tmp_path / "mismatched.safetensors"
    save_checkpoint(mismatched, model.state_dict(), "renderer", ImageRendererConfig.preset("small").to_dict())
    with pytest.raises(CheckpointError, match="does not match"):
        build_from_file(mismatched)
    bad_config = tmp_path / "bad.safetensors"
    save_checkpoint(bad_config, model.state_dict(), "renderer", {"channels": []})
    with pytest.raises(CheckpointError, match="invalid"):
        renderer.load(bad_config)
