"""The pack inside a real ComfyUI: registration, the default workflow's loop and still pixels, clear errors.

Every example workflow runs in tests/integration/test_integration_templates.py (opened from the Templates browser).
"""
from __future__ import annotations

import copy
import json
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from imagedynamics.ops.loop_metrics import seam_ratio, sharpness_ratio

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACK_NODES = {"SparseTrajectoryToFlow", "EulerianMotion", "SoftmaxSplatRender", "PreviewMotion"}


def pack_nodes(object_info):
    return {name: info for name, info in object_info.items() if info.get("python_module", "").startswith(
        "custom_nodes.comfyui-imagedynamics")}


def test_every_node_is_registered_in_the_pack_category_with_tooltips(object_info):
    nodes = pack_nodes(object_info)
    assert PACK_NODES <= set(nodes), sorted(nodes)
    for name, info in nodes.items():
        assert info["category"].startswith("ImageDynamics/"), (name, info["category"])
        assert info["description"], name
        for group in ("required", "optional"):
            for input_name, spec in info["input"].get(group, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
        # An output without a display name shows its type (DYN_MOTION) on the node instead of what it is.
        for output_type, output_name in zip(info["output"], info["output_name"]):
            assert output_name != output_type, f"{name} output {output_type} has no display name"


def read_animation(path: pathlib.Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        frames = []
        for index in range(getattr(im, "n_frames", 1)):
            im.seek(index)
            frames.append(np.asarray(im.convert("RGB"), dtype=np.float32))
    return frames


def test_cinemagraph_loops_seamlessly_and_keeps_the_unmasked_region_still(comfy, load_workflow):
    prompt = load_workflow("cinemagraph")
    prompt["5"]["inputs"]["lossless"] = True  # compare pixels, not codec noise
    outputs = comfy.run(prompt)
    frames = np.stack(read_animation(comfy.output_path(outputs["5"]["images"][0])))
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    wrap = np.abs(frames[-1] - frames[0]).mean()
    assert steps.mean() > 0.05, "nothing moved"
    assert wrap <= steps.max() * 1.05, (wrap, steps.max())
    with Image.open(ROOT / "example_inputs" / "astronaut.png") as im:
        moving = np.asarray(im)[..., 3] == 0
    source = np.asarray(Image.open(ROOT / "example_inputs" / "astronaut.png").convert("RGB"), dtype=np.float32)
    still = ~moving
    # Pixels beyond the reach of the flag's motion never change, in any frame (frame 0 is the picture, up to
    # the host's 8-bit quantisation, which truncates).
    far = still.copy()
    far[:, :140] = False
    assert np.abs(frames[0] - source).max() <= 1
    assert np.abs(frames[:, far] - frames[0, far]).max() == 0
    # and the flag itself moves
    assert np.abs(frames[:, moving] - frames[0, moving]).mean(axis=(1, 2)).max() > 1.0
    # without double exposure: every frame's flag at least 0.9 as sharp as frame 0's (the one cross-fade over the
    # loop fell to 0.74 half-way), and the wrap step is a typical step (no pop, no hold), in the written file
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2) / 255.0
    brush = torch.from_numpy(moving.astype(np.float32))
    worst = float(sharpness_ratio(clip, brush).min())
    assert worst >= 0.9, worst
    assert 0.5 <= seam_ratio(clip, brush) <= 1.5, seam_ratio(clip, brush)


@pytest.mark.parametrize("change, input_name", [
    (lambda p: p["2"]["inputs"].update(trajectories='{"arrows": [{"start": [1, 2], "end": [3'), "trajectories"),
    (lambda p: p["2"]["inputs"].update(trajectories='{"arrows": []}'), "trajectories"),
    (lambda p: p["2"]["inputs"].update(trajectories='{"arrows": [{"start": [1, "x"], "end": [3, 4]}]}'),
     "trajectories"),
    (lambda p: p["2"]["inputs"].update(trajectories='[[[[10, 20]], [[30, 40]]]]', mode="tracks"), "trajectories"),
    (lambda p: p["2"]["inputs"].update(trajectories='{"tracks": [[[10, NaN], [30, 40]]]}', mode="tracks"),
     "trajectories"),
    (lambda p: p["2"]["inputs"].update(trajectories='{"tracks": [[[10, 20]]]}', mode="tracks"), "trajectories"),
    (lambda p: p["2"]["inputs"].update(trajectories="[" * 1000 + "]" * 1000), "trajectories"),
    (lambda p: p["2"]["inputs"].update(trajectories='{"arrows": [{"start": [1, 2], "end": [3, 4], "speed": 1e308}]}'),
     "trajectories"),
    (lambda p: p["2"]["inputs"].update(trajectories='{"arrows": [{"start": [1, 2], "end": [3, 4]}], "brush": '
                                                    '{"strokes": [{"points": [[1, 2]], "radius": 1e9}]}}'),
     "trajectories"),
    (lambda p: p["2"]["inputs"].update(trajectories=""), "trajectories"),
])
def test_bad_arrows_give_a_clear_error_and_the_server_keeps_serving(comfy, load_workflow, run_error, change,
                                                                     input_name):
    prompt = load_workflow("cinemagraph")
    bad = copy.deepcopy(prompt)
    change(bad)
    message = run_error(bad)
    assert "SparseTrajectoryToFlow" in message and f"'{input_name}'" in message, message


def test_arrows_outside_the_image_are_rejected_when_asked(comfy, load_workflow, run_error):
    prompt = load_workflow("cinemagraph")
    prompt["2"]["inputs"]["trajectories"] = json.dumps({"arrows": [{"start": [900, 20], "end": [910, 25]}]})
    prompt["2"]["inputs"]["out_of_bounds"] = "error"
    message = run_error(prompt)
    assert "SparseTrajectoryToFlow" in message and "'trajectories'" in message, message


def test_empty_mask_and_mask_of_another_size_are_rejected(comfy, load_workflow, run_error):
    prompt = load_workflow("cinemagraph")
    empty = copy.deepcopy(prompt)
    empty["10"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 512, "height": 512}}
    empty["2"]["inputs"]["mask"] = ["10", 0]
    message = run_error(empty)
    assert "SparseTrajectoryToFlow" in message and "'mask'" in message and "empty" in message, message
    other = copy.deepcopy(prompt)
    other["10"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 256, "height": 200}}
    other["2"]["inputs"]["mask"] = ["10", 0]
    message = run_error(other)
    assert "'mask'" in message and "256x200" in message, message
    # and the next good prompt still works
    outputs = comfy.run(prompt)
    assert outputs["5"]["images"]


def test_a_batch_of_pictures_is_animated_picture_by_picture(comfy, load_workflow):
    prompt = load_workflow("drag_region")
    prompt["20"] = {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}
    prompt["21"] = {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["20", 0]}}
    prompt["3"]["inputs"]["image"] = ["21", 0]
    prompt["4"]["inputs"]["lossless"] = True
    outputs = comfy.run(prompt)
    frames = np.stack(read_animation(comfy.output_path(outputs["4"]["images"][0])))
    count = prompt["2"]["inputs"]["num_frames"]
    assert len(frames) == 2 * count
    first, second = frames[:count], frames[count:]
    # the second picture is the inverse of the first, animated by the same motion
    assert np.abs((255 - first[1:]) - second[1:]).mean() < 2.0
    assert np.abs(first[-1] - first[0]).mean() > 0.05
