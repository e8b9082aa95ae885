"""Memory and time of drawing -> motion (SparseTrajectoryToFlow) against the number of arrows and tracks.

Each case runs in its own process, which reports its peak memory above what it held just before the call
(``ru_maxrss``) and the call's time. The reference, measured in the same run, is the same code with chunking
switched off (every arrow's or track's [H, W] weights held at once, as the library did before issue 20): its
memory grows with arrows x pixels; the chunked library's must not.

Run: ``.venv/bin/python bench/bench_drawn_motion.py`` (about two minutes; ``--quick`` for fewer, smaller cases)
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {tests!r})
import conftest  # noqa: F401  (the pack as `imagedynamics`)
import scipy.interpolate  # noqa: F401  (imported before the baseline: its own memory is not the call's)
import torch
torch.set_num_threads(1)
from imagedynamics.ops import drawn_motion, sparse_to_dense

mode, count, size, frames, chunked, edge = json.loads(sys.argv[1])
if not chunked:
    sparse_to_dense.CHUNK_ELEMENTS = 1 << 40
    sparse_to_dense._AFFINITY_CHUNK = None
g = torch.Generator().manual_seed(0)
start = torch.rand(count, 2, generator=g) * (size - 1)
end = (start + torch.randn(count, 2, generator=g) * 4).clamp(0, size - 1)
text = json.dumps({{"arrows": [{{"start": s, "end": e}} for s, e in zip(start.tolist(), end.tolist())]}})
picture = torch.rand(3, size, size, generator=g)
document = drawn_motion.tr.read_document(text)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
began = time.perf_counter()
drawn = drawn_motion.motion_from_drawing(document, picture, mode=mode, num_frames=frames, edge_aware=edge)
seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
output = drawn.motion.displacement.numel() * 4 / 2 ** 20
print(json.dumps({{"peak_mb": peak / 1024, "output_mb": output, "seconds": seconds}}))
"""


def run_case(mode: str, count: int, size: int, frames: int, chunked: bool, edge: bool) -> dict:
    code = CHILD.format(tests=str(ROOT / "tests"))
    done = subprocess.run([sys.executable, "-c", code, json.dumps([mode, count, size, frames, chunked, edge])],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and smaller cases (seconds)")
    args = parser.parse_args()
    size = 128 if args.quick else 256
    cases = [  # (label, mode, edge-aware, few, many, frames)
        ("arrows, Gaussian", "arrows", False, 100, 1000 if args.quick else 4000, 2),
        ("arrows, edge-aware", "arrows", True, 16, 64 if args.quick else 256, 2),
        ("tracks", "tracks", False, 100, 1000 if args.quick else 4000, 16),
    ]
    print(f"picture {size} x {size}; peak memory above the inputs (MB), time (s); "
          "'unchunked' = every [H, W] weight map at once (the reference)")
    print(f"{'case':<22}{'N':>6}  {'chunked MB':>10} {'s':>7}  {'unchunked MB':>12} {'s':>7}  output MB")
    for label, mode, edge, few, many, frames in cases:
        rows = {}
        for count in (few, many):
            new = run_case(mode, count, size, frames, True, edge)
            old = run_case(mode, count, size, frames, False, edge)
            rows[count] = (new, old)
            print(f"{label:<22}{count:>6}  {new['peak_mb']:>10.1f} {new['seconds']:>7.2f}  {old['peak_mb']:>12.1f} "
                  f"{old['seconds']:>7.2f}  {new['output_mb']:.1f}")
        grow_new = rows[many][0]["peak_mb"] / max(rows[few][0]["peak_mb"], 1.0)
        grow_old = rows[many][1]["peak_mb"] / max(rows[few][1]["peak_mb"], 1.0)
        print(f"{'':<22}memory x{many // few} items: chunked {grow_new:.2f}x, unchunked {grow_old:.2f}x; "
              f"time per item {rows[many][0]['seconds'] / many * 1e3:.2f} ms (target: memory <= 1.3x)")


if __name__ == "__main__":
    main()
