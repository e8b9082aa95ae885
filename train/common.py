"""Shared pieces of the pack's trainers: the training recipe, resumable phases, accelerate, logs, progress bars.

Every trainer is a plain command run either as ``python -m <package>.train.<name> ...`` on one device or as
``accelerate launch -m <package>.train.<name> ...`` on many GPUs and machines: the same code, because all
distribution goes through ``accelerate.Accelerator`` (``prepare`` wraps the model in DDP, ``backward`` and
``autocast`` handle mixed precision, ``gather`` collects losses for logging; files are written by the main
process only).

A training run is a sequence of phases (e.g. GID: vae, stage1, stage2). Each phase trains one module for a
given number of optimisation steps with the phase's :class:`Recipe`, the same for every trainer:

* AdamW; the learning rate warms up linearly over ``warmup_steps`` and then stays constant or follows a cosine
  or linear decay to 0 (``diffusers.optimization.get_scheduler``);
* an exponential moving average of the weights (``diffusers.training_utils.EMAModel``, decay ``ema_decay``,
  0 = off); a phase's result, its validation samples and the checkpoint use the EMA weights;
* mixed precision (``--mixed-precision bf16`` / ``fp16``) through accelerate's autocast and gradient scaler;
* gradient checkpointing of the networks that support it (:func:`enable_gradient_checkpointing`);
* gradient accumulation: a step is ``gradient_accumulation`` micro-batches whose gradients are averaged, so
  the global batch is batch x processes x accumulation;
* periodic validation every ``validate_every`` steps and at the phase's end: the trainer's ``validate``
  function renders a held-out picture with the EMA weights into ``<work>/validation/<phase>-<step>.webp``
  (animated WebP) and the loss curve of the run is drawn into ``<work>/loss.png`` (``train/validation.py``).

State: every ``save_every`` steps and at the phase's end ``<work>/state/<phase>.pt`` holds the model, the
optimiser, the learning-rate scheduler, the EMA and the step, and every process writes its random-number
generators (torch CPU and CUDA, Python, NumPy) to ``<work>/state/<phase>.rng<rank>.pt``; the run's position is
in ``<work>/state.json`` (``{"phase": ..., "step": ...}``). ``--resume`` reads state.json, skips finished phases,
restores all of it and continues: the batches come from :class:`ResumableLoader`, whose order and per-sample
augmentation are a function of (seed, step) alone, so a resumed run is the uninterrupted run, step for step
(the tests check it). Resuming on another number of processes continues with freshly seeded generators.

Progress and interrupts follow the pack's protocol (``ops/progress.py``): every trainer's ``main(argv, progress)``
takes a ``progress(done, total)`` callback counting the optimisation steps of the whole run (phases in order,
:func:`phase_progress`); :func:`train_phase` reports after every step, and whatever the callback raises
(e.g. ``ops.progress.Interrupted``) stops the run there: no checkpoint is written and the last saved state stays
resumable. The command line shows tqdm bars instead.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import pathlib
import random
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..ops.progress import ProgressFn, report, sub_progress

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")
LR_SCHEDULES = ("constant", "cosine", "linear")

logger = logging.getLogger(__name__)


def list_videos(directory: str | os.PathLike) -> list[pathlib.Path]:
    """Video files directly inside or below ``directory``, sorted (ValueError when there are none)."""
    root = pathlib.Path(directory)
    if not root.is_dir():
        raise ValueError(f"--videos {os.fspath(directory)!r} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not files:
        raise ValueError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) under {os.fspath(directory)!r}")
    return files


def parse_size(text: str) -> tuple[int, int]:
    """'256x160' -> (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"size must look like 256x160 (width x height), got {text!r}") from exc
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return w, h


# ============================================================================================ the recipe


@dataclass
class Recipe:
    """How a phase is optimised; a preset's defaults, which the command line can override.

    Attributes:
        lr_schedule: ``constant``, ``cosine`` or ``linear`` (decay to 0 at the phase's last step), after warm-up.
        warmup_steps: linear learning-rate warm-up from 0 (at most a tenth of a phase's steps is used).
        ema_decay: decay of the weights' exponential moving average (0 = no EMA). diffusers' EMAModel ramps the
            decay up as (1 + n) / (10 + n) over the first steps, so short runs average over their recent steps.
        gradient_accumulation: micro-batches per optimisation step.
        gradient_checkpointing: recompute activations in the backward pass (less memory, ~30 % more compute).
        validate_every: steps between validation samples (0 = none; also one at the end of every phase).
    """

    lr_schedule: str = "constant"
    warmup_steps: int = 0
    ema_decay: float = 0.0
    gradient_accumulation: int = 1
    gradient_checkpointing: bool = False
    validate_every: int = 0

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if int(self.warmup_steps) < 0 or int(self.validate_every) < 0:
            raise ValueError("warm-up steps and the validation interval must be >= 0")
        if not 0.0 <= float(self.ema_decay) < 1.0:
            raise ValueError(f"the EMA decay must be in [0, 1), got {self.ema_decay}")
        if int(self.gradient_accumulation) < 1:
            raise ValueError(f"gradient accumulation must be >= 1, got {self.gradient_accumulation}")

    def warmup_for(self, steps: int) -> int:
        """Warm-up steps used for a phase of ``steps`` steps (at most a tenth of it)."""
        return min(int(self.warmup_steps), int(steps) // 10)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECIPE_FLAGS = {"lr_schedule": "--lr-schedule", "warmup_steps": "--warmup-steps", "ema_decay": "--ema-decay",
                "gradient_accumulation": "--gradient-accumulation",
                "gradient_checkpointing": "--gradient-checkpointing", "validate_every": "--validate-every"}


def add_run_arguments(parser: argparse.ArgumentParser, save_every: int = 1000) -> None:
    """The run-control options every trainer shares: work dir, resume, seed, workers, logging, saving, stopping,
    mixed precision, and the recipe (whose defaults come from the trainer's preset, :func:`recipe_from_args`)."""
    parser.add_argument("--work-dir", default=None,
                        help="cache and trainer state (default: a folder named after --out in the user's cache, "
                        "~/.cache/imagedynamics/train/; see default_work_dir)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --work-dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--save-every", type=int, default=save_every, help="save the trainer state every n steps")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop (state saved) after n steps in this invocation, e.g. for time-limited jobs")
    parser.add_argument("--mixed-precision", default=None, choices=("no", "fp16", "bf16"),
                        help="default: accelerate's configuration (bf16 on GPUs that have it is the usual choice)")
    recipe = parser.add_argument_group("recipe (defaults: the preset's)")
    recipe.add_argument("--lr-schedule", default=None, choices=LR_SCHEDULES,
                        help="learning rate after the warm-up: constant, or cosine / linear decay to 0")
    recipe.add_argument("--warmup-steps", type=int, default=None,
                        help="linear learning-rate warm-up (at most a tenth of each phase)")
    recipe.add_argument("--ema-decay", type=float, default=None, help="EMA of the weights (0 = off), e.g. 0.9999")
    recipe.add_argument("--gradient-accumulation", type=int, default=None, help="micro-batches per step")
    recipe.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                        help="recompute activations in the backward pass: less memory, more compute")
    recipe.add_argument("--validate-every", type=int, default=None,
                        help="write a validation animation every n steps and at each phase's end (0 = off)")
    recipe.add_argument("--validation-video", default=None,
                        help="held-out clip for the validation animations (default: the last video of --videos, "
                             "left out of training, when there are several)")


def recipe_from_args(args, default: Recipe) -> Recipe:
    """The preset's recipe ``default`` with the recipe options given on the command line."""
    changes = {name: getattr(args, name) for name in RECIPE_FLAGS if getattr(args, name, None) is not None}
    try:
        return dataclasses.replace(default, **changes)
    except ValueError as exc:
        raise ValueError(f"recipe: {exc}") from exc


def make_lr_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, steps: int):
    """diffusers' scheduler for ``recipe`` over a phase of ``steps`` optimisation steps (stepped once per step)."""
    from diffusers.optimization import get_scheduler

    warmup = recipe.warmup_for(steps)
    name = recipe.lr_schedule
    if name == "constant":
        name = "constant_with_warmup" if warmup else "constant"
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=max(int(steps), 1))


def split_validation(videos: list[pathlib.Path], args, recipe: Recipe) -> tuple[list[pathlib.Path],
                                                                                   pathlib.Path | None, bool]:
    """(training videos, validation video or None, whether it is held out of training).

    ``--validation-video`` is held out by construction; without it, the last of several videos is left out of
    training; a single video is also the validation video (not held out: the animation then shows fitting).
    """
    if not recipe.validate_every:
        return videos, None, False
    if getattr(args, "validation_video", None):
        path = pathlib.Path(args.validation_video)
        if not path.is_file():
            raise ValueError(f"--validation-video {os.fspath(path)!r} is not a file")
        return [v for v in videos if v.resolve() != path.resolve()], path, True
    if len(videos) >= 2:
        return videos[:-1], videos[-1], True
    logger.warning("validation: only one video, so the validation picture is a training picture (pass "
                   "--validation-video for a held-out one)")
    return videos, videos[0], False


# ============================================================================================ data


class _SeededItems(torch.utils.data.Dataset):
    """Items ``(index, seed)`` of a dataset drawn with torch's and Python's generators seeded by ``seed`` (and
    restored afterwards), so an item's random augmentation depends on its position in the run alone."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        state = random.getstate()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                random.seed(seed)
                return self.dataset[index]
        finally:
            random.setstate(state)


class _GlobalBatches(torch.utils.data.Sampler):
    """This process's share of the run's stream of samples, from micro-batch ``start`` on, forever.

    The stream is the concatenation of permutations of the dataset, epoch e's drawn from (seed, e). Global
    micro-batch m is the stream's m-th slice of batch x world samples, and process r takes the r-th part; an
    item's augmentation is seeded by its position in the stream. So the samples of an optimisation step depend on
    the step alone, however they are split: one process with batch 8 sees exactly the items and augmentations
    that two processes with batch 4 see together, or one process with batch 4 in two micro-batches.
    """

    def __init__(self, size: int, batch: int, seed: int, start: int, rank: int, world: int):
        self.size, self.batch, self.seed, self.start, self.rank, self.world = size, batch, seed, start, rank, world

    def permutation(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))

    def __iter__(self):
        g = self.batch * self.world
        micro, cached = self.start, {}
        while True:
            items = []
            for k in range(self.batch):
                position = micro * g + self.rank * self.batch + k
                epoch, index = divmod(position, self.size)
                if epoch not in cached:
                    cached = {epoch: self.permutation(epoch), **{e: p for e, p in cached.items() if e == epoch - 1}}
                items.append((int(cached[epoch][index]), (self.seed * 2_654_435_761 + position) % (2 ** 62)))
            yield items
            micro += 1


class ResumableLoader:
    """Batches of a dataset that a resumed run reproduces exactly (see :class:`_GlobalBatches`).

    Args:
        dataset: a map-style dataset; its items may use torch's or Python's global generators for augmentation
            (seeded per item).
        batch_size: items per process and micro-batch (lowered to len(dataset) // processes if larger).
        seed: the run's seed.
        num_workers: DataLoader worker processes.
    """

    def __init__(self, dataset, batch_size: int, seed: int = 0, num_workers: int = 0):
        if len(dataset) == 0:
            raise ValueError("the training data set is empty")
        self.dataset, self.batch_size, self.seed, self.num_workers = dataset, int(batch_size), int(seed), num_workers

    def batches(self, start: int, rank: int = 0, world: int = 1, device=None) -> Iterator:
        """Micro-batches from global micro-batch ``start`` on (forever), on ``device``."""
        from accelerate.utils import send_to_device

        batch = max(1, min(self.batch_size, len(self.dataset) // world))
        if batch < self.batch_size:
            logger.warning("batch %d is more than the %d samples allow for %d process(es): using %d",
                           self.batch_size, len(self.dataset), world, batch)
        sampler = _GlobalBatches(len(self.dataset), batch, self.seed, start, rank, world)
        # its own generator: creating the iterator draws a seed, which must not come from the training's stream
        loader = torch.utils.data.DataLoader(_SeededItems(self.dataset), batch_sampler=sampler,
                                             num_workers=self.num_workers,
                                             generator=torch.Generator().manual_seed(self.seed),
                                             pin_memory=device is not None and torch.device(device).type == "cuda")
        for item in loader:
            yield item if device is None else send_to_device(item, device)


def default_work_dir(out: str | os.PathLike) -> pathlib.Path:
    """Where a run keeps its cache and state when no ``--work-dir`` is given: outside every model folder.

    The trainers write ``.safetensors`` caches there; next to ``--out`` (inside ComfyUI/models/motion_models, as the
    README suggests) ComfyUI would list them in Load Motion Model. So the folder is in the user's cache
    (``$XDG_CACHE_HOME`` or ``~/.cache``)/imagedynamics/train, named after the output file and a hash of its full
    path: the same ``--out`` finds its run again (``--resume``), two outputs of one name do not share one. On many
    machines without a shared home folder, pass ``--work-dir`` on a shared disk.

    Example:
        >>> default_work_dir("/models/motion_models/gid.safetensors").name.startswith("gid.safetensors-")
        True
    """
    path = pathlib.Path(out).expanduser().resolve()
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    digest = hashlib.sha1(os.fspath(path).encode()).hexdigest()[:10]
    return cache / "imagedynamics" / "train" / f"{path.name}-{digest}"


def work_dir_of(args) -> pathlib.Path:
    """``--work-dir``, or :func:`default_work_dir` of ``--out``."""
    return pathlib.Path(args.work_dir) if args.work_dir else default_work_dir(args.out)


def seeded_loader(dataset, batch_size: int, args, step: int = 0) -> ResumableLoader:
    """The loader of a phase: :class:`ResumableLoader` with ``args.seed`` and ``args.num_workers`` (``step`` is
    kept for the callers' sake: :func:`train_phase` positions the batches at the step it resumes from)."""
    return ResumableLoader(dataset, batch_size, seed=args.seed, num_workers=args.num_workers)


def cycle(loader) -> Iterator:
    """Iterate over a data loader forever (re-shuffling each epoch when it shuffles)."""
    epoch = 0
    while True:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise ValueError("the training data loader is empty")
        epoch += 1


# ============================================================================================ files and logs


def atomic_write_json(path: str | os.PathLike, data: dict) -> None:
    tmp = f"{os.fspath(path)}.partial"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


class CSVLog:
    """Append rows to a CSV file (main process only); the header is written once."""

    def __init__(self, path: str | os.PathLike, fields: tuple[str, ...], enabled: bool = True):
        self.path = pathlib.Path(path)
        self.fields = fields
        self.enabled = enabled
        if enabled and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(fields)

    def write(self, **row: Any) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])


def read_log(path: str | os.PathLike) -> list[dict[str, str]]:
    """All rows of a CSV log as dicts."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ============================================================================================ phases


@dataclass
class Phase:
    """One phase of a run: what to train, for how long, with which recipe, and how to compute its loss.

    ``loss_fn(model, batch) -> (loss, extras)`` is called with the prepared (possibly DDP-wrapped) model.
    ``loader`` is a :class:`ResumableLoader` (:func:`seeded_loader`; exact resume) or any iterable of batches.
    ``validate(model) -> frames [T, 3, H, W] in [0, 1]`` renders the held-out picture with the (unwrapped, EMA,
    eval-mode) model, under ``torch.no_grad`` and with the training's random generators untouched.
    ``deadline`` (``time.monotonic()`` value): the phase ends after the step during which it passes.
    """

    name: str
    model: torch.nn.Module
    parameters: list[torch.nn.Parameter]
    loader: Any
    loss_fn: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]
    steps: int
    lr: float
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    extras: dict = field(default_factory=dict)
    recipe: Recipe | None = None
    validate: Callable[[torch.nn.Module], torch.Tensor | None] | None = None
    validation_fps: float = 8.0
    deadline: float | None = None


class StopRun(Exception):
    """Raised by :func:`train_phase` when ``stop_after`` steps have run in this invocation (state saved)."""


def phase_state_path(work_dir: pathlib.Path, name: str) -> pathlib.Path:
    return work_dir / "state" / f"{name}.pt"


def _rng_path(state_path: pathlib.Path, rank: int) -> pathlib.Path:
    return state_path.with_name(f"{state_path.stem}.rng{rank}.pt")


def _atomic_torch_save(obj, path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    """This process's generators: torch CPU (and CUDA), Python's ``random``, NumPy's global generator."""
    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                       "cached": float(cached)}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    import numpy as np

    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), Python's ``random`` and NumPy."""
    import numpy as np

    seed = int(seed) % (2 ** 32)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def _parameter_names(model: torch.nn.Module, parameters: list[torch.nn.Parameter]) -> list[str]:
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    return [names.get(id(p), "") for p in parameters]


def save_phase_state(accelerator, path: pathlib.Path, model, optimizer, step: int, extra: dict | None = None,
                     scheduler=None, ema=None, parameters: list[torch.nn.Parameter] | None = None) -> None:
    """Save a phase's state: the unwrapped model, optimiser, scheduler, EMA and step (main process) and every
    process's random generators; atomic."""
    accelerator.wait_for_everyone()
    _atomic_torch_save(rng_state(), _rng_path(path, accelerator.process_index))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        state = {"model": unwrapped.state_dict(), "optimizer": optimizer.state_dict(), "step": int(step),
                 "extra": extra or {}, "num_processes": accelerator.num_processes,
                 "scheduler": scheduler.state_dict() if scheduler is not None else None,
                 "ema": ema.state_dict() if ema is not None else None,
                 "ema_names": _parameter_names(unwrapped, parameters) if ema is not None and parameters else None}
        _atomic_torch_save(state, path)
    accelerator.wait_for_everyone()


def load_phase_state(path: pathlib.Path, model, optimizer, scheduler=None, ema=None) -> tuple[int, dict]:
    """Load a state saved by :func:`save_phase_state` into an (unwrapped) model and its optimiser (and the
    scheduler and EMA, when given and saved). Returns (step, extra)."""
    return _apply_state(torch.load(path, map_location="cpu", weights_only=True), path, model, optimizer, scheduler,
                        ema)


def _apply_state(state: dict, path: pathlib.Path, model, optimizer, scheduler, ema) -> tuple[int, dict]:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if ema is not None:
        if state.get("ema") is None:
            logger.warning("%s has no EMA state: the EMA restarts from the current weights", path.name)
        else:
            ema.load_state_dict(state["ema"])
    return int(state["step"]), dict(state.get("extra", {}))


def load_phase_weights(path: pathlib.Path) -> dict[str, torch.Tensor]:
    """The weights a saved phase state stands for: its model's state dict with the EMA weights in place of the
    trained parameters when the phase kept an EMA (what the phase returned when it finished)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    weights = dict(state["model"])
    if state.get("ema") is not None and state.get("ema_names"):
        for name, shadow in zip(state["ema_names"], state["ema"]["shadow_params"]):
            if name in weights:
                weights[name] = shadow.to(weights[name].dtype)
    return weights


def phase_progress(progress: ProgressFn | None, steps: Mapping[str, int], name: str) -> ProgressFn | None:
    """The callback for phase ``name`` of a run whose phases (in order) train ``steps[phase]`` steps each: the
    phase's ``(step, steps[name])`` becomes the run's ``(steps of the phases before + step, all steps)``.

    Example:
        >>> seen = []
        >>> phase_progress(lambda d, t: seen.append((d, t)), {"vae": 10, "unet": 30}, "unet")(15, 30)
        >>> seen
        [(25, 40)]
    """
    names = list(steps)
    offset = sum(int(steps[n]) for n in names[:names.index(name)])
    return sub_progress(progress, offset, int(steps[name]), sum(int(v) for v in steps.values()))


def enable_gradient_checkpointing(module: torch.nn.Module) -> int:
    """Turn on activation checkpointing in every part of ``module`` that supports it: diffusers models
    (``enable_gradient_checkpointing``) and the pack's networks (a boolean ``gradient_checkpointing`` attribute).
    Returns how many parts were switched (0: nothing in this module supports it)."""
    count, inside = 0, set()
    for sub in module.modules():
        if id(sub) in inside:
            continue
        if getattr(sub, "_supports_gradient_checkpointing", False) and hasattr(sub, "enable_gradient_checkpointing"):
            sub.enable_gradient_checkpointing()
            inside.update(id(m) for m in sub.modules())
            count += 1
        elif isinstance(getattr(sub, "gradient_checkpointing", None), bool):
            sub.gradient_checkpointing = True
            count += 1
    return count


@contextlib.contextmanager
def _isolated_rng(device: torch.device):
    """Random numbers drawn inside (validation) leave the training's generators exactly as they were."""
    devices = [device] if device.type == "cuda" else []
    state = random.getstate()
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(state)


def _run_validation(accelerator, phase: Phase, model: torch.nn.Module, ema, work_dir: pathlib.Path,
                    step: int, log: CSVLog) -> None:
    """Main process: the EMA model renders the validation animation; the loss curve is redrawn."""
    from .validation import plot_losses, write_animation

    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(model)
    if ema is not None:
        ema.store(phase.parameters)
        ema.copy_to(phase.parameters)
    was_training = unwrapped.training
    unwrapped.eval()
    try:
        with torch.no_grad(), _isolated_rng(accelerator.device):
            frames = phase.validate(unwrapped)
        if frames is not None:
            write_animation(work_dir / "validation" / f"{phase.name}-{step:07d}.webp", frames, phase.validation_fps)
    finally:
        unwrapped.train(was_training)
        if ema is not None:
            ema.restore(phase.parameters)
    if log.enabled and log.path.exists():
        plot_losses(read_log(log.path), work_dir / "loss.png")


def train_phase(accelerator, phase: Phase, work_dir: pathlib.Path, log: CSVLog, *, resume_step: int = 0,
                save_every: int = 1000, log_every: int = 10, stop_after: int | None = None,
                on_state: Callable[[str, int], None] | None = None, seed: int = 0,
                progress: ProgressFn | None = None) -> tuple[torch.nn.Module, int]:
    """Run one phase from ``resume_step`` to ``phase.steps`` with ``phase.recipe`` (module docstring).

    ``progress(step, phase.steps)`` is called after every optimisation step (``ops.progress``); what it raises
    propagates at once (the state saved last stays resumable).

    Returns:
        (the unwrapped trained model, holding the EMA weights when the recipe keeps an EMA; the number of
        optimisation steps run in this call).

    Raises:
        StopRun: after ``stop_after`` optimisation steps in this call (the state was saved first).
    """
    from tqdm.auto import tqdm

    recipe = phase.recipe or Recipe()
    state_path = phase_state_path(work_dir, phase.name)
    if recipe.gradient_checkpointing and not enable_gradient_checkpointing(phase.model):
        logger.warning("%s: no part of this model supports gradient checkpointing", phase.name)
    optimizer = torch.optim.AdamW(phase.parameters, lr=phase.lr, weight_decay=phase.weight_decay)
    scheduler = make_lr_scheduler(optimizer, recipe, phase.steps)
    ema = None
    if recipe.ema_decay > 0:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(phase.parameters, decay=recipe.ema_decay)
    step, restored = 0, False
    if resume_step > 0:
        if not state_path.exists():
            raise FileNotFoundError(f"cannot resume phase {phase.name}: {state_path} is missing")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        step, _ = _apply_state(state, state_path, phase.model, optimizer, scheduler, ema)
        saved = state.get("num_processes")
        del state
        rng_file = _rng_path(state_path, accelerator.process_index)
        if saved == accelerator.num_processes and rng_file.exists():
            set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=True))
            restored = True
        else:
            logger.warning("%s: resuming on %s process(es) (saved with %s): random generators seeded afresh",
                           phase.name, accelerator.num_processes, saved)
    if not restored:
        # a different stream per phase, resume point and process (noise, timesteps, condition dropout)
        seed_everything(seed + 1000003 * step + 7919 * accelerator.process_index + zlib.crc32(phase.name.encode()))
    if step >= phase.steps:
        if ema is not None:
            ema.copy_to(phase.parameters)
        return phase.model, 0
    model, optimizer = accelerator.prepare(phase.model, optimizer)
    if ema is not None:
        ema.to(accelerator.device)
    model.train()
    accumulation = int(recipe.gradient_accumulation)
    if isinstance(phase.loader, ResumableLoader):
        batches = phase.loader.batches(step * accumulation, accelerator.process_index, accelerator.num_processes,
                                       accelerator.device)
    else:  # any other iterable: accelerate shards it; a resumed run draws its batches afresh
        batches = cycle(accelerator.prepare(phase.loader))
    bar = tqdm(total=phase.steps, initial=step, desc=phase.name, disable=not accelerator.is_local_main_process,
               dynamic_ncols=True)
    start_time = time.time()
    done_here = 0
    try:
        while step < phase.steps:
            total = torch.zeros((), device=accelerator.device)
            parts: dict[str, float] = {}
            for micro in range(accumulation):
                batch = next(batches)
                sync = micro == accumulation - 1
                with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                    with accelerator.autocast():
                        loss, extras = phase.loss_fn(model, batch)
                    accelerator.backward(loss / accumulation)
                total = total + loss.detach().float() / accumulation
                for k, v in extras.items():
                    parts[k] = parts.get(k, 0.0) + float(v) / accumulation
            if phase.max_grad_norm and accelerator.sync_gradients:
                accelerator.clip_grad_norm_(phase.parameters, phase.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            if not accelerator.optimizer_step_was_skipped:  # fp16: an overflowing step changes nothing
                scheduler.step()
                if ema is not None:
                    ema.step(phase.parameters)
            optimizer.zero_grad(set_to_none=True)
            step += 1
            done_here += 1
            value = accelerator.gather(total.reshape(1)).mean().item()
            if not math.isfinite(value):
                raise FloatingPointError(f"{phase.name}: loss became {value} at step {step}")
            log.write(phase=phase.name, step=step, loss=f"{value:.6g}", lr=f"{lr:.6g}",
                      elapsed=f"{time.time() - start_time:.2f}", **{k: f"{v:.6g}" for k, v in parts.items()})
            bar.update(1)
            if phase.deadline is not None and time.monotonic() >= phase.deadline and step < phase.steps:
                phase.steps = step  # the time share is used up: this step is the last (the state is saved)
            report(progress, step, phase.steps)
            if step % max(1, log_every) == 0 or step == phase.steps:
                bar.set_postfix(loss=f"{value:.4g}")
                if accelerator.is_main_process:
                    bar.write(f"[{phase.name}] step {step}/{phase.steps} loss {value:.5g}")
            if phase.validate is not None and recipe.validate_every and (
                    step % recipe.validate_every == 0 or step == phase.steps):
                _run_validation(accelerator, phase, model, ema, work_dir, step, log)
            stopping = stop_after is not None and done_here >= stop_after and step < phase.steps
            if step % max(1, save_every) == 0 or step == phase.steps or stopping:
                save_phase_state(accelerator, state_path, model, optimizer, step, scheduler=scheduler, ema=ema,
                                 parameters=phase.parameters)
                if on_state is not None:
                    on_state(phase.name, step)
            if stopping:
                raise StopRun(f"stopped after {done_here} steps in phase {phase.name} at step {step}")
    finally:
        bar.close()
    if ema is not None:
        ema.copy_to(phase.parameters)
    return accelerator.unwrap_model(model), done_here


def open_single_phase_run(accelerator, work_dir: pathlib.Path, phase: str, config: dict, resume: bool,
                          other_config: str, use: str) -> tuple[dict, Callable[[str, int], None]]:
    """The saved run of a one-phase trainer (``<work>/state.json``: phase, step, config) and its ``on_state``.

    With ``resume`` the saved run is continued (a run made with another ``config`` is refused: "the run was made
    with ``other_config``; use ``use`` or another --work-dir"); otherwise, or when nothing is saved, a new run
    starts at step 0 and the old phase state and log are removed.
    """
    run_path = work_dir / "state.json"
    run = read_json(run_path) if resume else None
    if resume and run is None:
        logger.warning("--resume: no saved run in %s; starting from the beginning", work_dir)
    if run is not None and run.get("config") != config:
        raise ValueError(f"--resume: the run in {work_dir} was made with {other_config}; use {use} or another "
                         "--work-dir")
    if run is None:
        run = {"phase": phase, "step": 0, "config": config}
        if accelerator.is_main_process:
            atomic_write_json(run_path, run)
            phase_state_path(work_dir, phase).unlink(missing_ok=True)
            (work_dir / "log.csv").unlink(missing_ok=True)
        accelerator.wait_for_everyone()

    def record(name: str, step: int) -> None:
        if accelerator.is_main_process:
            atomic_write_json(run_path, {"phase": name, "step": int(step), "config": config})

    return run, record


def train_single_phase(accelerator, phase: Phase, work_dir: pathlib.Path, log: CSVLog, args, *, resume_step: int,
                       on_state: Callable[[str, int], None] | None = None,
                       progress: ProgressFn | None = None) -> torch.nn.Module | None:
    """:func:`train_phase` for a one-phase trainer, with the run options of :func:`add_run_arguments` (``args``).

    Returns the trained model, or None when ``--stop-after`` ended this invocation (the state is saved; the
    warning says to continue with ``--resume``).
    """
    try:
        model, _ = train_phase(accelerator, phase, work_dir, log, resume_step=resume_step,
                               save_every=args.save_every, log_every=args.log_every, stop_after=args.stop_after,
                               on_state=on_state, seed=args.seed, progress=progress)
    except StopRun as stop:
        if accelerator.is_main_process:
            logger.warning("%s; continue with --resume", stop)
        return None
    return model
