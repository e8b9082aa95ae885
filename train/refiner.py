"""Train the long-animation paper's refinement model T (``models/long_animation/refiner.py``) on a user's videos.

Usage::

    python scripts/train.py long_animation_refiner --videos DIR --out long_animation.safetensors
        [--preset pix2pix|default|small|tiny] [--size 512x512] [--steps 10000] [--batch 32] [--lr 5e-3] [--resume]
    accelerate launch --multi_gpu --num_processes 2 scripts/train.py long_animation_refiner ...   # the paper: 2 A100s

Data (``train/long_animation_data.py``, cached in ``<work>/data``; the same cache as the video model's when the
clip settings are the same): every video centre-cropped and resized to --size, cut into clips of --num-frames
(25) frames within one shot, OpenCV DIS flow between consecutive frames. Each training pair is a frame k of a
clip with its real flow F_{k->k+1} as the target and, as the input, the field a user's arrows would give: 1 ..
--max-arrows points of the real flow (among the pixels moving more than R, by how far they move) made dense by the
paper's Gaussian interpolation (Eqs. 5-7; sigma 170 px at 512 px, proportional to the long side; R 0.05 px/frame),
with random horizontal flips. The paper trains T on Holynski et al.'s refined flows (5,000 videos); here the
user's own videos and DIS stand in for them.

Training: T(rough, frame k) -> refined; the loss is the mean end-point error against the real flow in T's
resolution-free unit (per cent of the long side per frame, so every --size weighs the same); ``epe`` and
``rough_epe`` (the untouched field's, what T starts from) are logged in pixels per frame. The recipe is the
pack's (``train/common.py``): AdamW at the paper's constant 5e-3 (after a warm-up), gradient norm clipped at 1,
an EMA of the weights, bf16 through accelerate, gradient accumulation and checkpointing, resumable exactly
(--resume), progress bars, ``<work>/log.csv``, and validation pictures (``<work>/validation/refiner-<step>.webp``:
for held-out pairs, the frame, the rough field, T's refined field and the real flow, colour-coded on one scale).

Compute: the paper trains T for 10k iterations at batch 32 in ~8 h on 2 A100s (README, "Training T").
"""
from __future__ import annotations

import argparse
import logging
import pathlib

import torch

from ..models.long_animation.refiner import REFINER_PRESETS, FlowRefiner, RefinerConfig
from ..ops.flow_viz import flow_to_color
from ..ops.progress import ProgressFn
from .common import (
    CSVLog,
    Phase,
    Recipe,
    add_run_arguments,
    open_single_phase_run,
    parse_size,
    recipe_from_args,
    seed_everything,
    seeded_loader,
    split_validation,
    train_single_phase,
    work_dir_of,
)
from .long_animation_data import PAPER_FRAMES, PAPER_THRESHOLD, ClipSettings, RefinerPairs, prepare_videos
from .renderer import FLOW_PRESETS, resolve_videos
from .validation import side_by_side

PHASE = "refiner"
PAPER_LR = 5e-3
DEFAULT_STEPS = {"pix2pix": 10_000, "default": 10_000, "small": 10_000, "tiny": 200}
RECIPES = {"pix2pix": Recipe("constant", warmup_steps=500, ema_decay=0.999, validate_every=1000),
           "default": Recipe("constant", warmup_steps=500, ema_decay=0.999, validate_every=1000),
           "small": Recipe("constant", warmup_steps=500, ema_decay=0.999, validate_every=1000),
           "tiny": Recipe()}
LOG_FIELDS = ("phase", "step", "loss", "lr", "elapsed", "epe", "rough_epe")

logger = logging.getLogger(__name__)


def end_point_error(flow: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean end-point error: the mean length of ``flow - target`` over pixels (and the batch), in their units.

    Example:
        >>> a = torch.zeros(1, 2, 2, 2); b = a.clone(); b[:, 0] = 3.0; b[:, 1] = 4.0
        >>> float(end_point_error(a, b))
        5.0
    """
    return (flow.float() - target.float()).square().sum(dim=-3).sqrt().mean()


class RefinerLoss:
    """``(model, (rough, image, target)) -> (loss, parts)``: the mean end-point error in T's unit (``flow_scale /
    max(H, W)`` per pixel per frame; a smoothed length, sqrt(|d|^2 + eps^2), so its gradient exists at 0), with
    ``epe`` and ``rough_epe`` in pixels per frame."""

    def __init__(self, flow_scale: float, eps: float = 1e-3):
        self.flow_scale, self.eps = float(flow_scale), float(eps)

    def __call__(self, model, batch):
        rough, image, target = batch
        refined = model(rough, image).float()
        unit = self.flow_scale / max(target.shape[-2:])
        diff = (refined - target.float()) * unit
        loss = (diff.square().sum(dim=-3) + self.eps ** 2).sqrt().mean()
        with torch.no_grad():
            parts = {"epe": float(end_point_error(refined, target)), "rough_epe": float(end_point_error(rough, target))}
        return loss, parts


class RefinerValidation:
    """The validation pictures: for the first ``pairs`` pairs of the held-out video (arrows drawn with a fixed
    seed), the frame, then the rough field, T's refined field and the real flow colour-coded on the real flow's
    scale, one pair per animation frame."""

    def __init__(self, dataset: RefinerPairs, pairs: int = 4, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        chosen = range(0, len(dataset), max(1, len(dataset) // pairs))
        samples = [dataset.sample(i, generator) for i in list(chosen)[:pairs]]
        self.rough = torch.stack([s.rough for s in samples])
        self.image = torch.stack([s.image for s in samples])
        self.target = torch.stack([s.target for s in samples])

    def __call__(self, model: FlowRefiner) -> torch.Tensor:
        device = next(model.parameters()).device
        refined = model(self.rough.to(device), self.image.to(device)).float().cpu()
        scale = max(float(self.target.square().sum(1).sqrt().amax()), 1e-3)

        def colour(flow):
            return flow_to_color(flow, max_magnitude=scale)

        return side_by_side(self.image, colour(self.rough), colour(refined), colour(self.target))


# ============================================================================================ main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.refiner", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", required=True, nargs="+", help="video files and/or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output checkpoint (.safetensors)")
    p.add_argument("--preset", default=None, choices=REFINER_PRESETS,
                   help="T's size: pix2pix (the paper's size class, 46 M), default (3.0 M), small (0.76 M), tiny; "
                        "default: the T of --out when it exists, else of --family-preset")
    p.add_argument("--family-preset", default="paper", choices=tuple(FAMILY_PRESETS),
                   help="when --out does not exist yet: the long_animation additions written around T (paper: for "
                        "SVD / SVD-XT, T pix2pix; small: T small), freshly initialised, inert until trained")
    p.add_argument("--family-config", default=None,
                   help="when --out does not exist yet: a JSON file of the long_animation config instead (e.g. for "
                        "another SVD shape)")
    p.add_argument("--size", default="512x512", help="training frame size WIDTHxHEIGHT (the paper: 512x512)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: 10000, the paper's)")
    p.add_argument("--batch", type=int, default=32, help="pairs per step per process (the paper: 32)")
    p.add_argument("--lr", type=float, default=PAPER_LR, help="AdamW learning rate (the paper: 5e-3)")
    p.add_argument("--num-frames", type=int, default=PAPER_FRAMES, help="frames per clip (the paper: 25)")
    p.add_argument("--clip-every", type=int, default=None, help="a clip starts every n frames (default: disjoint)")
    p.add_argument("--frame-stride", type=int, default=1, help="use every n-th frame")
    p.add_argument("--max-frames-per-video", type=int, default=300, help="frames read per video (after stride)")
    p.add_argument("--max-clips-per-video", type=int, default=64, help="clips kept per video")
    p.add_argument("--flow-preset", default="medium", choices=FLOW_PRESETS, help="DIS setting")
    p.add_argument("--max-arrows", type=int, default=8, help="most sampled arrows per training pair")
    p.add_argument("--sigma", type=float, default=0.0,
                   help="Gaussian width in pixels (0: the paper's 170 px at 512 px, proportional to the long side)")
    p.add_argument("--threshold", type=float, default=PAPER_THRESHOLD, help="R of Eq. 7, pixels per frame")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True, help="random horizontal flips")
    add_run_arguments(p, save_every=500)
    return p


def _check_args(args) -> None:
    for name in ("steps", "batch", "max_arrows"):
        if getattr(args, name) is not None and getattr(args, name) < (0 if name == "steps" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not args.lr > 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    if args.sigma < 0 or args.threshold < 0:
        raise ValueError("--sigma and --threshold must be >= 0")


def clip_settings(args) -> ClipSettings:
    """The data settings of the command line (shared with the video model's trainer)."""
    width, height = parse_size(args.size)
    return ClipSettings(width=width, height=height, num_frames=args.num_frames,
                        clip_every=args.clip_every or args.num_frames, frame_stride=args.frame_stride,
                        max_frames=args.max_frames_per_video, max_clips=args.max_clips_per_video,
                        flow_preset=args.flow_preset)


FAMILY_PRESETS = {"paper": "pix2pix", "small": "small"}
"""The long-animation family's presets and the T preset each holds."""


def preset_of(config: RefinerConfig) -> str:
    """The name of T's preset ``config`` is (its default steps and recipe), ``default`` for any other T."""
    return next((name for name in REFINER_PRESETS if RefinerConfig.preset(name) == config), "default")


def family_config(args):
    """The ``long_animation`` config T is trained for, and T's config in it.

    In order: the file at ``--out`` when it exists (a video model trained first: T's architecture is the file's);
    ``--family-config`` (a JSON file of a ``LongAnimationConfig``, e.g. for another SVD shape); else
    ``--family-preset`` (paper: SVD / SVD-XT with T ``pix2pix``; small: T ``small``) with T ``--preset`` when given.
    A ``--preset`` that contradicts the file's or the JSON's T is refused.
    """
    import json

    from ..models.checkpoint import open_checkpoint
    from ..models.long_animation.checkpoint import FAMILY
    from ..models.long_animation.config import LongAnimationConfig

    out = pathlib.Path(args.out)
    if out.exists():
        config, source = LongAnimationConfig.from_dict(open_checkpoint(out, FAMILY).config), f"--out {out.name}"
    elif args.family_config:
        with open(args.family_config) as f:
            config, source = LongAnimationConfig.from_dict(json.load(f)), f"--family-config {args.family_config}"
    else:
        config = LongAnimationConfig.preset(args.family_preset)
        if args.preset is not None:
            config = config.replace(refiner=RefinerConfig.preset(args.preset))
        return config
    if args.preset is not None and RefinerConfig.preset(args.preset) != config.refiner:
        raise ValueError(f"--preset {args.preset} is not the T of {source} ({config.refiner.to_dict()}); leave "
                         "--preset out to train that T")
    return config


def write_refiner(out: pathlib.Path, refiner: FlowRefiner, config, training: dict) -> None:
    """Put T into the ``long_animation`` file ``out``: into the existing one (its other additions and training
    notes kept, T's notes under ``training.refiner``), or a new one of ``config`` whose video additions are
    freshly initialised, hence inert on the user's SVD until the video trainer trains them."""
    from ..models.checkpoint import open_checkpoint
    from ..models.long_animation import checkpoint as la_checkpoint
    from ..models.long_animation.model import LongAnimationModel

    notes = {}
    if out.exists():
        notes = dict(open_checkpoint(out, la_checkpoint.FAMILY).config.get("training") or {})
        model = la_checkpoint.load(out)
    else:
        torch.manual_seed(0)
        model = LongAnimationModel(config)
    if model.config.refiner != refiner.config:
        raise ValueError(f"{out.name} holds another T ({model.config.refiner.to_dict()}) than the one trained "
                         f"({refiner.config.to_dict()})")
    model.refiner.load_state_dict(refiner.state_dict())
    notes["refiner"] = dict(training)
    la_checkpoint.save(out, model.eval(), notes)


def load_refiner(path: str | pathlib.Path, device="cpu") -> FlowRefiner:
    """T alone from a ``long_animation`` file (built on the meta device, then given the file's tensors)."""
    from ..models.checkpoint import open_checkpoint
    from ..models.long_animation.checkpoint import FAMILY
    from ..models.long_animation.config import LongAnimationConfig

    checkpoint = open_checkpoint(path, FAMILY)
    config = LongAnimationConfig.from_dict(checkpoint.config).refiner
    from safetensors import safe_open

    with torch.device("meta"):
        model = FlowRefiner(config)
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        state = {k[len("refiner."):]: f.get_tensor(k) for k in f.keys() if k.startswith("refiner.")}
    model.load_state_dict(state, assign=True)
    return model.eval()


def main(argv: list[str] | None = None, progress: ProgressFn | None = None) -> int:
    """The command line (``argv``); ``progress(step, steps)`` after every optimisation step (train/common.py)."""
    args = build_parser().parse_args(argv)
    _check_args(args)
    settings = clip_settings(args)
    family = family_config(args)
    config = family.refiner
    preset = preset_of(config)
    if args.steps is None:
        args.steps = DEFAULT_STEPS[preset]
    recipe = recipe_from_args(args, RECIPES[preset])
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(args.seed)
    out = pathlib.Path(args.out)
    work = work_dir_of(args)
    work.mkdir(parents=True, exist_ok=True)
    videos = resolve_videos(args.videos)

    run, record = open_single_phase_run(accelerator, work, PHASE, config.to_dict(version=True), args.resume,
                                        "another refiner config", "the same --preset")

    cache = work / "data"
    videos, validation_video, _ = split_validation(videos, args, recipe)
    if not videos:
        raise ValueError("no training video is left once the validation video is held out")
    files = prepare_videos(videos, cache, settings, accelerator)
    sigma = args.sigma or None
    dataset = RefinerPairs(files, max_arrows=args.max_arrows, sigma=sigma, threshold=args.threshold, flip=args.flip)
    if accelerator.is_main_process:
        print(f"{len(dataset)} training pairs from {len(files)} video(s) at {settings.width}x{settings.height}")

    loader = seeded_loader(dataset, args.batch, args, int(run["step"]))
    seed_everything(args.seed)
    model = FlowRefiner(config)
    loss = RefinerLoss(config.flow_scale)
    log = CSVLog(work / "log.csv", LOG_FIELDS, enabled=accelerator.is_main_process)

    validate = None
    if validation_video is not None:
        held_out = prepare_videos([validation_video], cache, settings)
        validate = RefinerValidation(RefinerPairs(held_out, max_arrows=args.max_arrows, sigma=sigma,
                                                  threshold=args.threshold))
    phase = Phase(PHASE, model, list(model.parameters()), loader, loss, args.steps, args.lr, recipe=recipe,
                  validate=validate, validation_fps=1.0)
    model = train_single_phase(accelerator, phase, work, log, args, resume_step=int(run["step"]), on_state=record,
                               progress=progress)
    if model is None:
        return 0
    if accelerator.is_main_process:
        out.parent.mkdir(parents=True, exist_ok=True)
        training = {"steps": args.steps, "recipe": recipe.to_dict(), "lr": args.lr, "batch": args.batch,
                    "data": settings.to_dict(), "max_arrows": args.max_arrows, "sigma": args.sigma,
                    "threshold": args.threshold, "videos": len(files)}
        write_refiner(out, model.cpu().eval(), family, training)
        print(f"wrote {out} (work dir {work})")
    accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
