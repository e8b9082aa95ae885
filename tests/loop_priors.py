"""Tiny motion priors that can loop, and the measures of a loop (for the loop guidance tests and
bench/bench_loop_guidance.py).

Measures of a played loop ``x`` [L, ...] (a motion's displacements [L, 2, H, W] px or rendered frames
[L, 3, H, W]), played 0, 1 .. L - 1, 0, 1 ..:

* ``wrap_ratio(x)``: the wrap step (x_{L-1} -> x_0) over the mean of the other steps (1 = an ordinary step;
  ~0 = a hold at the seam; >> 1 = a jump): ``ops.loop_metrics.seam_ratio`` on frames (mean absolute change),
  ``motion_seam_ratio`` on a motion (mean end-point length of the change), both with ``typical="mean"``;
* ``amplitude(x)``: how much it moves: ``ops.loop_metrics.motion_amplitude`` on a motion (root-mean-square
  deviation from the mean position), mean |x_t - temporal mean| on frames;
* ``gap(x, after)``: the seam mismatch, mean |a_0 - x_0| + mean |(a_1 - a_0) - (x_1 - x_0)|, with
  ``after`` = (a_0, a_1) the two frames the motion itself gives after its last (GID: the Fourier series at
  times L and L + 1; LVMM: the sampled frames L and L + 1), i.e. how far from frame 0 the motion would go next
  (position) and how its velocity there differs from the velocity out of frame 0 (strict continuity; the loss
  loop guidance minimises).
"""
from __future__ import annotations

import math

import torch


def _is_motion(x: torch.Tensor) -> bool:
    return x.shape[1] == 2


def wrap_ratio(x: torch.Tensor) -> float:
    """The wrap step over the mean of the other steps (a motion [L, 2, H, W] or frames [L, 3, H, W])."""
    from imagedynamics.ops.loop_metrics import motion_seam_ratio, seam_ratio

    return (motion_seam_ratio if _is_motion(x) else seam_ratio)(x, typical="mean")


def amplitude(x: torch.Tensor) -> float:
    """How much a motion or a clip moves about its temporal mean (module docstring)."""
    from imagedynamics.ops.loop_metrics import motion_amplitude

    if _is_motion(x):
        return motion_amplitude(x)
    return float((x - x.mean(0, keepdim=True)).abs().mean())


def gap(x: torch.Tensor, after: torch.Tensor) -> float:
    """Seam mismatch of the loop ``x`` [L, ...] whose next two frames are ``after`` [2, ...] (module docstring)."""
    position = (after[0] - x[0]).abs().mean()
    velocity = ((after[1] - after[0]) - (x[1] - x[0])).abs().mean()
    return float(position + velocity)


def measures(x: torch.Tensor, after: torch.Tensor) -> dict[str, float]:
    """wrap_ratio, amplitude and gap of one loop."""
    return {"wrap_ratio": wrap_ratio(x), "amplitude": amplitude(x), "gap": gap(x, after)}


# ============================================================================================ GID


LOOP_CYCLES = (1, 2, 3)
"""Cycles per T frames of the sway the loop prior is trained on (a mixture: module docstring of
:func:`oscillation_spectra`)."""


def oscillation_spectra(count: int, config, generator: torch.Generator, cycles=LOOP_CYCLES):
    """Spectral volumes of smooth sinusoidal sway, anchored at frame 0: the data of the tiny GID loop prior.

    F_t(p) = A(p) sin(2 pi f t / T + phi) - A(p) sin(phi), A a smooth random field (~2 px), phi random per
    axis, f cycles per T frames: drawn from ``cycles`` (a tuple of values, each equally likely) or, with
    ``cycles=None``, uniform in [0.4, 2.6] (the prior before: sways that rarely loop at any length but T's
    approximations).

    Why integer cycles (the default 1, 2, 3 per T = 16 frames): GID's data is oscillatory natural motion whose
    spectrum sits at a few frequencies, and loop guidance can only select loops the prior can make. With 2
    cycles per T the sway repeats every T / 2 = 8 frames (a loop of L = 8 exists in the prior); with 1 or 3
    it does not (frame 8 is half a cycle on), so a third of the prior's samples loop at L = 8 and guidance has
    to pick that mode, without shrinking the motion, for the seam to close. Every sample loops at L = T.
    Returns (spectra [N, K, 2, H, W], pictures [N, 3, H, W]).
    """
    from imagedynamics.ops.procedural import smooth_noise
    from imagedynamics.ops.spectral import motion_to_spectrum

    T, K, H, W = config.num_frames, config.num_frequencies, config.height, config.width
    t = torch.arange(T, dtype=torch.float32).view(T, 1, 1, 1)
    spectra, pictures = [], []
    for _ in range(count):
        amplitude_field = 2.0 * smooth_noise(2, H, W, H / 5, generator)[None]
        if cycles is None:
            f = 0.4 + 2.2 * torch.rand(1, generator=generator).item()
        else:
            f = float(cycles[int(torch.randint(0, len(cycles), (1,), generator=generator))])
        phase = 2 * math.pi * torch.rand(2, generator=generator).view(1, 2, 1, 1)
        motion = amplitude_field * torch.sin(2 * math.pi * f * t / T + phase)
        spectra.append(motion_to_spectrum(motion - motion[:1], K))
        pictures.append((amplitude_field.abs().mean(1, keepdim=True).expand(1, 3, H, W) / 4).clamp(0, 1)[0])
    return torch.stack(spectra), torch.stack(pictures)


def train_oscillation_gid(width: int = 32, height: int = 20, cycles=LOOP_CYCLES, count: int = 48,
                          vae_steps: int = 200, unet_steps: int = 300, joint_steps: int = 300):
    """A tiny GID prior (32 x 20, T = 16, K = 4) trained for a few seconds on synthetic sway (fixed steps).

    ``cycles``: see :func:`oscillation_spectra` (default: 1, 2 or 3 cycles per T; None = the older prior of
    0.4-2.6 cycles). Training: the VAE (``vae_steps``), then the U-Net on single slices (stage 1,
    ``unet_steps``) and on whole volumes with the frequency attention (stage 2, ``joint_steps``; the older
    prior had none). Stage 2 is what lets loop guidance select the loop-compatible mode: with slices denoised
    independently, pulling the odd frequencies (those that break a loop of T / 2) to zero cannot make the even
    one grow, and the guided motion just shrinks (measured: 0.24 of the unguided amplitude at L = T / 2). Returns (model in eval mode, one conditioning picture [1, 3, H, W], the training
    spectra, the first 30 and last 30 denoising losses' sums).
    """
    from imagedynamics.models.gid import DenoisingLoss, GIDConfig, build_gid, vae_loss
    from imagedynamics.ops.spectral import frequency_stats, normalize_spectrum

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    cfg = GIDConfig.preset("tiny", width=width, height=height)
    spectra, pictures = oscillation_spectra(count, cfg, g, cycles)
    stats = frequency_stats(spectra)
    k = cfg.num_frequencies
    slices = torch.stack([normalize_spectrum(s, stats) for s in spectra]).reshape(-1, 4, cfg.height, cfg.width)
    model = build_gid(cfg, stats=stats)
    optimizer = torch.optim.AdamW(model.vae.parameters(), 2e-3, weight_decay=0)
    for _ in range(vae_steps):
        loss, _ = vae_loss(model.vae, slices[torch.randint(0, len(slices), (8,), generator=g)])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.vae.requires_grad_(False).eval()
    with torch.no_grad():
        cfg.latent_scale = 1.0 / model.vae.encode(slices[:64]).latent_dist.sample().std().item()
    objective = DenoisingLoss(model.vae, cfg, coordinate=False)
    optimizer = torch.optim.AdamW(model.unet.parameters(), 2e-3, weight_decay=0)
    losses = []
    for _ in range(unet_steps):
        index = torch.randint(0, len(slices), (8,), generator=g)
        loss, _ = objective(model.unet, (pictures[index // k], slices[index], index % k))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    volumes = slices.reshape(len(spectra), k, *slices.shape[1:])
    joint = DenoisingLoss(model.vae, cfg, coordinate=True)
    for _ in range(joint_steps):
        index = torch.randint(0, len(volumes), (4,), generator=g)
        loss, _ = joint(model.unet, (pictures[index], volumes[index]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval().requires_grad_(False)
    return model, pictures[:1], spectra, (sum(losses[:30]), sum(losses[-30:]))


def gid_loop(coeffs: torch.Tensor, period: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The played loop of a sampled spectrum [K, 2, H, W]: (frames 0 .. L - 1 [L, 2, H, W], frames L, L + 1
    [2, 2, H, W])."""
    from imagedynamics.ops.spectral import spectrum_to_motion

    length = int(length or period)
    motion = spectrum_to_motion(coeffs, period, times=torch.arange(length + 2, dtype=torch.float64))
    return motion[:length], motion[length:]


def loop_and_frames(loop: torch.Tensor, after: torch.Tensor, picture: torch.Tensor
                    ) -> tuple[dict[str, float], dict[str, float]]:
    """Measures of a loop [L, 2, H, W] with its next two frames [2, 2, H, W] on the motion and on the frames
    rendered from it (``picture`` [1, 3, H, W])."""
    frames = render(picture, torch.cat([loop, after]))
    length = loop.shape[0]
    return measures(loop, after), measures(frames[:length], frames[length:])


def textured_picture(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth, fully textured picture [1, 3, H, W] in [0, 1] to render motions on (every pixel's motion shows)."""
    from imagedynamics.ops.procedural import smooth_noise

    g = torch.Generator().manual_seed(seed)
    return (0.5 + 0.5 * smooth_noise(3, height, width, max(2.0, height / 8), g)).clamp(0, 1)[None]


def render(picture: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """Frames [T, 3, H, W] of ``picture`` [1, 3, H, W] moved by ``displacement`` [T, 2, H, W] px (forward
    softmax splatting with the pack's renderer, holes filled)."""
    from imagedynamics.ops.render import motion_magnitude_metric, render_frames

    metric = motion_magnitude_metric(displacement.float())
    frames, _ = render_frames(picture.float(), displacement.float(), metric)
    return frames


# ============================================================================================ LVMM


def write_sway_clips(folder, pictures=("astronaut", "chelsea", "coffee"), periods=(6, 10), frames: int = 40,
                     size: int = 64, seed: int = 0) -> list:
    """Write oscillating clips for a tiny LVMM loop prior: each scikit-image picture (resized to size x size)
    backward-warped by a smooth sway, flow_t(p) = A(p) sin(2 pi t / P + phi) (A a smooth random field, ~2.5 px
    std; phi random per axis), once per period P in ``periods`` video frames. Lossless FFV1 .avi files in
    ``folder``; returns their paths.

    Why: the LVMM trainer keeps every 2nd frame (the tiny preset's ``frame_stride``) and trains on trajectories
    of K + 1 = 5 kept frames; a period of 6 video frames is 3 kept frames, so those trajectories loop at L = 3
    (the loop the LVMM test asks for) and the 10-frame ones do not: the same picture with a loop-compatible and
    an incompatible mode, as for the GID prior. (bench/RESULTS.md: with a few hundred denoiser steps the tiny
    LVMM does not learn this mixture well enough for guidance to select it.)
    """
    import pathlib

    import cv2
    import numpy as np
    from media import picture

    from imagedynamics.ops.procedural import smooth_noise
    from imagedynamics.ops.warp import backward_warp

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32).view(frames, 1, 1, 1)
    paths = []
    for name in pictures:
        image = torch.nn.functional.interpolate(picture(name), size=(size, size), mode="area")
        for period in periods:
            amplitude_field = 2.5 * smooth_noise(2, size, size, size / 5, g)[None]
            phase = 2 * math.pi * torch.rand(2, generator=g).view(1, 2, 1, 1)
            flow = amplitude_field * torch.sin(2 * math.pi * t / period + phase)
            clip = backward_warp(image.expand(frames, -1, -1, -1), flow, padding_mode="reflection").clamp(0, 1)
            path = folder / f"{name}_p{period}.avi"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 30, (size, size))
            for frame in clip:
                rgb = (frame.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            writer.release()
            paths.append(path)
    return paths
