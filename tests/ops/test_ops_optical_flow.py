"""DIS optical flow on real pictures and clips, reference-anchored motion, and motion transfer."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from media import clip, picture

from imagedynamics.ops.containers import LatentTrajectory, LoopBlend, Motion, SpectralVolume
from imagedynamics.ops.optical_flow import dis_flow, reference_anchored_motion, transfer_motion
from imagedynamics.ops.spectral import to_spectral_volume

MARGIN = 32


def _backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample image [C, H, W] at p + flow(p) (written here independently of the module's helper)."""
    _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    grid = torch.stack([(xs + flow[0]) / (w - 1) * 2 - 1, (ys + flow[1]) / (h - 1) * 2 - 1], dim=-1)
    return F.grid_sample(image[None], grid[None], mode="bilinear", align_corners=True)[0]


@pytest.mark.parametrize("name,shift", [("chelsea", (-3, 5)), ("coffee", (4, -7)), ("chelsea", (0, 11))])
def test_dis_recovers_integer_translation(name, shift):
    image = picture(name, long_side=256)[0]
    moved = torch.roll(image, shifts=shift, dims=(1, 2))  # content at p is at p + (dx, dy) = (shift[1], shift[0])
    flow = dis_flow(image, moved)
    assert flow.shape == (2, *image.shape[-2:]) and flow.dtype == torch.float32
    truth = torch.tensor([shift[1], shift[0]], dtype=torch.float32)[:, None, None]
    error = (flow - truth)[:, MARGIN:-MARGIN, MARGIN:-MARGIN].norm(dim=0)
    assert error.max() < 0.5
    # the convention: backward-warping b by the flow a -> b gives back a
    warped = _backward_warp(moved, flow)[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
    assert (warped - image[:, MARGIN:-MARGIN, MARGIN:-MARGIN]).abs().mean() < 0.01


@pytest.mark.parametrize("size", [(1, 1), (6, 10), (11, 11), (7, 30), (14, 60), (24, 400)])
def test_frames_smaller_than_dis_accepts_are_measured_enlarged(size):
    """DIS refuses frames under 8 px on the shorter side or 12 on the longer and crashes the process on long thin
    ones (14 x 60, 24 x 400): frames with a shorter side under 32 px are measured enlarged."""
    h, w = size
    still = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    assert dis_flow(still, still).shape == (2, h, w) and dis_flow(still, still).abs().max() < 0.25
    motion = reference_anchored_motion(torch.stack([still, still, still]), preset="ultrafast")
    assert motion.displacement.shape == (3, 2, h, w)
    if h >= 6:  # a smooth picture moved 2 px right in a small frame: the flow says so, in the frame's pixels
        ramp = picture("chelsea", long_side=64)[0, :, 20:20 + h, 20:20 + w + 2]
        flow = dis_flow(ramp[:, :, 2:], ramp[:, :, :-2])
        assert abs(float(flow[0, 2:-2, 3:-3].median()) - 2.0) < 0.75, flow[0]


def _translating_clip(frames: int = 6, step: int = 2) -> torch.Tensor:
    image = picture("chelsea", long_side=192)[0]
    return torch.stack([torch.roll(image, shifts=(0, step * t), dims=(1, 2)) for t in range(frames)])


@pytest.mark.parametrize("chained", [False, True])
def test_reference_anchored_motion_of_a_translating_clip(chained):
    frames = _translating_clip()
    seen = []
    motion = reference_anchored_motion(frames, fps=12.0, chained=chained, progress=lambda d, n: seen.append((d, n)))
    assert isinstance(motion, Motion) and motion.fps == 12.0
    assert motion.displacement.shape == (6, 2, *frames.shape[-2:])
    assert motion.displacement[0].abs().max() == 0
    for t in range(1, 6):
        interior = motion.displacement[t, :, MARGIN:-MARGIN, MARGIN:-MARGIN]
        assert (interior[0] - 2 * t).abs().median() < 0.1 and interior[1].abs().median() < 0.1
    assert seen[-1] == (6, 6)


def test_reference_anchored_motion_explains_a_real_clip():
    frames = clip("carphone_pristine", max_frames=8, long_side=128)
    motion = reference_anchored_motion(frames, preset="medium")
    d = motion.displacement
    assert d.shape == (8, 2, *frames.shape[-2:]) and torch.isfinite(d).all() and d[0].abs().max() == 0
    # backward-warping frame t by the motion 0 -> t reconstructs frame 0 better than frame t itself does
    last = frames[-1]
    warped = _backward_warp(last, d[-1])
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert (warped - frames[0])[inner].abs().mean() < 0.75 * (last - frames[0])[inner].abs().mean()


def test_transfer_motion_rescales_per_axis_masks_and_scales():
    displacement = torch.zeros(3, 2, 10, 20)
    displacement[:, 0] = 2.0
    displacement[:, 1] = -1.0
    motion = Motion(displacement, fps=10.0, loops=True, intention=torch.ones(3, 1, 10, 20),
                    metric=torch.ones(1, 1, 10, 20))
    out = transfer_motion(motion, (30, 10))
    assert out.displacement.shape == (3, 2, 30, 10) and out.fps == 10.0 and out.loops
    assert torch.allclose(out.displacement[:, 0], torch.full((3, 30, 10), 1.0))  # x * 10 / 20
    assert torch.allclose(out.displacement[:, 1], torch.full((3, 30, 10), -3.0))  # y * 30 / 10
    assert out.intention.shape == (3, 1, 30, 10) and out.metric is None
    mask = torch.zeros(30, 10)
    mask[:15] = 1.0
    masked = transfer_motion(motion, (30, 10), mask=mask, scale=2.0)
    assert masked.displacement[:, :, 15:].abs().max() == 0
    assert torch.allclose(masked.displacement[:, 0, :15], torch.full((3, 15, 10), 2.0))


def test_transfer_moves_the_loop_blend_and_the_brush_with_the_motion():
    forward, backward = torch.ones(3, 2, 8, 16), torch.full((3, 2, 8, 16), -2.0)
    brush = torch.zeros(1, 1, 8, 16)
    brush[..., :, 8:] = 1
    motion = Motion(forward, blend=LoopBlend(backward, torch.tensor([0.0, 1 / 3, 2 / 3])), brush=brush)
    out = transfer_motion(motion, (16, 32), scale=0.5)
    assert out.blend.displacement.shape == (3, 2, 16, 32)
    assert torch.allclose(out.blend.displacement, torch.full_like(out.blend.displacement, -2.0))  # x2 size, x0.5
    assert torch.equal(out.blend.weight, motion.blend.weight)
    assert out.brush.shape == (1, 1, 16, 32) and float(out.brush[..., :16].max()) == 0
    assert float(out.brush[..., 16:].min()) == 1


def test_motion_checks_its_typed_fields():
    with pytest.raises(ValueError, match="blend.displacement"):
        Motion(torch.zeros(3, 2, 8, 8), blend=LoopBlend(torch.zeros(3, 2, 4, 4), torch.zeros(3)))
    with pytest.raises(ValueError, match="weight"):
        LoopBlend(torch.zeros(3, 2, 4, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="brush"):
        Motion(torch.zeros(3, 2, 8, 8), brush=torch.ones(8, 8))
    displacement = torch.randn(3, 2, 8, 8)
    latent = LatentTrajectory(torch.zeros(3, 4, 2, 2), torch.zeros(3, 2, 4, 4),
                              LatentTrajectory.fingerprint_of(displacement))
    assert latent.describes(displacement) and not latent.describes(displacement * 1.1)
    assert not latent.describes(displacement[:2])  # another number of frames


def test_transfer_commutes_with_the_spectrum():
    g = torch.Generator().manual_seed(0)
    motion = Motion(torch.randn(12, 2, 16, 24, generator=g))
    mask = torch.rand(20, 30, generator=g)
    via_motion = to_spectral_volume(transfer_motion(motion, (20, 30), mask=mask, scale=1.5), 7)
    via_spectrum = transfer_motion(to_spectral_volume(motion, 7), (20, 30), mask=mask, scale=1.5)
    assert isinstance(via_spectrum, SpectralVolume) and via_spectrum.size == (20, 30)
    assert torch.allclose(via_motion.coeffs, via_spectrum.coeffs, atol=1e-4)


def test_errors():
    frame = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="preset"):
        dis_flow(frame, frame, preset="slow")
    with pytest.raises(ValueError, match="same size"):
        dis_flow(frame, torch.rand(3, 16, 20))
    with pytest.raises(ValueError, match="frame_a"):
        dis_flow(torch.rand(16, 16), frame)
    with pytest.raises(ValueError, match="frames"):
        reference_anchored_motion(torch.rand(4, 2, 16, 16))
    with pytest.raises(ValueError, match="target_size"):
        transfer_motion(Motion(torch.zeros(2, 2, 4, 4)), (0, 4))
    with pytest.raises(TypeError):
        transfer_motion(torch.zeros(2, 2, 4, 4), (4, 4))
