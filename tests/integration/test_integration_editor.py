"""The motion editor (web/motion_editor.js) in the real ComfyUI front end, in headless Chromium.

One browser session (about 30-50 s with the render): draw two arrows and a trajectory with mouse events on the
SparseTrajectoryToFlow canvas, check the JSON the editor keeps in the "trajectories" widget, exercise its keys,
queue from the Run button and check that the saved animation moves the way the arrows point; then reload a saved
workflow (the drawing comes back exactly) and load one whose pack nodes are unknown (ComfyUI's missing-nodes
dialog). Saves docs/editor.png, the README's screenshot.
"""
from __future__ import annotations

import copy
import json
import pathlib
import urllib.request

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOT = ROOT / "docs" / "editor.png"
EDITOR = '.imd-editor[data-node-id="2"]'
PACK_TYPES = ("SparseTrajectoryToFlow", "EulerianMotion", "SoftmaxSplatRender", "PreviewMotion")

# Picture pixels (the flag of astronaut.png is the only region its mask lets move: x < ~90, y < ~230).
ARROWS = [((20.0, 60.0), (60.0, 60.0)),      # to the right, over the stars
          ((45.0, 150.0), (45.0, 195.0))]    # down, over the stripes
TRACK = [(150.0, 440.0), (180.0, 420.0), (210.0, 425.0), (250.0, 450.0)]
SPEED = 0.1  # 40 px arrows -> 4 px per frame
FRAMES = 12
SIGMA = 60.0

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is installed by scripts/bootstrap.sh --browser")
if not pathlib.Path(CHROMIUM).exists():
    pytest.skip("chromium is installed by scripts/bootstrap.sh --browser", allow_module_level=True)


def _http(base: str, path: str, data=None):
    request = urllib.request.Request(base + path, data=None if data is None else json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _dialogs(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 300))")


def _value(page) -> str:
    return page.evaluate("() => app.graph.getNodeById(2).widgets.find(w => w.name === 'trajectories').value")


def _screen(page, x: float, y: float) -> tuple[float, float]:
    """Screen position of picture pixel (x, y) from the canvas's box and the picture's size (zoom/DPI-free)."""
    return tuple(page.evaluate("""([x, y]) => {
        const c = document.querySelector('.imd-editor[data-node-id="2"] canvas');
        const r = c.getBoundingClientRect();
        return [r.left + (x + 0.5) / c.width * r.width, r.top + (y + 0.5) / c.height * r.height]; }""", [x, y]))


def _drag(page, points, steps: int = 6) -> None:
    page.mouse.move(*_screen(page, *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*_screen(page, *p), steps=steps)
    page.mouse.up()


def _flow(frames: list[np.ndarray], later: int) -> np.ndarray:
    import cv2

    a = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(frames[later], cv2.COLOR_RGB2GRAY)
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 21, 5, 5, 1.1, 0)


def _read_webp(path: pathlib.Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        frames = []
        for index in range(im.n_frames):
            im.seek(index)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


@pytest.fixture(scope="module")
def page(comfy):
    _http(comfy.url, "/api/settings", {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False})
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # A zoomed graph on a 1.5x display: picture coordinates must not depend on either.
        context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1.5)
        context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
        context.route(lambda url: not url.startswith(comfy.url), lambda route: route.abort())
        pg = context.new_page()
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(comfy.url + "/")
        pg.wait_for_function("""() => window.app?.graph && window.LiteGraph?.registered_node_types?.SparseTrajectoryToFlow
            && window.app.extensionManager?.workflow?.activeWorkflow
            && window.app.extensions.some(e => e.name === 'ImageDynamics.MotionEditor')""", timeout=90_000)
        pg.errors = errors
        yield pg
        browser.close()
    assert not errors, errors


def _load_cinemagraph(comfy, page) -> None:
    workflow = json.loads((ROOT / "workflows" / "cinemagraph.json").read_text())
    page.evaluate("wf => app.loadGraphData(wf)", workflow)
    page.wait_for_timeout(300)
    import_errors = [line for line in comfy.log().splitlines()
                     if "comfyui-imagedynamics" in line and ("Error while calling" in line or "IMPORT FAILED" in line)]
    assert _dialogs(page) == [], (_dialogs(page), import_errors)
    # Give the editor room and bring it into view at a zoom that is not 1.
    page.evaluate("""() => {
        const n = app.graph.getNodeById(2);
        n.setSize([470, 860]);
        const ds = app.canvas.ds, rect = app.canvas.canvas.getBoundingClientRect();
        ds.scale = 0.85;
        ds.offset = [(rect.width / 2 - 240) / ds.scale - n.pos[0], 70 / ds.scale - n.pos[1]];
        app.canvas.setDirty(true, true); }""")
    page.wait_for_selector(EDITOR + " canvas", state="visible", timeout=10_000)
    # The picture comes from the Load Image node's file (/view?...&type=input).
    page.wait_for_function("() => app.graph.getNodeById(2).imdEditor?.picture?.width === 512", timeout=10_000)


def test_draw_queue_and_the_frames_move_the_drawn_way(comfy, page):
    _load_cinemagraph(comfy, page)
    page.click(EDITOR + " button[data-action=clear]")
    doc = json.loads(_value(page))
    assert doc["arrows"] == [] and doc["tracks"] == [] and (doc["width"], doc["height"]) == (512, 512)

    view = page.evaluate("() => [app.canvas.ds.scale, ...app.canvas.ds.offset, ...app.graph.getNodeById(2).pos]")
    page.fill(EDITOR + " input[data-control=speed]", str(SPEED))
    page.dispatch_event(EDITOR + " input[data-control=speed]", "change")
    page.click(EDITOR + " button[data-tool=arrow]")
    for start, end in ARROWS:
        _drag(page, [start, end])
    page.click(EDITOR + " button[data-tool=track]")
    _drag(page, TRACK)

    # Drawing neither panned the graph nor dragged the node.
    assert page.evaluate("() => [app.canvas.ds.scale, ...app.canvas.ds.offset, ...app.graph.getNodeById(2).pos]") == view
    value = _value(page)
    doc = json.loads(value)
    assert doc["coordinates"] == "pixels" and (doc["width"], doc["height"]) == (512, 512)
    assert len(doc["arrows"]) == 2, doc
    for arrow, (start, end) in zip(doc["arrows"], ARROWS):
        assert np.allclose(arrow["start"], start, atol=1.5) and np.allclose(arrow["end"], end, atol=1.5), arrow
        assert arrow["speed"] == pytest.approx(SPEED)
    assert len(doc["tracks"]) == 1 and len(doc["tracks"][0]) >= 2, doc
    track = np.asarray(doc["tracks"][0])
    assert np.allclose(track[0], TRACK[0], atol=1.5) and np.allclose(track[-1], TRACK[-1], atol=1.5), track
    # Every drawn point lies near the dragged polyline.
    assert max(min(_segment_distance(p, a, b) for a, b in zip(TRACK, TRACK[1:])) for p in track) < 2.0

    # Keys act on the editor only while the pointer is over it; the graph keeps its nodes and its own undo.
    nodes_before = page.evaluate("() => app.graph.nodes.length")
    page.click(EDITOR + " button[data-tool=move]")
    page.mouse.click(*_screen(page, 180, 420))  # a point of the track: selects it
    page.keyboard.press("Delete")
    assert len(json.loads(_value(page))["tracks"]) == 0
    page.keyboard.press("Control+z")
    assert _value(page) == value
    assert page.evaluate("() => app.graph.nodes.length") == nodes_before
    page.keyboard.press("Escape")  # deselect, for the screenshot

    SHOT.parent.mkdir(exist_ok=True)
    page.mouse.move(*_screen(page, 300, 300))
    page.screenshot(path=str(SHOT), clip=_node_clip(page))
    assert SHOT.stat().st_size > 10_000

    # Queue from the UI; the prompt carries the drawn JSON. A short loop and no motion preview keep this quick on
    # a shared 2-core CPU (the preview branch is muted, as a user would with Ctrl+M).
    # A narrower Gaussian than the automatic 170 px keeps each arrow's motion its own near it.
    page.evaluate(f"""() => {{
        const widget = (id, name) => app.graph.getNodeById(id).widgets.find(w => w.name === name);
        widget(2, 'sigma').value = {SIGMA};
        widget(3, 'num_frames').value = {FRAMES};
        app.graph.getNodeById(7).mode = 2; }}""")
    with page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as info:
        page.get_by_test_id("queue-button").get_by_role("button", name="Run").click()
    response = info.value.json()
    assert not response.get("node_errors"), response
    inputs = info.value.request.post_data_json["prompt"]["2"]["inputs"]
    assert inputs["trajectories"] == value and inputs["sigma"] == SIGMA
    assert "motion_editor" not in inputs  # the editor itself is not an input of the node
    entry = comfy.wait(response["prompt_id"], timeout=300)
    assert entry["status"]["status_str"] == "success"
    frames = _read_webp(comfy.output_path(entry["outputs"]["5"]["images"][0]))
    assert len(frames) == FRAMES and frames[0].shape[:2] == (512, 512)

    flow = _flow(frames, later=3)
    for start, end in ARROWS:
        direction = np.subtract(end, start) / np.linalg.norm(np.subtract(end, start))
        x0, y0 = (np.asarray(start) + np.asarray(end)) / 2
        window = flow[int(y0) - 12:int(y0) + 13, int(x0) - 12:int(x0) + 13].reshape(-1, 2)
        mean = window.mean(axis=0)
        speed = float(np.linalg.norm(mean))
        print("arrow", start, end, "mean flow", mean)
        assert speed > 1.0, (start, end, mean)  # about 3 frames x 4 px, blurred by the loop's cross-fade
        assert float(mean @ direction) / speed > 0.9, (start, end, mean)  # within 25 degrees of the arrow
    still = np.abs(frames[3].astype(np.float32) - frames[0].astype(np.float32))[:, 300:].mean()
    assert still < 2.0, still  # outside the mask (the astronaut) nothing moves


def test_saved_drawing_reloads_exactly(page):
    """Uses the drawing of the test above (same browser page)."""
    before = page.evaluate("""() => { const e = app.graph.getNodeById(2).imdEditor;
        e.selected = null; e.redraw();
        return {value: e.valueWidget.value, drawing: JSON.stringify(e.drawing), pixels: e.canvas.toDataURL()}; }""")
    assert len(json.loads(before["value"])["arrows"]) == 2
    saved = page.evaluate("() => JSON.parse(JSON.stringify(app.graph.serialize()))")
    page.evaluate("wf => app.loadGraphData(wf)", json.loads(json.dumps(saved)))
    page.wait_for_function("() => app.graph.getNodeById(2)?.imdEditor?.picture?.width === 512", timeout=10_000)
    after = page.evaluate("""() => { const e = app.graph.getNodeById(2).imdEditor; e.redraw();
        return {value: e.valueWidget.value, drawing: JSON.stringify(e.drawing), pixels: e.canvas.toDataURL()}; }""")
    assert after["value"] == before["value"]
    assert after["drawing"] == before["drawing"]
    assert after["pixels"] == before["pixels"]  # the same items drawn the same way on the same picture
    # The brush and the eraser add strokes with their radius; Undo (the button) takes the last one back.
    page.fill(EDITOR + " input[data-control=radius]", "9")
    page.click(EDITOR + " button[data-tool=brush]")
    _drag(page, [(300, 100), (360, 120)])
    page.click(EDITOR + " button[data-tool=erase]")
    _drag(page, [(330, 90), (330, 130)])
    strokes = json.loads(_value(page))["brush"]["strokes"]
    assert [(s["erase"], s["radius"]) for s in strokes] == [(False, 9), (True, 9)], strokes
    assert np.allclose(strokes[0]["points"][0], (300, 100), atol=1.5)
    assert np.allclose(strokes[1]["points"][-1], (330, 130), atol=1.5)
    page.click(EDITOR + " button[data-action=undo]")
    assert len(json.loads(_value(page))["brush"]["strokes"]) == 1
    # The wheel over the editor zooms the graph, as over any node.
    scale = page.evaluate("() => app.canvas.ds.scale")
    page.mouse.move(*_screen(page, 256, 256))
    page.mouse.wheel(0, -200)
    page.wait_for_function(f"() => app.canvas.ds.scale > {scale}", timeout=5_000)
    # A hand-written value in another accepted format is left alone (shown as not editable), never rewritten.
    page.evaluate("""() => { const w = app.graph.getNodeById(2).widgets.find(w => w.name === 'trajectories');
        w.value = '10,10,20,20'; }""")
    assert "Not editable" in page.inner_text(EDITOR + " .imd-status")
    assert _value(page) == "10,10,20,20"
    page.click(EDITOR + " button[data-action=clear]")  # Clear starts a drawing; Undo gives the text back
    assert json.loads(_value(page))["arrows"] == []
    page.click(EDITOR + " button[data-action=undo]")
    assert _value(page) == "10,10,20,20"


def test_workflow_without_the_pack_shows_the_missing_nodes_dialog(page):
    workflow = json.loads((ROOT / "workflows" / "cinemagraph.json").read_text())
    missing = copy.deepcopy(workflow)
    for node in missing["nodes"]:
        if node["type"] in PACK_TYPES:
            node["type"] = "NotInstalled" + node["type"]
    page.evaluate("wf => app.loadGraphData(wf)", missing)
    page.wait_for_selector(".p-dialog:has-text('missing nodes')", timeout=10_000)
    text = "\n".join(_dialogs(page))
    assert "NotInstalledSparseTrajectoryToFlow" in text, text
    page.keyboard.press("Escape")
    page.wait_for_selector(".p-dialog", state="detached", timeout=5_000)
    assert page.evaluate("() => !app.graph.nodes.some(n => n.imdEditor)")  # unknown nodes get no editor
    assert not page.errors, page.errors


def _node_clip(page) -> dict:
    box = page.evaluate("""() => {
        const n = app.graph.getNodeById(2), ds = app.canvas.ds, r = app.canvas.canvas.getBoundingClientRect();
        const title = LiteGraph.NODE_TITLE_HEIGHT;
        return {x: r.left + (n.pos[0] + ds.offset[0]) * ds.scale - 4,
                y: r.top + (n.pos[1] - title + ds.offset[1]) * ds.scale - 4,
                width: n.size[0] * ds.scale + 8, height: (n.size[1] + title) * ds.scale + 8}; }""")
    return {k: float(v) for k, v in box.items()}


def _segment_distance(p, a, b) -> float:
    p, a, b = (np.asarray(v, dtype=float) for v in (p, a, b))
    d = b - a
    t = np.clip(np.dot(p - a, d) / np.dot(d, d), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * d)))

