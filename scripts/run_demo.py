"""The demo: run the default workflow headless in a real ComfyUI on the built-in example picture.

Writes a lossless animated WebP (and an H.264 MP4 when the host's video nodes can encode one) to ``output/``, prints
the paths, and measures the loop in each written file (decoded back): the flag's sharpness in its worst frame over
frame 0's, and the seam (the wrap step over the median step; 1 = seamless). Run through ``make demo``, which sets
everything up first. ``IMAGEDYNAMICS_DEMO_BASE`` overrides the host's base directory (default ``.host/demo-base``).
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from comfy_host import ComfyHost, PromptFailed  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "workflows" / "cinemagraph.json"


def decode(path: pathlib.Path):
    """The frames of a written WebP (PIL) or MP4 (PyAV) as [T, 3, H, W] float32 in [0, 1]."""
    import numpy as np
    import torch

    if path.suffix == ".webp":
        from PIL import Image

        with Image.open(path) as im:
            frames = []
            for index in range(im.n_frames):
                im.seek(index)
                frames.append(np.asarray(im.convert("RGB")))
    else:
        import av

        with av.open(str(path)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0


def measure(path: pathlib.Path) -> str:
    """The loop's worst-frame sharpness (inside the brush: the flag) over frame 0's, and its seam ratio."""
    import numpy as np
    import torch
    from PIL import Image

    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # noqa: F401  (makes the pack importable as `imagedynamics` without a host)

    from imagedynamics.ops.loop_metrics import seam_ratio, sharpness_ratio

    frames = decode(path)
    with Image.open(ROOT / "example_inputs" / "astronaut.png") as im:
        brush = torch.from_numpy((np.asarray(im)[..., 3] == 0).astype(np.float32))
    if tuple(brush.shape) != tuple(frames.shape[-2:]):
        return f"{len(frames)} frames"
    worst = float(sharpness_ratio(frames, brush).min())
    return (f"{len(frames)} frames, flag sharpness (worst frame / frame 0) {worst:.2f}, seam (wrap step / median "
            f"step) {seam_ratio(frames, brush):.2f}")


def main() -> int:
    began = time.monotonic()
    base = pathlib.Path(os.environ.get("IMAGEDYNAMICS_DEMO_BASE", ROOT / ".host" / "demo-base"))
    (base / "input").mkdir(parents=True, exist_ok=True)
    for picture in (ROOT / "example_inputs").glob("*.png"):
        shutil.copy(picture, base / "input" / picture.name)
    out_dir = ROOT / "output"
    out_dir.mkdir(exist_ok=True)
    print(f"[demo] starting ComfyUI (log: {base / 'server.log'})")
    with ComfyHost.start(base_dir=base) as host:
        prompt = ui_to_api(json.loads(WORKFLOW.read_text()), host.object_info())
        save_node = next(k for k, v in prompt.items() if v["class_type"] == "SaveAnimatedWEBP")
        render_node = prompt[save_node]["inputs"]["images"]
        # Also encode an MP4 through the host's own video nodes.
        prompt["900"] = {"class_type": "CreateVideo", "inputs": {"images": render_node,
                                                               "fps": prompt[save_node]["inputs"]["fps"]}}
        prompt["901"] = {"class_type": "SaveVideo", "inputs": {"video": ["900", 0], "format": "mp4",
                                                             "codec": "h264",
                                                             "filename_prefix": "ImageDynamics/cinemagraph"}}
        print("[demo] running workflows/cinemagraph.json")
        try:
            outputs = host.run(prompt)
        except PromptFailed as error:  # no H.264 encoder in this host's PyAV: keep the WebP
            print(f"[demo] MP4 encoding unavailable ({error}); writing the WebP only")
            del prompt["900"], prompt["901"]
            outputs = host.run(prompt)
        written = []
        for node_outputs in outputs.values():
            for item in node_outputs.get("images", []) + node_outputs.get("video", []) + node_outputs.get(
                    "videos", []):
                source = host.output_path(item)
                if source.suffix in (".webp", ".mp4") and item.get("type") == "output":
                    target = out_dir / f"cinemagraph{source.suffix}"
                    shutil.copy(source, target)
                    written.append(target)
    for path in written:
        print(f"[demo] wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): {measure(path)}")
    print(f"[demo] done in {time.monotonic() - began:.0f} s")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
