"""Node-level unit tests: the node modules' own helpers, called directly (no server).

Node modules import ``comfy_api``, so the real host (``.host/ComfyUI``, set up by ``make test``) goes on
``sys.path``. Only ComfyUI's light API modules are imported this way (``comfy_api``, ``comfy.utils``,
``folder_paths``); anything that needs ComfyUI's model management or a server is tested in tests/integration.
"""
from __future__ import annotations

import pathlib
import sys

HOST = pathlib.Path(__file__).resolve().parents[2] / ".host" / "ComfyUI"
if not (HOST / "comfy_api").is_dir():
    raise RuntimeError(f"the node tests need the ComfyUI host in {HOST}: run scripts/bootstrap.sh (make test does)")
if str(HOST) not in sys.path:
    sys.path.append(str(HOST))  # after the venv's packages: the host only adds its own modules
