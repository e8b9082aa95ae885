"""Small checkpoints the example workflows name, made by the tests in seconds (no downloads).

``MAKERS[file name] = function(path)`` writes that checkpoint. The workflows in ``workflows/`` name these
files so that the tests can run them; users replace them with their own trained models.
"""
from __future__ import annotations

import pathlib
from collections.abc import Callable

MAKERS: dict[str, Callable[[pathlib.Path], None]] = {}

from tiny_long_video import TINY_COSMOS, make_tiny_cosmos  # noqa: E402

MAKERS[TINY_COSMOS] = make_tiny_cosmos  # a video MODEL for the core UNETLoader (models/diffusion_models)

from tiny_gid import make_gid_tiny  # noqa: E402

MAKERS["gid_tiny.safetensors"] = make_gid_tiny  # the GID example workflows' motion prior

from tiny_motion_i2v import MAKERS as MOTION_I2V_MAKERS  # noqa: E402
from tiny_sd15 import TINY_SD15, make_tiny_sd15  # noqa: E402

MAKERS.update(MOTION_I2V_MAKERS)  # Motion-I2V stage 1, ControlNet, flow VAE, stage 2 (each also writes tiny_sd15)
MAKERS[TINY_SD15] = make_tiny_sd15  # an SD 1.5 MODEL/CLIP/VAE for CheckpointLoaderSimple (models/checkpoints)

from tiny_lvmm import make_lvmm_text_tiny, make_lvmm_tiny  # noqa: E402

MAKERS["lvmm_tiny.safetensors"] = make_lvmm_tiny  # the LVMM example workflows' model
MAKERS["lvmm_text_tiny.safetensors"] = make_lvmm_text_tiny  # the same with a (random) CLIP-L text token

from tiny_renderer import make_renderer_tiny  # noqa: E402

MAKERS["renderer_tiny.safetensors"] = make_renderer_tiny  # the learned-renderer example workflow's renderer

from tiny_svd import (  # noqa: E402
    LONG_ANIMATION_RANDOM_TINY,
    LONG_ANIMATION_TINY,
    TINY_SVD_UNET,
    TINY_TAESD_VAE,
    make_long_animation_random_tiny,
    make_long_animation_tiny,
    make_tiny_svd_unet,
    make_tiny_taesd_vae,
)

MAKERS[TINY_SVD_UNET] = make_tiny_svd_unet  # the smallest SVD U-Net the core UNETLoader detects (diffusion_models)
MAKERS[TINY_TAESD_VAE] = make_tiny_taesd_vae  # a TAESD VAE for the core VAELoader (models/vae)
MAKERS[LONG_ANIMATION_TINY] = make_long_animation_tiny  # fresh long-animation additions for that SVD
MAKERS[LONG_ANIMATION_RANDOM_TINY] = make_long_animation_random_tiny  # the same, randomised (not inert; tests)
