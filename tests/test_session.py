"""The test session's own sweeps (tests/conftest.py) on the roots the session made."""

from __future__ import annotations

import os

import pytest

from tests.conftest import _take_down_bridges, state_root

pytestmark = pytest.mark.root


def test_the_bridge_sweep_passes_by_a_root_another_user_owns_quietly(capsys):
    """A state root a test gave another user (the simulator run as nobody makes one) is not opened by the session's
    bridge sweep, and nothing is printed: labkit as root refuses such a root, and only root's own roots hold bridges."""
    root = state_root()
    (root / "networks").mkdir()
    os.chown(root, 65534, 65534)
    _take_down_bridges([root])
    assert capsys.readouterr().out == ""
