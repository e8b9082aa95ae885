"""The learned renderer in the real server: LoadMotionModel -> SoftmaxSplatRender's `renderer` input."""
from __future__ import annotations

import numpy as np
import pytest
from test_integration_pack import read_animation

WORKFLOW = "learned_renderer"


def _render(comfy, prompt) -> np.ndarray:
    prompt["5"]["inputs"]["lossless"] = True  # compare pixels, not codec noise
    outputs = comfy.run(prompt)
    return np.stack(read_animation(comfy.output_path(outputs["5"]["images"][0])))


@pytest.fixture
def learned_prompt(load_workflow, prepare_workflow):
    return lambda: prepare_workflow(WORKFLOW, load_workflow(WORKFLOW))


def test_an_untrained_renderer_reproduces_the_pixel_renderer(comfy, learned_prompt):
    """The decoder's last layer starts at zero: through the node, the frames must be the push-pull ones, which
    checks that the picture, the motion, the metric and the fill reach the learned path as they reach the pixel one."""
    import torch

    from imagedynamics.models import renderer
    from imagedynamics.models.renderer import ImageRenderer, ImageRendererConfig

    torch.manual_seed(0)
    path = comfy.base_dir / "models" / "motion_models" / "renderer_untrained.safetensors"
    renderer.save(path, ImageRenderer(ImageRendererConfig.preset("tiny")))
    prompt = learned_prompt()
    prompt["3"]["inputs"]["model_name"] = path.name
    untrained = _render(comfy, prompt)
    pixel_prompt = learned_prompt()
    del pixel_prompt["4"]["inputs"]["renderer"], pixel_prompt["3"]
    pixel = _render(comfy, pixel_prompt)
    assert untrained.shape == pixel.shape == (24, *pixel.shape[1:])
    assert np.abs(pixel[-1] - pixel[0]).mean() > 0.5  # the drag moves the picture
    difference = np.abs(untrained - pixel)
    # equal up to float rounding: at most one 8-bit level, on a few per cent of the values
    assert difference.max() <= 1 and difference.mean() < 0.05, (difference.max(), difference.mean())


def test_a_trained_renderer_changes_the_frames_where_the_drag_opens_holes(comfy, learned_prompt):
    learned = _render(comfy, learned_prompt())
    pixel_prompt = learned_prompt()
    del pixel_prompt["4"]["inputs"]["renderer"], pixel_prompt["3"]
    pixel = _render(comfy, pixel_prompt)
    assert learned.shape == pixel.shape
    changed = np.abs(learned[-1] - pixel[-1]).mean(axis=-1)
    assert changed.mean() > 0.2, changed.mean()  # the decoder's residual is in the frames
    assert np.isfinite(learned).all() and learned.max() > 0


def test_a_model_of_another_family_is_refused_as_renderer(comfy, learned_prompt, motion_model_file, run_error):
    motion_model_file("gid_tiny.safetensors")
    prompt = learned_prompt()
    prompt["3"]["inputs"]["model_name"] = "gid_tiny.safetensors"
    message = run_error(prompt)
    assert "SoftmaxSplatRender" in message and "'renderer'" in message and "'gid' model" in message, message
    assert _render(comfy, learned_prompt()).shape[0] == 24  # the next good prompt runs


def test_a_clip_re_rendered_from_its_first_frame_with_brightness_constancy(comfy):
    """LoadVideo -> MotionFromVideo -> SoftmaxSplatRender (brightness constancy against the clip's own frames):
    the frames rendered from frame 0 are much closer to the real frames than frame 0 itself."""
    frames = 6
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "carphone_pristine.mp4"}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "ImageFromBatch", "inputs": {"image": ["2", 0], "batch_index": 0, "length": frames}},
        "4": {"class_type": "ImageFromBatch", "inputs": {"image": ["2", 0], "batch_index": 0, "length": 1}},
        "5": {"class_type": "MotionFromVideo", "inputs": {"frames": ["3", 0], "max_frames": frames, "stride": 1,
                                                          "fps": 30.0, "preset": "medium", "chained": False}},
        "6": {"class_type": "SoftmaxSplatRender", "inputs": {
            "image": ["4", 0], "motion": ["5", 0], "metric": "brightness constancy (target frames)",
            "metric_scale": 1.0, "fill_holes": True, "chunk_size": 4, "target_frames": ["3", 0]}},
        "7": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["6", 0], "filename_prefix": "test/rerender",
                                                          "fps": 30.0, "lossless": True, "quality": 100,
                                                          "method": "default"}},
        "8": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["3", 0], "filename_prefix": "test/real",
                                                          "fps": 30.0, "lossless": True, "quality": 100,
                                                          "method": "default"}},
    }
    outputs = comfy.run(prompt)
    rendered = np.stack(read_animation(comfy.output_path(outputs["7"]["images"][0]))) / 255.0
    real = np.stack(read_animation(comfy.output_path(outputs["8"]["images"][0]))) / 255.0
    assert rendered.shape == real.shape and rendered.shape[0] == frames
    assert np.abs(rendered[0] - real[0]).max() <= 1 / 255  # frame 0 has no motion

    def psnr(a, b):
        return -10 * np.log10(((a - b) ** 2).mean())

    last = frames - 1
    assert psnr(rendered[last], real[last]) > psnr(real[0], real[last]) + 4.0
