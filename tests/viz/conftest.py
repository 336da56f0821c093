"""Fixtures for the pictures' tests: the lesson image on the real engine, and a simulator engine."""

from __future__ import annotations

import os

import pytest

from labkit.engine import Engine
from labkit.sim.backend import SimBackend
from labkit.store import Store
from tests.conftest import state_root


@pytest.fixture
def lesson_image(engine):
    """frontend-app:v2.1.0 built in the session's engine (three layers: base OS, runtime, app code)."""
    engine.setup(on_step=lambda _line: None)
    return "frontend-app:v2.1.0"


def _top_conftest(config):
    """tests/conftest.py as pytest loaded it (its state roots are swept and leak-checked at session end)."""
    top = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conftest.py")
    for plugin in config.pluginmanager.get_plugins():
        if os.path.abspath(getattr(plugin, "__file__", "") or "") == top:
            return plugin
    raise LookupError("tests/conftest.py is not loaded")


@pytest.fixture
def sim(request):
    """A sim engine with the manual clock on a fresh state root; every container is removed afterwards."""
    from labkit.engine import Engine
    from labkit.sim.backend import SimBackend
    from labkit.store import Store

    root = _top_conftest(request.config).state_root()
    engine = Engine(root=root, backend=SimBackend(Store(root), realtime=False))
    yield engine
    for cid in engine.store.container_ids():
        try:
            engine.rm(cid, force=True)
        except Exception:
            pass
@pytest.fixture(scope="session")
def sim_session():
    """A simulator engine with the lesson's images, its clock moved only by waits, exec and timeouts."""
    root = state_root()
    engine = Engine(root=root, backend=SimBackend(Store(root), realtime=False))
    engine.setup(on_step=lambda _line: None)
    return engine


@pytest.fixture
def sim_lab(sim_session):
    """The session's simulator engine; every container a test leaves is removed after it."""
    before = set(sim_session.store.container_ids())
    yield sim_session
    for cid in set(sim_session.store.container_ids()) - before:
        sim_session.rm(cid, force=True)
