"""labkit/linux and labkit/images import no circle: each module can be read, and tested, above the ones it uses.

The graph is :mod:`tests.test_imports`'s, read from the source, here with the imports under
``if TYPE_CHECKING:`` counted too: for these two packages even a type-only arrow back would hide a
circle (``labkit.backend`` → ``images.store`` → ``linux.rootless`` → ``linux.cgroups`` →
``labkit.backend`` was one). A circle counts when any module of the two packages is on it.
"""

from __future__ import annotations

from tests.test_imports import circles, graph, imports_of

WATCHED = ("labkit.linux", "labkit.images")


def test_the_graph_sees_imports_for_the_type_checker() -> None:
    """An import under ``if TYPE_CHECKING:`` is an arrow of the full graph (the engine names its Backend so)."""
    type_only = {target for target, types in imports_of("labkit.engine.core") if types}
    assert type_only and type_only <= graph(runtime_only=False)["labkit.engine.core"]


def test_no_circle_runs_through_linux_or_images() -> None:
    """No import circle, counting type-only imports, has a module of labkit/linux or labkit/images on it."""
    bad = [c for c in circles(graph(runtime_only=False)) if any(m.startswith(WATCHED) for m in c)]
    assert bad == [], "import circles through labkit/linux or labkit/images: " + "; ".join(
        " ↔ ".join(sorted(c)) for c in bad)
