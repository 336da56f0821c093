"""One engine per backend on a fresh state root: ``sim`` always, ``linux`` only as root."""

from __future__ import annotations

import os

import pytest

import labkit

_STATE_ROOT = []


def pytest_configure(config):
    # tests/conftest.py's state_root(): roots made with it are swept (and leak-checked) at session end.
    top = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conftest.py")
    for plugin in config.pluginmanager.get_plugins():
        if os.path.abspath(getattr(plugin, "__file__", "") or "") == top:
            _STATE_ROOT.append(plugin.state_root)


BACKENDS = ["sim", pytest.param("linux", marks=pytest.mark.root)]


def remove_all(engine) -> None:
    for cid in engine.store.container_ids():
        try:
            engine.rm(cid, force=True)
        except Exception:
            pass


@pytest.fixture(scope="module", params=BACKENDS)
def backend_engine(request):
    """A fresh engine of one backend on a fresh state root, for one test module."""
    engine = labkit.connect(backend=request.param, root=_STATE_ROOT[0]())
    yield engine
    remove_all(engine)


@pytest.fixture
def lab(backend_engine):
    """The module's engine; every container a test makes is removed after it."""
    yield backend_engine
    remove_all(backend_engine)
