"""The package's layering, read from its imports: every arrow points down, and none go round.

    cli -> explore -> flow -> sim, boards -> compiler -> hw -> plan -> network
                   train -> plan, golden -> network
                   frontends -> golden -> network
                   formal -> hw

(``sim/`` installs as ``snnhw.sim``.) Function-local imports count too: they are imports all
the same, only later.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = [*(ROOT / "snnhw").rglob("*.py"), *(ROOT / "sim").glob("*.py")]


def _module(path: Path) -> str:
    """Return the dotted name ``path`` installs as (sim/ installs as snnhw.sim)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "sim":
        parts.insert(0, "snnhw")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module(path): path for path in FILES}


def _imports(path: Path) -> set[str]:
    """Return every snnhw module ``path`` imports, relative imports resolved, names imported
    from a package counted as its submodules where they are modules."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names
                         if f"{base}.{alias.name}" in MODULES)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _area(module: str) -> str:
    """The part of snnhw a module belongs to: ``snnhw.plan.core`` -> ``plan``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_imports_resolve_as_expected():
    assert {"snnhw.sim.runner", "snnhw.network", "snnhw.cli.args"} <= GRAPH["snnhw.cli.cosim"]
    assert "snnhw.compiler" in GRAPH["snnhw.sim.runner"]
    assert "snnhw.plan.core" in GRAPH["snnhw.hw.core"] or "snnhw.plan" in GRAPH["snnhw.hw.core"]
    assert len(GRAPH) > 50


# Each area and what it may import besides itself (the helpers errors, yamlfile and config
# are below everything).
BASE = {"errors", "yamlfile", "config", ""}
ALLOWED = {
    "network": BASE,
    "plan": BASE | {"network"},
    "golden": BASE | {"network", "results"},
    "results": BASE | {"network"},
    "hw": BASE | {"network", "plan"},
    "formal": BASE | {"network", "plan", "hw"},
    "train": BASE | {"network", "plan", "golden", "results"},
    "frontends": BASE | {"network", "golden", "results"},
    # explore drives train, plan, golden, energy and the fit check; never the RTL or the CLI
    "explore": BASE | {"network", "plan", "golden", "results", "train", "energy", "boards",
                       "flow"},
}


@pytest.mark.parametrize("area", sorted(ALLOWED))
def test_no_upward_import(area):
    offenders = [f"{module} imports {target}" for module, targets in sorted(GRAPH.items())
                 if _area(module) == area for target in sorted(targets)
                 if _area(target) not in ALLOWED[area] | {area}]
    assert offenders == []


def test_no_library_module_imports_the_cli():
    # snnhw/__main__.py is the `python -m snnhw` entry point, not a library module.
    offenders = [f"{module} imports {target}" for module, targets in sorted(GRAPH.items())
                 if _area(module) not in ("cli", "__main__") for target in sorted(targets)
                 if _area(target) == "cli"]
    assert offenders == []


def test_no_import_cycle_between_areas():
    """No area imports one that imports it back, directly or through others."""
    edges = {area: set() for area in map(_area, GRAPH)}
    for module, targets in GRAPH.items():
        edges[_area(module)] |= {_area(t) for t in targets if _area(t) != _area(module)}
    edges[""] = set()  # snnhw/__init__ (the version) imports nothing
    cycles = []

    def reach(start: str, area: str, path: list[str], seen: set[str]) -> None:
        for target in sorted(edges[area]):
            if target == start:
                cycles.append(" -> ".join(path + [target]))
            elif target not in seen:
                seen.add(target)
                reach(start, target, path + [target], seen)

    for area in sorted(edges):
        reach(area, area, [area], {area})
    assert cycles == []
