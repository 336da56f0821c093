"""labkit's import graph: no circle, and no arrow from the engine's side of the seam to a backend.

The graph is read from the source, not from ``sys.modules``: every ``import`` in
every module of ``labkit/`` counts, at module level and inside functions alike
(a function-local import hides a circle from Python, not from a reader). Imports
under ``if TYPE_CHECKING:`` name types only and never run; they count for the
forbidden arrows (a model that names a backend's type still depends on it) but
not for circles (a class and the module that renders it may name each other's
types).

The rules, as ARCHITECTURE.md draws the floors:

* no import circle anywhere in ``labkit``;
* ``labkit.model`` (pure) and ``labkit.backend`` (the seam) import no backend;
* ``labkit.engine`` imports neither ``labkit.linux`` nor ``labkit.sim``
  (``labkit.backends`` chooses one for it);
* the two backends import nothing of each other: ``labkit.sim`` runs where
  ``labkit.linux`` cannot even be imported, and what both need (an endpoint's
  inspect JSON, the user-mode network's addresses) lives in ``labkit.model``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "labkit"

#: (importer prefix, imported prefix, why the arrow is forbidden)
FORBIDDEN = (
    ("labkit.model", "labkit.linux", "the model is pure: no backend below it"),
    ("labkit.model", "labkit.sim", "the model is pure: no backend below it"),
    ("labkit.backend", "labkit.linux", "the seam names no backend"),
    ("labkit.backend", "labkit.sim", "the seam names no backend"),
    ("labkit.engine", "labkit.linux", "the engine holds a Backend and never asks which (labkit.backends chooses)"),
    ("labkit.engine", "labkit.sim", "the engine holds a Backend and never asks which (labkit.backends chooses)"),
    ("labkit.sim", "labkit.linux", "the simulator runs where no Linux is: what both backends share lives in a neutral "
     "module (labkit.model, labkit.helpers)"),
    ("labkit.linux", "labkit.sim", "the real backend stands on the kernel, never on the model of it"),
    ("labkit.networks", "labkit.linux", "both backends keep their network records there: the simulator too"),
)


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The labkit module an imported name lives in (``labkit.model.events.Step`` → ``labkit.model.events``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _type_only(tree: ast.Module) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:``."""
    out: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom))
    return out


def imports_of(module: str) -> list[tuple[str, bool]]:
    """Every labkit module ``module`` imports, each with whether it is named for types only."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    type_only = _type_only(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _owner(name) if name.startswith("labkit") else None
            if target and target != module:
                found.append((target, node in type_only))
    return found


def graph(runtime_only: bool) -> dict[str, set[str]]:
    return {m: {t for t, types in imports_of(m) if not (runtime_only and types)} for m in MODULES}


def circles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
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
                    found.append(frozenset(component))
    return found


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_walk_sees_function_local_imports():
    """The graph holds imports made inside functions: the engine's image store, the chooser's backends."""
    edges = graph(runtime_only=True)
    assert "labkit.images.store" in edges["labkit.engine.images"]
    assert {"labkit.linux.backend", "labkit.sim.backend"} <= edges["labkit.backends"]


def test_circles_are_found():
    """The circle finder finds a circle through three modules and none in a chain."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle():
    """No module of labkit reaches itself through its imports."""
    found = [sorted(component) for component in circles(graph(runtime_only=True))]
    assert not found, f"import circles: {found}"


def forbidden_arrows(edges: dict[str, set[str]]) -> list[str]:
    """Every arrow of ``edges`` that :data:`FORBIDDEN` forbids, with why."""
    return [f"{module} -> {target}: {why}" for module, targets in edges.items() for target in sorted(targets)
            for source, forbidden, why in FORBIDDEN if _under(module, source) and _under(target, forbidden)]


def test_the_rules_catch_an_arrow_between_the_backends():
    """An import of labkit.linux from the simulator (the one its network settings made) and one back are caught."""
    planted = {"labkit.sim.networking": {"labkit.linux.usernet", "labkit.model.endpoints"},
               "labkit.linux.rootfs": {"labkit.sim.overlay"}}
    assert [arrow.split(":")[0] for arrow in forbidden_arrows(planted)] == [
        "labkit.sim.networking -> labkit.linux.usernet", "labkit.linux.rootfs -> labkit.sim.overlay"]


def test_no_forbidden_arrow():
    """The model and the seam import no backend, the engine imports neither linux nor sim, and neither backend
    imports the other."""
    bad = forbidden_arrows(graph(runtime_only=False))
    assert not bad, "\n".join(bad)


def _unexplained_local_imports(source: str) -> list[int]:
    """The lines of imports made inside a function with no comment on them or on the block of imports they end
    (a comment above the block, or on one of its lines, says which heavy import it keeps off which path)."""
    lines = source.splitlines()
    found = set()
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            i = node.lineno - 1
            block = lines[i:node.end_lineno]
            while i > 0 and (lines[i - 1].strip().startswith(("import ", "from ", "#")) or not lines[i - 1].strip()):
                i -= 1
                block.append(lines[i])
                if lines[i].strip().startswith("#"):
                    break
            if not any("#" in line for line in block):
                found.add(node.lineno)
    return sorted(found)


def test_the_local_import_check_reads_comments_on_the_line_or_above_the_block():
    """An import inside a function counts as explained by a comment on its line or above its block, not otherwise."""
    source = ("def f():\n    import json\n\n"
              "def g():\n    # matplotlib loads when a picture is drawn\n    import matplotlib\n    import numpy\n\n"
              "def h():\n    import yaml  # loads when a bank is read\n")
    assert _unexplained_local_imports(source) == [2]


def test_every_function_local_import_says_why():
    """An import inside a function keeps a heavy import off a hot path and says so in a comment; any other
    import is made at the top of its module."""
    found = [f"{m}:{line}" for m, path in sorted(MODULES.items()) for line in _unexplained_local_imports(
        path.read_text())]
    assert found == [], "function-local imports without a reason: " + ", ".join(found)
