"""Eulerian integration and seamless loops."""
from __future__ import annotations

import pytest
import torch

from imagedynamics.ops.eulerian import integrate_velocity, loop_motion, loop_motion_pair
from imagedynamics.ops.sparse_to_dense import gaussian_arrow_field
from imagedynamics.ops.trajectories import Arrows


def linear_field(H: int, W: int, a: float) -> torch.Tensor:
    """v(x, y) = (a * x, 0): Euler steps give x_t = x_0 (1 + a)^t (bilinear sampling of a linear field is exact)."""
    v = torch.zeros(2, H, W)
    v[0] = a * torch.arange(W, dtype=torch.float32)[None, :]
    return v


def arrow_field(H: int = 40, W: int = 56) -> torch.Tensor:
    arrows = Arrows(torch.tensor([[18.0, 20.0], [40.0, 16.0]]), torch.tensor([[19.5, 20.0], [40.0, 18.0]]))
    return gaussian_arrow_field(arrows, H, W, sigma=10.0)


def test_uniform_velocity_integrates_to_t_v():
    v = torch.zeros(2, 12, 16)
    v[0], v[1] = 0.75, -0.5
    d = integrate_velocity(v, 6)
    assert d.shape == (6, 2, 12, 16)
    assert torch.equal(d[0], torch.zeros(2, 12, 16))
    expected = torch.arange(6.0)[:, None, None, None] * v[None]
    assert torch.allclose(d, expected, atol=1e-5)
    assert torch.allclose(integrate_velocity(v, 6, direction=-1), -expected, atol=1e-5)


@pytest.mark.parametrize("direction,substeps", [(1, 1), (-1, 1), (1, 4)])
def test_euler_follows_the_field_at_the_current_position(direction, substeps):
    H, W, a, T = 8, 64, 0.05, 6
    d = integrate_velocity(linear_field(H, W, a), T, direction, substeps=substeps)
    x0 = torch.arange(W, dtype=torch.float32)
    for t in range(T):
        xt = x0 * (1 + direction * a / substeps) ** (t * substeps)
        inside = xt <= W - 1  # beyond the border the field is clamped
        assert torch.allclose(d[t, 0, 3][inside], (xt - x0)[inside], atol=1e-4), t
    assert d[:, 1].abs().max() == 0


def test_loop_pair_definition():
    v = arrow_field()
    T = 10
    forward, backward, alpha = loop_motion_pair(v, T, speed=1.5)
    assert torch.equal(alpha, torch.arange(T) / T)
    assert torch.allclose(forward, integrate_velocity(1.5 * v, T), atol=1e-6)
    back = integrate_velocity(1.5 * v, T + 1, direction=-1)
    for t in range(T):
        assert torch.allclose(backward[t], back[T - t], atol=1e-6)
    assert torch.equal(forward[0], torch.zeros_like(forward[0]))
    # uniform field: the backward set is -(T - t) v
    u = torch.zeros(2, 6, 6)
    u[0] = 1.0
    _, b, _ = loop_motion_pair(u, 4)
    assert torch.allclose(b[:, 0, 3, 3], torch.tensor([-4.0, -3.0, -2.0, -1.0]))


def steps(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Consecutive steps inside the loop and the wrap-around step (frame T-1 -> frame T = frame 0)."""
    inner = (d[1:] - d[:-1]).abs().amax(dim=(1, 2, 3))
    wrap = (d[0] - d[-1]).abs().max()
    return inner, wrap


@pytest.mark.parametrize("T", [16, 25])
def test_crossfade_loop_is_seamless(T):
    v = arrow_field()
    d = loop_motion(v, T, "crossfade")
    assert d.shape == (T, 2, 40, 56)
    assert torch.equal(d[0], torch.zeros_like(d[0]))  # exact zero at frame 0
    inner, wrap = steps(d)
    # the wrap step is the same formula as every other step (D_T = 0): about one frame of motion, no jump
    assert wrap <= 1.05 * inner.max()
    assert wrap <= 1.3 * v.abs().max()
    mean_inner = (d[1:] - d[:-1]).norm(dim=1).mean(dim=(1, 2))
    mean_wrap = (d[0] - d[-1]).norm(dim=0).mean()
    assert mean_wrap <= 1.15 * mean_inner.max()
    # without looping, the jump back to frame 0 is many frames of motion
    _, open_wrap = steps(loop_motion(v, T, "none"))
    assert open_wrap > 5 * wrap


def test_crossfade_cancels_uniform_flow_as_documented():
    u = torch.zeros(2, 6, 6)
    u[0] = 1.0
    assert loop_motion(u, 8, "crossfade").abs().max() < 1e-5


@pytest.mark.parametrize("T", [8, 9])
def test_pingpong(T):
    v = arrow_field()
    d = loop_motion(v, T, "pingpong", speed=0.5)
    forward = integrate_velocity(0.5 * v, T // 2 + 1)
    assert torch.equal(d[0], torch.zeros_like(d[0]))
    for t in range(T):
        assert torch.equal(d[t], forward[min(t, T - t)])
    inner, wrap = steps(d)
    assert wrap <= inner.max()


def test_none_mode_and_speed():
    v = arrow_field()
    assert torch.allclose(loop_motion(v, 5, "none", speed=2.0), integrate_velocity(2.0 * v, 5), atol=1e-6)
    assert torch.equal(loop_motion(v[None], 5, "none"), integrate_velocity(v, 5))  # [1, 2, H, W] accepted


def test_errors():
    v = torch.zeros(2, 4, 4)
    with pytest.raises(ValueError, match=r"velocity must be \[2, H, W\]"):
        integrate_velocity(torch.zeros(3, 4, 4), 3)
    with pytest.raises(ValueError, match="NaN"):
        integrate_velocity(torch.full((2, 4, 4), float("nan")), 3)
    with pytest.raises(ValueError, match="direction"):
        integrate_velocity(v, 3, direction=2)
    with pytest.raises(ValueError, match="mode"):
        loop_motion(v, 3, mode="bounce")
    with pytest.raises(ValueError, match="num_frames"):
        loop_motion(v, 0)


@pytest.mark.parametrize("mode", ["crossfade", "pingpong", "none"])
def test_integration_reports_every_frame_and_stops_when_progress_raises(mode):
    from imagedynamics.ops.progress import Interrupted

    v = arrow_field()
    seen = []
    loop_motion(v, 10, mode, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] and len(seen) >= (5 if mode == "pingpong" else 9)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))  # never goes back

    def stop(done, total):
        if done >= 3:
            raise Interrupted("stopped")

    with pytest.raises(Interrupted):
        loop_motion(v, 10, mode, progress=stop)
