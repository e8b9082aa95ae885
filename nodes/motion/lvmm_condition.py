"""The CLIP part of an LVMM's condition, from ComfyUI's own encoders (CLIP_VISION, CLIP) and a prompt.

An LVMM trained with ``--clip-vision`` / ``--text-encoder`` (``train/lvmm.py``) expects the embeddings that
``models/lvmm/clip.py`` computed at training time; ComfyUI's ``ClipVisionModel.encode_image`` (``image_embeds``)
and ``CLIP.encode_from_tokens(..., return_pooled="unprojected")`` give the same quantities. The checkpoint
records the encoders' widths and fingerprints, which are checked here so a different encoder is a clear error,
not a silently meaningless condition.
"""
from __future__ import annotations

import logging

import torch

from ...models.lvmm.clip import TEXT_KEY, VISION_KEY, fingerprint, fingerprint_scale, fingerprints_match
from ..common import NodeInputError

logger = logging.getLogger(__name__)


def _weight(state: dict[str, torch.Tensor], anchor: str, width: int | None = None) -> torch.Tensor | None:
    for key, value in state.items():
        if key.endswith(anchor) and (width is None or value.shape[-1] == width):
            return value
    return None


def _check(node: str, name: str, trained: str, want: float, weight: torch.Tensor | None) -> None:
    if not want or weight is None:
        return
    if not fingerprints_match(fingerprint(weight), want, fingerprint_scale(weight)):
        raise NodeInputError(node, name, f"the encoder this LVMM was trained with ({trained or 'unnamed'})",
                             "another encoder (its weights differ; or the same one stored at 8-bit precision)")


def clip_condition(node: str, encoder_config, image_bhwc: torch.Tensor, clip_vision=None, clip=None,
                   prompt: str = "") -> dict[str, torch.Tensor]:
    """``{"clip_vision": [1, Dv], "clip_text": [1, Dt]}`` for the parts of the condition the model uses.

    Args:
        node: the node's name (for errors).
        encoder_config: the model's ``EncoderConfig``.
        image_bhwc: the picture [1, H, W, 3] in [0, 1] (ComfyUI's IMAGE).
        clip_vision: ComfyUI CLIP_VISION (``comfy.clip_vision.ClipVisionModel``) or None.
        clip: ComfyUI CLIP (``comfy.sd.CLIP``) or None.
        prompt: the text for the text token (plain text; "" = no text, as in training).

    Raises:
        NodeInputError: a needed encoder is not connected, gives embeddings of another width, or is another
            encoder than the one the model was trained with.
    """
    e, out = encoder_config, {}
    if e.clip_vision_dim:
        if clip_vision is None:
            raise NodeInputError(node, "clip_vision", f"the CLIP vision model this LVMM was trained with "
                                 f"({e.clip_vision_name or 'a CLIP_VISION'}, {e.clip_vision_dim}-d)", "nothing")
        embeds = clip_vision.encode_image(image_bhwc[:1])["image_embeds"].float()
        if embeds.ndim != 2 or embeds.shape[-1] != e.clip_vision_dim:
            raise NodeInputError(node, "clip_vision", f"a CLIP vision model with {e.clip_vision_dim}-d embeddings "
                                 f"({e.clip_vision_name})", f"{embeds.shape[-1]}-d embeddings")
        _check(node, "clip_vision", e.clip_vision_name, e.clip_vision_fingerprint,
               _weight(clip_vision.get_sd(), VISION_KEY))
        out["clip_vision"] = embeds[:1].detach()
    elif clip_vision is not None:
        logger.warning("%s: this LVMM was trained without a CLIP vision token; clip_vision is ignored", node)
    if e.clip_text_dim:
        if clip is None:
            raise NodeInputError(node, "clip", f"the CLIP text encoder this LVMM was trained with "
                                 f"({e.clip_text_name or 'a CLIP-L'}, {e.clip_text_dim}-d)", "nothing")
        _, pooled = clip.encode_from_tokens(clip.tokenize(prompt or ""), return_pooled="unprojected")
        if pooled is None or pooled.ndim != 2 or pooled.shape[-1] != e.clip_text_dim:
            got = "no pooled output" if pooled is None else f"{pooled.shape[-1]}-d pooled embeddings"
            raise NodeInputError(node, "clip", f"a CLIP-L text encoder with {e.clip_text_dim}-d pooled embeddings "
                                 f"({e.clip_text_name})", got)
        _check(node, "clip", e.clip_text_name, e.clip_text_fingerprint,
               _weight(clip.cond_stage_model.state_dict(), TEXT_KEY, e.clip_text_dim))
        out["clip_text"] = pooled[:1].float().detach()
    elif clip is not None or prompt:
        logger.warning("%s: this LVMM was trained without text; clip and prompt are ignored", node)
    return out
