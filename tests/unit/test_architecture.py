"""Who may import whom: the import-linter contracts in pyproject.toml, and no import cycle.

Both read the source with grimp (no module is executed). docs/architecture.md has the map.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parents[2]

KNOWN_CYCLES: set[frozenset[str]] = set()
"""Cycles tolerated for now (none: issue 13 broke the last three). A new one fails the test."""


def test_import_contracts_are_kept(capsys):
    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True)
    assert code == 0, capsys.readouterr().out[-4000:]


def _cycles(graph: grimp.ImportGraph) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(module: str) -> tuple[str, Iterator[str]]:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        return module, iter(sorted(graph.find_modules_directly_imported_by(module)))

    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [visit(root)]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))
    return found


def test_no_new_import_cycle():
    cycles = _cycles(grimp.build_graph("otwatch", cache_dir=None))
    assert cycles - KNOWN_CYCLES == set(), "new import cycle(s)"
    assert KNOWN_CYCLES - cycles == set(), "a known cycle is gone: delete it from KNOWN_CYCLES"


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert _cycles(graph) == {frozenset({"pkg.a", "pkg.b"})}


MAX_MODULE_LINES = 500
"""No module longer than this (issue 13): past it, a module usually holds two jobs."""
LONG_BY_NATURE = ("migrations/versions/", "agent/decode/layers/")
"""Alembic revisions and Scapy layer tables: long because the protocol or schema is."""


def test_no_module_over_the_line_limit():
    long = {
        str(path.relative_to(REPO)): count
        for path in sorted((REPO / "otwatch").rglob("*.py"))
        if not any(part in path.as_posix() for part in LONG_BY_NATURE)
        and (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these modules (over {MAX_MODULE_LINES} lines): {long}"
