"""LVMM's CLIP condition against ComfyUI's own encoder classes, in-process (no server): prints one JSON object.

Run by tests/integration/test_integration_lvmm_clip.py as a subprocess (``python lvmm_clip_inprocess.py DIR``),
so that ComfyUI's modules never enter the pytest process. With the tiny CLIP files of ``tests/tiny_clip.py``:

* ComfyUI's ``ClipVisionModel`` (built from the tiny JSON config, loaded with the file's weights) and
  ``CLIP`` (``SD1Tokenizer`` + ``SDClipModel`` with the tiny text config) give the embeddings the trainer's
  ``models/lvmm/clip.py`` computes from the same files;
* the node's ``clip_condition`` returns them from those ComfyUI objects, and refuses another encoder (fingerprint),
  another width, or a missing one with the node's error.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

from inprocess import setup_host


def main(folder: pathlib.Path) -> dict:
    setup_host()
    import comfy.clip_vision
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models_base
    import torch
    from safetensors.torch import load_file
    from tiny_clip import TEXT_CONFIG, TEXT_PREFIX, TOKENIZER, make_tiny_clip

    from imagedynamics.models.lvmm.clip import (
        ClipTextEmbedder,
        ClipVisionEmbedder,
        describe_clip_text,
        describe_clip_vision,
    )
    from imagedynamics.models.lvmm.config import EncoderConfig
    from imagedynamics.nodes.common import NodeInputError
    from imagedynamics.nodes.motion.lvmm_condition import clip_condition

    files = make_tiny_clip(folder)
    other = make_tiny_clip(folder / "other", seed=1)
    torch.manual_seed(0)
    picture = torch.rand(1, 48, 64, 3)  # ComfyUI IMAGE [B, H, W, C]
    prompt = "a flag waving in the wind"

    vision = comfy.clip_vision.ClipVisionModel(str(files["vision_config"]))
    vision.load_sd(load_file(str(files["vision"])))
    comfy_image = vision.encode_image(picture)["image_embeds"].float()
    ours_image = ClipVisionEmbedder(files["vision"], files["vision_config"]).embed(picture.permute(0, 3, 1, 2))

    target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    target.params = {"clip_model": comfy.sd1_clip.SDClipModel, "textmodel_json_config": dict(TEXT_CONFIG)}
    clip = comfy.sd.CLIP(target)
    clip.load_sd({k[len(TEXT_PREFIX):]: v for k, v in load_file(str(files["text"])).items()})
    _, comfy_text = clip.encode_from_tokens(clip.tokenize(prompt), return_pooled="unprojected")
    ours_text = ClipTextEmbedder(files["text"], TOKENIZER, files["text_config"]).embed([prompt])

    v_info, t_info = describe_clip_vision(files["vision"]), describe_clip_text(files["text"])
    config = EncoderConfig(clip_vision_dim=v_info.dim, clip_text_dim=t_info.dim, clip_vision_name=v_info.name,
                           clip_text_name=t_info.name, clip_vision_fingerprint=v_info.fingerprint,
                           clip_text_fingerprint=t_info.fingerprint)
    node_out = clip_condition("PredictLatentMotion", config, picture, vision, clip, prompt)

    def error(vision_model=vision, **changes) -> str:
        try:
            clip_condition("PredictLatentMotion", dataclasses.replace(config, **changes), picture, vision_model,
                           clip, prompt)
        except NodeInputError as exc:
            return str(exc)
        return ""

    other_fp = describe_clip_text(other["text"]).fingerprint

    def relative(a, b):
        return float(((a - b).abs().max() / b.abs().max()).detach())

    return {
        "image_relative": relative(comfy_image, ours_image),
        "text_relative": relative(comfy_text, ours_text),
        "image_shape": list(comfy_image.shape), "text_shape": list(comfy_text.shape),
        "node_image_relative": relative(node_out["clip_vision"], ours_image),
        "node_text_relative": relative(node_out["clip_text"], ours_text),
        "other_prompt_relative": relative(
            clip.encode_from_tokens(clip.tokenize("still water"), return_pooled="unprojected")[1], ours_text),
        "wrong_encoder": error(clip_text_fingerprint=other_fp),
        "wrong_width": error(clip_vision_dim=v_info.dim + 1),
        "missing": error(vision_model=None),
    }


if __name__ == "__main__":
    print(json.dumps(main(pathlib.Path(sys.argv[1]))))
