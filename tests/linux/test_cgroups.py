"""cgroups: layout detection, limits, accounting and the freezer.

Tests marked ``root`` use this host's real cgroups. The others run the same
code against a temporary directory laid out like cgroupfs (``FakeCgroupfs``
makes the interface files on mkdir the way the kernel does), which is how the
v2 protocol is checked on a host whose unified hierarchy has no controllers.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from labkit.errors import Conflict, HostUnsupported, InvalidArgument, LabkitError, NotFound
from labkit.linux import cgroups
from labkit.linux.cgroups import Cgroup, Cgroupfs, Layout, Limits, detect, stale
from tests.util import scaled

MiB = 1024 * 1024
PY = sys.executable
ON_CGROUPS = os.path.exists("/sys/fs/cgroup") and bool(os.listdir("/sys/fs/cgroup"))


# -- helpers for the real kernel ------------------------------------------------


def _read_more(stream, said: list[str]) -> str:
    """All that a non-blocking pipe has said so far (``said`` keeps what earlier reads took)."""
    try:
        said.append(stream.read() or "")
    except (BlockingIOError, TypeError):  # nothing there yet
        pass
    return "".join(said)


def _said_line(text: str, word: str) -> bool:
    """Whether ``text`` holds a whole line (ended by a newline) with ``word`` in it."""
    return any(word in line.lower() for line in text.splitlines(keepends=True) if line.endswith("\n"))


def _wait_until(predicate, timeout=5.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (proc(5), /proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("State:"):
                return line.split()[1]
    return "?"


@pytest.fixture
def groups():
    """Makes real groups and processes in them; kills and removes all of them afterwards."""
    made: list[Cgroup] = []
    procs: list[subprocess.Popen] = []

    def make(limits: Limits | None = None, layout: Layout | None = None) -> Cgroup:
        group = Cgroup.create(layout or detect(), f"test-{uuid.uuid4().hex[:12]}", limits or Limits())
        made.append(group)
        return group

    def spawn(group: Cgroup, argv: list[str]) -> subprocess.Popen:
        # The child joins the group before it execs, as a container process does.
        proc = subprocess.Popen(
            argv,
            preexec_fn=lambda: group.add(os.getpid()),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    try:
        yield SimpleNamespace(make=make, spawn=spawn)
    finally:
        for group in made:
            try:
                group.kill_all()
            except Exception:
                pass
        for proc in procs:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for group in made:
            group.destroy(timeout=10)


# -- real kernel: detection ---------------------------------------------------------


def _fstype(path: str) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True).stdout.strip()


@pytest.mark.root
def test_detect_matches_what_the_filesystems_say():
    """detect() agrees with the file system types under /sys/fs/cgroup (cgroupfs for v1, cgroup2fs for v2)."""
    layout = detect()
    if _fstype("/sys/fs/cgroup") == "cgroup2fs":
        assert layout.version == "v2"
        assert layout.unified == "/sys/fs/cgroup"
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            assert set(layout.controllers) == set(f.read().split())
        return
    expected: dict[str, str] = {}
    for entry in sorted(os.scandir("/sys/fs/cgroup"), key=lambda e: e.name):
        if entry.is_symlink() or not entry.is_dir() or _fstype(entry.path) != "cgroupfs":
            continue
        for controller in entry.name.split(","):
            if controller in cgroups.V1_CONTROLLERS:
                expected.setdefault(controller, entry.path)
    unified = "/sys/fs/cgroup/unified"
    has_unified = os.path.isdir(unified) and _fstype(unified) == "cgroup2fs"
    assert layout.version == ("hybrid" if has_unified else "v1")
    assert {c: p for c, p in layout.controllers.items() if p != layout.unified} == expected
    assert layout.freezer == ("v1" if "freezer" in expected else "v2")
    if layout.version == "hybrid":
        assert layout.unified == unified
        assert {"memory", "pids", "cpu", "cpuacct", "freezer"} <= set(expected)


# -- real kernel: groups ------------------------------------------------------------


@pytest.mark.root
def test_create_writes_limits_and_destroy_leaves_no_directory(groups):
    """create() makes the group in every joined hierarchy with the limits written, and destroy() removes it all."""
    layout = detect()
    group = groups.make(Limits(memory=64 * MiB, nano_cpus=500_000_000, pids_limit=50), layout)
    assert group.dirs and all(os.path.isdir(d) for d in group.dirs)
    assert set(group.dirs) <= set(stale(layout))
    read = lambda controller, name: open(group.interface_file(controller, name)).read().strip()  # noqa: E731
    if layout.is_unified("memory"):
        assert read("memory", "memory.max") == str(64 * MiB)
        assert read("cpu", "cpu.max") == "50000 100000"
    else:
        assert read("memory", "memory.limit_in_bytes") == str(64 * MiB)
        if os.path.exists(group.interface_file("memory", "memory.memsw.limit_in_bytes")):
            assert read("memory", "memory.memsw.limit_in_bytes") == str(128 * MiB)
        assert read("cpu", "cpu.cfs_quota_us") == "50000"
        assert read("cpu", "cpu.cfs_period_us") == "100000"
    assert read("pids", "pids.max") == "50"
    assert Cgroup.open(layout, group.name).dirs == group.dirs
    group.destroy()
    assert not any(os.path.exists(d) for d in group.dirs)
    assert not set(group.dirs) & set(stale(layout))
    if not stale(layout):  # no other group of labkit's on the host: the parent went with this one
        assert not [h for h in layout.hierarchies if os.path.exists(os.path.join(h, "labkit"))]
    with pytest.raises(NotFound):
        Cgroup.open(layout, group.name)


@pytest.mark.root
def test_memory_limit_oom_kills_an_allocator(groups):
    """A process allocating 200 MB in a 32 MB group is OOM-killed (SIGKILL) and oom_kills() counts it."""
    group = groups.make(Limits(memory=32 * MiB))
    assert group.oom_kills() == 0
    proc = groups.spawn(group, [PY, "-c", "import sys; b = b'x' * (200 * 1024 * 1024); print(len(b))"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert out == ""
    assert group.oom_kills() >= 1
    assert "oom_kill" in open(group.oom_file).read()


PIDS_SCRIPT = """
import errno, os, time
n = 0
try:
    for _ in range(50):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
    print("none", n, flush=True)
except OSError as e:
    print(errno.errorcode[e.errno], n, flush=True)
time.sleep(60)
"""


@pytest.mark.root
def test_pids_limit_makes_fork_fail_with_eagain(groups):
    """With pids.max 8, fork() fails with EAGAIN after 7 children and pids.current never exceeds 8."""
    group = groups.make(Limits(pids_limit=8))
    proc = groups.spawn(group, [PY, "-c", PIDS_SCRIPT])
    name, forked = proc.stdout.readline().split()
    assert name == "EAGAIN"
    assert int(forked) == 7
    assert group.pids_current() == 8
    assert len(group.pids()) == 8
    group.kill_all()
    assert _wait_until(lambda: not group.pids())


@pytest.mark.root
def test_pids_limit_stops_a_shell_fork_loop(groups):
    """A shell starting 20 background sleeps under pids.max 5 reports a failed fork and the group stays at 5."""
    busybox = shutil.which("busybox")
    shell = [busybox, "sh"] if busybox else ["/bin/sh"]
    group = groups.make(Limits(pids_limit=5))
    loop = "i=0; while [ $i -lt 20 ]; do sleep 60 & i=$((i+1)); done; wait"
    proc = groups.spawn(group, [*shell, "-c", loop, "labkit-test-forkloop"])
    # until the kernel has refused a fork (pids.events "max" counts them) and the shell has said so: the group
    # reaching 5 is not enough on a slow host, where killing it then can beat the shell's sixth fork, nor is the
    # kernel's count, raised before the shell writes its message (in pieces: a guest once showed only its prefix)
    assert proc.stderr is not None
    os.set_blocking(proc.stderr.fileno(), False)
    said: list[str] = []
    assert _wait_until(lambda: proc.poll() is not None or group.forks_refused() > 0, timeout=scaled(5))
    _wait_until(lambda: _said_line(_read_more(proc.stderr, said), "fork") or proc.poll() is not None,
                timeout=scaled(5))
    assert group.pids_current() <= 5
    group.kill_all()
    proc.wait(timeout=scaled(10))
    err = _read_more(proc.stderr, said)
    assert "fork" in err.lower()
    if busybox:
        assert "Resource temporarily unavailable" in err  # EAGAIN from fork(2)
    assert _wait_until(lambda: not group.pids())


@pytest.mark.root
def test_cpu_quota_slows_a_busy_loop(groups):
    """A busy loop under --cpus 0.05 gets a small share of a CPU, and the kernel says it throttled the group.

    The CFS bandwidth controller counts the periods in which it held the group back (``nr_throttled`` in
    ``cpu.stat``, Documentation/scheduler/sched-bwc.rst): the proof that the quota, not a busy host, slowed
    the loop. An unlimited group running the same loop is never throttled. The quota is small so that it binds
    even on a host so loaded that an unlimited loop gets a fifth of a CPU.
    """
    limited = groups.make(Limits(nano_cpus=50_000_000))
    free = groups.make(Limits())
    loop = [PY, "-c", "while True: pass"]
    groups.spawn(limited, loop)
    groups.spawn(free, loop)
    time.sleep(0.5)
    t0, a0, n0 = time.monotonic(), limited.cpu_usage_ns(), _throttled(limited)
    time.sleep(2.0)
    t1, a1, n1 = time.monotonic(), limited.cpu_usage_ns(), _throttled(limited)
    limited_share = (a1 - a0) / ((t1 - t0) * 1e9)
    assert 0 < limited_share < 0.2, limited_share
    assert n1 > n0, f"nr_throttled did not grow: {n0} -> {n1}"
    assert _throttled(free) == 0


def _throttled(group) -> int:
    """``nr_throttled`` from the group's ``cpu.stat`` (the cpu controller's, v1 or v2)."""
    path = group.interface_file("cpu", "cpu.stat")
    assert path is not None, "this host has no cpu controller"
    fields = dict(line.split() for line in open(path).read().splitlines() if line.strip())
    return int(fields["nr_throttled"])


def _check_freezes_and_thaws(group: Cgroup, proc: subprocess.Popen, stopped_state: str) -> None:
    """The busy process stops using CPU while the group is frozen and runs again after thaw."""
    pid = proc.pid
    assert _wait_until(lambda: pid in group.pids())
    start = _cpu_ticks(pid)
    assert _wait_until(lambda: _cpu_ticks(pid) > start + 5)
    group.freeze()
    assert group.frozen()
    # Seen on Linux 6.18: the v1 freezer parks a task in __refrigerator (State D),
    # the v2 freezer in get_signal, a job-control-like stop (State S).
    assert _proc_state(pid) == stopped_state
    ticks, usage = _cpu_ticks(pid), group.cpu_usage_ns()
    time.sleep(0.3)
    assert _cpu_ticks(pid) == ticks
    assert group.cpu_usage_ns() == usage
    group.thaw()
    assert not group.frozen()
    assert _wait_until(lambda: _cpu_ticks(pid) > ticks + 5)
    assert _proc_state(pid) == "R"


@pytest.mark.root
@pytest.mark.cgroup_v1
def test_v1_freezer_freezes_and_thaws(groups):
    """freezer.state stops every process in the group (FROZEN) and THAWED lets them run again."""
    layout = detect(freezer="v1")
    group = groups.make(layout=layout)
    proc = groups.spawn(group, ["/bin/sh", "-c", "while :; do :; done", "labkit-test-freeze"])
    _check_freezes_and_thaws(group, proc, "D")
    assert open(group.interface_file("freezer", "freezer.state")).read().strip() == "THAWED"


@pytest.mark.root
def test_v2_freezer_freezes_and_thaws(groups):
    """cgroup.freeze in the unified group stops every process (cgroup.events: frozen 1) and 0 lets them run again."""
    layout = detect(freezer="v2")
    group = groups.make(layout=layout)
    unified_dir = os.path.join(layout.unified, "labkit", group.name)
    assert os.path.join(unified_dir, "cgroup.procs") in group.procs_files
    proc = groups.spawn(group, ["/bin/sh", "-c", "while :; do :; done", "labkit-test-freeze"])
    with open(f"/proc/{proc.pid}/cgroup") as f:
        assert f"0::/labkit/{group.name}" in f.read().splitlines()
    _check_freezes_and_thaws(group, proc, "S")
    assert "frozen 0" in open(os.path.join(unified_dir, "cgroup.events")).read()


SLEEPERS = "for i in 1 2 3 4 5; do sleep 60 & done; wait"


@pytest.mark.root
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_all_kills_every_process(groups, sig):
    """kill_all() ends the shell and all five of its children, by cgroup.kill (SIGKILL) or one by one (SIGTERM)."""
    group = groups.make()
    proc = groups.spawn(group, ["/bin/sh", "-c", SLEEPERS, "labkit-test-kill"])
    assert _wait_until(lambda: len(group.pids()) == 6)
    group.kill_all(sig)
    assert _wait_until(lambda: not group.pids())
    proc.communicate(timeout=10)
    assert proc.returncode == -sig


@pytest.mark.root
@pytest.mark.parametrize("freezer", [pytest.param("v1", marks=pytest.mark.cgroup_v1), "v2"])
def test_kill_all_kills_a_frozen_group_and_thaws_it(groups, freezer):
    """kill_all() on a frozen group kills every process and leaves the group thawed, like `docker kill` of a paused container."""
    group = groups.make(layout=detect(freezer=freezer))
    proc = groups.spawn(group, ["/bin/sh", "-c", SLEEPERS, "labkit-test-kill"])
    assert _wait_until(lambda: len(group.pids()) == 6)
    group.freeze()
    group.kill_all()
    assert _wait_until(lambda: not group.pids())
    assert not group.frozen()
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


# -- a fake cgroup root -----------------------------------------------------------------

V1_FILES = {
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712\n",
        "memory.usage_in_bytes": "0\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    },
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
    "cpu": {"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"},
    "cpuacct": {"cpuacct.usage": "0\n"},
    "freezer": {"freezer.state": "THAWED\n"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "blkio": {"blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
              "blkio.throttle.io_service_bytes": "Total 0\n"},
}
V2_FILES = {
    "memory": {
        "memory.max": "max\n",
        "memory.current": "0\n",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    },
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
    "cpu": {"cpu.max": "max 100000\n"},
}
V2_CORE = {
    "cgroup.procs": "",
    "cgroup.subtree_control": "\n",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
}


class FakeCgroupfs(Cgroupfs):
    """A temporary directory that behaves like cgroupfs for the files cgroups.py touches.

    mkdir makes the interface files the kernel would: on a v1 hierarchy those of
    its controllers; on the unified one the core files plus those of each
    controller the parent enabled in cgroup.subtree_control, which refuses a
    controller missing from the group's cgroup.controllers.
    """

    def __init__(self, v1: dict[str, tuple[str, ...]], unified: str | None, swap: bool = True, fail_on: str = ""):
        self.v1, self.unified, self.swap, self.fail_on = v1, unified, swap, fail_on
        self.writes: list[tuple[str, str]] = []

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        parent = os.path.dirname(path)
        if self.unified and path.startswith(self.unified + "/"):
            enabled = self.read(os.path.join(parent, "cgroup.subtree_control")).split()
            files = dict(V2_CORE, **{"cgroup.controllers": " ".join(enabled) + "\n"})
            for controller in enabled:
                files.update(V2_FILES.get(controller, {}))
            if self.swap and "memory" in enabled:
                files["memory.swap.max"] = "max\n"
        else:
            hierarchy = next(h for h in self.v1 if path.startswith(h + "/"))
            files = {"cgroup.procs": ""}
            for controller in self.v1[hierarchy]:
                files.update(V1_FILES.get(controller, {}))
            if self.swap and "memory" in self.v1[hierarchy]:
                files["memory.memsw.limit_in_bytes"] = "9223372036854771712\n"
        for name, text in files.items():
            Path(path, name).write_text(text)

    def rmdir(self, path: str) -> None:
        if Path(path, "cgroup.procs").read_text().split() or any(p.is_dir() for p in Path(path).iterdir()):
            raise OSError(errno.EBUSY, "Device or resource busy", path)  # processes, or child groups
        shutil.rmtree(path)  # cgroupfs removes the interface files with the directory

    def write(self, path: str, text: str) -> None:
        name = os.path.basename(path)
        if name == self.fail_on:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        self.writes.append((path, text))
        if name == "cgroup.subtree_control":
            available = self.read(os.path.join(os.path.dirname(path), "cgroup.controllers")).split()
            enabled = self.read(path).split()
            for token in text.split():
                if token[1:] not in available:
                    raise OSError(errno.ENOENT, "No such file or directory", path)
                if token[0] == "+" and token[1:] not in enabled:
                    enabled.append(token[1:])
            text = " ".join(enabled) + "\n"
        super().write(path, text)  # fails with ENOENT for a file the "kernel" did not make
        if name == "cgroup.freeze":
            Path(path).with_name("cgroup.events").write_text(f"populated 0\nfrozen {text.strip()}\n")

    def write_each(self, path: str, texts: list[str]) -> None:
        for text in texts:  # as the kernel takes them: one write(2) each
            self.write(path, text)

    def contents(self, path: str) -> str:
        return Path(path).read_text().strip()


def fake_v2(tmp_path: Path, controllers: str = "cpuset cpu io memory hugetlb pids rdma misc", **kw):
    """A v2-only host: one cgroup2 mount (its path has a space, escaped as \\040 in the table)."""
    root = tmp_path / "cg root"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("\n")
    (root / "cgroup.procs").write_text("")
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "proc /proc proc rw,nosuid 0 0\n"
        f"cgroup2 {str(root).replace(' ', chr(92) + '040')} cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
    )
    return str(mounts), str(root), FakeCgroupfs({}, str(root), **kw)


def fake_v1(tmp_path: Path, unified: str | None = None, **kw):
    """A v1 host with cpu and cpuacct co-mounted, a named systemd hierarchy and, if asked, a unified mount."""
    root = tmp_path / "cgroup"
    hierarchies = {
        "cpu,cpuacct": ("cpu", "cpuacct"),
        "cpuset": ("cpuset",),
        "memory": ("memory",),
        "devices": ("devices",),
        "freezer": ("freezer",),
        "pids": ("pids",),
        "blkio": ("blkio",),
    }
    lines, v1 = [], {}
    for dirname, controllers in hierarchies.items():
        path = root / dirname
        path.mkdir(parents=True)
        (path / "cgroup.procs").write_text("")
        v1[str(path)] = controllers
        lines.append(f"cgroup {path} cgroup rw,nosuid,nodev,noexec,relatime,{','.join(controllers)} 0 0")
    (root / "systemd").mkdir()
    lines.append(f"cgroup {root / 'systemd'} cgroup rw,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0")
    unified_path = None
    if unified is not None:
        unified_path = root / "unified"
        unified_path.mkdir()
        (unified_path / "cgroup.controllers").write_text(unified + "\n")
        (unified_path / "cgroup.subtree_control").write_text("\n")
        lines.append(f"cgroup2 {unified_path} cgroup2 rw,nosuid,nodev,noexec,relatime 0 0")
    mounts = tmp_path / "mounts"
    mounts.write_text("\n".join(lines) + "\n")
    return str(mounts), str(root), FakeCgroupfs(v1, unified_path and str(unified_path), **kw)


def test_detect_reads_a_v2_mount_table(tmp_path):
    """A cgroup2 mount alone is v2: every controller in its cgroup.controllers maps to it, pause uses cgroup.freeze."""
    mounts, root, _ = fake_v2(tmp_path)
    layout = detect(mounts)
    assert layout.version == "v2"
    assert layout.unified == root
    assert layout.controllers == {c: root for c in "cpuset cpu io memory hugetlb pids rdma misc".split()}
    assert layout.freezer == "v2"
    assert layout.hierarchies == (root,)


def test_detect_reads_a_v1_mount_table(tmp_path):
    """cgroup mounts alone are v1: co-mounted controllers share a path, name=systemd is not a controller."""
    mounts, root, _ = fake_v1(tmp_path)
    layout = detect(mounts)
    assert layout.version == "v1"
    assert layout.unified is None
    assert layout.controllers["cpu"] == layout.controllers["cpuacct"] == f"{root}/cpu,cpuacct"
    assert layout.controllers["memory"] == f"{root}/memory"
    assert "name=systemd" not in layout.controllers and "systemd" not in layout.controllers
    assert layout.freezer == "v1"
    with pytest.raises(HostUnsupported, match="no cgroup2 mount"):
        detect(mounts, freezer="v2")


def test_detect_reads_a_hybrid_mount_table(tmp_path):
    """v1 hierarchies plus a cgroup2 mount are hybrid; the v1 freezer is preferred and the v2 one can be forced."""
    mounts, root, _ = fake_v1(tmp_path, unified="hugetlb")
    layout = detect(mounts)
    assert layout.version == "hybrid"
    assert layout.unified == f"{root}/unified"
    assert layout.controllers["hugetlb"] == f"{root}/unified"
    assert layout.controllers["memory"] == f"{root}/memory"
    assert layout.freezer == "v1"
    assert detect(mounts, freezer="v2").freezer == "v2"
    with pytest.raises(InvalidArgument):
        detect(mounts, freezer="v3")


def test_detect_without_cgroups_raises(tmp_path):
    """A mount table with no cgroup filesystem raises HostUnsupported in plain words."""
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    with pytest.raises(HostUnsupported, match="no cgroup filesystem mounted"):
        detect(str(mounts))


def test_forcing_a_missing_v1_freezer_raises(tmp_path):
    """Forcing the v1 freezer on a v2-only host raises HostUnsupported."""
    mounts, _, _ = fake_v2(tmp_path)
    with pytest.raises(HostUnsupported, match="no v1 freezer"):
        detect(mounts, freezer="v1")


def test_v2_create_enables_controllers_and_writes_limits(tmp_path):
    """On v2, create() enables memory, pids, cpu and io (for stats' block I/O) from the root down and writes
    memory.max, swap, pids.max, cpu.max."""
    mounts, root, fs = fake_v2(tmp_path)
    layout = detect(mounts)
    group = Cgroup.create(layout, "c1", Limits(memory=64 * MiB, nano_cpus=1_500_000_000, pids_limit=100), fs=fs)
    leaf = f"{root}/labkit/c1"
    assert group.dirs == (leaf,)
    assert group.procs_files == (f"{leaf}/cgroup.procs",)
    assert group.oom_file == f"{leaf}/memory.events"
    assert fs.contents(f"{root}/cgroup.subtree_control") == "memory pids cpu io"
    assert fs.contents(f"{root}/labkit/cgroup.subtree_control") == "memory pids cpu io"
    assert fs.contents(f"{leaf}/memory.max") == str(64 * MiB)
    assert fs.contents(f"{leaf}/memory.swap.max") == str(64 * MiB)  # Docker's 2x memory, minus memory
    assert fs.contents(f"{leaf}/pids.max") == "100"
    assert fs.contents(f"{leaf}/cpu.max") == "150000 100000"
    assert [(os.path.relpath(path, root), value) for path, value in group.written] == [
        ("cgroup.subtree_control", "+memory +pids +cpu +io"),
        ("labkit/cgroup.subtree_control", "+memory +pids +cpu +io"),
        ("labkit/c1/memory.max", str(64 * MiB)),
        ("labkit/c1/memory.swap.max", str(64 * MiB)),
        ("labkit/c1/pids.max", "100"),
        ("labkit/c1/cpu.max", "150000 100000"),
    ]
    group.destroy()
    assert not os.path.exists(leaf)
    assert not os.path.exists(f"{root}/labkit"), "labkit's parent group went with its last group"


def test_the_parent_group_goes_with_its_last_group(tmp_path):
    """destroy() leaves labkit's parent while another group is in it, and removes it with the last one."""
    mounts, root, fs = fake_v2(tmp_path)
    layout = detect(mounts)
    one, two = (Cgroup.create(layout, name, Limits(pids_limit=10), fs=fs) for name in ("c1", "c2"))
    one.destroy()
    assert os.path.isdir(f"{root}/labkit") and not os.path.exists(f"{root}/labkit/c1")
    two.destroy()
    assert not os.path.exists(f"{root}/labkit")


def test_create_makes_the_parent_again_when_the_last_group_took_it_meanwhile(tmp_path):
    """Another container's last group may remove the parent between its mkdir and the group's: create makes it
    again, with its controllers, and the group gets its limits."""
    mounts, root, fs = fake_v2(tmp_path)
    made_parent = FakeCgroupfs.mkdir

    class Racing(FakeCgroupfs):
        raced = False

        def mkdir(self, path: str) -> None:
            if path.endswith("/c1") and not self.raced:
                self.raced = True
                self.rmdir(os.path.dirname(path))  # the other container's supervisor, just now
            made_parent(self, path)

    racing = Racing({}, root)
    group = Cgroup.create(detect(mounts), "c1", Limits(pids_limit=10), fs=racing)
    assert racing.raced
    assert racing.contents(f"{root}/labkit/c1/pids.max") == "10"
    group.destroy()


@pytest.mark.parametrize(
    ("memory_swap", "expected"),
    [(-1, "max"), (100 * MiB, str(36 * MiB)), (64 * MiB, "0")],
)
def test_v2_swap_is_memory_swap_minus_memory(tmp_path, memory_swap, expected):
    """memory.swap.max holds swap alone: Docker's --memory-swap minus --memory, or max for -1."""
    mounts, root, fs = fake_v2(tmp_path)
    Cgroup.create(detect(mounts), "c1", Limits(memory=64 * MiB, memory_swap=memory_swap), fs=fs)
    assert fs.contents(f"{root}/labkit/c1/memory.swap.max") == expected


def test_v2_without_limits_still_enables_accounting(tmp_path):
    """A group without limits leaves every limit file at its default but gets memory.current and pids.current."""
    mounts, root, fs = fake_v2(tmp_path)
    group = Cgroup.create(detect(mounts), "c1", Limits(), fs=fs)
    assert fs.contents(f"{root}/labkit/c1/memory.max") == "max"
    assert group.memory_usage() == 0 and group.pids_current() == 0 and group.cpu_usage_ns() == 0
    assert not [w for w in fs.writes if not w[0].endswith("cgroup.subtree_control")]


def test_v1_create_writes_limit_files(tmp_path):
    """On v1, create() joins memory, pids, cpu,cpuacct, freezer, devices and blkio (not cpuset) and writes their
    files."""
    mounts, root, fs = fake_v1(tmp_path)
    layout = detect(mounts)
    group = Cgroup.create(layout, "c1", Limits(memory=32 * MiB, nano_cpus=200_000_000, pids_limit=8), fs=fs)
    assert set(group.dirs) == {f"{root}/{h}/labkit/c1"
                               for h in ("memory", "pids", "cpu,cpuacct", "freezer", "devices", "blkio")}
    assert len(group.procs_files) == 6
    assert group.oom_file == f"{root}/memory/labkit/c1/memory.oom_control"
    mem = f"{root}/memory/labkit/c1"
    assert fs.contents(f"{mem}/memory.limit_in_bytes") == str(32 * MiB)
    assert fs.contents(f"{mem}/memory.memsw.limit_in_bytes") == str(64 * MiB)
    order = [os.path.basename(p) for p, _ in fs.writes]
    assert order.index("memory.limit_in_bytes") < order.index("memory.memsw.limit_in_bytes")
    assert fs.contents(f"{root}/pids/labkit/c1/pids.max") == "8"
    assert fs.contents(f"{root}/cpu,cpuacct/labkit/c1/cpu.cfs_quota_us") == "20000"
    assert fs.contents(f"{root}/cpu,cpuacct/labkit/c1/cpu.cfs_period_us") == "100000"
    assert sorted(stale(layout, fs=fs)) == sorted(group.dirs)
    group.destroy()
    assert stale(layout, fs=fs) == []


def test_v1_device_rules_deny_all_then_allow_dockers_list_before_anything_else(tmp_path):
    """With device rules, create() writes ``a`` to devices.deny, then Docker's rules to devices.allow one per
    write, before any limit; without them (rootless) it writes no devices file."""
    from labkit.linux import devices

    mounts, root, fs = fake_v1(tmp_path)
    layout = detect(mounts)
    group = Cgroup.create(layout, "c1", Limits(pids_limit=8), fs=fs, devices=devices.DOCKER_DEFAULT,
                          device_mechanisms=("v1",))
    assert group.device_mechanisms == ("v1",)
    leaf = f"{root}/devices/labkit/c1"
    mine = [(os.path.basename(p), t) for p, t in fs.writes if p.startswith(leaf + "/")]
    assert mine[0] == ("devices.deny", "a")
    assert [t for _, t in mine[1:]] == ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                                        "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                                        "c 10:200 rwm"]
    assert [os.path.basename(p) for p, _ in fs.writes].index("pids.max") >= len(mine)
    group.destroy()
    fs.writes.clear()
    Cgroup.create(layout, "c2", Limits(), fs=fs).destroy()
    assert not [p for p, _ in fs.writes if "/devices/" in p]


def test_open_joins_only_the_hierarchies_a_group_has(tmp_path):
    """A group made before labkit joined the devices hierarchy (a container an older labkit started) is opened
    with the procs files it has, so an exec into it joins those instead of failing on the missing one."""
    mounts, root, fs = fake_v1(tmp_path)
    layout = detect(mounts)
    made = Cgroup.create(layout, "c1", Limits(), fs=fs)
    fs.rmdir(f"{root}/devices/labkit/c1")
    opened = Cgroup.open(layout, "c1", fs=fs)
    assert opened.procs_files == tuple(p for p in made.procs_files if "/devices/" not in p)
    opened.destroy()
    assert stale(layout, fs=fs) == []


def test_device_rules_without_a_devices_controller_or_cgroup2_are_refused(tmp_path):
    """A v1 host without the devices hierarchy and without cgroup2 cannot hold device rules: create() refuses
    in one sentence and makes nothing; without rules asked for, the same host works."""
    from labkit.linux import devices

    mounts, root, fs = fake_v1(tmp_path)
    text = Path(mounts).read_text().splitlines()
    Path(mounts).write_text("\n".join(line for line in text if ",devices " not in line) + "\n")
    layout = detect(mounts)
    assert "devices" not in layout.controllers and layout.unified is None
    with pytest.raises(HostUnsupported, match="neither a cgroup v1 devices controller nor a cgroup v2") as err:
        Cgroup.create(layout, "c1", Limits(), fs=fs, devices=devices.DOCKER_DEFAULT)
    assert "\n" not in str(err.value).split(" (")[0]
    assert stale(layout, fs=fs) == [] and fs.writes == []
    Cgroup.create(layout, "c1", Limits(), fs=fs).destroy()


def test_v1_without_swap_accounting_skips_memsw(tmp_path):
    """Where memory.memsw.limit_in_bytes does not exist (no swap accounting), only the memory limit is written."""
    mounts, root, fs = fake_v1(tmp_path, swap=False)
    Cgroup.create(detect(mounts), "c1", Limits(memory=32 * MiB), fs=fs)
    assert fs.contents(f"{root}/memory/labkit/c1/memory.limit_in_bytes") == str(32 * MiB)
    assert not os.path.exists(f"{root}/memory/labkit/c1/memory.memsw.limit_in_bytes")


def test_hybrid_group_also_joins_the_unified_hierarchy(tmp_path):
    """On a hybrid host the group is made in the unified hierarchy too, and the v2 freezer and cgroup.kill use it."""
    mounts, root, fs = fake_v1(tmp_path, unified="hugetlb")
    layout = detect(mounts, freezer="v2")
    group = Cgroup.create(layout, "c1", Limits(memory=32 * MiB), fs=fs)
    leaf = f"{root}/unified/labkit/c1"
    assert f"{leaf}/cgroup.procs" in group.procs_files
    assert fs.contents(f"{root}/unified/cgroup.subtree_control") == ""  # v1 holds memory; nothing to enable
    group.freeze(timeout=1)
    assert fs.contents(f"{leaf}/cgroup.freeze") == "1" and group.frozen()
    assert fs.contents(f"{root}/freezer/labkit/c1/freezer.state") == "THAWED"
    group.thaw()
    assert not group.frozen()


@pytest.mark.parametrize(
    ("controllers", "limits", "message"),
    [
        ("cpu memory", Limits(pids_limit=10), "this host has no pids controller, so --pids-limit cannot be enforced"),
        ("cpu pids", Limits(memory=64 * MiB), "this host has no memory controller, so --memory cannot be enforced"),
        ("memory pids", Limits(nano_cpus=10**9), "this host has no cpu controller, so --cpus cannot be enforced"),
    ],
)
def test_missing_controller_raises_and_makes_nothing(tmp_path, controllers, limits, message):
    """A limit whose controller the host lacks raises HostUnsupported in plain words before anything is made."""
    mounts, root, fs = fake_v2(tmp_path, controllers=controllers)
    with pytest.raises(HostUnsupported) as caught:
        Cgroup.create(detect(mounts), "c1", limits, fs=fs)
    assert str(caught.value) == message
    assert caught.value.hint
    assert not os.path.exists(f"{root}/labkit/c1")


def test_missing_v1_controller_raises(tmp_path):
    """On v1, a pids limit without a pids hierarchy raises HostUnsupported; an unlimited group is still made."""
    mounts, root, fs = fake_v1(tmp_path)
    text = Path(mounts).read_text()
    Path(mounts).write_text("".join(line for line in text.splitlines(True) if "/pids " not in line))
    layout = detect(mounts)
    with pytest.raises(HostUnsupported, match="no pids controller"):
        Cgroup.create(layout, "c1", Limits(pids_limit=10), fs=fs)
    assert stale(layout, fs=fs) == []
    group = Cgroup.create(layout, "c2", Limits(memory=32 * MiB), fs=fs)
    assert group.pids_current() is None


def test_a_refused_write_removes_what_was_made(tmp_path):
    """When the kernel refuses a value, create() removes the half-made group and raises HostUnsupported."""
    mounts, root, fs = fake_v1(tmp_path, fail_on="cpu.cfs_quota_us")
    layout = detect(mounts)
    with pytest.raises(HostUnsupported, match="Invalid argument") as caught:
        Cgroup.create(layout, "c1", Limits(memory=32 * MiB, nano_cpus=10**9), fs=fs)
    assert isinstance(caught.value.__cause__, OSError)
    assert stale(layout, fs=fs) == []


def test_destroy_retries_then_reports_a_busy_group(tmp_path):
    """destroy() gives up on a group that still lists a process after the timeout and says so."""
    mounts, root, fs = fake_v2(tmp_path)
    group = Cgroup.create(detect(mounts), "c1", Limits(), fs=fs)
    Path(group.procs_files[0]).write_text("4242\n")
    assert group.pids() == [4242]
    with pytest.raises(Conflict, match="still has processes"):
        group.destroy(timeout=0.05)
    Path(group.procs_files[0]).write_text("")
    group.destroy()
    assert group.dirs and not os.path.exists(group.dirs[0])


def test_v2_freeze_kill_and_accounting_on_a_fake_root(tmp_path):
    """freeze/thaw write cgroup.freeze, kill_all writes cgroup.kill and thaws, and the counters are parsed."""
    mounts, root, fs = fake_v2(tmp_path)
    group = Cgroup.create(detect(mounts), "c1", Limits(memory=64 * MiB), fs=fs)
    leaf = Path(root, "labkit", "c1")
    group.freeze(timeout=1)
    assert group.frozen()
    group.kill_all()
    assert fs.contents(leaf / "cgroup.kill") == "1"
    assert not group.frozen()
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\n")
    (leaf / "memory.current").write_text("1048576\n")
    (leaf / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    assert group.oom_kills() == 2
    assert group.memory_usage() == MiB
    assert group.cpu_usage_ns() == 1_500_000


def test_freeze_timeout_thaws_and_raises(tmp_path):
    """A group that never reports frozen is thawed again and freeze() raises a LabkitError."""

    class Stuck(FakeCgroupfs):
        def write(self, path, text):
            super().write(path, text)
            if path.endswith("cgroup.freeze"):
                Path(path).with_name("cgroup.events").write_text("populated 1\nfrozen 0\n")

    mounts, root, _ = fake_v2(tmp_path)
    fs = Stuck({}, root)
    group = Cgroup.create(detect(mounts), "c1", Limits(), fs=fs)
    with pytest.raises(LabkitError, match="did not freeze"):
        group.freeze(timeout=0.05)
    assert fs.contents(f"{root}/labkit/c1/cgroup.freeze") == "0"


def test_no_freezer_means_pause_is_unsupported(tmp_path):
    """On a v1 host without a freezer hierarchy, freeze() raises HostUnsupported and describe() says so."""
    mounts, root, fs = fake_v1(tmp_path)
    text = Path(mounts).read_text()
    Path(mounts).write_text("".join(line for line in text.splitlines(True) if "/freezer " not in line))
    layout = detect(mounts)
    assert layout.freezer == "none"
    assert "pause cannot work: this host has no cgroup freezer." in layout.describe()
    group = Cgroup.create(layout, "c1", Limits(), fs=fs)
    with pytest.raises(HostUnsupported, match="cannot pause"):
        group.freeze()


def test_describe_speaks_plainly(tmp_path):
    """describe() names the cgroup version, each limit's controller (or its absence) and the freezer."""
    mounts, root, _ = fake_v2(tmp_path, controllers="cpu memory")
    lines = detect(mounts).describe()
    assert lines[0] == f"cgroups: v2, one unified hierarchy at {root}."
    assert "--pids-limit cannot be enforced: this host has no pids controller." in lines
    assert f"--memory is enforced by the memory controller (cgroup v2, {root})." in lines
    assert lines[-1] == "pause uses the v2 freezer (cgroup.freeze)."
    assert "Docker's device rules are set in a BPF program on each container's cgroup v2 group." in lines


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"memory": -1}, "invalid memory limit"),
        ({"memory_swap": 64 * MiB}, "You should always set the Memory limit when using Memoryswap limit"),
        ({"memory": 64 * MiB, "memory_swap": 32 * MiB}, "Minimum memoryswap limit should be larger than memory limit"),
        ({"nano_cpus": 1_000_000}, "Range of CPUs is from 0.01 to"),
        ({"nano_cpus": 10**6 * 10**9}, "Range of CPUs is from 0.01 to"),
    ],
)
def test_limits_refuse_bad_values(kwargs, message):
    """Limits refuse values Docker refuses, with Docker's words."""
    with pytest.raises(InvalidArgument, match=message):
        Limits(**kwargs)


def test_limits_follow_dockers_units():
    """--cpus 1.5 is a 150000 µs quota, swap defaults to twice memory, and pids ≤ 0 means unlimited."""
    limits = Limits(memory=64 * MiB, nano_cpus=1_500_000_000, pids_limit=0)
    assert limits.cpu_quota_us == 150_000
    assert limits.swap_total == 128 * MiB
    assert limits.pids_max is None
    assert Limits(memory=64 * MiB, memory_swap=-1).swap_total == -1
    assert Limits().memory_max is None and Limits().swap_total is None


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_bad_group_names_are_refused(tmp_path, name):
    """A group name that is not one plain directory name raises InvalidArgument and makes nothing."""
    mounts, root, fs = fake_v2(tmp_path)
    with pytest.raises(InvalidArgument):
        Cgroup.create(detect(mounts), name, Limits(), fs=fs)
    assert not os.path.exists(f"{root}/labkit")


def test_a_group_removed_under_an_open_file_reads_as_gone(tmp_path, monkeypatch):
    """kernfs answers ENODEV for a file whose group was removed after open(2); callers see FileNotFoundError,
    as for a group removed before, so "the supervisor removed it first" is one case."""
    import builtins

    from labkit.linux.cgroups import Cgroupfs

    def removed(*_args, **_kw):
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(builtins, "open", removed)
    with pytest.raises(FileNotFoundError):
        Cgroupfs().read(str(tmp_path / "cgroup.procs"))
    monkeypatch.setattr(os, "open", removed)
    with pytest.raises(FileNotFoundError):
        Cgroupfs().write(str(tmp_path / "cgroup.procs"), "1")


def test_v1_blkio_group_gets_a_rule_that_holds_nothing_back_so_its_io_is_counted(tmp_path):
    """On v1, create() gives the blkio group a read and a write rule at the largest rate for each disk it is
    to count (blk-throttle counts only groups with a rule), and block_io() sums the group's Read and Write
    lines; without a disk it writes no rule."""
    mounts, root, fs = fake_v1(tmp_path)
    layout = detect(mounts)
    group = Cgroup.create(layout, "c1", Limits(), fs=fs, count_io_on=("254:0",))
    leaf = f"{root}/blkio/labkit/c1"
    assert fs.contents(f"{leaf}/blkio.throttle.read_bps_device") == f"254:0 {2**63 - 1}"
    assert fs.contents(f"{leaf}/blkio.throttle.write_bps_device") == f"254:0 {2**63 - 1}"
    fs.write(f"{leaf}/blkio.throttle.io_service_bytes",
             "254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 12288\n254:0 Total 12288\nTotal 12288\n")
    assert group.block_io() == (4096, 8192)
    group.destroy()
    fs.writes.clear()
    Cgroup.create(layout, "c2", Limits(), fs=fs).destroy()
    assert not [p for p, _ in fs.writes if "throttle" in p]


def test_disk_of_names_the_whole_disk_of_a_partition(tmp_path):
    """disk_of() reads /sys/dev/block: a filesystem on a partition counts on its disk; one on no block
    device (no entry) on none."""
    from labkit.linux.cgroups import disk_of

    dev = os.stat(tmp_path).st_dev
    sys_block = tmp_path / "sys"
    disk = sys_block / "disk"
    part = disk / "part1"
    part.mkdir(parents=True)
    (disk / "dev").write_text("8:0\n")
    (part / "partition").write_text("1\n")
    (sys_block / f"{os.major(dev)}:{os.minor(dev)}").symlink_to(part)
    assert disk_of(str(tmp_path), str(sys_block)) == "8:0"
    (part / "partition").unlink()
    assert disk_of(str(tmp_path), str(sys_block)) == f"{os.major(dev)}:{os.minor(dev)}"
    assert disk_of(str(tmp_path), str(tmp_path / "nowhere")) is None
