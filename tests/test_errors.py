"""labkit's error tree: every error labkit raises on purpose is below LabkitError and drawn in errors.py."""

from __future__ import annotations

import ast
import re

import labkit.errors
from labkit.cli.errors import describe
from labkit.errors import NoSuchNetwork, NotFound
from tests.test_imports import MODULES


def _error_classes() -> dict[str, str]:
    """Every class of labkit below LabkitError (read from the source, by base name), with the module it is in."""
    bases: dict[str, tuple[str, list[str]]] = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = (module, [ast.unparse(b).rpartition(".")[2] for b in node.bases])
    found = {"LabkitError": "labkit.errors"}
    grew = True
    while grew:
        grew = False
        for name, (module, parents) in bases.items():
            if name not in found and any(p in found for p in parents):
                found[name] = module
                grew = True
    return found


def _drawn() -> set[str]:
    """The class names the tree in errors.py's docstring draws."""
    doc = labkit.errors.__doc__ or ""
    tree = doc[doc.index("    LabkitError\n"):doc.index("    LabkitWarning")]
    return set(re.findall(r"(?:^    |── )(\w+)", tree, re.MULTILINE))


def test_every_labkit_error_is_drawn_in_the_tree():
    """Each subclass of LabkitError defined anywhere in labkit has its place in errors.py's drawing, and the drawing
    names no class that does not exist."""
    classes = _error_classes()
    assert {"NoSuchNetwork", "Breakout", "UsageError"} <= set(classes)
    assert set(classes) - _drawn() == set(), "errors not drawn in labkit/errors.py"
    assert _drawn() - set(classes) == set(), "drawn in labkit/errors.py but not defined"


def test_the_engines_own_errors_live_in_errors_py():
    """The errors the engine's collections raise for a missing container, image, volume or network are
    defined in errors.py itself."""
    classes = _error_classes()
    assert {classes[n] for n in ("NoSuchContainer", "NoSuchImage", "NoSuchVolume", "NoSuchNetwork",
                                 "Breakout")} == {"labkit.errors"}


def test_a_missing_network_is_refused_in_dockers_words_and_exit_codes():
    """A missing network is a NotFound (a LookupError); run says it as Docker's daemon answer and exits 125,
    any other command exits 1."""
    error = NoSuchNetwork("nosuch")
    assert isinstance(error, NotFound) and isinstance(error, LookupError)
    line, code = describe(error, "run")
    assert code == 125 and line.startswith("labkit: Error response from daemon: network nosuch not found.")
    assert describe(error, "network") == (
        "Error response from daemon: network nosuch not found. Run 'labkit network ls' to list networks", 1)
