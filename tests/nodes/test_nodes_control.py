"""SparseTrajectoryToFlow's node helpers: ComfyUI inputs in, motion out, every bad input named after the node."""
from __future__ import annotations

import json
import logging

import pytest
import torch

from imagedynamics.nodes.common import NodeInputError
from imagedynamics.nodes.control import sparse_trajectory as node

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 40, 56
IMAGE = torch.full((1, H, W, 3), 0.5)  # a ComfyUI IMAGE [B, H, W, C]
ARROW = json.dumps({"arrows": [{"start": [10, 20], "end": [14, 20]}]})
DEFAULTS = dict(mode="arrows", num_frames=4, strength=1.0, sigma=0.0, threshold=0.0, edge_aware=False,
                coordinates="auto", out_of_bounds="clip")


def draw(trajectories=ARROW, **changes):
    return node.draw(IMAGE, trajectories, **{**DEFAULTS, **changes})


@pytest.mark.parametrize("text, fragment", [
    ("", "is empty"),
    ("[" * 1000 + "]" * 1000, "nested more than 8 deep"),
    ('{"arrows": [{"start": [1, 2], "end": [3, 4], "speed": 1e308}]}', "arrow 0, speed: 1e+308 is out of range"),
    ('{"arrows": [{"start": [1, 2], "end": [3, 4]}], "brush": {"strokes": [{"points": [[1, 2]], "radius": 1e9}]}}',
     "stroke 0, radius: 1e+09 is out of range"),
    ('{"arrows": [{"start": [1, 2], "end": [3', "unbalanced JSON"),
    ("10,20,30", "line 1: expected 4 numbers"),
    ('{"tracks": [{"points": [[1, 2], [3, 4]], "end": 9}]}', "'end' is frame 9, past the last frame 3"),
])
def test_bad_drawings_name_the_node_and_the_input(text, fragment):
    with pytest.raises(NodeInputError) as info:
        draw(text, mode="tracks" if "tracks" in text else "arrows")
    message = str(info.value)
    assert message.startswith("SparseTrajectoryToFlow: input 'trajectories': expected trajectories in a supported "
                              "format, got trajectories: "), message
    assert fragment in message and info.value.input_name == "trajectories", message


def test_mask_modes_and_their_errors():
    mask = torch.zeros(1, H, W)
    mask[:, :, :28] = 1.0  # the left half
    moves = draw(mask=mask).flow.mask[0, 0]
    still = draw(mask=mask, brush_mode="mask stays still").flow.mask[0, 0]
    assert torch.equal(moves, mask[0]) and torch.equal(still, 1.0 - mask[0])
    assert draw(mask=mask, brush_mode="mask stays still").motion.displacement[:, :, :, :28].abs().max() == 0
    # an empty mask moves nothing (refused); read as "stays still" it lets everything move
    assert torch.equal(draw(mask=torch.zeros(1, H, W), brush_mode="mask stays still").flow.mask, torch.ones(1, 1, H, W))
    for mask_value, mode, fragment in [(0.0, "mask moves", "empty mask"),
                                       (1.0, "mask stays still", "covers the whole picture")]:
        with pytest.raises(NodeInputError, match=fragment) as info:
            draw(mask=torch.full((1, H, W), mask_value), brush_mode=mode)
        assert info.value.input_name == "mask"
    with pytest.raises(NodeInputError, match="input 'mask': expected a mask of the picture's size 56x40"):
        draw(mask=torch.ones(1, 20, 20))


def test_clipped_points_are_logged_not_raised_and_progress_is_passed_on(caplog):
    seen = []
    with caplog.at_level(logging.WARNING):
        drawn = draw(json.dumps({"arrows": [{"start": [10, 20], "end": [900, 20]}]}),
                     progress=lambda done, total: seen.append((done, total)))
    assert drawn.tracks.points[1, 0, 0] > 10 and seen and seen[-1][0] == seen[-1][1]
    assert "SparseTrajectoryToFlow: trajectories: 1 point(s) outside the 56x40 picture were clipped" in caplog.text
    with pytest.raises(NodeInputError, match="is outside the 56x40 picture"):
        draw(json.dumps({"arrows": [{"start": [10, 20], "end": [900, 20]}]}), out_of_bounds="error")


def test_coordinates_and_modes_reach_the_library():
    normalised = json.dumps({"tracks": [[[0.25, 0.5], [0.5, 0.5]]]})
    pixels = draw(normalised, mode="tracks", coordinates="pixels")
    scaled = draw(normalised, mode="tracks", coordinates="normalized")
    assert pixels.tracks.points[-1, 0].tolist() == [0.5, 0.5]
    assert scaled.tracks.points[-1, 0].tolist() == [27.5, 19.5]  # 0.5 * (W - 1), 0.5 * (H - 1)
    assert scaled.motion.displacement.shape == (4, 2, H, W)
    assert torch.equal(draw(sigma=5.0).flow.velocity, draw(sigma=5.0).flow.velocity)
    assert not torch.equal(draw(sigma=5.0).flow.velocity, draw().flow.velocity)  # 0 = automatic, not 0 px
