"""Interactive dynamics from a spectral volume: GID section 5.2's image-space modal response (after Davis et al.).

Each kept frequency f (w = 2 pi f rad/s) is treated as a mode whose shape is the spectral-volume image S_f(p)
(complex [2, H, W]); the picture's displacement is

    F_t(p) = Re sum_f S_f(p) q_f(t)                                                         (pixels)

with one complex modal coordinate q_f per mode obeying a damped oscillator driven by the user's drag:

    q_f'' + 2 xi w_f q_f' + w_f^2 q_f = g f_f(t) / m,       f_f = d . conj(S_f(p0)) = sum_c d_c conj(S_f,c(p0))

where p0 is the grabbed pixel and d the drag (pixels). The conjugate makes the held (static) response at p0
point along the drag: d . F_static(p0) = g sum_f |d . S_f(p0)|^2 / (m w_f^2) >= 0 (without it the phases of S
could push the object against the drag). The DC term and any zero frequency are skipped (no restoring force).

Normalisation: g = |d|^2 / sum_f (|d . S_f(p0)|^2 / w_f^2), so that with mass m = 1 holding the drag long enough
displaces p0 by exactly |d| along d (the response is in pixels of the order of the drag; mass m divides it).
If some pixel's held displacement would exceed ``max_amplification * |d|`` (when p0 barely moves in the
spectrum, g would be huge), g is reduced so that it does not. The force acts while the drag is held
(``hold_frames``) and is 0 after release.

Integrator (per mode, sub-step h = dt / n): semi-implicit (symplectic) Euler with the damping averaged over the
step, velocity first, then position with the new velocity::

    v_{j+1/2} = [ (1 - xi w h) v_{j-1/2} - h w^2 q_j + h g f / m ] / (1 + xi w h)
    q_{j+1}   = q_j + h v_{j+1/2}

It conserves or dissipates the discrete energy

    E_j = (m / 2) [ |v_{j+1/2}|^2 + w^2 Re(q_j conj(q_{j+1})) ]
        = (m / 2) [ |v|^2 + w^2 |q|^2 - h w^2 Re(q conj(v)) ]   (state after a step: q = q_{j+1}, v = v_{j+1/2})

exactly: without force E_j - E_{j-1} = -m xi w h |v_{j+1/2} + v_{j-1/2}|^2 <= 0, and E is positive definite
whenever w h < 2, for every damping xi >= 0. So the motion is bounded for every accepted setting, and after
release with xi > 0 the energy strictly decreases from frame to frame (it can only stall for w h = 2, excluded).
Sub-steps are chosen per mode so that w h <= 0.1 (accuracy; stability needs only < 2). The force is constant within
a frame and jumps at frame boundaries (grab, release, trajectory points); the first sub-step of a frame, whose
kick straddles the jump, uses the mean of the previous and the new force, which keeps the scheme second-order
accurate (before t = 0 the force is 0 from rest, or the holding force with ``initial="held"``). Because the
equations are linear, the other n - 1 sub-steps of a frame are applied at once as a matrix power, so the cost
does not depend on n.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .containers import Motion, SpectralVolume
from .progress import ProgressFn, report
from .spectral import bin_frequencies

RESPONSE_CHUNK = 64  # frames of the response summed at once

INITIAL_STATES = ("rest", "held")
_MAX_STEP_ANGLE = 0.1  # w h per sub-step


def _sample_complex(coeffs: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Bilinear sample of complex [K, 2, H, W] at pixel (x, y) -> complex128 [K, 2] (CPU)."""
    _, _, h, w = coeffs.shape
    x0, y0 = min(int(math.floor(x)), w - 1), min(int(math.floor(y)), h - 1)
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    c = coeffs[:, :, [y0, y0, y1, y1], [x0, x1, x0, x1]].to(device="cpu", dtype=torch.complex128)  # [K, 2, 4]
    weights = torch.tensor([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dtype=torch.float64)
    return (c * weights).sum(-1)


def _drag_sequence(drag_displacement, hold_frames: int | None, initial: str) -> tuple[torch.Tensor, int]:
    """Per-frame drag [hold, 2] float64 and the hold length."""
    d = torch.as_tensor(drag_displacement, dtype=torch.float64)
    if d.is_complex() or not bool(torch.isfinite(d).all()):
        raise ValueError("drag_displacement must be finite real numbers")
    if d.shape == (2,):
        if hold_frames is None:
            hold_frames = 0 if initial == "held" else None  # resolved by the caller (depends on fps)
        return d[None], hold_frames
    if d.ndim != 2 or d.shape[1] != 2 or d.shape[0] < 1:
        raise ValueError(f"drag_displacement must be (dx, dy) or a trajectory [N, 2], got shape {tuple(d.shape)}")
    if hold_frames is None:
        hold_frames = d.shape[0]
    return d, hold_frames


def _frame_transition(omega: float, xi: float, h: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Map of one frame (n sub-steps) on the state (q, v): s' = A s + b (force / mass). float64."""
    beta = xi * omega * h
    den = 1.0 + beta
    step = torch.tensor([[1.0 - h * h * omega * omega / den, h * (1.0 - beta) / den, h * h / den],
                         [-h * omega * omega / den, (1.0 - beta) / den, h / den],
                         [0.0, 0.0, 1.0]], dtype=torch.float64)
    full = torch.linalg.matrix_power(step, n)
    return full[:2, :2], full[:2, 2]


def simulate_modal_response(coeffs: torch.Tensor, drag_point: Sequence[float],
                            drag_displacement: Sequence[float] | torch.Tensor, fps: float, num_frames: int,
                            frequencies_hz: Sequence[float] | torch.Tensor | None = None, damping: float = 0.05,
                            mass: float | Sequence[float] | torch.Tensor = 1.0, hold_frames: int | None = None,
                            substeps: int | None = None, initial: str = "rest", max_amplification: float | None = 4.0,
                            return_state: bool = False, progress: ProgressFn | None = None):
    """Displacement of every pixel after the user drags pixel ``drag_point`` by ``drag_displacement`` and lets go.

    Args:
        coeffs: complex [K, 2, H, W] spectral volume (mode shapes), e.g. ``SpectralVolume.coeffs``.
        drag_point: (x, y) in pixels of the grabbed point, inside the picture (fractional values interpolate).
        drag_displacement: (dx, dy) in pixels held constant, or a trajectory [N, 2] (the drag at each held frame).
        fps: frames per second of the output (dt = 1 / fps).
        num_frames: T, frames to simulate (frame 0 is the initial state).
        frequencies_hz: [K] frequency of each mode; default bin k -> k * fps / num_frames (pass
            ``bin_frequencies(K, sv.num_frames, sv.fps)`` for a spectrum of another period; ``modal_motion`` does).
            Zero frequencies (the DC term) are skipped.
        damping: damping ratio xi >= 0 (0 = rings forever; 1 = critical).
        mass: modal mass > 0 (scalar or [K]); the held response scales as 1 / mass.
        hold_frames: frames during which the drag acts (force during [0, hold_frames) / fps), then released.
            Default: the trajectory's length, or round(fps / 2) for a constant drag (0 with initial="held").
        substeps: sub-steps per frame for every mode (>= 1; must give w h < 2); default per mode, w h <= 0.1.
        initial: "rest" (starts still at zero displacement) or "held" (starts at the static equilibrium of the
            first drag, as if it had been held for ever).
        max_amplification: cap on any pixel's held displacement relative to |d| (None = no cap).
        return_state: also return a dict with the modal state per frame.
        progress: ``progress(frames done, T)`` while the response is summed over the modes, every
            ``RESPONSE_CHUNK`` frames (``ops/progress.py``); what it raises stops.

    Returns:
        displacement [T, 2, H, W] (coeffs' real dtype and device, pixels); with ``return_state``, also a dict:
        "q", "v" complex128 [T, K] (state at each frame), "energy" float64 [T] (the discrete energy E above,
        summed over modes), "force" complex128 [T, K] (g f / m applied during frame t -> t+1), "step" float64 [K]
        (h per mode, 0 for skipped modes), "substeps" int64 [K], "gain" float64 [T].

    Raises:
        ValueError: on bad shapes, a point outside the picture, fps <= 0, num_frames < 1, negative or non-finite
            frequencies, damping < 0, mass <= 0, hold_frames < 0, substeps < 1 or too few for stability.

    Example:
        >>> S = torch.zeros(4, 2, 8, 8, dtype=torch.complex64)
        >>> S[1, 0] = 1.0                                       # one mode at 1 Hz moving everything along x
        >>> F, state = simulate_modal_response(S, (4, 4), (3.0, 0.0), fps=30, num_frames=120,
        ...                                    frequencies_hz=[0.0, 1.0, 2.0, 3.0], damping=1.0, hold_frames=120,
        ...                                    return_state=True)
        >>> round(float(F[-1, 0, 4, 4]), 3), float(F[:, 1].abs().max())   # settles at the drag; no y motion
        (3.0, 0.0)
    """
    if not isinstance(coeffs, torch.Tensor) or coeffs.ndim != 4 or coeffs.shape[1] != 2 or not coeffs.is_complex():
        raise ValueError(f"coeffs must be complex [K, 2, H, W], got "
                         f"{tuple(coeffs.shape) if isinstance(coeffs, torch.Tensor) else type(coeffs).__name__}")
    keep, _, height, width = coeffs.shape
    fps = float(fps)
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps}")
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    point = torch.as_tensor(drag_point, dtype=torch.float64).flatten()
    if point.shape != (2,) or not bool(torch.isfinite(point).all()):
        raise ValueError(f"drag_point must be (x, y), got {drag_point!r}")
    px, py = float(point[0]), float(point[1])
    if not (0 <= px <= width - 1 and 0 <= py <= height - 1):
        raise ValueError(f"drag_point ({px}, {py}) is outside the picture (x in [0, {width - 1}], "
                         f"y in [0, {height - 1}])")
    if frequencies_hz is None:
        freqs = bin_frequencies(keep, num_frames, fps)
    else:
        freqs = torch.as_tensor(frequencies_hz, dtype=torch.float64).flatten().cpu()
    if freqs.shape != (keep,):
        raise ValueError(f"frequencies_hz must have K = {keep} entries, got {tuple(freqs.shape)}")
    if not bool(torch.isfinite(freqs).all()) or bool((freqs < 0).any()):
        raise ValueError("frequencies_hz must be finite and >= 0")
    damping = float(damping)
    if not (math.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be a finite number >= 0, got {damping}")
    masses = torch.as_tensor(mass, dtype=torch.float64).flatten().cpu()
    if masses.numel() == 1:
        masses = masses.expand(keep).clone()
    if masses.shape != (keep,) or not bool(torch.isfinite(masses).all()) or bool((masses <= 0).any()):
        raise ValueError(f"mass must be a finite number > 0 (or [K] of them), got {mass!r}")
    if initial not in INITIAL_STATES:
        raise ValueError(f"initial must be one of {INITIAL_STATES}, got {initial!r}")
    if max_amplification is not None and not (math.isfinite(max_amplification) and max_amplification > 0):
        raise ValueError(f"max_amplification must be a finite number > 0 or None, got {max_amplification}")
    drags, hold_frames = _drag_sequence(drag_displacement, hold_frames, initial)
    if hold_frames is None:
        hold_frames = round(fps / 2)
    hold_frames = int(hold_frames)
    if hold_frames < 0:
        raise ValueError(f"hold_frames must be >= 0, got {hold_frames}")

    dt = 1.0 / fps
    omega = 2.0 * math.pi * freqs
    active = omega > 0
    if substeps is None:
        counts = torch.clamp(torch.ceil(omega * dt / _MAX_STEP_ANGLE), min=1).long()
    else:
        if int(substeps) < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps}")
        counts = torch.full((keep,), int(substeps), dtype=torch.long)
        worst = float((omega * dt / counts).max())
        if worst >= 2.0:
            need = int(math.floor(float(omega.max()) * dt / 2.0)) + 1
            raise ValueError(f"substeps = {substeps} is unstable (w h = {worst:.3f} >= 2 for the highest "
                             f"frequency); use at least {need}")
    steps = torch.where(active, dt / counts.double(), torch.zeros_like(omega))

    # Modal force direction per frame: f_f = d . conj(S_f(p0)), with the gain that makes the held response at p0
    # equal |d| along d for unit mass.
    s0 = _sample_complex(coeffs, px, py)  # [K, 2] complex128
    inv_w2 = torch.where(active, 1.0 / omega.clamp_min(1e-300) ** 2, torch.zeros_like(omega))
    held = min(hold_frames, num_frames)
    total_drags = max(held, 1)
    index = torch.arange(total_drags).clamp(max=drags.shape[0] - 1)
    per_frame = drags[index]  # [hold or 1, 2]
    z = per_frame.to(torch.complex128) @ s0.transpose(0, 1)  # [n, K]: d . S_f(p0)
    denom = (z.abs().square() * inv_w2).sum(-1)  # [n]
    length2 = per_frame.square().sum(-1)
    scale = coeffs.abs().amax().item()
    tiny = 1e-24 * max(scale, 1e-30) ** 2 * float(inv_w2.max()) * length2
    gain = torch.where(denom > tiny, length2 / denom.clamp_min(1e-300), torch.zeros_like(denom))
    if max_amplification is not None and bool((gain > 0).any()):
        gain = gain * _amplification_cap(coeffs, s0, inv_w2, per_frame, gain, float(max_amplification))
    force_dir = torch.conj(z) * gain[:, None] * active  # [n, K], before / mass

    # Per mode: one sub-step (A1, b1), then the frame's other n - 1 sub-steps at once (An, bn).
    a1, b1, an, bn = (torch.eye(2, dtype=torch.float64).repeat(keep, 1, 1), torch.zeros(keep, 2, dtype=torch.float64),
                      torch.eye(2, dtype=torch.float64).repeat(keep, 1, 1), torch.zeros(keep, 2, dtype=torch.float64))
    for k in range(keep):
        if active[k]:
            a1[k], b1[k] = _frame_transition(float(omega[k]), damping, float(steps[k]), 1)
            an[k], bn[k] = _frame_transition(float(omega[k]), damping, float(steps[k]), int(counts[k]) - 1)

    state = torch.zeros(keep, 2, 2, dtype=torch.float64)  # [K, (q, v), (re, im)]
    previous = torch.zeros(keep, dtype=torch.complex128)  # the force acting just before t = 0
    if initial == "held":
        previous = force_dir[0] / masses
        q_static = previous * inv_w2
        state[:, 0, 0], state[:, 0, 1] = q_static.real, q_static.imag
    q_hist = torch.zeros(num_frames, keep, dtype=torch.complex128)
    v_hist = torch.zeros(num_frames, keep, dtype=torch.complex128)
    force_hist = torch.zeros(num_frames, keep, dtype=torch.complex128)
    gain_hist = torch.zeros(num_frames, dtype=torch.float64)
    for t in range(num_frames):
        q_hist[t] = torch.complex(state[:, 0, 0], state[:, 0, 1])
        v_hist[t] = torch.complex(state[:, 1, 0], state[:, 1, 1])
        if t < held:
            force = force_dir[t] / masses
            gain_hist[t] = gain[t]
        else:
            force = torch.zeros(keep, dtype=torch.complex128)
        force_hist[t] = force
        # The force jumps at frame boundaries: the kick that straddles the jump uses the mean of both forces
        # (half a sub-step of each), which keeps the scheme second-order accurate across grabs and releases.
        straddle = (previous + force) / 2
        state = a1 @ state + b1[:, :, None] * torch.stack([straddle.real, straddle.imag], dim=-1)[:, None, :]
        state = an @ state + bn[:, :, None] * torch.stack([force.real, force.imag], dim=-1)[:, None, :]
        previous = force

    energy = 0.5 * (masses * (v_hist.abs().square() + omega.square() * q_hist.abs().square()
                              - steps * omega.square() * (q_hist * torch.conj(v_hist)).real)).sum(-1)

    real = torch.view_as_real(coeffs)  # [K, 2, H, W, 2]
    q_cast = q_hist.to(device=coeffs.device, dtype=coeffs.dtype)
    q_real = torch.view_as_real(q_cast)  # [T, K, 2]
    # F_t = Re sum_f q_f(t) S_f, RESPONSE_CHUNK frames at a time into the output
    re, im = real[..., 0].reshape(keep, -1), real[..., 1].reshape(keep, -1)
    if torch.is_grad_enabled() and coeffs.requires_grad:  # differentiable: one product (no in-place chunks)
        displacement = q_real[..., 0] @ re - q_real[..., 1] @ im
    else:
        displacement = _response_in_chunks(q_real, re, im, progress)
    displacement = displacement.reshape(num_frames, *coeffs.shape[1:])
    if not return_state:
        return displacement
    return displacement, {"q": q_hist, "v": v_hist, "energy": energy, "force": force_hist, "step": steps,
                          "substeps": counts, "gain": gain_hist}


def _response_in_chunks(q_real: torch.Tensor, re: torch.Tensor, im: torch.Tensor,
                        progress: ProgressFn | None) -> torch.Tensor:
    """Re sum_f q_f(t) S_f as [T, 2 H W]: q_real [T, K, 2] (re, im), the spectrum's parts re, im [K, 2 H W]."""
    num_frames = q_real.shape[0]
    displacement = torch.empty(num_frames, re.shape[1], dtype=re.dtype, device=re.device)
    for start in range(0, num_frames, RESPONSE_CHUNK):
        stop = min(start + RESPONSE_CHUNK, num_frames)
        torch.addmm(q_real[start:stop, :, 0] @ re, q_real[start:stop, :, 1], im, alpha=-1,
                    out=displacement[start:stop])
        report(progress, stop, num_frames)
    return displacement


def _amplification_cap(coeffs: torch.Tensor, s0: torch.Tensor, inv_w2: torch.Tensor, drags: torch.Tensor,
                       gain: torch.Tensor, limit: float) -> torch.Tensor:
    """Factor <= 1 per drag so that the held response max_p |F_static(p)| stays <= limit * |d|.

    F_static(p) = gain * M(p) d with the real 2x2 matrix M(p) = Re sum_f S_f(p) conj(S_f(p0))^T / w_f^2.
    """
    weights = (torch.conj(s0) * inv_w2[:, None]).to(device=coeffs.device, dtype=coeffs.dtype)  # [K, 2]
    matrix = torch.einsum("kchw,kd->hwcd", coeffs, weights).real  # [H, W, 2, 2]
    unique, inverse = torch.unique(drags, dim=0, return_inverse=True)
    factors = torch.ones(unique.shape[0], dtype=torch.float64)
    flat = matrix.reshape(-1, 2, 2)
    for i, d in enumerate(unique):
        length = float(d.norm())
        if length == 0:
            continue
        response = (flat @ d.to(device=flat.device, dtype=flat.dtype)).norm(dim=-1).max()
        factors[i] = float(response) / length  # per unit gain, relative to |d|
    per_drag = factors[inverse] * gain
    return torch.where(per_drag > limit, limit / per_drag.clamp_min(1e-300), torch.ones_like(per_drag))


def modal_motion(sv: SpectralVolume, drag_point: Sequence[float], drag_displacement, num_frames: int | None = None,
                 fps: float | None = None, **kwargs) -> Motion:
    """``simulate_modal_response`` for a ``SpectralVolume``: mode frequencies k * sv.fps / sv.num_frames.

    Args:
        sv: the spectral volume.
        drag_point, drag_displacement: as ``simulate_modal_response``.
        num_frames: frames to simulate (default sv.num_frames).
        fps: output fps (default sv.fps).
        **kwargs: damping, mass, hold_frames, substeps, initial, max_amplification.

    Returns:
        ``Motion`` (not looping) of the released object ringing down.

    Example:
        >>> S = torch.zeros(4, 2, 8, 8, dtype=torch.complex64)
        >>> S[2, 1] = 1.0
        >>> m = modal_motion(SpectralVolume(S, num_frames=30, fps=30.0), (3, 3), (0.0, 2.0))
        >>> m.displacement.shape, m.loops
        (torch.Size([30, 2, 8, 8]), False)
    """
    if not isinstance(sv, SpectralVolume):
        raise TypeError(f"sv must be a SpectralVolume, got {type(sv).__name__}")
    if kwargs.pop("return_state", False):
        raise ValueError("modal_motion does not return the state; call simulate_modal_response")
    if "frequencies_hz" in kwargs:
        raise ValueError("modal_motion takes the frequencies from the spectral volume")
    frames = int(sv.num_frames if num_frames is None else num_frames)
    out_fps = float(sv.fps if fps is None else fps)
    freqs = bin_frequencies(sv.num_frequencies, sv.num_frames, sv.fps)
    displacement = simulate_modal_response(sv.coeffs, drag_point, drag_displacement, out_fps, frames,
                                           frequencies_hz=freqs, **kwargs)
    return Motion(displacement=displacement, fps=out_fps, loops=False, extras={"source": "modal"})
