"""Seeded Gaussian draws and the shared noise bank of Controllable Longer Image Animation (Eqs. 10-12).

The bank holds, for every late denoising level s = M .. T-1 (relative level r = s - M), the rescheduled noise

    n~_k(t_s) = P_r[pi_{r,k}] + omega * eps_{k,r},      eps_{k,r} ~ N(0, I)             (Eq. 11)

for the later segments k = 1 .. K-1 (0-based; segment 0 is the fully denoised one), where

* P_r is the noise prior at level r, one window shaped like a segment (Eq. 10: eps_theta of the noised image
  latent, or another source, see ``phased.RescheduleConfig.noise_prior``), shared by all segments;
* pi_{r,k} picks frames of P_r (the shuffle, Eq. 12 and the sentence after it):
    - ``"frame"``: the long sequence [n~_1, ..., n~_{K-1}] has (K-1) * L frame slots; one random permutation of
      the slots per level is drawn and segment k's frame j receives prior frame perm[(k-1) L + j] mod L. Every
      prior frame is used exactly K-1 times per level; a segment may receive one prior frame twice (its omega
      noise still differs). A fresh permutation per level decorrelates a frame's noise across steps.
    - ``"none"``: frame j receives prior frame j.
  Shuffling at segment granularity is not offered: with a single shared prior window, permuting whole windows
  only permutes the i.i.d. omega draws, which changes nothing in distribution.
* eps_{k,r} is indexed by the *destination* slot. Shuffling [P + omega eps] and then reading a slot is the same
  in distribution as reading the shuffled P and adding fresh destination-indexed noise (the eps are i.i.d.),
  and the latter lets each segment's slice be generated on demand from (seed, k, r).

Memory is flat in K: the bank stores the T - M prior windows only; permutations and omega draws are
regenerated from the seed when a segment asks for its slice.

Example:
    >>> import torch
    >>> priors = [torch.zeros(1, 2, 4, 3, 3), torch.ones(1, 2, 4, 3, 3)]
    >>> bank = NoiseBank(priors, num_segments=3, omega=0.0, shuffle="none", seed=0)
    >>> bool(bank.noise(segment=2, level=1).eq(1).all())
    True
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

SHUFFLE_MODES = ("frame", "none")


def derive_seed(*key: int | str) -> int:
    """A 63-bit seed from a tuple of ints and strings (stable across runs, machines and Python versions).

    Example:
        >>> derive_seed(0, "init", 1) == derive_seed(0, "init", 1) != derive_seed(0, "init", 2)
        True
    """
    digest = hashlib.blake2b(repr(tuple(key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def seeded_generator(*key: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(*key)``."""
    return torch.Generator(device="cpu").manual_seed(derive_seed(*key))


def gaussian(shape: Sequence[int], key: tuple, device: torch.device | str | None = None,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise of ``shape`` drawn on the CPU from ``key`` and moved to ``device``.

    Drawing on the CPU makes a given key give the same numbers on every device.

    Example:
        >>> bool(torch.equal(gaussian((2, 3), (0, "x")), gaussian((2, 3), (0, "x"))))
        True
    """
    noise = torch.randn(tuple(shape), generator=seeded_generator(*key), dtype=torch.float32)
    return noise.to(device=device, dtype=dtype)


class NoiseBank:
    """Per-segment, per-level rescheduled noise n~_k(t_s) (Eqs. 10-12), generated on demand.

    Args:
        priors: T - M tensors, each one window shaped like a segment (e.g. [B, C, L, h, w]): the noise prior
            P_r of late level r; ``None`` for a zero prior (n~ = omega * eps).
        num_segments: K, the total number of segments including the fully denoised segment 0.
        omega: weight of the fresh Gaussian noise (Eq. 11), >= 0.
        shuffle: ``"frame"`` or ``"none"`` (see the module docstring).
        seed: integer; all permutations and omega draws derive from it.
        frame_dim: dimension of the frames in a window.
        shape, device, dtype: the window's shape, device and dtype; required when ``priors`` is None.
        num_levels: number of late levels; required when ``priors`` is None.

    Example:
        >>> import torch
        >>> bank = NoiseBank(None, num_segments=4, omega=0.2, shuffle="frame", seed=1,
        ...                  shape=(1, 2, 5, 3, 3), num_levels=2)
        >>> bank.noise(segment=3, level=0).shape
        torch.Size([1, 2, 5, 3, 3])
    """

    def __init__(self, priors: Sequence[torch.Tensor] | None, num_segments: int, omega: float,
                 shuffle: str = "frame", seed: int = 0, frame_dim: int = 2,
                 shape: Sequence[int] | None = None, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32, num_levels: int | None = None) -> None:
        if shuffle not in SHUFFLE_MODES:
            raise ValueError(f"shuffle must be one of {SHUFFLE_MODES}, got {shuffle!r}")
        if omega < 0:
            raise ValueError(f"omega must be >= 0, got {omega}")
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        if priors is not None:
            priors = list(priors)
            if not priors and num_levels is None:
                raise ValueError("priors is empty: give num_levels and shape")
            shapes = {tuple(p.shape) for p in priors}
            if len(shapes) > 1:
                raise ValueError(f"all priors must share one shape, got {sorted(shapes)}")
            if priors:
                shape, device, dtype = tuple(priors[0].shape), priors[0].device, priors[0].dtype
            if num_levels is not None and num_levels != len(priors):
                raise ValueError(f"num_levels={num_levels} disagrees with {len(priors)} priors")
            num_levels = len(priors)
        if shape is None or num_levels is None:
            raise ValueError("without priors, shape and num_levels are required")
        self.shape = tuple(int(s) for s in shape)
        if not -len(self.shape) <= frame_dim < len(self.shape):
            raise ValueError(f"frame_dim={frame_dim} is out of range for a {len(self.shape)}-D window")
        self.priors = priors
        self.num_segments = int(num_segments)
        self.num_levels = int(num_levels)
        self.omega = float(omega)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.frame_dim = frame_dim % len(self.shape)
        self.device = device
        self.dtype = dtype

    @property
    def num_frames(self) -> int:
        """L, frames per window."""
        return self.shape[self.frame_dim]

    def source_frames(self, segment: int, level: int) -> torch.Tensor:
        """Indices [L] (int64) of the prior frames that segment ``segment`` receives at level ``level``."""
        self._check(segment, level)
        frames = self.num_frames
        if self.shuffle == "none":
            return torch.arange(frames)
        slots = (self.num_segments - 1) * frames
        perm = torch.randperm(slots, generator=seeded_generator(self.seed, "bank-perm", level))
        return perm[(segment - 1) * frames: segment * frames] % frames

    def noise(self, segment: int, level: int) -> torch.Tensor:
        """n~_k(t_{M+level}) for segment k = ``segment`` (1 .. K-1), shaped like the window.

        With omega = 0 and shuffle ``"none"`` this returns the prior tensor itself (no copy), so that the
        degenerate cases of ``phased`` hold bit for bit.
        """
        self._check(segment, level)
        if self.priors is None:
            base = None
        elif self.shuffle == "none":
            base = self.priors[level]
        else:
            index = self.source_frames(segment, level).to(self.priors[level].device)
            base = self.priors[level].index_select(self.frame_dim, index)
        if self.omega == 0.0:
            return torch.zeros(self.shape, device=self.device, dtype=self.dtype) if base is None else base
        fresh = gaussian(self.shape, (self.seed, "bank-omega", segment, level), self.device, self.dtype)
        return self.omega * fresh if base is None else base + self.omega * fresh

    def _check(self, segment: int, level: int) -> None:
        if not 1 <= segment < self.num_segments:
            raise ValueError(f"segment must be in 1..{self.num_segments - 1}, got {segment}")
        if not 0 <= level < self.num_levels:
            raise ValueError(f"level must be in 0..{self.num_levels - 1}, got {level}")
