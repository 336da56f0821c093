"""The simulator's modules import one another without a circle, each import where a reader expects it.

The graph is read from the source (an AST walk over every ``import`` and
``from … import``, at module level and inside functions alike), so an import
hidden in a function to dodge a circle at import time still counts as an
arrow. Imports under ``if TYPE_CHECKING:`` count too: mypy follows them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import labkit.sim

SIM = Path(labkit.sim.__file__).parent
PACKAGE = "labkit.sim"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SIM).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SIM.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name ``from … import`` names, relative imports resolved against ``module``."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(module: str, source: str, known: set[str], is_package: bool = False) -> list[tuple[str, int, bool]]:
    """Each simulator module the source of ``module`` imports: ``(name, line, inside a function)``."""
    tree = ast.parse(source)
    local: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            # ``from labkit.sim import process`` names the module labkit.sim.process, not the package.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in dict.fromkeys(names):
            # ``import labkit.sim.busybox.libbb`` reaches the deepest simulator module it names.
            while name and name not in known and name.startswith(PACKAGE + "."):
                name = name.rsplit(".", 1)[0]
            if name in known and name != module and name != PACKAGE:
                out.append((name, node.lineno, id(node) in local))
    return out


def import_graph() -> dict[str, set[str]]:
    """Arrows between the simulator's modules: ``{importer: {imported, …}}``."""
    modules = _modules()
    known = set(modules)
    return {m: {t for t, _, _ in _targets(m, p.read_text(), known, p.name == "__init__.py")}
            for m, p in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_every_kind_of_import_and_finds_a_circle():
    """Module-level, function-local and relative imports are arrows; a two-module circle is found, a chain is not."""
    known = {"labkit.sim.a", "labkit.sim.b", "labkit.sim.c", "labkit.sim.pkg", "labkit.sim.pkg.d"}
    source = (
        "import os\n"
        "from labkit.sim import a\n"
        "from labkit.sim.b import thing\n"
        "def f():\n"
        "    from labkit.sim.c import other\n"
        "    import labkit.sim.pkg.d.deeper\n"
    )
    assert _targets("labkit.sim.x", source, known) == [
        ("labkit.sim.a", 2, False), ("labkit.sim.b", 3, False), ("labkit.sim.c", 5, True),
        ("labkit.sim.pkg.d", 6, True)]
    assert _targets("labkit.sim.pkg", "from .d import x\nfrom . import d\n", known, is_package=True) == [
        ("labkit.sim.pkg.d", 1, False), ("labkit.sim.pkg.d", 2, False)]
    assert _targets("labkit.sim.pkg.d", "from ..a import y\n", known) == [("labkit.sim.a", 1, False)]
    assert circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_circle_among_the_simulators_modules():
    """No module of labkit.sim reaches itself again through the modules it imports (function-local ones too)."""
    found = circles(import_graph())
    assert found == [], "modules of labkit.sim in one import circle: " + "; ".join(", ".join(c) for c in found)


def test_no_simulator_module_is_imported_inside_a_function():
    """Simulator modules import one another at the top: a function-local import is how a circle hides, and none
    of them is heavy enough to keep off a hot path."""
    modules = _modules()
    known = set(modules)
    hidden = [f"{m}:{line} imports {t}" for m, p in modules.items()
              for t, line, inside in _targets(m, p.read_text(), known, p.name == "__init__.py") if inside]
    assert hidden == [], "function-local imports between simulator modules: " + ", ".join(hidden)


def _floors() -> list[str]:
    """The simulator's modules in the order ``labkit.sim``'s docstring lists them, lowest first."""
    return list(dict.fromkeys(re.findall(r":mod:`(labkit\.sim\.\w+)`", labkit.sim.__doc__ or "")))


def _floor(module: str, floors: list[str]) -> int:
    """Where ``module`` stands in ``floors`` (a package's modules stand with it)."""
    while module not in floors and "." in module:
        module = module.rsplit(".", 1)[0]
    return floors.index(module)


def test_every_module_imports_only_what_the_package_docstring_lists_above_it():
    """labkit.sim's docstring lists its modules bottom up; no import runs back up that list (a package's own
    modules may import one another)."""
    floors = _floors()
    assert "labkit.sim.kernel" in floors and "labkit.sim.backend" in floors
    modules = _modules()
    unlisted = [m for m in modules if m != PACKAGE and _floor(m, floors + [PACKAGE]) == len(floors)]
    assert unlisted == [], f"modules of labkit.sim its docstring does not list: {unlisted}"
    upward = [f"{m} imports {t}" for m, targets in import_graph().items() if m != PACKAGE for t in targets
              if _floor(t, floors) > _floor(m, floors)]
    assert upward == [], "imports running up labkit.sim's list of modules: " + ", ".join(upward)
