"""Stage 2 of Motion-I2V: the motion modules that turn a user's SD 1.5 U-Net into the flow-guided renderer.

The released ``motion_block.bin`` holds only temporal modules (``down_blocks.{i}.motion_modules.{j}``,
``mid_block.motion_modules.0``, ``up_blocks.{i}.motion_modules.{j}``); the spatial U-Net is plain SD 1.5 and
comes from the user's ComfyUI checkpoint. :class:`Stage2MotionModules` holds them under exactly those names.

How to run them with any SD 1.5 implementation (ComfyUI's included):

1. Put the video's frames in the batch, video-major: ``[(B*F), C, H, W]`` with ``F = 1 + N`` (frame 0 is the
   reference; its clean latent replaces frame 0 of the noisy latents before every step). With classifier-free
   guidance, ComfyUI's batch ``[cond videos..., uncond videos...]`` is still video-major.
2. After each spatial layer listed by :func:`comfy_sd15_insertions` call
   ``h = modules.module(name)(h, num_frames=F, flows=flows)``, where ``flows`` are the reference-anchored
   pixel displacements ``[F, 2, Hp, Wp]`` (frame 0 = zeros, at picture resolution; the attention resizes
   and rescales them to each feature map) or ``[Bf, F, 2, Hp, Wp]`` with ``Bf`` dividing ``B``.
3. Every attention of every module is then motion-augmented: keys and values from
   ``[z0, z1', z1, ..., zN', zN]`` where ``zi' = splat(z0, f_{0->i})`` (average splatting), queries from
   the real frames. ``flows=None`` gives plain AnimateDiff temporal attention.

Where the modules go in ComfyUI's ``openaimodel.UNetModel`` (SD 1.5, 2 layers per level):

=====================================  ======================================================================
released name                          position
=====================================  ======================================================================
``down_blocks.i.motion_modules.j``     end of ``input_blocks[1 + 3 i + j]`` (after its ResBlock/SpatialTransformer)
``mid_block.motion_modules.0``         ``middle_block`` between the SpatialTransformer and the last ResBlock
``up_blocks.i.motion_modules.j``       ``output_blocks[3 i + j]`` after its SpatialTransformer (or ResBlock),
                                       before its Upsample if it has one
=====================================  ======================================================================

Example:
    >>> import torch
    >>> from .config import tiny_config
    >>> modules = Stage2MotionModules(tiny_config("stage2"))
    >>> [name for name, _ in modules.named_motion_modules()][:2]
    ['down_blocks.0.motion_modules.0', 'down_blocks.1.motion_modules.0']
    >>> h = torch.randn(4, 16, 8, 8)                            # one video of 4 frames
    >>> flows = torch.zeros(4, 2, 64, 64)
    >>> modules.module("down_blocks.0.motion_modules.0")(h, num_frames=4, flows=flows).shape
    torch.Size([4, 16, 8, 8])
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn

from .config import resolve_config
from .temporal import TemporalModule, temporal_module_from_config


class _Block(nn.Module):
    """Holds one U-Net block's ``motion_modules`` so that the parameter names match the released file."""

    def __init__(self, modules: list[TemporalModule]) -> None:
        super().__init__()
        self.motion_modules = nn.ModuleList(modules)


class Stage2MotionModules(nn.Module):
    """All temporal modules of the stage-2 U-Net, named as in ``motion_block.bin``.

    Args:
        config: a ``stage2`` config (:func:`~.config.full_config` / :func:`~.config.tiny_config`).
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = resolve_config("stage2", config)
        self.config = cfg
        unet_like = {"norm_num_groups": cfg["norm_num_groups"], "motion_module": cfg["motion_module"]}
        channels, layers = cfg["block_out_channels"], cfg["layers_per_block"]
        levels = len(channels)

        def level_modules(level: int, ch: int, count: int) -> list[TemporalModule]:
            if 2 ** level not in cfg["motion_module_resolutions"]:
                return []
            return [temporal_module_from_config(ch, unet_like) for _ in range(count)]

        self.down_blocks = nn.ModuleList([_Block(level_modules(i, ch, layers)) for i, ch in enumerate(channels)])
        mid = [temporal_module_from_config(channels[-1], unet_like)] if cfg["motion_module_mid_block"] else []
        self.mid_block = _Block(mid)
        self.up_blocks = nn.ModuleList([
            _Block(level_modules(levels - 1 - i, ch, layers + 1)) for i, ch in enumerate(reversed(channels))])

    def named_motion_modules(self) -> Iterator[tuple[str, TemporalModule]]:
        """``(released name, module)`` in forward order: down blocks, middle block, up blocks."""
        for i, block in enumerate(self.down_blocks):
            for j, module in enumerate(block.motion_modules):
                yield f"down_blocks.{i}.motion_modules.{j}", module
        for j, module in enumerate(self.mid_block.motion_modules):
            yield f"mid_block.motion_modules.{j}", module
        for i, block in enumerate(self.up_blocks):
            for j, module in enumerate(block.motion_modules):
                yield f"up_blocks.{i}.motion_modules.{j}", module

    def module(self, name: str) -> TemporalModule:
        """The module called ``name`` (e.g. ``"up_blocks.1.motion_modules.2"``)."""
        return self.get_submodule(name)

    def load_into_unet(self, unet: nn.Module) -> None:
        """Copy these modules into a stage-2 :class:`~.unet3d.MotionI2VUNet3D` (strict on the motion keys)."""
        own = self.state_dict()
        target = {k: v for k, v in unet.state_dict().items() if ".motion_modules." in k}
        if set(own) != set(target):
            missing = sorted(set(target) - set(own))[:3]
            extra = sorted(set(own) - set(target))[:3]
            raise ValueError(f"motion modules do not fit this U-Net (missing {missing}, unexpected {extra})")
        unet.load_state_dict(own, strict=False)

    @classmethod
    def from_unet(cls, unet: nn.Module) -> Stage2MotionModules:
        """The motion modules of a stage-2 :class:`~.unet3d.MotionI2VUNet3D`, as a standalone container."""
        from .config import stage2_config_from_unet

        modules = cls(stage2_config_from_unet(unet.config))
        modules.load_state_dict({k: v for k, v in unet.state_dict().items() if ".motion_modules." in k})
        return modules


def comfy_sd15_insertions(config: dict[str, Any] | None = None) -> list[tuple[str, str, int]]:
    """Where each motion module goes in ComfyUI's SD 1.5 ``UNetModel``: ``(name, block list, index)``.

    ``block list`` is ``"input_blocks"``, ``"middle_block"`` or ``"output_blocks"``; the module runs at the
    end of that ``TimestepEmbedSequential`` (before an ``Upsample``), except in ``middle_block`` where it runs
    after element 1 (the SpatialTransformer). Example (full size):
    ``("down_blocks.0.motion_modules.0", "input_blocks", 1)``, ``("mid_block.motion_modules.0",
    "middle_block", 1)``, ``("up_blocks.3.motion_modules.2", "output_blocks", 11)``.
    """
    cfg = resolve_config("stage2", config)
    layers, levels = cfg["layers_per_block"], len(cfg["block_out_channels"])
    res = cfg["motion_module_resolutions"]
    out = []
    for i in range(levels):
        if 2 ** i in res:
            out += [(f"down_blocks.{i}.motion_modules.{j}", "input_blocks", 1 + i * (layers + 1) + j)
                    for j in range(layers)]
    if cfg["motion_module_mid_block"]:
        out.append(("mid_block.motion_modules.0", "middle_block", 1))
    for i in range(levels):
        if 2 ** (levels - 1 - i) in res:
            out += [(f"up_blocks.{i}.motion_modules.{j}", "output_blocks", i * (layers + 1) + j)
                    for j in range(layers + 1)]
    return out
