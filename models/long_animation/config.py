"""Architecture of the long-animation paper's additions to Stable Video Diffusion (:class:`LongAnimationConfig`).

The additions are built for one SVD shape, which the config names (:class:`SVDFit`): the channels and the
resolution level of each of the U-Net's spatio-temporal transformers (``SpatialVideoTransformer``, in the order
the U-Net runs them: input blocks, middle block, output blocks), the depth of their temporal stacks, and the widths
of the timestep embedding. Applying the additions to a U-Net of another shape is refused with the first mismatch
(:func:`~.attach.check_fit`; :func:`~.attach.fit_from_unet` reads a U-Net's).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import (
    MAX_CHANNELS,
    MAX_LAYERS,
    MAX_LEVELS,
    MAX_SEQUENCE,
    StoredConfig,
    check_int,
    check_widths,
    from_dict,
    stored_version,
)
from .refiner import RefinerConfig

LORA_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")
"""The linear layers of every temporal transformer block (``time_stack[d]``) that the static-camera LoRA adapts."""
CONTEXT_TARGETS = ("attn2.to_k", "attn2.to_v")
"""Those of them that read the context (``SVDFit.context_dim`` inputs)."""

SVD_CHANNELS = (320, 320, 640, 640, 1280, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320)
SVD_LEVELS = (0, 0, 1, 1, 2, 2, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0)


@dataclass
class SVDFit:
    """The SVD U-Net the additions fit (Stable Video Diffusion ``svd`` / ``svd_xt`` by default).

    Attributes:
        block_channels: channels of each spatio-temporal transformer, in the order the U-Net runs them
            (SVD: 6 in the input blocks, 1 in the middle block, 9 in the output blocks).
        block_levels: resolution level of each (level l works at 1 / 2^l of the latent).
        time_depth: temporal transformer blocks per spatio-temporal transformer (``len(time_stack)``).
        head_channels: channels per attention head (SVD: 64).
        model_channels: width of the sinusoidal timestep features (SVD: 320).
        time_embed_dim: width of the timestep embedding the strength embedding is added to (SVD: 1280).
        context_dim: width of the context the temporal cross-attention reads (``attn2.to_k`` / ``to_v`` inputs;
            SVD: 1024, its CLIP-vision embedding).
    """

    block_channels: tuple[int, ...] = SVD_CHANNELS
    block_levels: tuple[int, ...] = SVD_LEVELS
    time_depth: int = 1
    head_channels: int = 64
    model_channels: int = 320
    time_embed_dim: int = 1280
    context_dim: int = 1024

    def __post_init__(self) -> None:
        self.block_channels = tuple(self.block_channels)
        self.block_levels = tuple(self.block_levels)

    @property
    def blocks(self) -> int:
        return len(self.block_channels)

    @property
    def levels(self) -> int:
        return max(self.block_levels) + 1

    def validate(self) -> None:
        check_widths("svd.block_channels", self.block_channels, max_levels=MAX_SEQUENCE,
                     divisor=self.head_channels if isinstance(self.head_channels, int) and self.head_channels > 0
                     else 1)
        if len(self.block_levels) != len(self.block_channels):
            raise ValueError(f"svd.block_levels must give {len(self.block_channels)} entries (one per block), got "
                             f"{self.block_levels}")
        for i, level in enumerate(self.block_levels):
            check_int(f"svd.block_levels[{i}]", level, 0, MAX_LEVELS - 1)
        check_int("svd.time_depth", self.time_depth, 1, MAX_LAYERS)
        check_int("svd.head_channels", self.head_channels, 1, MAX_CHANNELS)
        check_int("svd.model_channels", self.model_channels, 2, MAX_CHANNELS)
        if self.model_channels % 2:
            raise ValueError(f"svd.model_channels must be even (sinusoidal features), got {self.model_channels}")
        check_int("svd.time_embed_dim", self.time_embed_dim, 1, 4 * MAX_CHANNELS)
        check_int("svd.context_dim", self.context_dim, 1, MAX_CHANNELS)


MOTION_INPUTS = ("displacement", "flow")
"""Values of :attr:`LongAnimationConfig.motion_input`."""


@dataclass
class LongAnimationConfig(StoredConfig):
    """The additions: motion encoder, motion attention adapters (Eq. 4), strength embedding (Eq. 8), LoRA, T.

    Attributes:
        svd: the SVD U-Net they fit (:class:`SVDFit`).
        encoder_channels: the CNN motion encoder's channels per latent level (level l at 1 / 2^l of the latent,
            the latent at 1 / 8 of the picture); as many levels as ``svd`` uses.
        encoder_blocks: convolutions per level after the first.
        flow_scale: the encoder sees ``input / flow_scale`` (the input below, in pixels at the picture's size).
        motion_input: what the motion encoder sees for frame k. ``displacement`` (config version 2, the default):
            frame k's displacement from frame 0, the frame-to-frame flows integrated along their trajectories
            (Eq. 3; a static field integrated as an Eulerian velocity, ``ops.eulerian.integrate_flows``), so the
            Eq. 4 attention's V differs per frame and tells frame k how far it is from the picture. ``flow``
            (what version-1 files were trained with): the flow itself, the same for every frame of a static
            field. M_s (Eq. 8) is the frame-to-frame flows' mean length either way.
        strength_scale: the strength embedding's sinusoid sees ``M_s * strength_scale`` (M_s in pixels per frame;
            10 puts 0 .. 20 px/frame on SVD's motion-bucket scale 0 .. 200).
        lora_rank: rank of the static-camera LoRA on the temporal attention layers (:data:`LORA_TARGETS`); 0: none.
        lora_alpha: LoRA scale numerator (the update is ``alpha / rank * up @ down``, as ComfyUI's LoRA loader).
        refiner: the refinement model T (``refiner.py``, trained by ``train/refiner.py``).
        frames: the clip length the additions were trained with (informative; any length runs).
        resolution: the picture size [H, W] they were trained at (informative).
    """

    CONFIG_VERSION: ClassVar[int] = 2
    CONFIG_NAME: ClassVar[str] = "long_animation config"

    svd: SVDFit = field(default_factory=SVDFit)
    encoder_channels: tuple[int, ...] = (64, 128, 256, 256)
    encoder_blocks: int = 1
    flow_scale: float = 8.0
    strength_scale: float = 10.0
    lora_rank: int = 16
    lora_alpha: float = 16.0
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    frames: int = 25
    resolution: tuple[int, int] = (512, 512)
    motion_input: str = "displacement"

    def __post_init__(self) -> None:
        self.encoder_channels = tuple(self.encoder_channels)
        self.resolution = tuple(self.resolution)
        self.validate()

    def validate(self) -> None:
        """ValueError when inconsistent or beyond the limits of ``models/config.py``."""
        self.svd.validate()
        self.refiner.validate()
        check_widths("encoder_channels", self.encoder_channels)
        if len(self.encoder_channels) != self.svd.levels:
            raise ValueError(f"encoder_channels must give {self.svd.levels} entries (the SVD's levels "
                             f"0 .. {self.svd.levels - 1}), got {self.encoder_channels}")
        check_int("encoder_blocks", self.encoder_blocks, 0, MAX_LAYERS)
        for name in ("flow_scale", "strength_scale", "lora_alpha"):
            value = getattr(self, name)
            if not 0 < value <= 1e6:
                raise ValueError(f"{name} must be in (0, 1e6], got {value}")
        check_int("lora_rank", self.lora_rank, 0, 256)
        check_int("frames", self.frames, 1, 1024)
        if self.motion_input not in MOTION_INPUTS:
            raise ValueError(f"motion_input must be one of {MOTION_INPUTS}, got {self.motion_input!r}")
        for i, size in enumerate(self.resolution):
            check_int(f"resolution[{i}]", size, 8, 4096)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LongAnimationConfig:
        """Inverse of :meth:`to_dict` (``training`` notes ignored); ValueError on unknown keys, types, limits."""
        version = stored_version(data, cls.CONFIG_NAME, cls.CONFIG_VERSION)
        if version < 2 and "motion_input" not in data:   # version 1: the encoder saw the flows themselves
            data = {**data, "motion_input": "flow"}
        return from_dict(cls, data, ignore=("version", "training"))

    @classmethod
    def preset(cls, name: str = "paper") -> LongAnimationConfig:
        """``paper``: the additions for SVD (svd / svd_xt) with T's ``pix2pix`` size; ``small``: SVD with a
        narrower encoder and T ``small``. Tests build their own (``tiny_config``) for a tiny SVD."""
        presets = {
            "paper": lambda: cls(refiner=RefinerConfig.preset("pix2pix")),
            "small": lambda: cls(encoder_channels=(32, 64, 128, 128), lora_rank=8, lora_alpha=8.0,
                                 refiner=RefinerConfig.preset("small"), frames=14, resolution=(320, 512)),
        }
        if name not in presets:
            raise ValueError(f"preset must be one of {sorted(presets)}, got {name!r}")
        return presets[name]()


TINY_SVD = SVDFit(block_channels=(32, 64, 64, 64, 64, 32, 32), block_levels=(0, 1, 1, 1, 1, 0, 0), time_depth=1,
                  head_channels=16, model_channels=32, time_embed_dim=128, context_dim=32)
"""The tiny SVD of the tests (``tests/integration/tiny_svd.py``: ComfyUI's SVD classes at 32 / 64 channels)."""


def tiny_config(fit: SVDFit | None = None) -> LongAnimationConfig:
    """Tiny additions for tests (encoder 8 / 16 channels, LoRA rank 4, T ``tiny``), for ``fit`` (:data:`TINY_SVD`)."""
    fit = fit if fit is not None else TINY_SVD
    widths = tuple(8 * 2 ** min(level, 1) for level in range(fit.levels))
    return LongAnimationConfig(svd=fit, encoder_channels=widths, lora_rank=4, lora_alpha=4.0,
                               refiner=RefinerConfig.preset("tiny"), frames=4, resolution=(64, 64))
