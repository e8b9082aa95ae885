"""Screenshots of example workflows in the real ComfyUI front end (headless Chromium), for the README.

Usage: ``.venv/bin/python scripts/screenshot_workflow.py cinemagraph docs/workflow.png``
Needs ``scripts/bootstrap.sh --browser`` (Debian's chromium and the playwright package).
"""
from __future__ import annotations

import json
import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from comfy_host import ComfyHost  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(name: str, out: str) -> None:
    from playwright.sync_api import sync_playwright

    workflow = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
    with ComfyHost.start() as host:
        for picture in (ROOT / "examples").glob("*.png"):
            shutil.copy(picture, host.base_dir / "input" / picture.name)
        host.post("/api/settings", {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False})
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1800, "height": 1000})
            context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
            context.route(lambda url: not url.startswith(host.url), lambda route: route.abort())
            page = context.new_page()
            page.goto(host.url + "/")
            page.wait_for_function("() => window.app?.graph && window.app.extensionManager?.workflow?.activeWorkflow",
                                   timeout=60_000)
            page.evaluate("wf => window.app.loadGraphData(wf)", workflow)
            page.wait_for_timeout(1500)
            page.evaluate("() => { window.app.canvas.ds.scale = 0.8; window.app.canvas.ds.offset = [70, 110];"
                          " window.app.graph.setDirtyCanvas(true, true); }")
            page.wait_for_timeout(800)
            page.screenshot(path=out)
            browser.close()
    print(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
