"""Writes the example graphs in ``workflows/`` (UI format) from compact descriptions.

The layout and widget order come from a real server's ``/object_info``, so the files are what the front end
itself would save. Run: ``.venv/bin/python scripts/make_workflows.py`` (starts a host for a few seconds).
"""
from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from comfy_host import ComfyHost  # noqa: E402
from workflow_format import Node, build_ui_workflow, dumps  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE_PICTURE = "astronaut.png"

# The flag behind the astronaut ripples down and to the right; the rest of the picture stays still.
FLAG_ARROWS = {"arrows": [
    {"start": [30, 60], "end": [34, 63], "speed": 1.0},
    {"start": [70, 120], "end": [74, 124], "speed": 1.0},
    {"start": [40, 220], "end": [43, 224], "speed": 1.0},
    {"start": [20, 380], "end": [22, 384], "speed": 1.0},
]}


def cinemagraph() -> list[Node]:
    """The default workflow: a photo animated by arrows into a seamless loop, no weights."""
    return [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=(320, 360)),
        Node(2, "SparseTrajectoryToFlow", {"trajectories": json.dumps(FLAG_ARROWS), "mode": "arrows", "num_frames": 48},
             {"image": (1, 0), "mask": (1, 1)}, size=(360, 420)),
        Node(3, "EulerianMotion", {"num_frames": 48, "fps": 24.0, "loop": "seamless loop"}, {"flow": (2, 0)}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0)}),
        Node(5, "SaveAnimatedWEBP", {"filename_prefix": "ImageDynamics/cinemagraph", "fps": 24.0,
                                     "lossless": False, "quality": 90, "method": "default"},
             {"images": (4, 0)}, size=(420, 460)),
        Node(6, "PreviewMotion", {"opacity": 0.6}, {"image": (1, 0), "flow": (2, 0), "tracks": (2, 2)}),
        Node(7, "PreviewImage", {}, {"images": (6, 0)}, size=(320, 360)),
    ]


WORKFLOWS = {"cinemagraph": cinemagraph}


def main() -> None:
    with ComfyHost.start() as host:
        info = host.object_info()
    out_dir = ROOT / "workflows"
    out_dir.mkdir(exist_ok=True)
    for name, spec in WORKFLOWS.items():
        path = out_dir / f"{name}.json"
        path.write_text(dumps(build_ui_workflow(spec(), info, extra={"imagedynamics": {"example": name}})))
        print(path)


if __name__ == "__main__":
    main()
