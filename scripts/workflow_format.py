"""Workflows in both of ComfyUI's formats.

``workflows/*.json`` are in the UI ("LiteGraph") format that users load by dropping the file on the canvas.
The tests run them over HTTP, which takes the API format; ``ui_to_api`` converts one to the other with the
server's ``/object_info`` (which says which inputs are widgets, in which order), as the front end does.
``build_ui_workflow`` writes the UI format from a compact description, so the example graphs stay tidy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _input_specs(info: dict) -> list[tuple[str, str, dict]]:
    """[(name, type, options)] of a node's inputs in the order the front end lays out widgets."""
    specs = []
    order = info.get("input_order") or {k: list(v) for k, v in info["input"].items()}
    for group in ("required", "optional"):
        entries = info["input"].get(group, {})
        for name in order.get(group, []):
            spec = entries[name]
            kind = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs.append((name, "COMBO" if isinstance(kind, list) else kind, options))
    return specs


def _has_control_widget(name: str, kind: str, options: dict) -> bool:
    return kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed"))


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to an API prompt ``{id: {"class_type", "inputs"}}``."""
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4):  # muted or bypassed
            continue
        kind = node["type"]
        if kind not in object_info:
            raise KeyError(f"node {node['id']}: unknown node type {kind!r}")
        info = object_info[kind]
        inputs: dict = {}
        linked = {i["name"]: i.get("link") for i in node.get("inputs", [])}
        values = list(node.get("widgets_values") or [])
        position = 0
        for name, input_kind, options in _input_specs(info):
            is_widget = input_kind in WIDGET_TYPES and not options.get("forceInput")
            if linked.get(name) is not None:
                link = links[linked[name]]
                inputs[name] = [str(link[1]), link[2]]
                if is_widget:
                    position += 1 + int(_has_control_widget(name, input_kind, options))
                continue
            if is_widget and position < len(values):
                inputs[name] = values[position]
                position += 1 + int(_has_control_widget(name, input_kind, options))
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs, "_meta": {"title": node.get("title", kind)}}
    return prompt


@dataclass
class Node:
    """One node of a workflow description: its type, widget values by name, and links by input name."""

    id: int
    type: str
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)  # input name -> (source node id, output index)
    title: str | None = None
    size: tuple[int, int] = (320, 160)


def build_ui_workflow(nodes: list[Node], object_info: dict, extra: dict | None = None) -> dict:
    """Lay out ``nodes`` left to right by depth and return a UI-format workflow (schema 0.4)."""
    by_id = {n.id: n for n in nodes}
    depth: dict[int, int] = {}

    def node_depth(node_id: int) -> int:
        if node_id not in depth:
            sources = [src for src, _ in by_id[node_id].links.values()]
            depth[node_id] = 1 + max((node_depth(s) for s in sources), default=-1)
        return depth[node_id]

    links, ui_nodes, rows = [], [], {}
    outputs_links: dict[tuple[int, int], list[int]] = {}
    for node in nodes:
        for name, (src, slot) in node.links.items():
            link_id = len(links) + 1
            kind = object_info[by_id[src].type]["output"][slot]
            links.append([link_id, src, slot, node.id, name, kind])
            outputs_links.setdefault((src, slot), []).append(link_id)
    # columns are as wide as their widest node, so wide nodes (the canvas editor) never overlap the next column
    widths: dict[int, int] = {}
    for node in nodes:
        widths[node_depth(node.id)] = max(widths.get(node_depth(node.id), 0), node.size[0])
    column_x = {c: 40 + sum(widths.get(i, 0) + 60 for i in range(c)) for c in widths}
    for node in nodes:
        info = object_info[node.type]
        column = node_depth(node.id)
        row = rows.get(column, 0)
        rows[column] = row + node.size[1] + 90
        inputs, widgets_values = [], []
        slot_of_input = {}
        for name, kind, options in _input_specs(info):
            is_widget = kind in WIDGET_TYPES and not options.get("forceInput")
            if is_widget:
                if name in node.widgets:
                    value = node.widgets[name]
                elif "default" in options:
                    value = options["default"]
                else:
                    choices = info["input"].get("required", {}).get(name) or info["input"]["optional"][name]
                    value = choices[0][0] if isinstance(choices[0], list) else (
                        options.get("options", [None])[0])
                widgets_values.append(value)
                if _has_control_widget(name, kind, options):
                    widgets_values.append("fixed")
                continue
            slot_of_input[name] = len(inputs)
            entry = {"name": name, "type": kind, "link": None}
            if name in node.links:
                entry["link"] = next(link[0] for link in links if link[3] == node.id and link[4] == name)
            inputs.append(entry)
        if info.get("name") == "LoadImage" or node.type == "LoadImage":
            widgets_values.append("image")  # the upload button's value, as the front end saves it
        outputs = [{"name": out_name, "type": out_type, "links": outputs_links.get((node.id, i), []), "slot_index": i}
                   for i, (out_name, out_type) in enumerate(zip(info["output_name"], info["output"]))]
        ui_node = {"id": node.id, "type": node.type, "pos": [column_x[column], 40 + row], "size": list(node.size),
                   "flags": {}, "order": 0, "mode": 0, "inputs": inputs, "outputs": outputs,
                   "properties": {"Node name for S&R": node.type}, "widgets_values": widgets_values}
        if node.title:
            ui_node["title"] = node.title
        ui_nodes.append(ui_node)
    for order, node_id in enumerate(sorted(depth, key=lambda i: (depth[i], i))):
        next(n for n in ui_nodes if n["id"] == node_id)["order"] = order
    final_links = [[lid, src, slot, dst, next(i for i, e in enumerate(
        next(n for n in ui_nodes if n["id"] == dst)["inputs"]) if e["name"] == name), kind]
        for lid, src, slot, dst, name, kind in links]
    return {"last_node_id": max(by_id), "last_link_id": len(final_links), "nodes": ui_nodes, "links": final_links,
            "groups": [], "config": {}, "extra": extra or {}, "version": 0.4}


def dumps(workflow: dict) -> str:
    return json.dumps(workflow, indent=1) + "\n"
