"""Loop measurements: sharpness inside a region, frame steps, the seam ratio, motion steps and amplitude."""
from __future__ import annotations

import pytest
import torch

from imagedynamics.ops import loop_metrics
from imagedynamics.ops.loop_metrics import (
    frame_steps,
    motion_amplitude,
    motion_seam_ratio,
    motion_steps,
    moving_region,
    region_sharpness,
    seam_ratio,
    sharpness_ratio,
)


def texture(h: int = 32, w: int = 48, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


def test_sharpness_drops_for_a_double_exposure_and_a_blur():
    import kornia

    frame = texture()
    ghost = 0.5 * (frame + frame.roll(3, dims=-1))  # the two-way cross-fade's half-way frame
    blurred = kornia.filters.box_blur(frame, (3, 3))
    s = region_sharpness(torch.cat([frame, ghost, blurred]))
    assert s.shape == (3,)
    assert s[1] < 0.8 * s[0] and s[2] < 0.8 * s[0]
    # a translated copy is just as sharp (interior crop: the roll's wrap seam is excluded)
    shifted = frame.roll(5, dims=-1)
    inner = torch.zeros(32, 48)
    inner[4:-4, 8:-8] = 1
    r = sharpness_ratio(torch.cat([frame, shifted]), inner)
    assert abs(float(r[1]) - 1.0) < 0.1 and float(r[0]) == 1.0


def test_sharpness_inside_a_mask_ignores_the_rest():
    frames = torch.zeros(2, 3, 16, 16)
    frames[:, :, :, 8:] = torch.rand(2, 3, 16, 8)  # texture on the right only
    left = torch.zeros(16, 16)
    left[:, :6] = 1
    right = 1 - left
    assert float(region_sharpness(frames, left).max()) == 0.0
    assert bool((region_sharpness(frames, right) > 0.05).all())
    # every mask layout gives the same answer
    for m in (right[None], right[None, None], right.bool()):
        assert torch.allclose(region_sharpness(frames, m), region_sharpness(frames, right))
    with pytest.raises(ValueError, match="no texture"):
        sharpness_ratio(frames, left)


def test_frame_steps_and_the_wrap():
    frames = torch.stack([torch.full((1, 4, 4), v) for v in (0.0, 0.1, 0.3, 0.4)])
    assert torch.allclose(frame_steps(frames), torch.tensor([0.1, 0.2, 0.1, 0.4]))
    assert torch.allclose(frame_steps(frames, wrap=False), torch.tensor([0.1, 0.2, 0.1]))
    mask = torch.zeros(4, 4)
    mask[0, 0] = 1
    moved = frames.clone()
    moved[:, :, 0, 0] += torch.tensor([0.0, 0.5, 0.0, 0.5]).view(4, 1)
    assert torch.allclose(frame_steps(moved, mask=mask), torch.tensor([0.6, 0.3, 0.6, 0.9]))


def test_seam_ratio_tells_a_seamless_loop_from_a_hold_and_a_pop():
    T = 12
    picture = texture(16, T)
    # a seamless loop: a texture scrolling around a cylinder, one column a frame; the wrap is one more step
    loop = torch.cat([picture.roll(t, dims=-1) for t in range(T)])
    assert seam_ratio(loop) == pytest.approx(1.0, abs=1e-5)
    # a hold: the last frame equals the first
    hold = torch.cat([loop[:T - 1], loop[:1]])
    assert seam_ratio(hold) < 0.05
    # a pop: an open ramp jumps back at the wrap
    ramp = torch.cat([picture * (0.2 + 0.05 * t) for t in range(T)])
    assert seam_ratio(ramp) > 5
    # constant clips
    still = picture.expand(T, -1, -1, -1)
    assert seam_ratio(still) == 1.0
    jump = still.clone()
    jump[-1] = 0
    assert seam_ratio(jump) == float("inf")
    with pytest.raises(ValueError, match="typical"):
        seam_ratio(loop, typical="max")
    with pytest.raises(ValueError, match="at least 3"):
        seam_ratio(loop[:2])


def test_motion_steps_seam_and_amplitude():
    T = 16
    t = torch.arange(T, dtype=torch.float32)
    d = torch.zeros(T, 2, 4, 4)
    d[:, 0] = (3.0 * torch.sin(2 * torch.pi * t / T)).view(T, 1, 1)
    steps = motion_steps(d)
    assert steps.shape == (T,) and torch.allclose(steps, (d[torch.arange(T) + 1 - T] - d)[:, 0, 0, 0].abs())
    assert motion_seam_ratio(d) == pytest.approx(float(steps[-1] / steps[:-1].median()), rel=1e-6)
    assert motion_seam_ratio(d, typical="mean") == pytest.approx(float(steps[-1] / steps[:-1].mean()), rel=1e-6)
    # a sine's seam at its zero crossing is its fastest step: about pi/2 of the mean step
    assert 1.4 < motion_seam_ratio(d, typical="mean") < 1.6
    # a circle: every step (the wrap included) is as long
    circle = d.clone()
    circle[:, 1] = (3.0 * torch.cos(2 * torch.pi * t / T)).view(T, 1, 1)
    assert motion_seam_ratio(circle) == pytest.approx(1.0, abs=1e-4)
    # a loop that reaches its start a frame early holds at the seam
    held = d.clone()
    held[-1] = d[0]
    assert motion_seam_ratio(held) < 0.05
    # amplitude: RMS of a sine of amplitude 3 about its mean is 3 / sqrt(2)
    assert motion_amplitude(d) == pytest.approx(3 / 2 ** 0.5, rel=1e-4)
    assert motion_amplitude(torch.zeros(T, 2, 4, 4)) == 0.0
    mask = torch.zeros(4, 4)
    mask[1, 1] = 1
    half = d.clone()
    half[:, :, 1, 1] *= 0.5
    assert motion_amplitude(half, mask) == pytest.approx(0.5 * motion_amplitude(d), rel=1e-4)
    assert moving_region(half, 2.0).sum() == 15  # the halved pixel moves 1.5 px at most


def test_errors():
    with pytest.raises(ValueError, match=r"frames must be \[T, C, H, W\]"):
        region_sharpness(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"displacement must be \[T, 2, H, W\]"):
        motion_steps(torch.zeros(4, 3, 8, 8))
    with pytest.raises(ValueError, match="mask must be"):
        frame_steps(torch.zeros(3, 1, 8, 8), mask=torch.ones(4, 4))
    with pytest.raises(ValueError, match="empty"):
        frame_steps(torch.zeros(3, 1, 8, 8), mask=torch.zeros(8, 8))


def test_docstring_examples():
    import doctest

    failures, tried = doctest.testmod(loop_metrics, extraglobs={"torch": torch})
    assert tried > 0 and failures == 0
