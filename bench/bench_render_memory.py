"""Working memory of the pixel renderer against the estimate SoftmaxSplatRender plans its chunks with.

``ops.render.render_memory(H, W, chunk)`` is what SoftmaxSplatRender assumes ``render_frames`` needs beyond the
picture, the motion and the output when it splats ``chunk`` frames at once: it lowers ``chunk_size`` until that fits
in the free memory, and refuses by name only when not even one frame fits. Each case here runs in its own process,
which reports its peak memory above what it held just before the call (``ru_maxrss``: the inputs and the output are
allocated before), for the settings of the shipped workflows (fill on, the motion-magnitude metric, a seamless
loop's blend) and without a metric. The estimate must be above every measurement, and not far above (ratio
estimate / measured in [1, 2]: a plan that wastes at most half of what it reserves).

Run: ``.venv/bin/python bench/bench_render_memory.py`` (under a minute; ``--quick`` for 256 px only)
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys
sys.path.insert(0, {tests!r})
import conftest  # noqa: F401  (the pack as `imagedynamics`)
import torch
torch.set_num_threads(1)
from imagedynamics.ops.render import motion_magnitude_metric, render_frames

size, frames, chunk, blend, metric = json.loads(sys.argv[1])
g = torch.Generator().manual_seed(0)
picture = torch.rand(1, 3, size, size, generator=g)
motion = torch.randn(frames, 2, size, size, generator=g) * 3
loop = (torch.randn(frames, 2, size, size, generator=g) * 3, torch.linspace(0, 1, frames)) if blend else None
out = torch.empty(frames, 3, size, size)
weights = motion_magnitude_metric(motion) if metric else None
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
render_frames(picture, motion, weights, chunk_size=chunk, out=out, blend=loop)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({{"peak_mib": peak / 1024}}))
"""


def run_case(size: int, frames: int, chunk: int, blend: bool, metric: bool) -> float:
    code = CHILD.format(tests=str(ROOT / "tests"))
    done = subprocess.run([sys.executable, "-c", code, json.dumps([size, frames, chunk, blend, metric])],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # noqa: F401

    from imagedynamics.ops.render import render_memory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 px only")
    args = parser.parse_args()
    sizes = (256,) if args.quick else (256, 512, 1024)
    print("| size | chunk | loop blend | metric | measured (MiB) | estimate (MiB) | estimate / measured |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for size in sizes:
        for chunk in (1, 4, 8):
            for blend, metric in ((True, True), (False, True), (False, False)):
                measured = run_case(size, max(chunk, 8), chunk, blend, metric)
                estimate = render_memory(size, size, chunk) / 2**20
                ratios.append(estimate / measured)
                print(f"| {size} | {chunk} | {'yes' if blend else 'no'} | {'motion' if metric else 'none'} | "
                      f"{measured:.0f} | {estimate:.0f} | {estimate / measured:.2f} |")
    print(f"\nestimate / measured: {min(ratios):.2f} .. {max(ratios):.2f} (target: 1 .. 2)")


if __name__ == "__main__":
    main()
