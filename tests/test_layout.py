"""The package's modules import one another without a circle, so each can be read (and loaded) on
its own: a module-level import graph of ``jupyter_runs`` must be acyclic.

Imports inside functions (lazy, on first use) and under ``if TYPE_CHECKING:`` (types only) do not
run at import time, so they are left out. An edge goes to the module named: ``from .models import
X`` depends on ``models`` (its ``__init__``), ``from . import capture`` on ``capture`` when that is
a submodule; a submodule's implicit import of its parent package is not an edge, since the parent
is already loading when its own ``__init__`` imports the submodule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jupyter_runs

ROOT = Path(jupyter_runs.__file__).parent
PACKAGE = "jupyter_runs"


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: the module body and its ``if``/``try``
    blocks (an optional dependency's ``try: import x``), never a function or class body."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            todo.extend(node.orelse)
            if not _is_type_checking(node.test):
                todo.extend(node.body)
        elif isinstance(node, ast.Try):
            todo.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                todo.extend(handler.body)
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _top_level_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                target = _resolve(name, path.name == "__init__.py", node)
                # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module.
                subs = [f"{target}.{alias.name}" for alias in node.names]
                targets = [s for s in subs if s in modules] or [target]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_of_the_package_imports_itself_back_in_a_circle() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_graph_sees_the_imports_that_matter() -> None:
    """The check above can fail: the graph holds real edges, relative and submodule forms alike."""
    graph = import_graph()
    assert "jupyter_runs.tools.runner" in graph["jupyter_runs.tools"]  # from .runner import ...
    assert "jupyter_runs.tools.capture" in graph["jupyter_runs.tools.runner"]  # from . import capture
    assert "jupyter_runs.errors" in graph["jupyter_runs.tools.runner"]  # from ..errors import ...
    models = "jupyter_runs.backends.local.models"
    assert f"{models}.base" in graph[f"{models}.chat"]
    # The registry imports its adapters; no adapter imports the registry.
    assert not any(models in graph[f"{models}.{m}"] for m in ("base", "chat", "responses", "scripted", "cassette"))
    # TYPE_CHECKING-only imports are not edges (runs.py names the client for types only).
    assert "jupyter_runs.client" not in graph["jupyter_runs.runs"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
