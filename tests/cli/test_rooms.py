"""The command line, the daemon, the engine, the services and the doctor import one another without a circle."""

from __future__ import annotations

import ast
from pathlib import Path

LABKIT = Path(__file__).resolve().parents[2] / "labkit"


def _module(path: Path) -> str:
    parts = list(path.relative_to(LABKIT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every labkit module and the labkit modules it imports, at the top or inside a function alike."""
    names = {_module(p) for p in LABKIT.rglob("*.py")}

    def known(name: str) -> str:
        while name not in names:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for path in LABKIT.rglob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {known(a.name) for a in node.names if a.name.startswith("labkit")}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("labkit"):
                found |= {known(f"{node.module}.{a.name}") for a in node.names}
        graph[_module(path)] = found - {_module(path)}
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _room(module: str) -> str:
    for room in ("labkit.cli", "labkit.daemon.client", "labkit.daemon.server", "labkit.engine", "labkit.service",
                 "labkit.doctor"):
        if module == room or module.startswith(room + "."):
            return room
    return ""


def test_cli_and_doctor_know_the_daemon_only_by_its_client():
    """labkit.cli and labkit.doctor import labkit.daemon.client and never the server; the client imports no labkit."""
    graph = _imports()
    for module, imported in graph.items():
        if _room(module) in ("labkit.cli", "labkit.doctor"):
            assert "labkit.daemon.server" not in imported, module
    assert not graph["labkit.daemon.client"] and not graph["labkit.daemon"]


def test_no_circle_among_cli_daemon_engine_service_and_doctor():
    """No one of these rooms reaches itself again through another of them."""
    graph = _imports()
    rooms = {_room(m) for m in graph} - {""}
    arrows = {(_room(m), _room(n)) for m, targets in graph.items() for n in targets
              if _room(m) and _room(n) and _room(m) != _room(n)}
    between = {room: {b for a, b in arrows if a == room} for room in rooms}
    for room in rooms:
        assert room not in _reach(between, room), f"{room} imports itself again through {sorted(between[room])}"


def test_the_cli_package_has_no_circle_inside():
    """Inside labkit.cli, modules import one another in one direction: commands never import the parser or main."""
    graph = _imports()
    inside = {m: {n for n in graph[m] if n.startswith("labkit.cli")} for m in graph if m.startswith("labkit.cli")}
    for module in inside:
        assert module not in _reach(inside, module), module
