"""What the ``*_inprocess.py`` scripts share: run as subprocesses (``python <name>_inprocess.py``) so that
ComfyUI's modules never enter the pytest process, they put the host and the pack on ``sys.path`` the same way."""
from __future__ import annotations

import pathlib
import sys
import types

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOST = ROOT / ".host" / "ComfyUI"


def setup_host() -> None:
    """Make ``comfy`` importable (CPU only), and the pack importable as the package ``imagedynamics``, with
    tests/ and tests/integration/ on the path for the shared fixtures."""
    here = pathlib.Path(__file__).resolve().parent
    for path in (HOST, here, here.parent):
        sys.path.insert(0, str(path))
    from comfy.cli_args import args

    args.cpu = True
    if "imagedynamics" not in sys.modules:
        package = types.ModuleType("imagedynamics")
        package.__path__ = [str(ROOT)]
        sys.modules["imagedynamics"] = package


class ModelHolder:
    """The :class:`~nodes.motion.load_model.MotionModel` fields the pack's patches use (``model``, ``patcher``)."""

    def __init__(self, model):
        import comfy.model_management
        import comfy.model_patcher

        device = comfy.model_management.get_torch_device()
        self.model = model
        self.patcher = comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)
