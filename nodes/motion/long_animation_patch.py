"""How LongAnimationMotion puts the long-animation paper's additions into the user's SVD MODEL, with ComfyUI's own
machinery (nothing of the host is monkeypatched, no second copy of SVD; all of it lives on a ModelPatcher clone
and is undone when ComfyUI unpatches it):

- **motion attention** (Eq. 4): object patches replace each ``diffusion_model.<block>.time_stack.<d>`` (the
  temporal transformer block of every ``SpatialVideoTransformer``) by
  :class:`~models.long_animation.attach.MotionTemporalBlock`, which holds the *same* layers under the same names
  and adds the motion attention to the block's output;
- **motion strength** (Eq. 8): ``set_model_emb_patch`` adds the strength embedding of M_s to the timestep
  embedding (the conditioning object is the patch; ComfyUI's U-Net calls it with ``(emb, model_channels,
  transformer_options)``);
- **static-camera LoRA**: ``add_patches`` with ComfyUI's own ``LoRAAdapter`` on the temporal attention weights;
- the additions live in their own ModelPatcher (from LoadMotionModel), registered as an additional model, so
  ComfyUI loads and offloads them with the U-Net.

The trainer (``train/long_animation.py``) installs the very same wrapper modules and emb patch on the SVD
``nn.Module`` it is handed (:func:`models.long_animation.attach.install`); only the LoRA takes the trainer's
``parametrize`` form there, the same update ``W + alpha / rank * up @ down``.
"""
from __future__ import annotations

import torch

from ..common import NodeInputError

PATCH_KEY = "imagedynamics_long_animation"


def svd_unet(model, node: str):
    """The SVD U-Net of a core MODEL; NodeInputError naming ``model`` for anything else (an SD 1.5 MODEL, ...)."""
    import comfy.model_base

    from ...models.long_animation.attach import temporal_blocks

    inner = getattr(model, "model", None)
    unet = getattr(inner, "diffusion_model", None)
    if not isinstance(inner, comfy.model_base.SVD_img2vid) or unet is None or not temporal_blocks(unet):
        raise NodeInputError(node, "model", "a Stable Video Diffusion MODEL (svd / svd_xt from "
                             "ImageOnlyCheckpointLoader)", f"a {type(inner).__name__} MODEL")
    return unet


def patch_svd(model, motion_model, flows: torch.Tensor, strength: float, node: str):
    """A clone of ``model`` (SVD) carrying the additions, conditioned on ``flows`` and M_s (module docstring).

    Args:
        model: the core MODEL of an SVD.
        motion_model: the ``long_animation`` :class:`~nodes.motion.load_model.MotionModel`.
        flows: ``[F, 2, H, W]`` pixels per frame (``F = 1``: a static field for every frame).
        strength: M_s in pixels per frame.
        node: the node named in errors.
    """
    import comfy.weight_adapter

    from ...models.long_animation.attach import (
        MotionConditioning,
        MotionTemporalBlock,
        check_fit,
        lora_updates,
        temporal_block_patches,
    )

    unet = svd_unet(model, node)
    additions = motion_model.model
    try:
        blocks = check_fit(unet, additions.config.svd)
    except ValueError as error:
        raise NodeInputError(node, "motion_model", "additions trained for this SVD", str(error)) from error
    patched = model.clone()
    for path, _, _ in blocks:
        for d in range(additions.config.svd.time_depth):
            if isinstance(patched.get_model_object(f"diffusion_model.{path}.time_stack.{d}"), MotionTemporalBlock):
                raise NodeInputError(node, "model", "an SVD MODEL without long-animation additions",
                                     f"one already patched by {node}")
    conditioning = MotionConditioning(additions, flows.float(), strength)
    def original_of(path: str):
        return model.get_model_object(f"diffusion_model.{path}")   # the unpatched block (ComfyUI's backups)

    for path, wrapper in temporal_block_patches(blocks, additions, conditioning, original_of):
        patched.add_object_patch(f"diffusion_model.{path}", wrapper)
    patched.set_model_emb_patch(conditioning)
    lora = {}
    for key, update in lora_updates(blocks, additions):
        weights = (update.up.detach(), update.down.detach(), float(update.alpha), None, None, None)
        lora[f"diffusion_model.{key}"] = comfy.weight_adapter.LoRAAdapter(set(), weights)
    if lora:
        patched.add_patches(lora, 1.0)
    patched.set_additional_models(PATCH_KEY, [motion_model.patcher])
    return patched
