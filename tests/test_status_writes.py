"""A container's status is written from the lifecycle table alone: never a status by hand.

The engine moves a record with :meth:`labkit.engine.core.Engine._moved`, which writes the
table's ``Move.to`` (or ``Move.through`` while a verb is under way). Read from the source:
outside :mod:`labkit.model.lifecycle`, no ``status=`` keyword and no assignment to a
``status`` takes a ``Status`` member, and only ``_moved`` passes ``status=`` to
``with_state``. (The pictures, :mod:`labkit.viz`, keep no status: they show one.)
"""

from __future__ import annotations

import ast

from tests.test_imports import MODULES

TABLE = "labkit.model.lifecycle"
WRITER = ("labkit.engine.core", "_moved")
#: The pictures keep no container's status: they show one (a widget's ``self.status`` is what it draws).
SHOWN_ONLY = "labkit.viz"


def _is_literal_write(what: str) -> bool:
    return "Status." in what or "S." in what


def _is_status_literal(node: ast.AST) -> bool:
    """``Status.EXITED`` (or the table's alias ``S.EXITED``), however the enum is reached."""
    return (isinstance(node, ast.Attribute) and node.attr.isupper()
            and isinstance(node.value, ast.Name | ast.Attribute)
            and (node.value.id if isinstance(node.value, ast.Name) else node.value.attr) in ("Status", "S"))


def _writes(tree: ast.Module) -> list[tuple[str, int, str]]:
    """Every place a status is written: (enclosing function, line, what)."""
    found = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else where
            if isinstance(child, ast.Call):
                for kw in child.keywords:
                    if kw.arg == "status" and isinstance(child.func, ast.Attribute) and \
                            child.func.attr == "with_state":
                        found.append((where, child.lineno, f"with_state(status={ast.unparse(kw.value)})"))
                    elif kw.arg == "status" and _is_status_literal(kw.value):
                        found.append((where, child.lineno, f"status={ast.unparse(kw.value)}"))
            if isinstance(child, ast.Assign | ast.AnnAssign):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for target in targets:
                    named = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                    if named == "status" and child.value is not None and _is_status_literal(child.value):
                        found.append((where, child.lineno, f"status = {ast.unparse(child.value)}"))
            visit(child, inner)

    visit(tree, "")
    return found


def test_the_walk_finds_a_status_written_by_hand():
    """The check sees a status literal passed as a keyword, assigned, and given to with_state."""
    tree = ast.parse("def f(rec):\n    rec.with_state(status=Status.REMOVING)\n    rec.status = S.EXITED\n"
                     "    g(status=Status.RUNNING)\n")
    assert [w for _f, _l, w in _writes(tree)] == ["with_state(status=Status.REMOVING)", "status = S.EXITED",
                                                  "status=Status.RUNNING"]


def test_no_status_is_written_by_hand():
    """Outside the lifecycle table, only Engine._moved writes a container's status, and never a literal."""
    bad = []
    for module, path in sorted(MODULES.items()):
        if module == TABLE or module.startswith(SHOWN_ONLY + "."):
            continue
        for where, line, what in _writes(ast.parse(path.read_text(), str(path))):
            if (module, where) == WRITER and not _is_literal_write(what):
                continue
            bad.append(f"{path.relative_to(path.parents[len(module.split('.')) - 1])}:{line} in {where}(): {what}")
    assert not bad, "statuses written by hand (write the table's Move.to through Engine._moved):\n" + "\n".join(bad)
