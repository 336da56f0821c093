"""Rootless limits for a user logged in to a systemd host: labkit's own delegated scope, found by labkit itself.

These run as an ordinary user with a systemd user session on a cgroup v2-only host (a login over
ssh, a desktop session): the user's shell sits in ``session-N.scope``, which belongs to root.
labkit's engine asks the user's systemd for ``labkit.scope`` (Delegate=yes) and moves into it
(:mod:`labkit.linux.systemd`); the containers' groups, their limits and the freezer are then the
user's. ``tests/vm/run.py`` runs this file as the user ``lk`` in its Debian 12 guest; elsewhere
(root, no user session, a hybrid host) it is skipped, and that run reports it.
"""

from __future__ import annotations

import os

import pytest

from labkit.linux import systemd
from tests.conftest import host_cgroup_layout
from tests.linux import test_limits

pytestmark = pytest.mark.skipif(
    os.geteuid() == 0 or systemd.user_bus() is None or host_cgroup_layout() != "v2",
    reason="needs a user with a systemd user session on a cgroup v2-only host (tests/vm/run.py's guest)",
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A rootless engine on a state root of its own; every container it made is removed after the module."""
    import labkit

    lab = labkit.connect(backend="rootless", root=tmp_path_factory.mktemp("labkit-session"))
    yield lab
    for cid in lab.store.container_ids():
        lab.rm(cid, force=True)


def test_labkit_finds_a_delegated_scope_by_itself(lab):
    """From a login shell's root-owned session scope, the engine moves into labkit.scope, which the user's
    systemd delegates: memory, pids and CPU limits are enforced there."""
    layout = lab.backend.delegated
    assert layout is not None
    assert layout.unified.endswith("/" + systemd.SCOPE), layout.unified
    assert systemd.own_cgroup().endswith(f"/{systemd.SCOPE}/{systemd.LEAF}")
    assert os.stat(layout.unified).st_uid == os.getuid()
    assert lab.enforced_limits >= {"memory", "pids", "cpu"}


def test_a_memory_hog_under_20m_ends_oomkilled_rootless(lab):
    """Rootless, a shell doubling a string under --memory 20m ends with 137 and OOMKilled."""
    test_limits.check_a_memory_hog_under_20m_ends_oomkilled(lab)


def test_a_fork_storm_under_pids_limit_20_is_held_rootless(lab):
    """Rootless, 60 forks under --pids-limit 20 are held at 20 and counted in pids.events."""
    test_limits.check_a_fork_storm_under_pids_limit_20_is_held(lab)


def test_a_busy_loop_under_cpus_0_2_is_throttled_rootless(lab):
    """Rootless, a busy loop under --cpus 0.2 is throttled (cpu.stat nr_throttled grows)."""
    test_limits.check_a_busy_loop_under_cpus_0_2_is_throttled(lab)


def test_pause_freezes_and_unpause_thaws_rootless(lab):
    """Rootless, pause freezes the container's group with cgroup.freeze (no SIGSTOP) and unpause thaws it."""
    test_limits.check_pause_freezes_and_unpause_thaws(lab)
