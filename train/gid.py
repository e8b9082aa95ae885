"""Train a GID motion prior from a folder of videos: one command, resumable, single device or many GPUs.

Usage::

    python -m <package>.train.gid --videos DIR --out gid.safetensors [--preset full|small|tiny]
        [--size 256x160] [--frames 150] [--steps VAE,STAGE1,STAGE2] [--work-dir DIR] [--resume]
    accelerate launch -m <package>.train.gid ...      # the same command on many GPUs / machines

``<package>`` is the name the pack's folder is imported as (the tests use ``imagedynamics``). The resulting
file is a ``gid`` checkpoint for LoadMotionModel (``models/gid``).

Phases (each resumable; ``<work>``: ``--work-dir``, by default outside the model folders (``common.default_work_dir``)):

1. data: every video is read (OpenCV), centre-cropped to the aspect of --size and resized; from every
   --start-every'th frame, the next T frames give a reference-anchored motion texture (OpenCV DIS flow from the
   start frame to each of the next T - 1 frames, ``ops.optical_flow.reference_anchored_motion``) and its
   spectral volume (first K temporal FFT bins, ``ops.spectral``). Each sample (start picture + spectrum) is
   cached in ``<work>/data``; the per-frequency 95th-percentile statistics s [K, 4] (GID Eq. 4, from at most
   --stats-samples samples, 8192 random pixels each) in ``<work>/data/manifest.json``. A cache made with other
   settings is rebuilt.
2. vae: the spectral VAE on random normalised frequency slices (L1 + 0.2 multi-scale gradient + 1e-6 KL);
   then the latent scale (1 / std of the latents) is measured.
3. stage1: the U-Net on random single slices (frequency embedding on, frequency attention off), eps-MSE,
   picture condition dropped with probability ``condition_dropout`` (0.1) for classifier-free guidance.
4. stage2: everything frozen but the frequency attention, trained on the K slices of each sample jointly
   (one timestep per sample). Steps = 0 skips it (the model is then the stage-1 model: the attention is
   zero-initialised).

Logs: loss per step in ``<work>/log.csv`` (phase, step, loss, lr, elapsed and the phase's parts), a line on
stdout every --log-every steps, tqdm progress bars, validation animations of a held-out clip and the loss curve
(``<work>/validation/*.webp``, ``<work>/loss.png``). The recipe (``train/common.py``): AdamW (0.9, 0.999), no
weight decay, gradient norm clipped at 1, learning-rate warm-up then constant, EMA of the weights (0.9999),
optional bf16 / fp16, gradient accumulation and checkpointing; the paper gives no optimiser settings. The tiny
preset keeps a plain constant rate without EMA (what the tests train).

Presets and their compute (``bench/bench_train_presets.py``: FLOPs counted by torch on these networks; GPU time
at 35 % of the bf16 peak, 110 TFLOPS per A100 and 58 per RTX 4090, an order of magnitude; the tables in the
README and ``bench/RESULTS.md``):

* full (256 x 160, T = 150, K = 16; VAE 3.5 M, U-Net 90 M trained + 14 M frequency attention, 64 x 40 latents):
  the paper's scale. Per slice and step 112 GFLOP (VAE), 130 (stage 1); 1.7 TFLOP per 16-slice volume
  (stage 2). Defaults 200k + 1.5M + 200k steps of 32 slices (2 volumes) per GPU on 16 GPUs: ~310 A100-hours
  (~19 h on 16 A100s at 35 %; the paper: ~6 days on 16 A100s, ~2300 GPU-hours, >150k clips). Data preparation:
  T - 1 = 149 DIS flows per sample (0.14 s per 256 x 160 flow on a shared 2-core CPU: ~20 s per sample and core);
  the cache holds ~5.3 MB per sample (float16 spectra): 10k samples ~ 53 GB.
* small (128 x 80, T = 150, K = 16; VAE 0.9 M, U-Net 22 M + 3.6 M, 32 x 20 latents): 7 (VAE) and 8.3 (stage 1)
  GFLOP per slice; 200k + 1M + 200k steps of 32 slices on one GPU: ~1.7 h of RTX 4090 compute at 35 %, so a
  day even at a few % utilisation. Cache ~1.3 MB per sample.
* tiny (64 x 40, T = 16, K = 4): tests; seconds per phase on a CPU.

Multi-GPU: ``accelerate launch --multi_gpu --num_processes N`` (or ``accelerate config``) runs N processes: each
takes its share of every global batch (``train.common.ResumableLoader``) and the flow computation of phase 1 is
split between them too; --batch-size is per process. Mixed precision: --mixed-precision bf16. Do not run two
trainings in the same --work-dir.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import random

import torch

from ..models.gid import checkpoint as gid_checkpoint
from ..models.gid.config import GIDConfig
from ..models.gid.losses import DenoisingLoss
from ..models.gid.model import GIDModel
from ..models.gid.unet import GIDUNet
from ..models.gid.vae import build_vae, vae_loss
from ..ops.optical_flow import reference_anchored_motion
from ..ops.progress import ProgressFn
from ..ops.spectral import frequency_stats, motion_to_spectrum, normalize_spectrum, real_to_spectrum, spectrum_to_real
from .common import (
    CSVLog,
    Phase,
    Recipe,
    StopRun,
    add_run_arguments,
    atomic_write_json,
    list_videos,
    load_phase_weights,
    parse_size,
    phase_progress,
    phase_state_path,
    read_json,
    recipe_from_args,
    seeded_loader,
    split_validation,
    train_phase,
    work_dir_of,
)
from .validation import side_by_side
from .video_io import read_video_cropped

PHASES = ("vae", "stage1", "stage2")
DEFAULT_STEPS = {"full": (200_000, 1_500_000, 200_000), "small": (200_000, 1_000_000, 200_000),
                 "tiny": (200, 300, 50)}
RECIPES = {"full": Recipe("constant", warmup_steps=5000, ema_decay=0.9999, validate_every=5000),
           "small": Recipe("constant", warmup_steps=1000, ema_decay=0.9999, validate_every=2000),
           "tiny": Recipe()}
LOG_FIELDS = ("phase", "step", "loss", "lr", "elapsed", "l1", "grad", "kl")
STATS_PIXELS = 8192  # random pixels per sample for the percentile statistics

logger = logging.getLogger(__name__)


# ============================================================================================ data preparation


def _data_settings(config: GIDConfig, args) -> dict:
    return {"width": config.width, "height": config.height, "num_frames": config.num_frames,
            "num_frequencies": config.num_frequencies, "frame_stride": args.frame_stride,
            "start_every": args.start_every, "max_frames_per_video": args.max_frames_per_video,
            "flow": "dis-" + args.flow_preset, "percentile": config.percentile, "version": 2}


def prepare_data(accelerator, videos: list[pathlib.Path], data_dir: pathlib.Path, config: GIDConfig, args
                 ) -> tuple[list[str], torch.Tensor, float]:
    """Flow -> spectra -> cache, then the statistics. Returns (sample file names, stats [K, 4], fps)."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    settings = _data_settings(config, args)
    manifest_path = data_dir / "manifest.json"
    manifest = read_json(manifest_path)
    if manifest is not None and manifest.get("settings") == settings and manifest.get("complete"):
        return manifest["samples"], torch.tensor(manifest["stats"], dtype=torch.float32), float(manifest["fps"])

    data_dir.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process and manifest is not None and manifest.get("settings") != settings:
        for old in data_dir.glob("*.safetensors"):
            old.unlink()
    accelerator.wait_for_everyone()

    T, K = config.num_frames, config.num_frequencies
    mine = videos[accelerator.process_index::accelerator.num_processes]
    records = []
    for path in tqdm(mine, desc="flow", disable=not accelerator.is_local_main_process):
        vid = videos.index(path)
        try:
            frames, fps = read_video_cropped(path, config.width, config.height, args.frame_stride,
                                            args.max_frames_per_video)
        except ValueError as exc:
            logger.warning("skipping %s: %s", path.name, exc)
            continue
        starts = list(range(0, frames.shape[0] - T + 1, args.start_every))
        if not starts:
            logger.warning("skipping %s: %d frames < T = %d", path.name, frames.shape[0], T)
            continue
        for start in starts:
            name = f"v{vid:05d}_s{start:06d}.safetensors"
            target = data_dir / name
            if not target.exists():
                clip = frames[start:start + T]
                motion = reference_anchored_motion(clip, preset=args.flow_preset, fps=fps)
                coeffs = motion_to_spectrum(motion.displacement, K)
                if not torch.isfinite(torch.view_as_real(coeffs)).all():
                    continue
                image = (clip[0] * 255).round().clamp(0, 255).to(torch.uint8)
                tmp = data_dir / (name + ".partial")
                spectrum = spectrum_to_real(coeffs).clamp(-65000, 65000).half()  # float16: 3 significant digits
                save_file({"image": image.contiguous(), "spectrum": spectrum.contiguous()}, str(tmp))
                os.replace(tmp, target)
            records.append((name, fps))
    # every process writes its list; the main process merges them
    atomic_write_json(data_dir / f"part{accelerator.process_index}.json", {"records": records})
    accelerator.wait_for_everyone()
    samples, rates = [], []
    for part in range(accelerator.num_processes):
        for name, fps in read_json(data_dir / f"part{part}.json")["records"]:
            samples.append(name)
            rates.append(fps)
    samples.sort()
    if not samples:
        raise ValueError(f"no training samples: every video is shorter than T = {T} frames (after --frame-stride)")
    fps = float(sorted(rates)[len(rates) // 2])
    if max(rates) > 1.1 * min(rates):
        logger.warning("the videos' frame rates differ (%.3g-%.3g fps); the model records %.3g fps",
                       min(rates), max(rates), fps)

    rng = random.Random(args.seed)
    subset = samples if len(samples) <= args.stats_samples else rng.sample(samples, args.stats_samples)
    stats = frequency_stats([_pixel_subset(real_to_spectrum(_load_sample(data_dir / n)[1]), STATS_PIXELS, rng)
                             for n in subset], percentile=config.percentile)
    if accelerator.is_main_process:
        atomic_write_json(manifest_path, {"settings": settings, "samples": samples, "stats": stats.tolist(),
                                          "fps": fps, "complete": True})
    accelerator.wait_for_everyone()
    return samples, stats, fps


def _pixel_subset(coeffs: torch.Tensor, count: int, rng: random.Random) -> torch.Tensor:
    """At most ``count`` random pixels of a spectral volume, as [K, 2, 1, P] (for percentile estimates)."""
    k, _, h, w = coeffs.shape
    if h * w <= count:
        return coeffs
    index = torch.tensor(rng.sample(range(h * w), count))
    return coeffs.reshape(k, 2, 1, h * w)[..., index]


def _load_sample(path: pathlib.Path) -> tuple[torch.Tensor, torch.Tensor]:
    from safetensors.torch import load_file

    data = load_file(str(path))
    return data["image"], data["spectrum"].float()


class SpectrumDataset(torch.utils.data.Dataset):
    """Cached samples as (picture [3, H, W] in [0, 1], normalised spectrum).

    ``mode="slice"``: items are (sample, frequency) pairs -> (picture, [4, H, W] slice, frequency index).
    ``mode="volume"``: items are samples -> (picture, [K, 4, H, W]).
    """

    def __init__(self, data_dir: pathlib.Path, samples: list[str], stats: torch.Tensor, mode: str):
        if mode not in ("slice", "volume"):
            raise ValueError(f"mode must be slice or volume, got {mode!r}")
        self.data_dir, self.samples, self.stats, self.mode = data_dir, samples, stats, mode
        self.k = stats.shape[0]

    def __len__(self) -> int:
        return len(self.samples) * (self.k if self.mode == "slice" else 1)

    def __getitem__(self, index: int):
        sample, k = divmod(index, self.k) if self.mode == "slice" else (index, None)
        image, real = _load_sample(self.data_dir / self.samples[sample])
        picture = image.float() / 255.0
        if k is None:
            return picture, normalize_spectrum(real_to_spectrum(real), self.stats)
        slice_ = normalize_spectrum(real_to_spectrum(real[k:k + 1]), self.stats[k:k + 1])[0]
        return picture, slice_, k


# ============================================================================================ losses


class _VAELoss:
    def __call__(self, vae, batch):
        _, slices, _ = batch
        return vae_loss(vae, slices)


# ============================================================================================ validation


def validation_sample(video: pathlib.Path, folder: pathlib.Path, config: GIDConfig, args
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out sample: (picture [3, H, W] in [0, 1], spectrum complex [K, 2, H, W]) of the first T frames of
    ``video`` (cached in ``folder``)."""
    from safetensors.torch import load_file, save_file

    settings = json.dumps({"video": str(video.resolve()), **_data_settings(config, args)}, sort_keys=True)
    path = folder / "sample.safetensors"
    if path.exists():
        data = load_file(str(path))
        if bytes(data["settings"].tolist()).decode() == settings:
            return data["image"].float() / 255.0, real_to_spectrum(data["spectrum"].float())
    frames, fps = read_video_cropped(video, config.width, config.height, args.frame_stride, config.num_frames)
    if frames.shape[0] < config.num_frames:
        raise ValueError(f"--validation-video {video.name}: {frames.shape[0]} frames < T = {config.num_frames}")
    motion = reference_anchored_motion(frames, preset=args.flow_preset, fps=fps)
    coeffs = motion_to_spectrum(motion.displacement, config.num_frequencies)
    image = (frames[0] * 255).round().clamp(0, 255).to(torch.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"image": image.contiguous(), "spectrum": spectrum_to_real(coeffs).contiguous(),
               "settings": torch.tensor(list(settings.encode()), dtype=torch.uint8)}, str(path))
    return image.float() / 255.0, coeffs


class GIDValidation:
    """Validation animations of the held-out picture (left: rendered with its measured motion, right: with the
    model's): the VAE phase shows the VAE's reconstruction of the measured spectrum, the U-Net stages a spectrum
    sampled from the picture (DDIM, 25 steps, seed 0; stage 1 without the frequency attention)."""

    def __init__(self, sample: tuple[torch.Tensor, torch.Tensor], stats: torch.Tensor, config: GIDConfig,
                 max_frames: int = 48, sampling_steps: int = 25):
        self.picture, self.coeffs = sample
        self.stats, self.config = stats, config
        t = config.num_frames
        self.times = torch.arange(0, t, max(1, -(-t // max_frames)))
        self.sampling_steps = sampling_steps
        self.truth = None

    def render(self, coeffs: torch.Tensor, device) -> torch.Tensor:
        from ..ops.render import motion_magnitude_metric, render_frames
        from ..ops.spectral import spectrum_to_motion

        motion = spectrum_to_motion(coeffs.to(device), self.config.num_frames, times=self.times.to(device)).float()
        frames, _ = render_frames(self.picture[None].to(device), motion, motion_magnitude_metric(motion))
        return frames.cpu()

    def for_phase(self, name: str, vae) -> callable:
        from ..models.gid.sampler import sample_spectrum
        from ..ops.spectral import denormalize_spectrum

        def validate(model: torch.nn.Module) -> torch.Tensor:
            device = next(model.parameters()).device
            if self.truth is None:
                self.truth = self.render(self.coeffs, device)
            if name == "vae":
                normalized = normalize_spectrum(self.coeffs, self.stats).to(device)
                recon = model.decode(model.encode(normalized).latent_dist.mode()).sample
                coeffs = denormalize_spectrum(recon.float(), self.stats.to(device))
            else:
                with torch.device("meta"):  # a shell around the networks being trained
                    gid = GIDModel(self.config)
                gid.vae, gid.unet, gid.stats = vae, model, self.stats.to(device)
                coeffs = sample_spectrum(gid, self.picture[None].to(device), num_steps=self.sampling_steps, seed=0,
                                         coordinate=name == "stage2")
            return side_by_side(self.truth, self.render(coeffs, device))

        return validate


# ============================================================================================ main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.gid", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", required=True, help="folder of training videos (searched recursively)")
    p.add_argument("--out", required=True, help="output checkpoint (.safetensors)")
    p.add_argument("--preset", default="full", choices=("full", "small", "tiny"), help="model size (default full)")
    p.add_argument("--size", default=None, help="W x H of the training pictures (default: the preset's, 256x160)")
    p.add_argument("--frames", type=int, default=None, help="T, frames per sample incl. the start (default 150)")
    p.add_argument("--num-frequencies", type=int, default=None, help="K (default 16)")
    p.add_argument("--steps", default=None,
                   help="VAE,STAGE1,STAGE2 optimisation steps (default per preset: full 200000,1500000,200000)")
    p.add_argument("--batch-size", type=int, default=32, help="slices per step in the vae and stage1 phases")
    p.add_argument("--stage2-batch-size", type=int, default=2, help="samples (of K slices each) per stage-2 step")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate of the U-Net stages")
    p.add_argument("--vae-lr", type=float, default=None, help="learning rate of the VAE (default --lr)")
    p.add_argument("--condition-dropout", type=float, default=None, help="CFG condition dropout (default 0.1)")
    p.add_argument("--frame-stride", type=int, default=1, help="use every n-th frame of the videos")
    p.add_argument("--start-every", type=int, default=10, help="a sample starts every n-th (strided) frame")
    p.add_argument("--max-frames-per-video", type=int, default=600, help="read at most this many frames a video")
    p.add_argument("--flow-preset", default="medium", choices=("ultrafast", "fast", "medium"), help="DIS preset")
    p.add_argument("--stats-samples", type=int, default=512, help="samples used for the statistics s")
    add_run_arguments(p)
    return p


def _config_from_args(args) -> GIDConfig:
    overrides = {}
    if args.size:
        overrides["width"], overrides["height"] = parse_size(args.size)
    if args.frames:
        overrides["num_frames"] = args.frames
    if args.num_frequencies:
        overrides["num_frequencies"] = args.num_frequencies
    config = GIDConfig.preset(args.preset, **overrides)
    if args.condition_dropout is not None:
        config.unet.condition_dropout = float(args.condition_dropout)
        config.validate()
    return config


def _steps(args) -> tuple[int, int, int]:
    if args.steps is None:
        return DEFAULT_STEPS[args.preset]
    parts = [int(v) for v in str(args.steps).split(",")]
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or min(parts) < 0:
        raise ValueError(f"--steps must be VAE,STAGE1,STAGE2 (non-negative), got {args.steps!r}")
    return tuple(parts)


@torch.no_grad()
def measure_latent_scale(vae, dataset: SpectrumDataset, device, samples: int = 256, seed: int = 0) -> float:
    """1 / std of VAE posterior samples over random slices (LDM's scale factor), so latents have unit variance."""
    rng = random.Random(seed)
    indices = rng.sample(range(len(dataset)), min(samples, len(dataset)))
    generator = torch.Generator().manual_seed(seed)  # the same on every process
    vae.eval()
    latents = []
    for start in range(0, len(indices), 32):
        batch = torch.stack([dataset[i][1] for i in indices[start:start + 32]]).to(device)
        latents.append(vae.encode(batch).latent_dist.sample(generator=generator).float().cpu())
    std = torch.cat(latents).std().item()
    return 1.0 / max(std, 1e-6)


def main(argv: list[str] | None = None, progress: ProgressFn | None = None) -> int:
    """The command line (``argv``); ``progress(done, total)`` counts the run's optimisation steps (train/common.py)."""
    args = build_parser().parse_args(argv)
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(args.seed)
    out = pathlib.Path(args.out)
    work = work_dir_of(args)
    work.mkdir(parents=True, exist_ok=True)
    steps = dict(zip(PHASES, _steps(args)))
    config = _config_from_args(args)
    recipe = recipe_from_args(args, RECIPES[args.preset])
    videos, validation_video, _ = split_validation(list_videos(args.videos), args, recipe)
    if not videos:
        raise ValueError("no training video is left once the validation video is held out")

    run_path = work / "state.json"
    run = read_json(run_path) if args.resume else None
    if args.resume and run is None:
        logger.warning("--resume: no saved run in %s; starting from the beginning", work)
    if run is not None:
        saved = GIDConfig.from_dict(run["config"])
        if saved.replace(latent_scale=config.latent_scale, fps=config.fps) != config:
            raise ValueError(f"--resume: the run in {work} was made with another model config; use the same "
                             "--preset/--size/--frames/--num-frequencies or another --work-dir")
        config = saved
    else:
        run = {"phase": PHASES[0], "step": 0, "config": config.to_dict()}
        if accelerator.is_main_process:
            atomic_write_json(run_path, run)
            for phase in PHASES:
                phase_state_path(work, phase).unlink(missing_ok=True)
            (work / "log.csv").unlink(missing_ok=True)
        accelerator.wait_for_everyone()

    samples, stats, fps = prepare_data(accelerator, videos, work / "data", config, args)
    config.fps = fps
    if accelerator.is_main_process:
        print(f"{len(samples)} samples of {config.num_frames} frames at {config.width}x{config.height}, "
              f"{fps:.3g} fps, K = {config.num_frequencies}")
    log = CSVLog(work / "log.csv", LOG_FIELDS, enabled=accelerator.is_main_process)
    slices = SpectrumDataset(work / "data", samples, stats, "slice")
    volumes = SpectrumDataset(work / "data", samples, stats, "volume")
    validation = None
    if validation_video is not None and accelerator.is_main_process:
        validation = GIDValidation(validation_sample(validation_video, work / "validation", config, args), stats,
                                   config)
    device = accelerator.device
    budget = args.stop_after

    def record(phase: str, step: int, **extra) -> None:
        run.update(phase=phase, step=step, config=config.to_dict(), **extra)
        if accelerator.is_main_process:
            atomic_write_json(run_path, run)

    def run_phase(phase: Phase) -> torch.nn.Module:
        nonlocal budget
        phase.recipe = recipe
        if validation is not None:
            phase.validate = validation.for_phase(phase.name, vae)
        if budget is not None and budget <= 0:
            raise StopRun(f"stopped before phase {phase.name}")
        start = run["step"] if run["phase"] == phase.name else 0
        model, done = train_phase(accelerator, phase, work, log, resume_step=start, save_every=args.save_every,
                                  log_every=args.log_every, stop_after=budget,
                                  on_state=lambda name, step: record(name, step), seed=args.seed,
                                  progress=phase_progress(progress, steps, phase.name))
        if budget is not None:
            budget -= done
        return model

    order = {name: i for i, name in enumerate(PHASES + ("done",))}
    if run["phase"] == "done" and steps["stage2"] > int(run["step"]):
        run["phase"] = "stage2"  # more stage-2 steps asked for: continue it from where it ended
    current = order[run["phase"]]
    try:
        # ---------------------------------------------------------------------------- VAE
        vae = build_vae(config.vae)
        vae_file = work / "vae.safetensors"
        if current == order["vae"]:
            vae = run_phase(Phase("vae", vae, list(vae.parameters()),
                                  seeded_loader(slices, args.batch_size, args, run["step"]),
                                  _VAELoss(), steps["vae"], args.vae_lr or args.lr))
            vae = vae.to(device)
            config.latent_scale = measure_latent_scale(vae, slices, device, seed=args.seed)
            if accelerator.is_main_process:
                _save_tensors(vae_file, vae.state_dict())
            accelerator.wait_for_everyone()
            record("stage1", 0, latent_scale=config.latent_scale)
            current = order["stage1"]
        else:
            vae.load_state_dict(_load_tensors(vae_file))
            config.latent_scale = float(run["latent_scale"])
        vae.to(device).eval().requires_grad_(False)

        # ---------------------------------------------------------------------------- U-Net stage 1
        unet = GIDUNet(config)
        stage1_file = work / "unet_stage1.safetensors"
        if current == order["stage1"]:
            # stage 1 never runs the frequency attention: keep it out of the optimiser (and out of DDP's sight)
            for p in unet.frequency_attention_parameters():
                p.requires_grad_(False)
            unet = run_phase(Phase("stage1", unet, [p for p in unet.parameters() if p.requires_grad],
                                   seeded_loader(slices, args.batch_size, args, run["step"]),
                                   DenoisingLoss(vae, config, coordinate=False), steps["stage1"], args.lr))
            if accelerator.is_main_process:
                _save_tensors(stage1_file, unet.state_dict())
            accelerator.wait_for_everyone()
            record("stage2", 0)
            current = order["stage2"]
        else:
            unet.load_state_dict(_load_tensors(stage1_file))

        # ---------------------------------------------------------------------------- U-Net stage 2
        unet.freeze_for_stage2()
        stage2_state = phase_state_path(work, "stage2")
        if current == order["stage2"]:
            unet = run_phase(Phase("stage2", unet, unet.frequency_attention_parameters(),
                                   seeded_loader(volumes, args.stage2_batch_size, args, run["step"]),
                                   DenoisingLoss(vae, config, coordinate=True), steps["stage2"], args.lr))
            record("done", steps["stage2"])
        elif stage2_state.exists():
            unet.load_state_dict(load_phase_weights(stage2_state))
    except StopRun as stop:
        if accelerator.is_main_process:
            logger.warning("%s; continue with --resume", stop)
        return 0

    if accelerator.is_main_process:
        model = GIDModel(config)
        model.vae.load_state_dict(vae.state_dict())
        model.unet.load_state_dict(accelerator.unwrap_model(unet).state_dict())
        out.parent.mkdir(parents=True, exist_ok=True)
        gid_checkpoint.save(out, model, config, stats)
        print(f"wrote {out} (work dir {work})")
    accelerator.wait_for_everyone()
    return 0


def _save_tensors(path: pathlib.Path, state: dict) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(".partial")
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    os.replace(tmp, path)


def _load_tensors(path: pathlib.Path, key: str | None = None) -> dict:
    if key is not None:
        return torch.load(path, map_location="cpu", weights_only=True)[key]
    from safetensors.torch import load_file

    return load_file(str(path))


if __name__ == "__main__":
    raise SystemExit(main())
