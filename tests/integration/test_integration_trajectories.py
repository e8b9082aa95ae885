"""SparseTrajectoryToFlow in the real server: every documented trajectory format, per-track timing on the rendered
frames, and an interrupt that frees the queue in the middle of a 10,000-arrow edge-aware prompt."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

NODE = "SparseTrajectoryToFlow"
W, H = 64, 48
SQUARE = "trajectory_square.png"  # black, a white 5 x 5 square centred on (20, 24)

# One drag from (20, 24) to (30, 28) written in every format the `trajectories` tooltip lists.
FORMATS = {
    "pack_arrows": json.dumps({"arrows": [{"start": [20, 24], "end": [30, 28], "speed": 1}]}),
    "pack_tracks": json.dumps({"coordinates": "pixels", "width": W, "height": H,
                               "tracks": [[[20, 24], [25, 26], [30, 28]]]}),
    "pack_timed": json.dumps({"tracks": [{"points": [[20, 24], [30, 28]], "start": 0, "end": 4}]}),
    "pack_normalised": json.dumps({"coordinates": "normalized", "arrows": [
        {"start": [20 / (W - 1), 24 / (H - 1)], "end": [30 / (W - 1), 28 / (H - 1)]}]}),
    "arrow_pairs": "[[[20, 24], [30, 28]]]",
    "motion_i2v_lines": "20,24,30,28",
    "kjnodes": json.dumps([{"x": 20, "y": 24}, {"x": 30, "y": 28}]),
    "kjnodes_several": json.dumps([[{"x": 20, "y": 24}, {"x": 30, "y": 28}]]),
    "dragnuwa": "[[[20, 24], [25, 26], [30, 28]]]",
    "core_tracks": json.dumps({"track_path": [[[20, 24]], [[30, 28]]], "track_visibility": [[True], [True]]}),
}


@pytest.fixture(scope="module")
def square(comfy):
    picture = np.zeros((H, W, 3), dtype=np.uint8)
    picture[22:27, 18:23] = 255
    Image.fromarray(picture).save(comfy.base_dir / "input" / SQUARE)
    return SQUARE


def defaults(object_info: dict, class_type: str, **inputs) -> dict:
    """A node with every required widget at its default, and the given inputs."""
    values = {}
    for name, spec in object_info[class_type]["input"]["required"].items():
        options = spec[1] if len(spec) > 1 else {}
        if "default" in options:
            values[name] = options["default"]
        elif isinstance(spec[0], list):  # a combo
            values[name] = spec[0][0]
    values.update(inputs)
    return {"class_type": class_type, "inputs": values}


def drag_branch(object_info, prompt: dict, key: str, trajectories: str, mode: str, num_frames: int, **node_inputs):
    """LoadImage -> SparseTrajectoryToFlow -> SoftmaxSplatRender -> SaveImage (lossless PNG frames)."""
    prompt[f"{key}_draw"] = defaults(object_info, NODE, image=["load", 0], trajectories=trajectories, mode=mode,
                                     num_frames=num_frames, sigma=64.0, threshold=0.0, **node_inputs)
    prompt[f"{key}_render"] = defaults(object_info, "SoftmaxSplatRender", image=["load", 0],
                                       motion=[f"{key}_draw", 1])
    prompt[f"{key}_save"] = {"class_type": "SaveImage", "inputs": {"images": [f"{key}_render", 0],
                                                                   "filename_prefix": f"trajectories/{key}"}}


def centroids(comfy, outputs: dict, key: str) -> np.ndarray:
    """[T, 2] (x, y) centroid of the bright pixels of each saved frame."""
    result = []
    for item in outputs[f"{key}_save"]["images"]:
        frame = np.asarray(Image.open(comfy.output_path(item)).convert("L"), dtype=np.float32)
        ys, xs = np.nonzero(frame > 127)
        result.append((xs.mean(), ys.mean()))
    return np.asarray(result)


@pytest.mark.parametrize("mode", ["arrows", "tracks"])
def test_every_documented_format_runs_through_the_node(comfy, object_info, square, mode):
    """One prompt, one branch per format: each drags the square from (20, 24) towards (30, 28) on the frames the
    server renders (arrows: 10 x 4 px per frame for 3 frames, clipped at the border; tracks: arrives at the end)."""
    prompt = {"load": {"class_type": "LoadImage", "inputs": {"image": square}}}
    for key, text in FORMATS.items():
        drag_branch(object_info, prompt, key, text, mode, num_frames=5)
    outputs = comfy.run(prompt)
    for key in FORMATS:
        track = centroids(comfy, outputs, key)
        assert len(track) == 5, key
        assert np.allclose(track[0], (20, 24), atol=0.01), (key, track[0])
        if mode == "tracks":
            assert np.allclose(track[-1], (30, 28), atol=0.3), (key, track)
        else:  # one frame of motion moves the square by the arrow's vector
            assert np.allclose(track[1], (30, 28), atol=0.3), (key, track)
            assert track[2, 0] > track[1, 0] + 5, (key, track)


def test_a_timed_track_arrives_at_its_end_on_its_end_frame(comfy, object_info, square):
    """A track with start = 2, end = 6 of 12 frames: the rendered square sits still until frame 2, is at the track's
    end on frame 6 (not before) and stays there."""
    timed = json.dumps({"tracks": [{"points": [[20, 24], [44, 24]], "start": 2, "end": 6, "easing": "ease-in-out"}]})
    prompt = {"load": {"class_type": "LoadImage", "inputs": {"image": square}}}
    drag_branch(object_info, prompt, "timed", timed, "tracks", num_frames=12)
    track = centroids(comfy, comfy.run(prompt), "timed")
    assert np.allclose(track[:3], (20, 24), atol=0.01), track
    assert track[5, 0] < 43.0, track  # one frame before the end it is not there yet
    assert np.allclose(track[6:], (44, 24), atol=0.3), track


def test_interrupting_a_10000_arrow_edge_aware_prompt_frees_the_queue_within_two_seconds(comfy, object_info, square):
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 255, size=(10_000, 2))
    end = np.clip(start + rng.normal(0, 4, size=start.shape), 0, 255)
    arrows = json.dumps({"arrows": [{"start": s, "end": e} for s, e in zip(start.tolist(), end.tolist())]})
    prompt = {
        "load": {"class_type": "LoadImage", "inputs": {"image": "astronaut.png"}},
        "scale": {"class_type": "ImageScale", "inputs": {"image": ["load", 0], "upscale_method": "area",
                                                         "width": 256, "height": 256, "crop": "disabled"}},
        "draw": defaults(object_info, NODE, image=["scale", 0], trajectories=arrows, edge_aware=True),
        "render": defaults(object_info, "SoftmaxSplatRender", image=["scale", 0], motion=["draw", 1]),
        "save": {"class_type": "SaveImage", "inputs": {"images": ["render", 0], "filename_prefix": "interrupted"}},
    }
    prompt_id = comfy.submit(prompt)
    freed = comfy.interrupt_running(after=3.0)  # deep inside the affinity loop (the whole prompt needs minutes)
    assert freed < 2.0, f"the queue was freed {freed:.2f} s after the interrupt"
    status = comfy.get(f"/history/{prompt_id}")[prompt_id]["status"]
    assert any(kind == "execution_interrupted" for kind, _ in status["messages"]), status
    assert "save" not in comfy.get(f"/history/{prompt_id}")[prompt_id].get("outputs", {})  # nothing partial
    # the next good prompt runs
    good = {"load": {"class_type": "LoadImage", "inputs": {"image": square}}}
    drag_branch(object_info, good, "after", FORMATS["pack_arrows"], "arrows", num_frames=3, edge_aware=True)
    assert np.allclose(centroids(comfy, comfy.run(good), "after")[1], (30, 28), atol=1.0)
