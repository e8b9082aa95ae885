"""Sampling a learned GID motion prior inside ComfyUI (model management, progress, interrupts)."""
from __future__ import annotations

import torch

from ...ops.containers import SpectralVolume
from ..common import NodeInputError, Progress


def sample_gid_spectrum(node: str, model, picture: torch.Tensor, guidance, steps: int, cfg: float, seed: int,
                        strength: float, brush: torch.Tensor | None, progress: Progress) -> SpectralVolume:
    """Sample a spectral volume for ``picture`` [1,3,H,W] with a ``DYN_MODEL`` of the "gid" family."""
    from ...models.gid import sample_spectral_volume
    from ...models.guidance import LoopGuidance
    from ...ops.spectral import scale_amplitude
    from .load_model import MotionModel

    if not isinstance(model, MotionModel):
        raise NodeInputError(node, "model", "a DYN_MODEL from LoadMotionModel", type(model).__name__)
    model.require(node, "model", "gid")
    if guidance is not None and not isinstance(guidance, LoopGuidance):
        raise NodeInputError(node, "guidance", "a DYN_GUIDANCE from LoopGuidance", type(guidance).__name__)
    device = model.load()
    # Loop guidance differentiates through the model: leave ComfyUI's inference mode for the sampling.
    with torch.inference_mode(False):
        spectrum = sample_spectral_volume(model.model, picture.clone().to(device), num_steps=steps,
                                          guidance_scale=cfg, seed=seed, loop_guidance=guidance, progress=progress)
    coeffs = scale_amplitude(spectrum.coeffs.cpu(), strength)
    if brush is not None:
        coeffs = coeffs * brush.to(coeffs.real.dtype)
    return SpectralVolume(coeffs=coeffs, num_frames=spectrum.num_frames, fps=spectrum.fps, norm=spectrum.norm,
                          extras=spectrum.extras, loop_frames=spectrum.loop_frames)
