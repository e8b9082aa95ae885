"""LongVideoReschedule / LongVideoSchedule in a real ComfyUI with a tiny video model loaded by the core UNETLoader.

The model is a tiny Cosmos-Predict2 (tiny_long_video.py: a real ComfyUI video model class, 5-D latents,
rectified-flow sampling); conditioning comes from core nodes without a text encoder (LotusConditioning,
ConditioningZeroOut). Outputs are read back from SaveLatent files. The denoiser-evaluation counts are checked
in a subprocess that runs the node's sampling in-process with a counting hook (long_video_inprocess.py).
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from tiny_long_video import TINY_COSMOS, make_tiny_cosmos

HERE = pathlib.Path(__file__).resolve().parent
L, STEPS, K, GAMMA = 4, 8, 3, 0.75    # latent frames per segment (length 13 -> 4), steps, segments: M = 6
SEED = 123


def base_graph() -> dict:
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": TINY_COSMOS, "weight_dtype": "default"}},
        "2": {"class_type": "LotusConditioning", "inputs": {}},
        "3": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["2", 0]}},
        "4": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 16, "height": 16, "length": 13,
                                                                  "batch_size": 1}},
    }


def reschedule(**overrides) -> dict:
    inputs = {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent": ["4", 0], "seed": SEED,
              "steps": STEPS, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple", "num_segments": K,
              "gamma": GAMMA, "omega": 0.2, "overlap": 0, "crossfade": True, "noise_prior": "image", "shuffle": "frame"}
    inputs.update(overrides)
    return {"class_type": "LongVideoReschedule", "inputs": inputs}


def save(source: str, name: str) -> dict:
    return {"class_type": "SaveLatent", "inputs": {"samples": [source, 0], "filename_prefix": f"long_video_test/{name}"}}


VARIANTS = {
    "base": {},
    "overlap": {"overlap": 2, "crossfade": True},
    "gamma_1": {"gamma": 1.0},
    "copies": {"omega": 0.0, "shuffle": "none", "noise_prior": "trajectory"},
    "ancestral": {"sampler_name": "euler_ancestral", "omega": 0.0, "shuffle": "none"},
    "fresh_noise": {"noise_prior": "none"},
    "fresh_noise_x5": {"noise_prior": "none", "omega": 1.0},
}


def ensure_model(comfy) -> None:
    path = comfy.base_dir / "models" / "diffusion_models" / TINY_COSMOS
    if not path.exists():
        make_tiny_cosmos(path)


@pytest.fixture(scope="module")
def latents(comfy):
    """One prompt with a KSampler and every LongVideoReschedule variant; their saved latents by name."""
    ensure_model(comfy)
    prompt = base_graph()
    prompt["10"] = {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                         "latent_image": ["4", 0], "seed": SEED, "steps": STEPS,
                                                         "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple",
                                                         "denoise": 1.0}}
    prompt["11"] = save("10", "ksampler")
    names = {"11": "ksampler"}
    for i, (name, overrides) in enumerate(VARIANTS.items()):
        node, out = str(20 + 2 * i), str(21 + 2 * i)
        prompt[node] = reschedule(**overrides)
        prompt[out] = save(node, name)
        names[out] = name
    prompt["80"] = reschedule(image_latent=["10", 0])        # the image prior on KSampler's result
    prompt["81"] = save("80", "image_latent")
    names["81"] = "image_latent"
    prompt["90"] = {"class_type": "LongVideoSchedule", "inputs": {
        "num_segments": 1, "total_frames": 6, "gamma": GAMMA, "omega": 0.2, "overlap": 1, "crossfade": True,
        "noise_prior": "trajectory", "shuffle": "frame"}}
    prompt["91"] = reschedule(long_schedule=["90", 0])
    prompt["92"] = save("91", "schedule")
    names["92"] = "schedule"
    outputs = comfy.run(prompt)
    result = {}
    for node, name in names.items():
        item = outputs[node]["latents"][0]
        result[name] = load_file(str(comfy.output_path(item)))["latent_tensor"]
    return result


def segments(video: torch.Tensor, length: int = L) -> list[torch.Tensor]:
    return list(video.split(length, dim=2))


def mean_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


def test_long_latent_is_k_segments_along_time_and_segment_one_is_ksamplers(latents):
    video = latents["base"]
    assert video.shape == (1, 16, K * L, 2, 2)
    assert torch.isfinite(video).all()
    # Segment 1 is sampled exactly as the core KSampler samples the same latent with the same seed and settings.
    assert latents["ksampler"].shape == (1, 16, L, 2, 2)
    assert torch.equal(segments(video)[0], latents["ksampler"])


def test_segments_differ_when_omega_is_positive_and_more_with_larger_omega(latents):
    parts = segments(latents["base"])
    scale = float(parts[0].abs().mean())
    to_first = [mean_abs(p, parts[0]) for p in parts[1:]]
    between = [mean_abs(parts[i], parts[j]) for i in range(1, K) for j in range(i + 1, K)]
    assert min(to_first) > 1e-3 * scale, to_first           # float round-off is ~1e-7 of the scale
    assert min(between) > 1e-3 * scale, between
    # Without a prior the bank noise is omega * eps (the later segments would be equal for omega = 0): five
    # times omega, about five times the spread between them.
    small, large = segments(latents["fresh_noise"]), segments(latents["fresh_noise_x5"])
    spread_small = sum(mean_abs(small[i], small[j]) for i in range(1, K) for j in range(i + 1, K))
    spread_large = sum(mean_abs(large[i], large[j]) for i in range(1, K) for j in range(i + 1, K))
    assert 3.0 * spread_small < spread_large < 7.0 * spread_small, (spread_small, spread_large)
    assert torch.equal(large[0], parts[0]) and torch.equal(small[0], parts[0])   # segment 1 is untouched


def test_gamma_one_gives_identical_segments(latents):
    parts = segments(latents["gamma_1"])
    assert all(torch.equal(p, latents["ksampler"]) for p in parts)


def test_restart_reproduces_segment_one_when_the_bank_returns_its_own_noise(latents):
    """omega 0, no shuffle, trajectory prior, deterministic sampler: every restart state is segment 1's z_M."""
    parts = segments(latents["copies"])
    scale = float(parts[0].abs().mean())
    base = segments(latents["base"])
    for part in parts[1:]:
        assert mean_abs(part, parts[0]) < 1e-5 * scale
        assert mean_abs(part, parts[0]) < 1e-3 * mean_abs(base[1], base[0])


def test_stochastic_sampler_takes_its_step_noise_from_the_bank(latents):
    """omega 0 and no shuffle: all later segments get the same bank noise, also for euler_ancestral's steps."""
    parts = segments(latents["ancestral"])
    assert torch.equal(parts[1], parts[2])
    assert mean_abs(parts[1], parts[0]) > 1e-3 * float(parts[0].abs().mean())


def test_overlap_cross_fades_the_same_segments_and_keeps_seams_within_2x(latents):
    o = 2
    video, parts = latents["overlap"], segments(latents["base"])
    assert video.shape[2] == K * L - (K - 1) * o
    # The joined video, built independently from the segments of the run without overlap (same seed).
    w = torch.tensor([(j + 1) / (o + 1) for j in range(o)]).reshape(1, 1, o, 1, 1)
    pieces, tail = [], None
    for k, part in enumerate(parts):
        body = part
        if tail is not None:                                  # dissolve the previous tail into this head
            pieces.append(tail * (1 - w) + part[:, :, :o] * w)
            body = part[:, :, o:]
        pieces.append(body if k == len(parts) - 1 else body[:, :, :-o])
        tail = part[:, :, -o:]
    expected = torch.cat(pieces, dim=2)
    assert torch.allclose(video, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().mean()))
    # Seams: every transition in a seam zone (the o + 1 transitions of a dissolve) within 2x of the mean
    # transition elsewhere.
    change = (video[:, :, 1:] - video[:, :, :-1]).abs().mean(dim=(0, 1, 3, 4))
    zone = torch.zeros(len(change), dtype=torch.bool)
    for k in range(1, K):
        start = k * (L - o)                               # first frame of the dissolve into segment k
        zone[start - 1: start + o] = True
    assert change[zone].max() <= 2.0 * change[~zone].mean(), (change[zone], change[~zone].mean())
    hard = latents["base"]
    hard_change = (hard[:, :, 1:] - hard[:, :, :-1]).abs().mean(dim=(0, 1, 3, 4))
    seams = torch.tensor([k * L - 1 for k in range(1, K)])
    inside = torch.ones(len(hard_change), dtype=torch.bool)
    inside[seams] = False
    assert hard_change[seams].mean() <= 2.0 * hard_change[inside].mean()


def test_image_latent_feeds_the_noise_prior(latents):
    """Unconnected, the image prior uses segment 1's result; connecting that same latent changes nothing."""
    assert torch.equal(latents["image_latent"], latents["base"])


def test_image_latent_of_another_size_gives_clear_error(run_error, comfy):
    ensure_model(comfy)
    prompt = base_graph()
    prompt["7"] = {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 32, "height": 32, "length": 1,
                                                                       "batch_size": 1}}
    prompt["5"] = reschedule(image_latent=["7", 0])
    prompt["6"] = save("5", "bad")
    message = run_error(prompt)
    assert "LongVideoReschedule" in message and "'image_latent'" in message, message


def test_schedule_node_drives_the_reschedule_with_total_frames(latents):
    video = latents["schedule"]
    assert video.shape == (1, 16, 6, 2, 2)                   # 2 segments of 4 with 1 shared frame = 7, cut to 6
    assert torch.isfinite(video).all()
    assert torch.equal(video[:, :, :L - 1], latents["ksampler"][:, :, :L - 1])


@pytest.mark.parametrize("case, overrides, expected", [
    ("gamma out of range", {"gamma": 1.5}, ["LongVideoReschedule", "gamma"]),
    ("overlap too long", {"overlap": L}, ["LongVideoReschedule", "'overlap'", "fewer frames"]),
    ("no restartable sampler", {"sampler_name": "dpm_adaptive"}, ["LongVideoReschedule", "'sampler_name'"]),
])
def test_bad_settings_give_clear_errors(comfy, run_error, case, overrides, expected):
    ensure_model(comfy)
    prompt = base_graph()
    prompt["5"] = reschedule(**overrides)
    prompt["6"] = save("5", "bad")
    message = run_error(prompt)
    for text in expected:
        assert text in message, (case, message)


def test_latent_of_wrong_rank_gives_clear_error(comfy, run_error):
    ensure_model(comfy)
    prompt = base_graph()
    prompt["4"] = {"class_type": "EmptyLatentHunyuan3Dv2", "inputs": {"resolution": 8, "batch_size": 1}}
    prompt["5"] = reschedule()
    prompt["6"] = save("5", "bad")
    message = run_error(prompt)
    assert "LongVideoReschedule" in message and "'latent'" in message and "3-D" in message, message


def test_denoiser_evaluations_follow_the_formula(tmp_path):
    """In-process counts (ComfyUI's post-CFG hook) for the tiny video model and a tiny 4-D image model."""
    model_file = tmp_path / TINY_COSMOS
    make_tiny_cosmos(model_file)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(HERE / "long_video_inprocess.py"), str(model_file)], env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])

    def formula(steps: int, gamma: float, k: int, prior: str) -> int:
        m = math.ceil(gamma * steps - 1e-9)
        late = steps - m
        return steps + (k - 1) * late + (late if prior == "image" and k > 1 else 0)

    defaults = {"gamma": 0.8, "num_segments": 5, "steps": 10, "noise_prior": "image"}
    for group, frames_dim, frames in (("video", 2, 3), ("image", 0, 4)):
        for name, case in result[group].items():
            s = {**defaults, **case["settings"]}
            assert case["calls"] == formula(s["steps"], s["gamma"], s["num_segments"], s["noise_prior"]), (group, name)
            assert case["shape"][frames_dim] == s["num_segments"] * frames, (group, name)
    # K = 5, gamma = 0.8, image prior: 10 + 4 * 2 + 2 = 20 evaluations instead of 50 for five KSampler runs.
    assert result["video"]["image_prior"]["calls"] == 20
    # 4-D image latents: frames are the batch; the degenerate restart reproduces segment 1 in eps-prediction too.
    copies = result["image"]["copies"]
    assert max(copies["max_diff_to_first"]) < 1e-5 * copies["segment_std"][0]
    assert min(result["image"]["image_prior"]["mean_diff_to_first"]) > 1e-3 * copies["segment_std"][0]
    # An interrupt raised during sampling stops the run at once.
    assert result["interrupt"]["raised"] == "InterruptProcessingException"
    assert result["interrupt"]["calls"] == 12
