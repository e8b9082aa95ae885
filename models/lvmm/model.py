"""The LVMM as one module: P, R, E/D, the condition encoder and the denoiser, with the paths between them.

Paths (see ``config`` for shapes and conventions):

* ``motion_flow(I0, Ik)``            p = P(I'0, I'k) at the flow resolution (Eq. 2)
* ``render(I0, flow, omega)``        R(I0 | p) at I0's size (Eq. 3)
* ``encode_motion`` / ``decode_motion``   z = E(p) x latent_scale, p = D(z / latent_scale) (Eq. 4)
* ``visual_component(I0)``           v = z0 = E(P(I0, I0)) (Eq. 6)
* ``encode_trajectory(frames)``      z_0..z_T of a clip (frames[0] = I0)
* ``predict_noise(x_t, t, v, y)``    eps_theta (Eq. 10); ``condition(I0)`` = y

Example:
    >>> model = LVMM(LVMMConfig.preset("tiny")).eval()
    >>> frames = torch.rand(3, 3, 64, 64)
    >>> z = model.encode_trajectory(frames)
    >>> flow, omega = model.decode_motion(z)
    >>> z.shape, flow.shape, model.render(frames[:1], flow, omega).shape
    (torch.Size([3, 4, 4, 4]), torch.Size([3, 2, 32, 32]), torch.Size([3, 3, 64, 64]))
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..schedules import ddim_scheduler, ddpm_scheduler
from .config import LVMMConfig
from .denoiser import ConditionEncoder, MotionDenoiser
from .predictor import MotionFlowPredictor
from .renderer import NeuralRenderer
from .vae import build_motion_vae


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [B, 3, H, W] to ``size`` (antialiased when shrinking); no-op at the same size."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrink = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    return F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)


class LVMM(nn.Module):
    """Motion rendering model (P, R, E/D) + motion diffusion model (condition encoder, denoiser)."""

    def __init__(self, config: LVMMConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.predictor = MotionFlowPredictor(config.predictor)
        self.renderer = NeuralRenderer(config.renderer)
        self.vae = build_motion_vae(config)
        self.encoder = ConditionEncoder(config.encoder)
        self.denoiser = MotionDenoiser(config)

    @property
    def device(self) -> torch.device:
        return self.renderer.out.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.renderer.out.weight.dtype

    # ------------------------------------------------------------------ sizes
    def to_model_size(self, image: torch.Tensor) -> torch.Tensor:
        """Pictures [B, 3, H, W] -> [B, 3, height, width] (the model's frame size)."""
        return resize_image(image, (self.config.height, self.config.width))

    def to_flow_size(self, image: torch.Tensor) -> torch.Tensor:
        """Pictures [B, 3, H, W] -> [B, 3, H/4, W/4] of the model (P's and the encoder's input, Eq. 2)."""
        return resize_image(image, self.config.flow_size)

    # ------------------------------------------------------------------ motion rendering model
    def motion_flow(self, source: torch.Tensor, driving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p = P(I'0, I'k): (backward flow [B, 2, h, w] px at the flow size, omega [B, 1, h, w]).

        ``source`` (I0) and ``driving`` (Ik) are [B, 3, H, W] frames of any size (resized to the flow size).
        """
        return self.predictor(self.to_flow_size(source), self.to_flow_size(driving))

    def render(self, image: torch.Tensor, flow: torch.Tensor, intention: torch.Tensor,
               pyramid: list[torch.Tensor] | None = None) -> torch.Tensor:
        """R(I0 | flow, omega) at I0's size; see :class:`NeuralRenderer`."""
        return self.renderer(image, flow, intention, pyramid)

    def normalize_motion(self, flow: torch.Tensor, intention: torch.Tensor) -> torch.Tensor:
        """(flow px, omega) -> the VAE's input [B, 3, h, w] = [flow / flow_scale, 2 omega - 1]."""
        return torch.cat([flow / self.config.flow_scale, intention * 2 - 1], dim=1)

    def denormalize_motion(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`normalize_motion` (omega clamped to [0, 1])."""
        return p[:, :2] * self.config.flow_scale, ((p[:, 2:3] + 1) / 2).clamp(0, 1)

    def encode_motion(self, flow: torch.Tensor, intention: torch.Tensor, sample: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """z = E(p) x latent_scale: [B, C, h/f, w/f] (posterior mean unless ``sample``)."""
        posterior = self.vae.encode(self.normalize_motion(flow, intention).to(self.dtype))
        z = posterior.sample(generator=generator) if sample else posterior.mean
        return z * self.config.latent_scale

    def decode_motion(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p = D(z / latent_scale): (flow [B, 2, h, w] px, omega [B, 1, h, w]), float32."""
        p = self.vae.decode((latents / self.config.latent_scale).to(self.dtype)).float()
        return self.denormalize_motion(p)

    def visual_component(self, image: torch.Tensor) -> torch.Tensor:
        """v = z0 = E(P(I0, I0)) [B, C, h, w] (Eq. 6)."""
        return self.encode_motion(*self.motion_flow(image, image))

    def encode_trajectory(self, frames: torch.Tensor, chunk_size: int = 16) -> torch.Tensor:
        """z_t = E(P(I0, I_t)) for a clip [T, 3, H, W] with I0 = frames[0]: [T, C, h, w] (z_0 = v)."""
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be [T, 3, H, W], got {tuple(frames.shape)}")
        small = self.to_flow_size(frames.to(self.device, self.dtype))
        first = small[:1]
        out = []
        for start in range(0, small.shape[0], chunk_size):
            chunk = small[start:start + chunk_size]
            flow, omega = self.predictor(first.expand(chunk.shape[0], -1, -1, -1), chunk)
            out.append(self.encode_motion(flow, omega))
        return torch.cat(out)

    # ------------------------------------------------------------------ motion diffusion model
    def condition(self, image: torch.Tensor, clip_vision: torch.Tensor | None = None,
                  clip_text: torch.Tensor | None = None) -> torch.Tensor:
        """y = encoder(I0[, CLIP embeddings]) [B, N, D] from pictures [B, 3, H, W] of any size; ``clip_vision``
        [B, Dv] and ``clip_text`` [B, Dt] are needed when the config's encoder uses them (``clip.py``)."""
        def move(x):
            return None if x is None else x.to(self.device)

        return self.encoder(self.to_flow_size(image.to(self.device, self.dtype)), move(clip_vision), move(clip_text))

    def predict_noise(self, sample: torch.Tensor, timestep, visual: torch.Tensor, tokens: torch.Tensor,
                      frame_offset: int = 0) -> torch.Tensor:
        """eps_theta(x_t, t, y) with v concatenated; see :class:`MotionDenoiser`."""
        return self.denoiser(sample, timestep, visual, tokens, frame_offset)

    def training_scheduler(self):
        """diffusers DDPMScheduler with this model's noise schedule (for ``add_noise`` in training)."""
        return ddpm_scheduler(self.config.diffusion)

    def sampling_scheduler(self, num_steps: int | None = None):
        """diffusers DDIMScheduler with this model's noise schedule (deterministic, eta = 0 by default), with
        ``set_timesteps(num_steps)`` applied when given (any count up to the schedule's length)."""
        return ddim_scheduler(self.config.diffusion, num_steps, self.device)


def build_lvmm(config: LVMMConfig) -> LVMM:
    """A freshly initialised model."""
    return LVMM(config)
