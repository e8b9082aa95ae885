"""AnimateDiff-style temporal modules, with Motion-I2V's motion-augmented temporal attention.

Written from the Motion-I2V paper (section 3.3) and the AnimateDiff design, with diffusers' ``Attention`` and
``FeedForward``. Parameter names follow the released checkpoints (``temporal_transformer.norm``,
``...transformer_blocks.0.attention_blocks.{0,1}.{to_q,to_k,to_v,to_out.0,pos_encoder.pe}``, ``norms``,
``ff``, ``ff_norm``, ``proj_out``), so the official state dicts load without renaming.

Layout: spatial blocks work on frames folded into the batch, ``[(B*F), C, H, W]``, video-major (the ``F``
frames of video 0, then those of video 1, ...). A temporal module attends along ``F`` at every pixel.

Two attention modes share the same weights:

- vanilla (stage 1, or stage 2 without flows): self-attention over the ``F`` frames at each pixel;
- motion-augmented (stage 2, ``flows`` given): the reference features ``z[0]`` are forward-splatted to every
  frame, ``z[i]' = splat(z[0], f_{0->i})``; keys and values come from the interleaved sequence
  ``[z[0], z[1]', z[1], ..., z[N]', z[N]]`` (``2F - 1`` tokens with the sinusoidal positions of that
  sequence), queries from the ``F`` real frames (the even positions).

Reference pairing (:func:`reference_pairing`): with several videos in the batch (the classifier-free guidance
pair), whose reference features does frame i of video b warp? ``"per video"``: its own video's. ``"official"``:
those the official motion module pairs with it. It tiles the B references with ``.repeat(F-1, 1, 1, 1)``
against batch-major flows, so warped frame j (frame j + 1) of video b takes the reference of video
``(b (F-1) + j) mod B``: with the guidance pair and 16 frames, frames 2, 4, ... of each branch take the other
branch's reference features. The weights were trained and demonstrated with that tiling; with one video in the
batch both pairings are the same.

Example:
    >>> import torch
    >>> module = TemporalModule(channels=32, num_attention_heads=4, norm_num_groups=8)
    >>> x = torch.randn(2 * 5, 32, 6, 7)                 # 2 videos of 5 frames
    >>> module(x, num_frames=5).shape
    torch.Size([10, 32, 6, 7])
    >>> flows = torch.zeros(1, 5, 2, 24, 28)             # pixels at 24x28, shared by both videos
    >>> module(x, num_frames=5, flows=flows).shape
    torch.Size([10, 32, 6, 7])
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import nn

MAX_ATTENTION_BATCH = 16384
"""Rows of (video x pixel) sequences per attention call; larger batches are chunked (some CUDA kernels fail
above 65535 x heads)."""


class SinusoidalPositions(nn.Module):
    """Adds a fixed sinusoidal table to ``[N, L, C]`` sequences (sin on even channels, cos on odd ones).

    The table is a persistent buffer named ``pe`` of shape ``[1, max_len, C]`` because the released
    checkpoints store it.
    """

    def __init__(self, dim: int, max_len: int = 32) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"the positional table needs an even channel count, got {dim}")
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        table = torch.zeros(1, max_len, dim)
        table[0, :, 0::2] = torch.sin(position * frequency)
        table[0, :, 1::2] = torch.cos(position * frequency)
        self.register_buffer("pe", table)

    @property
    def max_len(self) -> int:
        return self.pe.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence of {x.shape[1]} tokens exceeds the {self.max_len} learnt positions")
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


def resize_flows(flows: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize pixel displacements ``[..., 2, Hf, Wf]`` to ``size`` (bilinear) and rescale the vectors.

    Example:
        >>> resize_flows(torch.full((1, 2, 16, 16), 4.0), (8, 8))[0, :, 0, 0].tolist()
        [2.0, 2.0]
    """
    if flows.ndim < 3 or flows.shape[-3] != 2:
        raise ValueError(f"flows must have shape [..., 2, H, W], got {tuple(flows.shape)}")
    lead, (hf, wf) = flows.shape[:-3], flows.shape[-2:]
    h, w = size
    flat = flows.reshape(-1, 2, hf, wf).float()
    if (hf, wf) != (h, w):
        flat = F.interpolate(flat, size=(h, w), mode="bilinear", align_corners=False)
        flat = flat * flat.new_tensor([w / wf, h / hf]).view(1, 2, 1, 1)
    return flat.reshape(*lead, 2, h, w)


def _flows_per_video(flows: torch.Tensor, batch: int, num_frames: int) -> torch.Tensor:
    """Check ``[Bf, F, 2, H, W]`` flows and tile them to ``batch`` videos (``batch`` a multiple of ``Bf``)."""
    if flows.ndim == 4:
        flows = flows[None]
    if flows.ndim != 5 or flows.shape[2] != 2:
        raise ValueError(f"flows must have shape [F, 2, H, W] or [B, F, 2, H, W], got {tuple(flows.shape)}")
    if flows.shape[1] != num_frames:
        raise ValueError(f"flows cover {flows.shape[1]} frames but the features have {num_frames}")
    if batch % flows.shape[0]:
        raise ValueError(f"{flows.shape[0]} flow sets cannot be shared by {batch} videos")
    return flows.repeat(batch // flows.shape[0], 1, 1, 1, 1)


PAIRINGS = ("official", "per video")
"""Names of the reference pairings (:func:`reference_pairing`)."""

def reference_pairing(batch: int, num_frames: int, pairing: str | torch.Tensor = "official",
                      order: list[int] | None = None) -> torch.Tensor:
    """Which video's reference features each warped frame takes: ``[B, F-1]`` long video indices.

    Args:
        batch: ``B`` videos in the batch.
        num_frames: ``F`` frames per video (frame 0 = the reference).
        pairing: ``"official"`` (the official ``.repeat(F-1, 1, 1, 1)`` tiling: warped frame j of the video at
            position p takes the reference of the video at position ``(p (F-1) + j) mod B``), ``"per video"``
            (its own), or a ``[B, F-1]`` index tensor, returned as it is after a check.
        order: for ``"official"``: the position of each video of this batch in the official batch (a
            permutation of ``0..B-1``; the official batch is ``[uncond, cond]``); default: the batch order.

    Example:
        >>> reference_pairing(2, 4).tolist()                  # the guidance pair, 4 frames
        [[0, 1, 0], [1, 0, 1]]
        >>> reference_pairing(2, 4, order=[1, 0]).tolist()     # a batch ordered [cond, uncond]
        [[0, 1, 0], [1, 0, 1]]
        >>> reference_pairing(2, 5).tolist()                  # an even number of warped frames
        [[0, 1, 0, 1], [0, 1, 0, 1]]
        >>> reference_pairing(2, 5, "per video").tolist()
        [[0, 0, 0, 0], [1, 1, 1, 1]]
    """
    warped = num_frames - 1
    if torch.is_tensor(pairing):
        if pairing.shape != (batch, warped) or pairing.dtype != torch.long:
            raise ValueError(f"a pairing index must be a [B, F-1] = {[batch, warped]} long tensor, got "
                             f"{tuple(pairing.shape)} {pairing.dtype}")
        if pairing.numel() and (pairing.min() < 0 or pairing.max() >= batch):
            raise ValueError(f"pairing indices must name one of the {batch} videos")
        return pairing
    if pairing == "per video":
        return torch.arange(batch)[:, None].expand(batch, warped).clone()
    if pairing != "official":
        raise ValueError(f"pairing must be one of {PAIRINGS} or an index tensor, got {pairing!r}")
    position = torch.arange(batch) if order is None else torch.as_tensor(order, dtype=torch.long)
    if sorted(position.tolist()) != list(range(batch)):
        raise ValueError(f"order must be a permutation of 0..{batch - 1}, got {list(order)}")
    video_at = torch.empty_like(position)
    video_at[position] = torch.arange(batch)
    slots = (position[:, None] * warped + torch.arange(warped)[None]) % batch
    return video_at[slots]


def splat_reference(tokens: torch.Tensor, flows: torch.Tensor, num_frames: int, size: tuple[int, int],
                    pairing: str | torch.Tensor = "official") -> torch.Tensor:
    """Forward-splat the reference frame's tokens to frames 1..F-1 (average splatting, no metric).

    Args:
        tokens: ``[(B*F), H*W, C]`` features, frame 0 of each video being the reference.
        flows: ``[F, 2, Hf, Wf]`` or ``[Bf, F, 2, Hf, Wf]`` reference-anchored displacements in pixels at
            ``Hf x Wf``; frame 0's flow is ignored. ``Bf`` must divide ``B`` (tiled, video-major).
        num_frames: ``F``.
        size: ``(H, W)`` of the token grid.
        pairing: whose reference each warped frame of each video takes (:func:`reference_pairing`); the
            flows are always the video's own.

    Returns:
        ``[B, F-1, H*W, C]`` warped reference features ``z[i]'`` for i = 1..F-1 (zero where nothing lands).
    """
    from ...ops.splat import softsplat

    h, w = size
    bf, hw, c = tokens.shape
    if hw != h * w:
        raise ValueError(f"{hw} tokens do not form a {h}x{w} grid")
    batch = bf // num_frames
    flows = _flows_per_video(flows, batch, num_frames)
    flows = resize_flows(flows[:, 1:], size).reshape(batch * (num_frames - 1), 2, h, w)
    index = reference_pairing(batch, num_frames, pairing).to(tokens.device).reshape(-1)
    reference = tokens.reshape(batch, num_frames, h, w, c)[:, 0].permute(0, 3, 1, 2)  # [B, C, H, W]
    reference = reference.detach().float()[index]                                      # [B*(F-1), C, H, W]
    warped = softsplat(reference, flows.to(reference.device), metric=None, mode="avg")
    warped = warped.to(tokens.dtype).reshape(batch, num_frames - 1, c, hw).transpose(2, 3)
    return warped


def interleave(real: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
    """``[B, F, ...]`` real and ``[B, F-1, ...]`` warped -> ``[B, 2F-1, ...]`` = ``[z0, z1', z1, ..., zN', zN]``."""
    batch, frames = real.shape[:2]
    if warped.shape[:2] != (batch, frames - 1) or warped.shape[2:] != real.shape[2:]:
        raise ValueError(f"warped {tuple(warped.shape)} does not pair with real {tuple(real.shape)}")
    out = real.new_empty(batch, 2 * frames - 1, *real.shape[2:])
    out[:, 0::2] = real
    out[:, 1::2] = warped
    return out


class TemporalAttention(Attention):
    """Temporal self-attention of one pixel's frames, optionally motion-augmented.

    A diffusers ``Attention`` (``to_q`` without bias, ``to_k``, ``to_v``, ``to_out.0``) plus the sinusoidal
    ``pos_encoder``. ``forward`` takes frame-major tokens, not the diffusers signature:

    Args (forward):
        hidden: ``[(B*F), H*W, C]`` normalised tokens.
        num_frames: ``F``.
        size: ``(H, W)`` of the token grid (needed only with ``flows``).
        flows: ``None`` for plain temporal self-attention; else ``[F, 2, Hf, Wf]`` or
            ``[Bf, F, 2, Hf, Wf]`` reference-anchored pixel displacements (frame 0 = reference) for the
            motion-augmented attention of Motion-I2V stage 2.
        pairing: whose reference features each video's frames warp (:func:`reference_pairing`).

    Returns:
        ``[(B*F), H*W, C]``.
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int | None = None, positional: bool = True,
                 max_len: int = 32) -> None:
        dim_head = dim // heads if dim_head is None else dim_head
        super().__init__(query_dim=dim, heads=heads, dim_head=dim_head, bias=False, out_bias=True)
        self.pos_encoder = SinusoidalPositions(dim, max_len) if positional else None

    def _attend(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """diffusers attention (SDPA processor), chunked over the batch of pixel sequences."""
        if queries.shape[0] <= MAX_ATTENTION_BATCH:
            return super().forward(queries, encoder_hidden_states=keys)
        return torch.cat([super(TemporalAttention, self).forward(q, encoder_hidden_states=k)
                          for q, k in zip(queries.split(MAX_ATTENTION_BATCH), keys.split(MAX_ATTENTION_BATCH))])

    def _positions(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.pos_encoder is None else self.pos_encoder(x)

    def forward(self, hidden: torch.Tensor, num_frames: int, size: tuple[int, int] | None = None,
                flows: torch.Tensor | None = None,
                pairing: str | torch.Tensor = "official") -> torch.Tensor:  # type: ignore[override]
        if hidden.ndim != 3:
            raise ValueError(f"hidden must be [(B*F), H*W, C] tokens, got {tuple(hidden.shape)}")
        bf, hw, c = hidden.shape
        if num_frames < 1 or bf % num_frames:
            raise ValueError(f"batch {bf} is not a whole number of {num_frames}-frame videos")
        batch = bf // num_frames
        real = hidden.reshape(batch, num_frames, hw, c)
        if flows is None or num_frames == 1:
            seq = real.permute(0, 2, 1, 3).reshape(batch * hw, num_frames, c)
            seq = self._positions(seq)
            out = self._attend(seq, seq)
        else:
            if size is None:
                raise ValueError("motion-augmented attention needs the token grid size (H, W)")
            warped = splat_reference(hidden, flows, num_frames, size, pairing)  # [B, F-1, HW, C]
            seq = interleave(real, warped)                                      # [B, 2F-1, HW, C]
            seq = seq.permute(0, 2, 1, 3).reshape(batch * hw, 2 * num_frames - 1, c)
            seq = self._positions(seq)
            out = self._attend(seq[:, 0::2].contiguous(), seq)                 # queries: the real frames
        return out.reshape(batch, hw, num_frames, c).permute(0, 2, 1, 3).reshape(bf, hw, c)


class TemporalTransformerBlock(nn.Module):
    """Pre-norm temporal attentions (``attention_blocks`` with ``norms``) then a GEGLU feed-forward."""

    def __init__(self, dim: int, heads: int, dim_head: int, num_attention_blocks: int = 2, positional: bool = True,
                 max_len: int = 32) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [TemporalAttention(dim, heads, dim_head, positional, max_len) for _ in range(num_attention_blocks)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(num_attention_blocks)])
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, num_frames: int, size: tuple[int, int] | None = None,
                flows: torch.Tensor | None = None, pairing: str | torch.Tensor = "official") -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x), num_frames, size, flows, pairing) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    """GroupNorm per frame, linear in, temporal transformer blocks, linear out (zero-initialised), residual."""

    def __init__(self, channels: int, num_attention_heads: int = 8, num_layers: int = 1, num_attention_blocks: int = 2,
                 norm_num_groups: int = 32, positional: bool = True, max_len: int = 32, dim_div: int = 1) -> None:
        super().__init__()
        dim_head = channels // num_attention_heads // dim_div
        inner = num_attention_heads * dim_head
        self.norm = nn.GroupNorm(norm_num_groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList([
            TemporalTransformerBlock(inner, num_attention_heads, dim_head, num_attention_blocks, positional, max_len)
            for _ in range(num_layers)])
        self.proj_out = nn.Linear(inner, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, hidden: torch.Tensor, num_frames: int, flows: torch.Tensor | None = None,
                pairing: str | torch.Tensor = "official") -> torch.Tensor:
        bf, c, h, w = hidden.shape
        x = self.norm(hidden).permute(0, 2, 3, 1).reshape(bf, h * w, c)
        x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, num_frames, (h, w), flows, pairing)
        x = self.proj_out(x)
        return x.reshape(bf, h, w, c).permute(0, 3, 1, 2) + hidden


class TemporalModule(nn.Module):
    """One motion module (AnimateDiff "Vanilla" type): ``forward(hidden [(B*F), C, H, W], num_frames, flows)``.

    Args:
        channels: ``C``.
        num_attention_heads: temporal heads (8 in Motion-I2V).
        num_transformer_block: temporal transformer blocks (1).
        num_attention_blocks: temporal self-attentions per block (2).
        norm_num_groups: groups of the input GroupNorm (32).
        temporal_position_encoding: add the sinusoidal table (True).
        max_len: learnt positions (32; motion-augmented attention needs ``2F - 1`` of them).

    ``forward(hidden, num_frames, flows=None, pairing="official")`` returns ``[(B*F), C, H, W]``; with ``flows``
    (see :class:`TemporalAttention`) every attention of the module is motion-augmented, as in Motion-I2V stage 2,
    the reference features paired with the videos as ``pairing`` says (:func:`reference_pairing`).
    """

    def __init__(self, channels: int, num_attention_heads: int = 8, num_transformer_block: int = 1,
                 num_attention_blocks: int = 2, norm_num_groups: int = 32, temporal_position_encoding: bool = True,
                 max_len: int = 32, dim_div: int = 1) -> None:
        super().__init__()
        self.temporal_transformer = TemporalTransformer(
            channels, num_attention_heads, num_transformer_block, num_attention_blocks, norm_num_groups,
            temporal_position_encoding, max_len, dim_div)

    def forward(self, hidden: torch.Tensor, num_frames: int, flows: torch.Tensor | None = None,
                pairing: str | torch.Tensor = "official") -> torch.Tensor:
        if hidden.ndim != 4:
            raise ValueError(f"hidden must be [(B*F), C, H, W], got {tuple(hidden.shape)}")
        if num_frames < 1 or hidden.shape[0] % num_frames:
            raise ValueError(f"batch {hidden.shape[0]} is not a whole number of {num_frames}-frame videos")
        return self.temporal_transformer(hidden, num_frames, flows, pairing)


def temporal_module_from_config(channels: int, config: dict) -> TemporalModule:
    """Build a :class:`TemporalModule` from a U-Net config (``norm_num_groups`` and ``motion_module``)."""
    mm = config["motion_module"]
    return TemporalModule(
        channels,
        num_attention_heads=mm["num_attention_heads"],
        num_transformer_block=mm["num_transformer_block"],
        num_attention_blocks=mm["num_attention_blocks"],
        norm_num_groups=config["norm_num_groups"],
        temporal_position_encoding=mm["temporal_position_encoding"],
        max_len=mm["max_len"],
        dim_div=mm.get("dim_div", 1),
    )
