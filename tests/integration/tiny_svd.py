"""A tiny Stable Video Diffusion built from ComfyUI's own classes (``comfy.model_base.SVD_img2vid``, its
``VideoUNet``: ``UNetModel`` with temporal ResBlocks and ``SpatialVideoTransformer``), random weights, in-process.

ComfyUI recognises an SVD file only at the released shape (``comfy/supported_models.py``: ``model_channels``
320, ``transformer_depth`` [1, 1, 1, 1, 1, 1, 0, 0], 1024-wide CLIP-vision context: about 1.5 G parameters with
SVD's channel multipliers, still about 160 M with ``channel_mult`` [1, 1, 1, 1]), so a tiny SVD cannot be a file
that the core loaders (ImageOnlyCheckpointLoader, UNETLoader) accept; it is built here from a subclass of the
core's ``supported_models.SVD_img2vid`` with tiny widths (32 and 64 channels, heads of 16, two levels, one
ResBlock per level, the temporal layers exactly as SVD's: ``extra_ff_mix_layer``, ``use_spatial_context``,
``learned_with_images`` merging, [3, 1, 1] temporal kernels, temporal cross-attention) and wrapped in a core
``ModelPatcher``: the same MODEL object the loaders return for a real SVD.

Needs ComfyUI on ``sys.path`` (the in-process scripts put it there).
"""
from __future__ import annotations

import copy

import torch

CONTEXT = 32          # CLIP-vision embedding width of the tiny SVD (SVD: 1024)
UNET = {"use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
        "num_classes": "sequential", "adm_in_channels": 768, "in_channels": 8, "out_channels": 4,
        "model_channels": 32, "num_res_blocks": [1, 1], "channel_mult": [1, 2], "transformer_depth": [1, 1],
        "transformer_depth_output": [1, 1, 1, 1], "transformer_depth_middle": 1,
        "use_linear_in_transformer": True, "context_dim": CONTEXT, "extra_ff_mix_layer": True,
        "use_spatial_context": True, "merge_strategy": "learned_with_images", "merge_factor": 0.0,
        "video_kernel_size": [3, 1, 1], "use_temporal_resblock": True, "use_temporal_attention": True,
        "disable_temporal_crossattention": False}


def tiny_svd(seed: int = 0, dtype: torch.dtype = torch.float32):
    """A core MODEL (``comfy.model_patcher.ModelPatcher``) around a tiny ``comfy.model_base.SVD_img2vid``."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    class TinySVD(comfy.supported_models.SVD_img2vid):
        unet_extra_config = {"num_heads": -1, "num_head_channels": 16, "attn_precision": torch.float32}

    config = TinySVD(dict(copy.deepcopy(UNET), dtype=dtype))
    config.set_inference_dtype(dtype, None)
    model = config.get_model({})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.diffusion_model.named_parameters():
            if p.ndim > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) / fan_in ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
    model.eval()
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=device,
                                            offload_device=comfy.model_management.unet_offload_device())
