"""The pack's metadata: what the Comfy Registry and ComfyUI-Manager read, and what a user's pip installs."""
from __future__ import annotations

import ast
import pathlib
import re

import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(name: str) -> list[str]:
    lines = [line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines()]
    return [line for line in lines if line]


def test_registry_metadata_is_complete():
    project, comfy = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
    assert project["name"] == "comfyui-imagedynamics"  # what `comfy node init` derives from the repository
    assert re.fullmatch(r">=\d+\.\d+\.\d+", comfy["requires-comfyui"])
    assert comfy["Icon"].endswith("/docs/icon.png") and (ROOT / "docs" / "icon.png").exists()
    assert comfy["PublisherId"] and comfy["DisplayName"] == "ComfyUI-ImageDynamics"
    assert comfy["Models"] and all(m["model_url"].startswith("https://") and m["location"].startswith("/")
                                   for m in comfy["Models"])


def test_runtime_requirements_leave_the_training_engine_to_the_trainers_extra():
    runtime = _requirements("requirements.txt")
    assert runtime == PYPROJECT["project"]["dependencies"]
    assert _requirements("requirements-train.txt") == PYPROJECT["project"]["optional-dependencies"]["train"]
    assert not [r for r in runtime if r.startswith("accelerate")]
    assert "-r requirements-train.txt" in _requirements("requirements-dev.txt")  # the tests train
    # nothing the nodes load imports accelerate (only train/ does, inside its commands)
    for folder in ("nodes", "ops", "models"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not [n for n in names if n.split(".")[0] == "accelerate"], path
