"""ComfyUI-ImageDynamics: turn one still picture into motion you can see, steer and loop.

ComfyUI imports this folder as a package (under whatever name it has in ``custom_nodes/``) and calls
``comfy_entrypoint``; every import below is relative for that reason. The library layers (``ops/``,
``models/``, ``train/``) never import ComfyUI; only ``nodes/`` does.
"""
from __future__ import annotations

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    from .nodes.example_inputs import provide_example_inputs
    from .nodes.extension import ImageDynamicsExtension, register_model_folder

    register_model_folder()  # older hosts (0.3.x) never call ComfyExtension.on_load
    provide_example_inputs()  # the pictures and clips the example workflows (templates) load
    return ImageDynamicsExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
