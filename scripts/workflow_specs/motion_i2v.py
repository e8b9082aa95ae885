"""Motion-I2V example graphs with the authors' demo settings: picture + trajectory + brush -> flows -> video, and
video-to-video.

Widget values are those of the official demo (``scripts/app.py``): 512 x 320 pictures (resized and centre-cropped,
as the demo's ``preprocess_image`` does), 16 frames, frame strides 8, 16, ..., 120, DDIM with 25 steps and cfg 7
in both stages (stage 2: KSampler ``euler`` + ``ddim_uniform``, the same DDIM on the patched model's schedule),
the demo's negative prompt, trajectories as the demo's 128 x 128 px patches (TracksToSparseFlow ``demo``,
radius 0 = flow unit 64), the ControlNet run on an empty control when nothing is drawn, and the official
reference pairing. The example picture is the astronaut cropped to 512 x 320 (its flag is the brush).

The graphs name the tiny test checkpoints (``motion_i2v_*_tiny.safetensors`` and ``tiny_sd15.safetensors``, made
by ``tests/integration/tiny_motion_i2v.py``) so that they open and run anywhere; with the released weights
(converted by ``models/motion_i2v/convert.py``) pick ``motion_i2v_{stage1,flow_vae,controlnet,stage2}_fp16``
in the LoadMotionModel nodes and an SD 1.5 checkpoint (the demo's: Realistic Vision 5.1) in
CheckpointLoaderSimple. The tests run them on a CPU with :data:`CPU_TEST_SETTINGS` (64 x 40, 6 frames, 2 steps).
"""
from __future__ import annotations

import json

from workflow_format import Node, Workflow, grouped

from .training_free import EDITOR_SIZE, PICTURE_SIZE, REFERENCE_VIDEO, SAVE_SIZE

PICTURE = "astronaut_512x320.png"
WIDTH, HEIGHT = 512, 320    # the demo's picture size
FRAMES = 16                 # the demo's clip: the picture and 15 predicted frames
STEPS, CFG, STRIDE = 25, 7.0, 8
CHECKPOINT = "tiny_sd15.safetensors"
STAGE1 = "motion_i2v_stage1_tiny.safetensors"
FLOW_VAE = "motion_i2v_flow_vae_tiny.safetensors"
CONTROLNET = "motion_i2v_controlnet_tiny.safetensors"
STAGE2 = "motion_i2v_stage2_tiny.safetensors"
PROMPT = "an astronaut in front of a flag waving in the wind"
NEGATIVE = ("(blur, haze, deformed iris, deformed pupils, semi-realistic, cgi, 3d, render, sketch, cartoon, drawing, "
            "anime, mutated hands and fingers:1.4), (deformed, distorted, disfigured:1.3), poorly drawn, bad anatomy, "
            "wrong anatomy, extra limb, missing limb, floating limbs, disconnected limbs, mutation, mutated, ugly, "
            "disgusting, amputation")
"""The negative prompt hard-coded in the official demo."""

# A trajectory across the flag, in pixels of the 512 x 320 picture: the flag is dragged down and to the right.
FLAG_TRACK = {"coordinates": "pixels", "width": WIDTH, "height": HEIGHT,
              "tracks": [[[40, 24], [52, 40], [60, 64], [57.6, 88]]]}


def _scale(node_id: int, source: tuple[int, int]) -> Node:
    """Resize and centre-crop to the demo's 512 x 320 (a no-op for the example picture)."""
    return Node(node_id, "ImageScale", {"upscale_method": "bilinear", "width": WIDTH, "height": HEIGHT,
                                        "crop": "center"}, {"image": source})


INPUTS = "Picture, prompts, SD 1.5 checkpoint"
STAGE_2 = "Stage 2: the video (SD 1.5 + motion modules, core KSampler)"
ABOUT_FILES = ("The files named here are tiny stand-ins the tests build (they run the graph at 64 x 40, 6 frames, 2 "
               "steps); the widget values are the official demo's, for the released weights (see Files).")


def _core(first: int) -> list[Node]:
    """Picture at the demo's size, SD 1.5 checkpoint, prompts: ids first .. first + 4."""
    return grouped(INPUTS, [
        Node(first, "LoadImage", {"image": PICTURE}, size=PICTURE_SIZE),
        _scale(first + 1, (first, 0)),
        Node(first + 2, "CheckpointLoaderSimple", {"ckpt_name": CHECKPOINT}),
        Node(first + 3, "CLIPTextEncode", {"text": PROMPT}, {"clip": (first + 2, 1)}, title="positive",
             size=(320, 140)),
        Node(first + 4, "CLIPTextEncode", {"text": NEGATIVE}, {"clip": (first + 2, 1)}, title="negative (demo)",
             size=(320, 180)),
    ])


def _render(first: int, model: int, positive: int, negative: int, stage2: int, motion: tuple[int, int],
            picture: int, vae: tuple[int, int], name: str) -> list[Node]:
    """Stage 2 -> KSampler (the official DDIM) -> VAE Decode -> size check -> save: ids first .. first + 5 and
    ``stage2`` (the motion modules' loader)."""
    return grouped(STAGE_2, [
        Node(stage2, "LoadMotionModel", {"model_name": STAGE2}, title="stage 2 motion modules"),
        Node(first, "VAEEncode", {}, {"pixels": (picture, 0), "vae": vae}),
        Node(first + 1, "MotionI2VAnimate", {"num_frames": FRAMES, "reference_pairing": "official"},
             {"model": (model, 0), "positive": (positive, 0), "negative": (negative, 0),
              "motion_model": (stage2, 0), "motion": motion, "latent": (first, 0)}),
        Node(first + 2, "KSampler", {"seed": 0, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
                                     "scheduler": "ddim_uniform", "denoise": 1.0},
             {"model": (first + 1, 0), "positive": (first + 1, 1), "negative": (first + 1, 2),
              "latent_image": (first + 1, 3)}),
        Node(first + 3, "VAEDecode", {}, {"samples": (first + 2, 0), "vae": vae}),
        _scale(first + 4, (first + 3, 0)),
        Node(first + 5, "SaveAnimatedWEBP", {"filename_prefix": f"ImageDynamics/{name}", "fps": 8.0,
                                             "lossless": False, "quality": 90, "method": "default"},
             {"images": (first + 4, 0)}, size=SAVE_SIZE),
    ])


def motion_i2v_image_to_video() -> Workflow:
    """Picture + drawn trajectory + motion brush -> stage-1 flows -> stage-2 video (Motion-I2V)."""
    nodes = _core(1)
    nodes += grouped("Motion brush and trajectory (the ControlNet's input)", [
        # the brush: the picture's transparent region (the flag), at the working size
        Node(7, "MaskToImage", {}, {"mask": (1, 1)}),
        _scale(8, (7, 0)),
        Node(9, "ImageToMask", {"channel": "red"}, {"image": (8, 0)}),
        Node(18, "ThresholdMask", {"value": 0.5}, {"mask": (9, 0)}),
        Node(10, "SparseTrajectoryToFlow", {"trajectories": json.dumps(FLAG_TRACK), "mode": "tracks",
                                            "num_frames": FRAMES}, {"image": (2, 0)}, size=EDITOR_SIZE),
        Node(11, "TracksToSparseFlow", {"num_frames": FRAMES, "radius": 0, "timing": "index",
                                        "rasterisation": "demo"}, {"tracks": (10, 2), "image": (2, 0)}),
    ])
    nodes += grouped("Stage 1: how every pixel moves (flows)", [
        Node(12, "LoadMotionModel", {"model_name": STAGE1}, title="stage 1 flow U-Net"),
        Node(13, "LoadMotionModel", {"model_name": FLOW_VAE}, title="flow VAE"),
        Node(14, "LoadMotionModel", {"model_name": CONTROLNET}, title="trajectory ControlNet"),
        Node(15, "MotionI2VPredictFlow", {"num_frames": FRAMES, "frame_stride": STRIDE, "cfg": CFG, "steps": STEPS,
                                          "seed": 0, "fps": 8.0, "control_scale": 1.0, "empty_control": True},
             {"model": (12, 0), "flow_vae": (13, 0), "controlnet": (14, 0), "positive": (4, 0),
              "negative": (5, 0), "image": (2, 0), "vae": (3, 2), "control": (11, 0), "mask": (18, 0)}),
        Node(16, "PreviewMotion", {"opacity": 0.6}, {"image": (2, 0), "motion": (15, 0), "tracks": (10, 2)}),
        Node(17, "PreviewImage", {}, {"images": (16, 0)}, size=PICTURE_SIZE),
    ])
    nodes += _render(20, model=3, positive=4, negative=5, stage2=6, motion=(15, 0), picture=2, vae=(3, 2),
                     name="motion_i2v_image_to_video")
    return Workflow("Motion-I2V: picture + trajectory + brush -> video", f"""
Motion-I2V animates a picture in two stages. **Stage 1** (Motion-I2V Predict Flow) predicts how every pixel moves
over the next frames from the prompt, the picture, the path drawn in Sparse Trajectory To Flow (through the
trajectory ControlNet) and the motion brush (the flag); Preview Motion shows those flows. **Stage 2** (Motion-I2V
Animate) inserts the motion modules into the SD 1.5 model, whose temporal attention follows the flows, and the
core KSampler makes the video. {ABOUT_FILES}""", nodes, thumbnail="graph")


def motion_i2v_video_to_video() -> Workflow:
    """Zero-shot video-to-video: the motion of a real clip (OpenCV flow) drives stage 2 on the picture."""
    nodes = _core(1)
    nodes += grouped("Reference motion (instead of stage 1)", [
        Node(7, "LoadVideo", {"file": REFERENCE_VIDEO}, size=PICTURE_SIZE),
        Node(8, "GetVideoComponents", {}, {"video": (7, 0)}),
        Node(9, "MotionFromVideo", {"max_frames": FRAMES, "stride": 2},
             {"frames": (8, 0), "fps": (8, 2), "target": (2, 0)}),
    ])
    nodes += _render(20, model=3, positive=4, negative=5, stage2=6, motion=(9, 0), picture=2, vae=(3, 2),
                     name="motion_i2v_video_to_video")
    return Workflow("Motion-I2V: a video's motion drives the picture (video-to-video)", f"""
Zero-shot video-to-video: **Motion From Video** measures the clip's motion (OpenCV optical flow, no weights) in
place of stage 1, and **Motion-I2V Animate** (stage 2) renders the picture along it with the SD 1.5 model and the
motion modules; the core KSampler makes the video. {ABOUT_FILES}""", nodes, thumbnail="graph")


WORKFLOWS = {"motion_i2v_image_to_video": motion_i2v_image_to_video,
             "motion_i2v_video_to_video": motion_i2v_video_to_video}

_CPU_SIZE = {"width": 64, "height": 40}           # 512 x 320 / 8: the tiny models' working size
_CPU_FRAMES, _CPU_STEPS = 6, 2
CPU_TEST_SETTINGS = {
    "motion_i2v_image_to_video": {
        "2": _CPU_SIZE, "8": _CPU_SIZE, "10": {"num_frames": _CPU_FRAMES}, "11": {"num_frames": _CPU_FRAMES},
        "15": {"num_frames": _CPU_FRAMES, "steps": _CPU_STEPS}, "21": {"num_frames": _CPU_FRAMES},
        "22": {"steps": _CPU_STEPS}},
    "motion_i2v_video_to_video": {
        "2": _CPU_SIZE, "9": {"max_frames": _CPU_FRAMES}, "21": {"num_frames": _CPU_FRAMES},
        "22": {"steps": _CPU_STEPS}},
}
"""Widget values the tests put in the API prompts of these graphs (node id -> inputs) so that the tiny models run
them on a CPU in seconds: 64 x 40, 6 frames, 2 steps. The final ImageScale (node 24) brings the frames back to
512 x 320."""
