"""LVMM in the real server: PredictLatentMotion from a tiny model trained by the tests, rendered by its R."""
from __future__ import annotations

import numpy as np
from PIL import Image


def read_frames(path):
    with Image.open(path) as im:
        frames = []
        for index in range(im.n_frames):
            im.seek(index)
            frames.append(np.asarray(im.convert("RGB"), dtype=np.float32))
    return np.stack(frames)


def test_predict_latent_motion_returns_the_requested_frames_with_motion(comfy, load_workflow, prepare_workflow):
    prompt = prepare_workflow("lvmm_animate", load_workflow("lvmm_animate"))
    prompt["3"]["inputs"].update(num_frames=7, slow_motion=1.0)
    prompt["5"]["inputs"]["lossless"] = True
    outputs = comfy.run(prompt)
    frames = read_frames(comfy.output_path(outputs["5"]["images"][0]))
    assert len(frames) == 7
    assert np.abs(frames[1:] - frames[0]).mean() > 0.01  # the sampled motion moves the picture


def test_a_model_of_another_family_is_refused(comfy, load_workflow, prepare_workflow, run_error):
    prompt = prepare_workflow("gid_sample", load_workflow("gid_sample"))  # makes the GID checkpoint
    prompt = prepare_workflow("lvmm_animate", load_workflow("lvmm_animate"))
    prompt["2"]["inputs"]["model_name"] = "gid_tiny.safetensors"
    message = run_error(prompt)
    assert "PredictLatentMotion" in message and "'model'" in message and "'gid' model" in message, message
