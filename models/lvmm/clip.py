"""CLIP image and text embeddings for LVMM's condition, from the encoder files a ComfyUI user already has.

LVMM conditions its denoiser on ImageBind image and text tokens (two 1024-d tokens; ImageBind is CC-BY-NC and not
available here, and the paper notes that CLIP could serve). A ComfyUI install has CLIP encoders in its model
folders: ``models/clip_vision/*.safetensors`` (the CLIP_VISION of CLIPVisionLoader) and CLIP-L text encoders
(``models/text_encoders/clip_l.safetensors``, or the text encoder inside an SD 1.5 checkpoint). This module
computes, in plain PyTorch + transformers (no ComfyUI, nothing downloaded), exactly what the LVMM node gets from
ComfyUI's own classes at sampling time:

* image: ``image_embeds`` of ComfyUI's ``ClipVisionModel.encode_image`` -- the projected CLS embedding
  [B, projection_dim] after ComfyUI's preprocessing (:func:`clip_preprocess`: bicubic antialiased resize of the
  short side to the encoder's size, centre crop, 8-bit quantisation, CLIP mean / std);
* text: the *unprojected* pooled output of ComfyUI's ``CLIP.encode_from_tokens(tokens, return_pooled=
  "unprojected")`` -- the final-layer-norm state at the first end token [B, hidden] (SD 1.5 checkpoints hold no
  text projection, so the projected one is not defined for them), with ComfyUI's framing of the tokens (start
  token, the text's tokens, end token, padded with the end token to 77; plain text: ComfyUI's ``(word:1.2)``
  weighting syntax is not parsed).

Files are recognised by their keys (``vision_model.*`` / ``text_model.*`` under any prefix, e.g. an SD 1.5
checkpoint's ``cond_stage_model.transformer.``); the architecture comes from a JSON config (ComfyUI's and
transformers' format) or, for the standard encoders, from their known configs (CLIP ViT-L/14, ViT-L/14-336,
ViT-H/14, ViT-bigG/14 vision towers; the CLIP-L text encoder). Each encoder has a *fingerprint* (sums of its
patch or token embedding) that an LVMM checkpoint records, so the node can tell when it is given another encoder
than the model was trained with.
"""
from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass

import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VISION_KEY = "vision_model.embeddings.patch_embedding.weight"
TEXT_KEY = "text_model.embeddings.token_embedding.weight"
START_TOKEN, END_TOKEN, MAX_TOKENS = 49406, 49407, 77

_COMMON_VISION = {"model_type": "clip_vision_model", "attention_dropout": 0.0, "dropout": 0.0, "num_channels": 3,
                  "layer_norm_eps": 1e-5, "patch_size": 14}
KNOWN_VISION = {  # (hidden size, layers, positions) -> config; ComfyUI's clip_vision_config_*.json
    (1024, 24, 257): {**_COMMON_VISION, "hidden_act": "quick_gelu", "hidden_size": 1024, "image_size": 224,
                      "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
                      "projection_dim": 768},
    (1024, 24, 577): {**_COMMON_VISION, "hidden_act": "quick_gelu", "hidden_size": 1024, "image_size": 336,
                      "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
                      "projection_dim": 768},
    (1280, 32, 257): {**_COMMON_VISION, "hidden_act": "gelu", "hidden_size": 1280, "image_size": 224,
                      "intermediate_size": 5120, "num_attention_heads": 16, "num_hidden_layers": 32,
                      "projection_dim": 1024},
    (1664, 48, 257): {**_COMMON_VISION, "hidden_act": "gelu", "hidden_size": 1664, "image_size": 224,
                      "intermediate_size": 8192, "num_attention_heads": 16, "num_hidden_layers": 48,
                      "projection_dim": 1280},
}
KNOWN_TEXT = {  # (hidden size, layers) -> config; ComfyUI's sd1_clip_config.json (CLIP-L)
    (768, 12): {"model_type": "clip_text_model", "hidden_act": "quick_gelu", "hidden_size": 768,
                "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
                "max_position_embeddings": 77, "vocab_size": 49408, "layer_norm_eps": 1e-5, "projection_dim": 768,
                "bos_token_id": START_TOKEN, "eos_token_id": END_TOKEN, "pad_token_id": 1},
}


def clip_preprocess(image: torch.Tensor, size: int = 224, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """ComfyUI's CLIP vision preprocessing of pictures [B, 3, H, W] in [0, 1] -> [B, 3, size, size] normalised.

    The short side is resized to ``size`` (bicubic, antialiased), the centre cropped, the values quantised to
    8 bits and normalised with ``mean`` / ``std`` (``comfy.clip_vision.clip_preprocess`` with crop=True).
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be [B, 3, H, W], got {tuple(image.shape)}")
    mean = torch.tensor(mean, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    std = torch.tensor(std, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    if image.shape[-2:] != (size, size):
        scale = size / min(image.shape[-2:])
        scaled = (round(scale * image.shape[-2]), round(scale * image.shape[-1]))
        image = torch.nn.functional.interpolate(image, size=scaled, mode="bicubic", antialias=True)
        top, left = (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
        image = image[..., top:top + size, left:left + size]
    image = torch.clip(255.0 * image, 0, 255).round() / 255.0
    return (image - mean) / std


def fingerprint(weight: torch.Tensor) -> float:
    """Sum of an embedding matrix in float64. Another encoder's sum differs by about the matrix's L2 norm (a sum
    of n weights of spread s varies by s sqrt(n)); storing the same weights in float16 or bfloat16 moves it by
    under 1 % of that."""
    return float(weight.detach().double().sum())


def fingerprint_scale(weight: torch.Tensor) -> float:
    """The L2 norm of the matrix: the scale :func:`fingerprints_match` compares differences with."""
    return float(weight.detach().double().norm())


def fingerprints_match(a: float, b: float, scale: float) -> bool:
    """Whether two fingerprints are of the same weights (``scale``: :func:`fingerprint_scale`)."""
    return abs(a - b) <= 0.02 * max(abs(scale), 1e-12)


def _read_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from ..renderer.backbones import load_state_file

    return load_state_file(path)


def _strip_prefix(state: dict[str, torch.Tensor], anchor: str, what: str, path) -> dict[str, torch.Tensor]:
    prefixes = [k[:-len(anchor)] for k in state if k.endswith(anchor)]
    if not prefixes:
        raise ValueError(f"{os.path.basename(os.fspath(path))}: not a {what} (no '{anchor}' key; open_clip-format "
                         "files are not supported: use the transformers-format file ComfyUI loads)")
    prefix = sorted(prefixes, key=len)[0]
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _count_layers(state: dict[str, torch.Tensor], stem: str) -> int:
    indices = {int(k[len(stem):].split(".")[0]) for k in state if k.startswith(stem)}
    return max(indices) + 1 if indices else 0


def _config(path, known: dict, key: tuple, config: str | os.PathLike | dict | None, what: str) -> dict:
    if config is not None:
        if isinstance(config, dict):
            return dict(config)
        with open(config) as f:
            return json.load(f)
    if key not in known:
        raise ValueError(f"{os.path.basename(os.fspath(path))}: a {what} of unknown shape {key}; give its JSON config "
                         "(ComfyUI's / transformers' format)")
    return dict(known[key])


def _materialize(model: torch.nn.Module, state: dict[str, torch.Tensor], path, kind: str) -> None:
    """Fill a model built on the meta device with ``state`` (float32); its position-id buffers are rebuilt."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("position_ids")]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        problem = f"missing {missing[:3]}" if missing else f"other shapes {wrong[:3]}"
        raise ValueError(f"{os.path.basename(os.fspath(path))}: CLIP {kind} weights do not match its config "
                         f"({problem})")
    model.to_empty(device="cpu")
    model.load_state_dict({k: v.float() for k, v in state.items() if k in own}, strict=False)
    for name, buffer in model.named_buffers():
        if name.endswith("position_ids"):
            buffer.copy_(torch.arange(buffer.shape[-1]).expand_as(buffer))


@dataclass
class EncoderInfo:
    """What an LVMM checkpoint records about an encoder: its file name, embedding width and fingerprint."""

    name: str
    dim: int
    fingerprint: float
    scale: float


def _describe(path, anchor: str, width_key: str, what: str, width_dim: int) -> EncoderInfo:
    """Name, embedding width and fingerprint of an encoder file, reading only the tensors needed (safetensors)."""
    path = os.fspath(path)
    if path.endswith(".safetensors") and os.path.isfile(path):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            keys = list(f.keys())
            prefixes = sorted((k[:-len(anchor)] for k in keys if k.endswith(anchor)), key=len)
            if not prefixes:
                raise ValueError(f"{os.path.basename(path)}: not a {what} (no '{anchor}' key; open_clip-format "
                                 "files are not supported: use the transformers-format file ComfyUI loads)")
            weight = f.get_tensor(prefixes[0] + anchor)
            if prefixes[0] + width_key not in keys:
                raise ValueError(f"{os.path.basename(path)}: no '{width_key}' in this {what}")
            width = f.get_slice(prefixes[0] + width_key).get_shape()[width_dim]
    else:
        state = _strip_prefix(_read_state(path), anchor, what, path)
        if width_key not in state:
            raise ValueError(f"{os.path.basename(path)}: no '{width_key}' in this {what}")
        weight, width = state[anchor], state[width_key].shape[width_dim]
    return EncoderInfo(os.path.basename(path), int(width), fingerprint(weight), fingerprint_scale(weight))


def describe_clip_vision(path: str | os.PathLike) -> EncoderInfo:
    """What an LVMM records about a CLIP vision file: name, ``projection_dim``, fingerprint."""
    return _describe(path, VISION_KEY, "visual_projection.weight", "CLIP vision model", 0)


def describe_clip_text(path: str | os.PathLike) -> EncoderInfo:
    """What an LVMM records about a CLIP text encoder file: name, hidden size (the pooled width), fingerprint."""
    return _describe(path, TEXT_KEY, "text_model.final_layer_norm.weight", "CLIP text encoder", 0)


class ClipVisionEmbedder:
    """The user's CLIP vision tower: ``embed(pictures [B, 3, H, W] in [0, 1]) -> image_embeds [B, projection_dim]``.

    Args:
        path: a ComfyUI ``clip_vision`` file (transformers keys ``vision_model.*``, ``visual_projection.weight``).
        config: its JSON config (path or dict); default: the standard config its shapes identify.
    """

    def __init__(self, path: str | os.PathLike, config: str | os.PathLike | dict | None = None,
                 device: str | torch.device = "cpu"):
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        state = _strip_prefix(_read_state(path), VISION_KEY, "CLIP vision model", path)
        hidden = state[VISION_KEY].shape[0]
        key = (hidden, _count_layers(state, "vision_model.encoder.layers."),
               state["vision_model.embeddings.position_embedding.weight"].shape[0])
        values = _config(path, KNOWN_VISION, key, config, "CLIP vision model")
        self.image_size = int(values.get("image_size", 224))
        self.mean = tuple(values.get("image_mean", CLIP_MEAN))
        self.std = tuple(values.get("image_std", CLIP_STD))
        fields = {k: v for k, v in values.items() if k not in ("image_mean", "image_std", "torch_dtype")}
        with torch.device("meta"):
            model = CLIPVisionModelWithProjection(CLIPVisionConfig(**fields))
        _materialize(model, state, path, "vision")
        self.model = model.to(device).eval().requires_grad_(False)
        weight = state[VISION_KEY]
        self.info = EncoderInfo(os.path.basename(os.fspath(path)), int(model.config.projection_dim),
                                fingerprint(weight), fingerprint_scale(weight))

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        pixels = clip_preprocess(images.float().to(device), self.image_size, self.mean, self.std)
        return self.model(pixel_values=pixels).image_embeds.float()


class ClipTextEmbedder:
    """The user's CLIP-L text encoder: ``embed(["a prompt", ...]) -> pooled [B, hidden]`` (unprojected).

    Args:
        path: ``clip_l.safetensors``, an SD 1.5 checkpoint, or any file with ``text_model.*`` keys.
        tokenizer: folder of the CLIP BPE tokenizer (vocab.json, merges.txt; ComfyUI's ``comfy/sd1_tokenizer``).
        config: the text model's JSON config; default: CLIP-L's when the shapes are CLIP-L's.
    """

    def __init__(self, path: str | os.PathLike, tokenizer: str | os.PathLike, config=None,
                 device: str | torch.device = "cpu"):
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

        state = _strip_prefix(_read_state(path), TEXT_KEY, "CLIP text encoder", path)
        key = (state[TEXT_KEY].shape[1], _count_layers(state, "text_model.encoder.layers."))
        values = _config(path, KNOWN_TEXT, key, config, "CLIP text encoder")
        values.update(bos_token_id=START_TOKEN, eos_token_id=END_TOKEN)  # pooled at the first end token
        fields = {k: v for k, v in values.items() if k not in ("torch_dtype", "architectures", "_name_or_path",
                                                               "transformers_version")}
        with torch.device("meta"):
            model = CLIPTextModelWithProjection(CLIPTextConfig(**fields))
        if "text_projection.weight" not in state:  # SD 1.5 checkpoints have none; the pooled output does not use it
            state = {**state, "text_projection.weight": torch.eye(model.config.projection_dim,
                                                                   model.config.hidden_size)}
        _materialize(model, state, path, "text")
        self.model = model.to(device).eval().requires_grad_(False)
        folder = pathlib.Path(tokenizer)
        if not (folder / "vocab.json").is_file() or not (folder / "merges.txt").is_file():
            raise ValueError(f"tokenizer folder {os.fspath(folder)!r} has no vocab.json / merges.txt")
        self.tokenizer = CLIPTokenizer.from_pretrained(os.fspath(folder), local_files_only=True)
        weight = state[TEXT_KEY]
        self.info = EncoderInfo(os.path.basename(os.fspath(path)), int(model.config.hidden_size), fingerprint(weight),
                                fingerprint_scale(weight))

    def token_ids(self, text: str) -> list[int]:
        """ComfyUI's framing of a plain-text prompt: start, tokens (at most 75), end, end-token padding to 77."""
        ids = self.tokenizer(str(text))["input_ids"][1:-1][:MAX_TOKENS - 2]
        ids = [START_TOKEN, *ids, END_TOKEN]
        return ids + [END_TOKEN] * (MAX_TOKENS - len(ids))

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        ids = torch.tensor([self.token_ids(t) for t in texts], device=device)
        return self.model.text_model(input_ids=ids).pooler_output.float()


def default_tokenizer_folder() -> pathlib.Path | None:
    """ComfyUI's CLIP tokenizer when the pack is installed in ``ComfyUI/custom_nodes/<pack>`` (else None)."""
    folder = pathlib.Path(__file__).absolute().parents[4] / "comfy" / "sd1_tokenizer"
    return folder if (folder / "vocab.json").is_file() else None
