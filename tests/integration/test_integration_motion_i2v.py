"""Motion-I2V in a real ComfyUI: tiny configs of every component through both stages, with a trajectory and a brush.

One prompt runs the whole chain on CPU: the core CheckpointLoaderSimple (a tiny SD 1.5 file), CLIPTextEncode
and VAE Encode, LoadMotionModel for the four Motion-I2V components, SparseTrajectoryToFlow -> TracksToSparseFlow,
MotionI2VPredictFlow (with and without the trajectory), MotionI2VAnimate, and the core KSampler with the patched
and with the original MODEL. Results come back as saved PNGs (previews of the flows) and .latent files.

The stage-2 mechanism (the patched schedule, frame 0 at t = 1, the reference pairing, KSampler = the library's
sample_stage2) is measured in a subprocess that runs ComfyUI's own sampler in-process (motion_i2v_inprocess.py).
"""
from __future__ import annotations

import copy
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from tiny_motion_i2v import CONTROLNET, FLOW_VAE, MAKERS, STAGE1, STAGE2
from tiny_sd15 import TINY_SD15

HERE = pathlib.Path(__file__).resolve().parent
WORK, FRAMES = 64, 6
TRACK = {"tracks": [[[6, 14], [8, 17], [9, 21], [9, 25]]]}   # across the flag, in the 64x64 working picture
NODES = {"MotionI2VPredictFlow", "MotionI2VAnimate", "TracksToSparseFlow"}


def chain_prompt() -> dict:
    """API prompt of both stages; ids are strings as the server wants them."""
    def node(kind: str, **inputs) -> dict:
        return {"class_type": kind, "inputs": inputs}

    ksampler = {"seed": 3, "steps": 2, "cfg": 5.0, "sampler_name": "ddim", "scheduler": "ddim_uniform",
                "denoise": 1.0, "positive": ["31", 1], "negative": ["31", 2], "latent_image": ["31", 3]}
    stage1 = {"flow_vae": ["13", 0], "positive": ["4", 0], "negative": ["5", 0], "image": ["2", 0],
              "vae": ["3", 2], "num_frames": FRAMES, "frame_stride": 8, "cfg": 5.0, "steps": 2, "seed": 11,
              "fps": 8.0, "mask": ["9", 0], "model": ["12", 0]}
    return {
        "1": node("LoadImage", image="astronaut.png"),
        "2": node("ImageScale", image=["1", 0], upscale_method="bilinear", width=WORK, height=WORK, crop="disabled"),
        "3": node("CheckpointLoaderSimple", ckpt_name=TINY_SD15),
        "4": node("CLIPTextEncode", clip=["3", 1], text="a flag waving in the wind"),
        "5": node("CLIPTextEncode", clip=["3", 1], text=""),
        "6": node("MaskToImage", mask=["1", 1]),
        "7": node("ImageScale", image=["6", 0], upscale_method="bilinear", width=WORK, height=WORK, crop="disabled"),
        "8": node("ImageToMask", image=["7", 0], channel="red"),
        "9": node("ThresholdMask", mask=["8", 0], value=0.5),
        "10": node("SparseTrajectoryToFlow", image=["2", 0], trajectories=json.dumps(TRACK), mode="tracks",
                   num_frames=FRAMES, strength=1.0, sigma=0.0, threshold=0.05, edge_aware=False,
                   coordinates="pixels", out_of_bounds="clip"),
        "11": node("TracksToSparseFlow", tracks=["10", 2], image=["2", 0], num_frames=FRAMES, radius=3,
                   timing="index"),
        "12": node("LoadMotionModel", model_name=STAGE1),
        "13": node("LoadMotionModel", model_name=FLOW_VAE),
        "14": node("LoadMotionModel", model_name=CONTROLNET),
        "15": node("LoadMotionModel", model_name=STAGE2),
        "20": node("MotionI2VPredictFlow", **stage1, controlnet=["14", 0], control=["11", 0]),
        "21": node("MotionI2VPredictFlow", **stage1, controlnet=["14", 0]),           # brush only, no trajectory
        "22": node("PreviewMotion", image=["2", 0], motion=["20", 0], opacity=0.6),
        "23": node("PreviewMotion", image=["2", 0], motion=["21", 0], opacity=0.6),
        "24": node("SaveImage", images=["22", 0], filename_prefix="mi2v/with_track"),
        "25": node("SaveImage", images=["23", 0], filename_prefix="mi2v/without_track"),
        "26": node("SaveImage", images=["2", 0], filename_prefix="mi2v/picture"),
        "27": node("MaskToImage", mask=["9", 0]),
        "28": node("SaveImage", images=["27", 0], filename_prefix="mi2v/brush"),
        "30": node("VAEEncode", pixels=["2", 0], vae=["3", 2]),
        "31": node("MotionI2VAnimate", model=["3", 0], positive=["4", 0], negative=["5", 0], motion_model=["15", 0],
                   motion=["20", 0], num_frames=FRAMES, latent=["30", 0]),
        "32": node("KSampler", model=["31", 0], **ksampler),
        "33": node("KSampler", model=["3", 0], **ksampler),                            # the MODEL as it was
        "34": node("SaveLatent", samples=["32", 0], filename_prefix="mi2v/patched"),
        "35": node("SaveLatent", samples=["33", 0], filename_prefix="mi2v/original"),
        "36": node("SaveLatent", samples=["30", 0], filename_prefix="mi2v/reference"),
        "37": node("VAEDecode", samples=["32", 0], vae=["3", 2]),
        "38": node("SaveAnimatedWEBP", images=["37", 0], filename_prefix="mi2v/video", fps=8.0, lossless=True,
                   quality=100, method="default"),
        "39": node("MotionI2VAnimate", model=["3", 0], positive=["4", 0], negative=["5", 0], motion_model=["15", 0],
                   motion=["20", 0], num_frames=FRAMES, image=["2", 0], vae=["3", 2]),
        "40": node("SaveLatent", samples=["39", 3], filename_prefix="mi2v/unsampled"),
    }


def _png(comfy, outputs, node_id) -> np.ndarray:
    with Image.open(comfy.output_path(outputs[node_id]["images"][0])) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def _latent(comfy, outputs, node_id) -> torch.Tensor:
    return load_file(str(comfy.output_path(outputs[node_id]["latents"][0])))["latent_tensor"].float()


def ensure_models(comfy) -> None:
    """The tiny Motion-I2V checkpoints (each maker also writes models/checkpoints/tiny_sd15.safetensors)."""
    for name, make in MAKERS.items():
        path = comfy.base_dir / "models" / "motion_models" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            make(path)


@pytest.fixture(scope="module")
def chain(comfy):
    ensure_models(comfy)
    return comfy.run(chain_prompt())


def test_nodes_are_registered(object_info):
    assert NODES <= set(object_info)
    assert object_info["MotionI2VAnimate"]["output"] == ["MODEL", "CONDITIONING", "CONDITIONING", "LATENT"]
    assert object_info["TracksToSparseFlow"]["output"][0] == "DYN_CONTROL"


def test_stage1_flows_are_zero_exactly_where_the_brush_keeps_still(comfy, chain):
    picture = _png(comfy, chain, "26")
    brush = _png(comfy, chain, "28")[..., 0] > 127              # 1 = may move (the flag)
    assert 0 < brush.mean() < 0.5
    for node_id in ("24", "25"):                                # with and without the trajectory
        preview = _png(comfy, chain, node_id)
        # PreviewMotion leaves a pixel exactly as in the picture where the last frame's flow is exactly 0
        assert np.array_equal(preview[~brush], picture[~brush])
        changed = np.abs(preview - picture).max(axis=-1) > 0
        assert changed[brush].mean() > 0.5, "the brushed region should move"


def test_trajectory_changes_the_predicted_flow(comfy, chain):
    with_track, without = _png(comfy, chain, "24"), _png(comfy, chain, "25")
    brush = _png(comfy, chain, "28")[..., 0] > 127
    assert np.abs(with_track - without)[brush].max() > 0      # the ControlNet path acted (same seed otherwise)


def test_stage2_keeps_the_reference_frame_and_the_still_regions(comfy, chain):
    reference = _latent(comfy, chain, "36")                    # [1, 4, 8, 8] raw VAE latent of the picture
    video = _latent(comfy, chain, "34")
    assert video.shape == (FRAMES, 4, WORK // 8, WORK // 8)
    torch.testing.assert_close(video[0], reference[0], rtol=0, atol=1e-4)
    brush = torch.from_numpy(_png(comfy, chain, "28")[..., 0] > 127).float()
    moving = F.interpolate(brush[None, None], size=video.shape[-2:], mode="nearest")[0, 0] > 0
    assert 0 < moving.float().mean() < 1
    still = video[1:][:, :, ~moving]
    torch.testing.assert_close(still, reference[0][:, ~moving].expand_as(still), rtol=0, atol=1e-4)
    assert (video[1:][:, :, moving] - reference[0][:, moving]).abs().amax() > 1e-2   # the rest was generated


def test_picture_given_as_image_makes_the_same_video_latent(comfy, chain):
    """IMAGE + VAE instead of a LATENT: frame 0 and the still regions hold the picture's latent, the rest 0 (the
    sampler starts the moving regions from noise alone, as the official DDIM starts every frame)."""
    reference, unsampled = _latent(comfy, chain, "36"), _latent(comfy, chain, "40")
    assert unsampled.shape == (FRAMES, 4, WORK // 8, WORK // 8)
    brush = torch.from_numpy(_png(comfy, chain, "28")[..., 0] > 127).float()
    moving = F.interpolate(brush[None, None], size=unsampled.shape[-2:], mode="nearest")[0, 0] > 0.5
    expected = reference.expand_as(unsampled) * (~moving).float()
    expected[0] = reference[0]
    torch.testing.assert_close(unsampled, expected, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def inprocess():
    """ComfyUI's own sampler on the patched MODEL, in-process, against the library (motion_i2v_inprocess.py)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(HERE / "motion_i2v_inprocess.py")], env=env, capture_output=True,
                          text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_patched_model_samples_on_the_linear_beta_schedule(inprocess):
    """alphas_cumprod of the patched model_sampling = prod(1 - beta), beta linear 0.00085..0.012, at every step."""
    assert inprocess["alphas_cumprod_error"] < 1e-6
    assert abs(inprocess["patched_alpha_bar_501"] - 0.160) < 1e-3           # the figures
    assert abs(inprocess["sd15_alpha_bar_501"] - 0.275) < 1e-3               # the checkpoint's own schedule


def test_comfy_unet_sees_the_clean_reference_at_t_1_every_step(inprocess):
    steps = 3                                                               # ddim_uniform at 3 steps: 667, 334, 1
    assert inprocess["reference_timesteps"] == [1.0] * (2 * steps * 2)       # 2 runs x 3 steps x [uncond, cond]
    assert inprocess["frame_timesteps"] == [[667.0], [334.0], [1.0]] * 2
    assert inprocess["reference_input_error"] < 1e-6                        # the U-Net input of frame 0 is 0.18215 z0
    assert inprocess["cond_or_uncond"] == [[1, 0]] * 6                       # one batch, uncond first, as officially


def test_comfy_sampler_matches_the_library_stage2(inprocess):
    """KSampler (euler, ddim_uniform) on the patched MODEL = sample_stage2 (DDIM) to float error, both pairings."""
    assert inprocess["comfy_vs_library"] < 1e-6 * inprocess["latent_range"]
    assert inprocess["comfy_vs_library_per_video"] < 1e-6 * inprocess["latent_range"]
    assert inprocess["pairings_differ"] > 1e-2                              # the pairing is not a no-op


def test_comfy_batch_order_and_split_calls_keep_the_official_pairing(inprocess):
    """Warped frame j of the video at official position p ([uncond, cond]) warps position (4 p + j) mod 2's
    reference, whichever order ComfyUI batches the branches in; a call holding one video uses its own."""
    assert inprocess["pairing_uncond_first"] == [[0, 1, 0, 1], [0, 1, 0, 1]]
    assert inprocess["pairing_cond_first"] == [[1, 0, 1, 0], [1, 0, 1, 0]]     # the uncond video is now index 1
    assert inprocess["pairing_split_call"] == [[0, 0, 0, 0]]
    assert inprocess["frame0_error"] < 1e-5


def test_motion_modules_change_the_sampled_frames(comfy, chain):
    patched, original = _latent(comfy, chain, "34"), _latent(comfy, chain, "35")
    assert patched.shape == original.shape
    torch.testing.assert_close(patched[0], original[0], rtol=0, atol=1e-4)   # both keep the reference frame
    assert (patched[1:] - original[1:]).abs().amax() > 1e-3
    assert comfy.output_path(chain["38"]["images"][0]).stat().st_size > 0


def test_wrong_component_gives_a_clear_error(comfy, run_error):
    keep = {"1", "2", "3", "4", "5", "12", "13", "21", "23", "25"}
    prompt = {k: v for k, v in copy.deepcopy(chain_prompt()).items() if k in keep}
    for name in ("mask", "controlnet"):
        prompt["21"]["inputs"].pop(name)
    prompt["21"]["inputs"]["model"] = ["13", 0]                # the flow VAE where the stage-1 U-Net belongs
    ensure_models(comfy)
    message = run_error(prompt)
    assert "MotionI2VPredictFlow" in message and "'model'" in message and "motion_i2v.stage1" in message, message
