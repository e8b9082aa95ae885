"""LVMM conditioned by the user's CLIP encoders: ComfyUI's classes give what the trainer computed, and a prompt
steers PredictLatentMotion in the real server (workflows/lvmm_text.json)."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
from test_integration_lvmm import read_frames

HERE = pathlib.Path(__file__).resolve().parent


def test_comfyui_encoders_give_the_trainers_embeddings(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(HERE / "lvmm_clip_inprocess.py"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # ComfyUI runs the encoders in float16 on the CPU: agreement to a few 1e-4 of the embeddings' scale
    assert result["image_shape"] == [1, 24] and result["text_shape"] == [1, 32]
    assert result["image_relative"] < 3e-3 and result["text_relative"] < 3e-3, result
    assert result["node_image_relative"] < 3e-3 and result["node_text_relative"] < 3e-3, result
    assert result["other_prompt_relative"] > 0.05  # and the text does change the embedding
    assert "'clip'" in result["wrong_encoder"] and "sd15_text_tiny.safetensors" in result["wrong_encoder"]
    assert "25-d" in result["wrong_width"] and "got 24-d" in result["wrong_width"]
    assert "'clip_vision'" in result["missing"] and "got nothing" in result["missing"]


def test_the_prompt_steers_the_motion(comfy, load_workflow, prepare_workflow):
    frames = []
    for text in ("the flag waves in the wind", "still water"):
        prompt = prepare_workflow("lvmm_text", load_workflow("lvmm_text"))
        prompt["3"]["inputs"].update(prompt=text, num_frames=4, slow_motion=1.0, steps=3)
        prompt["5"]["inputs"]["lossless"] = True
        outputs = comfy.run(prompt)
        frames.append(read_frames(comfy.output_path(outputs["5"]["images"][0])))
    assert frames[0].shape == frames[1].shape == (4, *frames[0].shape[1:])
    assert np.abs(frames[0][1:] - frames[1][1:]).mean() > 0.05  # another prompt, another motion
    assert np.array_equal(frames[0][0], frames[1][0])  # frame 0 is the picture either way


def test_a_text_model_without_its_clip_is_refused(comfy, load_workflow, prepare_workflow, run_error):
    prompt = prepare_workflow("lvmm_text", load_workflow("lvmm_text"))
    del prompt["3"]["inputs"]["clip"]
    del prompt["6"]
    message = run_error(prompt)
    assert "PredictLatentMotion" in message and "'clip'" in message and "tiny_sd15.safetensors" in message, message
