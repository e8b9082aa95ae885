"""The pack's ComfyExtension: registers its model folder and lists every node."""
from __future__ import annotations

import os

from comfy_api.latest import ComfyExtension, io
from typing_extensions import override

from .common import MODEL_FOLDER


def register_model_folder() -> None:
    """Weights live in ComfyUI's ``models/motion_models`` (plus any extra paths the user configured)."""
    import folder_paths

    path = os.path.join(folder_paths.models_dir, MODEL_FOLDER)
    known = folder_paths.folder_names_and_paths.get(MODEL_FOLDER)
    if known is None or path not in known[0]:
        folder_paths.add_model_folder_path(MODEL_FOLDER, path)
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (
        folder_paths.folder_names_and_paths[MODEL_FOLDER][0], {".safetensors"})


def node_list() -> list[type[io.ComfyNode]]:
    from .control import NODES as control_nodes
    from .motion import NODES as motion_nodes
    from .render import NODES as render_nodes

    return [*control_nodes, *motion_nodes, *render_nodes]


class ImageDynamicsExtension(ComfyExtension):
    @override
    async def on_load(self) -> None:
        register_model_folder()

    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return node_list()
