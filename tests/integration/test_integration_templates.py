"""Every example workflow as a user meets it: a template in ComfyUI's Templates browser that opens, explains itself and runs.

The server lists the pack's ``workflows/`` as templates (``/api/workflow_templates``, a thumbnail beside each).
In headless Chromium each template is opened from the Templates browser (sidebar -> the pack's category -> its
card), photographed for ``docs/workflows/<name>.png``, queued with the Run button, and run to the end; the test
checks that the front end queued exactly the prompt ``ui_to_api`` makes of the file (so what other tests run over
HTTP is what a user runs) and the files the graph saved. Without Chromium the same prompts run over HTTP.
The template's thumbnail ``workflows/<name>.jpg`` is a frame of that run's animation (or the graph's screenshot).
"""
from __future__ import annotations

import copy
import io
import json
import pathlib
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import frontend  # noqa: E402
from comfy_host import PACK_LINK_NAME  # noqa: E402
from make_workflows import all_workflows, build  # noqa: E402
from test_integration_pack import read_animation  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

WORKFLOWS = sorted(p.stem for p in (ROOT / "workflows").glob("*.json"))
SHOTS = ROOT / "docs" / "workflows"
THUMBNAIL = 384
MODEL_WIDGETS = {"LoadMotionModel": "model_name", "CheckpointLoaderSimple": "ckpt_name", "UNETLoader": "unet_name",
                 "LoadImage": "image", "LoadVideo": "file"}


def test_every_example_is_a_template_with_a_thumbnail(comfy):
    listing = comfy.get("/api/workflow_templates")
    assert sorted(listing[PACK_LINK_NAME]) == WORKFLOWS == sorted(all_workflows())
    import urllib.request

    for name in WORKFLOWS:
        base = f"{comfy.url}/api/workflow_templates/{PACK_LINK_NAME}/{name}"
        with urllib.request.urlopen(base + ".json") as response:
            assert json.loads(response.read()) == json.loads((ROOT / "workflows" / f"{name}.json").read_text())
        with urllib.request.urlopen(base + ".jpg") as response, Image.open(io.BytesIO(response.read())) as im:
            assert im.format == "JPEG" and im.size == (THUMBNAIL, THUMBNAIL), (name, im.format, im.size)
            assert np.asarray(im.convert("L"), dtype=np.float32).std() > 10, f"{name}.jpg is blank"


def test_the_example_inputs_are_provided_to_the_input_folder(comfy):
    """A normal install has no astronaut.png: the pack copies its example inputs when the server starts."""
    for source in (ROOT / "example_inputs").glob("*"):
        if source.suffix in (".png", ".mp4"):
            assert (comfy.base_dir / "input" / source.name).read_bytes() == source.read_bytes()


def test_every_workflow_is_its_spec_and_explains_itself(object_info):
    for name in WORKFLOWS:
        text = (ROOT / "workflows" / f"{name}.json").read_text()
        assert text == build(name, object_info), f"workflows/{name}.json is stale: run `make workflows`"
        workflow = json.loads(text)
        notes = [n for n in workflow["nodes"] if n["type"] == "MarkdownNote"]
        assert len(notes) == 1, name
        note = notes[0]["widgets_values"][0]
        assert note.startswith("## ") and len(note) > 200, name
        for node in workflow["nodes"]:  # every file a node loads is named, with where it comes from
            widget = MODEL_WIDGETS.get(node["type"])
            if widget:
                assert f"/{node['widgets_values'][0]}`: " in note, (name, node["type"], note)
        graph = [n for n in workflow["nodes"] if n["type"] != "MarkdownNote"]
        if len(graph) >= 12:  # larger graphs are drawn in titled stages, each node inside its stage's frame
            assert len(workflow["groups"]) >= 3, name
            for node in graph:
                assert sum(_inside(node, g["bounding"]) for g in workflow["groups"]) == 1, (name, node["type"])


def _inside(node: dict, bounding: list[float]) -> bool:
    x, y, w, h = bounding
    (nx, ny), (nw, nh) = node["pos"], node["size"]
    return x <= nx and y <= ny - 30 and nx + nw <= x + w and ny + nh <= y + h


@pytest.fixture(scope="module")
def browser_page(comfy):
    """The real front end, or None without Chromium (then the templates run over HTTP)."""
    if not frontend.browser_available():
        yield None
        return
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser, page = frontend.open_page(p, comfy.url)
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        browser.close()
    assert not errors, errors


@pytest.mark.parametrize("name", WORKFLOWS)
def test_template_opens_from_the_templates_browser_runs_and_saves_frames(comfy, object_info, prepare_workflow,
                                                                         browser_page, name):
    workflow = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
    prompt = prepare_workflow(name, ui_to_api(workflow, object_info))
    settings = _cpu_test_settings().get(name, {})
    for node_id, inputs in settings.items():
        prompt[node_id]["inputs"].update(inputs)
    if browser_page is None:
        outputs = comfy.run(prompt)
    else:
        outputs = _run_in_browser(comfy, browser_page, name, prompt, object_info, settings)
    saved = [(node_id, item) for node_id, out in outputs.items() for key in ("images", "gifs", "latents")
             for item in out.get(key, []) if item.get("type") == "output"]
    assert saved, outputs
    animations = []
    for node_id, item in saved:
        path = comfy.output_path(item)
        assert path.stat().st_size > 0
        if path.suffix != ".webp":
            continue
        frames = read_animation(path)
        expected = _expected_frames(prompt, node_id)
        if expected is not None:  # the encoder merges repeated frames into one longer frame: count by duration
            durations = _webp_frame_durations(path.read_bytes())
            assert round(sum(durations) / min(durations)) == expected, durations
        width, height = _picture_size(comfy, prompt)
        assert frames[0].shape[:2] == (height, width)
        animations.append(frames)
    spec = all_workflows()[name]()
    if spec.thumbnail == "output" and animations:
        _write_thumbnail(name, _motion_strip(animations[0]))
    elif browser_page is not None:
        with Image.open(SHOTS / f"{name}.png") as shot:  # the graph, without the front end's side and top bars
            _write_thumbnail(name, shot.crop((60, 80, shot.width, shot.height)))


def _cpu_test_settings() -> dict:
    """``{workflow: {node id: {input: value}}}``: smaller settings a spec asks the tests to run its graph with (e.g.
    Motion-I2V's demo settings are for the released weights; the tiny stand-ins run at 64 x 40, 6 frames)."""
    import importlib
    import pkgutil

    import workflow_specs

    settings = {}
    for module in pkgutil.iter_modules(workflow_specs.__path__):
        settings.update(getattr(importlib.import_module(f"workflow_specs.{module.name}"), "CPU_TEST_SETTINGS", {}))
    return settings


def _run_in_browser(comfy, page, name: str, prompt: dict, object_info: dict, settings: dict) -> dict:
    """Open the template from the Templates browser, set ``settings`` in its widgets as a user would, press Run,
    photograph the finished run; return its outputs."""
    frontend.open_template(page, name)
    for node_id, inputs in settings.items():
        for widget, value in inputs.items():
            page.evaluate("""([id, name, value]) => {
                const w = app.graph.getNodeById(id).widgets.find(w => w.name === name);
                w.value = value; w.callback?.(value); }""", [int(node_id), widget, value])
    run = page.get_by_test_id("queue-button").get_by_role("button", name="Run")
    with page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as answer:
        run.click()
    response = answer.value
    assert response.status == 200, response.text()
    queued = response.request.post_data_json["prompt"]
    assert _graph(queued, object_info) == _graph(prompt, object_info), \
        "the front end queued another prompt than ui_to_api makes"
    outputs = comfy.wait(response.json()["prompt_id"])["outputs"]
    page.wait_for_timeout(1200)  # the previews load
    frontend.screenshot_graph(page, SHOTS / f"{name}.png")
    return outputs


def _graph(prompt: dict, object_info: dict) -> dict:
    """Each node's type and inputs, leaving out what the node does not declare (front-end widgets such as Load
    Video's 'video-preview', which the server ignores)."""
    graph = {}
    for node_id, node in prompt.items():
        declared = {**object_info[node["class_type"]]["input"].get("required", {}),
                    **object_info[node["class_type"]]["input"].get("optional", {})}
        graph[node_id] = (node["class_type"], {k: v for k, v in node["inputs"].items() if k in declared})
    return graph


def _motion_strip(frames: list[np.ndarray], tiles: int = 4) -> Image.Image:
    """What moves, frame by frame: the region where the animation differs from its first frame, at ``tiles``
    evenly spaced frames side by side (stacked when the region is wide); the middle frame when nothing moves."""
    stack = np.stack(frames).astype(np.float32)
    moving = np.abs(stack - stack[:1]).max(axis=(0, 3)) > 12
    if moving.sum() < 64:
        return Image.fromarray(stack[len(frames) // 2].astype(np.uint8))
    rows, cols = np.nonzero(moving)
    h, w = moving.shape
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    pad = 12  # a little of the still surroundings, and at least 96 px across
    top, left = max(0, top - pad - max(0, 96 - (bottom - top)) // 2), max(0, left - pad - max(0, 96 - (right - left)) // 2)
    bottom, right = min(h, max(bottom + pad, top + 96)), min(w, max(right + pad, left + 96))
    picks = [round(i * (len(frames) - 1) / tiles) for i in range(tiles)]
    crops = [stack[i, top:bottom, left:right] for i in picks]
    strip = np.concatenate(crops, axis=1 if bottom - top >= right - left else 0)
    return Image.fromarray(strip.astype(np.uint8))


def _write_thumbnail(name: str, picture: Image.Image) -> None:
    """workflows/<name>.jpg: the picture in a square (letterboxed), rewritten only when it visibly changed."""
    picture = picture.convert("RGB")
    picture.thumbnail((THUMBNAIL, THUMBNAIL), Image.LANCZOS)
    square = Image.new("RGB", (THUMBNAIL, THUMBNAIL), (24, 24, 24))
    square.paste(picture, ((THUMBNAIL - picture.width) // 2, (THUMBNAIL - picture.height) // 2))
    path = ROOT / "workflows" / f"{name}.jpg"
    if path.exists():
        with Image.open(path) as old:
            if old.size == square.size and np.abs(np.asarray(old.convert("RGB"), np.float32)
                                                  - np.asarray(square, np.float32)).mean() <= 3.0:
                return
    square.save(path, quality=85, optimize=True)


def _expected_frames(prompt: dict, save_node: str) -> int | None:
    """Follow the graph up from a save node to the first node that sets a frame count (None if none does)."""
    node = prompt[save_node]
    for _ in range(len(prompt)):
        value = node["inputs"].get("num_frames")
        if value is not None and not isinstance(value, list) and value > 0:
            return int(value)
        upstream = [v for k, v in node["inputs"].items() if isinstance(v, list)
                    and k in ("images", "frames", "motion", "flow", "spectrum")]
        if not upstream:
            return None
        node = prompt[upstream[0][0]]
    return None


def _picture_size(comfy, prompt: dict) -> tuple[int, int]:
    loads = [v for v in prompt.values() if v["class_type"] == "LoadImage"]
    with Image.open(comfy.base_dir / "input" / loads[0]["inputs"]["image"]) as im:
        return im.size


def test_the_frame_rate_set_where_the_motion_is_made_reaches_the_saved_file(comfy, load_workflow):
    """The renderer passes the motion's fps to the Save node: change it at EulerianMotion, the file follows."""
    for name in WORKFLOWS:  # every Save node fed by the renderer takes its frame rate from it
        prompt = load_workflow(name)
        for node in prompt.values():
            images = node["inputs"].get("images")
            if node["class_type"] == "SaveAnimatedWEBP" and prompt[images[0]]["class_type"] == "SoftmaxSplatRender":
                assert node["inputs"]["fps"] == [images[0], 1], name
    prompt = copy.deepcopy(load_workflow("cinemagraph"))
    prompt["2"]["inputs"]["num_frames"] = prompt["3"]["inputs"]["num_frames"] = 6
    prompt["3"]["inputs"]["fps"] = 12.0
    outputs = comfy.run(prompt)
    durations = _webp_frame_durations(comfy.output_path(outputs["5"]["images"][0]).read_bytes())
    assert durations == [83] * 6, durations  # 1000 / 12 ms (SaveAnimatedWEBP rounds down)


def _webp_frame_durations(data: bytes) -> list[int]:
    """Each frame's duration in ms, from the ANMF chunks of an animated WebP (bytes 12-14 of each chunk's payload)."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    durations, offset = [], 12
    while offset + 8 <= len(data):
        kind, size = data[offset:offset + 4], int.from_bytes(data[offset + 4:offset + 8], "little")
        if kind == b"ANMF":
            durations.append(int.from_bytes(data[offset + 8 + 12:offset + 8 + 15], "little"))
        offset += 8 + size + (size & 1)
    return durations
