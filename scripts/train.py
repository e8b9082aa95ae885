"""Train a motion model of the pack from your videos.

Usage::

    python scripts/train.py gid      --videos DIR --out ComfyUI/models/motion_models/gid.safetensors [...]
    python scripts/train.py lvmm     --videos DIR --out .../lvmm.safetensors [...]
    python scripts/train.py renderer --videos DIR --out .../renderer.safetensors [...]
    accelerate launch --multi_gpu --num_processes 8 scripts/train.py gid ...   # the same command on 8 GPUs
    accelerate config && accelerate launch scripts/train.py gid ...           # several machines

``python scripts/train.py <family> --help`` lists a family's options (the recipe flags are shared:
--lr-schedule, --warmup-steps, --ema-decay, --gradient-accumulation, --gradient-checkpointing, --validate-every,
--mixed-precision; see train/common.py). The trainers need accelerate, which the pack's runtime does not:
``pip install -r requirements-train.txt`` (or the ``train`` extra of pyproject.toml).
"""
from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _package import import_pack  # noqa: E402

FAMILIES = ("gid", "lvmm", "renderer")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in FAMILIES:
        print(__doc__)
        return 2
    if importlib.util.find_spec("accelerate") is None:  # a training-only dependency, not in requirements.txt
        print("The trainers need accelerate: pip install -r requirements-train.txt (or pip install accelerate) "
              "in this Python environment.", file=sys.stderr)
        return 2
    import_pack()
    trainer = importlib.import_module(f"imagedynamics.train.{argv[0]}")
    return int(trainer.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
