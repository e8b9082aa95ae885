"""Long videos from short-clip diffusion models: phased inference with a shared noise reschedule.

Controllable Longer Image Animation (Wang et al.), Eqs. 9-12: segment 0 is fully denoised, every later segment
restarts from its state after M = ceil(gamma T) steps and runs only the last T - M steps with rescheduled,
image-informed noise. Works over any ``denoiser(x, t, cond)`` callable and diffusers scheduler (DDIM, DDPM,
Euler, DPM-Solver++, ...). No ComfyUI imports. See ``phased`` for the decisions and the cost formula

    calls = T + (K - 1)(T - M) + P,   P = T - M with the image noise prior (K > 1), else 0.
"""
from .noise_bank import NoiseBank, derive_seed, gaussian
from .phased import (
    RescheduleConfig,
    SegmentOutput,
    count_denoiser_calls,
    independent_sample,
    iter_independent_segments,
    iter_phased_segments,
    phased_sample,
    restart_from,
    restart_step,
)
from .seams import SeamJoiner, crossfade_weights, long_video_length, seam_statistics, segments_for_frames

__all__ = [
    "NoiseBank",
    "RescheduleConfig",
    "SeamJoiner",
    "SegmentOutput",
    "count_denoiser_calls",
    "crossfade_weights",
    "derive_seed",
    "gaussian",
    "independent_sample",
    "iter_independent_segments",
    "iter_phased_segments",
    "long_video_length",
    "phased_sample",
    "restart_from",
    "restart_step",
    "seam_statistics",
    "segments_for_frames",
]
