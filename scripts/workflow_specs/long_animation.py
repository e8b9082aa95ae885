"""The long-animation paper's video model as a template: arrows -> your SVD with the trained additions -> Long Video
Reschedule -> video.

``long_animation_svd``: Sparse Trajectory To Flow draws the dense field (Gaussian interpolation of the arrows),
Long Animation Motion puts the additions (LoadMotionModel) on the SVD MODEL (UNETLoader), and Long Video Reschedule
samples a few segments into one long clip, decoded and saved. It names the tiny stand-ins the tests build
(``tests/integration/tiny_svd.py``): the smallest U-Net ComfyUI's core loader detects as SVD (114 M parameters,
one 320-channel level), a TAESD VAE and fresh (inert) additions for that U-Net, and it conditions without a
CLIP-vision encoder (ComfyUI builds one only at ViT-H size, 632 M parameters): LotusConditioning stands in for the
1024-wide image embedding and InstructPixToPixConditioning gives both conditionings the picture's latent (SVD's
``concat_latent_image``; fps 6, motion bucket 127 and augmentation 0 are SVD's defaults when unset). For real use:
ImageOnlyCheckpointLoader (svd_xt) -> MODEL, CLIP_VISION, VAE and SVD_img2vid_Conditioning (1024 x 576, 25
frames) in place of the stand-ins, and the user's additions from ``scripts/train.py long_animation``.
"""
from __future__ import annotations

import json

from workflow_format import Node, Workflow, grouped

from .training_free import EDITOR_SIZE, EXAMPLE_PICTURE, PICTURE_SIZE, SAVE_SIZE

SVD_UNET = "tiny_svd_unet.safetensors"
VAE = "tiny_taesd_vae.safetensors"
ADDITIONS = "long_animation_svd_tiny.safetensors"
SIZE = 64                   # working size of the stand-ins (real: 1024 x 576)
FRAMES = 4                  # one segment's frames (real: 25)
SEGMENTS, OVERLAP = 3, 1    # 3 x 4 - 2 x 1 = 10 frames (real: e.g. 5 x 25 - 4 = 121)
STEPS, CFG, GAMMA = 2, 1.0, 0.5  # the first segment 2 steps, each later one 2 - ceil(0.5 x 2) = 1 (real: 25, 2.5, 0.8)

# The flag (left of the astronaut, in the 64 x 64 picture) is pushed to the right and a little down.
ARROWS = {"arrows": [{"start": [4, 10], "end": [10, 12], "speed": 0.5},
                     {"start": [3, 26], "end": [9, 28], "speed": 0.5},
                     {"start": [4, 44], "end": [10, 46], "speed": 0.5}]}


def _scale(node_id: int, source: tuple[int, int], width: int, height: int) -> Node:
    return Node(node_id, "ImageScale", {"upscale_method": "bilinear", "width": width, "height": height,
                                        "crop": "center"}, {"image": source})


def long_animation_svd() -> Workflow:
    """Arrows -> SVD with the long-animation additions -> Long Video Reschedule (3 segments of 4 frames) -> WebP."""
    nodes = grouped("Picture and arrows", [
        Node(1, "LoadImage", {"image": EXAMPLE_PICTURE}, size=PICTURE_SIZE),
        _scale(2, (1, 0), SIZE, SIZE),
        Node(3, "SparseTrajectoryToFlow", {"trajectories": json.dumps(ARROWS), "mode": "arrows",
                                           "num_frames": FRAMES}, {"image": (2, 0)}, size=EDITOR_SIZE),
    ])
    nodes += grouped("Your SVD with the long-animation additions", [
        Node(4, "UNETLoader", {"unet_name": SVD_UNET, "weight_dtype": "default"},
             title="SVD (here: a tiny test SVD; real: ImageOnlyCheckpointLoader, svd_xt)", size=(400, 110)),
        Node(5, "LoadMotionModel", {"model_name": ADDITIONS},
             title="the additions (scripts/train.py long_animation)"),
        Node(6, "LongAnimationMotion", {"motion_strength": 0.0, "refine": True},
             {"model": (4, 0), "motion_model": (5, 0), "flow": (3, 0), "image": (2, 0)}),
        Node(7, "VideoLinearCFGGuidance", {"min_cfg": 1.0}, {"model": (6, 0)}),
    ])
    nodes += grouped("Conditioning (real: SVD_img2vid_Conditioning with a CLIP vision model)", [
        Node(8, "VAELoader", {"vae_name": VAE}, title="VAE (real: the SVD checkpoint's)"),
        Node(9, "LotusConditioning", {}, title="image embedding stand-in (real: CLIP vision)", size=(340, 60)),
        Node(10, "ConditioningZeroOut", {}, {"conditioning": (9, 0)}, title="negative", size=(260, 60)),
        Node(11, "InstructPixToPixConditioning", {},
             {"positive": (9, 0), "negative": (10, 0), "vae": (8, 0), "pixels": (2, 0)},
             title="the picture's latent for SVD"),
        Node(12, "RepeatLatentBatch", {"amount": FRAMES}, {"samples": (11, 2)},
             title="one segment's frames"),
    ])
    nodes += grouped("Long video: segments with a shared noise reschedule", [
        Node(13, "LongVideoReschedule", {"seed": 42, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
                                         "scheduler": "karras", "num_segments": SEGMENTS, "gamma": GAMMA,
                                         "omega": 0.2, "overlap": OVERLAP, "crossfade": True,
                                         "noise_prior": "image", "shuffle": "frame"},
             {"model": (7, 0), "positive": (11, 0), "negative": (11, 1), "latent": (12, 0)}, size=(340, 420)),
        Node(14, "VAEDecode", {}, {"samples": (13, 0), "vae": (8, 0)}),
        _scale(15, (14, 0), 512, 512),
        Node(16, "SaveAnimatedWEBP", {"filename_prefix": "ImageDynamics/long_animation_svd", "fps": 6.0,
                                      "lossless": False, "quality": 90, "method": "default"},
             {"images": (15, 0)}, size=SAVE_SIZE),
    ])
    return Workflow("Long Animation Motion: arrows steer your Stable Video Diffusion, 100+ frames", f"""
The long-animation paper's video model: **Sparse Trajectory To Flow** turns the arrows into a dense field,
**Long Animation Motion (SVD)** refines it with the additions' T and puts the additions (motion encoder, motion
attention in the temporal layers, motion-strength embedding, static-camera LoRA) on the SVD MODEL, and **Long
Video Reschedule** samples {SEGMENTS} segments of {FRAMES} frames that share their early steps into one clip of
{SEGMENTS * FRAMES - (SEGMENTS - 1) * OVERLAP} frames. Here tiny random stand-ins run it in seconds at {SIZE} x
{SIZE} (the additions are fresh, so the result is plain SVD's, bit for bit; the frames are noise). **For real
use**: ImageOnlyCheckpointLoader with svd_xt in place of UNETLoader and VAELoader, SVD_img2vid_Conditioning (its
CLIP vision, the picture, 1024 x 576, 25 frames) in place of the three conditioning stand-ins and Repeat Latent
Batch, Image Scale at 1024 x 576, steps 25, cfg 2.5 (Video Linear CFG Guidance ramps it over the frames from min_cfg 1),
gamma 0.8, e.g. 5 segments, and in LoadMotionModel your additions from
`scripts/train.py long_animation --svd svd_xt.safetensors` (README: "The long-animation paper's video model on
your SVD").""", nodes, thumbnail="graph")


WORKFLOWS = {"long_animation_svd": long_animation_svd}
