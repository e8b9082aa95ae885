"""LoopGuidance's node: its inputs become a models.guidance.LoopGuidance, the loss option included.

The node's module is loaded alone: the ``nodes.motion`` package's ``__init__`` imports nodes that need ComfyUI's
model management (a server's, tested in tests/integration), this one only ``comfy_api``."""
from __future__ import annotations

import importlib.util
import pathlib
import sys
import types

import pytest

import imagedynamics.nodes
from imagedynamics.nodes.common import NodeInputError

MOTION = "imagedynamics.nodes.motion"


@pytest.fixture(scope="module")
def node():
    """nodes/motion/loop_guidance.py as a module, its package stubbed only while it loads."""
    folder = pathlib.Path(imagedynamics.nodes.__file__).parent / "motion"
    spec = importlib.util.spec_from_file_location(f"{MOTION}.loop_guidance", folder / "loop_guidance.py")
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get(MOTION)
    package = types.ModuleType(MOTION)
    package.__path__ = [str(folder)]
    sys.modules[MOTION] = package
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules[MOTION]
        else:
            sys.modules[MOTION] = saved
    return module


DEFAULTS = dict(weight=0.0, recurrences=2, cfg=1.75, num_frames=8, through_denoiser=True)


@pytest.mark.parametrize("loss, relative", [("default", None), ("relative", True), ("plain", False)])
def test_the_loss_input_selects_the_loop_loss(node, loss, relative):
    guidance = node.LoopGuidance.execute(**DEFAULTS, loss=loss).result[0]
    assert guidance.relative is relative  # None: the sampler's family default (GID relative, LVMM plain)
    assert (guidance.weight, guidance.num_frames, guidance.recurrences) == (None, 8, 2)


def test_the_loss_input_is_a_combo_with_a_tooltip_and_defaults_to_the_family(node):
    inputs = {i.id: i for i in node.LoopGuidance.define_schema().inputs}
    loss = inputs["loss"]
    assert list(loss.options) == ["default", "relative", "plain"] and loss.default == "default"
    assert "Eq. 6" in loss.tooltip and "amplitude" in loss.tooltip
    assert list(inputs)[-1] == "loss"  # after the older inputs: saved workflows keep their widget order


def test_an_unknown_loss_names_the_node_and_the_input(node):
    with pytest.raises(NodeInputError, match="LoopGuidance: input 'loss'"):
        node.LoopGuidance.execute(**DEFAULTS, loss="shrink")
