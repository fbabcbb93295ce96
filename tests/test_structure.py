"""The package's structure: no import circle between tune_digits modules (read from the source, imports at the
top and inside functions alike), and the checker itself catches a planted one."""
from __future__ import annotations

import ast
import pickle
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph(package: Path) -> dict[str, set[str]]:
    """module → the package's modules it imports, anywhere in its body. An import under `if TYPE_CHECKING:`
    never runs, so it is left out; `from pkg import name` is an edge to pkg.name when that is a module, else
    to pkg (whose __init__ defines the name)."""
    modules = {_module_name(package, path): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _module_name(package: Path, path: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node, except the bodies of `if TYPE_CHECKING:` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's circles: each strongly connected group of two or more modules (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycle_in_the_package():
    graph = import_graph(ROOT / "tune_digits")
    assert "tune_digits.tuning.plan" in graph and graph["tune_digits.cli"]  # it read the package
    assert import_cycles(graph) == []


def test_the_checker_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub.c import g  # inside a function: still an edge\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("import pkg.a\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .e import E\n")
    (pkg / "e.py").write_text("from .d import TYPE_CHECKING\n")
    assert import_cycles(import_graph(pkg)) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    (pkg / "d.py").write_text("from .e import E\n")  # now at run time: a second circle
    assert sorted(import_cycles(import_graph(pkg))) == [["pkg.a", "pkg.b", "pkg.sub.c"], ["pkg.d", "pkg.e"]]

def test_a_search_started_before_the_rename_still_unpickles():
    """tune_digits.tuning was tune_digits.search: Tune's pickle of an experiment started then names the old
    modules, which resolve to today's while Tune restores it (and only then)."""
    import sys

    from tune_digits.tuning import writer
    from tune_digits.tuning.resume import old_module_names

    old = b"\x80\x04ctune_digits.search.writer\nResultWriter\n."
    with old_module_names():
        assert pickle.loads(old) is writer.ResultWriter
    assert "tune_digits.search" not in sys.modules


def test_one_registry_type_with_one_duplicate_rule_and_one_unknown_error():
    import pytest

    from tune_digits.errors import SearchError, UserError
    from tune_digits.models import NETWORKS
    from tune_digits.registry import Registry
    from tune_digits.report.table import TABLES
    from tune_digits.tuning import SCHEDULERS, SEARCHERS
    from tune_digits.tuning.tracking import TRACKERS

    assert all(isinstance(r, Registry) for r in (NETWORKS, SEARCHERS, SCHEDULERS, TRACKERS, TABLES))
    colours = Registry("colour", SearchError, order=sorted)
    colours.register("red", 1)
    colours.register("blue", 2)
    assert colours.names() == ["blue", "red"] and colours.get("red") == 1 and "blue" in colours
    with pytest.raises(ValueError, match="colour 'red' is already registered"):
        colours.register("red", 3)
    with pytest.raises(SearchError, match="unknown colour 'green'; use one of blue, red"):
        colours.get("green")
    with pytest.raises(UserError):
        colours.get("green", error=UserError)
    assert colours.pop("red") == 1 and colours.names() == ["blue"]


def test_no_test_module_imports_another_or_conftest():
    """What tests share lives in tests/helpers.py (or a fixture in conftest.py), so a test module can change alone."""
    imports = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad = [n for n in names if n.startswith("test_") or n == "conftest"]
            if bad:
                imports[path.name] = bad
    assert imports == {}


def test_every_reference_in_the_code_resolves_in_the_repository():
    """The code cites docs/protocol.md by section, never a document or tracker that does not ship."""
    import re

    sections = set(re.findall(r"^## (\d+)\.", (ROOT / "docs" / "protocol.md").read_text(), re.M))
    for path in [*(ROOT / "tune_digits").rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        text = path.read_text()
        assert set(re.findall(r"docs/protocol\.md §(\d+)", text)) <= sections, path
        if path.name != "test_structure.py":
            assert not re.search(r"\bSPEC\b|\bissue \d+", text), path
