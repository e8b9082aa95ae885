"""The LVMM trainer (train/lvmm.py): data helpers, the PSNR filter, resumable four-stage runs, time budgets."""
from __future__ import annotations

import json
import time

import pytest
import torch
from media import clip_path, picture

from imagedynamics.models.lvmm import LVMM, LVMMConfig
from imagedynamics.models.registry import build_from_file
from imagedynamics.ops.warp import backward_warp
from imagedynamics.train.common import default_work_dir, read_log
from imagedynamics.train.lvmm import (
    encode_segments,
    main,
    psnr,
    segments_of,
    synthetic_motion,
    train_tiny_lvmm,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "bikes.mp4").symlink_to(clip_path("bikes"))
    return folder


def test_segments_of_starts_every_n_frames():
    assert segments_of([("a", 10), ("b", 4)], 4, 3) == [("a", 0), ("a", 3)]
    assert segments_of([("a", 5)], 4, 1) == [("a", 0)]


def test_synthetic_motion_returns_its_exact_backward_flow():
    torch.manual_seed(0)
    image = picture("astronaut", long_side=64)[0]
    frame, flow = synthetic_motion(image, magnitude=0.05, flow_size=(64, 64))
    assert frame.shape == (3, 64, 64) and flow.shape == (2, 64, 64)
    assert float(flow.abs().mean()) > 0.3  # it does move
    rebuilt = backward_warp(image[None], flow[None])[0]
    assert torch.allclose(rebuilt[:, 8:-8, 8:-8], frame[:, 8:-8, 8:-8], atol=1e-4)


def test_psnr_filter_drops_segments_the_renderer_cannot_rebuild(tmp_path):
    from accelerate import Accelerator
    from safetensors.torch import save_file

    config = LVMMConfig.preset("tiny")
    model = LVMM(config).eval()  # untrained: R is a backward warp, P's flow is ~0, the VAE a pooling code
    still = (picture("astronaut", long_side=64)[0] * 255).round().to(torch.uint8)
    frames = still.expand(10, -1, -1, -1).clone()
    frames[9] = torch.randint(0, 256, (3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    data = tmp_path / "data"
    data.mkdir()
    save_file({"frames": frames}, str(data / "v00000.safetensors"))
    segments = [("v00000.safetensors", 0), ("v00000.safetensors", 5)]  # frames 0-4 still; 5-9 end in noise
    items, stats = encode_segments(Accelerator(cpu=True), model, data, tmp_path / "latents", segments, config, 20.0)
    assert items == [("z00000.safetensors", 0)]
    assert stats["kept"] == 1 and stats["dropped"] == 1 and stats["std"] > 0
    assert psnr(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)).shape == (1,)


def _pr_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["phase"] == "pr"]


def test_main_runs_all_stages_resumes_and_the_loss_falls(tmp_path, videos):
    out = tmp_path / "model.safetensors"
    work = tmp_path / "work"
    args = ["--videos", str(videos), "--out", str(out), "--work-dir", str(work), "--preset", "tiny",
            "--steps", "40,6,2,6", "--max-frames-per-video", "24", "--start-every", "2", "--aug-prob", "0",
            "--pr-lr", "1e-3", "--batch-size", "4", "--denoiser-batch-size", "4", "--save-every", "10",
            "--log-every", "1000", "--min-psnr", "0"]
    assert main(args + ["--stop-after", "25"]) == 0
    state = json.loads((work / "state.json").read_text())
    assert (state["phase"], state["step"]) == ("pr", 25)
    assert not out.exists()
    assert [int(r["step"]) for r in _pr_rows(read_log(work / "log.csv"))] == list(range(1, 26))

    assert main(args + ["--resume", "--validate-every", "1000", "--validation-video",
                        str(clip_path("carphone_pristine"))]) == 0
    rows = read_log(work / "log.csv")
    steps = {phase: [int(r["step"]) for r in rows if r["phase"] == phase] for phase in ("pr", "vae", "finetune",
                                                                                      "denoiser")}
    assert steps == {"pr": list(range(1, 41)), "vae": list(range(1, 7)), "finetune": [1, 2],
                     "denoiser": list(range(1, 7))}
    losses = [float(r["pixel"]) for r in _pr_rows(rows)]
    assert sum(losses[-10:]) < 0.8 * sum(losses[:10]), losses  # the reconstruction loss falls
    family, meta, model = build_from_file(out)
    state = json.loads((work / "state.json").read_text())
    assert family == "lvmm" and state["phase"] == "done"
    assert model.config.flow_scale == pytest.approx(state["flow_scale"])
    assert model.config.latent_scale == pytest.approx(state["latent_scale"])
    assert model.config.fps == pytest.approx(25.0 / 2)
    assert meta["conventions"]["num_frames"] == 4
    # a validation animation of the held-out clip at the end of every phase run after the resume
    from PIL import Image

    names = sorted(p.name for p in (work / "validation").glob("*.webp"))
    assert names == ["denoiser-0000006.webp", "finetune-0000002.webp", "pr-0000040.webp", "vae-0000006.webp"]
    with Image.open(work / "validation" / "denoiser-0000006.webp") as webp:
        assert webp.n_frames == 5 and webp.size == (2 * 64 + 2, 64)  # real | sampled, K + 1 = 5 frames


def test_command_line_errors(tmp_path, videos):
    base = ["--videos", str(videos), "--out", str(tmp_path / "m.safetensors"), "--preset", "tiny"]
    with pytest.raises(ValueError, match="--steps"):
        main(base + ["--steps", "1,2"])
    with pytest.raises(ValueError, match="is not a directory"):
        main(["--videos", str(tmp_path / "nothing"), "--out", str(tmp_path / "m.safetensors")])


def test_time_budget_ends_the_phases(tmp_path):
    out = tmp_path / "budget.safetensors"
    start = time.monotonic()
    train_tiny_lvmm(out, seconds=4.0, steps="100000,100000,0,100000", max_frames_per_video=12, num_threads=1)
    assert time.monotonic() - start < 40  # four seconds of training plus data, latents and saving
    rows = read_log(default_work_dir(out) / "log.csv")
    assert {r["phase"] for r in rows} == {"pr", "vae", "denoiser"}
    assert max(int(r["step"]) for r in rows) < 1000
    assert build_from_file(out)[0] == "lvmm"


def test_clip_conditioned_training_records_the_encoders_and_uses_the_prompt(tmp_path, videos):
    from tiny_clip import TOKENIZER, make_tiny_clip

    from imagedynamics.models.lvmm import sample_latent_motion
    from imagedynamics.models.lvmm.clip import ClipTextEmbedder, ClipVisionEmbedder, describe_clip_text

    files = make_tiny_clip(tmp_path / "clip")
    (tmp_path / "captions.json").write_text(json.dumps({"bikes": "bikes riding past a tree"}))
    out = tmp_path / "clip_lvmm.safetensors"
    assert main(["--videos", str(videos), "--out", str(out), "--preset", "tiny", "--steps", "4,2,0,6",
                 "--max-frames-per-video", "16", "--start-every", "2", "--batch-size", "4", "--denoiser-batch-size",
                 "4", "--min-psnr", "0", "--log-every", "1000", "--clip-vision", str(files["vision"]),
                 "--clip-vision-config", str(files["vision_config"]), "--text-encoder", str(files["text"]),
                 "--text-encoder-config", str(files["text_config"]), "--tokenizer", str(TOKENIZER),
                 "--captions", str(tmp_path / "captions.json"), "--no-own-tokens"]) == 0
    family, meta, model = build_from_file(out)
    e = model.config.encoder
    assert (e.own_tokens, e.clip_vision_dim, e.clip_text_dim) == (False, 24, 32)
    assert e.clip_text_name == "sd15_text_tiny.safetensors"
    assert e.clip_text_fingerprint == pytest.approx(describe_clip_text(files["text"]).fingerprint)
    shard = next((default_work_dir(out) / "latents").glob("z*.safetensors"))
    from safetensors.torch import load_file

    stored = load_file(str(shard))
    text = ClipTextEmbedder(files["text"], TOKENIZER, files["text_config"])
    assert torch.allclose(stored["clip_text"][0], text.embed(["bikes riding past a tree"])[0], atol=1e-5)
    image = picture("astronaut", long_side=64)
    vision = ClipVisionEmbedder(files["vision"], files["vision_config"]).embed(image)
    motions = [sample_latent_motion(model, image, steps=4, condition={"clip_vision": vision,
                                                                       "clip_text": text.embed([p])}).displacement
               for p in ("bikes riding past a tree", "bikes riding past a tree", "water")]
    assert torch.equal(motions[0], motions[1]) and not torch.allclose(motions[0], motions[2])
    with pytest.raises(ValueError, match="pass clip_vision"):
        sample_latent_motion(model, image, steps=2)
