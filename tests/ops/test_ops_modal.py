"""Image-space modal dynamics: decay, boundedness, zeros, normalisation, accuracy against the exact oscillator."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imagedynamics.ops.containers import Motion, SpectralVolume
from imagedynamics.ops.modal import modal_motion, simulate_modal_response
from imagedynamics.ops.procedural import procedural_spectrum
from imagedynamics.ops.spectral import bin_frequencies


def _spectrum(height=24, width=32, seed=0, frames=60):
    mask = torch.zeros(height, width)
    mask[4:20, 6:26] = 1.0
    return procedural_spectrum(height, width, mask, direction=(1.0, 0.3), num_frames=frames, strength=4.0,
                               coherence_sigma=6.0, seed=seed)


def test_zero_where_the_spectrum_is_zero():
    coeffs = _spectrum()
    displacement = simulate_modal_response(coeffs, (12, 10), (3.0, 1.0), fps=30, num_frames=45, hold_frames=10)
    assert displacement.shape == (45, 2, 24, 32) and displacement.dtype == torch.float32
    still = coeffs.abs().sum(dim=(0, 1)) == 0
    assert still.any() and displacement[:, :, still].abs().max() == 0
    assert displacement[:, :, ~still].abs().max() > 0.1
    assert displacement[0].abs().max() == 0  # starts at rest


@pytest.mark.parametrize("damping", [0.002, 0.05, 0.5, 3.0])
def test_energy_strictly_decreases_after_release(damping):
    coeffs = _spectrum(seed=1)
    _, state = simulate_modal_response(coeffs, (15, 12), (-2.0, 2.0), fps=24, num_frames=96, damping=damping,
                                       hold_frames=12, return_state=True)
    energy = state["energy"]
    assert energy[12] > 0
    after = energy[13:]  # frame 13 is the first state reached without force
    assert torch.all(after[1:] < after[:-1])
    assert torch.all(state["force"][12:] == 0) and torch.any(state["force"][:12] != 0)


def test_undamped_energy_is_conserved_after_release():
    coeffs = _spectrum(seed=2)
    _, state = simulate_modal_response(coeffs, (15, 12), (2.0, 0.0), fps=30, num_frames=120, damping=0.0,
                                       hold_frames=5, return_state=True)
    after = state["energy"][6:]
    assert (after.max() - after.min()) / after.max() < 1e-9


def test_single_mode_matches_the_exact_damped_oscillator():
    coeffs = torch.zeros(3, 2, 4, 4, dtype=torch.complex64)
    coeffs[1, 0] = 1.0
    fps, xi, freq = 30.0, 0.1, 1.5
    displacement, state = simulate_modal_response(coeffs, (1, 1), (2.0, 0.0), fps=fps, num_frames=90,
                                                  frequencies_hz=[0.0, freq, 0.0], damping=xi, initial="held",
                                                  hold_frames=0, return_state=True)
    # held start: displaced by the drag (2 px), released at t = 0, then x(t) = 2 e^{-xi w t}(cos w_d t + ... sin)
    w = 2 * math.pi * freq
    wd = w * math.sqrt(1 - xi * xi)
    t = torch.arange(90, dtype=torch.float64) / fps
    exact = 2.0 * torch.exp(-xi * w * t) * (torch.cos(wd * t) + xi / math.sqrt(1 - xi * xi) * torch.sin(wd * t))
    assert displacement[0, 0, 2, 2].item() == pytest.approx(2.0, abs=1e-5)
    assert torch.allclose(displacement[:, 0, 2, 2].double(), exact, atol=0.005)
    assert displacement[:, 1].abs().max() == 0
    # from rest, pulled and held: the step response 2 - x(t)
    pulled = simulate_modal_response(coeffs, (1, 1), (2.0, 0.0), fps=fps, num_frames=90,
                                     frequencies_hz=[0.0, freq, 0.0], damping=xi, hold_frames=90)
    assert torch.allclose(pulled[:, 0, 2, 2].double(), 2.0 - exact, atol=0.005)


def test_held_drag_settles_at_the_drag_along_its_direction():
    coeffs = _spectrum(seed=3)
    point, drag = (14.0, 11.5), torch.tensor([3.0, -1.5])
    displacement = simulate_modal_response(coeffs, point, drag, fps=30, num_frames=400, damping=1.0,
                                           hold_frames=400, max_amplification=None)
    # bilinear read of the final displacement at the drag point, projected on the drag direction
    final = displacement[-1]
    at_point = 0.5 * (final[:, 11, 14] + final[:, 12, 14])
    assert float(at_point @ drag / drag.norm()) == pytest.approx(float(drag.norm()), rel=0.02)
    heavier = simulate_modal_response(coeffs, point, drag, fps=30, num_frames=400, damping=1.0, hold_frames=400,
                                      max_amplification=None, mass=4.0)
    assert torch.allclose(heavier[-1], final / 4.0, atol=1e-3 * float(final.abs().max()))


def test_conjugate_makes_the_pull_follow_the_drag():
    # a mode shape with a pure imaginary coefficient: without the conjugate the held response would point backwards
    coeffs = torch.zeros(2, 2, 3, 3, dtype=torch.complex64)
    coeffs[1, 0] = 1j
    displacement = simulate_modal_response(coeffs, (1, 1), (1.0, 0.0), fps=30, num_frames=300,
                                           frequencies_hz=[0.0, 1.0], damping=1.0, hold_frames=300)
    assert displacement[-1, 0, 1, 1].item() == pytest.approx(1.0, rel=1e-3)


def test_dc_term_is_skipped():
    coeffs = torch.zeros(3, 2, 4, 4, dtype=torch.complex64)
    coeffs[0] = 5.0
    displacement = simulate_modal_response(coeffs, (1, 1), (2.0, 2.0), fps=30, num_frames=20)
    assert displacement.abs().max() == 0


def test_amplification_cap():
    coeffs = torch.zeros(2, 2, 4, 4, dtype=torch.complex64)
    coeffs[1, 0] = 100.0
    coeffs[1, 0, 0, 0] = 1.0  # the grabbed pixel barely moves in this mode: uncapped, the rest would move 100x
    kwargs = dict(fps=30, num_frames=300, frequencies_hz=[0.0, 1.0], damping=1.0, hold_frames=300)
    capped = simulate_modal_response(coeffs, (0, 0), (1.0, 0.0), max_amplification=4.0, **kwargs)
    free = simulate_modal_response(coeffs, (0, 0), (1.0, 0.0), max_amplification=None, **kwargs)
    assert free[-1, 0, 2, 2].item() == pytest.approx(100.0, rel=1e-3)
    assert capped[-1, 0].abs().max().item() == pytest.approx(4.0, rel=1e-3)


def test_trajectory_drag():
    coeffs = _spectrum(seed=4)
    path = torch.stack([torch.linspace(0, 4, 10), torch.zeros(10)], dim=1)
    displacement, state = simulate_modal_response(coeffs, (12, 12), path, fps=30, num_frames=40,
                                                  return_state=True)
    assert torch.isfinite(displacement).all()
    assert torch.all(state["force"][10:] == 0) and torch.all(state["force"][1:10, 1:] != 0)
    assert torch.all(state["force"][:, 0] == 0)  # the DC mode is skipped
    assert torch.all(state["force"][0] == 0)  # the path starts at zero displacement: no force


@settings(max_examples=25, deadline=None)
@given(damping=st.floats(0.0, 10.0), mass=st.floats(0.01, 100.0), fps=st.floats(1.0, 240.0),
       top_hz=st.floats(0.1, 60.0), hold=st.integers(0, 40), held=st.booleans())
def test_bounded_for_every_accepted_setting(damping, mass, fps, top_hz, hold, held):
    coeffs = torch.zeros(5, 2, 3, 3, dtype=torch.complex128)
    coeffs[1:, 0] = torch.tensor([1.0, 0.5j, -0.3, 0.2 + 0.2j], dtype=torch.complex128)[:, None, None]
    coeffs[1:, 1] = 0.4
    freqs = torch.linspace(0.0, top_hz, 5, dtype=torch.float64)
    displacement, state = simulate_modal_response(coeffs, (1, 1), (3.0, -1.0), fps=fps, num_frames=60,
                                                  frequencies_hz=freqs, damping=damping, mass=mass,
                                                  hold_frames=hold, initial="held" if held else "rest",
                                                  max_amplification=None, return_state=True)
    assert torch.isfinite(displacement).all()
    assert (state["step"][1:] * 2 * math.pi * freqs[1:] < 2).all()
    # Per mode, the discrete energy about the held equilibrium never grows, so |q| <= ~2.1 |q_static|:
    # the displacement is bounded by 2.2 sum_f |S_f(p)| |q_static,f| everywhere.
    force = state["force"].abs().amax(0)
    q_static = force / (2 * math.pi * freqs).clamp_min(1e-12) ** 2
    q_static = torch.maximum(q_static, state["q"][0].abs())  # a held start is the static state of its drag
    q_static[0] = 0
    bound = 2.2 * (coeffs.abs().amax(dim=1) * q_static[:, None, None]).sum(0)
    assert torch.all(displacement.norm(dim=1) <= bound[None] + 1e-9)


def test_modal_motion_wrapper_uses_the_bins():
    coeffs = _spectrum(seed=5)
    sv = SpectralVolume(coeffs, num_frames=60, fps=20.0)
    motion = modal_motion(sv, (10, 10), (1.0, 1.0), num_frames=30, damping=0.2)
    assert isinstance(motion, Motion) and motion.fps == 20.0 and not motion.loops
    direct = simulate_modal_response(coeffs, (10, 10), (1.0, 1.0), fps=20.0, num_frames=30,
                                     frequencies_hz=bin_frequencies(16, 60, 20.0), damping=0.2)
    assert torch.equal(motion.displacement, direct)


def test_errors():
    coeffs = _spectrum()
    good = dict(fps=30, num_frames=10)
    with pytest.raises(ValueError, match="damping"):
        simulate_modal_response(coeffs, (5, 5), (1, 0), damping=-0.1, **good)
    with pytest.raises(ValueError, match="mass"):
        simulate_modal_response(coeffs, (5, 5), (1, 0), mass=0.0, **good)
    with pytest.raises(ValueError, match="outside"):
        simulate_modal_response(coeffs, (40, 5), (1, 0), **good)
    with pytest.raises(ValueError, match="fps"):
        simulate_modal_response(coeffs, (5, 5), (1, 0), fps=0, num_frames=10)
    with pytest.raises(ValueError, match="frequencies_hz"):
        simulate_modal_response(coeffs, (5, 5), (1, 0), frequencies_hz=[1.0] * 3, **good)
    with pytest.raises(ValueError, match="frequencies_hz"):
        simulate_modal_response(coeffs, (5, 5), (1, 0), frequencies_hz=[-1.0] * 16, **good)
    with pytest.raises(ValueError, match="unstable"):
        simulate_modal_response(coeffs, (5, 5), (1, 0), frequencies_hz=[10.0] * 16, substeps=1, fps=2,
                                num_frames=4)
    with pytest.raises(ValueError, match="hold_frames"):
        simulate_modal_response(coeffs, (5, 5), (1, 0), hold_frames=-1, **good)
    with pytest.raises(ValueError, match="drag_displacement"):
        simulate_modal_response(coeffs, (5, 5), (1, float("nan")), **good)
    with pytest.raises(ValueError, match="initial"):
        simulate_modal_response(coeffs, (5, 5), (1, 0), initial="moving", **good)
    with pytest.raises(ValueError, match="coeffs"):
        simulate_modal_response(coeffs.real, (5, 5), (1, 0), **good)


def test_the_response_is_summed_in_chunks_with_progress_that_can_stop_it():
    from imagedynamics.ops.modal import RESPONSE_CHUNK
    from imagedynamics.ops.progress import Interrupted

    coeffs = torch.randn(4, 2, 6, 7, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    settings = dict(fps=30, num_frames=150, frequencies_hz=[0.0, 1.0, 2.0, 3.0], hold_frames=10)
    seen = []
    out, state = simulate_modal_response(coeffs, (3, 3), (2.0, 1.0), return_state=True,
                                         progress=lambda d, t: seen.append(d), **settings)
    assert seen == [min(s + RESPONSE_CHUNK, 150) for s in range(0, 150, RESPONSE_CHUNK)]
    q = state["q"].to(torch.complex64)  # F_t = Re sum_f q_f(t) S_f, written independently
    assert torch.allclose(out, torch.einsum("tk,kchw->tchw", q, coeffs).real, atol=1e-4)

    def stop(done, total):
        raise Interrupted("stopped")

    with pytest.raises(Interrupted):
        simulate_modal_response(coeffs, (3, 3), (2.0, 1.0), progress=stop, **settings)
