"""Both backends implement the whole :class:`labkit.backend.Backend` Protocol: by type (mypy) and at run time."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from labkit.backend import Backend
from labkit.linux.backend import LinuxBackend
from labkit.sim.backend import SimBackend
from labkit.store import Store

IMPLEMENTATIONS = [LinuxBackend, SimBackend]
#: The mypy beside this Python (the test extra installs it), else one on PATH.
MYPY = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")


def _members() -> tuple[set[str], dict[str, typing.Any]]:
    """The Protocol's attributes (annotated) and methods (defined in its body)."""
    attributes = set(Backend.__annotations__)
    methods = {name: value for name, value in vars(Backend).items()
               if inspect.isfunction(value) and not name.startswith("_")}
    return attributes, methods


def test_the_protocol_is_read_whole():
    """The members read from the Protocol include what the engine, the graders and the pictures ask."""
    attributes, methods = _members()
    assert {"name", "simulated", "rootless", "host_bridges", "emit"} <= attributes
    assert {"create", "start", "observe", "build_runner", "ensure_base", "clock", "network_settings",
            "observe_layer", "trace_teardown", "drop_bridge", "layer_model", "process_view"} <= set(methods)


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda cls: cls.__name__)
def backend(request, tmp_path):
    """An instance of each backend on an empty state root (made, never started: no kernel work)."""
    return request.param(Store(str(tmp_path / "root")))


def test_every_attribute_is_there(backend):
    """Every attribute the Protocol declares is set on an instance, with the declared plain type."""
    attributes, _ = _members()
    for name in attributes:
        assert hasattr(backend, name), f"{type(backend).__name__} has no {name}"
    for name in ("simulated", "rootless", "host_bridges"):
        assert isinstance(getattr(backend, name), bool), name
    assert isinstance(backend.name, str) and backend.name
    assert callable(backend.emit)


def test_every_method_has_a_compatible_signature(backend):
    """Each Protocol method exists and takes the Protocol's parameters by the same names, in the same order
    and kinds; a default in the Protocol is a default in the backend; anything more has a default."""
    _, methods = _members()
    for name, declared in methods.items():
        method = getattr(backend, name, None)
        assert callable(method), f"{type(backend).__name__} has no method {name}"
        want = list(inspect.signature(declared).parameters.values())[1:]  # without self
        have = list(inspect.signature(method).parameters.values())
        where = f"{type(backend).__name__}.{name}{inspect.signature(method)} against Backend.{name}"
        assert [p.name for p in have[: len(want)]] == [p.name for p in want], where
        for w, h in zip(want, have, strict=False):
            assert h.kind == w.kind, where
            if w.default is not inspect.Parameter.empty:
                assert h.default is not inspect.Parameter.empty, where
        for extra in have[len(want):]:
            assert extra.default is not inspect.Parameter.empty or extra.kind in (
                inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD), where


def test_the_backends_answer_what_they_differ_in(backend):
    """The questions the engine asks instead of "which backend is this?" get each backend's own answer."""
    if isinstance(backend, SimBackend):
        assert backend.simulated and not backend.host_bridges
        assert backend.service_problem() is not None and backend.security_options() == []
    else:
        assert not backend.simulated and backend.host_bridges and backend.service_problem() is None
        assert "name=seccomp,profile=builtin" in backend.security_options()


@pytest.mark.skipif(MYPY is None, reason="mypy is not installed (pip install -e '.[test]')")
def test_both_backends_type_check_as_a_backend(tmp_path):
    """mypy accepts each backend where a Backend is expected, and refuses a class that lacks a member."""
    good = ("from labkit.backend import Backend\nfrom labkit.linux.backend import LinuxBackend\n"
            "from labkit.sim.backend import SimBackend\nfrom labkit.store import Store\n"
            "def backends(store: Store) -> list[Backend]:\n    return [LinuxBackend(store), SimBackend(store)]\n")
    bad = ("from labkit.backend import Backend\nclass Half:\n    name = 'half'\n"
           "def backend() -> Backend:\n    return Half()\n")
    for text, ok in ((good, True), (bad, False)):
        path = tmp_path / ("good.py" if ok else "bad.py")
        path.write_text(text)
        run = subprocess.run([str(MYPY), "--no-incremental", "--ignore-missing-imports", "--follow-imports=silent",
                              str(path)], capture_output=True, text=True, timeout=600)
        assert (run.returncode == 0) is ok, run.stdout + run.stderr
