"""A tiny SD 1.5 checkpoint that ComfyUI's CheckpointLoaderSimple loads as MODEL / CLIP / VAE (random weights).

ComfyUI detects a checkpoint's architecture from its tensor shapes (``comfy/model_detection.py``), and SD 1.5
is recognised only with ``model_channels = 320`` and a 768-wide text context; its text encoder is always
built at CLIP-L size from a fixed config, and an SD VAE always at full size, except the tiny TAESD
autoencoder, which ComfyUI accepts as an SD 1.5 VAE (``taesd_decoder.*`` keys). So the smallest SD 1.5 file
ComfyUI accepts is:

- U-Net: ``model_channels`` 320, **one** level (``channel_mult [1]``, no down/upsampling), one ResBlock per
  level with a SpatialTransformer (8 heads, depth 1, context 768), the usual middle block
  (ResBlock, SpatialTransformer, ResBlock) and two output blocks: about 22 M parameters;
- text encoder: CLIP-L shaped (123 M parameters; random, small-scale weights);
- VAE: TAESD (2.4 M parameters, 8x, 4 latent channels).

Stored in float16 (about 300 MB; written in a few seconds). The U-Net's insertion points for AnimateDiff-style
temporal modules are ``input_blocks[1]``, ``middle_block`` after element 1, and ``output_blocks[0]`` and ``[1]``
(one level of ``layers_per_block = 1``): see :data:`UNET` for a matching module config.

Usage (tests): ``make_tiny_sd15(base_dir / "models" / "checkpoints" / TINY_SD15)``; or
``ensure_tiny_sd15(base_dir)`` to write it once per host.
"""
from __future__ import annotations

import pathlib

import torch

TINY_SD15 = "tiny_sd15.safetensors"
"""The file name the example workflows give CheckpointLoaderSimple."""

UNET = {"model_channels": 320, "channel_mult": [1], "num_res_blocks": 1, "context_dim": 768, "num_heads": 8,
        "time_embed_dim": 1280}
"""The U-Net's structure, for callers that build modules to plug into it."""

_CLIP_LAYERS, _CLIP_WIDTH, _CLIP_MLP, _VOCAB, _TOKENS = 12, 768, 3072, 49408, 77


_POOL_SIZE = (1 << 21) + 13   # a prime-ish length, so that tiled slices never repeat row by row


class _Random:
    """Cheap pseudo-random tensors: slices of one uniform pool at random offsets (the CLIP-L alone has 123 M
    weights, and drawing them one by one takes seconds on a small CPU; a random test model needs no more)."""

    def __init__(self, seed: int, dtype: torch.dtype = torch.float32) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.pool = (torch.rand(_POOL_SIZE, generator=self.generator) * 2 - 1).to(dtype)

    def uniform(self, shape: tuple[int, ...], bound: float) -> torch.Tensor:
        n = 1
        for s in shape:
            n *= s
        start = int(torch.randint(0, _POOL_SIZE, (1,), generator=self.generator))
        reps = (start + n) // _POOL_SIZE + 1
        flat = self.pool.repeat(reps)[start:start + n] if reps > 1 else self.pool[start:start + n]
        return (flat * bound).reshape(shape)

    def normal(self, shape: tuple[int, ...], std: float) -> torch.Tensor:
        return self.uniform(shape, std * 3 ** 0.5)                 # same variance


def _uniform(shape: tuple[int, ...], generator: _Random, fan_in: int, gain: float = 1.0) -> torch.Tensor:
    """torch's default Linear/Conv initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (times ``gain``)."""
    return generator.uniform(shape, gain / max(fan_in, 1) ** 0.5)


def _linear(sd: dict, name: str, out_ch: int, in_ch: int, g: _Random, bias: bool = True,
            kernel: int | None = None, gain: float = 1.0) -> None:
    shape = (out_ch, in_ch) if kernel is None else (out_ch, in_ch, kernel, kernel)
    fan_in = in_ch * (1 if kernel is None else kernel * kernel)
    sd[f"{name}.weight"] = _uniform(shape, g, fan_in, gain)
    if bias:
        sd[f"{name}.bias"] = _uniform((out_ch,), g, fan_in, gain)


def _norm(sd: dict, name: str, channels: int) -> None:
    sd[f"{name}.weight"] = torch.ones(channels)
    sd[f"{name}.bias"] = torch.zeros(channels)


def _resblock(sd: dict, p: str, ch_in: int, ch_out: int, emb: int, g: _Random) -> None:
    _norm(sd, f"{p}.in_layers.0", ch_in)
    _linear(sd, f"{p}.in_layers.2", ch_out, ch_in, g, kernel=3)
    _linear(sd, f"{p}.emb_layers.1", ch_out, emb, g)
    _norm(sd, f"{p}.out_layers.0", ch_out)
    _linear(sd, f"{p}.out_layers.3", ch_out, ch_out, g, kernel=3, gain=0.5)
    if ch_in != ch_out:
        _linear(sd, f"{p}.skip_connection", ch_out, ch_in, g, kernel=1)


def _transformer(sd: dict, p: str, ch: int, context: int, g: _Random) -> None:
    _norm(sd, f"{p}.norm", ch)
    _linear(sd, f"{p}.proj_in", ch, ch, g, kernel=1)
    b = f"{p}.transformer_blocks.0"
    for attn, kv in (("attn1", ch), ("attn2", context)):
        _linear(sd, f"{b}.{attn}.to_q", ch, ch, g, bias=False)
        _linear(sd, f"{b}.{attn}.to_k", ch, kv, g, bias=False)
        _linear(sd, f"{b}.{attn}.to_v", ch, kv, g, bias=False)
        _linear(sd, f"{b}.{attn}.to_out.0", ch, ch, g)
    _linear(sd, f"{b}.ff.net.0.proj", 8 * ch, ch, g)          # GEGLU: 2 x 4 ch
    _linear(sd, f"{b}.ff.net.2", ch, 4 * ch, g)
    for i in (1, 2, 3):
        _norm(sd, f"{b}.norm{i}", ch)
    _linear(sd, f"{p}.proj_out", ch, ch, g, kernel=1, gain=0.5)


def tiny_unet_state_dict(generator: _Random, prefix: str = "model.diffusion_model.") -> dict:
    """ComfyUI (ldm) keys of the one-level SD 1.5 U-Net described in the module docstring."""
    ch, emb, ctx = UNET["model_channels"], UNET["time_embed_dim"], UNET["context_dim"]
    sd: dict[str, torch.Tensor] = {}
    g = generator
    _linear(sd, "time_embed.0", emb, ch, g)
    _linear(sd, "time_embed.2", emb, emb, g)
    _linear(sd, "input_blocks.0.0", ch, 4, g, kernel=3)
    _resblock(sd, "input_blocks.1.0", ch, ch, emb, g)
    _transformer(sd, "input_blocks.1.1", ch, ctx, g)
    _resblock(sd, "middle_block.0", ch, ch, emb, g)
    _transformer(sd, "middle_block.1", ch, ctx, g)
    _resblock(sd, "middle_block.2", ch, ch, emb, g)
    for i in (0, 1):                                            # skips from input_blocks 1 and 0 (320 each)
        _resblock(sd, f"output_blocks.{i}.0", 2 * ch, ch, emb, g)
        _transformer(sd, f"output_blocks.{i}.1", ch, ctx, g)
    _norm(sd, "out.0", ch)
    _linear(sd, "out.2", 4, ch, g, kernel=3, gain=0.5)
    return {prefix + k: v for k, v in sd.items()}


def tiny_clip_state_dict(generator: _Random, prefix: str = "cond_stage_model.transformer.") -> dict:
    """CLIP-L text encoder keys (the only size ComfyUI builds for SD 1.5), small random weights."""
    g, w = generator, _CLIP_WIDTH
    sd: dict[str, torch.Tensor] = {
        "text_model.embeddings.token_embedding.weight": g.normal((_VOCAB, w), 0.02),
        "text_model.embeddings.position_embedding.weight": g.normal((_TOKENS, w), 0.01),
    }
    for i in range(_CLIP_LAYERS):
        p = f"text_model.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(sd, f"{p}.self_attn.{proj}", w, w, g)
        _norm(sd, f"{p}.layer_norm1", w)
        _norm(sd, f"{p}.layer_norm2", w)
        _linear(sd, f"{p}.mlp.fc1", _CLIP_MLP, w, g)
        _linear(sd, f"{p}.mlp.fc2", w, _CLIP_MLP, g, gain=0.5)
    _norm(sd, "text_model.final_layer_norm", w)
    sd["text_projection.weight"] = torch.eye(w)
    return {prefix + k: v for k, v in sd.items()}


def _taesd_block(sd: dict, p: str, g: _Random) -> None:
    for j in (0, 2, 4):
        _linear(sd, f"{p}.conv.{j}", 64, 64, g, kernel=3)


def tiny_taesd_state_dict(generator: _Random, prefix: str = "first_stage_model.") -> dict:
    """TAESD encoder/decoder keys (``comfy/taesd/taesd.py`` layout), random weights."""
    g = generator
    sd: dict[str, torch.Tensor] = {}
    enc = "taesd_encoder"
    _linear(sd, f"{enc}.0", 64, 3, g, kernel=3)
    index = 1
    for group in range(4):
        if group:
            _linear(sd, f"{enc}.{index}", 64, 64, g, kernel=3, bias=False)   # stride-2 conv
            index += 1
        for _ in range(1 if group == 0 else 3):
            _taesd_block(sd, f"{enc}.{index}", g)
            index += 1
    _linear(sd, f"{enc}.{index}", 4, 64, g, kernel=3)
    dec = "taesd_decoder"
    _linear(sd, f"{dec}.1", 64, 4, g, kernel=3)
    for base in (3, 8, 13):                                     # 3 blocks, Upsample, bias-free conv
        for k in range(3):
            _taesd_block(sd, f"{dec}.{base + k}", g)
        _linear(sd, f"{dec}.{base + 4}", 64, 64, g, kernel=3, bias=False)
    _taesd_block(sd, f"{dec}.18", g)
    _linear(sd, f"{dec}.19", 3, 64, g, kernel=3)
    sd["vae_scale"] = torch.tensor(1.0)
    sd["vae_shift"] = torch.tensor(0.0)
    return {prefix + k: v for k, v in sd.items()}


def make_tiny_sd15(path: str | pathlib.Path, seed: int = 0, dtype: torch.dtype = torch.float16) -> pathlib.Path:
    """Write the tiny SD 1.5 checkpoint to ``path`` (atomic); returns the path."""
    from safetensors.torch import save_file

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = _Random(seed, dtype)
    sd = {**tiny_unet_state_dict(g), **tiny_clip_state_dict(g), **tiny_taesd_state_dict(g)}
    sd = {k: v.to(dtype).contiguous() for k, v in sd.items()}      # norms and the projection were float32
    tmp = path.with_name(path.name + ".partial")
    save_file(sd, str(tmp))
    tmp.replace(path)
    return path


def ensure_tiny_sd15(base_dir: str | pathlib.Path) -> pathlib.Path:
    """``<base_dir>/models/checkpoints/tiny_sd15.safetensors``, written if absent."""
    path = pathlib.Path(base_dir) / "models" / "checkpoints" / TINY_SD15
    if not path.exists():
        make_tiny_sd15(path)
    return path
