"""The demo: run the default workflow headless in a real ComfyUI on the built-in example picture.

Writes an animated WebP (and an MP4 when the host's video nodes can encode one) to ``output/`` and prints the
paths. Run through ``make demo``, which sets everything up first.
"""
from __future__ import annotations

import json
import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from comfy_host import ComfyHost, PromptFailed  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "workflows" / "cinemagraph.json"


def main() -> int:
    base = ROOT / ".host" / "demo-base"
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
        print(f"[demo] wrote {path}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
