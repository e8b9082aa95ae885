"""Shared pieces of the pack's trainers: accelerate set-up, resumable phases, CSV logging, progress bars.

Every trainer is a plain command run either as ``python -m <package>.train.<name> ...`` on one device or as
``accelerate launch -m <package>.train.<name> ...`` on many GPUs and machines: the same code, because all
distribution goes through ``accelerate.Accelerator`` (``prepare`` wraps the model in DDP and shards the data
loader, ``backward`` handles mixed precision, ``gather`` collects losses for logging; files are written by the
main process only).

A training run is a sequence of phases (e.g. GID: vae, stage1, stage2). Each phase trains one module with one
optimizer for a given number of steps and saves, every ``save_every`` steps and at its end, a state file
``<work>/state/<phase>.pt`` (model, optimizer, step) and the run's ``<work>/state.json``
(``{"phase": ..., "step": ...}``). ``--resume`` reads state.json, skips finished phases, loads the phase's state
and continues from the saved step (the data order after a resume is drawn afresh from the seed and the step).

Progress and interrupts follow the pack's protocol (``ops/progress.py``): every trainer's ``main(argv, progress)``
takes a ``progress(done, total)`` callback counting the optimisation steps of the whole run (phases in order,
:func:`phase_progress`); :func:`train_phase` reports after every step, and whatever the callback raises
(e.g. ``ops.progress.Interrupted``) stops the run there: no checkpoint is written and the last saved state stays
resumable. The command line shows tqdm bars instead.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import pathlib
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..ops.progress import ProgressFn, report, sub_progress

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")


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


def add_run_arguments(parser: argparse.ArgumentParser, save_every: int = 1000) -> None:
    """The run-control options every trainer shares: work dir, resume, seed, workers, logging, saving, stopping,
    mixed precision."""
    parser.add_argument("--work-dir", default=None, help="cache and trainer state (default <out>.work)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --work-dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--save-every", type=int, default=save_every, help="save the trainer state every n steps")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop (state saved) after n steps in this invocation, e.g. for time-limited jobs")
    parser.add_argument("--mixed-precision", default=None, choices=("no", "fp16", "bf16"),
                        help="default: accelerate's configuration")


def seeded_loader(dataset, batch_size: int, args, step: int) -> torch.utils.data.DataLoader:
    """Shuffled, drop-last DataLoader whose order depends on (--seed, the step it starts at), so a resumed run
    does not replay the batches it has already seen. ``args`` supplies ``seed`` and ``num_workers``."""
    generator = torch.Generator().manual_seed(args.seed * 1_000_003 + int(step))
    return torch.utils.data.DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True,
                                       drop_last=True, num_workers=args.num_workers, generator=generator,
                                       persistent_workers=args.num_workers > 0)


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


@dataclass
class Phase:
    """One phase of a run: what to train, for how long, and how to compute its loss.

    ``loss_fn(model, batch) -> (loss, extras)`` is called with the prepared (possibly DDP-wrapped) model.
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


class StopRun(Exception):
    """Raised by :func:`train_phase` when ``stop_after`` steps have run in this invocation (state saved)."""


def phase_state_path(work_dir: pathlib.Path, name: str) -> pathlib.Path:
    return work_dir / "state" / f"{name}.pt"


def save_phase_state(accelerator, path: pathlib.Path, model, optimizer, step: int, extra: dict | None = None) -> None:
    """Save the unwrapped model, the optimizer and the step (main process; atomic)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"model": accelerator.unwrap_model(model).state_dict(), "optimizer": optimizer.state_dict(),
                 "step": int(step), "extra": extra or {}}
        tmp = path.with_suffix(".partial")
        torch.save(state, tmp)
        os.replace(tmp, path)
    accelerator.wait_for_everyone()


def load_phase_state(path: pathlib.Path, model, optimizer) -> tuple[int, dict]:
    """Load a state saved by :func:`save_phase_state` into an (unwrapped) model and its optimizer."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"]), dict(state.get("extra", {}))


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


def train_phase(accelerator, phase: Phase, work_dir: pathlib.Path, log: CSVLog, *, resume_step: int = 0,
                save_every: int = 1000, log_every: int = 10, stop_after: int | None = None,
                on_state: Callable[[str, int], None] | None = None, seed: int = 0,
                progress: ProgressFn | None = None) -> tuple[torch.nn.Module, int]:
    """Run one phase from ``resume_step`` to ``phase.steps``.

    ``progress(step, phase.steps)`` is called after every optimisation step (``ops.progress``); what it raises
    propagates at once (the state saved last stays resumable).

    Returns:
        (the unwrapped trained model, the number of optimisation steps run in this call).

    Raises:
        StopRun: after ``stop_after`` optimisation steps in this call (the state was saved first).
    """
    from tqdm.auto import tqdm

    state_path = phase_state_path(work_dir, phase.name)
    optimizer = torch.optim.AdamW(phase.parameters, lr=phase.lr, weight_decay=phase.weight_decay)
    step = 0
    if resume_step > 0:
        if not state_path.exists():
            raise FileNotFoundError(f"cannot resume phase {phase.name}: {state_path} is missing")
        step, _ = load_phase_state(state_path, phase.model, optimizer)
    # a different stream per phase, resume point and process (noise, timesteps, condition dropout)
    torch.manual_seed(seed + 1000003 * step + 7919 * accelerator.process_index + zlib.crc32(phase.name.encode()))
    if step >= phase.steps:
        return phase.model, 0
    model, optimizer, loader = accelerator.prepare(phase.model, optimizer, phase.loader)
    model.train()
    batches = cycle(loader)
    bar = tqdm(total=phase.steps, initial=step, desc=phase.name, disable=not accelerator.is_local_main_process,
               dynamic_ncols=True)
    start_time = time.time()
    done_here = 0
    try:
        while step < phase.steps:
            batch = next(batches)
            loss, extras = phase.loss_fn(model, batch)
            accelerator.backward(loss)
            if phase.max_grad_norm and accelerator.sync_gradients:
                accelerator.clip_grad_norm_(phase.parameters, phase.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            done_here += 1
            value = accelerator.gather(loss.detach().float().reshape(1)).mean().item()
            if not math.isfinite(value):
                raise FloatingPointError(f"{phase.name}: loss became {value} at step {step}")
            log.write(phase=phase.name, step=step, loss=f"{value:.6g}", lr=phase.lr,
                      elapsed=f"{time.time() - start_time:.2f}", **{k: f"{v:.6g}" for k, v in extras.items()})
            bar.update(1)
            report(progress, step, phase.steps)
            if step % max(1, log_every) == 0 or step == phase.steps:
                bar.set_postfix(loss=f"{value:.4g}")
                if accelerator.is_main_process:
                    bar.write(f"[{phase.name}] step {step}/{phase.steps} loss {value:.5g}")
            stopping = stop_after is not None and done_here >= stop_after and step < phase.steps
            if step % max(1, save_every) == 0 or step == phase.steps or stopping:
                save_phase_state(accelerator, state_path, model, optimizer, step)
                if on_state is not None:
                    on_state(phase.name, step)
            if stopping:
                raise StopRun(f"stopped after {done_here} steps in phase {phase.name} at step {step}")
    finally:
        bar.close()
    return accelerator.unwrap_model(model), done_here
