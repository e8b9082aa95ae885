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
class Motion:
    """Reference-anchored motion of every pixel of a source picture (``DYN_MOTION``).

    Attributes:
        displacement: [T, 2, H, W] float, pixels; frame t holds where pixel p of I0 is at time t, minus p.
            Frame 0 is normally all zeros.
        fps: frames per second the motion was made for.
        intention: optional [T, 1, H, W] in [0, 1], LVMM's intention / occlusion map (1 = warp, 0 = synthesise).
        metric: optional [1, 1, H, W] splat metric (larger = in front); renderers compute one when absent.
        loops: True when frame T would equal frame 0 (a seamless loop).
    """

    displacement: torch.Tensor
    fps: float = 30.0
    intention: torch.Tensor | None = None
    metric: torch.Tensor | None = None
    loops: bool = False
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = self.displacement
        if d.ndim != 4 or d.shape[1] != 2:
            raise ValueError(f"Motion.displacement must be [T, 2, H, W], got {tuple(d.shape)}")

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
    """

    coeffs: torch.Tensor
    num_frames: int
    fps: float = 30.0
    norm: str = "backward"
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = self.coeffs
        if c.ndim != 4 or c.shape[1] != 2 or not c.is_complex():
            raise ValueError(f"SpectralVolume.coeffs must be complex [K, 2, H, W], got {tuple(c.shape)} {c.dtype}")

    @property
    def num_frequencies(self) -> int:
        return int(self.coeffs.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.coeffs.shape[-2]), int(self.coeffs.shape[-1])
