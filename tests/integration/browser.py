"""Driving the real ComfyUI front end in headless Chromium (playwright), shared by the editor's browser tests.

``open_page(comfy)`` is a context manager giving a page with the front end loaded and the pack's extensions
registered; it fails the test when the page raised an uncaught error. The ``screen``/``drag`` helpers work in
picture pixels of an editor's canvas, whatever the graph's zoom and the display's pixel ratio.
"""
from __future__ import annotations

import contextlib
import json
import pathlib
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
READY = """() => window.app?.graph && window.LiteGraph?.registered_node_types?.SparseTrajectoryToFlow
    && window.app.extensionManager?.workflow?.activeWorkflow
    && window.app.extensions.some(e => e.name === 'ImageDynamics.MotionEditor')
    && window.app.extensions.some(e => e.name === 'ImageDynamics.PointPicker')"""


def require_browser():
    """Skip the calling module when playwright or Chromium is missing (``scripts/bootstrap.sh --browser``)."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is installed by scripts/bootstrap.sh --browser")
    if not pathlib.Path(CHROMIUM).exists():
        pytest.skip("chromium is installed by scripts/bootstrap.sh --browser", allow_module_level=True)
    return sync_api


def http(base: str, path: str, data=None):
    request = urllib.request.Request(base + path, data=None if data is None else json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


@contextlib.contextmanager
def open_page(comfy, device_scale_factor: float = 1.5):
    """The front end in a 1400 x 900 page (a 1.5x display by default: picture coordinates must not depend on it)."""
    sync_api = require_browser()
    http(comfy.url, "/api/settings", {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False})
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=device_scale_factor)
        context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
        context.route(lambda url: not url.startswith(comfy.url), lambda route: route.abort())
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(comfy.url + "/")
        page.wait_for_function(READY, timeout=90_000)
        page.errors = errors
        yield page
        browser.close()
    assert not errors, errors


def load_workflow(page, name: str) -> None:
    workflow = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
    page.evaluate("wf => app.loadGraphData(wf)", workflow)
    page.wait_for_timeout(300)


def show_node(page, node_id: int, scale: float = 0.85, size=None) -> None:
    """Bring a node into view near the top left at a graph zoom that is not 1 (optionally resizing it)."""
    page.evaluate("""([id, scale, size]) => {
        const n = app.graph.getNodeById(id);
        if (size) n.setSize(size);
        const ds = app.canvas.ds, rect = app.canvas.canvas.getBoundingClientRect();
        ds.scale = scale;
        ds.offset = [(rect.width / 2 - 240) / ds.scale - n.pos[0], 70 / ds.scale - n.pos[1]];
        app.canvas.setDirty(true, true); }""", [node_id, scale, size])


def dialogs(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 300))")


def widget(page, node_id: int, name: str):
    return page.evaluate("([id, name]) => app.graph.getNodeById(id).widgets.find(w => w.name === name).value",
                         [node_id, name])


def set_widget(page, node_id: int, name: str, value) -> None:
    """Set a widget's value as a workflow load or an extension would (a text box's own setter runs its callback)."""
    page.evaluate("""([id, name, value]) => {
        const w = app.graph.getNodeById(id).widgets.find(w => w.name === name);
        w.value = value; app.graph.setDirtyCanvas(true, true); }""", [node_id, name, value])


def screen(page, x: float, y: float, canvas: str) -> tuple[float, float]:
    """Screen position of picture pixel (x, y) of the canvas `canvas` (a CSS selector), from its box and size."""
    # The canvas must have stopped moving first: a DOM widget follows a graph pan or zoom on a later frame, and a
    # box read before that frame puts the click somewhere else in the picture (seen on a slow CI machine).
    return tuple(page.evaluate("""async ([x, y, sel]) => {
        const frame = () => new Promise(done => requestAnimationFrame(done));
        const box = () => { const r = document.querySelector(sel).getBoundingClientRect();
            return [r.left, r.top, r.width, r.height]; };
        let last = box();
        for (let i = 0; i < 60; i++) {
            await frame(); await frame();
            const now = box();
            if (now.every((v, k) => v === last[k])) break;
            last = now;
        }
        const c = document.querySelector(sel), r = c.getBoundingClientRect();
        return [r.left + (x + 0.5) / c.width * r.width, r.top + (y + 0.5) / c.height * r.height]; }""",
                               [x, y, canvas]))


def drag(page, points, canvas: str, steps: int = 6) -> None:
    page.mouse.move(*screen(page, *points[0], canvas))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*screen(page, *p, canvas), steps=steps)
    page.mouse.up()


def queue_from_ui(page) -> dict:
    """Press Run; return {"response": the /api/prompt answer, "prompt": the API prompt the front end sent}."""
    with page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as info:
        page.get_by_test_id("queue-button").get_by_role("button", name="Run").click()
    return {"response": info.value.json(), "prompt": info.value.request.post_data_json["prompt"]}


def node_clip(page, node_id: int) -> dict:
    """The screen box of a node (title included), for screenshots."""
    box = page.evaluate("""id => {
        const n = app.graph.getNodeById(id), ds = app.canvas.ds, r = app.canvas.canvas.getBoundingClientRect();
        const title = LiteGraph.NODE_TITLE_HEIGHT;
        return {x: r.left + (n.pos[0] + ds.offset[0]) * ds.scale - 4,
                y: r.top + (n.pos[1] - title + ds.offset[1]) * ds.scale - 4,
                width: n.size[0] * ds.scale + 8, height: (n.size[1] + title) * ds.scale + 8}; }""", node_id)
    return {k: float(v) for k, v in box.items()}
