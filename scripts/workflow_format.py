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
        if node.get("mode", 0) in (2, 4) or node["type"] in VIRTUAL_TYPES:  # muted, bypassed, or a note
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


VIRTUAL_TYPES = {"Note", "MarkdownNote"}  # front-end-only nodes: never part of a prompt

# Layout (graph units, as LiteGraph draws at zoom 1).
TITLE_HEIGHT = 30     # a node's title bar, drawn above its ``pos``
GROUP_HEADER = 50     # a group's title bar above its first node's title
GROUP_PAD = 20        # space between a group's frame and its nodes
ROW_GAP = 60          # vertical space between two nodes of a column
COLUMN_GAP = 60
BAND_GAP = 50         # vertical space between two stages (groups)
MARGIN = 40
NOTE_WIDTH = 560
GROUP_COLORS = ["#3f789e", "#8a6d3b", "#4e7d4e", "#7b4e7b", "#3f7e7e", "#88554e"]


@dataclass
class Node:
    """One node of a workflow description: its type, widget values by name, and links by input name.

    ``links`` may also name a widget input (e.g. a Save node's ``fps`` fed by the renderer's ``fps`` output): the
    widget becomes a socket, as when a user drops a link on it. ``group`` names the stage of the graph the node is
    drawn in (a titled frame around the stage's nodes); ``size`` None means an estimate from the node's widgets.
    """

    id: int
    type: str
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)  # input name -> (source node id, output index)
    title: str | None = None
    size: tuple[int, int] | None = None
    group: str | None = None


@dataclass
class Workflow:
    """An example graph: its title and what it does (the start of its Note), and its nodes, grouped by stage.

    ``thumbnail``: what the template's picture in the Templates browser shows, a frame of the saved animation
    ("output") or the graph ("graph"), for examples whose output says little (tiny stand-in models, latents).
    """

    title: str
    about: str
    nodes: list[Node]
    thumbnail: str = "output"


def grouped(title: str, nodes: list[Node]) -> list[Node]:
    """Put ``nodes`` in the stage (group) ``title``; returns them, for ``[*grouped("Stage 1", [...]), ...]``."""
    for node in nodes:
        node.group = title
    return nodes


def estimated_size(info: dict, width: int = 320) -> tuple[int, int]:
    """About the size the front end gives a fresh node of this type: 20 px per socket row, 24 per widget."""
    specs = _input_specs(info)
    widgets = sum(kind in WIDGET_TYPES and not options.get("forceInput") for _, kind, options in specs)
    widgets += sum(_has_control_widget(name, kind, options) for name, kind, options in specs)
    sockets = max(len(specs) - widgets, len(info.get("output", [])))
    return width, 20 * sockets + 24 * widgets + 16


def build_ui_workflow(nodes: list[Node], object_info: dict, extra: dict | None = None,
                      note: str | None = None) -> dict:
    """Lay out ``nodes`` and return a UI-format workflow (schema 0.4).

    Columns go left to right by depth (a node's column is one more than its deepest source's), so every link runs
    to the right. Nodes of one ``group`` share a horizontal band framed by a titled group, bands stacked top to
    bottom in the order the groups first appear. ``note`` (Markdown) becomes a MarkdownNote at the top left.
    """
    by_id = {n.id: n for n in nodes}
    depth = _columns(nodes)
    sizes = {n.id: tuple(n.size) if n.size else estimated_size(object_info[n.type]) for n in nodes}
    links = []
    outputs_links: dict[tuple[int, int], list[int]] = {}
    for node in nodes:
        for name, (src, slot) in node.links.items():
            link_id = len(links) + 1
            kind = object_info[by_id[src].type]["output"][slot]
            links.append([link_id, src, slot, node.id, name, kind])
            outputs_links.setdefault((src, slot), []).append(link_id)
    positions, groups = _layout(nodes, sizes, depth, note)
    ui_nodes = []
    if note:
        ui_nodes.append(_note_node(max(by_id) + 1, note))
    for node in nodes:
        ui_nodes.append(_ui_node(node, object_info[node.type], positions[node.id], sizes[node.id], links,
                                 outputs_links))
    for order, node_id in enumerate(sorted(depth, key=lambda i: (depth[i], i))):
        next(n for n in ui_nodes if n["id"] == node_id)["order"] = order
    final_links = [[lid, src, slot, dst, next(i for i, e in enumerate(
        next(n for n in ui_nodes if n["id"] == dst)["inputs"]) if e["name"] == name), kind]
        for lid, src, slot, dst, name, kind in links]
    return {"last_node_id": max(n["id"] for n in ui_nodes), "last_link_id": len(final_links), "nodes": ui_nodes,
            "links": final_links, "groups": groups, "config": {}, "extra": extra or {}, "version": 0.4}


def _columns(nodes: list[Node]) -> dict[int, int]:
    """Each node's column: one more than its deepest source's; a node with no inputs (a loader) sits just before
    its first consumer, so that a model loaded for a late stage is drawn next to that stage."""
    by_id = {n.id: n for n in nodes}
    depth: dict[int, int] = {}

    def node_depth(node_id: int) -> int:
        if node_id not in depth:
            sources = [src for src, _ in by_id[node_id].links.values()]
            depth[node_id] = 1 + max((node_depth(s) for s in sources), default=-1)
        return depth[node_id]

    for node in nodes:
        node_depth(node.id)
    for node in nodes:
        consumers = [depth[n.id] for n in nodes if any(src == node.id for src, _ in n.links.values())]
        if not node.links and consumers:
            depth[node.id] = min(consumers) - 1
    return depth


def _layout(nodes: list[Node], sizes: dict, depth: dict[int, int], note: str | None):
    """Positions {id: [x, y]} and the groups' frames; the note takes the top-left corner."""
    widths: dict[int, int] = {}
    for node in nodes:  # columns are as wide as their widest node, so wide nodes never overlap the next column
        widths[depth[node.id]] = max(widths.get(depth[node.id], 0), sizes[node.id][0])
    column_x = {c: MARGIN + sum(widths.get(i, 0) + COLUMN_GAP for i in range(c)) for c in widths}
    bands: dict[str | None, list[Node]] = {}
    for node in nodes:
        bands.setdefault(node.group, []).append(node)
    y = MARGIN + (_note_height(note) + BAND_GAP if note else 0)
    positions, groups = {}, []
    for title, members in bands.items():
        if title is not None:
            y += GROUP_HEADER
        rows: dict[int, int] = {}
        for node in members:
            column = depth[node.id]
            row = rows.get(column, 0)
            positions[node.id] = [column_x[column], y + TITLE_HEIGHT + row]
            rows[column] = row + TITLE_HEIGHT + sizes[node.id][1] + ROW_GAP
        bottom = y + max(rows.values()) - ROW_GAP
        if title is not None:
            left = min(positions[n.id][0] for n in members) - GROUP_PAD
            right = max(positions[n.id][0] + sizes[n.id][0] for n in members) + GROUP_PAD
            groups.append({"id": len(groups) + 1, "title": title, "bounding": [left, y - GROUP_HEADER, right - left,
                                                                              bottom + GROUP_PAD - y + GROUP_HEADER],
                           "color": GROUP_COLORS[len(groups) % len(GROUP_COLORS)], "font_size": 24, "flags": {}})
        y = bottom + GROUP_PAD + BAND_GAP
    return positions, groups


def _note_height(text: str) -> int:
    """Height of a MarkdownNote showing ``text`` at NOTE_WIDTH: about 105 characters a line of 14 px, paragraphs
    and list items 8 px apart, a heading 30 px (the front end's Markdown style)."""
    height = 30
    for paragraph in text.split("\n\n"):
        if paragraph.startswith("#"):
            height += 30
            continue
        for item in paragraph.split("\n- "):
            height += 14 * max(1, -(-len(item.replace("\n", " ")) // 105)) + 8
    return height


def _note_node(node_id: int, text: str) -> dict:
    return {"id": node_id, "type": "MarkdownNote", "pos": [MARGIN, MARGIN + TITLE_HEIGHT],
            "size": [NOTE_WIDTH, _note_height(text)], "flags": {}, "order": 0, "mode": 0, "inputs": [],
            "outputs": [], "title": "About this workflow", "properties": {}, "widgets_values": [text],
            "color": "#432", "bgcolor": "#653"}


def _ui_node(node: Node, info: dict, pos: list[int], size: tuple[int, int], links: list, outputs_links: dict) -> dict:
    inputs, widgets_values = [], []
    for name, kind, options in _input_specs(info):
        is_widget = kind in WIDGET_TYPES and not options.get("forceInput")
        link = next((link[0] for link in links if link[3] == node.id and link[4] == name), None)
        if is_widget:
            if name in node.widgets:
                value = node.widgets[name]
            elif "default" in options:
                value = options["default"]
            else:
                choices = info["input"].get("required", {}).get(name) or info["input"]["optional"][name]
                value = choices[0][0] if isinstance(choices[0], list) else options.get("options", [None])[0]
            widgets_values.append(value)
            if _has_control_widget(name, kind, options):
                widgets_values.append("fixed")
            if link is not None:  # a widget fed by a link is a socket, as the front end saves it
                inputs.append({"name": name, "type": kind, "widget": {"name": name}, "link": link})
            continue
        inputs.append({"name": name, "type": kind, "link": link})
    if info.get("name") == "LoadImage" or node.type == "LoadImage":
        widgets_values.append("image")  # the upload button's value, as the front end saves it
    outputs = [{"name": out_name, "type": out_type, "links": outputs_links.get((node.id, i), []), "slot_index": i}
               for i, (out_name, out_type) in enumerate(zip(info["output_name"], info["output"]))]
    ui_node = {"id": node.id, "type": node.type, "pos": pos, "size": list(size), "flags": {}, "order": 0, "mode": 0,
               "inputs": inputs, "outputs": outputs, "properties": {"Node name for S&R": node.type},
               "widgets_values": widgets_values}
    if node.title:
        ui_node["title"] = node.title
    return ui_node


def dumps(workflow: dict) -> str:
    return json.dumps(workflow, indent=1) + "\n"
