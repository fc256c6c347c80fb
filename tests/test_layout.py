"""The library's layout: modules of readable size, no import cycle, data flowing one way (STYLE.md §1).

Imports are read from the source (``ast``), lazy imports inside functions included: a cycle through
a lazy import still means two modules that each need the other.
"""

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib" / "condspace"
MAX_LINES = 600

# The one-way data flow: cell declaration -> simulate -> features -> inference -> DICs ->
# modulation -> identification -> plots -> command line. A unit may import units of its own rank
# or to its left, never one to its right. Units not listed are only checked for cycles.
RANK = {
    **dict.fromkeys(["_io", "_buildrecord", "_checks", "_parallel", "_dask", "backend", "channels", "kinetics",
                     "cells", "plan", "_engine", "_codegen", "_numba", "_cuda", "_results", "reference",
                     "degeneracy", "__version__"], 0),
    "simulate": 1,
    "features": 2, "recordings": 2, "statistics": 0,
    "inference": 3, "posterior_scores": 3,
    "dics": 4,
    "subsets": 5, "populations": 5,
    "neuromodulation": 6,
    "identification": 7,
    "plotting": 8,
}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in LIB.rglob("*.py"):
        parts = ("condspace", *path.relative_to(LIB).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The condspace modules ``name`` imports (``from condspace import x`` resolves to condspace.x if a module)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: climb from the importing package
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("condspace") and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "condspace"


def test_every_module_is_at_most_600_lines():
    long = {str(p.relative_to(LIB)): n for p in LIB.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by concern (STYLE.md §1): {long}"


def test_no_import_cycle_between_modules():
    graph = _graph()
    # A package's __init__ imports its submodules to re-export them; a submodule that imports its
    # own package back would be a cycle, and is reported like any other.
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_import_cycle_between_units():
    """Units (top-level modules and packages) form an acyclic graph too: simulate and _cuda once did not."""
    units: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        if module == "condspace":
            continue  # the package's own __init__ re-exports the front door (simulate, cells, backend)
        units.setdefault(_unit(module), set()).update(_unit(t) for t in targets if _unit(t) != _unit(module))

    def reach(start: str) -> set[str]:
        out, todo = set(), list(units.get(start, ()))
        while todo:
            u = todo.pop()
            if u not in out:
                out.add(u)
                todo.extend(units.get(u, ()))
        return out

    cyclic = sorted(u for u in units if u in reach(u))
    assert not cyclic, f"units on an import cycle: {cyclic}"


def test_data_flows_one_way():
    wrong = []
    for module, targets in _graph().items():
        src = _unit(module)
        for target in targets:
            dst = _unit(target)
            if src in RANK and dst in RANK and RANK[dst] > RANK[src]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the data flow (STYLE.md §1): " + "; ".join(sorted(wrong))


def test_the_graph_sees_lazy_and_package_imports():
    """The checks above read what they claim to: a lazy import, a package import, a relative one."""
    graph = _graph()
    assert "condspace._cuda" in graph["condspace.simulate"]  # lazy, inside simulate()
    assert "condspace.inference.training" in graph["condspace.inference"]  # a package re-exporting
    assert "condspace.subsets" in graph["condspace.populations"]
