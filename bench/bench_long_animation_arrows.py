"""Does a tiny long-animation model trained by the suite follow arrows, and does M_s scale its motion? (issue 16)

Runs ``tests/integration/long_animation_arrows.py`` (a subprocess: it imports ComfyUI) with the given training
lengths and prints its measurements: the training losses, the held-out denoising loss with the true, the reversed
and no field (same noise), and for arrows right / left / down / up the mean DIS flow of the decoded frames sampled
by ComfyUI's sampler on the node-patched tiny SVD (with its cosine to the arrow), the bare SVD's, and the mean
|flow| for M_s x 0.5, 1, 1.5 (2, 4, 6 px/frame at the default speeds: the trained range). The reference of every figure is measured in the same run (the bare SVD, the reversed
and the zero field).

    .venv/bin/python bench/bench_long_animation_arrows.py --steps 2000 --joint          # base + additions together
    .venv/bin/python bench/bench_long_animation_arrows.py --base-steps 1000 --steps 1000  # base first, then frozen
    .venv/bin/python bench/bench_long_animation_arrows.py --steps 800 --joint --frames 4 --region-share 0.25 \
        --jitter 1 --group-channels 8                                                   # the suite's
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "integration" / "long_animation_arrows.py"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-steps", type=int, default=0, help="steps training the tiny SVD alone first")
    p.add_argument("--steps", type=int, default=600, help="steps training the additions (with --joint: and SVD)")
    p.add_argument("--joint", action="store_true", help="train SVD's weights with the additions")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--base-lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seeds", type=int, default=2, help="pictures (and noises) per measured arrow")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--frames", type=int, default=5, help="frames per clip")
    p.add_argument("--speeds", type=float, nargs=2, default=(2.0, 6.0), help="speed range, px/frame at 64 px")
    p.add_argument("--jitter", type=float, default=0.0, help="conditioning field scaled by 2^U(-j, j) per clip "
                   "(M_s stays the true one), so that only M_s tells the speed")
    p.add_argument("--motion-input", default=None, choices=("displacement", "flow"),
                   help="what the motion encoder sees (LongAnimationConfig.motion_input; default: the config's)")
    p.add_argument("--size", type=int, default=64, help="frame side, px (a multiple of 16; latents size / 8)")
    p.add_argument("--region-share", type=float, default=0.5, help="share of training clips flowing through a "
                   "rectangle (the others pan)")
    p.add_argument("--field-speed", type=float, default=0.0, help="conditioning field scaled to this length "
                   "(px/frame) wherever it moves, so that only M_s tells the speed (0: the true field)")
    p.add_argument("--rough", type=int, default=0, help="conditioning field = the Gaussian field of 1 .. n arrows "
                   "sampled from the true flow (0: the true field)")
    p.add_argument("--decay", action="store_true", help="learning rate falling linearly to 0")
    p.add_argument("--seed", type=int, default=2, help="training data seed")
    p.add_argument("--svd-channels", type=int, default=32, help="the tiny SVD's channels at its first level")
    p.add_argument("--prior-bucket", action="store_true", help="the --base-steps prior trained with SVD's motion "
                   "bucket id following each clip's speed (127 at 4 px/frame), as the released SVD was")
    p.add_argument("--group-channels", type=int, default=None, help="channels per GroupNorm group in the tiny SVD "
                   "(default: ComfyUI's 32 groups, one channel per group at 32 channels; the released SVD has 10-40)")
    args = p.parse_args()
    kwargs = {"base_steps": args.base_steps, "steps": args.steps, "joint": args.joint, "lr": args.lr,
              "base_lr": args.base_lr, "batch_size": args.batch, "seeds": args.seeds, "threads": args.threads,
              "frames": args.frames, "speeds": list(args.speeds), "jitter": args.jitter,
              "motion_input": args.motion_input, "size": args.size, "region_share": args.region_share,
              "field_speed": args.field_speed, "rough": args.rough, "decay": args.decay, "seed": args.seed,
              "svd_channels": args.svd_channels, "group_channels": args.group_channels,
              "prior_bucket": args.prior_bucket}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run([sys.executable, str(SCRIPT), json.dumps(kwargs)], env=env, capture_output=True, text=True,
                          cwd=SCRIPT.parent)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        sys.exit(done.stderr[-4000:])
    r = json.loads(lines[-1][len("RESULT "):])

    def tenths(losses):
        n = max(1, len(losses) // 5)
        return [round(sum(losses[i:i + n]) / len(losses[i:i + n]), 3) for i in range(0, len(losses), n)]

    print(json.dumps(kwargs))
    if r.get("base_losses"):
        print(f"base training: {len(r['base_losses'])} steps in {r['base_s']:.0f} s, loss by fifths "
              f"{tenths(r['base_losses'])}")
    print(f"additions{' + SVD' if args.joint else ''}: {len(r['losses'])} steps in {r['train_s']:.0f} s, loss by "
          f"fifths {tenths(r['losses'])}")
    h = r["held_out"]
    print(f"held-out loss: true field {h['true']:.4f}, reversed {h['reversed']:.4f}, zero {h['zero']:.4f}")
    m = r["measured"]
    for name in ("right", "left", "down", "up"):
        print(f"arrow {name:5s}: mean DIS flow {m[name]['flow']} px/frame, cosine to the arrow {m[name]['cos']}")
    print(f"bare SVD: mean DIS flow {m['bare']['flow']}")
    s = m["magnitude_by_strength"]
    print(f"mean |flow| by M_s x0.5 / x1 / x1.5: {s['0.5']} / {s['1.0']} / {s['1.5']} (x1.5 / x0.5 = "
          f"{s['1.5'] / max(s['0.5'], 1e-9):.2f})")
    a = m["along_by_strength"]
    print(f"mean flow along the arrow by M_s x0.5 / x1 / x1.5: {a['0.5']} / {a['1.0']} / {a['1.5']}")
    g = m["region"]
    print(f"arrow in the left half only: inside {g['inside']} (cosine {g['inside_cos']}), outside {g['outside']}")
    print(f"measured in {r['measure_s']:.0f} s")


if __name__ == "__main__":
    main()
