"""Motion-I2V trajectory control: a tiny stage-1 model trained for seconds follows a drawn trajectory.

A tiny stage-1 U-Net and ControlNet (``tiny_config``) are trained on synthetic translations: the ground truth
is a uniform translation of the whole picture to the right or to the left (2 frames, 4 px per frame), and the
only thing that says which is the sparse control of one drawn trajectory (``tracks_to_sparse_flow`` ->
``make_control``). Training backpropagates through the library's own DDIM loop (3 steps, checked to match
:func:`sample_stage1` exactly), so that a few dozen updates suffice.

The flow VAE is replaced by an exact linear codec with the same interface (8x8 average pooling and a 2 -> 4
channel map, decoded by its pseudo-inverse): a tiny ``AutoencoderKL`` does not learn to reconstruct uniform
fields in seconds (its GroupNorms remove spatially constant signals), and the VAE is not what is tested here;
its architecture and checkpoints are covered by ``test_models_motion_i2v.py``.
"""
from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

from imagedynamics.models.motion_i2v.config import tiny_config
from imagedynamics.models.motion_i2v.constants import LATENT_SCALE, make_scheduler, normalise_flow
from imagedynamics.models.motion_i2v.controlnet import MotionI2VControlNet
from imagedynamics.models.motion_i2v.flow_vae import encode_normalised
from imagedynamics.models.motion_i2v.sampler import make_control, sample_stage1
from imagedynamics.models.motion_i2v.unet3d import MotionI2VUNet3D
from imagedynamics.ops.sparse_to_dense import tracks_to_sparse_flow
from imagedynamics.ops.trajectories import Tracks

SIZE, FRAMES, SPEED, RADIUS, STEPS, STRIDES = 32, 2, 4.0, 8, 3, (8.0, 16.0)
RIGHT, LEFT = torch.tensor([SPEED, 0.0]), torch.tensor([-SPEED, 0.0])


class LinearFlowCodec(torch.nn.Module):
    """Exact linear stand-in for the flow VAE (``encode(x).latent_dist.{mean,sample}``, ``decode(z).sample``)."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]) * gain
        self.a = torch.nn.Parameter(a, requires_grad=False)
        self.register_buffer("pinv", torch.linalg.pinv(a))
        self.config = types.SimpleNamespace(block_out_channels=[1, 1, 1, 1], in_channels=2, latent_channels=4)

    def encode(self, x: torch.Tensor):
        z = torch.einsum("ck,bkhw->bchw", self.a, F.avg_pool2d(x - 0.5, 8))
        return types.SimpleNamespace(latent_dist=types.SimpleNamespace(mean=z, sample=lambda generator=None: z))

    def decode(self, z: torch.Tensor):
        flow = F.interpolate(torch.einsum("kc,bchw->bkhw", self.pinv, z), scale_factor=8) + 0.5
        return types.SimpleNamespace(sample=flow)


def translation(v: torch.Tensor) -> torch.Tensor:
    """``[FRAMES, 2, H, W]``: frame i moves every pixel by ``i * v``."""
    steps = torch.arange(1, FRAMES + 1, dtype=torch.float32).view(FRAMES, 1, 1, 1)
    return v.view(1, 2, 1, 1) * steps * torch.ones(1, 1, SIZE, SIZE)


def drawn_control(codec, v: torch.Tensor, start: tuple[float, float], static=None) -> torch.Tensor:
    """A trajectory drawn from ``start`` moving ``v`` per frame, rasterised and encoded like the node does."""
    points = torch.tensor([start], dtype=torch.float32) + torch.arange(FRAMES + 1.0).view(-1, 1) * v.view(1, 2)
    flows, mask = tracks_to_sparse_flow(Tracks(points[:, None]), SIZE, SIZE, FRAMES + 1, radius=RADIUS)
    return make_control(codec, flows[1:], mask[1:], static_mask=static, sample=False)


class Setup:
    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.codec = LinearFlowCodec(12.0 / LATENT_SCALE)
        self.unet = MotionI2VUNet3D(tiny_config("stage1"))
        self.controlnet = MotionI2VControlNet(tiny_config("controlnet"))
        self.image = torch.randn(1, 4, SIZE // 8, SIZE // 8)
        self.text = torch.randn(1, 3, 16)

    def sample(self, control=None, seed: int = 0, static=None) -> torch.Tensor:
        return sample_stage1(self.unet, self.codec, self.image, self.text, None, strides=STRIDES, num_steps=STEPS,
                             controlnet=None if control is None else self.controlnet, control=control,
                             static_mask=static, generator=torch.Generator().manual_seed(seed))

    def ddim(self, noise: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
        """The DDIM loop of ``sample_stage1`` (no guidance), differentiable, for a batch of videos."""
        batch = noise.shape[0]
        scheduler = make_scheduler()
        scheduler.set_timesteps(STEPS)
        image = self.image[:, :, None].expand(batch, -1, FRAMES, -1, -1)
        text = self.text.expand(batch, -1, -1)
        latents = noise
        for t in scheduler.timesteps:
            x = torch.cat([image, latents], dim=1)
            residuals = self.controlnet(x, t, text, STRIDES, control)
            eps = self.unet(x, t, text, strides=STRIDES, control=residuals)
            latents = scheduler.step(eps, t, latents).prev_sample
        return latents

    def train(self, iterations: int = 40, batch: int = 4, lr: float = 4e-3) -> list[float]:
        directions = torch.stack([RIGHT, LEFT])
        with torch.no_grad():
            targets = encode_normalised(self.codec, normalise_flow(torch.cat([translation(v) for v in directions])),
                                        sample=False)
            targets = targets.reshape(2, FRAMES, 4, SIZE // 8, SIZE // 8).permute(0, 2, 1, 3, 4)
        g = torch.Generator().manual_seed(1)
        params = [*self.unet.parameters(), *self.controlnet.parameters()]
        optimiser = torch.optim.Adam(params, lr=lr)
        losses = []
        for _ in range(iterations):
            which = torch.randint(0, 2, (batch,), generator=g)
            starts = torch.randint(RADIUS, SIZE - RADIUS, (batch, 2), generator=g).float()
            with torch.no_grad():
                control = torch.stack([drawn_control(self.codec, directions[k], tuple(s.tolist())).permute(1, 0, 2, 3)
                                       for k, s in zip(which, starts)])
            latents = self.ddim(torch.randn(batch, 4, FRAMES, SIZE // 8, SIZE // 8, generator=g), control)
            loss = (latents - targets[which]).pow(2).mean()
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            losses.append(float(loss.detach()))
        self.unet.eval()
        self.controlnet.eval()
        return losses


@pytest.fixture(scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and fair to a shared CPU
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(single_thread):
    setup = Setup()
    setup.losses = setup.train()
    return setup


def test_untrained_controlnet_changes_nothing(single_thread):
    """ControlNet residuals start from zero convolutions: any later effect of the trajectory was learnt."""
    setup = Setup()
    with torch.no_grad():
        control = drawn_control(setup.codec, RIGHT, (16.0, 16.0))
        assert torch.equal(setup.sample(control), setup.sample(None))


def test_training_loop_is_the_library_sampler(single_thread):
    """The differentiable loop used for training gives exactly what sample_stage1 returns."""
    setup = Setup(seed=3)
    with torch.no_grad():
        for p in setup.controlnet.parameters():  # make the ControlNet act, so both paths are compared
            p.add_(torch.randn_like(p) * 0.05)
        control = drawn_control(setup.codec, LEFT, (10.0, 20.0))
        noise = torch.randn(1, 4, FRAMES, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(5))
        ours = setup.ddim(noise, control.permute(1, 0, 2, 3)[None])
        theirs = sample_stage1(setup.unet, setup.codec, setup.image, setup.text, None, strides=STRIDES,
                               num_steps=STEPS, controlnet=setup.controlnet, control=control, latents=noise)
    decoded = (torch.einsum("kc,nchw->nkhw", setup.codec.pinv, ours[0].permute(1, 0, 2, 3) / LATENT_SCALE))
    expected = F.interpolate(decoded, scale_factor=8) * 2 * torch.tensor([SIZE, SIZE]).view(1, 2, 1, 1)
    torch.testing.assert_close(theirs, expected.clamp(-SIZE, SIZE), rtol=1e-5, atol=1e-4)


def test_training_reduces_the_loss(trained):
    assert sum(trained.losses[-5:]) / 5 < 0.25 * sum(trained.losses[:5]) / 5, trained.losses


@pytest.mark.parametrize("seed", [0, 1])
def test_predicted_flow_follows_the_drawn_trajectory(trained, seed):
    """Opposite trajectories give opposite mean flows, each pointing along its trajectory."""
    with torch.no_grad():
        right = trained.sample(drawn_control(trained.codec, RIGHT, (16.0, 16.0)), seed).mean(dim=(0, 2, 3))
        left = trained.sample(drawn_control(trained.codec, LEFT, (16.0, 16.0)), seed).mean(dim=(0, 2, 3))
    unit = torch.tensor([1.0, 0.0])
    assert float(right @ unit) > 1.0, right     # ground truth: 6 px mean over the two frames
    assert float(left @ -unit) > 1.0, left
    assert float((right - left) @ unit) > 4.0, (right, left)


def test_static_brush_region_gets_exactly_zero_flow(trained):
    """The brush (1 = still) both enters the control and zeroes the decoded flow exactly."""
    static = torch.zeros(SIZE, SIZE)
    static[:, : SIZE // 2] = 1.0                                # the left half must not move
    with torch.no_grad():
        control = drawn_control(trained.codec, RIGHT, (24.0, 16.0), static=static)
        flows = trained.sample(control, seed=0, static=static)
    assert flows.shape == (FRAMES, 2, SIZE, SIZE)
    assert torch.count_nonzero(flows[:, :, static > 0]) == 0
    moving = flows[:, :, static == 0]
    assert moving.abs().amax() > 0.5
    assert float(moving[:, 0].mean()) > 0.5, moving[:, 0].mean()  # still to the right where it may move
