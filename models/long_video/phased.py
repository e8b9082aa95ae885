"""Phased inference with a shared noise reschedule (Controllable Longer Image Animation, Eqs. 9-12).

A long video is K segments of L frames (disjoint windows, or windows sharing O frames, see ``seams``).
With T denoising steps (step indices 0 .. T-1) and M = ceil(gamma T):

1. Segment 0 is fully denoised from its initial noise. Its state z_M (after M steps, the input of step M)
   and the scheduler's state at that point are kept (Eq. 9: z^1_{1:M} is shared by every segment).
2. A noise bank holds, for every late level s = M .. T-1, a prior window n(t_s) (Eq. 10) and serves each
   later segment k = 1 .. K-1 its rescheduled noise n~_k(t_s) = shuffled n(t_s) + omega eps (Eqs. 11-12;
   see ``noise_bank`` for the shuffle).
3. Every later segment restarts from z_M and runs only steps M .. T-1 itself (Eq. 9: z^k_{M+1:T}).

Where the rescheduled noise enters the update (the paper leaves it open), as decided here:

* **Restart (all samplers).** With eps_M = the denoiser's noise estimate at (z_M, t_M) -- the output of
  segment 0's call at step M, reused at no cost -- and x_t = a_t x0 + s_t eps (``schedulers.coefficients``),
  segment k starts from

      z^k_M = z_M + s_M (n~_k(t_M) - eps_M)  =  a_M x0_M + s_M n~_k(t_M),

  i.e. the shared x0 estimate of z_M re-noised with the bank noise instead of segment 0's own noise. For a
  deterministic sampler (DDIM with eta = 0, Euler, DPM-Solver++) this is the only place the segments diverge;
  the contours, which live in x0_M, are shared.
* **Stochastic samplers** (DDIM with eta > 0, DDPM, Euler ancestral, SDE solvers) also take the variance noise
  of every later step from the bank: step s (s = M .. T-2) of segment k adds n~_k(t_{s+1}), the bank noise of
  the level that step lands on. The last step (s = T-1) lands on t = 0, where DDPM and DDIM add no noise; it
  gets a seeded standard normal.
* **Noise prior** (``RescheduleConfig.noise_prior``):
    - ``"image"`` (the paper, Eq. 10): n(t_s) = eps_theta(a_s I + s_s e_s, t_s, c), the denoiser's noise
      estimate on the noised image latent I, with e_s a seeded standard normal drawn per level. I is
      ``image_latent`` broadcast to a segment's shape (e.g. a still [B, C, 1, h, w]); when None, segment 0's
      final latent. Costs one denoiser call per late level (T - M), batch-shaped like one segment.
    - ``"trajectory"``: n(t_s) = segment 0's own noise estimates at its late steps (no extra call).
    - ``"none"``: n = 0, so n~ = omega eps.
  One prior window is shared by all later segments (computing one per segment would double the cost of the
  late steps); the shuffle and the omega noise make the segments differ.

Degenerate cases (exact, bit for bit, tested):

* gamma = 1 (M = T): the later segments are copies of segment 0 (the paper's remark under Fig. 8).
* omega = 0, shuffle ``"none"``, noise_prior ``"trajectory"``: n~_k(t_M) = eps_M, so z^k_M = z_M and, for a
  deterministic sampler, every segment is a copy of segment 0. (Stochastic samplers still differ: their
  variance noise is segment 0's noise estimate at the next level, not segment 0's variance noise.)
* omega = 0, shuffle ``"none"``, any prior: all later segments receive the same bank noise and are copies of
  each other (deterministic or stochastic sampler); with the ``"image"`` or ``"none"`` prior they differ from
  segment 0.
* With omega > 0 (or a frame shuffle) the later segments differ from each other and from segment 0.

Cost (denoiser calls, what ``count_denoiser_calls`` returns; a classifier-free-guidance denoiser that runs
the model twice per call doubles it):

    calls = T + (K - 1) (T - M) + P,   M = ceil(gamma T),
    P = T - M for the "image" prior when K > 1, else 0;

against K T for K independent segments. T = 25, gamma = 0.8, K = 5: 25 + 4 * 5 + 5 = 50 calls instead of
125 (0.4x).

Memory is flat in K: between segments the sampler keeps z_M, eps_M, the scheduler snapshot at step M, the
T - M prior windows, and the O tail frames of the seam joiner; each segment is emitted and forgotten.

Layout: a segment is ``latent_shape`` with its frames along ``frame_dim`` (default 2: [B, C, L, h, w], the
layout of ComfyUI's video latents and diffusers' 3D U-Nets; 1 for SVD's [B, L, C, h, w]; 0 for a batch of
frames [L, C, h, w]).

The denoiser is ``denoiser(x, t, cond) -> model_output``: x is ``scheduler.scale_model_input`` of a state
shaped ``latent_shape``, t the scheduler's timestep (0-d tensor), cond passed through unchanged; the output
is in the scheduler's ``prediction_type``.

Example:
    >>> import torch
    >>> from diffusers import DDIMScheduler
    >>> config = RescheduleConfig(gamma=0.8, omega=0.2, num_segments=3, seed=0)
    >>> denoiser = lambda x, t, cond: 0.1 * x
    >>> video = phased_sample(denoiser, DDIMScheduler(), (1, 2, 4, 3, 3), 10, config=config)
    >>> video.shape
    torch.Size([1, 2, 12, 3, 3])
    >>> count_denoiser_calls(10, 0.8, 3)
    16
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from ...ops.progress import ProgressFn, report
from .noise_bank import SHUFFLE_MODES, NoiseBank, gaussian, seeded_generator
from .schedulers import coefficients, resolve_scheduler, scale_input, step_with_noise, to_eps
from .seams import SeamJoiner, long_video_length, segments_for_frames

NOISE_PRIORS = ("image", "trajectory", "none")
Denoiser = Callable[[torch.Tensor, torch.Tensor, object], torch.Tensor]


@dataclass(frozen=True)
class RescheduleConfig:
    """Settings of the long-video procedure.

    Attributes:
        gamma: share of the steps done once for all segments; M = ceil(gamma T). In [0, 1]; paper: 0.8.
        omega: weight of the fresh noise in n~ = n + omega eps (Eq. 11), >= 0; paper: 0.2.
        num_segments: K. Give this or ``total_frames``.
        total_frames: length of the long video; K = the fewest segments that cover it, the excess is cut.
        segment_length: L; None = read from ``latent_shape``; when given it must agree with it.
        overlap: O frames shared by consecutive segments (0 <= O < L); see ``seams``.
        crossfade: blend overlaps linearly (True) or keep the earlier segment's frames (False).
        shuffle: ``"frame"`` (paper, Eq. 12) or ``"none"``; see ``noise_bank``.
        noise_prior: ``"image"`` (paper, Eq. 10), ``"trajectory"`` or ``"none"``; see the module docstring.
        seed: all noise (initial, variance, prior, bank) derives from it.
    """

    gamma: float = 0.8
    omega: float = 0.2
    num_segments: int | None = None
    total_frames: int | None = None
    segment_length: int | None = None
    overlap: int = 0
    crossfade: bool = True
    shuffle: str = "frame"
    noise_prior: str = "image"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.omega < 0:
            raise ValueError(f"omega must be >= 0, got {self.omega}")
        if self.num_segments is not None and self.total_frames is not None:
            raise ValueError("give num_segments or total_frames, not both")
        if self.num_segments is not None and self.num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {self.num_segments}")
        if self.total_frames is not None and self.total_frames < 1:
            raise ValueError(f"total_frames must be >= 1, got {self.total_frames}")
        if self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")
        if self.shuffle not in SHUFFLE_MODES:
            raise ValueError(f"shuffle must be one of {SHUFFLE_MODES}, got {self.shuffle!r}")
        if self.noise_prior not in NOISE_PRIORS:
            raise ValueError(f"noise_prior must be one of {NOISE_PRIORS}, got {self.noise_prior!r}")

    def resolve_num_segments(self, segment_length: int) -> int:
        """K for segments of ``segment_length`` frames."""
        if self.num_segments is not None:
            return self.num_segments
        if self.total_frames is None:
            raise ValueError("RescheduleConfig needs num_segments or total_frames")
        return segments_for_frames(self.total_frames, segment_length, self.overlap)

    def resolve_length(self, segment_length: int) -> int:
        """Frames of the long video for segments of ``segment_length``: ``total_frames``, or K L - (K - 1) O.

        Example:
            >>> RescheduleConfig(num_segments=3, overlap=1).resolve_length(4), RescheduleConfig(total_frames=7).resolve_length(4)
            (10, 7)
        """
        if self.total_frames is not None:
            return self.total_frames
        return long_video_length(self.resolve_num_segments(segment_length), segment_length, self.overlap)


@dataclass
class SegmentOutput:
    """One emitted piece of the long video.

    Attributes:
        index: segment number k (0 = the fully denoised segment).
        latent: the frames this segment adds to the long video, overlaps already joined; shaped like a segment
            except along the frame dimension (L frames without overlap).
        start_frame: index of ``latent``'s first frame in the long video.
        num_segments: K.
    """

    index: int
    latent: torch.Tensor
    start_frame: int
    num_segments: int


def restart_step(num_inference_steps: int, gamma: float) -> int:
    """M = ceil(gamma T): the number of steps shared by all segments (0 <= M <= T).

    Example:
        >>> restart_step(25, 0.8), restart_step(25, 1.0), restart_step(10, 0.75)
        (20, 25, 8)
    """
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    return min(num_inference_steps, max(0, math.ceil(gamma * num_inference_steps - 1e-9)))


def count_denoiser_calls(num_inference_steps: int, gamma: float, num_segments: int,
                         noise_prior: bool | str = True) -> int:
    """Denoiser evaluations of ``phased_sample``: T + (K - 1)(T - M) + P.

    M = ceil(gamma T); P = T - M (one prior call per late level) when ``noise_prior`` is True or ``"image"``
    and K > 1, else 0 (``False``, ``"trajectory"``, ``"none"``). ``independent_sample`` makes K T calls.

    Example:
        >>> count_denoiser_calls(25, 0.8, 5), count_denoiser_calls(25, 0.8, 5, noise_prior=False)
        (50, 45)
        >>> count_denoiser_calls(25, 1.0, 5), count_denoiser_calls(25, 0.8, 1)
        (25, 25)
    """
    if num_segments < 1:
        raise ValueError(f"num_segments must be >= 1, got {num_segments}")
    if isinstance(noise_prior, str):
        if noise_prior not in NOISE_PRIORS:
            raise ValueError(f"noise_prior must be a bool or one of {NOISE_PRIORS}, got {noise_prior!r}")
        noise_prior = noise_prior == "image"
    t = num_inference_steps
    late = t - restart_step(t, gamma)
    prior = late if (noise_prior and num_segments > 1) else 0
    return t + (num_segments - 1) * late + prior


class _Run:
    """Shared machinery of one sampling run: the denoiser call, counting and progress (which may raise to stop)."""

    def __init__(self, denoiser: Denoiser, cond, total_calls: int, progress: ProgressFn | None) -> None:
        self.denoiser = denoiser
        self.cond = cond
        self.total = total_calls
        self.progress = progress
        self.calls = 0
        report(progress, 0, total_calls)

    def __call__(self, scheduler, sample: torch.Tensor, index: int) -> torch.Tensor:
        with torch.no_grad():
            out = self.denoiser(scale_input(scheduler, sample, index), scheduler.timesteps[index], self.cond)
        if out.shape != sample.shape:
            raise ValueError(f"the denoiser returned {tuple(out.shape)} for an input of {tuple(sample.shape)}")
        self.calls += 1
        report(self.progress, self.calls, self.total)
        return out


def restart_from(z_m: torch.Tensor, eps_m: torch.Tensor, noise: torch.Tensor, noise_scale: float) -> torch.Tensor:
    """The restart state of a later segment: z_M + s_M (n~ - eps_M) = a_M x0_M + s_M n~.

    Args:
        z_m: the shared state after M steps (any shape).
        eps_m: the denoiser's noise estimate at (z_M, t_M), same shape.
        noise: the segment's bank noise n~(t_M), same shape.
        noise_scale: s_M, the noise coefficient of the state at t_M (VP: sqrt(1 - alpha_bar); k-diffusion /
            ComfyUI sigma space: sigma, with eps_M = (z_M - denoised_M) / sigma).

    Exact identity when ``noise`` equals ``eps_m`` (the difference is zero bit for bit).

    Example:
        >>> import torch
        >>> z, e = torch.randn(3), torch.randn(3)
        >>> bool(torch.equal(restart_from(z, e, e, 0.7), z))
        True
    """
    return z_m + noise_scale * (noise - eps_m)


def _check_layout(latent_shape: Sequence[int], frame_dim: int, config: RescheduleConfig) -> tuple[tuple, int, int]:
    shape = tuple(int(s) for s in latent_shape)
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise ValueError(f"latent_shape must have >= 2 positive dimensions, got {shape}")
    if not -len(shape) <= frame_dim < len(shape):
        raise ValueError(f"frame_dim={frame_dim} is out of range for latent_shape {shape}")
    dim = frame_dim % len(shape)
    frames = shape[dim]
    if config.segment_length is not None and config.segment_length != frames:
        raise ValueError(f"segment_length={config.segment_length} but latent_shape has {frames} frames "
                         f"along frame_dim={frame_dim}")
    if config.overlap >= frames:
        raise ValueError(f"overlap ({config.overlap}) must be smaller than the segment length ({frames})")
    return shape, dim, frames


def _step(scheduler, run: _Run, z: torch.Tensor, index: int, noise: torch.Tensor, step_kwargs, seed, segment):
    out = run(scheduler, z, index)
    with torch.no_grad():
        z_next = step_with_noise(scheduler, out, index, z, noise, step_kwargs,
                                 fallback=seeded_generator(seed, "fallback", segment, index))
    return out, z_next


def iter_phased_segments(denoiser: Denoiser, scheduler, latent_shape: Sequence[int], num_inference_steps: int,
                         cond=None, config: RescheduleConfig | None = None, *,
                         image_latent: torch.Tensor | None = None, frame_dim: int = 2,
                         step_kwargs: dict | None = None, device: torch.device | str | None = None,
                         dtype: torch.dtype = torch.float32,
                         progress: ProgressFn | None = None) -> Iterator[SegmentOutput]:
    """Generate the long video segment by segment (a generator; see the module docstring).

    Args:
        denoiser: ``denoiser(x, t, cond) -> model_output`` (x shaped ``latent_shape``).
        scheduler: a diffusers scheduler (deep-copied, never mutated) or a zero-argument factory.
        latent_shape: shape of one segment's latent, frames along ``frame_dim``.
        num_inference_steps: T (``len(scheduler.timesteps)`` after ``set_timesteps(T)`` is what counts).
        cond: passed unchanged to every denoiser call.
        config: ``RescheduleConfig``; needs ``num_segments`` or ``total_frames``.
        image_latent: the image for the ``"image"`` prior, broadcastable to ``latent_shape``
            (e.g. [B, C, 1, h, w]); None = segment 0's result.
        frame_dim: frame dimension of ``latent_shape``.
        step_kwargs: extra ``scheduler.step`` arguments, e.g. ``{"eta": 0.5}`` for a stochastic DDIM.
        device, dtype: of the latents.
        progress: ``progress(done_calls, total_calls)`` before the first and after every denoiser call
            (``ops/progress.py``); what it raises stops the run at once (no segment after it is produced).

    Yields:
        ``SegmentOutput`` for k = 0 .. K-1; ``torch.cat`` of the latents along ``frame_dim`` is the long video.
        Nothing is kept after a segment is yielded.
    """
    config = RescheduleConfig() if config is None else config
    shape, dim, frames = _check_layout(latent_shape, frame_dim, config)
    k_total = config.resolve_num_segments(frames)
    template = resolve_scheduler(scheduler, num_inference_steps, device)
    t_steps = len(template.timesteps)
    m = restart_step(t_steps, config.gamma)
    late = t_steps - m
    if image_latent is not None:
        try:
            fits = torch.broadcast_shapes(tuple(image_latent.shape), shape) == torch.Size(shape)
        except RuntimeError:
            fits = False
        if not fits or image_latent.ndim != len(shape):
            raise ValueError(f"image_latent {tuple(image_latent.shape)} does not broadcast to the segment {shape}")
    prior_kind = config.noise_prior
    run = _Run(denoiser, cond, count_denoiser_calls(t_steps, config.gamma, k_total, prior_kind), progress)
    joiner = SeamJoiner(config.overlap, config.crossfade, dim, config.total_frames)
    seed = config.seed
    need_later = k_total > 1 and late > 0

    # Segment 0: full denoising, keeping the state at step M.
    sched = copy.deepcopy(template)
    z = gaussian(shape, (seed, "init", 0), device, dtype) * float(sched.init_noise_sigma)
    z_m = eps_m = snapshot = None
    trajectory: list[torch.Tensor] = []
    for i in range(t_steps):
        if i == m and need_later:
            snapshot, z_m = copy.deepcopy(sched), z
        z_in = z
        out, z = _step(sched, run, z_in, i, gaussian(shape, (seed, "var", 0, i), device, dtype), step_kwargs, seed, 0)
        if need_later and i >= m:
            eps = to_eps(template, out, z_in, i)
            if i == m:
                eps_m = eps
            if prior_kind == "trajectory":
                trajectory.append(eps)
            del eps
        del out, z_in
    del sched
    final = z
    del z

    if not need_later:
        # K = 1, or gamma = 1 (M = T): the later segments are copies of segment 0.
        for k in range(k_total):
            yield _emit(joiner, final.clone() if k_total > 1 else final, k, k_total)
        return

    # The noise bank (Eqs. 10-12), built before segment 0 is handed out (the consumer may then modify it).
    if prior_kind == "image":
        image = final if image_latent is None else image_latent.to(device=final.device, dtype=final.dtype)
        image = image.expand(shape)
        priors = []
        for r in range(late):
            s = m + r
            noised = _noise_to(template, image, gaussian(shape, (seed, "prior", s), device, dtype), s)
            priors.append(to_eps(template, run(snapshot, noised, s), noised, s))
            del noised
        del image
        bank = NoiseBank(priors, k_total, config.omega, config.shuffle, seed, dim)
        del priors
    elif prior_kind == "trajectory":
        bank = NoiseBank(trajectory, k_total, config.omega, config.shuffle, seed, dim)
    else:
        bank = NoiseBank(None, k_total, config.omega, config.shuffle, seed, dim, shape=shape, device=z_m.device,
                         dtype=z_m.dtype, num_levels=late)
    del trajectory
    _, s_m = coefficients(template, m)
    yield SegmentOutput(0, joiner.push(final, False), 0, k_total)
    del final

    # Segments 1 .. K-1: restart from z_M with the bank noise, run steps M .. T-1.
    for k in range(1, k_total):
        sched = copy.deepcopy(snapshot)
        z = restart_from(z_m, eps_m, bank.noise(k, 0), s_m)
        for i in range(m, t_steps):
            noise = bank.noise(k, i - m + 1) if i + 1 < t_steps else gaussian(shape, (seed, "var", k, i), device, dtype)
            _, z = _step(sched, run, z, i, noise, step_kwargs, seed, k)
            del noise
        del sched
        out = _emit(joiner, z, k, k_total)
        del z  # before handing the segment out: the consumer's work should not keep this latent alive
        yield out
        del out


def _emit(joiner: SeamJoiner, segment: torch.Tensor, k: int, k_total: int) -> SegmentOutput:
    """Segment k's frames joined onto the long video (the joiner holds back an overlap until the next segment)."""
    start = joiner.emitted
    return SegmentOutput(k, joiner.push(segment, k == k_total - 1), start, k_total)


def _noise_to(scheduler, x0: torch.Tensor, noise: torch.Tensor, index: int) -> torch.Tensor:
    a, s = coefficients(scheduler, index)
    return a * x0 + s * noise


def iter_independent_segments(denoiser: Denoiser, scheduler, latent_shape: Sequence[int], num_inference_steps: int,
                              cond=None, config: RescheduleConfig | None = None, *, frame_dim: int = 2,
                              step_kwargs: dict | None = None, device: torch.device | str | None = None,
                              dtype: torch.dtype = torch.float32,
                              progress: ProgressFn | None = None) -> Iterator[SegmentOutput]:
    """The baseline: K segments, each fully denoised from its own noise (K T denoiser calls).

    Same arguments as ``iter_phased_segments`` (gamma, omega, shuffle and noise_prior are ignored; overlap,
    crossfade, seed and the segment count are used). Segment 0 is identical to the phased sampler's segment 0.
    """
    config = RescheduleConfig() if config is None else config
    shape, dim, frames = _check_layout(latent_shape, frame_dim, config)
    k_total = config.resolve_num_segments(frames)
    template = resolve_scheduler(scheduler, num_inference_steps, device)
    t_steps = len(template.timesteps)
    run = _Run(denoiser, cond, k_total * t_steps, progress)
    joiner = SeamJoiner(config.overlap, config.crossfade, dim, config.total_frames)
    seed = config.seed
    for k in range(k_total):
        sched = copy.deepcopy(template)
        z = gaussian(shape, (seed, "init", k), device, dtype) * float(sched.init_noise_sigma)
        for i in range(t_steps):
            _, z = _step(sched, run, z, i, gaussian(shape, (seed, "var", k, i), device, dtype), step_kwargs, seed, k)
        del sched
        out = _emit(joiner, z, k, k_total)
        del z  # before handing the segment out: the consumer's work should not keep this latent alive
        yield out
        del out


def _collect(segments: Iterator[SegmentOutput], on_segment, frame_dim: int) -> torch.Tensor | None:
    if on_segment is not None:
        for segment in segments:
            on_segment(segment)
        return None
    chunks = [segment.latent for segment in segments]
    return torch.cat(chunks, dim=frame_dim % chunks[0].ndim)


def phased_sample(denoiser: Denoiser, scheduler, latent_shape: Sequence[int], num_inference_steps: int,
                  cond=None, config: RescheduleConfig | None = None, *, image_latent: torch.Tensor | None = None,
                  frame_dim: int = 2, step_kwargs: dict | None = None, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32,
                  on_segment: Callable[[SegmentOutput], None] | None = None,
                  progress: ProgressFn | None = None) -> torch.Tensor | None:
    """Run ``iter_phased_segments`` to the end.

    Returns:
        the long latent (segments concatenated along ``frame_dim``) when ``on_segment`` is None; otherwise
        ``on_segment(SegmentOutput)`` receives each segment as soon as it is done (memory flat in K) and None
        is returned.
    """
    segments = iter_phased_segments(denoiser, scheduler, latent_shape, num_inference_steps, cond, config,
                                    image_latent=image_latent, frame_dim=frame_dim, step_kwargs=step_kwargs,
                                    device=device, dtype=dtype, progress=progress)
    return _collect(segments, on_segment, frame_dim)


def independent_sample(denoiser: Denoiser, scheduler, latent_shape: Sequence[int], num_inference_steps: int,
                       cond=None, config: RescheduleConfig | None = None, *, frame_dim: int = 2,
                       step_kwargs: dict | None = None, device: torch.device | str | None = None,
                       dtype: torch.dtype = torch.float32,
                       on_segment: Callable[[SegmentOutput], None] | None = None,
                       progress: ProgressFn | None = None) -> torch.Tensor | None:
    """Run ``iter_independent_segments`` to the end (same return convention as ``phased_sample``)."""
    segments = iter_independent_segments(denoiser, scheduler, latent_shape, num_inference_steps, cond, config,
                                         frame_dim=frame_dim, step_kwargs=step_kwargs, device=device, dtype=dtype,
                                         progress=progress)
    return _collect(segments, on_segment, frame_dim)
