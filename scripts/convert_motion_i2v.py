"""Convert Motion-I2V's released weights (.bin pickles) into the pack's .safetensors checkpoints.

Usage: ``python scripts/convert_motion_i2v.py --help`` (reads each pickle once with ``weights_only=True``).
"""
from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _package import import_pack  # noqa: E402

if __name__ == "__main__":
    import_pack()
    from imagedynamics.models.motion_i2v.convert import main

    sys.exit(int(main(sys.argv[1:]) or 0))
