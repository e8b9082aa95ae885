"""Writes the example graphs in ``workflows/`` (UI format) from compact descriptions.

Each module in ``scripts/workflow_specs/`` exports ``WORKFLOWS = {name: function returning [Node, ...]}``.
The layout and widget order come from a real server's ``/object_info``, so the files are what the front end
itself would save. Run: ``make workflows`` (starts a host for a few seconds).
"""
from __future__ import annotations

import importlib
import pathlib
import pkgutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import workflow_specs  # noqa: E402
from comfy_host import ComfyHost  # noqa: E402
from workflow_format import build_ui_workflow, dumps  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def all_workflows() -> dict:
    workflows = {}
    for module in pkgutil.iter_modules(workflow_specs.__path__):
        workflows.update(importlib.import_module(f"workflow_specs.{module.name}").WORKFLOWS)
    return workflows


def main(names: list[str]) -> None:
    with ComfyHost.start() as host:
        info = host.object_info()
    out_dir = ROOT / "workflows"
    out_dir.mkdir(exist_ok=True)
    for name, spec in all_workflows().items():
        if names and name not in names:
            continue
        path = out_dir / f"{name}.json"
        path.write_text(dumps(build_ui_workflow(spec(), info, extra={"imagedynamics": {"example": name}})))
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
