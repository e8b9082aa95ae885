"""Where every file an example workflow loads comes from: the source of its Note's "Files" section.

``make_workflows.py`` lists, in each workflow's Note, every model file and input file its nodes name, with the
entry below; a workflow naming a file that has no entry here is an error, so no example ships unexplained.
"""
from __future__ import annotations

TRAIN = "python ComfyUI/custom_nodes/ComfyUI-ImageDynamics/scripts/train.py"
CONVERT = "python ComfyUI/custom_nodes/ComfyUI-ImageDynamics/models/motion_i2v/convert.py"
I2V_WEIGHTS = ("huggingface.co/wangfuyun/Motion-I2V (download it yourself), converted once with "
               f"`{CONVERT} <the four .bin files> -o ComfyUI/models/motion_models/ --fp16` (README: Motion-I2V)")

# Which node input names a file, and the folder it is looked up in.
FILE_INPUTS = {
    ("LoadImage", "image"): "input",
    ("LoadVideo", "file"): "input",
    ("LoadMotionModel", "model_name"): "models/motion_models",
    ("CheckpointLoaderSimple", "ckpt_name"): "models/checkpoints",
    ("UNETLoader", "unet_name"): "models/diffusion_models",
    ("VAELoader", "vae_name"): "models/vae",
}

FILES = {
    # inputs: shipped in example_inputs/, copied into ComfyUI/input when the server starts
    "astronaut.png": "ships with the pack (example_inputs/, copied into ComfyUI/input at start); its transparent "
                     "flag is Load Image's MASK, the region that may move. Use your own picture: paint the moving "
                     "part in the mask editor.",
    "astronaut_512x320.png": "ships with the pack (example_inputs/, copied into ComfyUI/input at start): astronaut.png "
                             "cropped to Motion-I2V's 512 x 320 as the authors' demo prepares pictures; the flag "
                             "(transparent) is the motion brush.",
    "big_buck_bunny.mp4": "ships with the pack (example_inputs/, copied into ComfyUI/input at start): Big Buck Bunny, "
                          "(c) Blender Foundation, CC BY 3.0. Use any clip whose motion you want.",
    # trained motion priors: tiny stand-ins the tests train; users train their own
    "gid_tiny.safetensors": "a tiny GID prior the tests train in seconds (it moves things, but not as your "
                            f"footage would). Train yours: `{TRAIN} gid --videos my_clips/ --out "
                            "ComfyUI/models/motion_models/gid.safetensors --preset small`, then pick it here.",
    "lvmm_tiny.safetensors": f"a tiny LVMM the tests train in half a minute. Train yours: `{TRAIN} lvmm --videos "
                             "my_clips/ --out ComfyUI/models/motion_models/lvmm.safetensors --preset small`, then pick "
                             "it here.",
    "lvmm_text_tiny.safetensors": f"a tiny LVMM with a text token the tests train (the token is untrained). Train "
                                  f"yours on captioned clips: `{TRAIN} lvmm --videos my_clips/ --out "
                                  "ComfyUI/models/motion_models/lvmm_text.safetensors --preset small --text-encoder "
                                  "ComfyUI/models/text_encoders/clip_l.safetensors --captions captions.json` "
                                  "(captions: {video name: caption}, or a .txt beside each video), then pick it here "
                                  "and the checkpoint whose CLIP-L you trained with below.",
    "renderer_tiny.safetensors": f"a tiny learned renderer the tests train in seconds. Train yours: `{TRAIN} "
                                 "renderer --videos my_clips/ --out "
                                 "ComfyUI/models/motion_models/renderer.safetensors`, then pick it here.",
    # Motion-I2V: tiny random-weight stand-ins of the released architecture
    "motion_i2v_stage1_tiny.safetensors": "a tiny random-weight stand-in the tests build. Real: "
                                          f"motion_i2v_stage1_fp16.safetensors from {I2V_WEIGHTS}.",
    "motion_i2v_flow_vae_tiny.safetensors": "tiny stand-in; real: motion_i2v_flow_vae_fp16.safetensors (same "
                                            "conversion).",
    "motion_i2v_controlnet_tiny.safetensors": "tiny stand-in; real: motion_i2v_controlnet_fp16.safetensors (same "
                                              "conversion).",
    "motion_i2v_stage2_tiny.safetensors": "tiny stand-in; real: motion_i2v_stage2_fp16.safetensors (same "
                                          "conversion).",
    "tiny_sd15.safetensors": "a tiny SD 1.5-shaped checkpoint the tests build. Real: an SD 1.5 checkpoint in "
                             "ComfyUI/models/checkpoints (Motion-I2V: the authors' demo used Realistic Vision 5.1; "
                             "an LVMM with a text token: the one whose CLIP-L it was trained with).",
    "tiny_cosmos_predict2_long_video.safetensors": "a tiny random-weight Cosmos-Predict2 the tests build. Real: "
                                                   "a video model such as Wan 2.1 T2V 1.3B (UNETLoader) with its "
                                                   "text encoder (CLIPLoader, type wan) and CLIPTextEncode prompts "
                                                   "instead of the stand-in conditioning.",
    # the long-animation paper's video model: tiny stand-ins for SVD, its VAE and the trained additions
    "tiny_svd_unet.safetensors": "the smallest U-Net ComfyUI detects as Stable Video Diffusion (random weights, "
                                 "114 M parameters, one 320-channel level), built by the tests. Real: svd_xt "
                                 "(ImageOnlyCheckpointLoader, models/checkpoints), which also gives the VAE and "
                                 "the CLIP vision model for SVD_img2vid_Conditioning.",
    "tiny_taesd_vae.safetensors": "a random TAESD-format VAE the tests build. Real: the SVD checkpoint's VAE.",
    "long_animation_svd_tiny.safetensors": "fresh (untrained, inert) additions for the tiny SVD, built by the "
                                           f"tests. Train yours on your SVD: `{TRAIN} long_animation --videos "
                                           "my_clips/ --svd ComfyUI/models/checkpoints/svd_xt.safetensors --out "
                                           "ComfyUI/models/motion_models/long_animation.safetensors`, then pick it "
                                           "here.",
}


def files_of(nodes) -> list[tuple[str, str]]:
    """[(file name, folder)] that ``nodes`` load, in graph order, each once."""
    seen: dict[str, str] = {}
    for node in nodes:
        for (kind, name), folder in FILE_INPUTS.items():
            if node.type == kind and name in node.widgets:
                seen.setdefault(node.widgets[name], folder)
    return list(seen.items())


def files_section(nodes) -> str:
    """The Note's list of files, or KeyError naming a file no entry explains."""
    lines = []
    for name, folder in files_of(nodes):
        if name not in FILES:
            raise KeyError(f"{name!r} has no entry in scripts/workflow_specs/files.py: say where it comes from")
        lines.append(f"- `{folder}/{name}`: {FILES[name]}")
    return "**Files**\n" + "\n".join(lines) if lines else ""
