"""Every trainer's presets: parameters, FLOPs and activation memory per training sample, the CPU cost of a step,
and the compute each preset's budget needs (the numbers behind the README's training table).

Run: ``.venv/bin/python bench/bench_train_presets.py [--families gid,lvmm,renderer] [--threads 2] [--json out]``

For every (family, preset, phase) of ``bench/train_workloads.py`` (the trainers' own networks and losses at the
preset's shapes, random data): one sample's training step (loss, backward) is counted with torch's
``FlopCounterMode`` (matrix multiplications and convolutions, forward + backward), the tensors autograd saves
for the backward pass are summed (``saved_tensors_hooks``: the activation memory per sample, float32), and the
CPU time of a whole step at batch 1 (loss, backward, AdamW) is timed once after that pass (``--repeats``: median).

Budgets: FLOP = FLOP per sample x per-process batch x processes x steps (the trainer's default steps and batch
for the preset). GPU time assumes 35 % of the bf16 dense peak sustained: 110 TFLOPS on an A100 (312), 58 on an
RTX 4090 (165): an order of magnitude, not a promise; ``bench/device_check.py`` measures real throughput.
Memory per GPU ~ 20 bytes per trained parameter (float32 weights, gradients, AdamW's two moments, the EMA) +
4 per frozen one + activations x per-process batch (float32; bf16 autocast stores most of them at half size).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from train_workloads import FAMILIES, workloads  # noqa: E402

A100, RTX4090 = 110e12, 58e12  # sustained FLOP/s assumed (35 % of the bf16 dense peak)


def measure(workload, repeats: int = 1) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model, params, loss_fn = workload.build("cpu")
    model.train()
    generator = torch.Generator().manual_seed(0)
    batch = workload.batch(1, "cpu", generator)
    trained = sum(p.numel() for p in params)
    # frozen networks a phase runs: GID's VAE lives in its loss, LVMM's other networks in the part's loss
    modules = [model, getattr(loss_fn, "vae", None), getattr(getattr(model, "_loss", None), "model", None)]
    everything = {id(p): p for m in modules if m is not None for p in m.parameters()}
    total, frozen_extra = sum(p.numel() for p in everything.values()), 0

    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    # one counted pass (FLOPs and the tensors saved for backward), then `repeats` timed steps
    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = loss_fn(model, batch)
        loss.backward()
    flop = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss, _ = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    step_flop = flop * workload.batch_size * workload.processes * workload.steps
    memory = 20 * trained + 4 * (total + frozen_extra - trained) + saved[0] * workload.batch_size
    return {"workload": workload.name, "sample": workload.sample, "trained_params": trained,
            "total_params": total + frozen_extra, "gflop_per_sample": flop / 1e9,
            "activation_mib_per_sample": saved[0] / 2 ** 20, "cpu_s_per_sample_step": statistics.median(times),
            "steps": workload.steps, "batch_per_process": workload.batch_size, "processes": workload.processes,
            "total_pflop": step_flop / 1e15, "a100_hours": step_flop / A100 / 3600,
            "rtx4090_hours": step_flop / RTX4090 / 3600, "gib_per_gpu": memory / 2 ** 30}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--presets", default=None, help="e.g. gid=small,tiny;renderer=default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="timed steps per workload (median)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    chosen = {f: FAMILIES[f][1] for f in args.families.split(",")}
    if args.presets:
        for part in args.presets.split(";"):
            family, names = part.split("=")
            chosen[family] = tuple(names.split(","))
    rows = []
    print("| workload | sample | trained / all params | GFLOP / sample | activations MiB / sample | CPU s / sample "
          "| steps x batch x GPUs | PFLOP | A100-h | RTX 4090-h | GiB / GPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for workload in workloads(chosen):
        r = measure(workload, args.repeats)
        rows.append(r)
        print(f"| {r['workload']} | {r['sample']} | {r['trained_params'] / 1e6:.2f} M / {r['total_params'] / 1e6:.2f} M "
              f"| {r['gflop_per_sample']:.3g} | {r['activation_mib_per_sample']:.3g} | {r['cpu_s_per_sample_step']:.3g} "
              f"| {r['steps']} x {r['batch_per_process']} x {r['processes']} | {r['total_pflop']:.3g} "
              f"| {r['a100_hours']:.3g} | {r['rtx4090_hours']:.3g} | {r['gib_per_gpu']:.3g} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
