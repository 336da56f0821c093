"""labkit/linux and labkit/images import no circle: each module can be read, and tested, above the ones it uses.

The graph is read from the source: every ``import`` and ``from … import``, also the ones inside functions
and under ``if TYPE_CHECKING:``, which would otherwise hide a circle (``labkit.backend`` → ``images.store``
→ ``linux.rootless`` → ``linux.cgroups`` → ``labkit.backend`` was one). A circle counts when any module of
the two packages is on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "labkit"
WATCHED = ("labkit.linux", "labkit.images")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(tree: ast.AST, here: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    out: set[str] = set()

    def target(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            out.update(t for a in node.names if (t := target(a.name)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here if is_package else here.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for a in node.names:
                t = target(f"{base}.{a.name}") if f"{base}.{a.name}" in modules else target(base)
                if t:
                    out.add(t)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out.discard(here)
    return out


def import_graph() -> dict[str, set[str]]:
    """Every labkit module and the labkit modules it imports."""
    modules = _modules()
    return {name: _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", modules)
            for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of ``graph`` with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_circle_finder_finds_a_circle() -> None:
    """A three-module circle and a self-standing module give exactly the circle."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_graph_sees_imports_inside_functions_and_for_the_type_checker() -> None:
    """An import inside a function, or under ``if TYPE_CHECKING:``, is an arrow too."""
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from labkit.images.store import Image\n"
              "def f():\n    from labkit.linux import syscalls\n")
    got = _imports(ast.parse(source), "labkit.example", False, _modules())
    assert got == {"labkit.images.store", "labkit.linux.syscalls"}


def test_no_circle_runs_through_linux_or_images() -> None:
    """No import circle has a module of labkit/linux or labkit/images on it."""
    bad = [c for c in circles(import_graph()) if any(m.startswith(WATCHED) for m in c)]
    assert bad == [], "import circles through labkit/linux or labkit/images: " + "; ".join(" ↔ ".join(c) for c in bad)
