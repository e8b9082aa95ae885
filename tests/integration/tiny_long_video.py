"""A tiny Cosmos-Predict2 diffusion transformer that ComfyUI's core UNETLoader loads as a video MODEL (random weights).

ComfyUI recognises Cosmos-Predict2 from its key names (``comfy/model_detection.py``: ``blocks.0.mlp.layer1``)
and reads its width from ``x_embedder.proj.1.weight``; depth (10 blocks) and heads (16) are fixed for widths
other than the released 2048 / 5120, and the 3-D rotary embedding needs a head size of at least 12, so the
smallest loadable model is 192 wide (16 heads of 12), 10 blocks: 15.3 M parameters, stored in float16 (31 MB).
It is a real ``comfy.model_base.CosmosPredict2``: a 3-D transformer over (t, h, w) tokens of a 5-D video latent
[B, 16, T, H/8, W/8] (Wan 2.1 latent format, e.g. from EmptyHunyuanLatentVideo), rectified-flow sampling in
EDM sigmas (COSMOS_RFLOW, sigma_max 80), and 1024-wide text tokens (T5 1.0 embeddings) -- the width of the core
``LotusConditioning`` node's output, so a workflow needs no text encoder: LotusConditioning -> positive,
ConditioningZeroOut -> negative. (LTX-Video would be smaller, but its forward requires a text attention mask
that only its own text encoder provides; Wan and Hunyuan need 4096-wide tokens.)

The weights are seeded (the file is the same every time); no ComfyUI import: the key list matches ComfyUI
0.3.75's ``comfy.ldm.cosmos.predict2.MiniTrainDIT`` (a missing key would make ComfyUI log "unet missing").
"""
from __future__ import annotations

import pathlib

import torch

TINY_COSMOS = "tiny_cosmos_predict2_long_video.safetensors"
WIDTH, HEADS, BLOCKS, TEXT, CHANNELS, PATCH, LORA = 192, 16, 10, 1024, 16, 2, 256


def tiny_cosmos_state_dict(seed: int = 0, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """ComfyUI keys of the smallest Cosmos-Predict2 ComfyUI loads (seeded random weights)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    head = WIDTH // HEADS

    def linear(name: str, out_ch: int, in_ch: int, gain: float = 1.0) -> None:
        sd[f"{name}.weight"] = (torch.randn(out_ch, in_ch, generator=g) * (gain / in_ch ** 0.5)).to(dtype)

    linear("t_embedder.1.linear_1", WIDTH, WIDTH)
    linear("t_embedder.1.linear_2", 3 * WIDTH, WIDTH)
    sd["t_embedding_norm.weight"] = torch.ones(WIDTH, dtype=dtype)
    linear("x_embedder.proj.1", WIDTH, (CHANNELS + 1) * PATCH * PATCH)          # + the padding-mask channel
    for i in range(BLOCKS):
        b = f"blocks.{i}"
        for attn, kv in (("self_attn", WIDTH), ("cross_attn", TEXT)):
            linear(f"{b}.{attn}.q_proj", WIDTH, WIDTH)
            linear(f"{b}.{attn}.k_proj", WIDTH, kv)
            linear(f"{b}.{attn}.v_proj", WIDTH, kv)
            linear(f"{b}.{attn}.output_proj", WIDTH, WIDTH, gain=0.5)
            sd[f"{b}.{attn}.q_norm.weight"] = torch.ones(head, dtype=dtype)
            sd[f"{b}.{attn}.k_norm.weight"] = torch.ones(head, dtype=dtype)
        linear(f"{b}.mlp.layer1", 4 * WIDTH, WIDTH)
        linear(f"{b}.mlp.layer2", WIDTH, 4 * WIDTH, gain=0.5)
        for part in ("self_attn", "cross_attn", "mlp"):
            linear(f"{b}.adaln_modulation_{part}.1", LORA, WIDTH)
            linear(f"{b}.adaln_modulation_{part}.2", 3 * WIDTH, LORA, gain=0.5)
    linear("final_layer.linear", PATCH * PATCH * CHANNELS, WIDTH)
    linear("final_layer.adaln_modulation.1", LORA, WIDTH)
    linear("final_layer.adaln_modulation.2", 2 * WIDTH, LORA, gain=0.5)
    return sd


def make_tiny_cosmos(path: pathlib.Path) -> None:
    """Write the tiny Cosmos-Predict2 to ``path`` (a file in ComfyUI's models/diffusion_models)."""
    from safetensors.torch import save_file

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tiny_cosmos_state_dict().items()}, str(path))
