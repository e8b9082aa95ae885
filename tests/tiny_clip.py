"""Tiny CLIP encoders in the file formats ComfyUI users have (random weights; for LVMM's CLIP condition tests).

* vision: transformers-format keys (``vision_model.*``, ``visual_projection.weight``) like the files in
  ``models/clip_vision``, with a JSON config in ComfyUI's ``clip_vision_config_*.json`` format;
* text: a CLIP-L-format text encoder (``text_model.*``, full 49408-token vocabulary so ComfyUI's tokenizer works)
  under an SD 1.5 checkpoint's ``cond_stage_model.transformer.`` prefix, with its JSON config.
"""
from __future__ import annotations

import json
import pathlib

import torch

VISION_CONFIG = {"model_type": "clip_vision_model", "hidden_act": "quick_gelu", "hidden_size": 32,
                 "image_size": 32, "intermediate_size": 64, "layer_norm_eps": 1e-5, "num_attention_heads": 2,
                 "num_channels": 3, "num_hidden_layers": 2, "patch_size": 8, "projection_dim": 24,
                 "attention_dropout": 0.0, "dropout": 0.0}
TEXT_CONFIG = {"model_type": "clip_text_model", "hidden_act": "quick_gelu", "hidden_size": 32,
               "intermediate_size": 64, "layer_norm_eps": 1e-5, "num_attention_heads": 2, "num_hidden_layers": 2,
               "max_position_embeddings": 77, "vocab_size": 49408, "projection_dim": 32, "bos_token_id": 49406,
               "eos_token_id": 49407, "pad_token_id": 1, "attention_dropout": 0.0, "dropout": 0.0}
TEXT_PREFIX = "cond_stage_model.transformer."
ROOT = pathlib.Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / ".host" / "ComfyUI" / "comfy" / "sd1_tokenizer"


def make_tiny_clip(folder: pathlib.Path, seed: int = 0) -> dict[str, pathlib.Path]:
    """Write ``clip_vision_tiny.safetensors``, ``sd15_text_tiny.safetensors`` and their JSON configs into
    ``folder``; return their paths (keys vision, vision_config, text, text_config)."""
    from safetensors.torch import save_file
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(**{k: v for k, v in VISION_CONFIG.items()
                                                              if k != "model_type"}))
    text = CLIPTextModelWithProjection(CLIPTextConfig(**{k: v for k, v in TEXT_CONFIG.items() if k != "model_type"}))
    paths = {"vision": folder / "clip_vision_tiny.safetensors", "vision_config": folder / "clip_vision_tiny.json",
             "text": folder / "sd15_text_tiny.safetensors", "text_config": folder / "sd15_text_tiny.json"}
    save_file({k: v.contiguous() for k, v in vision.state_dict().items() if "position_ids" not in k},
              str(paths["vision"]))
    save_file({TEXT_PREFIX + k: v.contiguous() for k, v in text.state_dict().items() if "position_ids" not in k},
              str(paths["text"]))
    paths["vision_config"].write_text(json.dumps(VISION_CONFIG))
    paths["text_config"].write_text(json.dumps(TEXT_CONFIG))
    return paths
