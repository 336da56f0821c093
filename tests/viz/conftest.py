"""Fixtures for the pictures' tests: the real engine's lesson image, and a simulator engine."""

from __future__ import annotations

import os

import pytest


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
