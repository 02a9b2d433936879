"""The package's imports run down the floors: no upward edge, no circle, no private name.

Floors, ground first: utils (and ``_version``) -> geometry -> kernels -> data, layers, viz ->
models -> training -> demo -> cli (-> the package root). A module may import a lower floor or
its own subpackage; data, layers and viz stand side by side and do not import each other.
Every import counts, also those inside functions and ``if TYPE_CHECKING:`` blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "geo_neuralop"

FLOORS = {
    "geo_neuralop._version": 0,
    "geo_neuralop.utils": 0,
    "geo_neuralop.geometry": 1,
    "geo_neuralop.kernels": 2,
    "geo_neuralop.data": 3,
    "geo_neuralop.layers": 3,
    "geo_neuralop.viz": 3,
    "geo_neuralop.models": 4,
    "geo_neuralop.training": 5,
    "geo_neuralop.demo": 6,
    "geo_neuralop.cli": 7,
    "geo_neuralop": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    """The floor entry a module belongs to (its subpackage, or a top-level module)."""
    best = "geo_neuralop"
    for prefix in FLOORS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return best


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """``(imported module, imported names, line)`` of every import of geo_neuralop modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("geo_neuralop"):
                out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("geo_neuralop"):
                    out.append((alias.name, [], node.lineno))
    return out


def graph() -> dict[str, list[tuple[str, list[str], int]]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        resolved = []
        for target, names, line in imports(path):
            # `from pkg import submodule` is an edge to the submodule
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            rest = [n for n in names if f"{target}.{n}" not in modules]
            if rest or not names:
                resolved.append((target, rest, line))
            resolved += [(sub, [], line) for sub in subs]
        edges[name] = resolved
    return edges


def upward_edges(edges: dict[str, list[tuple[str, list[str], int]]]) -> list[str]:
    """Edges to the same or a higher floor of another room."""
    bad = []
    for module, targets in edges.items():
        here = room(module)
        for target, _, line in targets:
            there = room(target)
            if there != here and FLOORS[there] >= FLOORS[here]:
                bad.append(f"{module}:{line} imports {target} (floor {FLOORS[there]} from floor "
                           f"{FLOORS[here]})")
    return bad


def circles(edges: dict[str, list[tuple[str, list[str], int]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    nodes = set(edges)
    succ = {m: {t for t, _, _ in ts if t in nodes} for m, ts in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def private_imports(edges: dict[str, list[tuple[str, list[str], int]]]) -> list[str]:
    bad = []
    for module, targets in edges.items():
        for target, names, line in targets:
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != module:
                bad.append(f"{module}:{line} imports {private} from {target}")
    return bad


def test_no_import_runs_up_the_floors():
    assert not upward_edges(graph()), "\n".join(upward_edges(graph()))


def test_no_import_circle():
    assert not circles(graph())


def test_no_private_name_is_imported_from_another_module():
    assert not private_imports(graph()), "\n".join(private_imports(graph()))


def test_the_walk_catches_upward_edges_circles_and_private_names():
    """The checks fail on a package with the faults they look for."""
    edges = graph()
    edges["geo_neuralop.kernels.disco"] = edges["geo_neuralop.kernels.disco"] + [
        ("geo_neuralop.layers.disco_conv", ["DiscoConv"], 1)]  # upward
    edges["geo_neuralop.data.loaders"] = edges["geo_neuralop.data.loaders"] + [
        ("geo_neuralop.viz.render", ["_ranges"], 2)]  # sideways, private
    assert len(upward_edges(edges)) == 2 and len(private_imports(edges)) == 1
    assert circles(edges) == [["geo_neuralop.kernels.disco", "geo_neuralop.layers.disco_conv"]]
    edges = graph()
    edges["geo_neuralop.geometry.quadrature"] = edges["geo_neuralop.geometry.quadrature"] + [
        ("geo_neuralop.geometry.grid_spec", [], 3)]  # grid_spec imports quadrature: a circle
    assert circles(edges) == [["geo_neuralop.geometry.grid_spec",
                               "geo_neuralop.geometry.quadrature"]]
