"""Joining segments into one long video: overlap, cross-fade, and the seam metric.

Segments of L frames are laid out with a stride of L - O frames (O = ``overlap``, 0 <= O < L), so K segments
make K L - (K - 1) O frames. In each overlap the O frames of the earlier segment (its tail) meet the first O
frames of the later one (its head):

* ``crossfade=True``: frame j of the overlap is (1 - w_j) tail_j + w_j head_j with w_j = (j + 1) / (O + 1), a
  linear dissolve that spreads the jump between the two segments over O + 1 frame transitions;
* ``crossfade=False``: the tail is kept and the later segment's first O frames are dropped (a hard cut).

The blend is done on latents (the caller decodes); blending two different latents lowers their variance in
the middle of the dissolve, so a long overlap looks softer there.

The joiner holds back only the O tail frames of the last segment, so a stream of segments is joined with
memory independent of their number. Every emitted chunk is final: concatenating the chunks in order gives
the long video.

Example:
    >>> import torch
    >>> joiner = SeamJoiner(overlap=1, crossfade=True, frame_dim=0)
    >>> a = joiner.push(torch.zeros(3, 1), last=False)
    >>> b = joiner.push(torch.ones(3, 1), last=True)
    >>> torch.cat([a, b]).flatten().tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def crossfade_weights(overlap: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[O] weights of the later segment in an overlap of O frames: (j + 1) / (O + 1).

    Example:
        >>> crossfade_weights(3).tolist()
        [0.25, 0.5, 0.75]
    """
    return torch.arange(1, overlap + 1, device=device, dtype=dtype) / (overlap + 1)


class SeamJoiner:
    """Streams segments into final, non-overlapping chunks of a long video.

    Args:
        overlap: O, frames shared by consecutive segments (0 <= O < L).
        crossfade: blend the overlaps linearly (True) or keep the earlier segment's frames (False).
        frame_dim: dimension of the frames in a segment tensor.
        total_frames: optional length of the long video; the last chunk is cut to it.
    """

    def __init__(self, overlap: int = 0, crossfade: bool = True, frame_dim: int = 2,
                 total_frames: int | None = None) -> None:
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        self.overlap = int(overlap)
        self.crossfade = bool(crossfade)
        self.frame_dim = frame_dim
        self.total_frames = total_frames
        self.emitted = 0
        self._tail: torch.Tensor | None = None

    def push(self, segment: torch.Tensor, last: bool) -> torch.Tensor:
        """The chunk of the long video that ``segment`` completes ([..., n, ...] along ``frame_dim``).

        Args:
            segment: one segment, L frames along ``frame_dim``.
            last: True for the final segment (its tail is emitted instead of held back).
        """
        dim = self.frame_dim % segment.ndim
        frames = segment.shape[dim]
        o = self.overlap
        if o >= frames:
            raise ValueError(f"overlap ({o}) must be smaller than the segment length ({frames})")
        parts = []
        body_start = 0
        if self._tail is not None and o > 0:
            head = segment.narrow(dim, 0, o)
            if self.crossfade:
                shape = [1] * segment.ndim
                shape[dim] = o
                w = crossfade_weights(o, segment.device, segment.dtype).reshape(shape)
                parts.append(self._tail * (1 - w) + head * w)
            else:
                parts.append(self._tail)
            body_start = o
        body_end = frames if last or o == 0 else frames - o
        parts.append(segment.narrow(dim, body_start, body_end - body_start))
        self._tail = None if last or o == 0 else segment.narrow(dim, frames - o, o).clone()
        chunk = parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)
        if self.total_frames is not None:
            room = max(self.total_frames - self.emitted, 0)
            if chunk.shape[dim] > room or last:
                chunk = chunk.narrow(dim, 0, min(room, chunk.shape[dim]))
        self.emitted += chunk.shape[dim]
        return chunk


def long_video_length(num_segments: int, segment_length: int, overlap: int = 0) -> int:
    """Frames in K segments of L frames with O shared at each seam: K L - (K - 1) O."""
    return num_segments * segment_length - (num_segments - 1) * overlap


def segments_for_frames(total_frames: int, segment_length: int, overlap: int = 0) -> int:
    """The smallest K whose long video has at least ``total_frames`` frames.

    Example:
        >>> segments_for_frames(125, 25), segments_for_frames(126, 25), segments_for_frames(40, 16, 4)
        (5, 6, 3)
    """
    if total_frames < 1:
        raise ValueError(f"total_frames must be >= 1, got {total_frames}")
    if not 0 <= overlap < segment_length:
        raise ValueError(f"overlap must be in 0..{segment_length - 1}, got {overlap}")
    stride = segment_length - overlap
    return max(1, -(-(total_frames - overlap) // stride))


def seam_statistics(chunks: Sequence[torch.Tensor], frame_dim: int = 2, overlap: int = 0) -> dict:
    """Mean absolute frame-to-frame change at the seams between chunks and inside them.

    Args:
        chunks: consecutive pieces of a long video (e.g. the emitted segments), frames along ``frame_dim``.
        overlap: O of the joiner that made the chunks; the O + 1 transitions from the last frame of a chunk
            through the cross-faded frames of the next one form the seam *zone*.

    Returns:
        dict with
        ``seam``: mean over seams of the mean |first frame of chunk i+1 - last frame of chunk i|;
        ``inside``: the same over all consecutive frame pairs within chunks; ``ratio`` = seam / inside;
        ``zone``: mean change over the seam zones, ``outside``: over all other transitions,
        ``zone_ratio`` = zone / outside, ``zone_max_ratio`` = the largest zone transition / outside
        (with O = 0 the zone is the seam itself); ``max_inside``: the largest within-chunk transition.

    Example:
        >>> import torch
        >>> a = torch.arange(4.0).reshape(4, 1)
        >>> seam_statistics([a, a + 6.0], frame_dim=0)["ratio"]
        3.0
    """
    if len(chunks) < 2:
        raise ValueError("need at least two chunks to measure a seam")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    dim = frame_dim % chunks[0].ndim
    video = torch.cat([c.float() for c in chunks], dim=dim).movedim(dim, 0)
    n = video.shape[0]
    change = (video[1:] - video[:-1]).abs().reshape(n - 1, -1).mean(dim=1)      # transition f -> f + 1
    starts = torch.tensor([c.shape[dim] for c in chunks]).cumsum(0)[:-1]       # first frame of chunks 1..
    seam = torch.zeros(n - 1, dtype=torch.bool)
    seam[starts - 1] = True
    zone = torch.zeros(n - 1, dtype=torch.bool)
    for s in starts.tolist():
        zone[s - 1: min(s + overlap, n - 1)] = True
    inside, outside = change[~seam], change[~zone]
    result = {"seam": change[seam].mean().item(), "inside": inside.mean().item(),
              "zone": change[zone].mean().item(), "outside": outside.mean().item(),
              "max_inside": inside.max().item()}
    result["ratio"] = result["seam"] / result["inside"]
    result["zone_ratio"] = result["zone"] / result["outside"]
    result["zone_max_ratio"] = change[zone].max().item() / result["outside"]
    return result
