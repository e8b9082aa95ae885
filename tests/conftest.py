"""Test set-up shared by every layer.

The pack is a ComfyUI custom-node folder whose name is chosen by the user, and it uses relative imports
only. The tests import it as the package ``imagedynamics`` without running its top-level ``__init__.py``
(which needs a ComfyUI host): ``from imagedynamics.ops.splat import softsplat``.
"""
from __future__ import annotations

import os
import pathlib
import sys
import types

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs 2 workers on the 2-core machine: one intra-op thread each, and for what they start (the
    # ComfyUI server, in-process scripts, accelerate), so that 4+ threads do not fight over 2 cores.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

if "imagedynamics" not in sys.modules:
    package = types.ModuleType("imagedynamics")
    package.__path__ = [str(ROOT)]
    package.__file__ = str(ROOT / "__init__.py")
    sys.modules["imagedynamics"] = package


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): its models are
    tiny, so on the shared 2-core test machine one thread is several times faster than two, and deterministic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def trainer_cache(tmp_path_factory):
    """The trainers' default work folders (``train.common.default_work_dir``: the user's cache) go to a temporary
    folder, so that tests which train without ``--work-dir`` leave nothing in ~/.cache."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous
