"""ops/motion_strength.py: M_s of Eq. 8 (exact cases, invariances, the mask) and scaling a field to a target M_s."""
from __future__ import annotations

import math

import pytest
import torch

from imagedynamics.ops.motion_strength import motion_strength, scale_to_strength


def test_smoke_and_shape():
    value = motion_strength(torch.randn(24, 2, 16, 20))
    assert value.shape == () and value.dtype == torch.float32


def test_exact_cases():
    flows = torch.zeros(3, 2, 4, 5)
    assert float(motion_strength(flows)) == 0.0
    flows[:, 0], flows[:, 1] = 3.0, -4.0  # a 5 px/frame translation
    assert float(motion_strength(flows)) == 5.0
    # half the pixels still: the mean over all pixels halves
    flows[:, :, :2] = 0.0
    assert float(motion_strength(flows)) == 2.5
    # the mean over frame pairs: pairs moving 1, 2 and 6 px/frame -> 3
    steps = torch.zeros(3, 2, 2, 2)
    steps[0, 0], steps[1, 1], steps[2, 0] = 1.0, -2.0, 6.0
    assert float(motion_strength(steps)) == 3.0
    # one static field [2, H, W] is one pair
    assert float(motion_strength(steps[2])) == 6.0


def test_against_a_direct_loop():
    torch.manual_seed(0)
    flows = torch.randn(5, 2, 6, 7)
    total, count = 0.0, 0
    for k in range(5):
        for y in range(6):
            for x in range(7):
                total += math.hypot(float(flows[k, 0, y, x]), float(flows[k, 1, y, x]))
                count += 1
    assert float(motion_strength(flows)) == pytest.approx(total / count, rel=1e-6)


def test_invariances():
    torch.manual_seed(1)
    flows = torch.randn(4, 2, 8, 8)
    m = float(motion_strength(flows))
    assert float(motion_strength(-flows)) == pytest.approx(m)  # direction does not matter
    assert float(motion_strength(flows.flip(-1))) == pytest.approx(m)
    assert float(motion_strength(torch.cat([flows, flows]))) == pytest.approx(m)  # a mean, not a sum
    assert float(motion_strength(2.5 * flows)) == pytest.approx(2.5 * m)  # linear


def test_mask():
    flows = torch.zeros(2, 2, 4, 4)
    flows[:, 0, :, :2] = 4.0  # the left half moves
    mask = torch.zeros(4, 4)
    mask[:, :2] = 1.0
    assert float(motion_strength(flows, mask)) == 4.0
    assert float(motion_strength(flows, 1 - mask)) == 0.0
    assert float(motion_strength(flows, torch.zeros(4, 4))) == 0.0  # an empty mask: 0, not NaN


def test_scale_to_strength():
    torch.manual_seed(2)
    flows = torch.randn(6, 2, 10, 12)
    for target in (0.0, 0.5, 3.0, 170.0):
        scaled = scale_to_strength(flows, target)
        assert float(motion_strength(scaled)) == pytest.approx(target, rel=1e-5, abs=1e-7)
        if target:  # one factor: the directions are kept
            assert torch.allclose(scaled / float(scaled.abs().max()), flows / float(flows.abs().max()), atol=1e-6)
    assert torch.equal(scale_to_strength(torch.zeros(1, 2, 3, 3), 0.0), torch.zeros(1, 2, 3, 3))


def test_exceptions():
    with pytest.raises(ValueError, match=r"\[\.\.\., 2, H, W\]"):
        motion_strength(torch.zeros(4, 3, 8, 8))
    with pytest.raises(ValueError, match="empty"):
        motion_strength(torch.zeros(0, 2, 8, 8))
    with pytest.raises(TypeError):
        motion_strength([[0.0]])
    with pytest.raises(ValueError, match="still field"):
        scale_to_strength(torch.zeros(2, 2, 4, 4), 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        scale_to_strength(torch.ones(2, 2, 4, 4), -1.0)
    with pytest.raises(ValueError, match=">= 0"):
        scale_to_strength(torch.ones(2, 2, 4, 4), float("nan"))


def test_docstring_examples():
    import doctest

    import imagedynamics.ops.motion_strength as module

    result = doctest.testmod(module)
    assert result.attempted and not result.failed
