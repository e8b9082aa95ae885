"""Tiny Stable Video Diffusion models, random weights: one built in-process from ComfyUI's own classes, and the
files of the example workflow ``workflows/long_animation_svd.json``.

ComfyUI recognises an SVD file only by the matched keys of the released shape (``comfy/supported_models.py``:
``model_channels`` 320, ``transformer_depth`` [1, 1, 1, 1, 1, 1, 0, 0], 1024-wide CLIP-vision context: about
1.5 G parameters with SVD's channel multipliers); the smallest file the core loaders (UNETLoader,
ImageOnlyCheckpointLoader) accept is still 114 M parameters (:data:`TINY_SVD_UNET`, written without ComfyUI by
:func:`make_tiny_svd_unet` for the template). The in-process tests use a smaller one, :func:`tiny_svd`: a subclass
of the core's ``supported_models.SVD_img2vid`` with tiny widths (32 and 64 channels, heads of 16, two levels, one
ResBlock per level, the temporal layers exactly as SVD's: ``extra_ff_mix_layer``, ``use_spatial_context``,
``learned_with_images`` merging, [3, 1, 1] temporal kernels, temporal cross-attention) wrapped in a core
``ModelPatcher``: the same MODEL object the loaders return for a real SVD.

:func:`tiny_svd` needs ComfyUI on ``sys.path`` (the in-process scripts put it there); the file makers do not.
"""
from __future__ import annotations

import copy
import pathlib

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


def tiny_svd(seed: int = 0, dtype: torch.dtype = torch.float32, channels: int = 32,
             group_channels: int | None = None):
    """A core MODEL (``comfy.model_patcher.ModelPatcher``) around a tiny ``comfy.model_base.SVD_img2vid`` with
    ``channels`` / 2 x ``channels`` at its two levels (a multiple of 16). ComfyUI's ResBlocks normalise with 32
    groups right after adding the timestep embedding, so at 32 channels (one channel per group) that per-channel
    addition is normalised away there: the timestep embedding, and M_s with it, reaches only the 64-channel level.
    ``group_channels`` (the arrow test's 4) gives every GroupNorm of the U-Net ``C / group_channels`` groups instead, the
    proportion of the released SVD (10-40 channels per group at 320-1280 channels), where the embedding survives."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models

    class TinySVD(comfy.supported_models.SVD_img2vid):
        unet_extra_config = {"num_heads": -1, "num_head_channels": 16, "attn_precision": torch.float32}

    config = TinySVD(dict(copy.deepcopy(UNET), dtype=dtype, model_channels=int(channels)))
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
    if group_channels:
        for module in model.diffusion_model.modules():
            if isinstance(module, torch.nn.GroupNorm):   # forward reads num_groups; the weights stay per channel
                module.num_groups = max(1, module.num_channels // int(group_channels))
    model.eval()
    device = comfy.model_management.get_torch_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=device,
                                            offload_device=comfy.model_management.unet_offload_device())


# --- Files for the example workflow (workflows/long_animation_svd.json), written without importing ComfyUI ------

TINY_SVD_UNET = "tiny_svd_unet.safetensors"
"""The smallest U-Net ComfyUI's core UNETLoader detects as Stable Video Diffusion (models/diffusion_models)."""
TINY_TAESD_VAE = "tiny_taesd_vae.safetensors"
"""A TAESD-format VAE (4 latent channels, 8x) for the core VAELoader (models/vae)."""
LONG_ANIMATION_TINY = "long_animation_svd_tiny.safetensors"
"""Fresh (untrained, inert) long-animation additions that fit :data:`TINY_SVD_UNET` (models/motion_models)."""

SVD_CHANNELS, SVD_EMBED, SVD_CONTEXT, SVD_ADM, SVD_HEAD = 320, 1280, 1024, 768, 64
SVD_RES_BLOCKS, SVD_TRANSFORMERS, SVD_OUTPUT_BLOCKS = 8, 6, 9
"""ComfyUI's ``supported_models.SVD_img2vid`` matches ``model_channels`` 320, ``in_channels`` 8,
``transformer_depth`` [1, 1, 1, 1, 1, 1, 0, 0] (one entry per input ResBlock), ``context_dim`` 1024,
``adm_in_channels`` 768, linear transformer projections and the temporal layers; the detector
(``comfy/model_detection.py``) reads everything else from the file's shapes and matches none of it. So the smallest
SVD it accepts has **one** level (``channel_mult`` [1], no down/upsampling) of 8 ResBlocks at 320 channels (the
first 6 with a spatio-temporal transformer), no middle block (``transformer_depth_middle`` -2), and 9 output
ResBlocks without transformers: 114.2 M parameters (SVD: 1.52 G), 228 MB in float16."""


def tiny_svd_unet_state_dict(seed: int = 0, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """ComfyUI (ldm) keys of the U-Net of :data:`SVD_RES_BLOCKS` etc. (seeded random weights, cheap pool draws).

    Weights follow torch's default initialisation (uniform, 1 / sqrt(fan_in)), residual branch outputs halved;
    norms are 1 / 0, the temporal mixers' ``mix_factor`` 0 (SVD's initial merge factor)."""
    from tiny_sd15 import _linear, _norm, _Random

    g = _Random(seed, torch.float32)
    ch, emb, ctx = SVD_CHANNELS, SVD_EMBED, SVD_CONTEXT
    sd: dict[str, torch.Tensor] = {}

    def resblock(p: str, ch_in: int) -> None:
        _norm(sd, f"{p}.in_layers.0", ch_in)
        _linear(sd, f"{p}.in_layers.2", ch, ch_in, g, kernel=3)
        _linear(sd, f"{p}.emb_layers.1", ch, emb, g)
        _norm(sd, f"{p}.out_layers.0", ch)
        _linear(sd, f"{p}.out_layers.3", ch, ch, g, kernel=3, gain=0.5)
        if ch_in != ch:
            _linear(sd, f"{p}.skip_connection", ch, ch_in, g, kernel=1)
        t = f"{p}.time_stack"                                   # VideoResBlock: [3, 1, 1] temporal convolutions
        _norm(sd, f"{t}.in_layers.0", ch)
        _linear(sd, f"{t}.in_layers.2", ch, ch * 3, g)
        sd[f"{t}.in_layers.2.weight"] = sd[f"{t}.in_layers.2.weight"].reshape(ch, ch, 3, 1, 1)
        _linear(sd, f"{t}.emb_layers.1", ch, emb, g)
        _norm(sd, f"{t}.out_layers.0", ch)
        _linear(sd, f"{t}.out_layers.3", ch, ch * 3, g, gain=0.5)
        sd[f"{t}.out_layers.3.weight"] = sd[f"{t}.out_layers.3.weight"].reshape(ch, ch, 3, 1, 1)
        sd[f"{p}.time_mixer.mix_factor"] = torch.zeros(1)

    def attention(p: str, kv: int) -> None:
        for name, width in (("to_q", ch), ("to_k", kv), ("to_v", kv)):
            _linear(sd, f"{p}.{name}", ch, width, g, bias=False)
        _linear(sd, f"{p}.to_out.0", ch, ch, g, gain=0.5)

    def feed_forward(p: str) -> None:
        _linear(sd, f"{p}.net.0.proj", 8 * ch, ch, g)          # GEGLU: 2 x 4 ch
        _linear(sd, f"{p}.net.2", ch, 4 * ch, g, gain=0.5)

    def transformer(p: str) -> None:                            # SpatialVideoTransformer, depth 1
        _norm(sd, f"{p}.norm", ch)
        _linear(sd, f"{p}.proj_in", ch, ch, g)
        for b in (f"{p}.transformer_blocks.0", f"{p}.time_stack.0"):
            attention(f"{b}.attn1", ch)
            attention(f"{b}.attn2", ctx)
            feed_forward(f"{b}.ff")
            for i in (1, 2, 3):
                _norm(sd, f"{b}.norm{i}", ch)
        _norm(sd, f"{p}.time_stack.0.norm_in", ch)
        feed_forward(f"{p}.time_stack.0.ff_in")
        _linear(sd, f"{p}.proj_out", ch, ch, g, gain=0.5)
        _linear(sd, f"{p}.time_pos_embed.0", emb, ch, g)
        _linear(sd, f"{p}.time_pos_embed.2", ch, emb, g)
        sd[f"{p}.time_mixer.mix_factor"] = torch.zeros(1)

    _linear(sd, "time_embed.0", emb, ch, g)
    _linear(sd, "time_embed.2", emb, emb, g)
    _linear(sd, "label_emb.0.0", emb, SVD_ADM, g)
    _linear(sd, "label_emb.0.2", emb, emb, g)
    _linear(sd, "input_blocks.0.0", ch, 8, g, kernel=3)
    for i in range(1, SVD_RES_BLOCKS + 1):
        resblock(f"input_blocks.{i}.0", ch)
        if i <= SVD_TRANSFORMERS:
            transformer(f"input_blocks.{i}.1")
    for i in range(SVD_OUTPUT_BLOCKS):                          # each takes one skip (320) besides its input
        resblock(f"output_blocks.{i}.0", 2 * ch)
    _norm(sd, "out.0", ch)
    _linear(sd, "out.2", 4, ch, g, kernel=3, gain=0.5)
    return {k: v.to(dtype).contiguous() for k, v in sd.items()}


def _save(sd: dict[str, torch.Tensor], path: pathlib.Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(sd, str(tmp), metadata=metadata)
    tmp.replace(path)


def make_tiny_svd_unet(path: pathlib.Path) -> None:
    """Write :data:`TINY_SVD_UNET` to ``path`` (a file in models/diffusion_models)."""
    _save(tiny_svd_unet_state_dict(), path)


def make_tiny_taesd_vae(path: pathlib.Path) -> None:
    """Write :data:`TINY_TAESD_VAE` (TAESD keys, random weights) to ``path`` (a file in models/vae)."""
    from tiny_sd15 import _Random, tiny_taesd_state_dict

    _save({k: v.to(torch.float16).contiguous() for k, v in tiny_taesd_state_dict(_Random(1), prefix="").items()},
          path)


def tiny_svd_fit():
    """The :class:`~models.long_animation.config.SVDFit` of :data:`TINY_SVD_UNET`."""
    from imagedynamics.models.long_animation.config import SVDFit

    return SVDFit(block_channels=(SVD_CHANNELS,) * SVD_TRANSFORMERS, block_levels=(0,) * SVD_TRANSFORMERS,
                  time_depth=1, head_channels=SVD_HEAD, model_channels=SVD_CHANNELS, time_embed_dim=SVD_EMBED,
                  context_dim=SVD_CONTEXT)


def make_long_animation_tiny(path: pathlib.Path) -> None:
    """Write fresh additions for :data:`TINY_SVD_UNET` (``tiny_config``: encoder 8 channels, LoRA rank 4, T
    ``tiny``; zero-output adapters, so the patched SVD samples exactly what the plain one does)."""
    from imagedynamics.models.long_animation.checkpoint import save
    from imagedynamics.models.long_animation.config import tiny_config
    from imagedynamics.models.long_animation.model import LongAnimationModel

    torch.manual_seed(0)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(path, LongAnimationModel(tiny_config(tiny_svd_fit())), training={"note": "fresh, untrained (tests)"})


LONG_ANIMATION_RANDOM_TINY = "long_animation_svd_random_tiny.safetensors"
"""The same additions with random (non-zero) video-model weights: what training would change (tests only)."""


def make_long_animation_random_tiny(path: pathlib.Path) -> None:
    """Write :data:`LONG_ANIMATION_RANDOM_TINY`: :func:`make_long_animation_tiny`'s additions with every video-model
    weight (not T's) drawn at 0.3 / sqrt(fan_in) (biases and 1-D weights 0.05), seeded."""
    from imagedynamics.models.long_animation.checkpoint import save
    from imagedynamics.models.long_animation.config import tiny_config
    from imagedynamics.models.long_animation.model import LongAnimationModel

    torch.manual_seed(0)
    model = LongAnimationModel(tiny_config(tiny_svd_fit()))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("refiner."):
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 / p[0].numel() ** 0.5 if p.ndim > 1 else 0.05))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(path, model, training={"note": "random, untrained (tests)"})
