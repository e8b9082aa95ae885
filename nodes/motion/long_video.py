"""Long videos from short-clip models: phased inference with a shared noise reschedule, in ComfyUI.

Two nodes (the method and its decisions are in ``models/long_video``, Controllable Longer Image Animation,
Eqs. 9-12):

* ``LongVideoReschedule`` runs ComfyUI's native video models (LTX-Video, Wan, Hunyuan, Mochi, Cosmos, SVD,
  AnimateDiff-style image batches ...) with ComfyUI's own samplers and returns ONE long LATENT.
* ``LongVideoSchedule`` outputs a ``DYN_LONG_SCHEDULE`` (a ``models.long_video.RescheduleConfig``) for the
  pack's own diffusion samplers; ``LongVideoReschedule`` also accepts it in place of its widgets.

How ``LongVideoReschedule`` drives ComfyUI (T = steps, M = ceil(gamma T), sigmas = the KSampler's schedule):

1. Segment 0 is sampled exactly as ``KSampler`` samples it (same noise from ``seed``, same sigmas, same sampler
   and guider; ``comfy.sample.sample_custom``). A thin wrapper around the denoiser (the sampler's ``model``
   argument) keeps the denoised estimate x0_M of the first evaluation at sigma_M, and for the "trajectory"
   prior the noise estimates of the later levels. Nothing else is kept from segment 0 but its result.
2. The noise bank (``models.long_video.NoiseBank``): with the "image" prior, one denoiser evaluation per late
   level s = M .. T-1 on the noised image latent x_s = a_s I + s_s e_s (I = ``image_latent`` or segment 0's
   result, e_s seeded), prior n(t_s) = (x_s - a_s D(x_s, sigma_s)) / s_s; each evaluation is a one-step call
   of ComfyUI's guider with a one-evaluation sampler (CFG, conditioning and model patches as in sampling).
3. Segments k = 1 .. K-1 run the late sigmas sigma_M .. sigma_T like ``KSamplerAdvanced`` with
   ``start_at_step = M``: the latent is x0_M (shared contours) and the added noise is the bank's n~_k(t_M),
   so ComfyUI's own ``noise_scaling`` starts them at a_M x0_M + s_M n~_k(t_M), the restart of
   ``models.long_video.restart_from`` (x = a x0 + s eps with (a, s) read from the model's ``noise_scaling``:
   a = 1, s = sigma for eps / v models; a = 1 - sigma, s = sigma for flow models). Stochastic samplers
   (ancestral, SDE, ddpm, lcm ...) get a ``noise_sampler`` that hands them the bank noise of the level a step
   lands on; draws that land on no schedule level (SDE midpoints, the last step) are seeded normals.
4. Segments are joined (optional overlap with a linear cross-fade, ``models.long_video.seams``) into a
   preallocated long latent, each segment written and dropped at once: the working memory is one segment's
   x0_M, T - M prior windows and the overlap tail, whatever K is (the output itself grows with K).

Frame axis: 5-D latents [B, C, T, H, W] (LTX-Video, Wan, Hunyuan, Mochi, Cosmos) join along dim 2; 4-D latents
[B, C, H, W] are treated as a batch of frames (SVD, AnimateDiff, image models) and join along dim 0. Image
latents fed to a 3-D video model are first given a time axis by ComfyUI (``fix_empty_latent_channels``).

Cost in denoiser evaluations (a CFG evaluation runs the model on the cond / uncond batch once): with the
"image" prior T + (K - 1)(T - M) + (T - M); with the others T + (K - 1)(T - M); K T for K ``KSampler`` runs.
(For samplers with one evaluation per step; heun, dpm_2 and the like cost more per step in every segment,
the prior stays one evaluation per level.)

``DYN_LONG_SCHEDULE`` contract (for the pack's sampler nodes): an optional input named ``long_schedule`` carries
a frozen ``models.long_video.RescheduleConfig``. The sampler sets the seed itself
(``dataclasses.replace(schedule, seed=seed)``) and runs ``models.long_video.iter_phased_segments`` (or
``phased_sample``) with its own denoiser, diffusers scheduler, segment shape (its native clip: L frames along
its ``frame_dim``), image latent and ``Progress``; ``num_segments`` / ``total_frames`` / ``overlap`` count the
sampler's own frames. Its output is its usual type, made of the emitted segments joined along the frame axis.
"""
from __future__ import annotations

import dataclasses
import inspect
import math

import comfy.samplers
import torch
from comfy_api.latest import io

from ...models.long_video import (
    NoiseBank,
    RescheduleConfig,
    SeamJoiner,
    count_denoiser_calls,
    gaussian,
    long_video_length,
    restart_step,
)
from ..common import CATEGORY, DynLongSchedule, NodeInputError, Progress, check_finite, checked_inputs

NODE_RESCHEDULE = "LongVideoReschedule"
NODE_SCHEDULE = "LongVideoSchedule"
NOISE_PRIORS = ["image", "trajectory", "none"]
SHUFFLES = ["frame", "none"]
# Their step grid is their own (DPM-Solver's time discretisation), not the scheduler's sigmas: no step M.
UNSUPPORTED_SAMPLERS = ("dpm_fast", "dpm_adaptive")
SEED_MAX = 0xFFFFFFFFFFFFFFFF


def _schedule_inputs() -> list:
    """The widgets shared by both nodes (the schedule's settings)."""
    return [
        io.Float.Input("gamma", default=0.8, min=0.0, max=1.0, step=0.01,
                       tooltip="Share of the denoising steps done once for all segments: M = ceil(gamma x steps). "
                       "1 = every segment is a copy of the first; lower = segments differ more (paper: 0.8)."),
        io.Float.Input("omega", default=0.2, min=0.0, max=4.0, step=0.01,
                       tooltip="Weight of fresh noise added to the shuffled noise prior (Eq. 11): 0 = segments "
                       "differ only through the shuffle; larger = more variety between segments (paper: 0.2)."),
        io.Int.Input("overlap", default=0, min=0, max=4096,
                     tooltip="Latent frames shared by consecutive segments (must be fewer than a segment has). "
                     "With crossfade, 2-4 remove the jump at the seams; 0 = segments simply follow each other."),
        io.Boolean.Input("crossfade", default=True,
                         tooltip="Blend the overlapping frames linearly (on) or keep the earlier segment's (off)."),
        io.Combo.Input("noise_prior", options=NOISE_PRIORS, default="image",
                       tooltip="Where the shared noise comes from: 'image' = the model's noise estimate on the "
                       "noised image latent (paper, Eq. 10; T - M extra evaluations); 'trajectory' = the first "
                       "segment's own noise estimates (free); 'none' = omega-scaled fresh noise only."),
        io.Combo.Input("shuffle", options=SHUFFLES, default="frame",
                       tooltip="'frame' shuffles the prior's frames across the long video (paper, Eq. 12); "
                       "'none' gives every segment the prior frames in order."),
    ]


class LongVideoReschedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_RESCHEDULE,
            display_name="Long Video Reschedule",
            category=f"{CATEGORY}/long video",
            description=(
                "Makes a video K times longer than the model's clip at a fraction of K clips' cost (Controllable "
                "Longer Image Animation): the first segment is sampled as KSampler samples it; the later segments "
                "share its first ceil(gamma x steps) steps and run only the remaining ones from there with "
                "shuffled, image-informed noise, so they keep the first segment's layout but move differently. "
                "Works with ComfyUI's video models and samplers; returns one long LATENT (segments joined along "
                "the time axis: dim 2 of 5-D video latents, the batch of 4-D latents) for VAE Decode."),
            inputs=[
                io.Model.Input("model", tooltip="The video model (e.g. from Load Diffusion Model)."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning, used for every segment."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning, used for every segment."),
                io.Latent.Input("latent", tooltip="ONE segment's latent (e.g. an empty video latent or an image-to-"
                                "video node's latent): its frames are the segment length L."),
                io.Int.Input("seed", default=0, min=0, max=SEED_MAX, control_after_generate=True,
                             tooltip="Seed of the first segment's noise (the same noise KSampler uses) and of the "
                             "noise bank."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Denoising steps T of every segment."),
                io.Float.Input("cfg", default=6.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale."),
                io.Combo.Input("sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS), default="euler",
                               tooltip="ComfyUI sampler (dpm_fast and dpm_adaptive cannot restart at a step)."),
                io.Combo.Input("scheduler", options=list(comfy.samplers.KSampler.SCHEDULERS), default="simple",
                               tooltip="ComfyUI noise schedule."),
                io.Int.Input("num_segments", default=5, min=1, max=1024,
                             tooltip="K, the number of segments; the long video has K L - (K - 1) overlap frames."),
                *_schedule_inputs(),
                io.Latent.Input("image_latent", optional=True,
                                tooltip="The still image's latent (e.g. VAE Encode of the start image) for the "
                                "'image' noise prior; a single frame is broadcast to all frames. Unconnected: "
                                "the first segment's result."),
                DynLongSchedule.Input("long_schedule", optional=True,
                                      tooltip="A Long Video Schedule; when connected its settings (segments or total "
                                      "frames, gamma, omega, overlap, crossfade, noise prior, shuffle) replace "
                                      "this node's widgets."),
            ],
            outputs=[io.Latent.Output("long_latent", display_name="long latent",
                                      tooltip="The long latent: all segments joined along the time axis.")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model, positive, negative, latent, seed, steps, cfg, sampler_name, scheduler, num_segments,
                gamma, omega, overlap, crossfade, noise_prior, shuffle, image_latent=None,
                long_schedule=None) -> io.NodeOutput:
        if long_schedule is not None:
            if not isinstance(long_schedule, RescheduleConfig):
                raise NodeInputError(NODE_RESCHEDULE, "long_schedule",
                                     "a DYN_LONG_SCHEDULE from Long Video Schedule", type(long_schedule).__name__)
            config = dataclasses.replace(long_schedule, seed=int(seed))
        else:
            config = make_config(NODE_RESCHEDULE, gamma=gamma, omega=omega, num_segments=num_segments,
                                 overlap=overlap, crossfade=crossfade, noise_prior=noise_prior, shuffle=shuffle,
                                 seed=seed)
        out = sample_long_video(model, positive, negative, latent, seed=int(seed), steps=int(steps), cfg=float(cfg),
                                sampler_name=sampler_name, scheduler=scheduler, config=config,
                                image_latent=image_latent)
        return io.NodeOutput(out)


class LongVideoSchedule(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=NODE_SCHEDULE,
            display_name="Long Video Schedule",
            category=f"{CATEGORY}/long video",
            description=(
                "Settings of the long-video procedure (phased inference with a shared noise reschedule) for the "
                "pack's own diffusion sampler (PredictLatentMotion, LVMM latent trajectories) and for Long Video "
                "Reschedule (Motion-I2V's stage 2 runs on ComfyUI's samplers, so it is made long by Long Video "
                "Reschedule itself). The sampler that takes it supplies the model, the steps and the seed."),
            inputs=[
                io.Int.Input("num_segments", default=5, min=1, max=1024,
                             tooltip="K, the number of segments (used when total_frames is 0)."),
                io.Int.Input("total_frames", default=0, min=0, max=1 << 20,
                             tooltip="Length of the long video in the sampler's frames (latent frames for Long "
                             "Video Reschedule); > 0 = as many segments as needed, the excess cut. 0 = use "
                             "num_segments."),
                *_schedule_inputs(),
            ],
            outputs=[DynLongSchedule.Output("long_schedule", display_name="long schedule",
                                            tooltip="A RescheduleConfig (models.long_video) for "
                                            "samplers with a 'long_schedule' input (the sampler adds its seed).")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, num_segments, total_frames, gamma, omega, overlap, crossfade, noise_prior,
                shuffle) -> io.NodeOutput:
        config = make_config(NODE_SCHEDULE, gamma=gamma, omega=omega, num_segments=num_segments,
                             total_frames=total_frames, overlap=overlap, crossfade=crossfade, noise_prior=noise_prior,
                             shuffle=shuffle, seed=0)
        return io.NodeOutput(config)


def make_config(node: str, *, gamma, omega, num_segments, overlap, crossfade, noise_prior, shuffle, seed,
                total_frames: int = 0) -> RescheduleConfig:
    """A ``RescheduleConfig`` from widget values (already held to the schema by ``checked_inputs``).

    ``total_frames`` > 0 sets the length, else ``num_segments`` does. ``RescheduleConfig`` checks the rest; its
    error is re-raised naming the node.
    """
    count = {"total_frames": int(total_frames)} if int(total_frames) > 0 else {"num_segments": int(num_segments)}
    try:
        return RescheduleConfig(gamma=float(gamma), omega=float(omega), overlap=int(overlap),
                                crossfade=bool(crossfade), shuffle=shuffle, noise_prior=noise_prior, seed=int(seed),
                                **count)
    except ValueError as error:
        raise ValueError(f"{node}: {error}") from error


# ----------------------------------------------------------------------------------------------- sampling


def frame_dim_of(samples: torch.Tensor) -> int:
    """The time axis of a latent: 2 for 5-D video latents [B, C, T, H, W], 0 for 4-D batches [B, C, H, W]."""
    return {5: 2, 4: 0}[samples.ndim]


def sample_long_video(model, positive, negative, latent: dict, *, seed: int, steps: int, cfg: float,
                      sampler_name: str, scheduler: str, config: RescheduleConfig,
                      image_latent: dict | None = None, node: str = NODE_RESCHEDULE) -> dict:
    """Phased sampling of a long latent with ComfyUI's samplers (see the module docstring).

    Args:
        model: a ComfyUI MODEL (``ModelPatcher``).
        positive, negative: CONDITIONING lists.
        latent: LATENT dict of one segment ({"samples": [B,C,L,H,W] or [L,C,H,W], optional "noise_mask",
            "batch_index"}).
        seed: seed of segment 0's noise (``comfy.sample.prepare_noise``, as KSampler).
        steps, cfg, sampler_name, scheduler: as KSampler.
        config: ``RescheduleConfig``; its ``seed`` seeds the noise bank.
        image_latent: optional LATENT of the still image for the "image" prior (broadcast to a segment).

    Returns:
        a LATENT dict whose "samples" hold the long latent (frames along ``frame_dim_of``).
    """
    import comfy.sample

    samples = _check_latent(latent, node, "latent")
    samples = comfy.sample.fix_empty_latent_channels(model, samples)
    if samples.ndim not in (4, 5):
        raise NodeInputError(node, "latent", "a 4-D latent batch [B,C,H,W] (frames = batch) or a 5-D video latent "
                             "[B,C,T,H,W]", f"a {samples.ndim}-D latent of shape {tuple(samples.shape)}")
    if sampler_name not in comfy.samplers.KSampler.SAMPLERS:
        raise NodeInputError(node, "sampler_name", "one of ComfyUI's samplers", repr(sampler_name))
    if scheduler not in comfy.samplers.KSampler.SCHEDULERS:
        raise NodeInputError(node, "scheduler", "one of ComfyUI's schedulers", repr(scheduler))
    frame_dim = frame_dim_of(samples)
    shape = tuple(samples.shape)
    frames = shape[frame_dim]
    if config.overlap >= frames:
        raise NodeInputError(node, "overlap", f"fewer frames than one segment has ({frames} latent frames)",
                             str(config.overlap))
    k_total = config.resolve_num_segments(frames)
    ksampler = comfy.samplers.KSampler(model, steps=steps, device=model.load_device, sampler=sampler_name,
                                       scheduler=scheduler, denoise=1.0, model_options=model.model_options)
    sigmas = ksampler.sigmas
    levels = [float(s) for s in sigmas.detach().float().cpu()]
    t_steps = len(levels) - 1
    m = restart_step(t_steps, config.gamma)
    late = t_steps - m
    need_later = k_total > 1 and late > 0
    if need_later and sampler_name in UNSUPPORTED_SAMPLERS:
        raise NodeInputError(node, "sampler_name", "a sampler that follows the scheduler's sigmas (not dpm_fast or "
                             "dpm_adaptive) when segments restart (gamma < 1, more than one segment)", sampler_name)
    image = None
    if need_later and config.noise_prior == "image" and image_latent is not None:
        image = _image_for_prior(model, image_latent, shape, node)
    noise_mask = latent.get("noise_mask")
    model_sampling = model.get_model_object("model_sampling")
    progress = _Progress(model, count_denoiser_calls(t_steps, config.gamma, k_total, config.noise_prior))
    bank_seed = int(config.seed)

    # Segment 0: KSampler's own sampling, observed at the late levels.
    capture = _Capture(levels, m, t_steps if config.noise_prior == "trajectory" else m + 1, model_sampling,
                       enabled=need_later)
    noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    final = comfy.sample.sample_custom(model, noise, cfg, _sampler(sampler_name, observe=capture), sigmas, positive,
                                       negative, samples, noise_mask=noise_mask, callback=progress.segment(0),
                                       disable_pbar=True, seed=seed)
    del noise
    check_finite(final, node, "model (the first segment's result)")

    total = long_video_length(k_total, frames, config.overlap)
    if config.total_frames is not None:
        total = min(total, config.total_frames)
    out_shape = list(final.shape)
    out_shape[frame_dim] = total
    output = torch.empty(out_shape, dtype=final.dtype, device=final.device)
    joiner = SeamJoiner(config.overlap, config.crossfade, frame_dim, config.total_frames)

    def emit(segment: torch.Tensor, last: bool) -> None:
        start = joiner.emitted
        chunk = joiner.push(segment, last)
        output.narrow(frame_dim, start, chunk.shape[frame_dim]).copy_(chunk)

    if not need_later:
        # K = 1, or gamma = 1 (M = T): the later segments are copies of segment 0.
        for k in range(k_total):
            emit(final, k == k_total - 1)
        return _latent_like(latent, output)

    if m not in capture.x0:
        raise RuntimeError(f"{node}: the sampler '{sampler_name}' never evaluated the model at the restart level "
                           f"sigma_M = {levels[m]:.4g} (step {m} of {t_steps}); pick another sampler")
    x0_m = capture.x0.pop(m)

    # The noise bank (Eqs. 10-12).
    if config.noise_prior == "image":
        priors = _image_priors(model, positive, negative, cfg, sigmas, levels, m, t_steps,
                               final if image is None else image, noise_mask, model_sampling, bank_seed, seed,
                               progress)
        bank = NoiseBank(priors, k_total, config.omega, config.shuffle, bank_seed, frame_dim)
        del priors
    elif config.noise_prior == "trajectory":
        missing = [s for s in range(m, t_steps) if s not in capture.eps]
        if missing:
            raise RuntimeError(f"{node}: the sampler '{sampler_name}' never evaluated the model at the levels "
                               f"{missing} of the late steps; use another sampler or noise_prior")
        bank = NoiseBank([capture.eps[s] for s in range(m, t_steps)], k_total, config.omega, config.shuffle,
                         bank_seed, frame_dim)
    else:
        bank = NoiseBank(None, k_total, config.omega, config.shuffle, bank_seed, frame_dim, shape=x0_m.shape,
                         device=x0_m.device, dtype=torch.float32, num_levels=late)
    capture.clear()
    del image
    emit(final, False)
    del final

    # Segments 1 .. K-1: the late sigmas from a_M x0_M + s_M n~_k(t_M), as KSamplerAdvanced from step M.
    x0_latent = model.model.process_latent_out(x0_m)
    del x0_m
    late_sigmas = sigmas[m:].clone()
    for k in range(1, k_total):
        noise_sampler = _BankNoise(bank, k, levels, m, t_steps, bank_seed)
        segment = comfy.sample.sample_custom(model, bank.noise(k, 0), cfg,
                                             _sampler(sampler_name, noise_sampler=noise_sampler), late_sigmas,
                                             positive, negative, x0_latent, noise_mask=noise_mask,
                                             callback=progress.segment(k), disable_pbar=True,
                                             seed=(seed + k) % (SEED_MAX + 1))
        check_finite(segment, node, f"model (segment {k + 1})")
        emit(segment, k == k_total - 1)
        del segment, noise_sampler
    return _latent_like(latent, output)


def _check_latent(latent, node: str, input_name: str) -> torch.Tensor:
    if not isinstance(latent, dict) or not isinstance(latent.get("samples"), torch.Tensor):
        raise NodeInputError(node, input_name, "a LATENT", type(latent).__name__)
    samples = latent["samples"]
    if getattr(samples, "is_nested", False):
        raise NodeInputError(node, input_name, "a single latent tensor", "a nested (multi-stream) latent")
    check_finite(samples, node, input_name)
    return samples


def _image_for_prior(model, image_latent, shape: tuple, node: str) -> torch.Tensor:
    import comfy.sample

    image = _check_latent(image_latent, node, "image_latent")
    image = comfy.sample.fix_empty_latent_channels(model, image)
    try:
        fits = image.ndim == len(shape) and torch.broadcast_shapes(tuple(image.shape), shape) == torch.Size(shape)
    except RuntimeError:
        fits = False
    if not fits:
        raise NodeInputError(node, "image_latent", f"a latent that broadcasts to one segment {list(shape)} (e.g. a "
                             "single frame of the same size and channels)", f"shape {list(image.shape)}")
    return image.expand(shape).contiguous()


def _latent_like(latent: dict, samples: torch.Tensor) -> dict:
    out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", "batch_index")}
    out["samples"] = samples
    return out


def _coefficients(model_sampling, sigma: float) -> tuple[float, float]:
    """(a, s) of the model's parametrisation x = a x0 + s eps at ``sigma``, read from its ``noise_scaling``."""
    sig = torch.tensor([sigma], dtype=torch.float32)
    s = float(model_sampling.noise_scaling(sig, torch.ones(1), torch.zeros(1)).reshape(-1)[0])
    a = float(model_sampling.noise_scaling(sig, torch.zeros(1), torch.ones(1)).reshape(-1)[0])
    return a, s


def _level(levels: list[float], value: float, start: int, stop: int) -> int | None:
    """The schedule index s in [start, stop) whose sigma equals ``value`` (None if there is none)."""
    for s in range(start, stop):
        if math.isclose(value, levels[s], rel_tol=1e-5, abs_tol=1e-7):
            return s
    return None


class _Capture:
    """Observes denoiser evaluations; keeps x0 at sigma_M and, for the trajectory prior, eps at the late levels."""

    def __init__(self, levels: list[float], start: int, stop: int, model_sampling, enabled: bool = True):
        self.levels, self.start, self.stop = levels, start, stop
        self.model_sampling = model_sampling
        self.enabled = enabled
        self.x0: dict[int, torch.Tensor] = {}
        self.eps: dict[int, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor, sigma, denoised: torch.Tensor) -> None:
        if not self.enabled:
            return
        s = _level(self.levels, float(torch.as_tensor(sigma).reshape(-1)[0]), self.start, self.stop)
        if s is None or s in self.eps:
            return
        a, scale = _coefficients(self.model_sampling, self.levels[s])
        self.eps[s] = ((x.float() - a * denoised.float()) / scale).detach()
        if s == self.start:
            self.x0[s] = denoised.detach().float().clone()

    def clear(self) -> None:
        self.x0.clear()
        self.eps.clear()


class _Observed:
    """The sampler's denoiser, reporting every evaluation (x, sigma, denoised); attributes pass through."""

    def __init__(self, inner, observe):
        self._inner = inner
        self._observe = observe

    def __call__(self, x, sigma, **kwargs):
        out = self._inner(x, sigma, **kwargs)
        self._observe(x, sigma, out)
        return out

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _sampler(sampler_name: str, observe=None, noise_sampler=None):
    """ComfyUI's sampler ``sampler_name`` (as KSampler builds it), optionally observed and fed a noise sampler."""
    base = comfy.samplers.sampler_object(sampler_name)
    function = base.sampler_function
    extra = dict(base.extra_options)
    if noise_sampler is not None and "noise_sampler" in inspect.signature(function).parameters:
        extra["noise_sampler"] = noise_sampler
    if observe is None:
        return comfy.samplers.KSAMPLER(function, extra, base.inpaint_options)

    def observed(model, x, sigmas, *args, **kwargs):
        return function(_Observed(model, observe), x, sigmas, *args, **kwargs)

    return comfy.samplers.KSAMPLER(observed, extra, base.inpaint_options)


class _BankNoise:
    """``noise_sampler(sigma, sigma_next)`` for a later segment: the bank noise of the level a step lands on.

    A step landing on sigma_{M+j} (1 <= j < T - M) gets n~_k(t_{M+j}); any other draw (the last step, SDE
    midpoints) a seeded standard normal.
    """

    def __init__(self, bank: NoiseBank, segment: int, levels: list[float], m: int, t_steps: int, seed: int):
        self.bank, self.segment = bank, segment
        self.levels, self.m, self.t_steps = levels, m, t_steps
        self.seed = seed
        self.draws = 0

    def __call__(self, sigma, sigma_next):
        s = _level(self.levels, float(torch.as_tensor(sigma_next).reshape(-1)[0]), self.m + 1, self.t_steps)
        if s is not None:
            return self.bank.noise(self.segment, s - self.m)
        self.draws += 1
        return gaussian(self.bank.shape, (self.seed, "var", self.segment, self.draws), self.bank.device,
                        self.bank.dtype)


def _image_priors(model, positive, negative, cfg, sigmas, levels, m, t_steps, image, noise_mask, model_sampling,
                  bank_seed, seed, progress) -> list[torch.Tensor]:
    """n(t_s) = (x_s - a_s D(x_s, sigma_s)) / s_s on x_s = a_s I + s_s e_s for s = M .. T-1 (one evaluation each)."""
    import comfy.sample

    priors = []
    seen: dict[str, torch.Tensor] = {}

    def one_evaluation(denoiser, x, sigmas_, extra_args=None, callback=None, disable=None, **_):
        denoised = denoiser(x, sigmas_[0] * x.new_ones([x.shape[0]]), **(extra_args or {}))
        seen["x"], seen["denoised"] = x, denoised
        return denoised

    for s in range(m, t_steps):
        e = gaussian(tuple(image.shape), (bank_seed, "prior", s), dtype=torch.float32)
        comfy.sample.sample_custom(model, e, cfg, comfy.samplers.KSAMPLER(one_evaluation), sigmas[s:s + 2].clone(),
                                   positive, negative, image, noise_mask=noise_mask, callback=None, disable_pbar=True,
                                   seed=seed)
        a, scale = _coefficients(model_sampling, levels[s])
        priors.append(((seen["x"].float() - a * seen["denoised"].float()) / scale).detach())
        seen.clear()
        del e
        progress.advance()
    return priors


class _Progress:
    """One progress bar over all denoiser steps of the run (with latent previews), checking for interrupts."""

    def __init__(self, model, total: int):
        import latent_preview

        self.total = max(int(total), 1)
        self.done = 0
        self.bar = Progress(self.total)
        try:
            self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
        except Exception:  # previews are a nicety; never fail a run for them
            self.previewer = None

    def advance(self, preview=None) -> None:
        self.done += 1
        Progress.check_interrupt()
        self.bar.bar.update_absolute(min(self.done, self.total), self.total, preview)

    def segment(self, index: int):
        def callback(step, x0, x, total_steps):
            preview = None
            if self.previewer is not None:
                try:
                    preview = self.previewer.decode_latent_to_preview_image("JPEG", x0)
                except Exception:
                    preview = None
            self.advance(preview)
        return callback


NODES = [LongVideoReschedule, LongVideoSchedule]
