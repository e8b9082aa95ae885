"""The pictures and clips the example workflows load, provided to ComfyUI's input folder.

The templates in ``workflows/`` name files such as ``astronaut.png``; a template that names a file the user does
not have fails at its first node. So when the server starts, every file of the pack's ``example_inputs/`` folder
is copied into ComfyUI's input folder unless a file of that name is already there (a user's own file is never
replaced).
"""
from __future__ import annotations

import logging
import os
import pathlib
import shutil

EXAMPLE_INPUTS = pathlib.Path(__file__).resolve().parents[1] / "example_inputs"
MEDIA_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".mp4", ".webm", ".mov"}


def provide_example_inputs(input_dir: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """Copy the example inputs missing from ``input_dir`` (default: ComfyUI's input folder); return the new files.

    A read-only or missing input folder is logged, never raised: the pack's nodes work without the examples.
    """
    if input_dir is None:
        import folder_paths

        input_dir = folder_paths.get_input_directory()
    target = pathlib.Path(input_dir)
    copied = []
    for source in sorted(EXAMPLE_INPUTS.glob("*")):
        if source.suffix.lower() not in MEDIA_SUFFIXES or (target / source.name).exists():
            continue
        try:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / source.name)
            copied.append(target / source.name)
        except OSError as error:
            logging.warning("ImageDynamics: could not copy the example input %s to %s: %s", source.name, target, error)
    if copied:
        logging.info("ImageDynamics: example inputs copied to %s: %s", target, ", ".join(p.name for p in copied))
    return copied
