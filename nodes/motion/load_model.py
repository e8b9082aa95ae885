"""LoadMotionModel: any of the pack's checkpoints from ComfyUI's models/motion_models folder."""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass

import torch
from comfy_api.latest import io

from ..common import CATEGORY, MODEL_FOLDER, DynModel, NodeInputError, checked_inputs

NODE = "LoadMotionModel"


@dataclass
class MotionModel:
    """What travels as ``DYN_MODEL``: a model behind ComfyUI's model management, with its family and config."""

    family: str
    config: dict
    patcher: object  # comfy.model_patcher.ModelPatcher
    name: str

    @property
    def model(self) -> torch.nn.Module:
        return self.patcher.model.inner

    def load(self) -> torch.device:
        """Move the model to the compute device (ComfyUI offloads it again when memory is needed)."""
        import comfy.model_management

        comfy.model_management.load_model_gpu(self.patcher)
        return self.patcher.load_device

    def require(self, node: str, input_name: str, *families: str) -> None:
        if not any(self.family == f or self.family.startswith(f + ".") for f in families):
            raise NodeInputError(node, input_name, f"a {' or '.join(families)} model", f"a '{self.family}' model "
                                 f"({self.name})")


class ManagedModule(torch.nn.Module):
    """A plain holder for a library model under ComfyUI's ModelPatcher.

    The patcher records the device on ``model.device`` (an attribute it assigns), while the library's models
    (like diffusers' modules) expose ``device`` as a read-only property; holding the model one level down keeps
    both as they are, and the patcher still moves, counts and offloads all of its weights.
    """

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.device = None


# Models in memory, by (file, modification time, size). Only weak references: a model lives as long as ComfyUI
# keeps the node output that holds it -- its output cache (bounded by the server's cache policy, emptied by /free
# with free_memory) or a running graph -- so this never holds a checkpoint ComfyUI has let go of, and the same file
# loaded by two nodes is one model in memory.
_LOADED: weakref.WeakValueDictionary[tuple[str, int, int], MotionModel] = weakref.WeakValueDictionary()


def file_key(path: str) -> tuple[str, int, int]:
    """(real path, modification time in ns, size): a file replaced under the same name is another model."""
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_mtime_ns, stat.st_size


def load_motion_model(path: str) -> MotionModel:
    """Build the model of one checkpoint file, or return the one already in memory (see ``_LOADED``)."""
    import comfy.model_management
    import comfy.model_patcher

    from ...models.registry import build_from_file

    key = file_key(path)
    loaded = _LOADED.get(key)
    if loaded is not None:
        return loaded
    # ComfyUI runs nodes under torch.inference_mode; parameters made there could never take part in autograd
    # (loop guidance back-propagates through the model), so the model is built outside it.
    with torch.inference_mode(False):
        family, config, model = build_from_file(path)
    patcher = comfy.model_patcher.ModelPatcher(ManagedModule(model),
                                               load_device=comfy.model_management.get_torch_device(),
                                               offload_device=comfy.model_management.unet_offload_device())
    handle = MotionModel(family=family, config=config, patcher=patcher, name=os.path.basename(path))
    _LOADED[key] = handle
    return handle


class LoadMotionModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        import folder_paths

        return io.Schema(
            node_id=NODE,
            display_name="Load Motion Model",
            category=f"{CATEGORY}/motion",
            description=("Loads a checkpoint in the pack's format (.safetensors with its family and config in the "
                         "metadata) from models/motion_models: a GID motion prior, an LVMM model, a learned "
                         "renderer, the long-animation paper's additions to SVD (for Long Animation Motion), or "
                         "converted Motion-I2V weights. Managed like ComfyUI's own models: offloaded when idle, kept "
                         "while ComfyUI caches the node's output, freed by 'Free model and node cache' (/free)."),
            inputs=[io.Combo.Input("model_name", options=folder_paths.get_filename_list(MODEL_FOLDER),
                                   tooltip="A file in ComfyUI's models/motion_models folder.")],
            outputs=[DynModel.Output("model", display_name="model",
                                     tooltip="The loaded motion model (family and config included).")],
        )

    @classmethod
    def fingerprint_inputs(cls, model_name):
        """A file replaced under the same name is loaded again (ComfyUI compares this between runs)."""
        import folder_paths

        path = folder_paths.get_full_path(MODEL_FOLDER, model_name)
        return file_key(path) if path is not None and os.path.exists(path) else model_name

    @classmethod
    @checked_inputs
    def execute(cls, model_name) -> io.NodeOutput:
        import folder_paths

        from ...models.checkpoint import CheckpointError

        path = folder_paths.get_full_path(MODEL_FOLDER, model_name)
        if path is None:
            raise NodeInputError(NODE, "model_name", f"a file in models/{MODEL_FOLDER}", repr(model_name))
        try:
            return io.NodeOutput(load_motion_model(path))
        except CheckpointError as error:
            raise NodeInputError(NODE, "model_name", "a valid ImageDynamics checkpoint", str(error)) from error
