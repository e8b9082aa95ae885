"""Screenshots of example workflows in the real ComfyUI front end (headless Chromium), opened from its Templates browser.

Usage: ``.venv/bin/python scripts/screenshot_workflow.py [name ...] [--out DIR]`` (default: every workflow, into
``docs/workflows/<name>.png``). The tests take the same screenshots after running each template
(tests/integration/test_integration_templates.py); this script only opens them, without running anything.
Needs ``scripts/bootstrap.sh --browser`` (Debian's chromium and the playwright package).
"""
from __future__ import annotations

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from comfy_host import ComfyHost  # noqa: E402
from frontend import open_page, open_template, screenshot_graph  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="workflow names (default: all of workflows/)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "workflows"), help="folder for <name>.png")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem for p in (ROOT / "workflows").glob("*.json"))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with ComfyHost.start() as host, sync_playwright() as p:
        browser, page = open_page(p, host.url)
        for name in names:
            open_template(page, name)
            screenshot_graph(page, out / f"{name}.png")
            print(out / f"{name}.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
