"""Eulerian motion: integrate a static velocity field into reference-anchored displacements, and loop it.

A velocity field v [2, H, W] (pixels per frame, channel 0 = x right, channel 1 = y down) says how fast the content
at each pixel moves. Euler integration follows each pixel of the first frame: x_0 = p,
x_{t+1} = x_t + v(x_t), with v sampled bilinearly at the current (sub-pixel) position. The output is the
reference-anchored displacement D_t(p) = x_t - p, [T, 2, H, W], as in ``Motion.displacement``.

Seamless loops follow "Animating Pictures with Eulerian Motion Fields" (Holynski et al., CVPR 2021): integrate forward
from the first frame and backward from the loop's end, and cross-fade. :func:`loop_motion_pair` returns both
displacement sets and the blend weights, for a renderer that splats the picture twice and blends the images (the
paper's method); :func:`loop_motion` blends the displacements themselves (cheaper, one splat, see its caveat).

One cross-fade over the whole loop double-exposes every moving pixel half-way through (two copies of the texture,
T frames of motion apart, at half contrast each: the moving region's sharpness fell to 0.74 of frame 0's on the
default workflow). :func:`loop_phase` staggers the cross-fade instead: each region dissolves at its own time, over
a short window, so that in any frame only a few pixels are mid-way (per-pixel loop timing, as in Liao et al.,
"Automated Video Looping with Progressive Dynamism", 2013).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .progress import ProgressFn, report, sub_progress

__all__ = ["integrate_flows", "integrate_velocity", "loop_motion", "loop_motion_pair", "loop_phase", "PHASE_WINDOW"]

PHASE_WINDOW = 0.2
"""Default fraction of the loop one pixel's cross-fade takes in a staggered loop (:func:`loop_phase`): measured on
the default workflow and a textured picture (bench/bench_loops.py), 0.2 keeps every frame's moving region at
>= 0.9 of frame 0's sharpness; wider windows double-expose more pixels at once, narrower ones dissolve faster."""


def _check_velocity(velocity: torch.Tensor) -> torch.Tensor:
    v = velocity[0] if velocity.ndim == 4 and velocity.shape[0] == 1 else velocity
    if v.ndim != 3 or v.shape[0] != 2:
        raise ValueError(f"velocity must be [2, H, W] (or [1, 2, H, W]), got {tuple(velocity.shape)}")
    if not torch.isfinite(v).all():
        raise ValueError("velocity contains NaN or infinite values")
    return v.float()


def _sample(field: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of field [1, C, H, W] at absolute pixel positions [1, 2, H, W] (x, y); border clamped."""
    height, width = field.shape[-2:]
    gx = positions[:, 0] * (2.0 / max(width - 1, 1)) - 1.0
    gy = positions[:, 1] * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)  # [1, H, W, 2]
    return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)


def integrate_velocity(velocity: torch.Tensor, num_frames: int, direction: int = +1, *,
                       substeps: int = 1, progress: ProgressFn | None = None) -> torch.Tensor:
    """Reference-anchored displacements of a static Eulerian velocity field by Euler integration.

    D_0 = 0 and, per frame, ``substeps`` steps of D <- D + direction * v(p + D) / substeps, with v sampled bilinearly
    at the current position (positions outside the picture read the border's velocity).

    Args:
        velocity: [2, H, W] pixels per frame.
        num_frames: T, the number of frames returned (frame 0 included).
        direction: +1 forward in time, -1 backward (follows -v).
        substeps: Euler sub-steps per frame (1 = the plain per-frame Euler step of Holynski et al.).
        progress: ``progress(frames done, T)`` after every frame (``ops/progress.py``); what it raises stops.

    Returns:
        [T, 2, H, W] float32 displacement in pixels; frame 0 is exactly zero.

    Example:
        >>> v = torch.zeros(2, 8, 8); v[0] = 1.5
        >>> integrate_velocity(v, 3)[:, 0, 4, 4].tolist()
        [0.0, 1.5, 3.0]
    """
    v = _check_velocity(velocity)
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    if int(substeps) < 1:
        raise ValueError(f"substeps must be >= 1, got {substeps}")
    height, width = v.shape[-2:]
    field = v[None] * (float(direction) / int(substeps))
    ys = torch.arange(height, device=v.device, dtype=torch.float32)[:, None].expand(height, width)
    xs = torch.arange(width, device=v.device, dtype=torch.float32)[None, :].expand(height, width)
    origin = torch.stack([xs, ys])[None]  # [1, 2, H, W]
    out = torch.zeros(int(num_frames), 2, height, width, device=v.device)
    disp = torch.zeros(1, 2, height, width, device=v.device)
    for t in range(1, int(num_frames)):
        for _ in range(int(substeps)):
            disp = disp + _sample(field, origin + disp)
        out[t] = disp[0]
        report(progress, t + 1, num_frames)
    return out


def integrate_flows(flows: torch.Tensor) -> torch.Tensor:
    """Reference-anchored displacements of frame-to-frame flows along their trajectories (the long-animation
    paper's Eq. 3: ``(x_{k+1}, y_{k+1}) = (x_k, y_k) + F_{k->k+1}(x_k, y_k)``).

    D_0 = 0 and D_{k+1}(p) = D_k(p) + F_k(p + D_k(p)), F_k sampled bilinearly at the trajectory's current position
    (border clamped, as :func:`integrate_velocity`). For ``K`` copies of one static field this is
    :func:`integrate_velocity` with ``substeps = 1``.

    Args:
        flows: ``[B, K, 2, H, W]`` flows F_{k->k+1} in pixels per frame (channel 0 = x right, 1 = y down).

    Returns:
        ``[B, K + 1, 2, H, W]`` float32 displacements of frames 0 .. K from frame 0, pixels; frame 0 exactly zero.

    Example:
        >>> f = torch.zeros(1, 2, 2, 8, 8); f[:, :, 0] = 1.5
        >>> integrate_flows(f)[0, :, 0, 4, 4].tolist()
        [0.0, 1.5, 3.0]
    """
    if flows.ndim != 5 or flows.shape[2] != 2:
        raise ValueError(f"flows must be [B, K, 2, H, W], got {tuple(flows.shape)}")
    b, k, _, height, width = flows.shape
    flows = flows.float()
    ys = torch.arange(height, device=flows.device, dtype=torch.float32)[:, None].expand(height, width)
    xs = torch.arange(width, device=flows.device, dtype=torch.float32)[None, :].expand(height, width)
    origin = torch.stack([xs, ys])[None]                               # [1, 2, H, W]
    disp = torch.zeros(b, 2, height, width, device=flows.device)
    out = [disp]
    for step in range(k):
        disp = disp + _sample_batch(flows[:, step], origin + disp)
        out.append(disp)
    return torch.stack(out, 1)


def _sample_batch(field: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """:func:`_sample` for a batch: ``field`` [B, C, H, W] at positions [B, 2, H, W] (x, y) px, border clamped."""
    height, width = field.shape[-2:]
    gx = positions[:, 0] * (2.0 / max(width - 1, 1)) - 1.0
    gy = positions[:, 1] * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)


def loop_motion_pair(velocity: torch.Tensor, num_frames: int, speed: float = 1.0, *, substeps: int = 1,
                     progress: ProgressFn | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two displacement sets and blend weights of a seamless Eulerian loop (Holynski et al. 2021).

    With T = num_frames frames per loop (frame T would be frame 0 again) and v = speed * velocity:

        forward[t]  = F_t       : t Euler steps along +v from the first frame           (t = 0 .. T-1)
        backward[t] = B_{T-t}   : T - t Euler steps along -v ("where the pixel comes from, T - t frames before
                                  the loop's end", which is the first frame again)
        alpha[t]    = t / T     : weight of the backward splat; the forward splat gets 1 - alpha[t] = (T - t) / T

    A renderer splats the picture with forward[t] and with backward[t] and blends the two images
    ``(1 - alpha[t]) * I_f + alpha[t] * I_b`` (Holynski et al. blend with the splat weights as well). Frame 0 is the
    picture itself (alpha 0, F_0 = 0) and frame T would be too (alpha 1, B_0 = 0), so the loop is seamless.

    ``progress(done, 2 T + 1)`` counts the frames of both integrations.

    Returns:
        forward [T, 2, H, W], backward [T, 2, H, W] (pixels), alpha [T] in [0, 1).
    """
    v = _check_velocity(velocity) * float(speed)
    T = int(num_frames)
    if T < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    forward = integrate_velocity(v, T, +1, substeps=substeps, progress=sub_progress(progress, 0, T, 2 * T + 1))
    back = integrate_velocity(v, T + 1, -1, substeps=substeps,  # back[s] = s steps backward, s = 0 .. T
                              progress=sub_progress(progress, T, T + 1, 2 * T + 1))
    backward = back.flip(0)[:T]  # backward[t] = back[T - t]
    alpha = torch.arange(T, device=v.device, dtype=torch.float32) / T
    return forward, backward, alpha


def loop_phase(height: int, width: int, moving: torch.Tensor | None = None, window: float = PHASE_WINDOW,
               scale: float | None = None, seed: int = 0) -> torch.Tensor:
    """When each pixel of a staggered Eulerian loop cross-fades, as a fraction of the loop (``LoopBlend.phase``).

    A smooth random field (Gaussian-correlated, correlation length ``scale``) is rank-equalised over the moving
    pixels, so that its values are spread evenly: at any loop time about ``window / (1 - window)`` of the moving
    pixels are mid-way through their cross-fade, in blobs a few ``scale`` wide (a fine pattern would put two
    different textures side by side pixel by pixel). The result is mapped to [window / 2, 1 - window / 2] so that
    every pixel's cross-fade starts after frame 0 and ends by frame T: frame 0 is the picture and the loop stays
    seamless.

    Args:
        height, width: the picture's size.
        moving: optional [H, W] (or [1, 1, H, W]) bool/float, the pixels that move (non-zero); the equalisation
            counts only them (still pixels get 0.5, where either render is the same). None: every pixel.
        window: fraction of the loop one pixel's cross-fade takes, in (0, 1).
        scale: correlation length in pixels (None: the long side / 8).
        seed: the random field's seed (the same seed gives the same phases).

    Returns:
        [1, 1, H, W] float32 in [window / 2, 1 - window / 2].

    Example:
        >>> p = loop_phase(32, 48, window=0.2)
        >>> tuple(p.shape), round(float(p.min()), 3), round(float(p.max()), 3)
        ((1, 1, 32, 48), 0.1, 0.9)
    """
    from .procedural import smooth_noise

    if not 0.0 < float(window) < 1.0:
        raise ValueError(f"window must be in (0, 1), got {window}")
    height, width = int(height), int(width)
    sigma = float(scale) if scale is not None else max(height, width) / 8.0
    if sigma <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    field = smooth_noise(1, height, width, sigma, torch.Generator().manual_seed(int(seed)))[0]
    if moving is None:
        inside = torch.ones(height, width, dtype=torch.bool)
    else:
        inside = moving.reshape(moving.shape[-2:]).cpu() != 0
        if tuple(inside.shape) != (height, width):
            raise ValueError(f"moving must be [{height}, {width}], got {tuple(moving.shape)}")
    rank = torch.full((height, width), 0.5)
    count = int(inside.sum())
    if count > 1:
        order = field[inside].argsort()
        values = torch.empty(count)
        values[order] = torch.arange(count, dtype=torch.float32) / (count - 1)
        rank[inside] = values
    half = float(window) / 2
    return (half + (1.0 - float(window)) * rank)[None, None]


def loop_motion(velocity: torch.Tensor, num_frames: int, mode: str = "crossfade", speed: float = 1.0, *,
                substeps: int = 1, progress: ProgressFn | None = None) -> torch.Tensor:
    """Displacements [T, 2, H, W] of a looping animation of a static velocity field; frame 0 is exactly zero.

    Modes (T = num_frames, v = speed * velocity, F_t / B_s as in :func:`loop_motion_pair`):

    - "crossfade": ``D_t = (T - t) / T * F_t + t / T * B_{T-t}``. D_0 = 0 exactly and D_T (= frame 0 of the next loop)
      would be B_0 = 0, so the step from frame T-1 to frame T is ``-D_{T-1} = -(F_{T-1} + (T-1) B_1) / T``, about one
      frame of motion: the loop is seamless. Caveat: blending displacements is not blending images. Where the flow
      is uniform along a path, F_t and B_{T-t} point in opposite directions and cancel (exactly, for a constant
      field), so such regions sway instead of flowing. For the paper's look, splat both sets of
      :func:`loop_motion_pair` and blend the images.
    - "pingpong": forward for T // 2 frames, then back: ``D_t = F_{min(t, T - t)}``; seamless and never cancels, but
      the motion reverses (for odd T the turning frame is shown twice).
    - "none": ``D_t = F_t`` (no loop).

    Example:
        >>> v = torch.zeros(2, 8, 8); v[0] = 1.0
        >>> loop_motion(v, 4, "pingpong")[:, 0, 4, 4].tolist()
        [0.0, 1.0, 2.0, 1.0]
    """
    if mode not in ("crossfade", "pingpong", "none"):
        raise ValueError(f"mode must be 'crossfade', 'pingpong' or 'none', got {mode!r}")
    T = int(num_frames)
    if T < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    v = _check_velocity(velocity) * float(speed)
    if mode == "none":
        return integrate_velocity(v, T, substeps=substeps, progress=progress)
    if mode == "pingpong":
        forward = integrate_velocity(v, T // 2 + 1, substeps=substeps, progress=progress)
        phase = [min(t, T - t) for t in range(T)]
        return forward[phase].clone()
    forward, backward, alpha = loop_motion_pair(v, T, substeps=substeps, progress=progress)
    a = alpha[:, None, None, None]
    out = (1.0 - a) * forward + a * backward
    out[0] = 0.0
    return out
