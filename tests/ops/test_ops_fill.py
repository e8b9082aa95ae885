"""Tests of ops/fill.py: multi-scale push-pull hole filling."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imagedynamics.ops.fill import fill_holes
from imagedynamics.ops.splat import softsplat

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def _random_case(b, c, h, w, hole_fraction, seed, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(b, c, h, w, generator=g).to(device, dtype)
    cov = torch.rand(b, 1, h, w, generator=g) * 2
    cov[torch.rand(b, 1, h, w, generator=g) < hole_fraction] = 0.0
    return img, cov.to(device, dtype)


class TestFillHoles:
    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
    def test_known_pixels_unchanged_and_no_hole_left(self, device, dtype):
        img, cov = _random_case(2, 3, 17, 23, 0.4, seed=0, dtype=dtype, device=device)
        img = torch.where(cov < 1e-3, float("nan"), img)  # what is in a hole must not matter
        out = fill_holes(img, cov)
        assert out.shape == img.shape and out.dtype == dtype
        known = (cov >= 1e-3).expand_as(img)
        assert torch.equal(out[known], img[known])
        assert torch.isfinite(out).all()

    def test_fill_stays_within_the_known_range(self):
        img, cov = _random_case(1, 2, 32, 32, 0.7, seed=1)
        out = fill_holes(img, cov)
        for ch in range(2):
            values = img[0, ch][cov[0, 0] >= 1e-3]
            assert out[0, ch].min() >= values.min() - 1e-6 and out[0, ch].max() <= values.max() + 1e-6

    def test_constant_image_is_filled_with_the_constant(self, device):
        img = torch.full((1, 3, 20, 30), 0.25, device=device)
        cov = torch.ones(1, 1, 20, 30, device=device)
        cov[..., 3:15, 5:25] = 0  # a big hole
        img[..., 3:15, 5:25] = 0
        torch.testing.assert_close(fill_holes(img, cov), torch.full_like(img, 0.25), rtol=0, atol=1e-6)

    def test_one_dimensional_hole_is_interpolated(self):
        img = torch.tensor([[[[1.0, 0.0, 0.0, 3.0]]]])
        cov = torch.tensor([[[[1.0, 0.0, 0.0, 1.0]]]])
        assert fill_holes(img, cov)[0, 0, 0].tolist() == [1.0, 1.5, 2.5, 3.0]
        # an odd-sized hole sits between its neighbours too (push-pull is not centred on odd grids)
        out = fill_holes(torch.tensor([[[[1.0, 0.0, 3.0]]]]), torch.tensor([[[[1.0, 0.0, 1.0]]]]))
        assert 1.0 < out[0, 0, 0, 1].item() < 3.0

    def test_fill_follows_a_smooth_ramp(self):
        h, w = 32, 32
        ramp = (torch.arange(w).float() / w).expand(1, 1, h, w).contiguous()
        cov = torch.ones(1, 1, h, w)
        cov[..., 12:20, 12:20] = 0
        out = fill_holes(ramp * cov, cov)
        hole = out[..., 12:20, 12:20]
        assert (hole - ramp[..., 12:20, 12:20]).abs().max() < 0.1
        assert (hole[..., 1:] >= hole[..., :-1] - 1e-6).all()  # increasing left to right, like the ramp

    def test_weak_coverage_counts_less(self):
        # a hole between a solid pixel (value 0) and a barely covered one (value 1): closer to the solid value
        img = torch.tensor([[[[0.0, 0.0, 1.0]]]])
        strong_left = fill_holes(img, torch.tensor([[[[1.0, 0.0, 0.01]]]]))[0, 0, 0, 1].item()
        balanced = fill_holes(img, torch.tensor([[[[1.0, 0.0, 1.0]]]]))[0, 0, 0, 1].item()
        assert strong_left < balanced

    def test_no_coverage_gives_zeros_and_full_coverage_is_identity(self, device):
        img = torch.rand(2, 3, 8, 8, device=device)
        assert torch.equal(fill_holes(img, torch.zeros(2, 1, 8, 8, device=device)), torch.zeros_like(img))
        cov = torch.zeros(2, 1, 8, 8, device=device)
        cov[1] = 1.0  # image 0 empty, image 1 full
        out = fill_holes(img, cov)
        assert torch.equal(out[0], torch.zeros_like(img[0])) and torch.equal(out[1], img[1])
        assert torch.equal(fill_holes(img, torch.ones(2, 1, 8, 8, device=device)), img)

    def test_threshold_and_exceptions(self):
        img = torch.rand(1, 1, 4, 4)
        cov = torch.full((1, 1, 4, 4), 0.05)
        cov[..., 0, 0] = 1.0
        assert torch.equal(fill_holes(img, cov, threshold=0.01), img)
        assert not torch.equal(fill_holes(img, cov, threshold=0.1), img)
        with pytest.raises(ValueError, match="coverage must be"):
            fill_holes(img, torch.ones(1, 2, 4, 4))
        with pytest.raises(ValueError, match="image must be"):
            fill_holes(torch.rand(4, 4), torch.ones(1, 1, 4, 4))
        with pytest.raises(ValueError, match="threshold"):
            fill_holes(img, cov, threshold=0.0)

    def test_fills_splat_disocclusions(self):
        # a picture moved right leaves its left columns empty; the fill continues the picture (constant along x)
        img = (torch.arange(16.0).view(1, 1, 16, 1) / 16 + torch.tensor([0.0, 0.1, 0.2]).view(1, 3, 1, 1))
        img = img.expand(1, 3, 16, 16).contiguous()
        flow = torch.zeros(1, 2, 16, 16)
        flow[:, 0] = 3.0
        out, cov = softsplat(img, flow, mode="avg", return_weight=True)
        filled = fill_holes(out, cov)
        assert (cov[..., :3] == 0).all() and torch.equal(filled[..., 3:], out[..., 3:])
        torch.testing.assert_close(filled[..., :3], img[..., :3], rtol=0, atol=0.1)
        assert (filled[..., :3] - img[..., :3]).abs().mean() < 0.03


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 20), w=st.integers(1, 20), fraction=st.floats(0.0, 0.95), seed=st.integers(0, 999))
def test_property_convex_fill_and_exact_known_pixels(h, w, fraction, seed):
    img, cov = _random_case(1, 2, h, w, fraction, seed, dtype=torch.float64)
    out = fill_holes(img, cov)
    known = cov >= 1e-3
    assert torch.equal(out[known.expand_as(img)], img[known.expand_as(img)])
    if known.any():
        for ch in range(2):
            values = img[0, ch][known[0, 0]]
            assert out[0, ch].min() >= values.min() - 1e-12 and out[0, ch].max() <= values.max() + 1e-12
    else:
        assert torch.equal(out, torch.zeros_like(img))


def test_docstring_examples():
    import doctest

    from imagedynamics.ops import fill as module

    failures, tried = doctest.testmod(module, extraglobs={"torch": torch})
    assert tried > 0 and failures == 0
