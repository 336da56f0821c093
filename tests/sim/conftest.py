"""Fixtures for the simulator's tests: a fresh sim engine on a fresh state root, deterministic clock."""

from __future__ import annotations

import os

import pytest

from labkit.engine import Engine
from labkit.sim.backend import SimBackend
from labkit.store import Store

_STATE_ROOT = []


def pytest_configure(config):
    # tests/conftest.py's state_root(): roots made with it are swept (and leak-checked) at session end.
    top = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conftest.py")
    for plugin in config.pluginmanager.get_plugins():
        if os.path.abspath(getattr(plugin, "__file__", "") or "") == top:
            _STATE_ROOT.append(plugin.state_root)


def state_root():
    """A fresh state root from tests/conftest.py (so the session's leak check knows it)."""
    return _STATE_ROOT[0]()


def sim_engine(root=None, realtime: bool = False) -> Engine:
    """A sim engine whose clock moves only through waits, exec and timeouts (unless ``realtime``)."""
    root = root or state_root()
    return Engine(root=root, backend=SimBackend(Store(root), realtime=realtime))


def cleanup(engine: Engine) -> None:
    for cid in engine.store.container_ids():
        try:
            engine.rm(cid, force=True)
        except Exception:
            pass


@pytest.fixture
def sim():
    """A fresh sim engine with the manual clock; every container is removed afterwards."""
    engine = sim_engine()
    yield engine
    cleanup(engine)


@pytest.fixture
def fresh_root():
    """Make fresh state roots (known to the leak check)."""
    return state_root


@pytest.fixture
def make_sim():
    """Make sim engines (``make_sim(root, realtime=...)``); their containers are removed afterwards."""
    made: list[Engine] = []

    def make(root=None, realtime: bool = False) -> Engine:
        engine = sim_engine(root, realtime)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        cleanup(engine)
