"""The pack's motion types, with their conventions.

Every displacement and velocity in the pack follows one convention: pixels at the stated H x W, channel 0 is
x (to the right), channel 1 is y (down). These containers are plain dataclasses so that the library can be
used from scripts; the ComfyUI nodes pass them between nodes as ``DYN_MOTION``, ``DYN_FLOW`` and
``DYN_SPECTRUM``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class LoopBlend:
    """A second motion whose render is cross-faded with the first one's (Holynski et al.'s two-way Eulerian loop).

    Frame t = (1 - a_t) render(Motion.displacement[t]) + a_t render(displacement[t]), per pixel, with a_t from
    :meth:`alpha` (the renderer also weighs each render by how well it covers the pixel, see
    ``ops.render.render_frames``).

    Attributes:
        displacement: [T, 2, H, W] float, pixels, reference-anchored like ``Motion.displacement`` (the Eulerian
            loop: the field integrated backward from the loop's end).
        weight: [T] float in [0, 1]. Without ``phase``: a_t itself, one value per frame (one cross-fade over the
            whole loop when it is t / T). With ``phase``: the loop time t / T of frame t.
        phase: optional [1, 1, H, W] in [window / 2, 1 - window / 2]: when, as a fraction of the loop, each pixel
            cross-fades. a_t(q) = clamp((weight[t] - phase(q)) / window + 1/2, 0, 1): 0 until its cross-fade, 1
            after it, so each region dissolves at its own time, over ``window`` of the loop, and few pixels are
            double-exposed in any frame. Phase 0.5 everywhere with window 1 is the one-cross-fade loop.
        window: the fraction of the loop one pixel's cross-fade takes, in (0, 1] (with ``phase`` only).
    """

    displacement: torch.Tensor
    weight: torch.Tensor
    phase: torch.Tensor | None = None
    window: float = 1.0

    def __post_init__(self) -> None:
        d, w = self.displacement, self.weight
        if d.ndim != 4 or d.shape[1] != 2:
            raise ValueError(f"LoopBlend.displacement must be [T, 2, H, W], got {tuple(d.shape)}")
        if w.ndim != 1 or w.shape[0] != d.shape[0]:
            raise ValueError(f"LoopBlend.weight must be [T] = [{d.shape[0]}], got {tuple(w.shape)}")
        if not 0.0 < float(self.window) <= 1.0:
            raise ValueError(f"LoopBlend.window must be in (0, 1], got {self.window}")
        p = self.phase
        if p is not None:
            if p.ndim != 4 or p.shape[:2] != (1, 1) or tuple(p.shape[-2:]) != tuple(d.shape[-2:]):
                raise ValueError(f"LoopBlend.phase must be [1, 1, {d.shape[-2]}, {d.shape[-1]}], got {tuple(p.shape)}")
            half = float(self.window) / 2
            if float(p.min()) < half - 1e-6 or float(p.max()) > 1 - half + 1e-6:
                raise ValueError(f"LoopBlend.phase must lie in [window / 2, 1 - window / 2] = [{half:g}, {1 - half:g}] "
                                 "so that every pixel's cross-fade starts and ends inside the loop")

    def alpha(self, start: int, stop: int) -> torch.Tensor:
        """The backward render's weight for frames start..stop-1: [n, 1, 1, 1] without ``phase``, else [n, 1, H, W]."""
        w = self.weight[start:stop].float().view(-1, 1, 1, 1)
        if self.phase is None:
            return w
        return ((w - self.phase.float().to(w.device)) / float(self.window) + 0.5).clamp_(0.0, 1.0)


@dataclass
class LatentTrajectory:
    """The latent-space trajectory a model sampled a motion from (LVMM), for its own renderer and motion transfer.

    Attributes:
        latents: [T0, C, h, w] the model's latent trajectory (frame 0 = the picture's own code).
        backward_flow: [T, 2, h', w'] float, pixels at h' x w': frame t's pixel q shows I0 at q + b(q) (what the
            model's renderer takes; exact, unlike an inversion of the forward displacement).
        fingerprint: (sum, sum |d|, sum d^2) of the displacement decoded with these flows: the flows describe a
            ``Motion`` only while its displacement still has it (:meth:`describes`).
    """

    latents: torch.Tensor
    backward_flow: torch.Tensor
    fingerprint: tuple[float, float, float]

    @staticmethod
    def fingerprint_of(displacement: torch.Tensor) -> tuple[float, float, float]:
        d = displacement.detach().double()
        return float(d.sum()), float(d.abs().sum()), float((d * d).sum())

    def describes(self, displacement: torch.Tensor) -> bool:
        """True when ``displacement`` is (up to float rounding) the one these flows were decoded with."""
        if self.backward_flow.shape[0] != displacement.shape[0]:
            return False
        return torch.allclose(torch.tensor(self.fingerprint_of(displacement)), torch.tensor(self.fingerprint),
                              rtol=1e-5, atol=1e-3)


@dataclass
class Motion:
    """Reference-anchored motion of every pixel of a source picture (``DYN_MOTION``).

    Attributes:
        displacement: [T, 2, H, W] float, pixels; frame t holds where pixel p of I0 is at time t, minus p.
            Frame 0 is normally all zeros.
        fps: frames per second the motion was made for.
        intention: optional [T, 1, H, W] in [0, 1], LVMM's intention / occlusion map (1 = warp, 0 = synthesise).
        metric: optional [1, 1, H, W] splat metric (larger = in front); renderers compute one when absent.
        loops: True when frame T would equal frame 0 (a seamless loop).
        blend: optional second motion cross-faded with this one by the renderers (:class:`LoopBlend`).
        brush: optional [1, 1, H, W] in [0, 1], the motion brush it was made with (1 = may move, 0 = still).
        latent: optional :class:`LatentTrajectory` the motion was decoded from (LVMM).
        extras: notes for people (source, settings); no code depends on them.
    """

    displacement: torch.Tensor
    fps: float = 30.0
    intention: torch.Tensor | None = None
    metric: torch.Tensor | None = None
    loops: bool = False
    blend: LoopBlend | None = None
    brush: torch.Tensor | None = None
    latent: LatentTrajectory | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = self.displacement
        if d.ndim != 4 or d.shape[1] != 2:
            raise ValueError(f"Motion.displacement must be [T, 2, H, W], got {tuple(d.shape)}")
        if self.blend is not None and self.blend.displacement.shape != d.shape:
            raise ValueError(f"Motion.blend.displacement must be {tuple(d.shape)} like the displacement, got "
                             f"{tuple(self.blend.displacement.shape)}")
        if self.brush is not None and (self.brush.ndim != 4 or self.brush.shape[:2] != (1, 1)
                                       or tuple(self.brush.shape[-2:]) != tuple(d.shape[-2:])):
            raise ValueError(f"Motion.brush must be [1, 1, {d.shape[-2]}, {d.shape[-1]}], got "
                             f"{tuple(self.brush.shape)}")

    @property
    def num_frames(self) -> int:
        return int(self.displacement.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the source picture the displacements refer to."""
        return int(self.displacement.shape[-2]), int(self.displacement.shape[-1])

    def replace(self, **changes) -> Motion:
        return replace(self, **changes)


@dataclass
class VelocityField:
    """An Eulerian velocity field (``DYN_FLOW``): what arrows and brushes produce.

    Attributes:
        velocity: [1 or T, 2, H, W] float, pixels per frame.
        mask: optional [1, 1, H, W] in [0, 1]; 0 = this pixel never moves.
    """

    velocity: torch.Tensor
    mask: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = self.velocity
        if v.ndim != 4 or v.shape[1] != 2:
            raise ValueError(f"VelocityField.velocity must be [T, 2, H, W], got {tuple(v.shape)}")

    @property
    def size(self) -> tuple[int, int]:
        return int(self.velocity.shape[-2]), int(self.velocity.shape[-1])


@dataclass
class SpectralVolume:
    """GID's spectral volume (``DYN_SPECTRUM``): K complex temporal Fourier coefficients per pixel.

    Attributes:
        coeffs: [K, 2, H, W] complex; coefficient k of the one-sided FFT over time of the displacement in pixels.
        num_frames: T, the period in frames of the motion the coefficients describe.
        fps: frames per second.
        norm: the torch.fft normalisation used ("backward": forward FFT unscaled, inverse divides by T).
        loop_frames: the length L of the loop that loop guidance closed (frames 0 .. L - 1 play, then 0), when it
            is not T; None = the period. ``ops.spectral.to_motion`` plays L frames by default.
    """

    coeffs: torch.Tensor
    num_frames: int
    fps: float = 30.0
    norm: str = "backward"
    extras: dict = field(default_factory=dict)
    loop_frames: int | None = None

    def __post_init__(self) -> None:
        c = self.coeffs
        if c.ndim != 4 or c.shape[1] != 2 or not c.is_complex():
            raise ValueError(f"SpectralVolume.coeffs must be complex [K, 2, H, W], got {tuple(c.shape)} {c.dtype}")
        if self.loop_frames is not None and int(self.loop_frames) < 1:
            raise ValueError(f"SpectralVolume.loop_frames must be >= 1 or None, got {self.loop_frames}")

    @property
    def num_frequencies(self) -> int:
        return int(self.coeffs.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.coeffs.shape[-2]), int(self.coeffs.shape[-1])
