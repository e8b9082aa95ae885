"""Writes the example graphs in ``workflows/`` (UI format) from compact descriptions.

Each module in ``scripts/workflow_specs/`` exports ``WORKFLOWS = {name: function returning a Workflow}``. Every
graph gets a Note (its title, what it does, and every file it loads with where that file comes from: see
``workflow_specs/files.py``) and a titled group per stage. The layout and widget order come from a real server's
``/object_info``, so the files are what the front end itself would save. Run: ``make workflows`` (starts a host
for a few seconds).
"""
from __future__ import annotations

import importlib
import pathlib
import pkgutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import workflow_specs  # noqa: E402
from comfy_host import ComfyHost  # noqa: E402
from workflow_format import Workflow, build_ui_workflow, dumps  # noqa: E402
from workflow_specs.files import files_section  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "workflows"


def all_workflows() -> dict:
    workflows = {}
    for module in pkgutil.iter_modules(workflow_specs.__path__):
        workflows.update(getattr(importlib.import_module(f"workflow_specs.{module.name}"), "WORKFLOWS", {}))
    return workflows


def note_text(workflow: Workflow) -> str:
    """The Markdown of a workflow's Note: title, what it does, the files it loads and where they come from."""
    parts = [f"## {workflow.title}", workflow.about.strip(), files_section(workflow.nodes)]
    return "\n\n".join(part for part in parts if part)


def build(name: str, object_info: dict) -> str:
    """The text of ``workflows/<name>.json`` for the server whose ``/object_info`` is given."""
    workflow = all_workflows()[name]()
    return dumps(build_ui_workflow(workflow.nodes, object_info, note=note_text(workflow),
                                   extra={"imagedynamics": {"example": name}}))


def main(names: list[str]) -> None:
    with ComfyHost.start() as host:
        info = host.object_info()
    OUT_DIR.mkdir(exist_ok=True)
    for name in all_workflows():
        if names and name not in names:
            continue
        path = OUT_DIR / f"{name}.json"
        path.write_text(build(name, info))
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
