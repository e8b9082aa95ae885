"""Configuration of an LVMM (Large Visual Motion Model): the five networks, the diffusion schedule, conventions.

An :class:`LVMMConfig` is everything needed to rebuild a model from a checkpoint; it is stored as JSON in the
checkpoint's metadata (``models/checkpoint.py``) together with the normalisation constants the trainer
measured (``flow_scale``, ``latent_scale``).

Presets (``LVMMConfig.preset(name)``):

``paper``  the paper's pretraining setting (LVMM supplement, Sec. 2.3 and Tab. 1): 512 x 512 frames, motion
           flow p at 128 x 128, latents z at 4 x 16 x 16, K = 8 latent frames. Widths the paper does not give
           are the authors' code's or Johnson's / LDM's / VDM's (see each sub-config). 87.4 M parameters
           (predictor 2.4 M, renderer 2.0 M, motion VAE 20.9 M, condition encoder 1.5 M, denoiser 60.6 M).
``small``  256 x 256 frames, p 64 x 64, z 4 x 8 x 8, K = 8, half widths (21 M parameters): trainable on one
           consumer GPU.
``tiny``   64 x 64 frames, p 32 x 32 (flow_downsample 2), z 4 x 4 x 4, K = 4: for tests (trains end to end on
           a CPU in a minute).

Shapes at the ``paper`` preset (B = batch, K = latent frames; checked on the meta device by the tests):

=========================  ===========================================  ===========================================
component                  input                                        output
=========================  ===========================================  ===========================================
frames I0, Ik              [B, 3, 512, 512] RGB in [0, 1]               --
P (motion flow predictor)  I'0, I'k [B, 3, 128, 128] (x0.25, Eq. 2)     flow delta [B, 2, 128, 128] + intention
                                                                        omega [B, 1, 128, 128] (p = [delta; omega])
R (neural renderer)        I0 [B, 3, 512, 512], delta, omega            Ik_hat [B, 3, 512, 512] (Eq. 3; pyramid
                                                                        512 / 256 / 128 px, 32 / 64 / 128 ch,
                                                                        6 residual blocks)
E (motion encoder)         p [B, 3, 128, 128] (normalised)              z [B, 4, 16, 16] (f = 8, x latent_scale)
D (motion decoder)         z [B, 4, 16, 16]                             p [B, 3, 128, 128]
condition encoder          I0 [B, 3, 512, 512]                          y [B, 17, 1024] (1 global + 4 x 4 tokens)
denoiser eps_theta         x_t [B, 4, K, 16, 16] + v = z0 [B, 4, 16,    eps [B, 4, K, 16, 16]
                           16] repeated K times + frame position
                           (9 channels in all), t, y
sampler output (Motion)    picture [1, 3, H, W] (any size)              displacement [K + 1, 2, H, W] px,
                                                                        intention [K + 1, 1, H, W]
=========================  ===========================================  ===========================================

Conventions (``conventions(config)`` stores them in every checkpoint):

* delta is a **backward** flow in pixels at the flow resolution (128 x 128 for ``paper``): output pixel q of
  frame k takes its content from q + delta(q) in I0 (bilinear; pixel centres at integer coordinates, the
  pack's convention, ``ops.warp.backward_warp``). Channel 0 = x (right), 1 = y (down). omega in [0, 1], on
  frame k's grid: 1 = warp I0's features, 0 = synthesise (the renderer blends warped skip features with its
  decoder by omega at every level).
* The sampler returns the pack's ``Motion``: a reference-anchored **forward** displacement (where pixel p of I0
  is at frame t), obtained from the backward flow by splatting inversion (``ops.warp.invert_flow``), resized
  to the picture with vectors scaled per axis; the backward flows stay in
  ``Motion.latent.backward_flow`` so that rendering with R is exact.
* Frame 0 of a trajectory is z0 = E(P(I0, I0)) (the visual component v); frames 1..K are the K latent frames
  the denoiser produces (each rendered from I0, never chained).
* The VAE sees p normalised as [delta / flow_scale, 2 omega - 1]; latents are multiplied by latent_scale
  (1 / std measured by the trainer) before diffusion.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import MAX_FRAMES, MAX_LAYERS, MAX_SIZE, StoredConfig, check_int, check_widths
from ..schedules import DiffusionConfig

PRESETS = ("paper", "small", "tiny")


@dataclass
class PredictorConfig:
    """Motion flow predictor P, region-based in the spirit of MRAA (Siarohin et al. 2021).

    Attributes:
        num_regions: K region heatmaps (MRAA: 10).
        region_widths: widths of the region predictor's hourglass, one per level (each level halves the size).
        flow_widths: widths of the pixel-wise flow predictor's hourglass (soft assignment + intention map).
        background_widths: widths of the background (global affine) motion predictor's strided convs.
        temperature: softmax temperature of the region heatmaps (MRAA: 0.1).
        norm_num_groups: GroupNorm groups in all three networks.
        equivariance_weight: weight of the region equivariance loss in the P + R phase (LFDM / MRAA style).
        cost_radius: r of the local matching-cost volume ((2 r + 1)^2 channels) fed to the pixel-wise flow
            network with both frames (an addition of ours, as in flow networks; 0 = off).
    """

    num_regions: int = 10
    region_widths: tuple[int, ...] = (32, 64, 128, 256)
    flow_widths: tuple[int, ...] = (32, 64, 128, 256)
    background_widths: tuple[int, ...] = (32, 64, 128, 256)
    temperature: float = 0.1
    norm_num_groups: int = 8
    equivariance_weight: float = 0.1
    cost_radius: int = 3


@dataclass
class RendererConfig:
    """Neural image renderer R (Johnson et al. 2016 layout, LVMM supplement Sec. 2.1).

    Attributes:
        widths: channels of the three pyramid levels H x W, H/2 x W/2, H/4 x W/4 (Johnson et al.: 32, 64, 128).
        num_res_blocks: residual blocks at H/4 (paper: 6).
        outer_kernel: kernel size of the first and last convolutions at H x W (authors' code: 7).
    """

    widths: tuple[int, int, int] = (32, 64, 128)
    num_res_blocks: int = 6
    norm_num_groups: int = 16
    outer_kernel: int = 7


@dataclass
class MotionVAEConfig:
    """Motion encoder E / decoder D: diffusers AutoencoderKL over p = [delta, omega] (LDM KL, 4 latent channels).

    ``block_out_channels`` has one entry per level; the spatial factor is 2 ** (levels - 1) (paper: 8).
    """

    block_out_channels: tuple[int, ...] = (64, 128, 256, 256)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    latent_channels: int = 4
    kl_weight: float = 1e-6
    gradient_weight: float = 1.0
    pixel_weight: float = 1.0

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


@dataclass
class EncoderConfig:
    """The condition encoder: the tokens y the denoiser attends to (LVMM: ImageBind image and text tokens).

    Token sources (any combination, at least one):

    * ``own_tokens``: a small CNN on I0 trained with the denoiser and shipped in the checkpoint (self-contained:
      no other file is needed): grid x grid pooled tokens + one global token;
    * ``clip_vision_dim`` > 0: one token from the CLIP vision embedding of I0 (``image_embeds`` of the user's
      ComfyUI CLIP_VISION, ``models/lvmm/clip.py``), projected by a trained linear layer;
    * ``clip_text_dim`` > 0: one token from the CLIP-L text embedding of a prompt (unprojected pooled output of the
      user's ComfyUI CLIP), projected by a trained linear layer.

    The CLIP encoders themselves are not in the checkpoint: the checkpoint records their file names and
    fingerprints (``models/lvmm/clip.py``) so that sampling can check it is given the same encoders.

    Attributes:
        widths: strided 3x3 convs on I0 at the flow resolution (each halves the size).
        grid: the last feature map is pooled to grid x grid tokens; one global token is added.
        embed_dim: token width = the denoiser's cross-attention dim (paper: ImageBind's 1024).
        own_tokens: use the CNN's tokens.
        clip_vision_dim, clip_text_dim: widths of the CLIP embeddings (0 = not used).
        clip_vision_name, clip_text_name: the encoder files the model was trained with (informative).
        clip_vision_fingerprint, clip_text_fingerprint: their fingerprints.
        text_dropout: in training, probability of replacing a caption by the empty prompt (so that an empty
            prompt at sampling means "no text").
    """

    widths: tuple[int, ...] = (64, 128, 256, 256)
    grid: int = 4
    embed_dim: int = 1024
    norm_num_groups: int = 32
    own_tokens: bool = True
    clip_vision_dim: int = 0
    clip_text_dim: int = 0
    clip_vision_name: str = ""
    clip_text_name: str = ""
    clip_vision_fingerprint: float = 0.0
    clip_text_fingerprint: float = 0.0
    text_dropout: float = 0.1

    @property
    def num_tokens(self) -> int:
        own = self.grid * self.grid + 1 if self.own_tokens else 0
        return own + int(self.clip_vision_dim > 0) + int(self.clip_text_dim > 0)


@dataclass
class DenoiserConfig:
    """Conditional 3D U-Net eps_theta (diffusers UNet3DConditionModel; VDM layout, four blocks down and up).

    Attributes:
        block_out_channels: widths per block (authors' code: 64 x (1, 2, 4, 4)).
        layers_per_block: resnets per down block (one more per up block).
        num_heads: attention heads of the spatial / cross / temporal attention (authors' code: 8).
        frame_position: add a channel holding k / K (frame index over the trained length) to the input, so
            the network knows how far each latent frame is from I0 (diffusers' temporal attention has no
            positional encoding).
        condition_dropout: probability of the null condition (zero tokens) in training, for CFG (code: 0.1).
    """

    block_out_channels: tuple[int, ...] = (64, 128, 256, 256)
    layers_per_block: int = 2
    num_heads: int = 8
    norm_num_groups: int = 32
    frame_position: bool = True
    condition_dropout: float = 0.1

    @property
    def num_levels(self) -> int:
        return len(self.block_out_channels)


def cosine_schedule() -> DiffusionConfig:
    """LVMM's noise schedule: T = 1000 (paper, Tab. 1), cosine betas (authors' code), eps prediction (Eq. 10)."""
    return DiffusionConfig(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", beta_start=0.0001,
                           beta_end=0.02)


@dataclass
class LVMMConfig(StoredConfig):
    """An LVMM: resolution, trajectory length, normalisation constants and the sub-networks' configs.

    Attributes:
        width, height: frame size the model works at (I0 and Ik); pictures of other sizes are resized to it
            for P, E and the denoiser, and the motion is resized back (R renders at the picture's own size).
        flow_downsample: P sees both frames and predicts p at 1 / flow_downsample of the frame size (Eq. 2:
            4). The ``tiny`` preset uses 2: at 64 x 64 frames a quarter (16 x 16) keeps too little detail to
            measure the motion.
        num_frames: K, latent frames the denoiser was trained on (the trajectory has K + 1 frames with z0).
        frame_stride: video frames between consecutive latent frames in the training data.
        fps: frame rate of consecutive latent frames (the source videos' fps / frame_stride).
        flow_scale: pixels (at the flow resolution) that map to 1 in the VAE's input (set by the trainer).
        latent_scale: multiplies VAE latents before diffusion (set by the trainer: 1 / std of the latents).
    """

    CONFIG_VERSION: ClassVar[int] = 2  # 2: the condition encoder's CLIP tokens (version 1 configs load unchanged)
    CONFIG_NAME: ClassVar[str] = "LVMM config"

    width: int = 512
    height: int = 512
    flow_downsample: int = 4
    num_frames: int = 8
    frame_stride: int = 1
    fps: float = 30.0
    flow_scale: float = 4.0
    latent_scale: float = 1.0
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    renderer: RendererConfig = field(default_factory=RendererConfig)
    vae: MotionVAEConfig = field(default_factory=MotionVAEConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=cosine_schedule)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ derived sizes
    @property
    def flow_size(self) -> tuple[int, int]:
        """(h, w) of p = P(I'0, I'k): 1 / flow_downsample of the frame size (a quarter in Eq. 2)."""
        return self.height // self.flow_downsample, self.width // self.flow_downsample

    @property
    def latent_size(self) -> tuple[int, int]:
        """(h, w) of the latents z."""
        f = self.vae.downsample_factor
        h, w = self.flow_size
        return h // f, w // f

    @property
    def latent_channels(self) -> int:
        return self.vae.latent_channels

    def validate(self) -> None:
        """Raise ValueError when the config is inconsistent or beyond the limits of ``models/config.py``."""
        p, r, v, e, d = self.predictor, self.renderer, self.vae, self.encoder, self.denoiser
        check_int("width", self.width, 1, MAX_SIZE)
        check_int("height", self.height, 1, MAX_SIZE)
        check_int("flow_downsample", self.flow_downsample, 1, 64)
        check_int("num_frames", self.num_frames, 1, MAX_FRAMES)
        check_int("frame_stride", self.frame_stride, 1, MAX_FRAMES)
        check_int("predictor.num_regions", p.num_regions, 1, 64)
        check_int("predictor.cost_radius", p.cost_radius, 0, 16)
        check_int("renderer.num_res_blocks", r.num_res_blocks, 0, 4 * MAX_LAYERS)
        check_int("renderer.outer_kernel", r.outer_kernel, 1, 31)
        check_int("vae.layers_per_block", v.layers_per_block, 1, MAX_LAYERS)
        check_int("vae.latent_channels", v.latent_channels, 1, 64)
        check_int("encoder.grid", e.grid, 1, 64)
        check_int("encoder.embed_dim", e.embed_dim, 1, 8192)
        check_int("encoder.clip_vision_dim", e.clip_vision_dim, 0, 8192)
        check_int("encoder.clip_text_dim", e.clip_text_dim, 0, 8192)
        if e.num_tokens < 1:
            raise ValueError("encoder: at least one token source (own_tokens, clip_vision_dim, clip_text_dim)")
        if not 0.0 <= e.text_dropout < 1.0:
            raise ValueError(f"encoder.text_dropout must be in [0, 1), got {e.text_dropout}")
        check_int("denoiser.layers_per_block", d.layers_per_block, 1, MAX_LAYERS)
        check_int("denoiser.num_heads", d.num_heads, 1, 128)
        for name, groups in (("predictor", p.norm_num_groups), ("renderer", r.norm_num_groups),
                             ("vae", v.norm_num_groups), ("encoder", e.norm_num_groups),
                             ("denoiser", d.norm_num_groups)):
            check_int(f"{name}.norm_num_groups", groups, 1, 1024)
        for name, widths, groups in (("predictor.region_widths", p.region_widths, p.norm_num_groups),
                                     ("predictor.flow_widths", p.flow_widths, p.norm_num_groups),
                                     ("predictor.background_widths", p.background_widths, p.norm_num_groups),
                                     ("renderer.widths", r.widths, r.norm_num_groups),
                                     ("vae.block_out_channels", v.block_out_channels, v.norm_num_groups),
                                     ("encoder.widths", e.widths, e.norm_num_groups),
                                     ("denoiser.block_out_channels", d.block_out_channels, d.norm_num_groups)):
            check_widths(name, widths, divisor=groups)
        self.diffusion.validate()
        f = self.flow_downsample * self.vae.downsample_factor
        if self.width <= 0 or self.height <= 0 or self.width % f or self.height % f or self.width % 4 or self.height % 4:
            raise ValueError(f"width x height ({self.width} x {self.height}) must be positive multiples of 4 and of "
                             f"flow_downsample x the VAE factor = {f}")
        if not (self.flow_scale > 0 and self.latent_scale > 0 and self.fps > 0):
            raise ValueError("flow_scale, latent_scale and fps must be positive")
        fh, fw = self.flow_size
        for name, levels in (("predictor.region_widths", len(p.region_widths)),
                             ("predictor.flow_widths", len(p.flow_widths))):
            if fh % 2 ** (levels - 1) or fw % 2 ** (levels - 1):
                raise ValueError(f"the flow size {fh} x {fw} must be divisible by 2 ** (levels - 1) of {name}")
        if len(r.widths) != 3:
            raise ValueError("renderer.widths must give the three pyramid levels")
        if r.outer_kernel % 2 == 0:
            raise ValueError(f"renderer.outer_kernel must be odd and positive, got {r.outer_kernel}")
        lh, lw = self.latent_size
        if lh % 2 ** (d.num_levels - 1) or lw % 2 ** (d.num_levels - 1):
            raise ValueError(f"the latent size {lh} x {lw} must be divisible by 2 ** (denoiser levels - 1)")
        for c in d.block_out_channels:
            if c % d.num_heads:
                raise ValueError(f"denoiser width {c} must be divisible by num_heads {d.num_heads}")
        if not 0.0 <= d.condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1), got {d.condition_dropout}")

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str = "paper", **overrides) -> LVMMConfig:
        """A named configuration (``paper``, ``small`` or ``tiny``) with top-level fields overridden."""
        if name == "paper":
            base = cls()
        elif name == "small":
            base = cls(width=256, height=256, num_frames=8,
                       predictor=PredictorConfig(region_widths=(16, 32, 64, 128), flow_widths=(16, 32, 64, 128),
                                                 background_widths=(16, 32, 64, 128)),
                       renderer=RendererConfig(widths=(16, 32, 64), num_res_blocks=4, norm_num_groups=8),
                       vae=MotionVAEConfig(block_out_channels=(32, 64, 128, 128), norm_num_groups=16),
                       encoder=EncoderConfig(widths=(32, 64, 128, 128), embed_dim=256, norm_num_groups=16),
                       denoiser=DenoiserConfig(block_out_channels=(32, 64, 128, 128), norm_num_groups=16))
        elif name == "tiny":
            base = cls(width=64, height=64, flow_downsample=2, num_frames=4, frame_stride=2, fps=15.0, flow_scale=1.0,
                       predictor=PredictorConfig(num_regions=4, region_widths=(16, 32), flow_widths=(16, 32),
                                                 background_widths=(8, 16), norm_num_groups=4, cost_radius=2),
                       renderer=RendererConfig(widths=(16, 16, 32), num_res_blocks=1, norm_num_groups=4, outer_kernel=3),
                       vae=MotionVAEConfig(block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=8),
                       encoder=EncoderConfig(widths=(16, 32), grid=2, embed_dim=32, norm_num_groups=8),
                       denoiser=DenoiserConfig(block_out_channels=(32, 32), layers_per_block=1, num_heads=4,
                                               norm_num_groups=8))
        else:
            raise ValueError(f"unknown LVMM preset {name!r}; choose one of {', '.join(PRESETS)}")
        return base.replace(**overrides) if overrides else base


def conventions(config: LVMMConfig) -> dict[str, Any]:
    """What the model's motion means (stored with every checkpoint)."""
    fh, fw = config.flow_size
    return {
        "width": config.width, "height": config.height, "flow_size": [fh, fw],
        "latent_shape": [config.latent_channels, *config.latent_size], "num_frames": config.num_frames,
        "frame_stride": config.frame_stride, "fps": config.fps,
        "flow": f"backward displacement in pixels at {fw} x {fh}: frame k's pixel q samples I0 at q + delta(q); "
                "channel 0 = x (right), 1 = y (down); grid_sample align_corners=False",
        "intention": "omega in [0, 1], 1 = warp I0's features, 0 = synthesise (frame k's pixel grid)",
        "vae_input": "[delta / flow_scale, 2 omega - 1]", "flow_scale": config.flow_scale,
        "latent_scale": config.latent_scale,
        "trajectory": "frame 0 = z0 = E(P(I0, I0)) (visual component v), frames 1..K sampled; u_k = z_k - z0",
    }
