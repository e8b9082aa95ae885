"""The shared input checks of nodes/common.py: every input held to the node's own schema before the node runs."""
from __future__ import annotations

import math

import pytest
import torch
from comfy_api.latest import io

from imagedynamics.models.long_video import RescheduleConfig
from imagedynamics.nodes.common import (
    DynLongSchedule,
    DynMotion,
    NodeInputError,
    check_inputs,
    checked_inputs,
    format_bytes,
    free_memory,
    require_memory,
)
from imagedynamics.nodes.control import sparse_trajectory

SCHEMA = io.Schema(
    node_id="Probe",
    inputs=[
        io.Float.Input("scale", default=1.0, min=0.0, max=10.0),
        io.Float.Input("free", default=0.0),
        io.Int.Input("count", default=2, min=1, max=8),
        io.Combo.Input("mode", options=["a", "b"], default="a"),
        io.String.Input("text", default=""),
        io.Boolean.Input("flag", default=False),
        io.Image.Input("image"),
        io.Mask.Input("mask", optional=True),
        io.Latent.Input("latent", optional=True),
        DynMotion.Input("motion", optional=True),
        DynLongSchedule.Input("long_schedule", optional=True),
    ],
)
GOOD = dict(scale=2.5, free=-1e30, count=3, mode="b", text="x", flag=True, image=torch.zeros(1, 4, 4, 3))


def test_good_values_pass_and_optional_inputs_may_be_absent_or_none():
    check_inputs(SCHEMA, GOOD)
    check_inputs(SCHEMA, {**GOOD, "mask": None, "motion": None, "count": 8.0, "scale": 0})
    check_inputs(SCHEMA, {**GOOD, "long_schedule": RescheduleConfig(num_segments=2),
                          "latent": {"samples": torch.zeros(1, 4, 2, 2)}, "mask": torch.ones(4, 4)})


@pytest.mark.parametrize("name, value, expected", [
    ("scale", math.nan, "a finite number in [0, 10], got nan"),
    ("scale", math.inf, "a finite number in [0, 10], got inf"),
    ("scale", -0.5, "a finite number in [0, 10], got -0.5"),
    ("scale", "2", "a finite number in [0, 10], got '2'"),
    ("scale", True, "a finite number in [0, 10], got True"),
    ("free", -math.inf, "a finite number, got -inf"),
    ("count", 2.5, "a whole number in [1, 8], got 2.5"),
    ("count", 10**400, "a whole number in [1, 8], got 1000"),
    ("count", math.nan, "a whole number in [1, 8], got nan"),
    ("mode", "c", "one of 'a', 'b', got 'c'"),
    ("text", 3, "text, got 3"),
    ("flag", 2, "true or false, got 2"),
    ("image", torch.zeros(1, 4, 0, 3), "at least 1x1 pixels, got a tensor of shape [1, 4, 0, 3]"),
    ("image", torch.zeros(0, 4, 4, 3), "of at least one picture"),
    ("image", torch.zeros(4, 4, 3), "IMAGE batch [B,H,W,C]"),
    ("image", None, "expected a value for this IMAGE input, got nothing"),
    ("mask", torch.zeros(1, 0, 4), "a MASK [B,H,W] of at least 1x1 pixels"),
    ("latent", {"samples": torch.zeros(0, 4, 2, 2)}, "got a LATENT of shape [0, 4, 2, 2]"),
    ("latent", [1], "a LATENT (a dict whose 'samples' tensor is not empty), got list"),
    ("motion", torch.zeros(2, 2, 4, 4), "a DYN_MOTION (Motion)"),
    ("long_schedule", {"num_segments": 2}, "a DYN_LONG_SCHEDULE (RescheduleConfig), got dict"),
])
def test_bad_values_name_the_node_the_input_and_what_was_expected(name, value, expected):
    with pytest.raises(NodeInputError) as info:
        check_inputs(SCHEMA, {**GOOD, name: value})
    message = str(info.value)
    assert message.startswith(f"Probe: input '{name}': expected "), message
    assert expected in message, message
    assert info.value.node == "Probe" and info.value.input_name == name


def test_long_combo_lists_are_shortened():
    schema = io.Schema(node_id="Files", inputs=[io.Combo.Input("name", options=[f"f{i}" for i in range(50)])])
    with pytest.raises(NodeInputError, match=r"one of its 50 options \('f0', .*'f19', \.\.\.\), got 'nope'"):
        check_inputs(schema, {"name": "nope"})


def test_the_decorator_checks_before_the_node_runs_with_positional_or_keyword_values():
    ran = []

    class Probe(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Probe", inputs=[io.Float.Input("scale", min=0.0, max=1.0)])

        @classmethod
        @checked_inputs
        def execute(cls, scale):
            ran.append(scale)
            return io.NodeOutput(scale)

    assert Probe.execute(scale=0.5).result == (0.5,) and Probe.execute(0.25).result == (0.25,)
    for bad in (math.nan, 2.0):
        with pytest.raises(NodeInputError, match="Probe: input 'scale'"):
            Probe.execute(scale=bad)
        with pytest.raises(NodeInputError, match="Probe: input 'scale'"):
            Probe.execute(bad)
    assert ran == [0.5, 0.25] and Probe.execute.checks_inputs


def test_a_real_node_refuses_an_unknown_combo_and_a_nan_float_by_name():
    node = sparse_trajectory.SparseTrajectoryToFlow
    inputs = dict(image=torch.full((1, 8, 8, 3), 0.5), trajectories='{"arrows": []}', mode="arrows", num_frames=4,
                  strength=1.0, sigma=0.0, threshold=0.0, edge_aware=False, coordinates="auto", out_of_bounds="clip")
    for name, value in [("brush_mode", "sideways"), ("mode", "spirals"), ("strength", math.nan),
                        ("sigma", math.inf), ("threshold", -1.0), ("num_frames", 1)]:
        with pytest.raises(NodeInputError) as info:
            node.execute(**{**inputs, name: value})
        assert str(info.value).startswith(f"SparseTrajectoryToFlow: input '{name}': expected "), info.value


def test_memory_is_checked_before_allocating_with_what_to_lower():
    require_memory("Probe", 2**30, ("num_frames", "image"), "the motion", free=2**31)
    with pytest.raises(NodeInputError) as info:
        require_memory("Probe", 300 * 2**30, ("num_frames", "image"), "the motion of 4096 frames at 2048x2048",
                       free=8 * 2**30)
    assert str(info.value) == ("Probe: input 'num_frames': expected settings that fit in memory (lower num_frames or "
                               "image), got the motion of 4096 frames at 2048x2048, which needs about 300.0 GiB with "
                               "8.0 GiB free")
    assert free_memory() > 0 and format_bytes(1536) == "1.5 KiB" and format_bytes(12) == "12 B"


def test_the_render_splats_fewer_frames_at_once_when_memory_is_short(monkeypatch, caplog):
    """4096 x 4096, 4 frames: the output is 768 MiB; each frame of a chunk needs 180 bytes a pixel (2.8 GiB)."""
    from imagedynamics.nodes.render import softmax_splat

    size, kept = (4096, 4096), 12 * 4 * 4096 * 4096
    for free, chunk in [(100 * 2**30, 4), (16 * 2**30, 3), (10 * 2**30, 2), (7 * 2**30, 1)]:
        monkeypatch.setattr(softmax_splat, "free_memory", lambda f=free: f)
        assert softmax_splat._chunk_that_fits(8, 4, 1, size, kept) == chunk, free
    assert "chunk_size 8 -> 1 frames at once" in caplog.text
    monkeypatch.setattr(softmax_splat, "free_memory", lambda: 6 * 2**30)  # not even one frame at a time
    with pytest.raises(NodeInputError, match=r"SoftmaxSplatRender: input 'motion': expected settings that fit in "
                       r"memory \(lower motion or image\), got 4 frames at 4096x4096, which needs about 6.1 GiB "
                       r"with 6.0 GiB free"):
        softmax_splat._chunk_that_fits(8, 4, 1, size, kept)

