"""Example graphs of LVMM: animate a picture, transfer a video's motion, and a long motion in segments."""
from __future__ import annotations

from workflow_format import Node, Workflow

from .training_free import PICTURE_SIZE, REFERENCE_VIDEO, picture, save

# The tests train this tiny model in about half a minute; users pick their own trained checkpoint.
LVMM_MODEL = "lvmm_tiny.safetensors"
GRAPH = "graph"  # the tiny test model's frames say little about what a trained LVMM does

RENDER = ("**Softmax Splat Render** renders it with the same model's intention-gated renderer (connected as "
          "`renderer`), at the frame rate the model was trained at.")


def _base(name: str, predict: dict, links: dict, extra: list[Node]) -> list[Node]:
    return [
        picture(),
        Node(2, "LoadMotionModel", {"model_name": LVMM_MODEL}),
        Node(3, "PredictLatentMotion", {"steps": 8, "cfg": 1.0, "seed": 5, **predict},
             {"model": (2, 0), "image": (1, 0), **links}),
        Node(4, "SoftmaxSplatRender", {}, {"image": (1, 0), "motion": (3, 0), "renderer": (2, 0)}),
        save(5, 4, name),
        *extra,
    ]


def lvmm_animate() -> Workflow:
    return Workflow("LVMM: animate a picture with a trained latent motion model", f"""
**Predict Latent Motion** samples a trajectory in the latent motion space of an LVMM trained on videos (**Load
Motion Model**) for the picture, and decodes it into per-frame motion with intention maps (`num_frames` 0 = the
model's own length, here slowed down twice). {RENDER}""", _base("lvmm_animate", {"num_frames": 0, "slow_motion": 2.0},
                                                               {}, []), thumbnail=GRAPH)


def lvmm_motion_transfer() -> Workflow:
    return Workflow("LVMM: a video's motion on a picture", f"""
With `transfer_from`, **Predict Latent Motion** encodes the clip's motion into the model's latent motion space and puts
it on the picture (LVMM Fig. 4) instead of sampling one. {RENDER}""", _base(
        "lvmm_motion_transfer", {"num_frames": 12}, {"transfer_from": (7, 0)}, [
            Node(6, "LoadVideo", {"file": REFERENCE_VIDEO}, size=PICTURE_SIZE),
            Node(7, "GetVideoComponents", {}, {"video": (6, 0)}),
        ]), thumbnail=GRAPH)


def lvmm_long() -> Workflow:
    return Workflow("LVMM: a motion longer than the model's, in phased segments", f"""
**Long Video Schedule** (total_frames 24) makes **Predict Latent Motion** sample 25 frames (the picture and 24 latent
frames), more than the model's K latent frames, in segments of K that share their early denoising steps (the
long-animation paper's phased inference with a shared noise reschedule), so every segment keeps the first one's
layout. Predict Latent Motion takes its length from the schedule (num_frames 0, or that length + 1). {RENDER}""",
        _base("lvmm_long", {"num_frames": 25}, {"long_schedule": (6, 0)}, [
            Node(6, "LongVideoSchedule", {"total_frames": 24, "gamma": 0.8, "omega": 0.2}),
        ]), thumbnail=GRAPH)


# An LVMM trained with a CLIP-L text token (train.py lvmm --text-encoder ... --captions ...); the tests make a tiny
# one whose text token is untrained, and the CLIP is the tiny SD 1.5 checkpoint's.
LVMM_TEXT_MODEL = "lvmm_text_tiny.safetensors"
SD15_CHECKPOINT = "tiny_sd15.safetensors"


def lvmm_text() -> Workflow:
    """LVMM steered by a prompt: the CLIP of a checkpoint encodes it into the model's text token."""
    nodes = _base("lvmm_text", {"num_frames": 0, "slow_motion": 2.0, "prompt": "the flag waves in the wind"},
                  {"clip": (6, 1)}, [Node(6, "CheckpointLoaderSimple", {"ckpt_name": SD15_CHECKPOINT})])
    nodes[1] = Node(2, "LoadMotionModel", {"model_name": LVMM_TEXT_MODEL})
    return Workflow("LVMM steered by a prompt (CLIP text token)", f"""
An LVMM trained with captions (`--text-encoder` and `--captions`) takes a prompt: **Predict Latent Motion** encodes
it with the CLIP of a checkpoint (the same CLIP-L the model was trained with) into the model's text token, so the
prompt steers the sampled motion. {RENDER}""", nodes, thumbnail=GRAPH)


WORKFLOWS = {"lvmm_animate": lvmm_animate, "lvmm_motion_transfer": lvmm_motion_transfer, "lvmm_long": lvmm_long,
             "lvmm_text": lvmm_text}
