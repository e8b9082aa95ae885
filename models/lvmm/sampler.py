"""Sampling latent motion trajectories from a picture with an LVMM, motion transfer, and rendering with R.

Inference (LVMM Sec. 3.3, Fig. 5): the picture is resized to the model's frame size; z0 = E(P(I0, I0)) is the
visual component v; y = encoder(I0); K latent frames of Gaussian noise are denoised jointly by diffusers'
DDIMScheduler with classifier-free guidance eps = (1 + w) eps(x_t, t, y) - w eps(x_t, t, 0) (the null
condition is zero tokens), v concatenated to the input at every step. The trajectory [z0, z_1 .. z_K] is
decoded by D to backward flows and intention maps at the flow resolution, the flows are turned into the pack's
reference-anchored forward displacement (``ops.warp.invert_flow``: splatting -delta to where each pixel
lands, holes filled) and resized to the picture with vectors scaled per axis.

* **Motion strength** s scales the motion component in latent space: z_k = v + s (z_k - v) (Eq. 6), so s = 0
  gives the still picture's own motion code and s = 1 the sampled one.
* **Loop guidance** (LVMM supplement, GID Eq. 6): a :class:`~..guidance.LoopGuidance` samples L + 2 frames
  and pulls the decoded flows of frames L and L + 1 towards frames 0 (z0) and 1 through
  ``decode_to_endpoints``, which decodes only frames 1, L and L + 1 of the x0-estimate; frames L and L + 1
  (the guided repeats of frames 0 and 1) are then dropped, so the motion is the L-frame loop 0 .. L - 1 whose
  wrap step is an ordinary step. Its weight None means
  :data:`LOOP_WEIGHT`, scaled by :func:`loop_scale`; its ``relative`` None means :data:`LOOP_RELATIVE` (the
  paper's plain Eq. 6; with ``relative=True`` all of frames 1 .. L + 1 are decoded, for the loop's amplitude).
* **Motion transfer** (Fig. 4): ``transfer_from`` = frames of another clip ([T, 3, H, W], frame 0 its I0), a
  latent trajectory ([T, C, h, w], e.g. ``Motion.latent.latents`` of another picture's sample), or
  such a ``Motion``. Its motion component u'_k = z'_k - z'_0 drives this picture: z_k = v + u'_k. No
  denoising is involved.
* **Slow motion** (supplement Sec. 3): decoded displacements, backward flows and intention maps are linearly
  interpolated in time by ``slow_factor``; the frame rate stays the model's, so the clip lasts longer.
* **Beyond the trained length**: ``num_frames - 1 > K`` runs the 3D U-Net over all frames at once (its
  temporal convolutions and attention accept any length; the frame-position channel extrapolates), or, with
  ``long_video=RescheduleConfig(...)``, phased inference over segments of K latent frames
  (``models.long_video``): every segment is a trajectory anchored at I0, sharing the first steps.

Rendering (:func:`render_with_lvmm`): R renders each frame from I0 (never chained) at the picture's size, in
chunks, reusing I0's feature pyramid: memory is flat in T.

Example:
    >>> from .model import LVMM
    >>> from .config import LVMMConfig
    >>> model = LVMM(LVMMConfig.preset("tiny")).eval()
    >>> motion = sample_latent_motion(model, torch.rand(1, 3, 48, 64), num_frames=5, steps=2)
    >>> motion.displacement.shape, motion.intention.shape
    (torch.Size([5, 2, 48, 64]), torch.Size([5, 1, 48, 64]))
    >>> render_with_lvmm(model, torch.rand(1, 3, 48, 64), motion, chunk_size=2).shape
    torch.Size([5, 3, 48, 64])
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ...ops.containers import LatentTrajectory, Motion
from ...ops.progress import ProgressFn, report, sub_progress
from ...ops.warp import invert_flow, resize_flow
from ..guidance import LoopGuidance
from .model import LVMM

# ================================================================================================ denoising


def make_eps_fn(model: LVMM, visual: torch.Tensor, tokens: torch.Tensor, guidance_scale: float
                ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(x_t [1, C, K, h, w], t) -> guided eps (float32): eps = (1 + w) eps_c - w eps_u, null = zero tokens.

    ``visual`` is v = z0 [1, C, h, w], ``tokens`` y [1, N, D]. ``guidance_scale`` = 0 runs the conditional
    model only (one pass).
    """
    w = float(guidance_scale)

    def eps_fn(sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        x = sample.to(model.dtype)
        if w == 0:
            return model.predict_noise(x, timestep, visual, tokens).float()
        both = model.predict_noise(torch.cat([x, x]), timestep, torch.cat([visual, visual]),
                                   torch.cat([tokens, torch.zeros_like(tokens)])).float()
        eps_c, eps_u = both.chunk(2)
        return (1 + w) * eps_c - w * eps_u

    return eps_fn


LOOP_WEIGHT = 200.0
"""LVMM's default loop guidance weight u (at the 128 x 128 flow of a 512 x 512 frame; see :func:`loop_scale`)."""

LOOP_RELATIVE = False
"""LVMM's default loop loss: the paper's plain Eq. 6 (``LoopGuidance.relative`` None); the tiny pans prior meets
issue 17's targets with it (bench/RESULTS.md)."""

LOOP_REFERENCE_PIXELS = 128 * 128
"""The flow resolution at which u is unscaled (the paper's 512 x 512 pretraining: p in R^{128 x 128})."""


def loop_scale(flow_size: tuple[int, int]) -> float:
    """s = h w / (128 x 128) over the flow size: the loop guidance weight's resolution scale for an LVMM.

    The loss is a mean over the flow's pixels of flows in units of ``flow_scale`` (a percentile of the training
    motion in pixels, which grows with the resolution, so the units do not): at s^(1/2) times the resolution
    each latent element's share of the mean falls by s, and multiplying u by s keeps the update per element the
    same. s = 1 at the paper's resolution.

    Example:
        >>> loop_scale((128, 128)), loop_scale((32, 32))
        (1.0, 0.0625)
    """
    return int(flow_size[0]) * int(flow_size[1]) / LOOP_REFERENCE_PIXELS


def lvmm_endpoint_decoder(model: LVMM, first_flow: torch.Tensor, length: int, loop: bool = False) -> Callable:
    """decode_to_endpoints for :class:`LoopGuidance`: x0 [B, C, K, h, w] -> flows of frames 0, 1, L, L + 1 of
    each of the B samples, each [B, 2, h, w]; with ``loop`` (a relative loss) also the loop's frames
    0 .. L - 1, [B, L, 2, h, w].

    The loop is frames 0 .. L - 1; frames L and L + 1, which must be frames 0 and 1 again, are latent frames
    L - 1 and L, so the trajectory needs K >= L + 1 latent frames. Frame 0 is z0 (decoded once: ``first_flow``
    [2, h, w] px, the same picture for every sample); frame j >= 1 is latent frame j - 1 of x0. Only the (at
    most three) latent frames the loss needs are decoded, differentiably, all samples' in one call. The flows
    are returned in units of the model's ``flow_scale`` (the VAE's normalisation), so that the guidance weight
    does not depend on how much the training videos moved. With ``loop`` every latent frame 0 .. L is decoded.
    """
    if length < 3:
        raise ValueError(f"the looping length must be >= 3 frames, got {length}")
    scale = float(model.config.flow_scale)

    def decode(x0: torch.Tensor):
        if length + 1 > x0.shape[2]:
            raise ValueError(f"a loop of {length} frames needs {length + 2} frames of trajectory, got "
                             f"{x0.shape[2] + 1}")
        b = x0.shape[0]
        wanted = list(range(1, length + 2)) if loop else [1, length, length + 1]
        latent_index = sorted({j - 1 for j in wanted})
        picked = x0[:, :, latent_index].transpose(1, 2)  # [B, n, C, h, w]
        flows, _ = model.decode_motion(picked.reshape(-1, *picked.shape[2:]))
        flows = (flows / scale).view(b, len(latent_index), *flows.shape[1:])
        by_frame = {j: flows[:, latent_index.index(j - 1)] for j in wanted}
        by_frame[0] = (first_flow.to(flows.dtype) / scale).expand(b, -1, -1, -1)
        ends = by_frame[0], by_frame[1], by_frame[length], by_frame[length + 1]
        if loop:
            return (*ends, torch.stack([by_frame[j] for j in range(length)], 1))
        return ends

    return decode


@torch.no_grad()
def sample_latents(model: LVMM, image: torch.Tensor, num_latent_frames: int | None = None, steps: int = 50,
                   cfg: float = 1.0, seed: int = 0, loop_guidance: LoopGuidance | None = None, eta: float = 0.0,
                   long_video=None, progress: ProgressFn | None = None,
                   condition: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Sample a latent trajectory [z0, z_1 .. z_K] for a picture: [K + 1, C, h, w] (float32).

    Args:
        model: a loaded :class:`LVMM` (on the compute device).
        image: [1, 3, H, W] float in [0, 1], any size.
        num_latent_frames: K (default: the trained length ``model.config.num_frames``).
        steps: DDIM steps (paper: 250).
        cfg: w of classifier-free guidance (0 = conditional only); LoopGuidance.cfg_w replaces it when set.
        seed: seeds the initial noise (drawn on the CPU: the same seed gives the same noise on any device).
        loop_guidance: optional :class:`LoopGuidance` (not with ``long_video``): a loop of L = its num_frames
            (default K - 1) frames, L <= K - 1; the trajectory returned still has K + 1 frames, the loop is its
            first L (frames L and L + 1 are the guided repeats of frames 0 and 1; :func:`sample_latent_motion`
            drops them).
        eta: DDIM eta (0 = deterministic).
        long_video: optional ``models.long_video.RescheduleConfig``: phased inference over segments of the
            trained length. Its length, when it has one (``total_frames``, or ``num_segments`` segments with
            ``overlap``), is K: a ``num_latent_frames`` that disagrees with it is refused.
        progress: ``progress(done, total)`` before the first and after every denoiser step (``ops/progress.py``);
            with loop guidance also ``progress(i, total)`` again before each of step i + 1's passes and between
            each pass's forward and backward. What it raises stops sampling at once, with nothing returned.
        condition: the CLIP embeddings the model's condition encoder uses, ``{"clip_vision": [1, Dv],
            "clip_text": [1, Dt]}`` (``models/lvmm/clip.py``; the LVMM node gets them from ComfyUI's encoders).
    """
    if long_video is None:
        return sample_latent_batch(model, image, [seed], num_latent_frames, steps, cfg, loop_guidance, eta,
                                   progress, condition)[0]
    from ..long_video import phased_sample

    cfg_model = model.config
    k = int(num_latent_frames or cfg_model.num_frames)
    if (long_video.num_segments, long_video.total_frames) != (None, None):
        k = long_video.resolve_length(cfg_model.num_frames)
        if num_latent_frames is not None and int(num_latent_frames) != k:
            raise ValueError(f"num_latent_frames = {num_latent_frames} disagrees with long_video, whose length is {k} "
                             "latent frames (give None, or that length)")
    image, cfg = _checked_request(image, k, steps, cfg, loop_guidance)
    if loop_guidance is not None:
        raise ValueError("loop guidance and long-video phased inference cannot be combined")
    visual, tokens = _picture_condition(model, image, condition)
    eps_fn = make_eps_fn(model, visual.to(model.dtype), tokens, cfg)
    c, (h, w) = cfg_model.latent_channels, cfg_model.latent_size
    segment = min(k, cfg_model.num_frames)
    config = dataclasses.replace(long_video, total_frames=k, num_segments=None, segment_length=None)
    latents = phased_sample(lambda x, t, cond: eps_fn(x, t), model.sampling_scheduler(steps),
                            (1, c, segment, h, w), steps, config=config, image_latent=visual.unsqueeze(2),
                            frame_dim=2, step_kwargs={"eta": eta}, device=model.device, progress=progress)
    return torch.cat([visual, latents[0].transpose(0, 1)]).float()


def _checked_request(image: torch.Tensor, k: int, steps: int, cfg: float, loop_guidance: LoopGuidance | None
                     ) -> tuple[torch.Tensor, float]:
    """Refuse a bad picture, K or step count; return the picture and the resolved cfg w (LoopGuidance.cfg_w
    replaces ``cfg`` when set)."""
    _check_image(image)
    if k < 1:
        raise ValueError(f"num_latent_frames must be >= 1, got {k}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return image, LoopGuidance.guidance_scale(loop_guidance, cfg, "cfg")


def _picture_condition(model: LVMM, image: torch.Tensor, condition: dict[str, torch.Tensor] | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The picture's visual component v [1, C, h, w] (float32) and condition tokens y [1, N, D]."""
    image = image.to(model.device, model.dtype)
    return model.visual_component(image).float(), model.condition(image, **(condition or {}))


@torch.no_grad()
def sample_latent_batch(model: LVMM, image: torch.Tensor, seeds: Sequence[int] = (0,),
                        num_latent_frames: int | None = None, steps: int = 50, cfg: float = 1.0,
                        loop_guidance: LoopGuidance | None = None, eta: float = 0.0,
                        progress: ProgressFn | None = None, condition: dict[str, torch.Tensor] | None = None
                        ) -> torch.Tensor:
    """:func:`sample_latents` for B = len(seeds) trajectories of one picture, denoised as one batch (no
    ``long_video``): [B, K + 1, C, h, w] (float32).

    Trajectory b is the one ``sample_latents(..., seed=seeds[b])`` gives alone, up to float rounding: its noise
    comes from its own generator, the denoiser and the VAE treat samples independently, and loop guidance sums
    the samples' own losses (``models/guidance.py``), so each is guided with the full u. On a CPU a batch of
    tiny-model samples costs little more than one. Arguments: see :func:`sample_latents`.
    """
    k = int(num_latent_frames or model.config.num_frames)
    image, cfg = _checked_request(image, k, steps, cfg, loop_guidance)
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    visual, tokens = _picture_condition(model, image, condition)
    latents = _denoise(model, visual, tokens, k, steps, cfg, seeds, loop_guidance, eta, progress)
    b = len(seeds)
    return torch.cat([visual.unsqueeze(1).expand(b, -1, -1, -1, -1), latents.transpose(1, 2)], dim=1).float()


def _denoise(model: LVMM, visual: torch.Tensor, tokens: torch.Tensor, k: int, steps: int, cfg: float,
             seeds: list[int], loop_guidance: LoopGuidance | None, eta: float, progress: ProgressFn | None
             ) -> torch.Tensor:
    """DDIM over K latent frames for B = len(seeds) samples of one picture: x_0 [B, C, K, h, w] (float32).

    ``visual`` v [1, C, h, w] (float32) and ``tokens`` y [1, N, D] are the picture's, shared by the samples;
    ``cfg`` the resolved w; each sample's noise comes from a generator seeded with its seed.
    """
    from diffusers.utils.torch_utils import randn_tensor

    cfg_model = model.config
    b = len(seeds)
    c, (h, w) = cfg_model.latent_channels, cfg_model.latent_size
    eps_fn = make_eps_fn(model, visual.to(model.dtype).expand(b, -1, -1, -1), tokens.expand(b, -1, -1), cfg)
    scheduler = model.sampling_scheduler(steps)
    generator = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]
    latents = randn_tensor((b, c, k, h, w), generator=generator, device=model.device, dtype=torch.float32)
    latents = latents * scheduler.init_noise_sigma
    decoder = None
    scale = loop_scale(cfg_model.flow_size)
    if loop_guidance is not None:
        loop_guidance = loop_guidance.with_defaults(LOOP_WEIGHT, LOOP_RELATIVE)
        first_flow, _ = model.decode_motion(visual)
        length = int(loop_guidance.num_frames or k - 1)
        if length + 1 > k:
            raise ValueError(f"LoopGuidance.num_frames = {length}: a loop of {length} frames needs {length + 2} "
                             f"frames of trajectory, got {k + 1}")
        decoder = lvmm_endpoint_decoder(model, first_flow[0], length, loop=bool(loop_guidance.relative))
    total = len(scheduler.timesteps)
    report(progress, 0, total)
    for i, t in enumerate(scheduler.timesteps):
        if loop_guidance is None:
            eps = eps_fn(latents, t)
            latents = scheduler.step(eps, t, latents, eta=eta, generator=generator).prev_sample
        else:
            latents, _ = loop_guidance.step(scheduler, latents, i, eps_fn, decoder, generator=generator, scale=scale,
                                            check=lambda done=i: report(progress, done, total), eta=eta)
        report(progress, i + 1, total)
    return latents


# ================================================================================================ transfer


def source_latents(model: LVMM, source) -> torch.Tensor:
    """A motion source as a latent trajectory [T, C, h, w] (frame 0 = the source's own z0).

    ``source`` is a clip [T, 3, H, W] in [0, 1] (encoded by P and E, frame 0 as I0), a latent trajectory
    [T, C, h, w] at the model's latent size, or a ``Motion`` from an LVMM sampler (its ``latent.latents``).
    """
    if isinstance(source, Motion):
        if source.latent is None:
            raise ValueError("transfer_from: this Motion carries no LVMM latents (Motion.latent); "
                             "pass the source video's frames instead")
        source = source.latent.latents
    if not isinstance(source, torch.Tensor) or source.ndim != 4:
        raise ValueError("transfer_from must be frames [T, 3, H, W], latents [T, C, h, w] or an LVMM Motion, got "
                         f"{tuple(source.shape) if isinstance(source, torch.Tensor) else type(source).__name__}")
    c, size = model.config.latent_channels, model.config.latent_size
    if source.shape[0] < 2:
        raise ValueError(f"transfer_from needs at least 2 frames (frame 0 is the reference), got {source.shape[0]}")
    if source.shape[1] == c and tuple(source.shape[-2:]) == tuple(size):
        return source.to(model.device).float()
    if source.shape[1] == 3:
        with torch.no_grad():
            return model.encode_trajectory(source).float()
    raise ValueError(f"transfer_from must be frames [T, 3, H, W] or latents [T, {c}, {size[0]}, {size[1]}], "
                     f"got {tuple(source.shape)}")


def transfer_latents(visual: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Fig. 4: keep this picture's visual component, take the source's motion component.

    Args:
        visual: v = z0 of the target picture, [1, C, h, w] or [C, h, w].
        source: the source trajectory [T, C, h, w] (frame 0 = its z'0).

    Returns:
        [T, C, h, w]: z_k = v + (z'_k - z'_0), so frame 0 is exactly v.

    Example:
        >>> v, src = torch.zeros(4, 2, 2), torch.arange(3.).view(3, 1, 1, 1).expand(3, 4, 2, 2)
        >>> transfer_latents(v, src)[:, 0, 0, 0].tolist()
        [0.0, 1.0, 2.0]
    """
    v = visual.reshape(1, *source.shape[1:]).to(source)
    return v + (source - source[:1])


# ================================================================================================ decoding


def scale_motion_latents(latents: torch.Tensor, strength: float) -> torch.Tensor:
    """z_k -> z0 + s (z_k - z0) for a trajectory [T, C, h, w] (frame 0 = z0)."""
    return latents[:1] + float(strength) * (latents - latents[:1])


def interpolate_time(frames: torch.Tensor, factor: float) -> torch.Tensor:
    """Linear interpolation along dim 0: T frames -> round((T - 1) factor) + 1 frames (same first and last).

    Example:
        >>> interpolate_time(torch.tensor([0.0, 2.0, 4.0]).view(3, 1), 2.0).flatten().tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    if factor < 1:
        raise ValueError(f"slow_factor must be >= 1, got {factor}")
    t = frames.shape[0]
    n = int(round((t - 1) * factor)) + 1
    if n == t or t < 2:
        return frames
    pos = torch.linspace(0, t - 1, n, dtype=torch.float64)
    lo = pos.floor().long().clamp(max=t - 2)
    frac = (pos - lo).to(frames.dtype).view(-1, *([1] * (frames.ndim - 1))).to(frames.device)
    lo = lo.to(frames.device)
    return frames[lo] * (1 - frac) + frames[lo + 1] * frac


def decode_trajectory(model: LVMM, latents: torch.Tensor, chunk_size: int = 16, progress: ProgressFn | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """D over a trajectory [T, C, h, w] -> (backward flows [T, 2, h', w'] px at the flow size, omega [T, 1, h', w']).

    ``progress(frames decoded, T)`` after every chunk of ``chunk_size`` frames (``ops/progress.py``)."""
    flows, omegas = [], []
    total = latents.shape[0]
    with torch.no_grad():
        for start in range(0, total, chunk_size):
            f, o = model.decode_motion(latents[start:start + chunk_size].to(model.device))
            flows.append(f)
            omegas.append(o)
            report(progress, min(start + chunk_size, total), total)
    return torch.cat(flows), torch.cat(omegas)


def backward_to_displacement(flow: torch.Tensor) -> torch.Tensor:
    """Backward flows (frame k's pixel q samples I0 at q + b(q)) -> reference-anchored forward displacement
    (pixel p of I0 is at p + d(p) in frame k), [T, 2, h, w] -> [T, 2, h, w], by splatting -b (``invert_flow``)."""
    return invert_flow(flow.float())


def displacement_to_backward(displacement: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`backward_to_displacement` (also by splatting; holes filled)."""
    return invert_flow(displacement.float())


RESIZE_CHUNK = 16  # frames brought to the picture's size at once by latents_to_motion


def latents_to_motion(model: LVMM, latents: torch.Tensor, size: tuple[int, int], slow_factor: float = 1.0,
                      loops: bool = False, extras: dict | None = None, progress: ProgressFn | None = None) -> Motion:
    """Decode a latent trajectory [T, C, h, w] into a ``Motion`` at ``size`` = (H, W) (see the module docstring).

    The motion is decoded at the flow size, then brought to the picture's size ``RESIZE_CHUNK`` frames at a time
    straight into the CPU tensors it returns; ``progress(done, total)`` counts the decoded and the resized frames."""
    frames_out = int(round((latents.shape[0] - 1) * float(slow_factor))) + 1
    total = latents.shape[0] + frames_out
    flow, omega = decode_trajectory(model, latents, progress=sub_progress(progress, 0, latents.shape[0], total))
    displacement = backward_to_displacement(flow)
    if slow_factor != 1:
        flow, omega, displacement = (interpolate_time(x, slow_factor) for x in (flow, omega, displacement))
    out_h, out_w = int(size[0]), int(size[1])
    count = displacement.shape[0]
    full = torch.empty(count, 2, out_h, out_w)
    intention = torch.empty(count, 1, out_h, out_w)
    for start in range(0, count, RESIZE_CHUNK):
        stop = min(start + RESIZE_CHUNK, count)
        full[start:stop] = resize_flow(displacement[start:stop], (out_h, out_w)).cpu()
        intention[start:stop] = F.interpolate(omega[start:stop], size=(out_h, out_w), mode="bilinear",
                                              align_corners=False).clamp(0, 1).cpu()
        report(progress, latents.shape[0] + stop, total)
    displacement = full
    latent = LatentTrajectory(latents=latents.detach().cpu(), backward_flow=flow.cpu(),
                              fingerprint=LatentTrajectory.fingerprint_of(displacement))
    info = {"source": "lvmm", "slow_factor": float(slow_factor), "flow_size": tuple(flow.shape[-2:])}
    info.update(extras or {})
    return Motion(displacement=displacement, fps=float(model.config.fps), intention=intention, loops=loops,
                  latent=latent, extras=info)


def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError("image must be [1, 3, H, W], got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")


def sample_latent_motion(model: LVMM, image: torch.Tensor, num_frames: int | None = None, steps: int = 50,
                         cfg: float = 1.0, seed: int = 0, motion_strength: float | None = None,
                         loop_guidance: LoopGuidance | None = None, transfer_from=None, slow_factor: float = 1.0,
                         eta: float = 0.0, long_video=None, output_size: tuple[int, int] | None = None,
                         progress: ProgressFn | None = None,
                         condition: dict[str, torch.Tensor] | None = None) -> Motion:
    """A motion for a picture from an LVMM: sampled (DDIM + CFG [+ loop guidance]) or transferred from a source.

    Args:
        model: a loaded :class:`LVMM` (on the compute device).
        image: [1, 3, H, W] float in [0, 1], any size.
        num_frames: frames of the result before slow motion, frame 0 included (default K + 1 of the model, the
            long video's length + 1 with a ``long_video`` that has one, or the source's length with
            ``transfer_from``; with a source, at most its length: the first frames). With ``loop_guidance``:
            the loop's frames L (default its own num_frames, else K - 1, so that L + 2 = K + 1 frames are
            sampled, the trained length); the last two, the guided repeats of frames 0 and 1, are dropped, so
            the result has L frames and its wrap step is an ordinary step.
        steps, cfg, seed, eta, loop_guidance, long_video, progress, condition: see :func:`sample_latents`.
        motion_strength: s in z_k = v + s (z_k - v) (None = 1).
        transfer_from: frames, latents or an LVMM ``Motion`` of another picture / video (Fig. 4); no sampling.
        slow_factor: >= 1, linear interpolation of the decoded motion in time (frames: (T - 1) slow_factor + 1).
        output_size: (H', W') of the displacement; default the picture's (H, W).

    Returns:
        ``Motion`` (tensors on the CPU): displacement [T, 2, H', W'] px (forward, reference-anchored), intention
        [T, 1, H', W'],
        fps = model.config.fps, loops = loop guidance was used; ``latent`` holds the latents [T0, C, h, w] (the
        trajectory before slow motion) and the backward flows [T, 2, h', w'] at the flow size (what R renders
        from); ``extras["source"]`` = "lvmm".
    """
    _check_image(image)
    if num_frames is not None and int(num_frames) < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    out_size = tuple(output_size) if output_size is not None else tuple(image.shape[-2:])
    extras = {}
    if transfer_from is not None:
        if loop_guidance is not None or long_video is not None:
            raise ValueError("transfer_from cannot be combined with loop guidance or long-video sampling")
        source = source_latents(model, transfer_from)
        if num_frames is not None:
            if int(num_frames) > source.shape[0]:
                raise ValueError(f"num_frames = {num_frames} but the motion source has {source.shape[0]} frames")
            source = source[:int(num_frames)]
        with torch.no_grad():
            visual = model.visual_component(image.to(model.device, model.dtype)).float()
        latents = transfer_latents(visual, source)
        extras["transferred"] = True
        report(progress, 1, 1)
    else:
        k = int(num_frames) - 1 if num_frames is not None else None
        length = None
        if loop_guidance is not None:
            length = int(num_frames or loop_guidance.num_frames or model.config.num_frames - 1)
            if loop_guidance.num_frames is not None and int(loop_guidance.num_frames) != length:
                raise ValueError(f"num_frames = {length} disagrees with LoopGuidance.num_frames = "
                                 f"{loop_guidance.num_frames} (the loop's length: give one of them)")
            k, loop_guidance = length + 1, dataclasses.replace(loop_guidance, num_frames=length)
        latents = sample_latents(model, image, k, steps=steps, cfg=cfg, seed=seed, loop_guidance=loop_guidance,
                                 eta=eta, long_video=long_video, progress=progress, condition=condition)
        if length is not None:
            latents = latents[:length]  # frames L, L + 1 are the guided repeats of 0, 1: the loop is 0 .. L - 1
    if motion_strength is not None:
        latents = scale_motion_latents(latents, motion_strength)
    return latents_to_motion(model, latents, out_size, slow_factor=slow_factor, loops=loop_guidance is not None,
                             extras=extras, progress=progress)


# ================================================================================================ rendering


def _backward_flows(motion: Motion) -> torch.Tensor | None:
    """The LVMM backward flows stored with a Motion, if they still describe its displacement (an edited
    displacement is rendered from flows derived from it)."""
    if motion.latent is None or not motion.latent.describes(motion.displacement):
        return None
    return motion.latent.backward_flow


@torch.no_grad()
def render_with_lvmm(model: LVMM, image: torch.Tensor, motion: Motion, chunk_size: int = 4,
                     on_chunk: Callable[[int, torch.Tensor], None] | None = None,
                     progress: ProgressFn | None = None) -> torch.Tensor | None:
    """Render every frame of ``motion`` from the picture with the model's renderer R (Eq. 3).

    Args:
        model: a loaded :class:`LVMM`.
        image: I0 [1, 3, H, W] in [0, 1] (the picture the motion was made for; any size).
        motion: a ``Motion`` for that picture. LVMM motions are rendered from their stored backward flows;
            any other motion (or an edited one) is converted by inverting its displacement (splatting).
            Its intention map is used when present, else omega = 1 (pure warping).
        chunk_size: frames rendered per pass (memory grows with it, not with T).
        on_chunk: if given, called as ``on_chunk(first_index, frames [n, 3, H, W] on the CPU)`` for every chunk
            and nothing is kept (returns None).
        progress: ``progress(done_frames, T)`` before the first and after every chunk (``ops/progress.py``).

    Returns:
        frames [T, 3, H, W] float32 in [0, 1] on the CPU, or None with ``on_chunk``.
    """
    _check_image(image)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    device, dtype = model.device, model.dtype
    h, w = image.shape[-2:]
    stored = _backward_flows(motion)
    image = image.to(device, dtype)
    pyramid = model.renderer.pyramid(image)
    t_total = motion.num_frames
    out = [] if on_chunk is None else None
    report(progress, 0, t_total)
    for start in range(0, t_total, chunk_size):
        stop = min(start + chunk_size, t_total)
        if stored is not None:
            flow = stored[start:stop].to(device)
        else:
            disp = motion.displacement[start:stop].to(device)
            if tuple(disp.shape[-2:]) != (h, w):
                disp = resize_flow(disp.float(), (h, w))
            flow = displacement_to_backward(disp)
        if motion.intention is not None:
            omega = motion.intention[start:stop].to(device).float()
        else:
            omega = torch.ones(flow.shape[0], 1, *flow.shape[-2:], device=device)
        frames = model.render(image, flow.to(dtype), omega.to(dtype), pyramid).float().clamp(0, 1).cpu()
        if on_chunk is not None:
            on_chunk(start, frames)
        else:
            out.append(frames)
        report(progress, stop, t_total)
    return None if out is None else torch.cat(out)
