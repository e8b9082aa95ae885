"""GID's ResNet-34 feature extractor for the learned renderer and the perceptual loss with a user-supplied network."""
from __future__ import annotations

import pytest
import torch
import torchvision
from media import picture

from imagedynamics.models.renderer import ImageRenderer, ImageRendererConfig, level_sizes
from imagedynamics.models.renderer.backbones import PerceptualLoss, ResNetPyramid, load_state_file
from imagedynamics.ops.render import render_frames

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet34(weights=None).eval()


def test_pyramid_is_torchvision_resnet34_at_every_level(resnet):
    net = ResNetPyramid(levels=6, level0_channels=8)
    net.load_resnet_weights(resnet.state_dict())
    net.eval()
    image = torch.rand(2, 3, 45, 61)
    features = net(image)
    assert [tuple(f.shape[-2:]) for f in features] == level_sizes(45, 61, 6)
    assert [f.shape[1] for f in features] == [8, 64, 64, 128, 256, 512]
    with torch.no_grad():
        x = torchvision.transforms.functional.normalize(image, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        x = resnet.relu(resnet.bn1(resnet.conv1(x)))
        assert torch.allclose(features[1], x, atol=1e-5)
        x = resnet.layer2(resnet.layer1(resnet.maxpool(x)))
        assert torch.allclose(features[3], x, atol=1e-5)
        assert torch.allclose(features[5], resnet.layer4(resnet.layer3(x)), atol=1e-4)


def test_resnet_renderer_untrained_is_the_pixel_renderer_and_batch_independent():
    model = ImageRenderer(ImageRendererConfig.preset("resnet34"))
    assert model.config.levels == 5 and sum(p.numel() for p in model.parameters()) > 8_000_000
    image = picture("astronaut", long_side=64)
    torch.manual_seed(1)
    disp = torch.randn(3, 2, 64, 64).cumsum(-1).clamp(-6, 6)
    with torch.no_grad():
        model.train()  # frozen batch-norm statistics: batches do not interact even in training mode
        frames = model(image.expand(3, -1, -1, -1), disp)
        single = model(image, disp[1:2])
    pixel, _ = render_frames(image, disp)
    assert torch.allclose(frames, pixel, atol=1e-5)
    assert torch.allclose(frames[1:2], single, atol=1e-6)
    with pytest.raises(ValueError, match="resnet34 encoder"):
        ImageRendererConfig(channels=(16, 32, 64), encoder="resnet34")


def test_user_weights_load_from_disk(tmp_path, resnet):
    path = tmp_path / "my_resnet34.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in resnet.state_dict().items()}}, path)
    model = ImageRenderer(ImageRendererConfig.preset("resnet34"))
    model.load_encoder_weights(path)
    assert torch.equal(model.encoder.layer3[5].conv2.weight, resnet.layer3[5].conv2.weight)
    assert model.encoder.layer4 is None  # not reached by the 5-level pyramid: not built
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a torchvision ResNet-34"):
        model.load_encoder_weights(tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not exist"):
        load_state_file(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="only be loaded into the resnet34"):
        ImageRenderer(ImageRendererConfig.preset("tiny")).load_encoder_weights(path)


def test_perceptual_loss_with_a_torchvision_vgg():
    torch.manual_seed(0)
    from torchvision.models.vgg import cfgs, make_layers

    vgg = make_layers(cfgs["A"]).eval()  # torchvision's VGG-11 feature layers (the classifier is not needed)
    loss = PerceptualLoss({f"features.{k}": v for k, v in vgg.state_dict().items()}, depth=3)
    image = picture("astronaut", long_side=48)
    normalized = torchvision.transforms.functional.normalize(image, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with torch.no_grad():  # the rebuilt layers are torchvision's: the third block's last ReLU matches
        assert torch.allclose(loss.feature_maps(image)[2], vgg[:loss.taps[2] + 1](normalized), atol=1e-5)
    assert loss.taps == [1, 4, 9]
    assert float(loss(image, image)) == 0.0
    slight, strong = image + 0.02 * torch.randn_like(image), image.flip(-1)
    assert 0 < float(loss(slight, image)) < float(loss(strong, image))
    pred = image.clone().requires_grad_(True)
    loss(pred, image.flip(-2)).backward()
    assert pred.grad.abs().sum() > 0 and not any(p.requires_grad for p in loss.parameters())


def test_perceptual_loss_with_a_resnet34(resnet):
    loss = PerceptualLoss(resnet.state_dict())
    image = picture("astronaut", long_side=48)
    assert float(loss(image, image)) == 0.0 and float(loss(image.flip(-1), image)) > 0
    with pytest.raises(ValueError, match="VGG .* or ResNet-34"):
        PerceptualLoss({"conv.weight": torch.zeros(1, 1, 1, 1)})
