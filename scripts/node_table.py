"""Prints the README's node reference (markdown) from a real server's ``/object_info``, so it never drifts.

Usage: ``.venv/bin/python scripts/node_table.py > /tmp/nodes.md``
"""
from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from comfy_host import PACK_LINK_NAME, ComfyHost  # noqa: E402


def main() -> None:
    with ComfyHost.start() as host:
        info = host.object_info()
    nodes = {k: v for k, v in info.items() if v.get("python_module", "").startswith(f"custom_nodes.{PACK_LINK_NAME}")}
    by_category: dict[str, list] = {}
    for name, node in nodes.items():
        by_category.setdefault(node["category"], []).append((name, node))
    print("## Nodes\n")
    for category in sorted(by_category):
        print(f"### {category}\n")
        for name, node in sorted(by_category[category]):
            inputs = []
            for group in ("required", "optional"):
                for input_name, spec in node["input"].get(group, {}).items():
                    kind = spec[0] if isinstance(spec[0], str) else "COMBO"
                    inputs.append(f"`{input_name}`" + (" (optional)" if group == "optional" else "") + f": {kind}")
            outputs = ", ".join(f"`{n}`: {t}" for n, t in zip(node["output_name"], node["output"]))
            print(f"**{node.get('display_name') or name}** (`{name}`): {node['description']}\n")
            print(f"- inputs: {'; '.join(inputs)}")
            print(f"- outputs: {outputs or 'none'}\n")


if __name__ == "__main__":
    main()
