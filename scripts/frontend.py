"""Drive ComfyUI's real front end in headless Chromium: open it, open a template, frame the graph, screenshot it.

Shared by the browser tests and ``scripts/screenshot_workflow.py``. Needs ``scripts/bootstrap.sh --browser``
(Debian's chromium and the playwright package; never ``playwright install``, which downloads a browser).
Pitfalls handled here are those of /work/shared/reference/frontend_e2e.md: the first-run Templates browser and the
Nodes 2.0 banner are dismissed, the minimap hidden, and every request off the host is blocked (the UI calls
external APIs that fail offline).
"""
from __future__ import annotations

import json
import pathlib
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ZOOM, MIN_VIEW, MAX_VIEW = 0.75, (1400, 900), (2600, 1700)  # screenshots
SETTINGS = {
    "Comfy.TutorialCompleted": True,          # no first-run Templates browser
    "Comfy.Minimap.Visible": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,  # full detail at any zoom (screenshots of whole graphs)
    "LiteGraph.Canvas.MaximumFps": 10,        # software rendering shares the CPU with the server it drives
}
READY = """() => window.app?.graph && window.app.extensionManager?.workflow?.activeWorkflow
    && window.app.extensions.some(e => e.name === 'ImageDynamics.MotionEditor')"""


def browser_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return pathlib.Path(CHROMIUM).exists()


def prepare_user_settings(url: str) -> None:
    """:data:`SETTINGS` for the default user (ComfyUI keeps settings per user on the server)."""
    request = urllib.request.Request(url + "/api/settings", headers={"Content-Type": "application/json"},
                                     data=json.dumps(SETTINGS).encode())
    urllib.request.urlopen(request, timeout=30).close()


def open_page(playwright, url: str, viewport: tuple[int, int] = (1800, 1000)):
    """(browser, page) with the front end loaded and the pack's extension registered."""
    prepare_user_settings(url)
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
    context.route(lambda request_url: not request_url.startswith(url), lambda route: route.abort())
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_function(READY, timeout=90_000)
    return browser, page


GRAPH_BOUNDS = """() => {
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    const add = (x, y, w, h) => { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w);
                                  y1 = Math.max(y1, y + h); };
    for (const n of app.graph._nodes) add(n.pos[0], n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT, n.size[0],
                                          n.size[1] + LiteGraph.NODE_TITLE_HEIGHT);
    for (const g of app.graph._groups ?? []) add(...(g._bounding ?? g.bounding));
    return [x0, y0, x1 - x0, y1 - y0]; }"""


def frame_graph(page, top: float = 90.0, margin: float = 30.0, max_scale: float = 1.0) -> float:
    """Zoom and pan so that every node and group is in view, right of the sidebar and below the top bar (both lie
    over the canvas); returns the zoom."""
    return page.evaluate("""([bounds, top, margin, maxScale]) => {
        const [x, y, w, h] = bounds, ds = app.canvas.ds, rect = app.canvas.canvas.getBoundingClientRect();
        const left = (document.querySelector('.side-tool-bar-container')?.getBoundingClientRect().right ?? 0)
            - rect.left + margin;
        const scale = Math.min(maxScale, (rect.width - left - margin) / w, (rect.height - top - margin) / h);
        ds.scale = scale;
        ds.offset = [(left + (rect.width - left - margin - w * scale) / 2) / scale - x, top / scale - y];
        app.canvas.setDirty(true, true);
        app.canvas.draw(true, true);  // now, not at the next (throttled) animation frame
        return scale; }""", [page.evaluate(GRAPH_BOUNDS), top, margin, max_scale])


def pack_category(page) -> str:
    """The Templates browser's category of this pack: the name of its folder in custom_nodes."""
    templates = page.evaluate("async () => (await fetch('/api/workflow_templates')).json()")
    return next(module for module, names in templates.items() if "cinemagraph" in names)


def open_template(page, name: str, timeout: float = 30_000) -> None:
    """Open ``name`` as a user does: Templates browser (the sidebar's Templates), the pack's category, its card."""
    if not page.locator(".workflow-template-selector-dialog").count():
        page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    dialog = page.locator(".workflow-template-selector-dialog")
    dialog.get_by_role("button", name=pack_category(page), exact=True).click()
    dialog.get_by_test_id(f"template-workflow-{name}").click()
    page.wait_for_function("""name => app.extensionManager.workflow.activeWorkflow?.filename === name
        && !document.querySelector('.workflow-template-selector-dialog')""", arg=name, timeout=timeout)
    page.wait_for_timeout(300)


def screenshot_graph(page, path: str | pathlib.Path, tolerance: float = 5.0) -> bool:
    """Frame the whole graph at full detail and save a screenshot to ``path``.

    The file is rewritten only when the picture changed (mean difference over ``tolerance`` levels, or another
    size), so that repeated runs do not touch a screenshot that shows the same thing. Returns whether it wrote.
    """
    # a window large enough to show the whole graph at a readable zoom (at least ZOOM), within limits
    _, _, w, h = page.evaluate(GRAPH_BOUNDS)
    page.set_viewport_size({"width": int(min(MAX_VIEW[0], max(MIN_VIEW[0], w * ZOOM + 160))),
                            "height": int(min(MAX_VIEW[1], max(MIN_VIEW[1], h * ZOOM + 140)))})
    page.wait_for_timeout(300)
    size = page.viewport_size
    page.mouse.move(size["width"] / 2, size["height"] - 8)  # empty canvas: no hover highlight or tooltip
    frame_graph(page)
    page.wait_for_timeout(300)  # the DOM widgets (pictures, text boxes, the editor) follow the canvas
    frame_graph(page)
    png = page.screenshot()
    return write_if_changed(pathlib.Path(path), png, tolerance)


def write_if_changed(path: pathlib.Path, png: bytes, tolerance: float) -> bool:
    import io

    import numpy as np
    from PIL import Image

    if path.exists():
        with Image.open(path) as old, Image.open(io.BytesIO(png)) as new:
            if old.size == new.size:
                a = np.asarray(old.convert("RGB"), dtype=np.float32)
                b = np.asarray(new.convert("RGB"), dtype=np.float32)
                if float(np.abs(a - b).mean()) <= tolerance:
                    return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return True
