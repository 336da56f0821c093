"""A container's limits on the real kernel, on whatever cgroup layout the host has (v1, hybrid or v2 only).

Each test does what a learner's lesson does (a memory hog, a fork storm, a busy loop, pause) and reads
the kernel's own counters in the container's group to show the limit held: ``memory.events``,
``pids.events``, ``cpu.stat``, the freezer's state. On a v2-only host (systemd's default) the
container also sees its own group, read-only, at ``/sys/fs/cgroup``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from labkit.linux import cgroups
from tests.util import wait_for

pytestmark = pytest.mark.root


def _group(engine, container) -> cgroups.Cgroup:
    """The container's group: in the host's hierarchies as root, in the delegated subtree rootless."""
    backend = engine.backend
    layout = backend.delegated if backend.rootless else backend.layout
    assert layout is not None, "no cgroup this user may write"
    return cgroups.Cgroup.open(layout, container.id)


def _keyed(path: str | None) -> dict[str, int]:
    assert path is not None and os.path.exists(path), path
    with open(path) as f:
        return {k: int(v) for k, v in (line.split() for line in f if line.strip())}


def test_doctor_and_auto_agree_that_overlayfs_is_there():
    """As root, doctor's overlayfs line is ok and auto picks the real backend, also on a fresh machine whose
    overlay module nothing has loaded yet (labkit loads it, as Docker does)."""
    env = {**os.environ, "LABKIT_NO_SERVER": "1"}
    env.pop("LABKIT_ROOT", None)
    env.pop("LABKIT_BACKEND", None)
    p = subprocess.run([sys.executable, "-m", "labkit", "doctor"], capture_output=True, text=True, env=env,
                       timeout=600)  # seen taking over 120 s in an emulated guest
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if "overlay" in ln.lower()]
    assert any("overlay listed in /proc/filesystems" in ln for ln in lines), p.stdout
    assert "backend: linux" in p.stdout, p.stdout
    with open("/proc/filesystems") as f:
        assert "overlay" in f.read().split()


def test_a_memory_hog_under_20m_ends_oomkilled(engine):
    """A shell doubling a string under --memory 20m is killed by the kernel: exit 137, and OOMKilled (read from
    the group's memory.events, or memory.oom_control on v1)."""
    check_a_memory_hog_under_20m_ends_oomkilled(engine)


def check_a_memory_hog_under_20m_ends_oomkilled(engine):
    """The check of test_a_memory_hog_under_20m_ends_oomkilled, on any engine: root, or rootless in a delegated scope."""
    c = engine.run("busybox", ["sh", "-c", "x=a; while true; do x=$x$x; done"], memory="20m", detach=True)
    assert wait_for(lambda: c.status == "exited", timeout=60)
    st = c.inspect()["State"]
    assert (st["ExitCode"], st["OOMKilled"]) == (137, True)
    c.remove(force=True)


def test_a_fork_storm_under_pids_limit_20_is_held(engine):
    """A shell forking 60 sleepers under --pids-limit 20 gets 'can't fork'; the group never holds more than 20
    and pids.events counts the refusals."""
    check_a_fork_storm_under_pids_limit_20_is_held(engine)


def check_a_fork_storm_under_pids_limit_20_is_held(engine):
    """The check of test_a_fork_storm_under_pids_limit_20_is_held, on any engine: root, or rootless in a delegated scope."""
    c = engine.run("busybox", ["sleep", "120"], pids_limit=20, detach=True)
    group = _group(engine, c)
    code, out = c.exec(["sh", "-c", "i=0; while [ $i -lt 60 ]; do sleep 60 & i=$((i+1)); done; echo done"])
    assert "can't fork" in out, out
    assert group.pids_current() is not None and group.pids_current() <= 20
    assert _keyed(group.interface_file("pids", "pids.events"))["max"] > 0
    assert c.status == "running"
    c.remove(force=True)


def test_a_busy_loop_under_cpus_0_2_is_throttled(engine):
    """A busy loop under --cpus 0.2 is throttled by the CFS bandwidth controller: cpu.stat's nr_throttled grows,
    and the loop gets well under half a CPU."""
    check_a_busy_loop_under_cpus_0_2_is_throttled(engine)


def check_a_busy_loop_under_cpus_0_2_is_throttled(engine):
    """The check of test_a_busy_loop_under_cpus_0_2_is_throttled, on any engine: root, or rootless in a delegated scope."""
    c = engine.run("busybox", ["sh", "-c", "while :; do :; done"], cpus=0.2, detach=True)
    group = _group(engine, c)
    stat = group.interface_file("cpu", "cpu.stat")
    time.sleep(0.5)
    before, used0, t0 = _keyed(stat), group.cpu_usage_ns(), time.monotonic()
    time.sleep(3.0)
    after, used1, t1 = _keyed(stat), group.cpu_usage_ns(), time.monotonic()
    assert after["nr_throttled"] > before["nr_throttled"], (before, after)
    assert used0 is not None and used1 is not None
    assert (used1 - used0) / ((t1 - t0) * 1e9) < 0.45
    c.remove(force=True)


def test_stats_counts_the_bytes_a_container_writes_to_disk(engine):
    """Writes that reach the disk (``dd oflag=direct`` into a volume, ``conv=fsync`` in the writable layer) show
    in ``stats``' block I/O: the group's own ``blkio.throttle.io_service_bytes`` (v1) or ``io.stat`` (v2)."""
    c = engine.run("busybox", ["sleep", "60"], detach=True, volumes=["lk-blkio:/data"])
    before = engine.stats(c.id)["BlockWrite"]
    code, out = c.exec(["sh", "-c", "dd if=/dev/zero of=/data/f bs=64k count=64 oflag=direct 2>&1 && "
                                    "dd if=/dev/zero of=/upper bs=64k count=32 conv=fsync 2>&1"])
    assert code == 0, out
    written = engine.stats(c.id)["BlockWrite"] - before
    assert written >= (64 + 32) * 64 * 1024, (written, out)
    c.remove(force=True)
    engine.volume_rm("lk-blkio")


def test_pause_freezes_and_unpause_thaws(engine):
    """pause freezes the container's group (the kernel's freezer says frozen, the loop's CPU time stands still);
    unpause thaws it and the loop runs again."""
    check_pause_freezes_and_unpause_thaws(engine)


def check_pause_freezes_and_unpause_thaws(engine):
    """The check of test_pause_freezes_and_unpause_thaws, on any engine: root, or rootless in a delegated scope."""
    c = engine.run("busybox", ["sh", "-c", "while :; do :; done"], detach=True)
    group = _group(engine, c)
    c.pause()
    assert c.status == "paused" and group.frozen()
    used = group.cpu_usage_ns()
    time.sleep(0.5)
    assert group.cpu_usage_ns() == used
    c.unpause()
    assert c.status == "running" and not group.frozen()
    assert wait_for(lambda: group.cpu_usage_ns() > used, timeout=10)
    c.remove(force=True)


@pytest.mark.cgroup_v1
def test_the_container_sees_its_own_v1_groups_read_only_at_sys_fs_cgroup(engine):
    """On a v1 or hybrid host /sys/fs/cgroup is a tmpfs holding the container's own group of each hierarchy
    it was put in, read-only (its limits, not its parent's), as runc mounts them for Docker."""
    c = engine.run("busybox", ["sleep", "60"], memory="64m", pids_limit=30, detach=True)
    code, out = c.exec(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; "
                                    "ls /sys/fs/cgroup/memory | grep -c '^labkit$'; "
                                    "grep ' /sys/fs/cgroup' /proc/mounts; echo 1 > /sys/fs/cgroup/pids/pids.max"])
    lines = out.splitlines()
    assert lines[:3] == [str(64 * 2**20), "30", "0"], out
    mounts = [line.split() for line in lines[3:] if line.startswith(("tmpfs", "cgroup"))]
    assert mounts[0][1:3] == ["/sys/fs/cgroup", "tmpfs"], out
    assert {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"} <= {m[1] for m in mounts[1:]}, out
    assert all("ro" in m[3].split(",") for m in mounts[1:]), out
    assert code != 0 and "Read-only file system" in out, out
    c.remove(force=True)


@pytest.mark.cgroup_v2
def test_the_container_sees_its_own_group_read_only_at_sys_fs_cgroup(engine):
    """On a v2-only host the container's /sys/fs/cgroup is its own group (its limits, nothing above), read-only."""
    c = engine.run("busybox", ["sleep", "60"], memory="64m", pids_limit=30, detach=True)
    code, out = c.exec(["sh", "-c", "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; cat /proc/self/cgroup; "
                                    "grep ' /sys/fs/cgroup ' /proc/mounts; echo 0 > /sys/fs/cgroup/cgroup.freeze"])
    lines = out.splitlines()
    assert lines[:3] == [str(64 * 2**20), "30", "0::/"], out
    assert lines[3].split()[2] == "cgroup2" and "ro" in lines[3].split()[3].split(","), out
    assert code != 0 and "Read-only file system" in out, out
    c.remove(force=True)
