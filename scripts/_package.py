"""Import the pack as the package ``imagedynamics`` from a script, whatever its folder is called.

The pack's folder in ``custom_nodes/`` may have any name (``ComfyUI-ImageDynamics`` is not importable with
``python -m``), so the command-line tools register the folder under a fixed name, without running its
``__init__.py`` (which needs ComfyUI).
"""
from __future__ import annotations

import pathlib
import sys
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]


def import_pack() -> types.ModuleType:
    if "imagedynamics" not in sys.modules:
        package = types.ModuleType("imagedynamics")
        package.__path__ = [str(ROOT)]
        package.__file__ = str(ROOT / "__init__.py")
        sys.modules["imagedynamics"] = package
    return sys.modules["imagedynamics"]
