"""Configuration of a GID motion prior: architecture, diffusion schedule and the spectral conventions.

A :class:`GIDConfig` is everything needed to rebuild a model from a checkpoint: it is stored as JSON in the
checkpoint's metadata (``models/checkpoint.py``), next to the normalisation statistics.

Presets (``GIDConfig.preset(name)``):

``full``  the paper's quantitative setting: 256 x 160 pictures (W x H), T = 150 frames at 30 fps (5 s),
          K = 16 frequencies (0 - 3 Hz at df = 0.2 Hz). VAE KL-f4 with widths (32, 64, 128) (3.5 M parameters;
          LDM's KL-f4 is 4x wider, but a slice has 4 smooth channels and the VAE runs K times per sample)
          -> 4 x 40 x 64 latents. U-Net after LDM-4: widths (128, 256, 384, 512), 2 resnets per level, spatial
          self-attention on the three coarser levels (20 x 32 and below), frequency attention after every
          spatial layer: 100 M parameters, 11 M of them in the frequency attention (stage 2). The paper gives
          no widths; LDM's own U-Nets are larger (~270 M).
``small`` 128 x 80, T = 150, K = 16, about half the widths (VAE 0.9 M, U-Net 25 M): trainable on one consumer GPU.
``tiny``  64 x 40, T = 16, K = 4, VAE (16, 16) and U-Net (32, 64) (0.8 M parameters): for tests only.

The noise schedule is the shared :class:`~..schedules.DiffusionConfig` (LDM's scaled-linear betas over 1000 steps).

Resolution and the number of frames can be overridden: ``GIDConfig.preset("full", width=512, height=288)``
is the paper's 512 x 288 setting (the same network at 128 x 72 latents).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..config import MAX_FRAMES, MAX_LAYERS, MAX_SIZE, StoredConfig, check_int, check_widths
from ..schedules import DiffusionConfig


@dataclass
class VAEConfig:
    """The spectral VAE (diffusers AutoencoderKL) over one normalised frequency slice [4, H, W].

    ``block_out_channels`` has one entry per level; the spatial downsampling factor is 2 ** (levels - 1).
    """

    block_out_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    latent_channels: int = 4
    mid_block_attention: bool = True

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


@dataclass
class UNetConfig:
    """The frequency-coordinated denoising U-Net (see ``models/gid/unet.py``).

    Attributes:
        block_out_channels: widths per level (each level but the last halves the resolution).
        layers_per_block: resnet layers per level on the way down (one more on the way up, as in LDM).
        spatial_attention: per level, whether a spatial self-attention follows each resnet.
        attention_head_dim: channels per head of the spatial attention.
        frequency_head_dim: channels per head of the frequency attention.
        condition_dropout: probability of replacing the picture condition by the null condition (zeros) in
            training, so that classifier-free guidance can be used (the paper does not give a rate).
    """

    block_out_channels: tuple[int, ...] = (128, 256, 384, 512)
    layers_per_block: int = 2
    spatial_attention: tuple[bool, ...] = (False, True, True, True)
    attention_head_dim: int = 32
    frequency_head_dim: int = 32
    norm_num_groups: int = 32
    condition_dropout: float = 0.1


@dataclass
class GIDConfig(StoredConfig):
    """A GID motion prior: resolution, spectral conventions, and the three networks' configs.

    Attributes:
        width, height: the training resolution in pixels; displacements are in pixels at this size.
        num_frames: T, the number of frames (reference frame included) the spectra were computed over.
        fps: frames per second of the training clips.
        num_frequencies: K, coefficients kept (DC included).
        norm: torch.fft normalisation of the forward transform ("backward": unscaled).
        percentile: the percentile of coefficient magnitudes used as the per-frequency scale s (GID Eq. 4).
        latent_scale: multiplies VAE latents before diffusion (set by the trainer to 1 / std of the latents).
    """

    CONFIG_VERSION: ClassVar[int] = 1
    CONFIG_NAME: ClassVar[str] = "GID config"

    width: int = 256
    height: int = 160
    num_frames: int = 150
    fps: float = 30.0
    num_frequencies: int = 16
    norm: str = "backward"
    percentile: float = 95.0
    latent_scale: float = 1.0
    vae: VAEConfig = field(default_factory=VAEConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ derived sizes
    @property
    def latent_size(self) -> tuple[int, int]:
        """(h, w) of the latents."""
        f = self.vae.downsample_factor
        return self.height // f, self.width // f

    def validate(self) -> None:
        """Raise ValueError when the config is inconsistent or beyond the limits of ``models/config.py``."""
        u, v = self.unet, self.vae
        check_int("width", self.width, 1, MAX_SIZE)
        check_int("height", self.height, 1, MAX_SIZE)
        check_int("num_frames", self.num_frames, 4, MAX_FRAMES)
        check_int("vae.norm_num_groups", v.norm_num_groups, 1, 1024)
        check_widths("vae.block_out_channels", v.block_out_channels, divisor=v.norm_num_groups)
        check_int("vae.layers_per_block", v.layers_per_block, 1, MAX_LAYERS)
        check_int("unet.norm_num_groups", u.norm_num_groups, 1, 1024)
        check_int("unet.attention_head_dim", u.attention_head_dim, 1, 1024)
        check_int("unet.frequency_head_dim", u.frequency_head_dim, 1, 1024)
        check_widths("unet.block_out_channels", u.block_out_channels)
        check_int("unet.layers_per_block", u.layers_per_block, 1, MAX_LAYERS)
        self.diffusion.validate()
        f = self.vae.downsample_factor
        if self.width <= 0 or self.height <= 0 or self.width % f or self.height % f:
            raise ValueError(f"width x height ({self.width} x {self.height}) must be positive multiples of the "
                             f"VAE downsampling factor {f}")
        if not 1 <= self.num_frequencies <= self.num_frames // 2 + 1:
            raise ValueError(f"num_frequencies must be in [1, num_frames // 2 + 1 = {self.num_frames // 2 + 1}], "
                             f"got {self.num_frequencies}")
        if self.norm != "backward":
            raise ValueError(f"only norm='backward' is supported, got {self.norm!r}")
        if self.vae.latent_channels != 4:
            raise ValueError("the GID VAE has 4 latent channels")
        if len(u.spatial_attention) != len(u.block_out_channels):
            raise ValueError("unet.spatial_attention needs one entry per level of unet.block_out_channels")
        for c in u.block_out_channels:
            if c % u.norm_num_groups or c % u.attention_head_dim or c % u.frequency_head_dim:
                raise ValueError(f"unet width {c} must be divisible by norm_num_groups and the head dims")
        if not 0.0 <= u.condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1), got {u.condition_dropout}")
        if not (self.fps > 0 and self.latent_scale > 0 and 0 < self.percentile <= 100):
            raise ValueError(f"fps and latent_scale must be > 0 and percentile in (0, 100], got {self.fps}, "
                             f"{self.latent_scale}, {self.percentile}")

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str = "full", **overrides) -> GIDConfig:
        """A named configuration (``full``, ``small`` or ``tiny``) with top-level fields overridden."""
        if name == "full":
            base = cls()
        elif name == "small":
            base = cls(width=128, height=80,
                       vae=VAEConfig(block_out_channels=(16, 32, 64), norm_num_groups=16),
                       unet=UNetConfig(block_out_channels=(64, 128, 192, 256), norm_num_groups=16))
        elif name == "tiny":
            base = cls(width=64, height=40, num_frames=16, fps=30.0, num_frequencies=4,
                       vae=VAEConfig(block_out_channels=(16, 16), layers_per_block=1, norm_num_groups=8),
                       unet=UNetConfig(block_out_channels=(32, 64), layers_per_block=1,
                                       spatial_attention=(False, True), attention_head_dim=16,
                                       frequency_head_dim=16, norm_num_groups=8))
        else:
            raise ValueError(f"unknown GID preset {name!r}; choose full, small or tiny")
        return base.replace(**overrides) if overrides else base


PRESETS = ("full", "small", "tiny")


def conventions(config: GIDConfig) -> dict:
    """What the predicted spectra mean (stored with every checkpoint)."""
    return {
        "num_frames": config.num_frames, "fps": config.fps, "width": config.width, "height": config.height,
        "num_frequencies": config.num_frequencies, "fft_norm": config.norm,
        "fft": "torch.fft.rfft over time of the reference-anchored displacement [T, 2, H, W] (frame 0 included)",
        "units": "pixels at width x height; channel 0 = x (right), 1 = y (down)",
        "normalisation": "GID Eq. 4 per frequency and real channel (re_x, im_x, re_y, im_y): "
                         f"sign(S) sqrt(|S / s|), s = {config.percentile:g}th percentile of |S| over the data",
    }
