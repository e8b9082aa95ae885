"""Motion-I2V example graphs: picture + trajectory + brush -> flows -> rendered video, and video-to-video.

The graphs name the tiny test checkpoints (``motion_i2v_*_tiny.safetensors`` and ``tiny_sd15.safetensors``,
made by ``tests/integration/tiny_motion_i2v.py``) and work at 64x64 so that they run on a CPU in seconds; the
picture is scaled down first and the result scaled back up. With the released weights (converted by
``models/motion_i2v/convert.py``) pick ``motion_i2v_{stage1,flow_vae,controlnet,stage2}_fp16.safetensors`` in
the LoadMotionModel nodes and an SD 1.5 checkpoint in CheckpointLoaderSimple, set the working size to 512x320
(Upscale Image nodes), num_frames to 16 and the samplers to 25 steps.
"""
from __future__ import annotations

import json

from workflow_format import Node

PICTURE = "astronaut.png"
REFERENCE_VIDEO = "carphone_pristine.mp4"
WORK = 64           # working size (pixels): the tiny test models; 512x320 with the released weights
OUT = 512           # the example picture's size, for the saved animation
FRAMES = 8
CHECKPOINT = "tiny_sd15.safetensors"
STAGE1 = "motion_i2v_stage1_tiny.safetensors"
FLOW_VAE = "motion_i2v_flow_vae_tiny.safetensors"
CONTROLNET = "motion_i2v_controlnet_tiny.safetensors"
STAGE2 = "motion_i2v_stage2_tiny.safetensors"
PROMPT = "an astronaut in front of a flag waving in the wind"

# A trajectory across the flag (in the 64x64 working picture): the flag is dragged down and to the right.
FLAG_TRACK = {"tracks": [[[5, 15], [6.5, 17], [7.5, 20], [7.2, 23]]]}


def _scale(node_id: int, source: tuple[int, int], size: int, width: int | None = None) -> Node:
    return Node(node_id, "ImageScale", {"upscale_method": "bilinear", "width": width or size, "height": size,
                                        "crop": "disabled"}, {"image": source})


def _core(first: int) -> list[Node]:
    """Picture at the working size, SD 1.5 checkpoint, prompts: ids first .. first + 5."""
    return [
        Node(first, "LoadImage", {"image": PICTURE}, size=(320, 360)),
        _scale(first + 1, (first, 0), WORK),
        Node(first + 2, "CheckpointLoaderSimple", {"ckpt_name": CHECKPOINT}),
        Node(first + 3, "CLIPTextEncode", {"text": PROMPT}, {"clip": (first + 2, 1)}, title="positive"),
        Node(first + 4, "CLIPTextEncode", {"text": ""}, {"clip": (first + 2, 1)}, title="negative"),
        Node(first + 5, "LoadMotionModel", {"model_name": STAGE2}, title="stage 2 motion modules"),
    ]


def _render(first: int, model: int, positive: int, negative: int, stage2: int, motion: tuple[int, int],
            picture: int, vae: tuple[int, int], name: str) -> list[Node]:
    """Stage 2 -> KSampler -> VAE Decode -> scale back -> save: ids first .. first + 5."""
    return [
        Node(first, "VAEEncode", {}, {"pixels": (picture, 0), "vae": vae}),
        Node(first + 1, "MotionI2VAnimate", {"num_frames": FRAMES},
             {"model": (model, 0), "positive": (positive, 0), "negative": (negative, 0),
              "motion_model": (stage2, 0), "motion": motion, "latent": (first, 0)}, size=(340, 220)),
        Node(first + 2, "KSampler", {"seed": 0, "steps": 2, "cfg": 7.0, "sampler_name": "ddim",
                                     "scheduler": "ddim_uniform", "denoise": 1.0},
             {"model": (first + 1, 0), "positive": (first + 1, 1), "negative": (first + 1, 2),
              "latent_image": (first + 1, 3)}, size=(320, 260)),
        Node(first + 3, "VAEDecode", {}, {"samples": (first + 2, 0), "vae": vae}),
        _scale(first + 4, (first + 3, 0), OUT),
        Node(first + 5, "SaveAnimatedWEBP", {"filename_prefix": f"ImageDynamics/{name}", "fps": 8.0,
                                             "lossless": False, "quality": 90, "method": "default"},
             {"images": (first + 4, 0)}, size=(420, 460)),
    ]


def motion_i2v_image_to_video() -> list[Node]:
    """Picture + drawn trajectory + motion brush -> stage-1 flows -> stage-2 video (Motion-I2V)."""
    nodes = _core(1)
    nodes += [
        # the brush: the picture's transparent region (the flag), scaled to the working size
        Node(7, "MaskToImage", {}, {"mask": (1, 1)}),
        _scale(8, (7, 0), WORK),
        Node(9, "ImageToMask", {"channel": "red"}, {"image": (8, 0)}),
        Node(18, "ThresholdMask", {"value": 0.5}, {"mask": (9, 0)}),
        Node(10, "SparseTrajectoryToFlow", {"trajectories": json.dumps(FLAG_TRACK), "mode": "tracks",
                                            "num_frames": FRAMES}, {"image": (2, 0)}, size=(360, 420)),
        Node(11, "TracksToSparseFlow", {"num_frames": FRAMES, "radius": 0}, {"tracks": (10, 2), "image": (2, 0)}),
        Node(12, "LoadMotionModel", {"model_name": STAGE1}, title="stage 1 flow U-Net"),
        Node(13, "LoadMotionModel", {"model_name": FLOW_VAE}, title="flow VAE"),
        Node(14, "LoadMotionModel", {"model_name": CONTROLNET}, title="trajectory ControlNet"),
        Node(15, "MotionI2VPredictFlow", {"num_frames": FRAMES, "frame_stride": 8, "cfg": 7.0, "steps": 3,
                                          "seed": 0, "fps": 8.0},
             {"model": (12, 0), "flow_vae": (13, 0), "controlnet": (14, 0), "positive": (4, 0),
              "negative": (5, 0), "image": (2, 0), "vae": (3, 2), "control": (11, 0), "mask": (18, 0)},
             size=(360, 420)),
        Node(16, "PreviewMotion", {"opacity": 0.6}, {"image": (2, 0), "motion": (15, 0), "tracks": (10, 2)}),
        Node(17, "PreviewImage", {}, {"images": (16, 0)}, size=(320, 360)),
    ]
    nodes += _render(20, model=3, positive=4, negative=5, stage2=6, motion=(15, 0), picture=2, vae=(3, 2),
                     name="motion_i2v_image_to_video")
    return nodes


def motion_i2v_video_to_video() -> list[Node]:
    """Zero-shot video-to-video: the motion of a real clip (OpenCV flow) drives stage 2 on the picture."""
    nodes = _core(1)
    nodes += [
        Node(7, "LoadVideo", {"file": REFERENCE_VIDEO}, size=(320, 360)),
        Node(8, "GetVideoComponents", {}, {"video": (7, 0)}),
        Node(9, "MotionFromVideo", {"max_frames": FRAMES, "stride": 2, "fps": 15.0},
             {"frames": (8, 0), "target": (2, 0)}),
    ]
    nodes += _render(20, model=3, positive=4, negative=5, stage2=6, motion=(9, 0), picture=2, vae=(3, 2),
                     name="motion_i2v_video_to_video")
    return nodes


WORKFLOWS = {"motion_i2v_image_to_video": motion_i2v_image_to_video,
             "motion_i2v_video_to_video": motion_i2v_video_to_video}
