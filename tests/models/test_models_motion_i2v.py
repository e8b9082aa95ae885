"""Motion-I2V library: manifest compatibility, conversion, motion-augmented attention, samplers (CPU, tiny)."""
from __future__ import annotations

import json
import math
import pathlib
import struct

import pytest
import torch

from imagedynamics.models.checkpoint import CheckpointError, read_header
from imagedynamics.models.motion_i2v import constants as C
from imagedynamics.models.motion_i2v.checkpoint import load, save
from imagedynamics.models.motion_i2v.config import full_config, stage2_unet_config, tiny_config
from imagedynamics.models.motion_i2v.controlnet import MotionI2VControlNet
from imagedynamics.models.motion_i2v.convert import convert, main, map_key_names
from imagedynamics.models.motion_i2v.flow_vae import build_flow_vae, decode_flow, encode_flow
from imagedynamics.models.motion_i2v.model import build_component
from imagedynamics.models.motion_i2v.sampler import (
    make_control,
    sample_stage1,
    sample_stage2,
    with_reference_frame,
)
from imagedynamics.models.motion_i2v.stage2 import Stage2MotionModules, comfy_sd15_insertions
from imagedynamics.models.motion_i2v.temporal import TemporalAttention, TemporalModule
from imagedynamics.models.motion_i2v.unet3d import MotionI2VUNet3D

MANIFEST_PATH = pathlib.Path(__file__).resolve().parents[1] / "data" / "motion_i2v_manifest.json"  # copy of shared/reference
MANIFEST_KEY = {"stage1": "stage1_unet", "controlnet": "controlnet", "flow_vae": "flow_vae",
                "stage2": "stage2_motion_module"}


@pytest.fixture(scope="module")
def manifest():
    if not MANIFEST_PATH.exists():
        pytest.fail(f"manifest missing: {MANIFEST_PATH}")
    return json.loads(MANIFEST_PATH.read_text())


def _differences(expected: dict, actual: dict, limit: int = 8) -> str:
    missing = sorted(set(expected) - set(actual))[:limit]
    extra = sorted(set(actual) - set(expected))[:limit]
    shapes = [f"{k}: {actual[k]} vs {expected[k]}" for k in sorted(set(expected) & set(actual))
              if actual[k] != expected[k]][:limit]
    return f"missing {missing}\nunexpected {extra}\nshape {shapes}"


# --------------------------------------------------------------------------------------------- manifest


@pytest.mark.parametrize("component", ["stage1", "controlnet", "flow_vae", "stage2"])
def test_full_size_matches_manifest_exactly(manifest, component):
    entries = manifest[MANIFEST_KEY[component]]
    names = map_key_names(component, list(entries))           # the converter's key mapping
    expected = {n: tuple(e["shape"]) for n, e in zip(names, entries.values())}
    assert len(expected) == len(entries), "the key mapping merged two released keys"
    with torch.device("meta"):
        model = build_component(component, full_config(component))
    actual = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert actual == expected, _differences(expected, actual)
    stats = manifest["notes"]["stats"][MANIFEST_KEY[component]]
    assert sum(math.prod(s) for s in actual.values()) == stats["num_params"]


def test_stage1_motion_modules_are_the_stage2_modules(manifest):
    with torch.device("meta"):
        unet = MotionI2VUNet3D(full_config("stage1"))
        modules = Stage2MotionModules(full_config("stage2"))
    in_unet = {k: v.shape for k, v in unet.state_dict().items() if ".motion_modules." in k}
    assert in_unet == {k: v.shape for k, v in modules.state_dict().items()}


def test_comfy_insertion_points_follow_sd15_layout():
    points = comfy_sd15_insertions()
    assert [i for _, kind, i in points if kind == "input_blocks"] == [1, 2, 4, 5, 7, 8, 10, 11]
    assert [i for _, kind, i in points if kind == "output_blocks"] == list(range(12))
    assert ("mid_block.motion_modules.0", "middle_block", 1) in points
    names = [n for n, _ in Stage2MotionModules(tiny_config("stage2")).named_motion_modules()]
    assert names == [n for n, _, _ in comfy_sd15_insertions(tiny_config("stage2"))]


# --------------------------------------------------------------------------------------------- conversion


def _released_names(component: str, state: dict) -> dict:
    """Write a tiny model's state dict the way the official code names it (independent of convert.py)."""
    if component == "controlnet":
        return {f"controlnet.{k}": v for k, v in state.items()}
    if component == "flow_vae":
        old = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
        out = {}
        for k, v in state.items():
            for new, legacy in old.items():
                if ".attentions." in k:
                    k = k.replace(new, legacy)
            out[k] = v
        return out
    return dict(state)


def _random_state(model: torch.nn.Module, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("component", ["stage1", "controlnet", "flow_vae", "stage2"])
def test_convert_round_trip_bit_exact(tmp_path, component):
    config = tiny_config(component)
    state = _random_state(build_component(component, config), seed=3)   # every tensor random, zero-inits too
    source = tmp_path / "released.bin"
    torch.save(_released_names(component, state), source)
    written = convert([source], tmp_path / "out", configs={component: config})
    assert list(written) == [component]
    family, _, header_config = read_header(written[component])
    assert family == f"motion_i2v.{component}"
    assert header_config["conventions"]["latent_scale"] == C.LATENT_SCALE
    model = load(written[component])
    assert model.pack_component == component
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert loaded[key].dtype == torch.float32
        assert torch.equal(loaded[key], value), key


def test_convert_fills_missing_positional_tables(tmp_path):
    config = tiny_config("stage2")
    state = _random_state(Stage2MotionModules(config), 4)
    source = tmp_path / "no_pe.bin"
    torch.save({k: v for k, v in state.items() if not k.endswith("pos_encoder.pe")}, source)
    model = load(convert(source, tmp_path, configs={"stage2": config})["stage2"])
    table = model.state_dict()["up_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0"
                               ".attention_blocks.1.pos_encoder.pe"]
    assert table.shape == (1, 32, 32)
    position, channel = 5, 6                                     # even channel: sin(pos / 10000^(ch / C))
    assert table[0, position, channel].item() == pytest.approx(math.sin(position / 10000 ** (channel / 32)))
    assert table[0, position, channel + 1].item() == pytest.approx(math.cos(position / 10000 ** (channel / 32)))
    assert torch.equal(model.state_dict()["mid_block.motion_modules.0.temporal_transformer.proj_in.weight"],
                       state["mid_block.motion_modules.0.temporal_transformer.proj_in.weight"])


def test_convert_splits_a_unet_file_holding_the_controlnet(tmp_path):
    unet_state = _random_state(MotionI2VUNet3D(tiny_config("stage1")), 1)
    cn_state = _random_state(MotionI2VControlNet(tiny_config("controlnet")), 2)
    source = tmp_path / "both.bin"
    torch.save({**unet_state, **{f"controlnet.{k}": v for k, v in cn_state.items()}}, source)
    written = convert(source, tmp_path, configs={"stage1": tiny_config("stage1"),
                                                 "controlnet": tiny_config("controlnet")})
    assert sorted(written) == ["controlnet", "stage1"]
    cn = load(written["controlnet"], component="controlnet")
    assert all(torch.equal(cn.state_dict()[k], v) for k, v in cn_state.items())


def _data_bytes(path: pathlib.Path) -> int:
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    return len(raw) - 8 - header_len


def test_fp16_halves_the_tensor_bytes(tmp_path):
    config = tiny_config("stage2")
    state = _random_state(Stage2MotionModules(config), 5)
    source = tmp_path / "motion_block.bin"
    torch.save(state, source)
    full = convert(source, tmp_path / "fp32.safetensors", configs={"stage2": config})["stage2"]
    half = convert(source, tmp_path / "fp16.safetensors", fp16=True, configs={"stage2": config})["stage2"]
    assert _data_bytes(half) * 2 == _data_bytes(full)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    model = load(half, dtype=torch.float32)
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value.half().float()), key


def test_convert_rejects_wrong_architectures(tmp_path):
    tiny = tmp_path / "tiny.bin"
    torch.save(Stage2MotionModules(tiny_config("stage2")).state_dict(), tiny)
    with pytest.raises(CheckpointError, match="shape mismatches|missing keys"):
        convert(tiny, tmp_path / "x")                      # full-size architecture by default
    assert not (tmp_path / "x").exists(), "nothing may be written when the check fails"
    image_vae = build_flow_vae({**tiny_config("flow_vae"), "in_channels": 3, "out_channels": 3})
    rgb = tmp_path / "rgb.bin"
    torch.save(image_vae.state_dict(), rgb)
    with pytest.raises(CheckpointError, match="image VAE"):
        convert(rgb, tmp_path / "y", configs={"flow_vae": tiny_config("flow_vae")})
    sd15 = tmp_path / "sd15.bin"
    torch.save({"conv_in.weight": torch.zeros(320, 4, 3, 3)}, sd15)
    with pytest.raises(CheckpointError, match="stride"):
        convert(sd15, tmp_path / "z")


def test_load_checks_the_family(tmp_path):
    path = tmp_path / "mm.safetensors"
    save(path, Stage2MotionModules(tiny_config("stage2")), "stage2")
    with pytest.raises(CheckpointError, match="expected motion_i2v.stage1"):
        load(path, component="stage1")


def test_command_line(tmp_path, capsys):
    config = tiny_config("flow_vae")
    (tmp_path / "vae.json").write_text(json.dumps(config))
    vae = build_flow_vae(config)
    torch.save(_released_names("flow_vae", vae.state_dict()), tmp_path / "vae.bin")
    code = main([str(tmp_path / "vae.bin"), "-o", str(tmp_path / "out"), "--fp16",
                 "--config", f"flow_vae={tmp_path / 'vae.json'}"])
    assert code == 0
    assert (tmp_path / "out" / "motion_i2v_flow_vae_fp16.safetensors").exists()
    assert "flow_vae" in capsys.readouterr().out
    assert main([str(tmp_path / "vae.bin"), "-o", str(tmp_path / "bad")]) == 1  # tiny file, full config


# --------------------------------------------------------------------------------------------- temporal attention


def _direct_attention(attn: TemporalAttention, queries: torch.Tensor, keys: torch.Tensor,
                      bias: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v with the module's weights, written out: [N, Lq, C], [N, Lk, C]."""
    heads = attn.heads
    q = queries @ attn.to_q.weight.T
    k = keys @ attn.to_k.weight.T
    v = keys @ attn.to_v.weight.T
    n, lq, c = q.shape
    d = c // heads
    q, k, v = (t.reshape(n, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    logits = q @ k.transpose(-1, -2) / math.sqrt(d)
    if bias is not None:
        logits = logits + bias
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(n, lq, c)
    return out @ attn.to_out[0].weight.T + attn.to_out[0].bias


def _tokens_per_pixel(x: torch.Tensor, frames: int) -> torch.Tensor:
    """[(F), HW, C] of one video -> [HW, F, C]."""
    return x.reshape(frames, -1, x.shape[-1]).transpose(0, 1)


@pytest.fixture()
def attention():
    torch.manual_seed(0)
    return TemporalAttention(dim=16, heads=4, max_len=32).eval()


def test_zero_flow_is_attention_over_duplicated_reference_keys(attention):
    """Zero flow: every warped frame is z0, so the keys are z0 (1 + N times) and z1..zN once each.

    Duplicated keys count as one key whose softmax weight carries log(multiplicity): compare with a direct
    computation over unique keys plus that bias (positions zeroed so that the duplicates are exact).
    """
    attention.pos_encoder.pe.zero_()
    frames, h, w = 5, 3, 4
    x = torch.randn(frames, h * w, 16)
    out = attention(x, frames, (h, w), flows=torch.zeros(frames, 2, h, w))
    tokens = _tokens_per_pixel(x, frames)                                  # [HW, F, C]
    bias = torch.zeros(frames)
    bias[0] = math.log(frames)                                             # z0 appears 1 + N = F times
    expected = _direct_attention(attention, tokens, tokens, bias)
    torch.testing.assert_close(_tokens_per_pixel(out, frames), expected, atol=1e-5, rtol=1e-5)
    plain = _tokens_per_pixel(attention(x, frames), frames)                # no flows: plain self-attention
    assert not torch.allclose(plain, expected, atol=1e-3), "the reference must weigh more with flows"


def test_identical_frames_zero_flow_reduce_to_attention_over_duplicates(attention):
    """Identical frames, zero flow: the 2F-1 interleaved keys are all copies of the one frame z.

    With positions zeroed, attention over [z, z, ..., z] equals attention over the single key z, which is
    also what plain temporal attention gives: compare all three.
    """
    attention.pos_encoder.pe.zero_()
    frames, h, w = 4, 2, 3
    z = torch.randn(1, h * w, 16).expand(frames, -1, -1).contiguous()
    out = attention(z, frames, (h, w), flows=torch.zeros(frames, 2, h, w))
    single = _direct_attention(attention, z[:1].transpose(0, 1), z[:1].transpose(0, 1))   # [HW, 1, C]
    torch.testing.assert_close(_tokens_per_pixel(out, frames), single.expand(-1, frames, -1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, attention(z, frames), atol=1e-5, rtol=1e-5)


def test_translation_flow_feeds_shifted_reference_in_interleaved_order(attention):
    """Constant integer flows given at 2x the feature resolution: z_i' = z0 shifted by flow / 2.

    The direct computation builds [z0, z1', z1, z2', z2] with the sinusoidal positions of that sequence and
    queries the real frames at positions 0, 2, 4; compared at pixels that receive a splat in every frame.
    """
    frames, h, w = 3, 6, 7
    x = torch.randn(frames, h * w, 16)
    flows = torch.zeros(frames, 2, 2 * h, 2 * w)
    flows[1, 0] = 4.0                       # frame 1: 2 feature pixels to the right
    flows[2, 1] = -2.0                      # frame 2: 1 feature pixel up
    out = attention(x, frames, (h, w), flows=flows).reshape(frames, h, w, 16)
    grid = x.reshape(frames, h, w, 16)
    warped1 = torch.roll(grid[0], shifts=2, dims=1)
    warped2 = torch.roll(grid[0], shifts=-1, dims=0)
    sequence = torch.stack([grid[0], warped1, grid[1], warped2, grid[2]], dim=2)       # [h, w, 5, C]
    sequence = sequence + attention.pos_encoder.pe[0, :5]
    expected = _direct_attention(attention, sequence[:, :, 0::2].reshape(-1, 3, 16),
                                 sequence.reshape(-1, 5, 16)).reshape(h, w, 3, 16)
    valid = (slice(0, h - 1), slice(2, w))   # rows that frame 2 fills, columns that frame 1 fills
    torch.testing.assert_close(out.permute(1, 2, 0, 3)[valid], expected[valid], atol=1e-5, rtol=1e-5)


def test_flows_are_shared_by_a_guidance_batch():
    torch.manual_seed(1)
    module = TemporalModule(16, num_attention_heads=4, norm_num_groups=4)
    torch.nn.init.normal_(module.temporal_transformer.proj_out.weight)
    frames = 4
    x = torch.randn(2 * frames, 16, 5, 5)                       # [cond video, uncond video]
    flows = torch.randn(frames, 2, 10, 10) * 3
    flows[0] = 0
    both = module(x, frames, flows, pairing="per video")
    torch.testing.assert_close(both[:frames], module(x[:frames], frames, flows), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[frames:], module(x[frames:], frames, flows[None]), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(both, module(x, frames), atol=1e-3)     # the flows do change the result
    official = module(x, frames, flows)                                # the default: the official tiling
    assert not torch.allclose(official, both, atol=1e-4), "frame 2 of each video warps the other reference"
    torch.testing.assert_close(module(x[:frames], frames, flows, pairing="official"),
                               module(x[:frames], frames, flows, pairing="per video"), atol=0, rtol=0)


@pytest.mark.parametrize("frames, expected", [
    (4, [[0, 1, 0], [1, 0, 1]]),              # F - 1 odd (16 frames too): each branch alternates, own first
    (5, [[0, 1, 0, 1], [0, 1, 0, 1]]),        # F - 1 even: both branches take the same references
])
def test_official_pairing_warps_the_references_the_tiling_names(frames, expected):
    """Warped frame j of video b carries the reference features of video (b (F-1) + j) mod B (``.repeat``)."""
    from imagedynamics.models.motion_i2v.temporal import splat_reference

    h = w = 3
    tokens = torch.randn(2 * frames, h * w, 4)
    tokens[0], tokens[frames] = 1.0, 2.0                        # reference features of video 0 and video 1
    zero = torch.zeros(frames, 2, h, w)
    warped = splat_reference(tokens, zero, frames, (h, w))       # [B, F-1, HW, C]; zero flow keeps every value
    names = warped[..., 0, 0].round().long() - 1
    assert names.tolist() == expected
    assert splat_reference(tokens, zero, frames, (h, w), "per video")[..., 0, 0].round().long().sub(1).tolist() \
        == [[0] * (frames - 1), [1] * (frames - 1)]
    # a batch ordered [cond, uncond] (ComfyUI may order it so) is paired as the official [uncond, cond] batch
    from imagedynamics.models.motion_i2v.temporal import reference_pairing

    swapped = reference_pairing(2, frames, order=[1, 0])
    assert swapped.tolist() == [[1 - v for v in row] for row in expected[::-1]]


def test_fresh_temporal_module_is_identity_and_checks_inputs():
    module = TemporalModule(16, num_attention_heads=4, norm_num_groups=4)
    x = torch.randn(6, 16, 3, 3)
    assert torch.equal(module(x, 3), x)                         # zero-initialised proj_out
    with pytest.raises(ValueError, match="whole number"):
        module(x, 4)
    with pytest.raises(ValueError, match="positions"):
        module(torch.randn(17, 16, 2, 2), 17, torch.zeros(17, 2, 2, 2))   # 33 interleaved tokens > 32


# --------------------------------------------------------------------------------------------- flows and samplers


def test_flow_normalisation_matches_the_demo_convention():
    flow = torch.zeros(1, 2, 4, 8)
    flow[0, 0] = 8.0                      # a full width to the right
    flow[0, 1] = -2.0                     # half the height up
    values = C.normalise_flow(flow)
    assert values[0, 0].unique().tolist() == [1.0]
    assert values[0, 1].unique().tolist() == [0.25]
    torch.testing.assert_close(C.denormalise_flow(values), flow)
    assert C.denormalise_flow(torch.full((2, 4, 8), 3.0))[0, 0, 0].item() == 8.0   # clamped to one frame
    assert C.STRIDES == tuple(8 * i for i in range(1, 16))
    scheduler = C.make_scheduler()
    torch.testing.assert_close(scheduler.betas[[0, -1]], torch.tensor([0.00085, 0.012]))
    scheduler.set_timesteps(25)
    assert scheduler.timesteps[0].item() == 961                 # "leading" spacing with steps_offset 1


@pytest.fixture(scope="module")
def tiny_stage1():
    torch.manual_seed(0)
    unet = MotionI2VUNet3D(tiny_config("stage1")).eval()
    vae = build_flow_vae(tiny_config("flow_vae")).eval()
    for module in unet.modules():                               # make the temporal modules active
        if isinstance(module, TemporalModule):
            torch.nn.init.normal_(module.temporal_transformer.proj_out.weight, std=0.02)
    return unet, vae


def test_stage1_sampler_end_to_end_with_brush_and_controlnet(tiny_stage1):
    unet, vae = tiny_stage1
    controlnet = MotionI2VControlNet.from_unet(unet).eval()
    torch.nn.init.normal_(controlnet.controlnet_cond_embedding.layers[2].weight, std=0.05)
    for conv in list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block]:
        torch.nn.init.normal_(conv.weight, std=0.05)
    n, height, width = 4, 32, 48
    image = torch.randn(1, 4, height // 8, width // 8)
    cond, uncond = torch.randn(1, 3, 16), torch.randn(1, 3, 16)
    static = torch.zeros(height, width)
    static[:, :16] = 1                                           # left third stays still
    sparse = torch.zeros(n, 2, height, width)
    mask = torch.zeros(n, 1, height, width)
    sparse[:, 0, 8:16, 24:32] = 6.0
    mask[:, :, 8:16, 24:32] = 1
    control = make_control(vae, sparse, mask, static, generator=torch.Generator().manual_seed(0))
    assert control.shape == (n, 5, height // 8, width // 8)
    assert control[:, 4, :, :2].eq(1).all()                      # still region = "given, zero motion"
    strides = C.STRIDES[:n]
    kwargs = dict(strides=strides, num_steps=2, guidance_scale=7.0, static_mask=static)
    steps = []
    flows = sample_stage1(unet, vae, image, cond, uncond, controlnet=controlnet, control=control,
                          generator=torch.Generator().manual_seed(1),
                          progress=lambda done, total: steps.append((done, total)), **kwargs)
    assert flows.shape == (n, 2, height, width) and flows.dtype == torch.float32
    assert torch.isfinite(flows).all()
    assert flows[:, :, :, :16].eq(0).all()                       # exactly zero under the brush
    assert flows[:, :, :, 16:].abs().amax() > 0
    assert flows[:, 0].abs().max() <= width and flows[:, 1].abs().max() <= height
    assert steps == [(1, 2), (2, 2)]
    plain = sample_stage1(unet, vae, image, cond, uncond, generator=torch.Generator().manual_seed(1), **kwargs)
    assert not torch.allclose(plain, flows), "the ControlNet residuals must reach the U-Net"


def test_fresh_controlnet_leaves_the_unet_unchanged_and_strides_matter(tiny_stage1):
    unet, _ = tiny_stage1
    controlnet = MotionI2VControlNet.from_unet(unet).eval()     # zero convolutions: no effect yet
    x, ctx = torch.randn(1, 8, 3, 4, 4), torch.randn(1, 3, 16)
    with torch.no_grad():
        base = unet(x, 500, ctx, strides=[8, 16, 24])
        residuals = controlnet(x, 500, ctx, [8, 16, 24], torch.randn(1, 5, 3, 4, 4))
        assert torch.equal(unet(x, 500, ctx, strides=[8, 16, 24], control=residuals), base)
        assert not torch.allclose(unet(x, 500, ctx, strides=[64, 64, 64]), base)
    with pytest.raises(ValueError, match="strides"):
        unet(x, 500, ctx)


def test_flow_vae_round_trip_shapes_and_scale(tiny_stage1):
    _, vae = tiny_stage1
    flow = torch.randn(2, 2, 16, 24)
    z = encode_flow(vae, flow, sample=False)
    assert z.shape == (2, 4, 2, 3)
    torch.testing.assert_close(encode_flow(vae, flow, scale=1.0, sample=False) * C.LATENT_SCALE, z)
    assert decode_flow(vae, z).shape == (2, 2, 16, 24)


def test_stage2_reference_sampler_keeps_the_reference_frame():
    torch.manual_seed(0)
    unet = MotionI2VUNet3D(stage2_unet_config(tiny_config("stage1"))).eval()
    modules = Stage2MotionModules.from_unet(unet)
    assert set(modules.state_dict()) == {k for k in unet.state_dict() if ".motion_modules." in k}
    reference = torch.randn(1, 4, 4, 4)
    flows = with_reference_frame(torch.randn(3, 2, 32, 32) * 2)
    static = torch.zeros(32, 32)
    static[:16] = 1
    latents = sample_stage2(unet, reference, flows, torch.randn(1, 3, 16), torch.randn(1, 3, 16), num_steps=2,
                            static_mask=static, generator=torch.Generator().manual_seed(0))
    assert latents.shape == (4, 4, 4, 4)
    assert torch.equal(latents[0], reference[0])
    assert torch.isfinite(latents).all()
    with pytest.raises(ValueError, match="no frame-stride"):
        unet(torch.randn(1, 4, 2, 4, 4), 10, torch.randn(1, 3, 16), strides=[8, 16])


def test_library_schedule_is_linear_in_beta_at_every_step():
    """Both stages' DDIM: alphas_cumprod = prod(1 - beta), beta linear 0.00085..0.012 (not SD's scaled_linear)."""
    betas = torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64)
    formula = torch.cumprod(1 - betas, dim=0)
    scheduler = C.make_scheduler()
    assert (scheduler.alphas_cumprod.double() - formula).abs().max() < 1e-6
    assert torch.equal(C.training_betas(), scheduler.betas)
    assert abs(float(formula[501]) - 0.160) < 1e-3                        # SD 1.5's own: 0.275


def test_stage2_embeds_the_reference_frame_at_t_1_at_every_step():
    torch.manual_seed(0)
    unet = MotionI2VUNet3D(stage2_unet_config(tiny_config("stage1"))).eval()
    frames, steps = 3, 4
    seen = []
    handle = unet.time_proj.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    try:
        sample_stage2(unet, torch.randn(1, 4, 4, 4), with_reference_frame(torch.randn(frames - 1, 2, 32, 32)),
                      torch.randn(1, 3, 16), torch.randn(1, 3, 16), num_steps=steps,
                      generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    scheduler = C.make_scheduler()
    scheduler.set_timesteps(steps)
    assert len(seen) == steps
    for t, timesteps in zip(scheduler.timesteps.tolist(), seen):
        per_frame = timesteps.reshape(2, frames)                        # [uncond, cond] x frames
        assert per_frame[:, 0].eq(1).all()                              # the clean reference: t = 1
        assert per_frame[:, 1:].eq(t).all()                             # the noisy frames: the step's t


def test_demo_rasterisation_of_hand_written_tracks():
    """Patches [int(y)-u, int(y)+u) x [int(x)-u, int(x+u)), p(t) - p(0) in them, the later track on top."""
    from imagedynamics.models.motion_i2v.sparse_control import demo_flow_unit, demo_sparse_flow
    from imagedynamics.ops.trajectories import Tracks

    points = torch.tensor([[[5.9, 4.2], [9.0, 7.5]],                 # frame 0: starts of track A and track B
                           [[7.9, 5.2], [8.0, 7.5]],
                           [[9.9, 6.2], [7.0, 9.5]]])
    flows, mask = demo_sparse_flow(Tracks(points), 12, 16, num_frames=3, unit=3)
    expected_flow = torch.zeros(3, 2, 12, 16)
    expected_mask = torch.zeros(3, 1, 12, 16)
    # track A: centre (int 5.9, int 4.2) = (5, 4): rows 1..6, columns 2..7 (int(5.9 + 3) = 8, exclusive)
    expected_mask[:, :, 1:7, 2:8] = 1
    expected_flow[1, :, 1:7, 2:8] = torch.tensor([2.0, 1.0])[:, None, None]
    expected_flow[2, :, 1:7, 2:8] = torch.tensor([4.0, 2.0])[:, None, None]
    # track B: centre (9, 7): rows 4..9, columns 6..11; drawn after A, so it wins where they overlap
    expected_mask[:, :, 4:10, 6:12] = 1
    expected_flow[1, :, 4:10, 6:12] = torch.tensor([-1.0, 0.0])[:, None, None]
    expected_flow[2, :, 4:10, 6:12] = torch.tensor([-2.0, 2.0])[:, None, None]
    torch.testing.assert_close(mask, expected_mask, rtol=0, atol=0)
    torch.testing.assert_close(flows, expected_flow, rtol=0, atol=1e-6)
    assert demo_flow_unit(320, 512) == 64                            # the demo's 128 x 128 px patches
    # one clicked point: the demo's track to (x + 1, y + 1)
    still, _ = demo_sparse_flow(Tracks(torch.tensor([[[6.0, 6.0]]])), 12, 16, num_frames=2, unit=1)
    assert still[1, :, 6, 6].tolist() == [1.0, 1.0] and still[1].abs().sum() == 2 * 4   # a 2 x 2 px patch


def test_empty_demo_control_is_no_motion_nowhere_given(tiny_stage1):
    """What MotionI2VPredictFlow feeds the ControlNet when nothing is drawn (empty_control): flow 0.5, mask 0."""
    from imagedynamics.models.motion_i2v.flow_vae import encode_normalised

    _, vae = tiny_stage1
    control = make_control(vae, torch.zeros(2, 2, 16, 16), torch.zeros(2, 1, 16, 16), sample=False)
    expected = encode_normalised(vae, torch.full((2, 2, 16, 16), 0.5), scale=1.0, sample=False)
    torch.testing.assert_close(control[:, :4], expected.float())
    assert control[:, 4].eq(0).all()
