"""The long-animation paper's additions on the user's SVD, through ComfyUI's own patching and sampler.

A tiny SVD is built from ComfyUI's own classes (``tiny_svd.py``: ``comfy.model_base.SVD_img2vid``; the core
loaders accept SVD files only at the released size) and patched by ``nodes/motion/long_animation_patch.py``;
``long_animation_inprocess.py`` runs it in a subprocess (ComfyUI's modules never enter the pytest process) and
returns its measurements.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


def _run_script(name: str) -> dict:
    """Run ``tests/integration/<name>`` in a subprocess (one thread) and return the JSON of its RESULT line."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(HERE / name)], env=env, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def inprocess():
    return _run_script("long_animation_inprocess.py")


def test_fresh_additions_leave_the_svd_output_bit_identical(inprocess):
    """ComfyUI's sampler on SVD and on SVD + freshly initialised additions: torch.equal latents, and the MODEL
    itself is unchanged after the patched run."""
    assert inprocess["zero_init_identical"] is True
    assert inprocess["unpatched_after"] is True
    assert inprocess["trained_changes"] > 1e-3          # and trained additions are not inert


def test_comfy_patches_and_the_trainers_install_are_one_computation(inprocess):
    """Object patches + emb patch + LoRA weight patches in ComfyUI = attach.install on the bare U-Net (the
    trainer's path), exactly, for randomised additions that change the output; remove() restores the U-Net."""
    assert inprocess["installed_changes"] > 1e-3 * inprocess["output_scale"]
    assert inprocess["comfy_vs_trainer"] <= 1e-6 * inprocess["output_scale"]
    assert inprocess["removed_identical"] is True


def test_bad_models_are_named(inprocess):
    errors = inprocess["errors"]
    assert errors["sd15"].startswith("NodeInputError: LongAnimationMotion: input 'model': expected a Stable Video "
                                     "Diffusion MODEL")
    for key in ("other_size", "paper_size"):
        assert errors[key].startswith("NodeInputError: LongAnimationMotion: input 'motion_model': expected "
                                      "additions trained for this SVD, got additions for an SVD with "
                                      "block_channels = ("), errors[key]
        assert "the MODEL has block_channels = (32, 64, 64, 64, 64, 32, 32)" in errors[key]
    assert "already patched by LongAnimationMotion" in errors["twice"]


def test_the_node_patches_the_svd_and_returns_the_refined_field(inprocess):
    """LongAnimationMotion with fresh additions (T = identity): the same samples as the bare SVD, the field back
    unchanged and M_s = the field's own (3 px/frame on a quarter of the picture); trained additions change them."""
    assert inprocess["node_fresh_identical"] is True
    assert inprocess["node_trained_changes"] > 1e-3
    assert inprocess["node_flow_shape"] == [1, 2, 64, 64] and inprocess["node_flow_error"] == 0.0
    assert abs(inprocess["node_strength"] - 0.75) < 1e-6


def test_the_nodes_bad_inputs_are_named(inprocess):
    errors = inprocess["errors"]
    prefix = "NodeInputError: LongAnimationMotion: input "
    assert errors["node_no_field"].startswith(prefix + "'flow': expected one dense field")
    assert errors["node_no_image"].startswith(prefix + "'image': expected the picture")
    assert errors["node_other_family"] == (prefix + "'motion_model': expected a long_animation model, got a "
                                           "'renderer' model (tiny_renderer.safetensors)")
    assert errors["node_sd15"].startswith(prefix + "'model': expected a Stable Video Diffusion MODEL")


@pytest.fixture(scope="module")
def trained():
    """train/long_animation.py on the tiny SVD, with synthetic pans (long_animation_train_inprocess.py)."""
    return _run_script("long_animation_train_inprocess.py")


def test_the_trainer_trains_the_additions_on_the_frozen_svd_and_resumes_exactly(trained):
    assert len(trained["losses"]) == 6 and all(0 < loss < 100 for loss in trained["losses"])
    assert trained["changed"] > 1e-4                      # the zero-initialised parts moved
    assert trained["refiner_unchanged"] is True           # T is trained by train/refiner.py
    assert trained["unet_restored"] is True               # the SVD stayed frozen and was given back as it was
    assert trained["resumed_equal"] is True               # 3 + 3 steps resumed = 6 steps


def test_the_trainee_reads_the_motion_bucket_and_jitters_the_field_only_in_training(trained):
    """SVD's motion bucket id comes from the batch (127 when absent, as the node's conditioning gives; another
    value changes the loss), and the field jitter (``--field-jitter``) changes the loss in training mode only:
    eval mode repeats the unjittered loss exactly (same noise, one thread), so any difference in training mode,
    where nothing else differs, is the jittered field's."""
    keys = trained["trainee_keys"]
    assert keys["bucket_127_is_default"] is True and keys["bucket_30_differs"] > 0
    assert keys["eval_repeats"] is True and keys["jitter_differs"] > 0


def test_the_trained_file_loads_and_patches_the_svd(trained):
    assert trained["loaded_family"] == "long_animation"
    assert trained["loads_on_svd"] > 1e-4
    assert trained["refiner_kept"] is True                # T trained first into the same file stays


def test_long_video_reschedule_makes_100_plus_frames_with_the_patched_svd(inprocess):
    """The patched MODEL through LongVideoReschedule (ComfyUI's samplers, 26 segments of 4 frames): the static field
    conditions every segment, whatever its length."""
    assert inprocess["long_frames"] == 104
    assert 0 < inprocess["long_finite_range"] < 1e3


TEMPLATE = "long_animation_svd"


def _run_template(comfy, prompt: dict):
    """(frames [N, H, W, 3] decoded from the saved WebP, the saved long latent [N, 4, h, w])."""
    import numpy as np
    from safetensors.torch import load_file
    from test_integration_pack import read_animation

    outputs = comfy.run(prompt)
    path = comfy.output_path(outputs["16"]["images"][0])
    assert path.stat().st_size > 0
    latent = load_file(str(comfy.output_path(outputs["99"]["latents"][0])))["latent_tensor"]
    return np.stack(read_animation(path)), latent


@pytest.fixture(scope="module")
def template_run(comfy, object_info):
    """The template (fresh additions) run once: (prompt, frames, latent)."""
    from tiny_models import MAKERS
    from workflow_format import ui_to_api

    prompt = ui_to_api(json.loads((HERE.parents[1] / "workflows" / f"{TEMPLATE}.json").read_text()), object_info)
    for node in prompt.values():  # the files it names (as conftest's prepare_workflow, once per module)
        for kind, widget, folder in (("LoadMotionModel", "model_name", "motion_models"),
                                     ("UNETLoader", "unet_name", "diffusion_models"),
                                     ("VAELoader", "vae_name", "vae")):
            if node["class_type"] == kind:
                path = comfy.base_dir / "models" / folder / node["inputs"][widget]
                if not path.exists():
                    MAKERS[path.name](path)
    prompt["16"]["inputs"].update(images=["14", 0], lossless=True)
    del prompt["15"]
    prompt["99"] = {"class_type": "SaveLatent", "inputs": {"samples": ["13", 0],
                                                           "filename_prefix": "ImageDynamics/long_animation_test"}}
    return (prompt, *_run_template(comfy, prompt))


def test_the_svd_template_runs_in_the_real_server_and_fresh_additions_change_nothing(comfy, template_run):
    """workflows/long_animation_svd.json in the real server, on the core loaders' smallest SVD (UNETLoader), a
    TAESD VAE and fresh additions (LoadMotionModel): the saved WebP decodes to the frames Long Video Reschedule
    promises (K L - (K - 1) overlap = 3 x 4 - 2 = 10) at the working size; and the same graph without Long
    Animation Motion samples the same long latent, bit for bit (compared as saved latents: the random VAE's
    frames are nearly black, too clipped to tell models apart)."""
    import numpy as np

    prompt, frames, latent = template_run
    reschedule, segment = prompt["13"]["inputs"], prompt["12"]["inputs"]["amount"]
    expected = reschedule["num_segments"] * segment - (reschedule["num_segments"] - 1) * reschedule["overlap"]
    assert expected == 10
    assert frames.shape == (expected, 64, 64, 3), frames.shape
    assert tuple(latent.shape) == (expected, 4, 8, 8) and latent.isfinite().all() and latent.std() > 0.1
    plain = dict(prompt)
    plain["7"] = {**prompt["7"], "inputs": {**prompt["7"]["inputs"], "model": ["4", 0]}}
    del plain["6"]
    plain_frames, plain_latent = _run_template(comfy, plain)
    assert latent.equal(plain_latent) and np.array_equal(frames, plain_frames)


def test_the_svd_template_with_non_zero_additions_samples_another_clip(comfy, template_run, motion_model_file):
    """The same graph with randomised additions (what training changes): Long Animation Motion is on the sampling
    path and its additions act there (another long latent, still finite, same length)."""
    from tiny_svd import LONG_ANIMATION_RANDOM_TINY

    prompt, _, latent = template_run
    motion_model_file(LONG_ANIMATION_RANDOM_TINY)
    changed = {**prompt, "5": {**prompt["5"], "inputs": {"model_name": LONG_ANIMATION_RANDOM_TINY}}}
    _, other = _run_template(comfy, changed)
    assert other.shape == latent.shape and other.isfinite().all()
    assert (other - latent).abs().max() > 1e-2


def test_the_arrow_harness_measures_the_true_motion():
    """The harness of bench/bench_long_animation_arrows.py (``long_animation_arrows.py``) sees motion where there
    is some: its synthetic clips (a texture panning, or flowing through a rectangle) through the stand-in VAE's
    encode and decode, measured by DIS, give the true flow back: a pan within 25 % (cosine > 0.98); inside a
    flowing rectangle (24-48 px wide here) the direction (cosine > 0.85) at a third or more of the speed (DIS
    smooths towards the still border), and near 0 well outside it. So a model whose samples followed the arrows
    would be measured doing so."""
    import torch
    import torch.nn.functional as F
    from long_animation_arrows import FRAMES, batch, decode, encode

    from imagedynamics.ops.optical_flow import dis_flow

    data = batch(6, torch.Generator().manual_seed(0), region_share=0.5)
    kinds = []
    for frames, flows in zip(data["frames"], data["flows"]):
        decoded = decode(encode(frames))
        measured = torch.stack([dis_flow(decoded[k], decoded[k + 1]) for k in range(FRAMES - 1)]).mean(0)
        mask = flows[0].abs().sum(0) > 0                                       # the moving region
        v = flows[0][:, mask].mean(1)
        inner = F.max_pool2d((~mask).float()[None, None], 17, 1, 8)[0, 0] == 0   # 8 px inside it
        got = measured[:, inner].mean(1)
        cosine = float(got @ v) / float(got.norm() * v.norm())
        if bool(mask.all()):
            assert (got - v).norm() < 0.25 * v.norm() and cosine > 0.98, (got, v)
            kinds.append("pan")
        else:
            assert cosine > 0.85 and got.norm() > v.norm() / 3, (got, v)
            outer = F.max_pool2d(mask.float()[None, None], 17, 1, 8)[0, 0] == 0
            if outer.sum() > 64:
                assert measured[:, outer].mean(1).norm() < 0.1 * v.norm(), measured[:, outer].mean(1)
            kinds.append("region")
    assert set(kinds) == {"pan", "region"}, kinds


def test_the_arrow_harness_measures_the_patched_svd():
    """``long_animation_arrows.py`` end to end without training (what bench_long_animation_arrows.py runs, at 0
    steps): the held-out losses are finite and, with fresh (inert) additions, equal for the true, reversed and no
    field, and the four arrows' sampled motion is exactly the bare SVD's: what the bench reports after training is
    the additions' doing, and any drift the bare SVD has is in the bare row to compare with."""
    from long_animation_arrows import run

    result = run({"base_steps": 0, "steps": 0, "seeds": 1}, timeout=600)
    held = result["held_out"]
    assert held["true"] == held["reversed"] == held["zero"] and 0 < held["true"] < 100
    measured = result["measured"]
    for name in ("right", "left", "down", "up"):
        assert measured[name]["flow"] == measured["bare"]["flow"], name
    assert len(set(measured["magnitude_by_strength"].values())) == 1
