"""Train the long-animation paper's video model additions (``models/long_animation/``) on a user's videos, SVD frozen.

Usage::

    python scripts/train.py long_animation --videos DIR --svd ComfyUI/models/checkpoints/svd_xt.safetensors
        --out ComfyUI/models/motion_models/long_animation.safetensors [--preset paper|small] [--size 512x512]
        [--steps 100000] [--batch 4] [--lr 3e-5] [--num-frames 25] [--refiner T.safetensors] [--resume]
    accelerate launch --multi_gpu --num_processes 2 scripts/train.py long_animation ...   # the paper: 2 A100s

What is trained (the paper's "Implements Details"): the motion encoder, the motion attention adapters (Eq. 4), the
motion strength embedding (Eq. 8) and the static-camera LoRA (rank 16) -- everything of
:class:`~models.long_animation.model.LongAnimationModel` but T -- with AdamW at 3e-5 on 25-frame clips; the SVD U-Net
is frozen and never copied: the additions enter it through :func:`models.long_animation.attach.install`, the same
wrapper modules and emb patch that ComfyUI's patch installs (one code path). T is trained apart
(``scripts/train.py long_animation_refiner``, ``train/refiner.py``, which writes T into the same file): when
``--out`` already holds a ``long_animation`` file, its T (architecture and weights) is kept; ``--refiner FILE``
takes T from another file; otherwise T is fresh (the identity).

The SVD is handed in (:class:`SVDBackbone`): this module imports nothing from ComfyUI. ``scripts/train.py
long_animation --svd FILE`` builds it with ComfyUI's own loader (``comfy.sd.load_checkpoint_guess_config``: the U-Net,
the VAE and the CLIP-vision encoder of the svd / svd_xt file) when the host is installed; the tests hand in a tiny
SVD built from ComfyUI's SVD classes.

Data (``train/long_animation_data.py``): clips of --num-frames frames within one shot, OpenCV DIS frame-to-frame
flows F_{k->k+1} (RAFT is not available) and M_s (Eq. 8) per clip. The conditioning field is the clip's flows, one
per frame (frame k gets F_{k->k+1}, the last frame the last flow; ``--field frames``, the paper's), or their mean
(``--field mean``: the static field the node gives at inference). With ``--field-jitter j`` (default 1) each
clip's field is scaled by a random factor in [2^-j, 2^j] while M_s stays the clip's own: the field then tells where
and which way things move and their relative speeds, M_s alone the overall speed, so that M_s is a control at
inference (with j = 0 the field's length already tells the speed, and the tiny models of the tests learn to ignore
M_s: bench/RESULTS.md, issue 16, runs 11-55).

Objective (SVD's own, EDM with v-prediction, ``sigma_data`` 1, as ComfyUI's ``V_PREDICTION_EDM``): the clip's
latents ``x0`` (VAE, scaled by 0.18215), ``log sigma ~ N(0.7, 1.6^2)`` per clip (SVD's fine-tuning), ``x = x0 +
sigma n``; the U-Net gets ``[x / sqrt(sigma^2 + 1), raw latent of frame 0]`` (8 channels), timestep
``0.25 log sigma``, the CLIP-vision embedding of frame 0 and the added-time ids (fps - 1, motion bucket 127,
augmentation 0); ``D = x / (sigma^2 + 1) - out sigma / sqrt(sigma^2 + 1)`` and the loss ``mean((sigma^2 + 1) /
sigma^2 (D - x0)^2)``. The recipe is the pack's (``train/common.py``: EMA, warm-up, schedules, exact resume,
accelerate, progress, ``<work>/log.csv``).

Compute (``bench/bench_long_animation_flops.py``): a 25-frame 512 x 512 clip is 32.8 TFLOP forward through SVD (1.52 G
parameters, frozen) with the additions (47.4 M trained); the paper's 100k steps of 4 clips, ~26 EFLOP, took it ~20 h on
2 A100s. ``--preset small --size 512x320 --num-frames 14 --batch 1 --steps 20000`` is ~0.4 EFLOP (README).
"""
from __future__ import annotations

import argparse
import logging
import pathlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..models.long_animation.attach import MotionConditioning, fit_from_unet, install
from ..models.long_animation.config import LongAnimationConfig, SVDFit, tiny_config
from ..models.long_animation.model import LongAnimationModel
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
from .long_animation_data import PAPER_FRAMES, ClipSettings, VideoClips, prepare_videos

PHASE = "video_model"
PAPER_LR = 3e-5
PRESETS = ("paper", "small", "tiny")
DEFAULT_STEPS = {"paper": 100_000, "small": 20_000, "tiny": 50}
RECIPES = {"paper": Recipe("constant", warmup_steps=500, ema_decay=0.9999, gradient_checkpointing=True),
           "small": Recipe("constant", warmup_steps=200, ema_decay=0.999),
           "tiny": Recipe()}
LOG_FIELDS = ("phase", "step", "loss", "lr", "elapsed", "sigma")
P_MEAN, P_STD = 0.7, 1.6
LATENT_SCALE = 0.18215

logger = logging.getLogger(__name__)


@dataclass
class SVDBackbone:
    """The frozen SVD the additions are trained on, handed in by the caller (no ComfyUI import here).

    Attributes:
        unet: ComfyUI's SVD U-Net module (``VideoUNet``), ``forward(x, timesteps, context, y, num_video_frames=,
            image_only_indicator=, transformer_options=)``; frozen by the trainer.
        encode: frames ``[N, 3, H, W]`` in [0, 1] -> raw VAE latents ``[N, 4, H / 8, W / 8]`` (unscaled).
        embed_image: pictures ``[B, 3, H, W]`` in [0, 1] -> CLIP-vision embeddings ``[B, 1, D]``.
        added_time: ``(fps_id [B], motion_bucket [B], augmentation [B]) -> y [B, adm]`` (SVD's 3 x 256 sinusoids).
        latent_scale: the latent format's scale (SD's 0.18215).
    """

    unet: nn.Module
    encode: Callable[[torch.Tensor], torch.Tensor]
    embed_image: Callable[[torch.Tensor], torch.Tensor]
    added_time: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    latent_scale: float = LATENT_SCALE


def config_for(fit: SVDFit, preset: str) -> LongAnimationConfig:
    """The additions' config of ``preset`` for the SVD shape ``fit`` (``tiny``: :func:`tiny_config`)."""
    if preset == "tiny":
        return tiny_config(fit)
    base = LongAnimationConfig.preset(preset)
    widths = tuple(base.encoder_channels[min(level, len(base.encoder_channels) - 1)] for level in range(fit.levels))
    return base.replace(svd=fit, encoder_channels=widths)


def frame_flows(flows: torch.Tensor, mode: str = "frames") -> torch.Tensor:
    """``[B, N - 1, 2, H, W]`` frame-to-frame flows -> the conditioning field ``[B, N, 2, H, W]`` (``frames``: frame k
    gets F_{k->k+1}, the last frame the last flow) or ``[B, 1, 2, H, W]`` (``mean``: one static field)."""
    if mode == "mean":
        return flows.mean(1, keepdim=True)
    return torch.cat([flows, flows[:, -1:]], dim=1)


def jitter_factors(count: int, jitter: float, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[count, 1, 1, 1, 1]`` random field-length factors ``2^u``, ``u ~ U(-jitter, jitter)`` (1 for jitter 0)."""
    u = torch.rand(count, 1, 1, 1, 1, generator=generator, device=device) * 2 - 1
    return torch.exp2(float(jitter) * u)


def edm_v_denoised(x: torch.Tensor, out: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """SVD's denoised estimate from the U-Net's v-prediction ``out`` (EDM, sigma_data 1; ComfyUI's V_PREDICTION)."""
    s2 = sigma ** 2 + 1.0
    return x / s2 - out * sigma / s2.sqrt()


class VideoModelTrainee(nn.Module):
    """The additions (the only registered submodule: the state dict, EMA and DDP hold them alone) and the frozen
    SVD they are installed in; ``forward(batch) -> (loss, parts)`` is SVD's objective (module docstring). In
    training mode each clip's field is scaled by :func:`jitter_factors` of ``field_jitter`` (M_s untouched). A batch
    holds ``frames`` [B, N, 3, H, W] in [0, 1], ``flows`` [B, N - 1, 2, H, W] px/frame, ``strength`` [B] (M_s) and
    optionally ``fps`` [B] (default 7) and ``motion_bucket`` [B] (SVD's motion bucket id, default 127, as the
    node's conditioning gives)."""

    def __init__(self, additions: LongAnimationModel, backbone: SVDBackbone, field: str = "frames",
                 field_jitter: float = 0.0) -> None:
        super().__init__()
        if not field_jitter >= 0:
            raise ValueError(f"field_jitter must be >= 0, got {field_jitter}")
        self.additions = additions
        self.__dict__["backbone"] = backbone
        self.field, self.field_jitter = field, float(field_jitter)
        backbone.unet.requires_grad_(False)
        self.conditioning = MotionConditioning(additions, torch.zeros(1, 1, 2, 8, 8), 0.0)
        self.__dict__["installed"] = install(backbone.unet, additions, self.conditioning)

    def video_parameters(self) -> list[nn.Parameter]:
        return self.additions.video_parameters()

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        backbone = self.backbone
        frames = batch["frames"].float()                              # [B, N, 3, H, W]
        b, n = frames.shape[:2]
        device = next(self.additions.parameters()).device
        with torch.no_grad():
            raw = backbone.encode(frames.flatten(0, 1).to(device)).float()           # [B*N, 4, h, w]
            x0 = raw * backbone.latent_scale
            first = raw.view(b, n, *raw.shape[1:])[:, :1].expand(b, n, *raw.shape[1:]).reshape_as(raw)
            context = backbone.embed_image(frames[:, 0].to(device)).float()          # [B, 1, D]
            fps = batch.get("fps", torch.full((b,), 7.0)).reshape(b).to(device)
            bucket = batch.get("motion_bucket", torch.full((b,), 127.0)).float().reshape(b).to(device)
            y = backbone.added_time(fps - 1, bucket, torch.zeros_like(fps)).float()
        sigma = torch.exp(P_MEAN + P_STD * torch.randn(b, device=device))
        sigma_f = sigma.repeat_interleave(n).view(-1, 1, 1, 1)
        x = x0 + sigma_f * torch.randn_like(x0)
        x_in = torch.cat([x / (sigma_f ** 2 + 1).sqrt(), first], dim=1)
        field = frame_flows(batch["flows"].float(), self.field).to(device)            # [B, N or 1, 2, H, W]
        if self.training and self.field_jitter:
            field = field * jitter_factors(b, self.field_jitter, device)
        self.conditioning.update(field, batch["strength"].float().reshape(b).to(device))
        out = backbone.unet(x_in, 0.25 * sigma_f.log().flatten(), context.repeat_interleave(n, 0),
                            y.repeat_interleave(n, 0), num_video_frames=n,
                            image_only_indicator=torch.zeros(b, n, device=device),
                            transformer_options=self.conditioning.transformer_options())
        denoised = edm_v_denoised(x, out.float(), sigma_f)
        loss = ((sigma_f ** 2 + 1) / sigma_f ** 2 * (denoised - x0) ** 2).mean()
        return loss, {"sigma": float(sigma.mean())}

    def remove(self) -> None:
        """Take the additions out of the SVD U-Net again."""
        self.installed.remove()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.long_animation", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", required=True, nargs="+", help="video files and/or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output checkpoint (.safetensors, family long_animation)")
    p.add_argument("--svd", default=None, help="the SVD checkpoint (svd / svd_xt .safetensors), loaded with "
                   "ComfyUI's loader by scripts/train.py")
    p.add_argument("--preset", default="paper", choices=PRESETS,
                   help="the additions' size: paper (encoder 64..256, LoRA 16, T pix2pix), small, tiny (tests)")
    p.add_argument("--size", default="512x512", help="training frame size WIDTHxHEIGHT (the paper: 512x512)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: 100000, the paper's)")
    p.add_argument("--batch", type=int, default=4, help="clips per step per process (the paper: 4)")
    p.add_argument("--lr", type=float, default=PAPER_LR, help="AdamW learning rate (the paper: 3e-5)")
    p.add_argument("--num-frames", type=int, default=PAPER_FRAMES, help="frames per clip (the paper: 25)")
    p.add_argument("--clip-every", type=int, default=None, help="a clip starts every n frames (default: disjoint)")
    p.add_argument("--frame-stride", type=int, default=1, help="use every n-th frame")
    p.add_argument("--max-frames-per-video", type=int, default=300, help="frames read per video (after stride)")
    p.add_argument("--max-clips-per-video", type=int, default=64, help="clips kept per video")
    p.add_argument("--flow-preset", default="medium", help="DIS setting (train/renderer.py FLOW_PRESETS)")
    p.add_argument("--field", default="frames", choices=("frames", "mean"),
                   help="conditioning field: the clip's flow per frame (the paper's) or their mean (static)")
    p.add_argument("--field-jitter", type=float, default=1.0,
                   help="scale each clip's field by a random 2^U(-j, j), M_s kept, so that M_s sets the overall "
                   "speed (0: the measured field, whose length then makes M_s redundant)")
    p.add_argument("--refiner", default=None, help="a long_animation file whose T goes into the output (default: "
                   "--out's own T when it exists, e.g. trained first by long_animation_refiner; else a fresh T)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True, help="random horizontal flips")
    add_run_arguments(p, save_every=1000)
    return p


def clip_settings(args) -> ClipSettings:
    width, height = parse_size(args.size)
    return ClipSettings(width=width, height=height, num_frames=args.num_frames,
                        clip_every=args.clip_every or args.num_frames, frame_stride=args.frame_stride,
                        max_frames=args.max_frames_per_video, max_clips=args.max_clips_per_video,
                        flow_preset=args.flow_preset)


def main(argv: list[str] | None = None, progress: ProgressFn | None = None,
         backbone: SVDBackbone | None = None) -> int:
    """The command line; ``backbone``: the frozen SVD (scripts/train.py builds it from --svd with ComfyUI)."""
    from ..models.long_animation import checkpoint

    args = build_parser().parse_args(argv)
    if args.steps is None:
        args.steps = DEFAULT_STEPS[args.preset]
    if args.steps < 0 or args.batch < 1 or not args.lr > 0 or args.num_frames < 2 or not args.field_jitter >= 0:
        raise ValueError("--steps must be >= 0, --batch >= 1, --lr > 0, --num-frames >= 2 and --field-jitter >= 0")
    if backbone is None:
        raise ValueError("the SVD backbone is not given: run 'scripts/train.py long_animation --svd FILE' (it loads "
                         "the SVD with ComfyUI's loader) or pass backbone= to train.long_animation.main")
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    set_seed(args.seed)
    settings = clip_settings(args)
    recipe = recipe_from_args(args, RECIPES[args.preset])
    out = pathlib.Path(args.out)
    work = work_dir_of(args)
    work.mkdir(parents=True, exist_ok=True)
    from .renderer import resolve_videos

    videos = resolve_videos(args.videos)
    config = config_for(fit_from_unet(backbone.unet), args.preset)
    refiner = None
    source = args.refiner or (str(out) if out.exists() else None)
    if source:  # T trained first (long_animation_refiner) or given: kept, with its architecture
        from .refiner import load_refiner

        refiner = load_refiner(source)
        config = config.replace(refiner=refiner.config)

    run, record = open_single_phase_run(accelerator, work, PHASE, config.to_dict(), args.resume, "other additions",
                                        "the same --preset and SVD")

    videos, _, _ = split_validation(videos, args, recipe)
    if not videos:
        raise ValueError("no training video is left once the validation video is held out")
    files = prepare_videos(videos, work / "data", settings, accelerator)
    dataset = VideoClips(files, flip=args.flip)
    if accelerator.is_main_process:
        print(f"{len(dataset)} training clips of {dataset.num_frames} frames from {len(files)} video(s) at "
              f"{settings.width}x{settings.height}")
    loader = seeded_loader(dataset, args.batch, args, int(run["step"]))
    seed_everything(args.seed)
    additions = LongAnimationModel(config)
    if refiner is not None:
        additions.refiner.load_state_dict(refiner.state_dict())
    additions = additions.to(accelerator.device)
    trainee = VideoModelTrainee(additions, backbone, args.field, args.field_jitter)
    log = CSVLog(work / "log.csv", LOG_FIELDS, enabled=accelerator.is_main_process)

    phase = Phase(PHASE, trainee, trainee.video_parameters(), loader, lambda model, batch: model(batch), args.steps,
                  args.lr, recipe=recipe)
    trained = train_single_phase(accelerator, phase, work, log, args, resume_step=int(run["step"]), on_state=record,
                                 progress=progress)
    if trained is None:
        trainee.remove()
        return 0
    trainee.remove()
    if accelerator.is_main_process:
        out.parent.mkdir(parents=True, exist_ok=True)
        training = {"steps": args.steps, "recipe": recipe.to_dict(), "lr": args.lr, "batch": args.batch,
                    "data": settings.to_dict(), "field": args.field, "field_jitter": args.field_jitter,
                    "videos": len(files),
                    "refiner_from": source}
        checkpoint.save(out, trained.additions.cpu().eval(), training)
        print(f"wrote {out} (work dir {work})")
    accelerator.wait_for_everyone()
    return 0

