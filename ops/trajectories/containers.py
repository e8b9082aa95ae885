"""The parsed forms of what a user draws: point trajectories over time (:class:`Tracks`) and arrows (:class:`Arrows`).

Pixel convention: pixel centres sit on integer coordinates, so a W x H picture spans x in [0, W-1], y in [0, H-1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .timing import TrackTiming

__all__ = ["Arrows", "Tracks"]


@dataclass(eq=False)
class Tracks:
    """Point trajectories over time.

    Attributes:
        points: [T, N, 2] float32, pixels; ``points[t, n] = (x, y)`` of track n at frame t.
        visibility: [T, N] bool; False where the point is hidden (its position is kept, but carries less meaning).
            Defaults to all True.
        timing: None, or one :class:`TrackTiming` (or None) per track: when the track moves within the output
            clip. It is applied, and dropped, by :func:`~.resample.resample_tracks`; a timing equal to the default
            (frame 0 to the last frame, linear) is stored as None.

    Two Tracks compare equal (``==``) when shapes, points, visibility and timing are exactly equal.
    """

    points: torch.Tensor
    visibility: torch.Tensor | None = None
    timing: tuple[TrackTiming | None, ...] | None = None

    def __post_init__(self) -> None:
        p = torch.as_tensor(self.points)
        if p.ndim != 3 or p.shape[-1] != 2:
            raise ValueError(f"Tracks.points must be [T, N, 2], got {tuple(p.shape)}")
        self.points = p.to(torch.float32)
        if self.visibility is None:
            self.visibility = torch.ones(p.shape[:2], dtype=torch.bool, device=p.device)
        v = torch.as_tensor(self.visibility, device=p.device)
        if tuple(v.shape) != tuple(p.shape[:2]):
            raise ValueError(f"Tracks.visibility must be [T, N] = {tuple(p.shape[:2])}, got {tuple(v.shape)}")
        self.visibility = v.to(torch.bool)
        if self.timing is not None:
            timing = tuple(None if t is None or t.is_default else t for t in self.timing)
            if len(timing) != p.shape[1] or not all(t is None or isinstance(t, TrackTiming) for t in timing):
                raise ValueError(f"Tracks.timing must hold one TrackTiming or None per track ({p.shape[1]}), "
                                 f"got {self.timing!r}")
            self.timing = None if all(t is None for t in timing) else timing

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_tracks(self) -> int:
        return int(self.points.shape[1])

    def timing_of(self, n: int) -> TrackTiming | None:
        """Track n's timing (None: it moves from frame 0 to the last frame, linearly)."""
        return None if self.timing is None else self.timing[n]

    def to(self, device) -> Tracks:
        return Tracks(self.points.to(device), self.visibility.to(device), self.timing)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tracks):
            return NotImplemented
        return (self.points.shape == other.points.shape
                and torch.equal(self.points.cpu(), other.points.cpu())
                and torch.equal(self.visibility.cpu(), other.visibility.cpu())
                and self.timing == other.timing)

    __hash__ = None  # mutable container

    def __repr__(self) -> str:
        timed = "" if self.timing is None else f", timed={sum(t is not None for t in self.timing)}"
        return f"Tracks(num_frames={self.num_frames}, num_tracks={self.num_tracks}{timed})"


@dataclass(eq=False)
class Arrows:
    """Straight arrows with a speed each.

    Attributes:
        start: [N, 2] float32 pixels (x, y).
        end: [N, 2] float32 pixels.
        speed: [N] float32 multiplier of the arrow's vector (default 1.0).
    """

    start: torch.Tensor
    end: torch.Tensor
    speed: torch.Tensor | None = None

    def __post_init__(self) -> None:
        s = torch.as_tensor(self.start).to(torch.float32)
        e = torch.as_tensor(self.end).to(torch.float32)
        if s.ndim != 2 or s.shape[-1] != 2 or e.shape != s.shape:
            raise ValueError(f"Arrows.start and Arrows.end must both be [N, 2], got {tuple(s.shape)} and "
                             f"{tuple(e.shape)}")
        if self.speed is None:
            self.speed = torch.ones(s.shape[0], dtype=torch.float32, device=s.device)
        sp = torch.as_tensor(self.speed, device=s.device).to(torch.float32)
        if sp.ndim == 0:
            sp = sp.expand(s.shape[0]).clone()
        if tuple(sp.shape) != (s.shape[0],):
            raise ValueError(f"Arrows.speed must be [N] = ({s.shape[0]},), got {tuple(sp.shape)}")
        self.start, self.end, self.speed = s, e, sp

    @property
    def num_arrows(self) -> int:
        return int(self.start.shape[0])

    def vectors(self) -> torch.Tensor:
        """[N, 2] (end - start) * speed, pixels."""
        return (self.end - self.start) * self.speed[:, None]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Arrows):
            return NotImplemented
        return (self.start.shape == other.start.shape
                and all(torch.equal(a.cpu(), b.cpu()) for a, b in
                        ((self.start, other.start), (self.end, other.end), (self.speed, other.speed))))

    __hash__ = None

    def __repr__(self) -> str:
        return f"Arrows(num_arrows={self.num_arrows})"
