"""Tests of ops/warp.py: backward warping, flow resizing, composition and inversion."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imagedynamics.ops.splat import softsplat
from imagedynamics.ops.warp import backward_warp, compose_flows, flow_grid, invert_flow, resize_flow

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def _affine_flow(h, w, a, t, dtype=torch.float64, device="cpu"):
    """flow(p) = A p + t for p = (x, y) pixel coordinates; A is 2 x 2 (nested lists), t = (tx, ty)."""
    y, x = torch.meshgrid(torch.arange(h, dtype=dtype, device=device), torch.arange(w, dtype=dtype, device=device),
                          indexing="ij")
    fx = a[0][0] * x + a[0][1] * y + t[0]
    fy = a[1][0] * x + a[1][1] * y + t[1]
    return torch.stack([fx, fy])[None]


class TestBackwardWarp:
    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
    def test_smoke_and_zero_flow_identity(self, device, dtype):
        img = torch.rand(2, 3, 6, 9, device=device).to(dtype)
        out = backward_warp(img, torch.zeros(2, 2, 6, 9, device=device, dtype=dtype))
        assert out.shape == img.shape and out.dtype == dtype
        torch.testing.assert_close(out, img, rtol=0, atol=1e-6 if dtype in (torch.float32, torch.float64) else 0)

    @pytest.mark.parametrize("align_corners", [True, False])
    def test_integer_shift_and_padding(self, device, align_corners):
        img = torch.rand(1, 2, 5, 7, device=device)
        flow = torch.zeros(1, 2, 5, 7, device=device)
        flow[:, 0] = 2.0
        flow[:, 1] = -1.0
        out = backward_warp(img, flow, padding_mode="zeros", align_corners=align_corners)
        torch.testing.assert_close(out[:, :, 1:, :5], img[:, :, :4, 2:], rtol=0, atol=1e-6)
        assert out[:, :, 0].abs().max() == 0 and out[:, :, :, 5:].abs().max() == 0
        border = backward_warp(img, flow, padding_mode="border", align_corners=align_corners)
        torch.testing.assert_close(border[:, :, 1:, 5:], img[:, :, :4, 6:7].expand(-1, -1, -1, 2), rtol=0, atol=1e-6)

    def test_fractional_sampling_of_a_linear_ramp(self, device):
        h, w = 6, 8
        ramp = (torch.arange(w, dtype=torch.float64, device=device) * 0.5 +
                torch.arange(h, dtype=torch.float64, device=device).view(h, 1) * 2.0).expand(1, 1, h, w)
        flow = torch.empty(1, 2, h, w, dtype=torch.float64, device=device)
        flow[:, 0], flow[:, 1] = 0.3, 0.6
        out = backward_warp(ramp, flow)
        torch.testing.assert_close(out[..., :-1, :-1], ramp[..., :-1, :-1] + 0.3 * 0.5 + 0.6 * 2.0)

    def test_exceptions(self):
        with pytest.raises(ValueError, match="image must be"):
            backward_warp(torch.rand(3, 4, 4), torch.zeros(1, 2, 4, 4))
        with pytest.raises(ValueError, match="flow must be"):
            backward_warp(torch.rand(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
        with pytest.raises(ValueError, match="does not match"):
            backward_warp(torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))
        with pytest.raises(ValueError, match="mode must be"):
            backward_warp(torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), mode="area")
        with pytest.raises(ValueError, match="padding_mode must be"):
            backward_warp(torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), padding_mode="wrap")

    def test_gradcheck(self):
        img = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
        flow = (torch.rand(1, 2, 4, 5, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
        assert torch.autograd.gradcheck(lambda i, f: backward_warp(i, f, padding_mode="zeros"), (img, flow))

    def test_is_the_adjoint_of_sum_splatting(self):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(2, 3, 7, 9, generator=g, dtype=torch.float64)
        y = torch.rand(2, 3, 7, 9, generator=g, dtype=torch.float64)
        flow = torch.randn(2, 2, 7, 9, generator=g, dtype=torch.float64) * 2
        lhs = (softsplat(x, flow, mode="sum") * y).sum()
        rhs = (x * backward_warp(y, flow, padding_mode="zeros")).sum()
        assert abs(lhs.item() - rhs.item()) < 1e-10

    def test_flow_grid_conventions(self):
        flow = torch.zeros(1, 2, 3, 5)
        assert flow_grid(flow, align_corners=True)[0, 0, :, 0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
        torch.testing.assert_close(flow_grid(flow, align_corners=False)[0, 0, :, 0],
                                   torch.tensor([-0.8, -0.4, 0.0, 0.4, 0.8]))
        assert flow_grid(flow)[0, :, 0, 1].tolist() == [-1.0, 0.0, 1.0]


class TestResizeFlow:
    def test_vectors_scale_per_axis(self, device):
        f = torch.zeros(2, 2, 8, 12, device=device)
        f[:, 0], f[:, 1] = 3.0, -2.0
        out = resize_flow(f, (4, 24))
        assert out.shape == (2, 2, 4, 24)
        torch.testing.assert_close(out[:, 0], torch.full((2, 4, 24), 6.0, device=device))
        torch.testing.assert_close(out[:, 1], torch.full((2, 4, 24), -1.0, device=device))

    def test_same_size_is_identity_and_int_size(self):
        f = torch.randn(1, 2, 5, 5)
        assert torch.equal(resize_flow(f, (5, 5)), f)
        assert resize_flow(f, 10).shape == (1, 2, 10, 10)

    def test_affine_motion_is_preserved_in_physical_units(self):
        # a zoom about the centre: flow(p) = s (p - c). Upsampled 2x, it must be the same zoom at the new size.
        h, w, s = 16, 16, 0.1
        f = _affine_flow(h, w, [[s, 0], [0, s]], (-s * (w - 1) / 2, -s * (h - 1) / 2))
        up = resize_flow(f, (2 * h, 2 * w))
        expected = _affine_flow(2 * h, 2 * w, [[s, 0], [0, s]], (-s * (2 * w - 1) / 2, -s * (2 * h - 1) / 2))
        torch.testing.assert_close(up[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], rtol=0, atol=1e-9)

    def test_half_precision_and_exceptions(self):
        f = torch.ones(1, 2, 4, 4, dtype=torch.float16)
        assert resize_flow(f, (8, 2)).dtype == torch.float16
        with pytest.raises(ValueError, match="size"):
            resize_flow(f, (0, 4))
        with pytest.raises(ValueError, match="flow must be"):
            resize_flow(torch.ones(1, 3, 4, 4), (4, 4))
        with pytest.raises(ValueError, match="mode"):
            resize_flow(f, (4, 4), mode="lanczos")


class TestComposeFlows:
    def test_constant_flows_add_and_zero_is_neutral(self, device):
        a = torch.zeros(1, 2, 6, 6, device=device)
        a[:, 0], a[:, 1] = 1.0, -0.5
        b = torch.zeros_like(a)
        b[:, 0], b[:, 1] = 0.25, 2.0
        torch.testing.assert_close(compose_flows(a, b), a + b)
        rnd = torch.randn(1, 2, 6, 6, device=device)
        torch.testing.assert_close(compose_flows(rnd, torch.zeros_like(rnd)), rnd)
        torch.testing.assert_close(compose_flows(torch.zeros_like(rnd), rnd), rnd, rtol=0, atol=1e-5)

    def test_affine_composition(self):
        # f_a(p) = A p + t (a small rotation/zoom), f_b(q) = B q + u, on an image large enough that p + f_a(p)
        # stays inside for the interior. Then f_ab(p) = f_a(p) + B (p + f_a(p)) + u exactly (bilinear is exact).
        h, w = 24, 24
        a_mat, t = [[0.05, -0.03], [0.02, 0.04]], (0.7, -0.4)
        b_mat, u = [[-0.06, 0.05], [0.07, -0.05]], (0.3, 0.9)
        fa = _affine_flow(h, w, a_mat, t)
        fb = _affine_flow(h, w, b_mat, u)
        y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                              indexing="ij")
        qx, qy = x + fa[0, 0], y + fa[0, 1]
        expected = fa.clone()
        expected[0, 0] += b_mat[0][0] * qx + b_mat[0][1] * qy + u[0]
        expected[0, 1] += b_mat[1][0] * qx + b_mat[1][1] * qy + u[1]
        out = compose_flows(fa, fb)
        inside = (qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)
        assert inside.float().mean() > 0.8
        assert ((out - expected).abs() * inside).max() < 1e-9
        assert ((fa + fb - expected).abs() * inside).max() > 0.1  # the naive sum is measurably wrong here

    def test_exceptions(self):
        with pytest.raises(ValueError, match="same shape"):
            compose_flows(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))
        with pytest.raises(ValueError, match="flow_b must be"):
            compose_flows(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))


class TestInvertFlow:
    def test_constant_flow_inverts_to_its_negative(self, device):
        f = torch.zeros(1, 2, 8, 8, device=device)
        f[:, 0], f[:, 1] = 2.0, -1.0
        inv, cov = invert_flow(f, return_coverage=True)
        torch.testing.assert_close(inv, -f)  # holes (left column, bottom row) filled from neighbours
        assert cov[0, 0, :, :2].sum() == 0 and cov[0, 0, 7].sum() == 0
        unfilled = invert_flow(f, fill=False)
        assert unfilled[0, :, 7].abs().sum() == 0

    def test_composition_with_inverse_is_near_zero(self):
        h, w = 32, 32
        f = _affine_flow(h, w, [[0.0, -0.05], [0.05, 0.0]], (0.8, 0.3))  # small rotation + shift
        inv = invert_flow(f)
        round_trip = compose_flows(f, inv)
        assert round_trip[..., 4:-4, 4:-4].abs().max() < 0.05

    def test_metric_selects_the_front_source(self):
        # two sources land on pixel 2; the one with the larger metric defines the inverse there
        f = torch.zeros(1, 2, 1, 5)
        f[0, 0, 0, 0], f[0, 0, 0, 4] = 2.0, -2.0
        metric = torch.zeros(1, 1, 1, 5)
        metric[0, 0, 0, 4] = 50.0
        inv = invert_flow(f, metric=metric)
        assert inv[0, 0, 0, 2].item() == pytest.approx(2.0, abs=1e-6)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(2, 12), w=st.integers(2, 12), h2=st.integers(1, 24), w2=st.integers(1, 24),
       fx=st.floats(-5, 5), fy=st.floats(-5, 5))
def test_property_resize_scales_constant_flow_exactly(h, w, h2, w2, fx, fy):
    f = torch.empty(1, 2, h, w, dtype=torch.float64)
    f[:, 0], f[:, 1] = fx, fy
    out = resize_flow(f, (h2, w2))
    torch.testing.assert_close(out[:, 0], torch.full((1, h2, w2), fx * w2 / w, dtype=torch.float64))
    torch.testing.assert_close(out[:, 1], torch.full((1, h2, w2), fy * h2 / h, dtype=torch.float64))


def test_docstring_examples():
    import doctest

    from imagedynamics.ops import warp as module

    failures, tried = doctest.testmod(module, extraglobs={"torch": torch})
    assert tried > 0 and failures == 0
