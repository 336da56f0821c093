"""labkit's public surface: what `__all__` promises exists, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import labkit
import labkit.errors


def test_all_names_resolve():
    """Every name in labkit.__all__ is there, and every public error class is exported."""
    for name in labkit.__all__:
        assert getattr(labkit, name) is not None, name
    errors = {n for n, v in vars(labkit.errors).items() if isinstance(v, type) and issubclass(v, Exception)}
    assert errors <= set(labkit.__all__)


def test_errors_subclass_the_builtin_they_mean():
    """Errors can be caught by their builtin meaning (LookupError, ValueError, ...)."""
    assert issubclass(labkit.NoSuchContainer, LookupError)
    assert issubclass(labkit.InvalidName, ValueError)
    assert issubclass(labkit.HostUnsupported, OSError)
    assert issubclass(labkit.IllegalTransition, labkit.LabkitError)


def test_import_is_light():
    """`import labkit` and the CLI's parser load neither the engine nor pyroute2, matplotlib or ipywidgets."""
    code = ("import sys, labkit, labkit.cli; labkit.cli.build_parser(); "
            "print(sorted(m for m in ('labkit.engine', 'pyroute2', 'matplotlib', 'ipywidgets', 'yaml', "
            "'labkit.images.build', 'tarfile') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
