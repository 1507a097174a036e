"""The library's layering holds: imports point only downward, rule scripts only connect, and only
the `qspflow.plots` package draws (so the rest of the library loads without matplotlib)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "qspflow"

# Lower layers never import higher ones; a package (model/, calibrate/, …) may import itself.
LAYERS = [
    {"errors"},
    {"io", "options", "logs", "seeds", "plots", "workers"},
    {"model"},
    {"boolean", "data", "petab", "simulate", "example", "provenance"},
    {"infer", "convert", "outputs"},
    {"calibrate", "sensitivity", "vpop"},
    {"report"},
    {"steps"},
    {"cli"},
]
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """`qspflow.calibrate.search` → `calibrate`: the top-level module or package of a qspflow module."""
    return module.split(".")[1]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, module: str) -> set[str]:
    """Every qspflow module `path` imports, at any depth of the file (function-local imports too)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("qspflow."))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base == "qspflow":
                out.update(f"qspflow.{a.name}" for a in node.names)
            elif base.startswith("qspflow."):
                out.add(base)
    return out


MODULES = _modules()


def test_every_library_module_belongs_to_a_layer():
    units = {_unit(m) for m in MODULES if m != "qspflow"}
    assert units - set(LAYER) == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "qspflow"))
def test_imports_point_only_downward(module):
    own = _unit(module)
    upward = sorted(i for i in _imports(MODULES[module], module)
                    if _unit(i) != own and LAYER[_unit(i)] >= LAYER[own])
    assert upward == [], f"{module} imports from its own or a higher layer"


def test_no_import_cycles():
    graph = {m: {i for i in _imports(p, m) if i in MODULES and i != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                # a package's __init__ re-exporting its submodules is not a cycle in load order
                if not (nxt == node.rsplit(".", 1)[0] or node.startswith(nxt + ".")):
                    raise AssertionError(" → ".join([*trail, node, nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_only_plots_imports_matplotlib():
    users = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "matplotlib" for n in names):
                users.append(module)
    assert {_unit(u) for u in users} == {"plots"}


@pytest.mark.parametrize("script", sorted((ROOT / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_rule_scripts_only_connect_to_steps(script):
    text = script.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 25
    imported = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(f"{node.module}.{a.name}" for a in node.names)
    assert imported <= {"qspflow.steps", "qspflow.logs.to_rule_log"}
