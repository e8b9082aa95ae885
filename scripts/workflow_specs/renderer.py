"""Example graph of the learned renderer: a dragged region rendered by a renderer trained on the user's videos."""
from __future__ import annotations

import json

from workflow_format import Node

from .training_free import EXAMPLE_PICTURE, FLAG_TRACK, save

# The tests train this tiny renderer in seconds (tests/integration/tiny_renderer.py); users train their own with
# `python scripts/train.py renderer --videos ... --out ComfyUI/models/motion_models/my_renderer.safetensors`.
RENDERER_MODEL = "renderer_tiny.safetensors"


def learned_renderer() -> list[Node]:
    """A drag leaves a disoccluded trail behind the region; the learned renderer's decoder fills it."""
    return [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=(320, 360)),
        Node(2, "SparseTrajectoryToFlow", {"trajectories": json.dumps(FLAG_TRACK), "mode": "tracks",
                                           "num_frames": 24}, {"image": (1, 0), "mask": (1, 1)}, size=(470, 860)),
        Node(3, "LoadMotionModel", {"model_name": RENDERER_MODEL}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (2, 1), "renderer": (3, 0)}),
        save(5, 4, "learned_renderer"),
    ]


WORKFLOWS = {"learned_renderer": learned_renderer}
