"""Example graphs of LVMM: animate a picture, transfer a video's motion, and a long motion in segments."""
from __future__ import annotations

from workflow_format import Node

from .training_free import EXAMPLE_PICTURE, REFERENCE_VIDEO, save

# The tests train this tiny model in about half a minute; users pick their own trained checkpoint.
LVMM_MODEL = "lvmm_tiny.safetensors"


def _base(name: str, predict: dict, links: dict, extra: list[Node]) -> list[Node]:
    return [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=(320, 360)),
        Node(2, "LoadMotionModel", {"model_name": LVMM_MODEL}),
        Node(3, "PredictLatentMotion", {"steps": 8, "cfg": 1.0, "seed": 5, **predict},
             {"model": (2, 0), "image": (1, 0), **links}, size=(360, 360)),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0), "renderer": (2, 0)}),
        save(5, 4, name, fps=12.0),
        *extra,
    ]


def lvmm_animate() -> list[Node]:
    """A picture animated by motion sampled from LVMM's latent motion space, rendered by its own renderer."""
    return _base("lvmm_animate", {"num_frames": 0, "slow_motion": 2.0}, {}, [])


def lvmm_motion_transfer() -> list[Node]:
    """The motion of a video clip put on the picture (LVMM Fig. 4)."""
    return _base("lvmm_motion_transfer", {"num_frames": 12}, {"transfer_from": (7, 0)}, [
        Node(6, "LoadVideo", {"file": REFERENCE_VIDEO}, size=(320, 360)),
        Node(7, "GetVideoComponents", {}, {"video": (6, 0)}),
    ])


def lvmm_long() -> list[Node]:
    """A motion longer than the model's K latent frames, by phased inference with the shared noise reschedule."""
    return _base("lvmm_long", {"num_frames": 25}, {"long_schedule": (6, 0)}, [
        Node(6, "LongVideoSchedule", {"num_segments": 3, "gamma": 0.8, "omega": 0.2}),
    ])


# An LVMM trained with a CLIP-L text token (train.py lvmm --text-encoder ... --captions ...); the tests make a tiny
# one whose text token is untrained, and the CLIP is the tiny SD 1.5 checkpoint's.
LVMM_TEXT_MODEL = "lvmm_text_tiny.safetensors"
SD15_CHECKPOINT = "tiny_sd15.safetensors"


def lvmm_text() -> list[Node]:
    """LVMM steered by a prompt: the CLIP of a checkpoint encodes it into the model's text token."""
    nodes = _base("lvmm_text", {"num_frames": 0, "slow_motion": 2.0, "prompt": "the flag waves in the wind"},
                  {"clip": (6, 1)}, [Node(6, "CheckpointLoaderSimple", {"ckpt_name": SD15_CHECKPOINT})])
    nodes[1] = Node(2, "LoadMotionModel", {"model_name": LVMM_TEXT_MODEL})
    return nodes


WORKFLOWS = {"lvmm_animate": lvmm_animate, "lvmm_motion_transfer": lvmm_motion_transfer, "lvmm_long": lvmm_long,
             "lvmm_text": lvmm_text}
