"""Example graphs of the learned GID motion prior: sample, and sample a seamless loop."""
from __future__ import annotations

from workflow_format import Node

from .training_free import EXAMPLE_PICTURE, save

# The tests train this tiny model in seconds; users pick their own trained checkpoint.
GID_MODEL = "gid_tiny.safetensors"


def _gid(loop: bool) -> list[Node]:
    name = "gid_seamless_loop" if loop else "gid_sample"
    nodes = [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=(320, 360)),
        Node(2, "LoadMotionModel", {"model_name": GID_MODEL}),
        Node(3, "SpectralVolumeSampler", {"source": "model", "num_frequencies": 4, "period_frames": 16,
                                          "fps": 30.0, "strength": 1.0, "seed": 11, "steps": 8, "cfg": 1.75},
             {"image": (1, 0), "mask": (1, 1), "model": (2, 0), **({"guidance": (6, 0)} if loop else {})},
             size=(360, 560)),
        Node(4, "SpectrumToMotion", {"num_frames": 32, "slow_motion": 2.0}, {"spectrum": (3, 0)}),
        Node(5, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (4, 0)}),
        save(7, 5, name, fps=30.0),
    ]
    if loop:
        nodes.append(Node(6, "LoopGuidance", {"weight": 200.0, "recurrences": 2, "cfg": 1.75}))
    return nodes


WORKFLOWS = {"gid_sample": lambda: _gid(False), "gid_seamless_loop": lambda: _gid(True)}
