"""Example graph of the learned renderer: a dragged region rendered by a renderer trained on the user's videos."""
from __future__ import annotations

import json

from workflow_format import Node, Workflow

from .training_free import EDITOR_SIZE, FLAG_TRACK, picture, save

# The tests train this tiny renderer in seconds (tests/integration/tiny_renderer.py); users train their own.
RENDERER_MODEL = "renderer_tiny.safetensors"


def learned_renderer() -> Workflow:
    return Workflow("A learned renderer fills what a drag uncovers", """
A path drawn in **Sparse Trajectory To Flow** drags part of the flag and uncovers what was behind it. Connected as
`renderer`, a renderer trained on videos (GID's image-based renderer: feature pyramid, softmax splatting, a decoder)
fills the uncovered pixels instead of the push-pull blur of the pixel renderer.""", [
        picture(),
        Node(2, "SparseTrajectoryToFlow", {"trajectories": json.dumps(FLAG_TRACK), "mode": "tracks",
                                           "num_frames": 24}, {"image": (1, 0), "mask": (1, 1)}, size=EDITOR_SIZE),
        Node(3, "LoadMotionModel", {"model_name": RENDERER_MODEL}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (2, 1), "renderer": (3, 0)}),
        save(5, 4, "learned_renderer"),
    ])


WORKFLOWS = {"learned_renderer": learned_renderer}
