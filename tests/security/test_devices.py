"""Docker's device rules on real containers: a root container may make a device node but not open the host's devices.

A root container holds CAP_MKNOD (Docker's default capabilities do), so without
device rules ``mknod /tmp/kmsg c 1 11`` gives it the host's kernel log and
``mknod /tmp/sda b 8 0`` the host's disk. labkit denies every device but
Docker's list (``labkit/linux/devices.py``), through the v1 ``devices`` hierarchy
and a BPF program on the container's cgroup v2 group: on a hybrid host the
kernel applies both and each is tested alone; a v2-only host has the program alone. The probes are /dev/kmsg
(c 1:11: a write lands in the host's kernel log) and /dev/zram0 (b 253:0, a
block device this host's root can open; on a usual host b 8:0 would be its disk). A static probe (``devprobe.c``) makes
and uses the nodes and prints what the kernel answered. The same probe in a
container run without rules shows the attack works there, so these tests can fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from labkit.linux import cgroups, devices
from tests.conftest import host_cgroup_layout
from tests.learner import run_as

pytestmark = pytest.mark.root

#: /dev/kmsg: what is written to it is printed in the host's kernel log.
KMSG = (1, 11)


def _openable_block_device() -> tuple[str, tuple[int, int]]:
    """A block device the host's root can open (on this VM not its disk, /dev/vda, but /dev/zram0 or a loop device)."""
    for name in sorted(os.listdir("/sys/block"), key=lambda n: (n.startswith(("vd", "sd", "nvme")), n)):
        path = f"/dev/{name}"
        try:
            st = os.stat(path)
            os.close(os.open(path, os.O_RDONLY))
        except OSError:
            continue
        if stat.S_ISBLK(st.st_mode):
            return path, (os.major(st.st_rdev), os.minor(st.st_rdev))
    return "/dev/zram0", (253, 0)  # none (or not root): test_the_probe_devices_are_usable_on_this_host says so


BLOCK, ZRAM = _openable_block_device()


@pytest.fixture(scope="session")
def devprobe():
    """A directory holding the static probe, readable by every user (a rootless container mounts it too)."""
    where = tempfile.mkdtemp(prefix="devprobe-")
    os.chmod(where, 0o755)
    source = Path(__file__).with_name("devprobe.c")
    subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(where, "devprobe"), str(source)], check=True,
                   capture_output=True)
    yield where
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def backend(engine):
    """The engine's backend; device rules changed by a test are put back after it."""
    b = engine.backend
    saved = (b.device_rules, b.device_mechanisms)
    yield b
    b.device_rules, b.device_mechanisms = saved


def answers(text: str) -> dict[str, str]:
    """The probe's lines as {step: answer}."""
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if " " in line)


def attack(marker: str) -> list[str]:
    """Make /dev/kmsg and block device nodes, write ``marker`` into the kernel log, open the block device."""
    return [f"mknod:/tmp/kmsg:c:{KMSG[0]}:{KMSG[1]}", f"write:/tmp/kmsg:{marker}",
            f"mknod:/tmp/zram:b:{ZRAM[0]}:{ZRAM[1]}", "open:/tmp/zram"]


def run_probe(engine, devprobe, steps: list[str]) -> dict[str, str]:
    c = engine.run("busybox", ["/probe/devprobe", *steps], volumes=[f"{devprobe}:/probe:ro"])
    assert c.exit_code == 0, c.logs()
    return answers(c.logs())


def kernel_log() -> str:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout


def blocked(got: dict[str, str], marker: str) -> None:
    """The attack's nodes were made (Docker allows ``m``) and neither could be opened."""
    assert got == {f"mknod:/tmp/kmsg:c:{KMSG[0]}:{KMSG[1]}": "ok", f"write:/tmp/kmsg:{marker}": "EPERM",
                   f"mknod:/tmp/zram:b:{ZRAM[0]}:{ZRAM[1]}": "ok", "open:/tmp/zram": "EPERM"}
    assert marker not in kernel_log(), "the host's kernel log got the container's line"


def test_the_probe_devices_are_usable_on_this_host():
    """The devices the attack aims at exist here and the host's root can use them, so a refusal means the rules."""
    for path, kind, (major, minor) in (("/dev/kmsg", stat.S_ISCHR, KMSG), (BLOCK, stat.S_ISBLK, ZRAM)):
        st = os.stat(path)
        assert kind(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor), path
    os.close(os.open(BLOCK, os.O_RDONLY))


def test_without_device_rules_a_root_container_writes_the_hosts_kernel_log_and_opens_its_disk(engine, backend,
                                                                                            devprobe):
    """The control: with the rules off, the same probe writes into the host's kernel log and opens its block device."""
    backend.device_rules = None
    marker = f"labkit-devices-control-{uuid.uuid4().hex[:12]}"
    got = run_probe(engine, devprobe, attack(marker))
    assert set(got.values()) == {"ok"}, got
    assert marker in kernel_log()


def test_a_root_container_may_make_device_nodes_but_not_open_them(engine, devprobe):
    """Default rules: mknod of c 1:11 and b 253:0 succeeds (Docker allows ``m``), opening them is EPERM, and the
    host's kernel log does not get the line; an exec'd process is held the same way."""
    marker = f"labkit-devices-{uuid.uuid4().hex[:12]}"
    blocked(run_probe(engine, devprobe, attack(marker)), marker)
    c = engine.run("busybox", ["sleep", "60"], detach=True, volumes=[f"{devprobe}:/probe:ro"])
    code, out = engine.exec_output(c.id, ["/probe/devprobe", *attack(marker)])
    assert code == 0
    blocked(answers(out), marker)


@pytest.mark.parametrize("mechanism", [pytest.param("v1", marks=pytest.mark.cgroup_v1), "v2"])
def test_each_mechanism_alone_keeps_the_devices_out(engine, backend, devprobe, mechanism):
    """With only the v1 devices rules (a host with v1 hierarchies), or only the v2 BPF program, the attack fails
    the same way; the other mechanism is seen to be absent (devices.list allows all; no program on the group).
    A v2-only host has the BPF program alone: its group is seen to hold it."""
    backend.device_mechanisms = (mechanism,)
    marker = f"labkit-devices-{mechanism}-{uuid.uuid4().hex[:12]}"
    c = engine.run("busybox", ["sleep", "60"], detach=True, volumes=[f"{devprobe}:/probe:ro"])
    group = cgroups.Cgroup(backend.layout, c.id)
    v1 = group.interface_file("devices", "devices.list")
    assert backend.layout.unified is not None, "every host the suite runs on has a unified hierarchy"
    assert (v1 is not None) == (host_cgroup_layout() != "v2"), "a v1 devices hierarchy exactly where v1 is"
    listed = Path(v1).read_text().splitlines() if v1 is not None else None
    programs = devices.attached(os.path.join(backend.layout.unified, "labkit", c.id))
    if mechanism == "v1":
        assert (listed, programs) == ([rule.line() for rule in devices.DOCKER_DEFAULT], 0)
    else:
        assert (listed, programs) == (["a *:* rwm"] if v1 is not None else None, 1)
    code, out = engine.exec_output(c.id, ["/probe/devprobe", *attack(marker)])
    assert code == 0
    blocked(answers(out), marker)


def test_the_devices_a_container_needs_still_work(engine, devprobe):
    """/dev/null, /dev/zero, /dev/urandom, /dev/random and /dev/full answer as devices; /dev/tty says there is no
    controlling terminal (ENXIO, not EPERM); a pty from /dev/ptmx and /dev/pts passes a line."""
    got = run_probe(engine, devprobe, ["write:/dev/null:x", "read:/dev/zero:64", "read:/dev/urandom:64",
                                       "read:/dev/random:16", "full", "tty", "pty"])
    assert got == {"write:/dev/null:x": "ok", "read:/dev/zero:64": "ok", "read:/dev/urandom:64": "ok",
                   "read:/dev/random:16": "ok", "full": "ENOSPC", "tty": "ENXIO", "pty": "ok"}


def test_the_containers_device_groups_go_with_it(engine, backend):
    """The devices group (where v1 hierarchies are) and the group holding the BPF program exist while the container
    runs and go with it."""
    c = engine.run("busybox", ["sleep", "60"], detach=True)
    dirs = [d for d in cgroups.Cgroup(backend.layout, c.id).dirs if "/devices/" in d or d.startswith(
        str(backend.layout.unified) + "/")]
    assert len(dirs) == (1 if host_cgroup_layout() == "v2" else 2) and all(os.path.isdir(d) for d in dirs)
    engine.rm(c.id, force=True)
    assert [d for d in dirs if os.path.exists(d)] == []


def test_a_privileged_container_gets_a_program_allowing_every_device(engine, backend, devprobe):
    """--privileged: the container's v2 group holds a program too, one that allows every device (the kernel takes
    it: a program with a path no request reaches is refused), and the probe opens the host's kernel log."""
    c = engine.run("busybox", ["sleep", "60"], detach=True, privileged=True, volumes=[f"{devprobe}:/probe:ro"])
    assert backend.layout.unified is not None
    assert devices.attached(os.path.join(backend.layout.unified, "labkit", c.id)) == 1
    code, out = engine.exec_output(c.id, ["/probe/devprobe", "mknod:/tmp/kmsg:c:1:11", "open:/tmp/kmsg"])
    assert (code, answers(out)) == (0, {"mknod:/tmp/kmsg:c:1:11": "ok", "open:/tmp/kmsg": "ok"}), out


def test_inspect_shows_dockers_default_device_fields(engine):
    """``HostConfig.Devices`` is ``[]`` and ``HostConfig.DeviceCgroupRules`` is null, as Docker shows them."""
    c = engine.create("busybox", ["true"])
    host = c.inspect()["HostConfig"]
    assert (host["Devices"], host["DeviceCgroupRules"]) == ([], None)


ROOTLESS = """
import json
import labkit
lab = labkit.connect()
c = lab.run("busybox", ["/probe/devprobe", "mknod:/tmp/kmsg:c:1:11", "mknod:/tmp/zram:b:253:0", "write:/dev/null:x"],
            volumes=[{probe!r} + ":/probe:ro"])
out = {{"backend": lab.backend_name, "logs": c.logs(), "code": c.exit_code}}
lab.rm(c.id)
print(json.dumps(out))
"""


def test_a_rootless_container_cannot_make_a_device_node(learner, devprobe):
    """Rootless, mknod(2) of a device is EPERM: it needs CAP_MKNOD in the initial user namespace, which a user
    namespace never holds; its /dev/null still works."""
    got = run_as(learner, ROOTLESS.format(probe=devprobe))
    assert (got["backend"], got["code"]) == ("rootless", 0)
    assert answers(got["logs"]) == {"mknod:/tmp/kmsg:c:1:11": "EPERM", "mknod:/tmp/zram:b:253:0": "EPERM",
                                    "write:/dev/null:x": "ok"}


def test_one_program_serves_every_group_and_a_group_holding_it_gets_its_own(backend):
    """The device program is loaded once per process and attached to each new group; a group that holds that very
    program already (a container's group made again after a crash, in the same engine) is given a copy of its own,
    since the kernel refuses one program twice on a group: both attach, and the rules hold on each."""
    assert backend.layout.unified is not None
    parent = tempfile.mkdtemp(prefix="labkit-test-devices-", dir=backend.layout.unified)
    made = [os.path.join(parent, name) for name in ("a", "b")]
    try:
        program = devices._program_fd(devices.DOCKER_DEFAULT)
        for group in made:
            os.mkdir(group)
            devices.attach(group)
        assert devices._program_fd(devices.DOCKER_DEFAULT) == program, "one program, loaded once"
        assert [devices.attached(group) for group in made] == [1, 1]
        devices.attach(made[0])  # the same group again: not refused
        assert devices.attached(made[0]) == 2
    finally:
        for group in [*reversed(made), parent]:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(group)
