"""Fixtures for the image tests: a temporary store, and a real container to RUN build steps in."""

from __future__ import annotations

import os
import shutil

import pytest

from labkit.images.ownership import HostIds
from labkit.images.store import ImageStore


@pytest.fixture
def build_runner(tmp_path):
    """labkit's own runner (the linux backend): every RUN step is a real labkit container."""
    if os.geteuid() != 0:
        pytest.fail("build_runner needs root: it mounts overlayfs in new namespaces")
    from labkit.linux.backend import LinuxBackend
    from labkit.store import Store

    return LinuxBackend(Store(tmp_path / "labkit-runner")).build_runner


@pytest.fixture(autouse=True)
def _remove_tmp_path(tmp_path):
    """Every image test's temporary directory is removed when the test ends, not sessions later."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def store(tmp_path):
    """An empty image store in a temporary directory (removed with it)."""
    root = tmp_path / "labkit-images"
    yield ImageStore(str(root), HostIds())
    shutil.rmtree(root, ignore_errors=True)
