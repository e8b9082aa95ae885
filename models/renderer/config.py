"""Architecture of the learned image-based renderer (:class:`~.model.ImageRenderer`), stored in its checkpoints."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import MAX_LAYERS, StoredConfig, check_int, check_widths, from_dict, stored_version

MAX_BLOCKS = 4 * MAX_LAYERS  # residual blocks per decoder level
ENCODERS = ("conv", "resnet34")
RESNET34_CHANNELS = (64, 64, 128, 256, 512)
"""Channels of pyramid levels 1 .. 5 of the ResNet-34 encoder (level 0 is the renderer's own)."""


@dataclass
class ImageRendererConfig(StoredConfig):
    """Architecture of :class:`ImageRenderer` (stored as JSON in its checkpoints).

    Attributes:
        channels: encoder feature channels per pyramid level; level l is at 1 / 2^l of the picture, so
            ``len(channels)`` is the number of levels. With the ResNet-34 encoder, levels 1 .. are fixed by it
            (64, 64, 128, 256, 512) and only ``channels[0]`` is free.
        decoder_channels: decoder channels per level (default: ``channels``).
        blocks: residual blocks per decoder level.
        encoder: ``conv`` (a small conv net) or ``resnet34`` (GID's feature extractor, ``backbones.py``).
        guided_fill: give the decoder the flow-guided fill candidate (see the module docstring).
        fill_features: fill the holes of every level's splatted features by push-pull before the decoder sees
            them (with the coverage channel telling which values are interpolated), instead of zeros.
        extend_border: fill the base frame's holes whose content enters through the border by continuing the
            border along the motion, as the pixel renderer does (``ops.render.extend_border``).
        hole_threshold: bilinear coverage under which a pixel is a hole (as ``ops.render``).
        metric_scale: scale of the brightness-constancy metric the renderer was trained with (informative; the
            caller computes the metric).
    """

    CONFIG_VERSION: ClassVar[int] = 3  # 2: extend_border (version 1 renderers were trained without it); 3: encoder
    CONFIG_NAME: ClassVar[str] = "renderer config"

    channels: tuple[int, ...] = (32, 64, 128)
    decoder_channels: tuple[int, ...] | None = None
    blocks: int = 2
    encoder: str = "conv"
    guided_fill: bool = True
    fill_features: bool = True
    extend_border: bool = True
    hole_threshold: float = 1e-3
    metric_scale: float = 50.0

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.decoder_channels = self.channels if self.decoder_channels is None else tuple(self.decoder_channels)
        self.validate()

    @property
    def levels(self) -> int:
        return len(self.channels)

    def validate(self) -> None:
        """Raise ValueError when the config is inconsistent or beyond the limits of ``models/config.py``."""
        check_widths("channels", self.channels)
        check_widths("decoder_channels", self.decoder_channels)
        if len(self.decoder_channels) != len(self.channels):
            raise ValueError(f"decoder_channels must give {len(self.channels)} entries, got {self.decoder_channels}")
        check_int("blocks", self.blocks, 0, MAX_BLOCKS)
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.encoder == "resnet34" and (not 2 <= len(self.channels) <= 6 or tuple(self.channels[1:])
                                           != RESNET34_CHANNELS[:len(self.channels) - 1]):
            raise ValueError(f"the resnet34 encoder gives 2 to 6 levels with channels (c0, "
                             f"{', '.join(map(str, RESNET34_CHANNELS))}) up to the number of levels, got "
                             f"{self.channels}")
        if not 0 < self.hole_threshold < 1:
            raise ValueError(f"hole_threshold must be in (0, 1), got {self.hole_threshold}")
        if not self.metric_scale > 0:
            raise ValueError(f"metric_scale must be > 0, got {self.metric_scale}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRendererConfig:
        """Inverse of :meth:`to_dict` (the ``training`` notes stored beside it are ignored); ValueError on unknown
        keys, wrong types, limits or a newer version. Version 1 renderers were trained without ``extend_border``."""
        version = stored_version(data, cls.CONFIG_NAME, cls.CONFIG_VERSION)
        config = from_dict(cls, data, ignore=("version", "training"))
        if version < 2 and "extend_border" not in data:
            config.extend_border = False  # what those renderers were trained with
        return config

    @classmethod
    def preset(cls, name: str = "default") -> ImageRendererConfig:
        """``default`` (32, 64, 128) x 2 blocks (~1.3 M parameters); ``small`` (16, 32, 64); ``tiny`` for tests;
        ``resnet34``: GID's layout, the ResNet-34 encoder to 1/16 (levels 32, 64, 64, 128, 256 channels; decoder
        32, 64, 64, 128, 128; ~10.5 M parameters)."""
        presets = {"default": cls(), "small": cls(channels=(16, 32, 64), blocks=2),
                   "tiny": cls(channels=(8, 8, 16), blocks=1),
                   "resnet34": cls(channels=(32, 64, 64, 128, 256), decoder_channels=(32, 64, 64, 128, 128),
                                   blocks=2, encoder="resnet34")}
        if name not in presets:
            raise ValueError(f"preset must be one of {sorted(presets)}, got {name!r}")
        return presets[name]
