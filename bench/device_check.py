"""Device check: every trainer phase and every sampler for a few steps on a CUDA device; throughput (samples/s),
peak memory, and whether bf16 matches fp32.

Run on a machine with a GPU::

    .venv/bin/python bench/device_check.py [--presets small,full] [--steps 6] [--json out.json]
    .venv/bin/python bench/device_check.py --cpu      # the same code on the CPU, tiny presets, seconds (the tests)

Trainers (``bench/train_workloads.py``: the trainers' own networks and losses at each preset's shapes, random
data): every phase runs ``--steps`` optimisation steps through ``train.common.train_phase`` with accelerate's bf16
mixed precision, EMA, warm-up + cosine schedule and the preset's per-process batch (the real training loop);
throughput is samples per second over the steps after the first two; peak memory is
``torch.cuda.max_memory_allocated`` during the phase. bf16 vs fp32: the same batch and random draws, the loss and
the gradients computed in fp32 and under bf16 autocast; reported: the loss's relative difference and the cosine
between the two gradients ("match" when under 2 % and over 0.99).

Samplers (random weights at the preset's size; the same seed in fp32 and under bf16 autocast; "match" when the
output's relative RMS difference is under 5 %): GID ``sample_spectrum`` (spectra/s), LVMM
``sample_latent_motion`` + ``render_with_lvmm`` (latent motions/s and rendered frames/s), LVMM phased long-video
sampling, the learned renderer ``render_frames_learned`` (frames/s at 512 x 512; the ResNet-34 renderer too),
the pixel renderer ``ops.render.render_frames`` (fp32, frames/s), Motion-I2V stage 1 ``sample_stage1`` (the
released architecture; flows/s).

Presets: ``small`` and ``full`` = GID small / full, LVMM small / paper, renderer small / default + resnet34;
``--cpu`` uses the tiny ones. Nothing is downloaded; no checkpoint is needed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import pathlib
import platform
import sys
import tempfile
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

PRESETS = {"tiny": {"gid": ("tiny",), "lvmm": ("tiny",), "renderer": ("tiny",), "refiner": ("tiny",)},
           "small": {"gid": ("small",), "lvmm": ("small",), "renderer": ("small",), "refiner": ("small",)},
           "full": {"gid": ("full",), "lvmm": ("paper",), "renderer": ("default", "resnet34"),
                    "refiner": ("pix2pix",)}}
LOSS_TOLERANCE, GRAD_COSINE, SAMPLE_TOLERANCE = 0.02, 0.99, 0.05


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        import gc

        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def _bf16(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16)


def relative_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    if a.is_complex() or b.is_complex():
        a, b = torch.view_as_real(a.cfloat()).flatten().double(), torch.view_as_real(b.cfloat()).flatten().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


class _Samples(torch.utils.data.Dataset):
    """n random samples of a workload (drawn once, on the CPU)."""

    def __init__(self, workload, n: int):
        batch = workload.batch(n, "cpu", torch.Generator().manual_seed(1))
        self.items = [tuple(t[i] for t in batch) for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


# ============================================================================================ trainers


def check_agreement(workload, device: torch.device) -> dict:
    """Loss and gradients of one batch in fp32 and under bf16 autocast (same random draws)."""
    torch.manual_seed(0)
    model, params, loss_fn = workload.build(device)
    model.train()
    batch = workload.batch(min(workload.batch_size, 2), device, torch.Generator().manual_seed(2))
    results = []
    for context in (contextlib.nullcontext(), _bf16(device)):
        torch.manual_seed(3)
        with context:
            loss, _ = loss_fn(model, batch)
        loss.float().backward()
        grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().float() for p in params])
        results.append((float(loss.detach()), grads))
        model.zero_grad(set_to_none=True)
    (l32, g32), (l16, g16) = results
    loss_rel = abs(l16 - l32) / max(abs(l32), 1e-12)
    cosine = float(torch.nn.functional.cosine_similarity(g16, g32, dim=0))
    return {"loss_fp32": l32, "loss_bf16": l16, "loss_relative": loss_rel, "grad_cosine": cosine,
            "bf16_matches": loss_rel < LOSS_TOLERANCE and cosine > GRAD_COSINE}


def check_training(workload, accelerator, steps: int) -> dict:
    """``steps`` optimisation steps of the workload through train_phase (bf16 autocast, EMA, schedule)."""
    from imagedynamics.train.common import CSVLog, Phase, Recipe, ResumableLoader, train_phase

    device = accelerator.device
    torch.manual_seed(0)
    model, params, loss_fn = workload.build(device)
    batch = workload.batch_size
    data = _Samples(workload, batch * min(steps, 4))
    stamps = []
    recipe = Recipe("cosine", warmup_steps=2, ema_decay=0.999)
    phase = Phase(workload.phase, model, params, ResumableLoader(data, batch, seed=0), loss_fn, steps, 1e-4,
                  recipe=recipe)
    _reset_peak(device)
    with tempfile.TemporaryDirectory() as work:
        log = CSVLog(pathlib.Path(work) / "log.csv", ("phase", "step", "loss", "lr", "elapsed"))

        def progress(done, total):
            _sync(device)
            stamps.append(time.perf_counter())

        start = time.perf_counter()
        train_phase(accelerator, phase, pathlib.Path(work), log, save_every=10 ** 9, log_every=10 ** 9, seed=0,
                    progress=progress)
    del model, params, phase
    accelerator.free_memory()  # drop accelerate's references to the prepared model and optimiser
    timed = stamps[2:] if len(stamps) > 3 else stamps
    seconds = (timed[-1] - timed[0]) / max(len(timed) - 1, 1) if len(timed) > 1 else stamps[-1] - start
    return {"batch": batch, "steps": steps, "seconds_per_step": seconds, "samples_per_s": batch / seconds,
            "peak_gib": _peak_gib(device)}


# ============================================================================================ samplers


def _timed(device, fn):
    _reset_peak(device)
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start, _peak_gib(device)


def _both(device, fn):
    """fn() in fp32 and under bf16 autocast; returns (fp32 output, seconds fp32, seconds bf16, peak, rel. RMS)."""
    with torch.no_grad():
        fn()  # warm-up (kernels, caches)
        ref, t32, peak = _timed(device, fn)
        with _bf16(device):
            low, t16, _ = _timed(device, fn)
    return ref, t32, t16, peak, relative_rms(low, ref)


def _row(name: str, unit: str, count: int, t32: float, t16: float, peak, rel: float) -> dict:
    return {"sampler": name, "unit": unit, "per_s_fp32": count / t32, "per_s_bf16": count / t16, "peak_gib": peak,
            "relative_rms": rel, "bf16_matches": rel < SAMPLE_TOLERANCE}


def _gid(preset: str, picture: torch.Tensor, steps: int) -> list[dict]:
    from imagedynamics.models.gid.config import GIDConfig
    from imagedynamics.models.gid.model import GIDModel
    from imagedynamics.models.gid.sampler import sample_spectrum

    device = picture.device
    model = GIDModel(GIDConfig.preset(preset)).to(device).eval()
    _, t32, t16, peak, rel = _both(device, lambda: sample_spectrum(model, picture, num_steps=steps, seed=0))
    return [_row(f"gid/{preset} sample_spectrum ({steps} DDIM steps)", "spectra", 1, t32, t16, peak, rel)]


def _lvmm(preset: str, picture: torch.Tensor, steps: int) -> list[dict]:
    from imagedynamics.models.long_video import RescheduleConfig
    from imagedynamics.models.lvmm import LVMM, LVMMConfig
    from imagedynamics.models.lvmm.sampler import render_with_lvmm, sample_latent_motion

    device = picture.device
    model = LVMM(LVMMConfig.preset(preset)).to(device).eval()
    rows = []
    _, t32, t16, peak, rel = _both(device, lambda: sample_latent_motion(model, picture, steps=steps,
                                                                        seed=0).displacement)
    rows.append(_row(f"lvmm/{preset} sample_latent_motion ({steps} steps)", "motions", 1, t32, t16, peak, rel))
    sampled = sample_latent_motion(model, picture, steps=steps, seed=0)
    _, t32, t16, peak, rel = _both(device, lambda: render_with_lvmm(model, picture, sampled))
    rows.append(_row(f"lvmm/{preset} render_with_lvmm", "frames", sampled.num_frames, t32, t16, peak, rel))
    segments = RescheduleConfig(num_segments=3)
    _, t32, t16, peak, rel = _both(device, lambda: sample_latent_motion(
        model, picture, num_frames=3 * model.config.num_frames + 1, steps=steps, seed=0,
        long_video=segments).displacement)
    rows.append(_row(f"lvmm/{preset} phased long video (3 segments)", "motions", 1, t32, t16, peak, rel))
    return rows


def _renderers(presets: tuple[str, ...], picture: torch.Tensor, frames: int) -> list[dict]:
    from imagedynamics.models.renderer import ImageRenderer, ImageRendererConfig, render_frames_learned
    from imagedynamics.ops.render import motion_magnitude_metric, render_frames

    device, side = picture.device, picture.shape[-1]
    yy = torch.linspace(-1, 1, side, device=device).view(1, 1, side, 1)
    wave = torch.sin(torch.linspace(0, 2 * math.pi, frames, device=device)).view(frames, 1, 1, 1)
    displacement = torch.cat([4 * wave * (1 - yy.abs()).expand(frames, 1, side, side),
                              torch.zeros(frames, 1, side, side, device=device)], 1)
    metric = motion_magnitude_metric(displacement)
    rows = []
    for name in presets:
        model = ImageRenderer(ImageRendererConfig.preset(name)).to(device).eval()
        torch.nn.init.normal_(model.out.weight, std=1e-2)  # a non-zero residual, as after training
        _, t32, t16, peak, rel = _both(device, lambda m=model: render_frames_learned(m, picture, displacement,
                                                                                     metric))
        rows.append(_row(f"renderer/{name} render_frames_learned ({side}^2)", "frames", frames, t32, t16, peak,
                         rel))
        del model
    with torch.no_grad():
        _, t32, peak = _timed(device, lambda: render_frames(picture, displacement, metric))
    rows.append({"sampler": f"pixel renderer render_frames ({side}^2, fp32)", "unit": "frames",
                 "per_s_fp32": frames / t32, "per_s_bf16": None, "peak_gib": peak, "relative_rms": None,
                 "bf16_matches": None})
    return rows


def sampler_checks(size: str, device: torch.device, steps: int) -> list[dict]:
    """Every sampler at ``size`` (tiny / small / full); each model is freed before the next is built."""
    side = {"tiny": 64, "small": 256, "full": 512}[size]
    torch.manual_seed(0)
    picture = torch.rand(1, 3, side, side, device=device)
    return [*_gid(size, picture, steps),
            *_lvmm({"tiny": "tiny", "small": "small", "full": "paper"}[size], picture, steps),
            *_renderers({"tiny": ("tiny",), "small": ("small",), "full": ("default", "resnet34")}[size], picture,
                        {"tiny": 8, "small": 24, "full": 48}[size]),
            *_motion_i2v(size, device, steps)]


def _motion_i2v(size: str, device: torch.device, steps: int) -> list[dict]:
    from imagedynamics.models.motion_i2v.config import full_config, tiny_config
    from imagedynamics.models.motion_i2v.model import build_component
    from imagedynamics.models.motion_i2v.sampler import sample_stage1

    config = tiny_config if size == "tiny" else full_config
    torch.manual_seed(0)
    unet = build_component("stage1", config("stage1")).to(device).eval()
    vae = build_component("flow_vae", config("flow_vae")).to(device).eval()
    context = config("stage1")["cross_attention_dim"]
    h, w = (4, 4) if size == "tiny" else (40, 64)
    strides = [8, 16] if size == "tiny" else [8 * (i + 1) for i in range(15)]
    latent = torch.randn(1, 4, h, w, device=device)
    cond, uncond = torch.randn(1, 77, context, device=device), torch.randn(1, 77, context, device=device)

    def run():
        return sample_stage1(unet, vae, latent, cond, uncond, strides=strides, num_steps=steps,
                             generator=torch.Generator(device).manual_seed(0))

    _, t32, t16, peak, rel = _both(device, run)
    return [{"sampler": f"motion_i2v/{'tiny' if size == 'tiny' else 'released'} sample_stage1 ({steps} steps, "
                        f"{len(strides)} flows)", "unit": "flows", "per_s_fp32": len(strides) / t32,
             "per_s_bf16": len(strides) / t16, "peak_gib": peak, "relative_rms": rel,
             "bf16_matches": rel < SAMPLE_TOLERANCE}]


# ============================================================================================ main


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU with the tiny presets (seconds)")
    parser.add_argument("--presets", default=None, help="comma-separated: small, full (default both; tiny with --cpu)")
    parser.add_argument("--steps", type=int, default=None, help="training and sampling steps (default 6; --cpu 3)")
    parser.add_argument("--skip-samplers", action="store_true")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --cpu to exercise the check on the CPU")
    steps = args.steps or (3 if args.cpu else 6)
    sizes = (args.presets or ("tiny" if args.cpu else "small,full")).split(",")
    from accelerate import Accelerator
    from train_workloads import workloads

    from imagedynamics.train.common import seed_everything

    accelerator = Accelerator(mixed_precision="bf16", cpu=args.cpu)
    device = accelerator.device
    seed_everything(0)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "steps": steps, "trainers": [], "samplers": []}
    print(f"device: {report['device']}, torch {torch.__version__}, {steps} steps")
    for size in sizes:
        for workload in workloads(PRESETS[size]):
            row = {"workload": workload.name, "sample": workload.sample, **check_agreement(workload, device),
                   **check_training(workload, accelerator, steps)}
            report["trainers"].append(row)
            peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f} GiB"
            print(f"  {row['workload']:28s} batch {row['batch']:3d}  {row['samples_per_s']:9.2f} samples/s ({workload.sample})"
                  f"  peak {peak:>10s}  bf16: loss {row['loss_relative']:.2e}, grad cos {row['grad_cosine']:.4f}"
                  f"  {'ok' if row['bf16_matches'] else 'DIFFERS'}", flush=True)
        if not args.skip_samplers:
            for row in sampler_checks(size, device, steps):
                report["samplers"].append(row)
                bf16 = "-" if row["per_s_bf16"] is None else f"{row['per_s_bf16']:.3g}"
                rel = "-" if row["relative_rms"] is None else f"{row['relative_rms']:.2e}"
                print(f"  {row['sampler']:52s} fp32 {row['per_s_fp32']:.3g} {row['unit']}/s, bf16 {bf16}; "
                      f"bf16 vs fp32 {rel}", flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
