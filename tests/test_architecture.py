"""The architecture's rules, read from the source: no import circle anywhere in the pack, and the library layers
(ops/, models/, train/) import nothing from ComfyUI or from nodes/."""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("ops", "models", "train", "nodes")
COMFY_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "server", "execution",
                 "node_helpers", "latent_preview"}


def _modules() -> dict[str, pathlib.Path]:
    """Dotted name (relative to the pack) -> file, for every module of the pack's Python packages."""
    modules = {"": ROOT / "__init__.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> tuple[set[str], set[str]]:
    """(pack modules imported anywhere in the file, including inside functions; absolute top-level names)."""
    package = name.split(".") if name else []
    if path.name != "__init__.py":
        package = package[:-1]
    internal, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            external.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            external.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                internal.add(sub if sub in MODULES else target)
    return {m for m in internal if m in MODULES and m != name}, external


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_the_pack():
    assert len(MODULES) > 50
    assert _cycles({name: internal for name, (internal, _) in GRAPH.items()}) == []


@pytest.mark.parametrize("layer", ["ops", "models", "train"])
def test_the_library_layers_import_nothing_from_comfyui(layer):
    offenders = {}
    for name, (internal, external) in GRAPH.items():
        if name.split(".")[0] != layer:
            continue
        bad = sorted((external & COMFY_MODULES) | {m for m in internal if m.split(".")[0] == "nodes"})
        if bad:
            offenders[name] = bad
    assert offenders == {}
