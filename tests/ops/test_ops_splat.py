"""Tests of ops/splat.py: bilinear forward splatting (sum, avg, linear, soft), kornia style."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from imagedynamics.ops import splat as splat_module
from imagedynamics.ops.splat import MODES, _softsplat, softsplat, softsplat_reference

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
METRIC_MODES = ("linear", "soft")
TOL = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 1e-5, torch.float64: 1e-10}


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def _inputs(b, c, h, w, mode, *, scale=3.0, seed=0, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    flow = torch.randn(b, 2, h, w, generator=g, dtype=torch.float64) * scale
    metric = None
    if mode == "soft":
        metric = torch.randn(b, 1, h, w, generator=g, dtype=torch.float64) * 2
    elif mode == "linear":
        metric = torch.rand(b, 1, h, w, generator=g, dtype=torch.float64) + 0.1
    cast = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    return cast(x), cast(flow), cast(metric)


def brute_force(x, flow, metric, mode):
    """Python-loop splatting in float64 from the definition; target positions p + flow(p) computed in the
    operator's working precision (float32 unless something is float64), exactly like the operator documents.

    soft: per target pixel q, out(q) = sum b e^(Z - M_q) x / sum b e^(Z - M_q), M_q = max Z over the sources with
    b > 0 at q (the exact softmax; invariant to M_q). Returns (out, coverage) as float64 CPU tensors.
    """
    b, c, h, w = x.shape
    work = torch.float64 if any(t is not None and t.dtype == torch.float64 for t in (x, flow, metric)) \
        else torch.float32
    gx = torch.arange(w, dtype=work).view(1, w)
    gy = torch.arange(h, dtype=work).view(h, 1)
    f = flow.detach().cpu().to(work)
    tx = (f[:, 0] + gx).double()
    ty = (f[:, 1] + gy).double()
    xs = x.detach().cpu().double()
    ms = None if metric is None else metric.detach().cpu().double()
    out = torch.zeros(b, c, h, w, dtype=torch.float64)
    cov = torch.zeros(b, 1, h, w, dtype=torch.float64)
    for bi in range(b):
        contributions = {}
        for y in range(h):
            for x_ in range(w):
                px, py = float(tx[bi, y, x_]), float(ty[bi, y, x_])
                if not (math.isfinite(px) and math.isfinite(py)):
                    continue
                z = 0.0 if ms is None else float(ms[bi, 0, y, x_])
                if mode in METRIC_MODES and metric is not None and not math.isfinite(z):
                    continue
                x0, y0 = math.floor(px), math.floor(py)
                for yi in (y0, y0 + 1):
                    for xi in (x0, x0 + 1):
                        if 0 <= xi < w and 0 <= yi < h:
                            wgt = (1 - abs(px - xi)) * (1 - abs(py - yi))
                            contributions.setdefault((yi, xi), []).append((wgt, z, xs[bi, :, y, x_]))
        for (yi, xi), items in contributions.items():
            cov[bi, 0, yi, xi] = sum(it[0] for it in items)
            if mode == "sum":
                out[bi, :, yi, xi] = sum(it[0] * it[2] for it in items)
                continue
            if mode == "soft" and metric is not None:
                top = max((it[1] for it in items if it[0] > 0), default=0.0)
                factors = [it[0] * math.exp(it[1] - top) for it in items]
            elif mode == "linear" and metric is not None:
                factors = [it[0] * it[1] for it in items]
            else:
                factors = [it[0] for it in items]
            den = sum(factors)
            if den > 0:
                out[bi, :, yi, xi] = sum(fa * it[2] for fa, it in zip(factors, items)) / den
    return out, cov


def _assert_exact(out, expected, mode):
    """Bit-exact for 'sum' and for half precision; normalised modes compute (x * a) / a, exact to an ulp."""
    if mode == "sum" or out.dtype in (torch.float16, torch.bfloat16):
        assert torch.equal(out, expected)
    else:
        torch.testing.assert_close(out, expected, rtol=2 * torch.finfo(out.dtype).eps, atol=0)


# ------------------------------------------------------------------------------------------------------------------
# Smoke
# ------------------------------------------------------------------------------------------------------------------

class TestSmoke:
    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
    @pytest.mark.parametrize("mode", MODES)
    def test_shapes_and_dtypes(self, device, dtype, mode):
        x, flow, metric = _inputs(2, 3, 5, 7, mode, dtype=dtype, device=device)
        out = softsplat(x, flow, metric, mode=mode)
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
        out2, cov = softsplat(x, flow, metric, mode=mode, return_weight=True)
        assert cov.shape == (2, 1, 5, 7) and cov.dtype == dtype
        assert torch.equal(out, out2)
        assert torch.isfinite(out).all() and torch.isfinite(cov).all()

    def test_metric_none_means_average(self, device):
        x, flow, _ = _inputs(1, 2, 6, 6, "avg", device=device)
        avg = softsplat(x, flow, mode="avg")
        assert torch.equal(softsplat(x, flow, None, mode="soft"), avg)
        assert torch.equal(softsplat(x, flow, None, mode="linear"), avg)

    def test_expanded_and_channels_last_inputs(self, device):
        x, flow, metric = _inputs(1, 3, 6, 8, "soft", device=device)
        flows = torch.cat([flow, flow.flip(-1)])
        expanded = softsplat(x.expand(2, -1, -1, -1), flows, metric.expand(2, -1, -1, -1))
        dense = softsplat(x.repeat(2, 1, 1, 1).contiguous(), flows, metric.repeat(2, 1, 1, 1))
        assert torch.equal(expanded, dense)
        cl = softsplat(x.contiguous(memory_format=torch.channels_last), flow, metric)
        assert torch.equal(cl, softsplat(x, flow, metric))

    def test_single_pixel_image(self, device):
        x = torch.full((1, 2, 1, 1), 3.0, device=device)
        out, cov = softsplat(x, torch.zeros(1, 2, 1, 1, device=device), mode="avg", return_weight=True)
        assert out.flatten().tolist() == [3.0, 3.0] and cov.item() == 1.0


# ------------------------------------------------------------------------------------------------------------------
# Exceptions
# ------------------------------------------------------------------------------------------------------------------

class TestExceptions:
    def test_wrong_ranks(self):
        with pytest.raises(ValueError, match="input must be"):
            softsplat(torch.rand(3, 4, 4), torch.zeros(1, 2, 4, 4))
        with pytest.raises(ValueError, match="flow must be"):
            softsplat(torch.rand(1, 3, 4, 4), torch.zeros(2, 4, 4))
        with pytest.raises(ValueError, match="flow must be"):
            softsplat(torch.rand(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))

    def test_mismatched_sizes(self):
        with pytest.raises(ValueError, match="does not match"):
            softsplat(torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))
        with pytest.raises(ValueError, match="does not match"):
            softsplat(torch.rand(2, 3, 4, 4), torch.zeros(1, 2, 4, 4))
        with pytest.raises(ValueError, match="metric must be"):
            softsplat(torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 5))
        with pytest.raises(ValueError, match="metric must be"):
            softsplat(torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))

    def test_bad_mode_and_types(self):
        with pytest.raises(ValueError, match="mode must be"):
            softsplat(torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), mode="max")
        with pytest.raises(ValueError, match="only used by"):
            softsplat(torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4), mode="avg")
        with pytest.raises(ValueError, match="floating-point"):
            softsplat(torch.ones(1, 3, 4, 4, dtype=torch.int64), torch.zeros(1, 2, 4, 4))
        with pytest.raises(TypeError):
            softsplat("image", torch.zeros(1, 2, 4, 4))

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
    @pytest.mark.parametrize("mode", MODES)
    def test_non_finite_flow_drops_the_source(self, device, mode, bad):
        x, flow, metric = _inputs(1, 2, 6, 7, mode, scale=1.0, device=device)
        broken = flow.clone()
        broken[0, 0, 2, 3] = bad
        broken[0, 1, 4, 1] = bad
        far = flow.clone()  # the same two sources sent far outside the image
        far[0, 0, 2, 3] = 1e6
        far[0, 1, 4, 1] = -1e6
        out, cov = softsplat(x, broken, metric, mode=mode, return_weight=True)
        expected, expected_cov = softsplat(x, far, metric, mode=mode, return_weight=True)
        assert torch.isfinite(out).all() and torch.isfinite(cov).all()
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
        torch.testing.assert_close(cov, expected_cov, rtol=0, atol=0)

    @pytest.mark.parametrize("mode", METRIC_MODES)
    def test_non_finite_metric_drops_the_source(self, mode):
        x = torch.tensor([[[[1.0, 5.0]]]])
        flow = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # both land on pixel 1
        metric = torch.tensor([[[[float("nan"), 1.0]]]])
        assert softsplat(x, flow, metric, mode=mode)[0, 0, 0].tolist() == [0.0, 5.0]


# ------------------------------------------------------------------------------------------------------------------
# Exact cases
# ------------------------------------------------------------------------------------------------------------------

class TestExact:
    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
    @pytest.mark.parametrize("mode", MODES)
    def test_zero_flow_is_identity(self, device, dtype, mode):
        x, flow, metric = _inputs(2, 3, 9, 11, mode, dtype=dtype, device=device)
        out, cov = softsplat(x, torch.zeros_like(flow), metric, mode=mode, return_weight=True)
        _assert_exact(out, x, mode)
        assert torch.equal(cov, torch.ones_like(cov))

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("shift", [(2, 0), (0, -1), (3, -2), (-1, 1)])
    def test_integer_shift_is_a_roll_with_empty_border(self, device, mode, shift):
        dx, dy = shift
        x, flow, metric = _inputs(1, 2, 7, 9, mode, device=device)
        flow = torch.empty_like(flow)
        flow[:, 0], flow[:, 1] = dx, dy
        out, cov = softsplat(x, flow, metric, mode=mode, return_weight=True)
        expected = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        valid = torch.zeros(1, 1, 7, 9, dtype=torch.bool, device=device)
        valid[..., max(dy, 0):7 + min(dy, 0), max(dx, 0):9 + min(dx, 0)] = True
        _assert_exact(out, torch.where(valid, expected, 0.0), mode)
        assert torch.equal(cov, valid.float())

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
    def test_half_pixel_shift_splits_equally(self, device, dtype):
        x = torch.zeros(1, 1, 4, 5, dtype=dtype, device=device)
        x[0, 0, 1, 1] = 8.0
        flow = torch.zeros(1, 2, 4, 5, dtype=dtype, device=device)
        flow[0, 0, 1, 1] = 0.5
        out, cov = softsplat(x, flow, mode="sum", return_weight=True)
        assert out[0, 0, 1, 1:3].tolist() == [4.0, 4.0] and out.sum().item() == 8.0
        assert cov[0, 0, 1, 1:3].tolist() == [0.5, 1.5]  # pixel (1, 2) keeps its own pixel too
        flow[0, 1, 1, 1] = 0.5  # now a quarter to each of the 2 x 2 block
        out = softsplat(x, flow, mode="sum")
        assert out[0, 0, 1:3, 1:3].flatten().tolist() == [2.0, 2.0, 2.0, 2.0] and out.sum().item() == 8.0

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_sum_conserves_mass_for_in_bounds_targets(self, device, dtype):
        g = torch.Generator().manual_seed(3)
        h, w = 16, 20
        x = torch.rand(2, 3, h, w, generator=g).to(device, dtype)
        flow = ((torch.rand(2, 2, h, w, generator=g) - 0.5) * 6).to(device, dtype)
        # keep every target inside [0, W-1] x [0, H-1]
        gx = torch.arange(w, device=device, dtype=dtype)
        gy = torch.arange(h, device=device, dtype=dtype).view(h, 1)
        flow[:, 0] = (flow[:, 0] + gx).clamp(0, w - 1) - gx
        flow[:, 1] = (flow[:, 1] + gy).clamp(0, h - 1) - gy
        out, cov = softsplat(x, flow, mode="sum", return_weight=True)
        torch.testing.assert_close(out.sum(dim=(2, 3)), x.sum(dim=(2, 3)), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(cov.sum(dim=(2, 3)), torch.full((2, 1), float(h * w), device=device, dtype=dtype),
                                   rtol=1e-6, atol=1e-4)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_soft_with_large_metric_gap_keeps_the_foreground(self, device, dtype):
        # background pixel 0 and foreground pixel 2 both land on pixel 1
        x = torch.tensor([[[[0.25, 0.0, 0.75, 0.0]]]], device=device, dtype=dtype)
        flow = torch.zeros(1, 2, 1, 4, device=device, dtype=dtype)
        flow[0, 0, 0] = torch.tensor([1.0, 0.0, -1.0, 0.0])
        metric = torch.tensor([[[[0.0, 0.0, 30.0, 0.0]]]], device=device, dtype=dtype)
        assert softsplat(x, flow, metric, mode="soft")[0, 0, 0, 1].item() == pytest.approx(0.75, abs=1e-9)
        assert softsplat(x, flow, mode="avg")[0, 0, 0, 1].item() == pytest.approx(1 / 3, abs=1e-7)  # with pixel 1
        swapped = softsplat(x, flow, metric.roll(-2, dims=3), mode="soft")[0, 0, 0, 1].item()
        assert swapped == pytest.approx(0.25, abs=1e-9)


# ------------------------------------------------------------------------------------------------------------------
# Agreement with the brute-force reference
# ------------------------------------------------------------------------------------------------------------------

class TestAgreement:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_matches_brute_force(self, device, mode, dtype, seed):
        x, flow, metric = _inputs(2, 3, 6, 8, mode, seed=seed, scale=2.5, dtype=dtype, device=device)
        flow[0, 0, 1, 2] = float("nan")
        flow[1, :, 3, 3] = 40.0  # far outside
        ref, ref_cov = brute_force(x, flow, metric, mode)
        tol = 1e-5 if dtype == torch.float32 else 1e-10
        paths = {
            "default": softsplat(x, flow, metric, mode=mode, return_weight=True),
            "autograd": _softsplat(x, flow, metric, mode, True, force_autograd=True),
            "reference": softsplat_reference(x, flow, metric, mode=mode, return_weight=True),
        }
        if mode == "soft":
            paths["per-target max"] = _softsplat(x, flow, metric, mode, True, force_per_target=True)
        mask = ref_cov >= 1e-2
        assert mask.float().mean() > 0.5
        for name, (out, cov) in paths.items():
            out, cov = out.cpu().double(), cov.cpu().double()
            torch.testing.assert_close(cov, ref_cov, rtol=0, atol=tol, msg=name)
            err = ((out - ref).abs() * mask).max().item()
            assert err <= tol, f"{name}: max error {err} on covered pixels"

    @pytest.mark.parametrize("per_target", [False, True])
    @pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
    @pytest.mark.parametrize("mode", MODES)
    def test_chunked_channels_equal_single_chunk(self, monkeypatch, mode, dtype, per_target):
        x, flow, metric = _inputs(2, 7, 9, 10, mode, seed=4, dtype=dtype)
        for return_weight in (False, True):
            whole = _softsplat(x, flow, metric, mode, return_weight, force_per_target=per_target)
            with monkeypatch.context() as patch:
                patch.setattr(splat_module, "_CHUNK_ELEMENTS", 2 * 12 * 13 * 2)  # 2 channels per chunk
                chunked = _softsplat(x, flow, metric, mode, return_weight, force_per_target=per_target)
            if return_weight:
                assert torch.equal(whole[1], chunked[1])
                whole, chunked = whole[0], chunked[0]
            torch.testing.assert_close(whole, chunked, rtol=2 * torch.finfo(dtype).eps, atol=0)

    def test_metric_of_plus_minus_1e4_gives_no_nan(self):
        g = torch.Generator().manual_seed(5)
        x = torch.rand(2, 3, 12, 12, generator=g)
        flow = torch.randn(2, 2, 12, 12, generator=g) * 3
        metric = (torch.rand(2, 1, 12, 12, generator=g) * 2 - 1) * 1e4
        metric[0, 0, :2] = 1e4
        metric[1, 0, :2] = -1e4
        out, cov = softsplat(x, flow, metric, return_weight=True)
        assert torch.isfinite(out).all()
        covered = cov >= 1e-2
        assert (out.abs().sum(1, keepdim=True)[covered] > 0).all()  # no covered pixel emptied by underflow
        ref, _ = brute_force(x, flow, metric, "soft")
        assert ((out.double() - ref).abs() * covered).max() <= 1e-5

    def test_soft_is_invariant_to_metric_offset_and_selects_global_or_per_target(self):
        x, flow, metric = _inputs(1, 3, 10, 10, "soft", seed=6, dtype=torch.float64)
        base = softsplat(x, flow, metric)
        torch.testing.assert_close(softsplat(x, flow, metric + 500.0), base, rtol=0, atol=1e-12)
        x, flow, metric = x.float(), flow.float(), metric.float()
        base = softsplat(x, flow, metric)
        torch.testing.assert_close(_softsplat(x, flow, metric, "soft", False, force_per_target=True), base,
                                   rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------------------------
# Gradients
# ------------------------------------------------------------------------------------------------------------------

class TestGradients:
    @pytest.mark.parametrize("mode", MODES)
    def test_gradcheck(self, mode):
        g = torch.Generator().manual_seed(7)
        b, c, h, w = 1, 2, 4, 5
        x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64, requires_grad=True)
        # keep fractional parts away from 0 and 1 (the bilinear weights have kinks at integer positions)
        flow = (torch.randint(-2, 2, (b, 2, h, w), generator=g) + 0.2 + 0.6 * torch.rand(b, 2, h, w, generator=g))
        flow = flow.double().requires_grad_()
        inputs = [x, flow]
        if mode in METRIC_MODES:
            metric = (torch.rand(b, 1, h, w, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
            inputs.append(metric)

        def fn(*args):
            m = args[2] if len(args) > 2 else None
            out, cov = softsplat(args[0], args[1], m, mode=mode, return_weight=True)
            return out, cov

        assert torch.autograd.gradcheck(fn, inputs)

    def test_gradcheck_per_target_soft(self):
        g = torch.Generator().manual_seed(8)
        x = torch.rand(1, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
        flow = (torch.randint(-1, 2, (1, 2, 4, 4), generator=g) + 0.3).double().requires_grad_()
        metric = (torch.rand(1, 1, 4, 4, generator=g, dtype=torch.float64) * 200).requires_grad_()
        fn = lambda a, f, m: _softsplat(a, f, m, "soft", False, force_per_target=True)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, flow, metric))

    def test_gradients_match_the_autograd_reference(self):
        x, flow, metric = _inputs(2, 3, 7, 8, "soft", seed=9)
        grads = []
        for fn in (softsplat, softsplat_reference):
            leaves = [t.clone().requires_grad_() for t in (x, flow, metric)]
            out, cov = fn(*leaves, mode="soft", return_weight=True)
            (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().add(cov.square().sum()).backward()
            grads.append([t.grad for t in leaves])
        for mine, ref in zip(*grads):
            torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-5)

    def test_gradgradcheck(self):
        g = torch.Generator().manual_seed(11)
        x = torch.rand(1, 2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
        flow = torch.randint(-1, 2, (1, 2, 3, 4), generator=g) + 0.3 + 0.4 * torch.rand(1, 2, 3, 4, generator=g)
        flow = flow.double().requires_grad_()
        metric = torch.rand(1, 1, 3, 4, dtype=torch.float64, generator=g).requires_grad_()
        assert torch.autograd.gradgradcheck(lambda a, f, m: softsplat(a, f, m, mode="soft"), (x, flow, metric))

    def test_half_precision_backward(self):
        x, flow, metric = _inputs(1, 2, 5, 6, "soft", dtype=torch.bfloat16)
        x.requires_grad_()
        softsplat(x, flow, metric).sum().backward()
        assert x.grad is not None and x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad).all()


# ------------------------------------------------------------------------------------------------------------------
# Low precision
# ------------------------------------------------------------------------------------------------------------------

class TestLowPrecision:
    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    @pytest.mark.parametrize("mode", MODES)
    def test_matches_float32_within_dtype_tolerance(self, device, dtype, mode):
        x, flow, metric = _inputs(2, 3, 16, 16, mode, seed=10, device=device)
        low = [None if t is None else t.to(dtype) for t in (x, flow, metric)]
        out, cov = softsplat(*low, mode=mode, return_weight=True)
        ref, ref_cov = softsplat(*[None if t is None else t.float() for t in low], mode=mode, return_weight=True)
        eps = torch.finfo(dtype).eps
        scale = ref.abs().max().clamp(min=1)
        assert (out.float() - ref).abs().max() <= eps * scale  # only the output rounding differs
        assert (cov.float() - ref_cov).abs().max() <= eps * ref_cov.abs().max().clamp(min=1)
        # and against float32 inputs: the inputs' rounding moves targets by at most a dtype ulp of the position
        full = softsplat(x, flow, metric, mode=mode)
        covered = ref_cov >= 0.5
        assert ((out.float() - full).abs() * covered).max() <= 40 * eps * scale


# ------------------------------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7))


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(2, 7), st.integers(2, 7)),
       seed=st.integers(0, 2**16), scale=st.floats(0.0, 5.0))
def test_property_sum_splat_is_the_adjoint_of_bilinear_sampling(shape, seed, scale):
    """<splat(x), y> = <x, sample(y)> with sample = grid_sample(zeros padding, align_corners=True)."""
    b, c, h, w = shape
    x, flow, _ = _inputs(b, c, h, w, "sum", seed=seed, scale=scale, dtype=torch.float64)
    y = torch.rand(b, c, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    gx = torch.arange(w, dtype=torch.float64)
    gy = torch.arange(h, dtype=torch.float64).view(h, 1)
    grid = torch.stack([(flow[:, 0] + gx) * (2 / (w - 1)) - 1, (flow[:, 1] + gy) * (2 / (h - 1)) - 1], -1)
    sampled = F.grid_sample(y, grid, padding_mode="zeros", align_corners=True)
    lhs = (softsplat(x, flow, mode="sum") * y).sum().item()
    rhs = (x * sampled).sum().item()
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(rhs))


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), scale=st.floats(0.0, 5.0), offset=st.floats(-50, 50))
def test_property_mode_relations(shape, seed, scale, offset):
    b, c, h, w = shape
    x, flow, metric = _inputs(b, c, h, w, "soft", seed=seed, scale=scale, dtype=torch.float64)
    avg, cov = softsplat(x, flow, mode="avg", return_weight=True)
    # coverage is the summation splat of ones; avg = sum / coverage where covered
    ones = softsplat(torch.ones(b, 1, h, w, dtype=torch.float64), flow, mode="sum")
    torch.testing.assert_close(cov, ones, rtol=0, atol=1e-12)
    summed = softsplat(x, flow, mode="sum")
    torch.testing.assert_close(avg, torch.where(cov > 0, summed / cov.clamp(min=1e-300), 0.0), rtol=1e-9, atol=1e-9)
    # soft with a constant metric and linear with a constant positive metric are avg; soft ignores offsets
    torch.testing.assert_close(softsplat(x, flow, torch.full_like(metric, offset), mode="soft"), avg,
                               rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(softsplat(x, flow, torch.full_like(metric, 2.5), mode="linear"), avg,
                               rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(softsplat(x, flow, metric + offset), softsplat(x, flow, metric), rtol=1e-9, atol=1e-9)
    # normalised modes are convex combinations: a constant image stays constant where covered
    const = softsplat(torch.full_like(x, 0.7), flow, metric, mode="soft")
    torch.testing.assert_close(const, ((cov > 0).to(const.dtype) * 0.7).expand_as(const), rtol=0, atol=1e-12)


def test_docstring_examples():
    import doctest

    failures, tried = doctest.testmod(splat_module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
