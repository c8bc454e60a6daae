"""The import direction, read from the source with `ast` (nothing is imported).

The pure layers (domain, features, modeling, warehouse, registry, services) never reach up
into the Dagster layer: no `dagster`, no `huleedu_pipelines.assets`, no
`huleedu_pipelines.resources`, whether at the top of a module, under `TYPE_CHECKING` or
inside a function. And no module of the package imports itself back through another: every
import counts for the cycle check, lazy ones included, since a lazy import only hides a
cycle from the interpreter, not from the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import huleedu_pipelines

PACKAGE = "huleedu_pipelines"
ROOT = Path(huleedu_pipelines.__file__).parent
PURE_LAYERS = ("domain", "features", "modeling", "warehouse", "registry", "services")
DAGSTER_LAYER = ("dagster", f"{PACKAGE}.assets", f"{PACKAGE}.resources")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


MODULES = package_modules()


def imported_names(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, wherever it stands.

    `from a.b import c` yields `a.b.c` when `a.b.c` is a module of the package (importing a
    submodule) and `a.b` otherwise (importing a name from it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append((node.lineno, submodule if submodule in MODULES else source))
    return found


def in_package(name: str) -> str | None:
    """The package module `name` refers to (a module, or the package a name lives in)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {in_package(name) for _, name in imported_names(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def pure_layer_modules() -> list[str]:
    return [
        module
        for module in MODULES
        if any(module.startswith(f"{PACKAGE}.{layer}") for layer in PURE_LAYERS)
    ]


def test_the_walk_sees_every_pure_layer_that_exists() -> None:
    present = {layer for layer in PURE_LAYERS if (ROOT / layer).is_dir()}
    seen = {module.split(".")[1] for module in pure_layer_modules()}
    assert present <= seen
    assert {"domain", "features", "modeling", "warehouse", "services"} <= present


@pytest.mark.parametrize("module", pure_layer_modules())
def test_pure_layers_never_import_the_dagster_layer(module: str) -> None:
    reaching_up = [
        f"line {line}: {name}"
        for line, name in imported_names(module, MODULES[module])
        if any(name == top or name.startswith(f"{top}.") for top in DAGSTER_LAYER)
    ]
    assert not reaching_up, f"{module} imports the Dagster layer: {'; '.join(reaching_up)}"


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_reports_a_cycle_it_is_given() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
