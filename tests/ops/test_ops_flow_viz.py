"""Previews: Middlebury colour wheel, arrows, tracks, mask overlay."""
from __future__ import annotations

import pytest
import torch

from imagedynamics.ops.flow_viz import color_wheel, draw_arrows, draw_tracks, flow_to_color, overlay_mask
from imagedynamics.ops.trajectories import Arrows, Tracks


def test_color_wheel_segments():
    wheel = color_wheel()
    assert wheel.shape == (55, 3)
    # segment starts (15, 6, 4, 11, 13, 6 steps): red, yellow, green, cyan, blue, magenta
    for index, rgb in ((0, (1, 0, 0)), (15, (1, 1, 0)), (21, (0, 1, 0)), (25, (0, 1, 1)), (36, (0, 0, 1)),
                       (49, (1, 0, 1))):
        assert wheel[index].tolist() == list(map(float, rgb)), index
    # the ramp inside red -> yellow is floor(255 * i / 15) / 255
    assert wheel[7, 1].item() == pytest.approx((255 * 7 // 15) / 255)


def one(u: float, v: float, max_magnitude=None) -> list[float]:
    f = torch.tensor([u, v], dtype=torch.float32)[:, None, None]
    return flow_to_color(f, max_magnitude).flatten().tolist()


def test_flow_to_color_directions_and_saturation():
    assert one(0.0, 0.0) == [1.0, 1.0, 1.0]  # no motion: white
    r, g, b = one(1.0, 0.0)  # right: red
    assert r == 1.0 and g < 0.05 and b < 0.2
    r, g, b = one(-1.0, 0.0)  # left: cyan-blue
    assert r < 0.05 and g > 0.5 and b == 1.0
    r, g, b = one(0.0, 1.0)  # down (y grows downwards): orange-yellow
    assert r == 1.0 and g > 0.5 and b < 0.05
    r, g, b = one(0.0, -1.0)  # up: blue-violet
    assert b == 1.0 and r < 0.5 and g < 0.05
    # half the maximum length: half-way between white and the wheel colour
    assert one(1.0, 0.0, max_magnitude=2.0) == pytest.approx([1.0, 0.5, 0.5], abs=1e-6)
    # longer than the maximum: the wheel colour at 75 %
    assert one(3.0, 0.0, max_magnitude=1.0) == pytest.approx([0.75, 0.0, 0.0], abs=1e-6)


def test_flow_to_color_normalises_by_the_largest_vector_and_batches():
    flow = torch.zeros(3, 2, 5, 6)
    flow[0, 0, 2, 3] = 4.0
    flow[1, 0, 1, 1] = 2.0
    colors = flow_to_color(flow)
    assert colors.shape == (3, 3, 5, 6)
    assert colors[0, :, 2, 3].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)
    assert colors[1, :, 1, 1].tolist() == pytest.approx([1.0, 0.5, 0.5], abs=1e-6)  # shared scale
    assert torch.equal(colors[2], torch.ones(3, 5, 6))
    with pytest.raises(ValueError, match=r"flow must be"):
        flow_to_color(torch.zeros(3, 4, 4))


def test_draw_arrows():
    image = torch.zeros(3, 40, 60)
    arrows = Arrows(torch.tensor([[10.0, 20.0]]), torch.tensor([[50.0, 20.0]]))
    out = draw_arrows(image, arrows, color=(0.0, 1.0, 0.0), thickness=1)
    assert torch.equal(image, torch.zeros(3, 40, 60))  # input untouched
    assert out[1, 20, 15:45].min() > 0.9 and out[0].max() == 0 and out[2].max() == 0
    assert out[:, :10].max() == 0 and out[:, 30:].max() == 0  # nothing far from the arrow
    assert out[1, 16:25, 46:50].sum() > out[1, 16:25, 12:16].sum()  # the head is at the end
    sped = draw_arrows(image, Arrows(arrows.start, arrows.end, torch.tensor([0.5])), use_speed=True)
    assert sped[0, 20, 15:28].min() > 0.5 and sped[0, 20, 36:].max() == 0


def test_draw_tracks():
    image = torch.full((3, 40, 60), 0.5)
    pts = torch.tensor([[[5.0, 5.0]], [[30.0, 5.0]], [[30.0, 35.0]]])
    out = draw_tracks(image, Tracks(pts), colors=[(1.0, 0.0, 0.0)], thickness=1)
    assert out[0, 5, 10:26].min() > 0.9 and out[1, 5, 10:26].max() < 0.1  # first segment, red
    assert out[0, 10:30, 30].min() > 0.9  # second segment
    assert out[0, 30, 8] == 0.5  # untouched elsewhere
    hidden = torch.tensor([[True], [False], [True]])
    gaps = draw_tracks(image, Tracks(pts, hidden), colors=[(1.0, 0.0, 0.0)], thickness=1)
    assert gaps[0, 5, 12:26].max() == 0.5 and gaps[0, 12:30, 30].max() == 0.5  # segments touching a hidden point


def test_overlay_mask():
    image = torch.rand(3, 8, 9)
    mask = torch.zeros(8, 9)
    mask[2:5, 3:7] = 1.0
    out = overlay_mask(image, mask, color=(0.0, 0.0, 1.0), alpha=0.4)
    expected = image.clone()
    expected[:, 2:5, 3:7] = image[:, 2:5, 3:7] * 0.6 + torch.tensor([0.0, 0.0, 0.4])[:, None, None]
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(out[:, mask == 0], image[:, mask == 0])
    with pytest.raises(ValueError, match="mask must be"):
        overlay_mask(image, torch.zeros(4, 4))
