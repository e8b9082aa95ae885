"""Every trainer's phases as synthetic workloads: the real networks and loss functions of ``train/`` at a preset's
shapes, fed random batches (for the preset benchmark and the device check; no videos, no downloads).

``workloads(names)`` -> [Workload]: one per (family, preset, phase). ``Workload.build(device)`` returns
(module, trainable parameters, loss_fn) exactly as the trainer builds them for that phase (frozen parts on the
device too); ``Workload.batch(n, device, generator)`` a batch of n samples of the preset's shapes (a sample is
what the trainer's batch size counts: a frequency slice for GID's VAE / stage 1, a K-slice volume for stage 2, a
frame pair for LVMM's P + R / VAE / fine-tune and the renderer, a latent trajectory for LVMM's denoiser).
``steps`` and ``batch_size`` are the trainer's defaults for the preset (per process); ``processes`` is the number
of GPUs the preset's budget is written for.
"""
from __future__ import annotations

import pathlib
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
if "imagedynamics" not in sys.modules:
    package = types.ModuleType("imagedynamics")
    package.__path__ = [str(ROOT)]
    sys.modules["imagedynamics"] = package


@dataclass
class Workload:
    family: str
    preset: str
    phase: str
    build: Callable
    batch: Callable
    steps: int
    batch_size: int
    processes: int
    sample: str

    @property
    def name(self) -> str:
        return f"{self.family}/{self.preset}/{self.phase}"


def _gid(preset: str) -> list[Workload]:
    from imagedynamics.models.gid.config import GIDConfig
    from imagedynamics.models.gid.losses import DenoisingLoss
    from imagedynamics.models.gid.unet import GIDUNet
    from imagedynamics.models.gid.vae import build_vae
    from imagedynamics.train.gid import DEFAULT_STEPS, _VAELoss

    config = GIDConfig.preset(preset)
    config.latent_scale = 1.0
    h, w, k = config.height, config.width, config.num_frequencies
    processes = {"full": 16, "small": 1, "tiny": 1}[preset]

    def vae(device):
        model = build_vae(config.vae).to(device)
        return model, list(model.parameters()), _VAELoss()

    def unet(coordinate: bool):
        def build(device):
            frozen = build_vae(config.vae).to(device).eval().requires_grad_(False)
            model = GIDUNet(config).to(device)
            if coordinate:
                model.freeze_for_stage2()
                params = model.frequency_attention_parameters()
            else:
                for p in model.frequency_attention_parameters():
                    p.requires_grad_(False)
                params = [p for p in model.parameters() if p.requires_grad]
            return model, params, DenoisingLoss(frozen, config, coordinate=coordinate)
        return build

    def slices(n, device, generator):
        return (torch.rand(n, 3, h, w, generator=generator).to(device),
                torch.randn(n, 4, h, w, generator=generator).to(device),
                torch.randint(0, k, (n,), generator=generator).to(device))

    def volumes(n, device, generator):
        return (torch.rand(n, 3, h, w, generator=generator).to(device),
                torch.randn(n, k, 4, h, w, generator=generator).to(device))

    steps = dict(zip(("vae", "stage1", "stage2"), DEFAULT_STEPS[preset]))
    batch = {"vae": 32, "stage1": 32, "stage2": 2} if preset != "tiny" else {"vae": 8, "stage1": 8, "stage2": 2}
    return [Workload("gid", preset, "vae", vae, slices, steps["vae"], batch["vae"], processes, "slice"),
            Workload("gid", preset, "stage1", unet(False), slices, steps["stage1"], batch["stage1"], processes,
                     "slice"),
            Workload("gid", preset, "stage2", unet(True), volumes, steps["stage2"], batch["stage2"], processes,
                     f"{k}-slice volume")]


def _lvmm(preset: str) -> list[Workload]:
    from imagedynamics.models.lvmm import LVMM, LVMMConfig
    from imagedynamics.train.lvmm import (
        DEFAULT_STEPS,
        _call_part,
        _DenoiserLoss,
        _FinetuneLoss,
        _Part,
        _PRLoss,
        _VAELoss,
    )

    config = LVMMConfig.preset(preset)
    h, w, k = config.height, config.width, config.num_frames
    fh, fw = config.flow_size
    lh, lw = config.latent_size
    processes = {"paper": 32, "small": 1, "tiny": 1}[preset]

    def build(phase: str):
        def make(device):
            model = LVMM(config).to(device)
            if phase == "pr":
                part = _Part(predictor=model.predictor, renderer=model.renderer)
                part._loss = _PRLoss(model, config.predictor.equivariance_weight, 0.0)
            else:
                model.predictor.requires_grad_(False).eval()
                model.renderer.requires_grad_(phase == "finetune")
                model.vae.requires_grad_(phase == "vae")
                if phase == "vae":
                    part, part._loss = _Part(vae=model.vae), _VAELoss(model)
                elif phase == "finetune":
                    part, part._loss = _Part(renderer=model.renderer), _FinetuneLoss(model)
                else:
                    model.vae.eval()
                    part = _Part(encoder=model.encoder, denoiser=model.denoiser)
                    part._loss = _DenoiserLoss(model)
            return part, [p for p in part.parameters() if p.requires_grad], _call_part
        return make

    def pairs(n, device, generator):
        source = torch.rand(n, 3, h, w, generator=generator)
        driving = torch.roll(source, shifts=(2, 3), dims=(-2, -1))
        return source.to(device), driving.to(device), torch.zeros(n, 0, device=device)

    def trajectories(n, device, generator):
        return (torch.rand(n, 3, fh, fw, generator=generator).to(device),
                torch.randn(n, k + 1, config.latent_channels, lh, lw, generator=generator).to(device),
                torch.zeros(n, 0, device=device), torch.zeros(n, 0, device=device))

    steps = dict(zip(("pr", "vae", "finetune", "denoiser"), DEFAULT_STEPS[preset]))
    batch = {"pr": 8, "vae": 8, "finetune": 8, "denoiser": 5 if preset == "paper" else 16}
    if preset == "tiny":
        batch = {"pr": 4, "vae": 4, "finetune": 4, "denoiser": 4}
    return [Workload("lvmm", preset, phase, build(phase), trajectories if phase == "denoiser" else pairs,
                     steps[phase], batch[phase], processes, "trajectory" if phase == "denoiser" else "frame pair")
            for phase in ("pr", "vae", "finetune", "denoiser")]


def _renderer(preset: str) -> list[Workload]:
    from imagedynamics.models.renderer import ImageRenderer, ImageRendererConfig
    from imagedynamics.train.renderer import DEFAULT_STEPS, RendererLoss

    config = ImageRendererConfig.preset(preset)
    size = 64 if preset == "tiny" else 256

    def build(device):
        model = ImageRenderer(config).to(device)
        return model, list(model.parameters()), RendererLoss("brightness", hole_weight=4.0)

    def pairs(n, device, generator):
        source = torch.rand(n, 3, size, size, generator=generator)
        flow = torch.nn.functional.interpolate(torch.randn(n, 2, 4, 4, generator=generator) * size / 16,
                                               size=(size, size), mode="bicubic", align_corners=False)
        return source.to(device), torch.roll(source, 3, dims=-1).to(device), flow.to(device)

    return [Workload("renderer", preset, "renderer", build, pairs, DEFAULT_STEPS[preset], 8, 1, "frame pair")]


def _refiner(preset: str) -> list[Workload]:
    """The long-animation paper's T (``train/refiner.py``): pix2pix is the paper's setting (512 x 512, batch 32 over
    2 GPUs, 10k steps); default at 512 x 512, batch 32 on one GPU; small at 256 x 256, batch 16."""
    from imagedynamics.models.long_animation.refiner import FlowRefiner, RefinerConfig
    from imagedynamics.train.refiner import DEFAULT_STEPS, RefinerLoss

    config = RefinerConfig.preset(preset)
    size = {"pix2pix": 512, "default": 512, "small": 256, "tiny": 48}[preset]
    batch, processes = {"pix2pix": (16, 2), "default": (32, 1), "small": (16, 1), "tiny": (4, 1)}[preset]

    def build(device):
        model = FlowRefiner(config).to(device)
        return model, list(model.parameters()), RefinerLoss(config.flow_scale)

    def pairs(n, device, generator):
        def smooth(scale):
            coarse = torch.randn(n, 2, 4, 4, generator=generator) * scale
            return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)

        target = smooth(size / 100)
        return ((target + smooth(size / 200)).to(device), torch.rand(n, 3, size, size, generator=generator).to(device),
                target.to(device))

    return [Workload("refiner", preset, "refiner", build, pairs, DEFAULT_STEPS[preset], batch, processes,
                     "frame pair")]


FAMILIES = {"gid": (_gid, ("full", "small", "tiny")), "lvmm": (_lvmm, ("paper", "small", "tiny")),
            "renderer": (_renderer, ("default", "small", "resnet34", "tiny")),
            "refiner": (_refiner, ("pix2pix", "default", "small", "tiny"))}


def workloads(presets: dict[str, tuple[str, ...]] | None = None) -> list[Workload]:
    """The workloads of the given presets per family (default: every preset of every family)."""
    out = []
    for family, (make, names) in FAMILIES.items():
        if presets is not None and family not in presets:
            continue
        for preset in names if presets is None else presets[family]:
            out.extend(make(preset))
    return out
