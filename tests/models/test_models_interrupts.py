"""The shared progress protocol (ops/progress.py) in the samplers and renderers not covered by their families'
tests: a callback that raises stops the loop within one step (the network runs no further) and nothing partial
is returned. GID, LVMM (plain and long-video) and the phased sampler are checked in their own test modules."""
from __future__ import annotations

import pytest
import torch

from imagedynamics.ops.progress import Interrupted

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


def _stop_at(step: int, seen: list):
    def progress(done, total):
        seen.append((done, total))
        if done == step:
            raise Interrupted("stopped by the user")
    return progress


def _count_calls(module: torch.nn.Module, calls: list):
    return module.register_forward_hook(lambda *_: calls.append(1))


def test_motion_i2v_stage1_stops_within_a_step():
    from imagedynamics.models.motion_i2v.config import tiny_config
    from imagedynamics.models.motion_i2v.model import build_component
    from imagedynamics.models.motion_i2v.sampler import sample_stage1

    torch.manual_seed(0)
    unet = build_component("stage1", tiny_config("stage1")).eval()
    vae = build_component("flow_vae", tiny_config("flow_vae")).eval()
    calls, decoded, seen = [], [], []
    hooks = [_count_calls(unet, calls), vae.decoder.register_forward_hook(lambda *_: decoded.append(1))]
    try:
        with pytest.raises(Interrupted, match="stopped by the user"):
            sample_stage1(unet, vae, torch.randn(1, 4, 4, 4), torch.randn(1, 3, 16), torch.randn(1, 3, 16),
                          strides=[8, 16, 24], num_steps=5, guidance_scale=7.0,
                          generator=torch.Generator().manual_seed(0), progress=_stop_at(2, seen))
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == [(1, 5), (2, 5)]
    assert len(calls) == 2 and decoded == []  # two U-Net steps (guidance batched), no decode of a partial result


def test_motion_i2v_stage2_stops_within_a_step():
    from imagedynamics.models.motion_i2v.config import stage2_unet_config, tiny_config
    from imagedynamics.models.motion_i2v.sampler import sample_stage2, with_reference_frame
    from imagedynamics.models.motion_i2v.unet3d import MotionI2VUNet3D

    torch.manual_seed(0)
    unet = MotionI2VUNet3D(stage2_unet_config(tiny_config("stage1"))).eval()
    calls, seen = [], []
    hook = _count_calls(unet, calls)
    try:
        with pytest.raises(Interrupted):
            sample_stage2(unet, torch.randn(1, 4, 4, 4), with_reference_frame(torch.randn(2, 2, 32, 32)),
                          torch.randn(1, 3, 16), torch.randn(1, 3, 16), num_steps=4,
                          generator=torch.Generator().manual_seed(0), progress=_stop_at(1, seen))
    finally:
        hook.remove()
    assert seen == [(1, 4)] and len(calls) == 1


def test_learned_renderer_stops_within_a_chunk_and_leaves_the_rest_of_the_output_untouched():
    from imagedynamics.models.renderer import ImageRenderer, ImageRendererConfig, render_frames_learned

    torch.manual_seed(0)
    model = ImageRenderer(ImageRendererConfig.preset("tiny")).eval()
    calls, seen = [], []
    hook = _count_calls(model.out, calls)
    out = torch.full((6, 3, 16, 16), -1.0)
    try:
        with pytest.raises(Interrupted):
            render_frames_learned(model, torch.rand(1, 3, 16, 16), torch.randn(6, 2, 16, 16), chunk_size=2, out=out,
                                  progress=_stop_at(4, seen))
    finally:
        hook.remove()
    assert seen == [(0, 6), (2, 6), (4, 6)]
    assert len(calls) == 2  # two chunks decoded, the third never started
    assert (out[:4] >= 0).all() and (out[4:] == -1).all()
