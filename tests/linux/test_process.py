"""Real containers from labkit.linux.process: namespaces, mounts, logs, exits, exec, supervisor."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.errors import HostUnsupported, StartFailed
from labkit.linux import capabilities, namespaces, process, procfs, supervisor, syscalls
from labkit.linux.process import LaunchSpec, Mount, Started

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="starting real containers needs root"),
]

BUSYBOX = "/usr/bin/busybox"
REPO = Path(__file__).resolve().parents[2]
RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _log_lines(path: str) -> list[dict[str, str]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def _output(path: str, stream: str = "stdout") -> str:
    return "".join(line["log"] for line in _log_lines(path) if line["stream"] == stream)


def _wait_for_output(path: str, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in _output(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared in {path}")
        time.sleep(0.01)


def _memory(pid: int) -> tuple[float, float]:
    """(RSS, private) of ``pid`` in MB, from /proc/PID/smaps_rollup."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields["Rss"] / 1024, (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024


@pytest.fixture(scope="module")
def busybox_lower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A read-only image layer: a static busybox and its applet links."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("needs /usr/bin/busybox (Debian's busybox-static)")
    lower = tmp_path_factory.mktemp("labkit-busybox")
    (lower / "bin").mkdir()
    shutil.copy(BUSYBOX, lower / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        if name != "busybox":
            os.symlink("busybox", lower / "bin" / name)
    yield str(lower)
    shutil.rmtree(lower)


@pytest.fixture(scope="module")
def shim_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private cache directory for the compiled shim."""
    directory = tmp_path_factory.mktemp("labkit-shim")
    yield str(directory)
    shutil.rmtree(directory)


@pytest.fixture
def supervisor_argv(shim_dir: str) -> list[str]:
    """The C shim, built in the module's cache (the only program that starts a container)."""
    return supervisor.command(shim_dir)


class Lab:
    """One overlay-mounted rootfs per launch, and everything needed to tear it down."""

    def __init__(self, lower: str, workdir: Path, supervisor_argv: list[str]) -> None:
        self.lower = lower
        self.workdir = workdir
        self.supervisor_argv = supervisor_argv
        self.started: list[Started] = []
        self.merged: list[str] = []
        self.cgroups: list[str] = []
        self.count = 0

    def spec(self, argv: list[str], **overrides: object) -> LaunchSpec:
        """A LaunchSpec over a freshly mounted overlay; ``overrides`` replace fields."""
        self.count += 1
        base = self.workdir / f"c{self.count}"
        for name in ("upper", "work", "merged", "state"):
            (base / name).mkdir(parents=True)
        merged = str(base / "merged")
        options = f"lowerdir={self.lower},upperdir={base / 'upper'},workdir={base / 'work'}"
        syscalls.mount("overlay", merged, "overlay", 0, options)
        self.merged.append(merged)
        fields: dict[str, object] = {
            "state_dir": str(base / "state"),
            "log_path": str(base / "state" / "container-json.log"),
            "hostname": "labkit-test",
            "cleanup_umounts": (merged,),
        }
        fields.update(overrides)
        return LaunchSpec(merged, argv, ["PATH=/bin", "HOME=/"], **fields)  # type: ignore[arg-type]

    def start(self, spec: LaunchSpec) -> Started:
        """Start and remember the container, so teardown can kill it."""
        started = process.start(spec, self.supervisor_argv)
        self.started.append(started)
        return started

    def run(self, argv: list[str], **overrides: object) -> tuple[dict[str, object], LaunchSpec]:
        """Start, wait for the exit, and return the exit record and the spec."""
        spec = self.spec(argv, **overrides)
        started = self.start(spec)
        assert process.wait(started, timeout=10)
        record = process.read_exit(spec.state_dir)
        assert record is not None
        return record, spec

    def cgroup(self) -> str:
        """A fresh cgroup directory for one container: in the v1 pids hierarchy where the host has one,
        else in the unified hierarchy (a v2-only host)."""
        from labkit.linux.cgroups import detect

        layout = detect()
        path = os.path.join(layout.controllers.get("pids") or layout.unified or "/sys/fs/cgroup",
                            f"labkit-test-{uuid.uuid4().hex[:12]}")
        os.mkdir(path)
        self.cgroups.append(path)
        return path

    def close(self) -> None:
        for started in self.started:
            if procfs.alive(started.pid, started.pid_start_time):
                os.kill(started.pid, signal.SIGKILL)
            process.wait(started, timeout=10)
        for merged in self.merged:
            if _mounted(merged):
                syscalls.umount2(merged, syscalls.MNT_DETACH)
        for path in self.cgroups:
            if os.path.isdir(path):
                os.rmdir(path)


@pytest.fixture
def lab(busybox_lower: str, tmp_path: Path, supervisor_argv: list[str]) -> Iterator[Lab]:
    """Launch containers; afterwards kill what runs and undo every mount and cgroup."""
    workdir = tmp_path / "labkit-lab"
    workdir.mkdir()
    lab = Lab(busybox_lower, workdir, supervisor_argv)
    try:
        yield lab
    finally:
        lab.close()
    assert not any(_mounted(m) for m in lab.merged), "an overlay mount leaked"
    shutil.rmtree(workdir)


def test_first_process_is_pid_1(lab: Lab) -> None:
    """The container's command sees itself as PID 1 of its own PID namespace."""
    record, spec = lab.run(["sh", "-c", "echo $$"])
    assert record["ExitCode"] == 0
    assert _output(spec.log_path) == "1\n"


def test_namespaces_differ_from_the_host(lab: Lab) -> None:
    """PID 1's pid, mnt, uts, ipc, net and cgroup namespaces are all new."""
    spec = lab.spec(["sleep", "1000"])
    started = lab.start(spec)
    inside = namespaces.ns_links(started.pid)
    outside = namespaces.ns_links("self")
    for name in ("pid", "mnt", "uts", "ipc", "net", "cgroup"):
        assert inside[name] != outside[name], name
    os.kill(started.pid, signal.SIGKILL)
    assert process.wait(started, timeout=10)


def test_pid_1_addresses_eth0_in_the_namespace_it_joins(lab: Lab, tmp_path: Path) -> None:
    """Given a namespace holding a veth's eth0, PID 1 sets its address, brings it and lo up, adds the route."""
    from pyroute2 import IPRoute

    from labkit.linux import network

    sandbox = str(tmp_path / "labkit-netns")
    network.make_netns(sandbox)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=f"lkt{uuid.uuid4().hex[:8]}", kind="veth",
                     peer={"ifname": "eth0", "net_ns_fd": sandbox})
        record, spec = lab.run(["sh", "-c", "ip -4 addr show eth0; ip route; ip link show lo"],
                               netns=sandbox, address=("10.231.0.2", 24, "10.231.0.1"))
        out = _output(spec.log_path)
        assert "inet 10.231.0.2/24 brd 10.231.0.255 scope global eth0" in out
        assert "default via 10.231.0.1 dev eth0" in out
        assert re.search(r"lo: <LOOPBACK,UP", out)
    finally:
        network.drop_netns(sandbox)  # the veth dies with the namespace


def test_hostname_is_set(lab: Lab) -> None:
    """The container's UTS namespace carries the hostname from the spec."""
    record, spec = lab.run(["hostname"], hostname="web-1")
    assert _output(spec.log_path) == "web-1\n"
    assert os.uname().nodename != "web-1"


def test_network_none_has_only_loopback_up(lab: Lab) -> None:
    """With network "none" the only device is lo, and it is up."""
    record, spec = lab.run(["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1; cat /sys/class/net/lo/flags"])
    devices, flags = _output(spec.log_path).split()
    assert devices == "lo"
    assert int(flags, 16) & 0x1


def test_network_host_shares_the_hosts_namespace(lab: Lab) -> None:
    """With network "host" the container keeps the host's network namespace."""
    spec = lab.spec(["sleep", "1000"], network="host")
    started = lab.start(spec)
    assert namespaces.ns_link(started.pid, "net") == namespaces.ns_link("self", "net")
    os.kill(started.pid, signal.SIGKILL)
    process.wait(started, timeout=10)


def test_logs_are_json_file_lines_for_both_streams(lab: Lab) -> None:
    """stdout and stderr land in Docker's json-file format, one escaped object per line."""
    script = (
        "echo out; echo err >&2; printf '%s\\t%s\\n' '\"<a&b>\" \\' here; printf 'caf\\303\\251 \\377\\n'; printf tail"
    )
    record, spec = lab.run(["sh", "-c", script])
    with open(spec.log_path) as f:
        raw = f.read().splitlines()
    lines = [json.loads(line) for line in raw]
    assert [set(line) for line in lines] == [{"log", "stream", "time"}] * 5
    assert all(RFC3339NANO.match(line["time"]) for line in lines)
    assert _output(spec.log_path, "stdout") == 'out\n"<a&b>" \\\there\ncafé \ufffd\ntail'
    assert _output(spec.log_path, "stderr") == "err\n"
    assert any("\\u003ca\\u0026b\\u003e" in line for line in raw), "<, & and > are escaped as Docker does"


def test_exit_code_is_recorded(lab: Lab) -> None:
    """An exit status becomes ExitCode, with FinishedAt in RFC3339Nano and no signal."""
    record, _ = lab.run(["sh", "-c", "exit 3"])
    assert record["ExitCode"] == 3
    assert record["Signal"] is None and record["OOMKilled"] is False
    assert RFC3339NANO.match(str(record["FinishedAt"]))


def test_the_exit_pipe_ends_once_the_exit_is_recorded(lab: Lab) -> None:
    """With watch_exit, the starter's end of the exit pipe reads end of file only once exit.json is written (the
    supervisor may still be undoing the run then), and the supervisor itself ends after it."""
    spec = lab.spec(["sh", "-c", "sleep 0.2; exit 5"])
    started = process.start(spec, lab.supervisor_argv, watch_exit=True)
    lab.started.append(started)
    try:
        assert started.exit_fd >= 0
        ready, _, _ = select.select([started.exit_fd], [], [], 10)
        assert ready and os.read(started.exit_fd, 1) == b""
        record = process.read_exit(spec.state_dir)
        assert record is not None and record["ExitCode"] == 5
    finally:
        os.close(started.exit_fd)
    assert process.wait(started, timeout=10)


def _holders() -> dict[int, str]:
    """Processes named labkit-umount (the supervisor's child that drops the last reference to a container's
    mounts), with their command lines."""
    found = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "labkit-umount":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                found[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
    return found


def test_the_supervisor_ends_with_the_layer_unmounted_and_hands_its_write_out_to_a_child(lab: Lab) -> None:
    """Once the supervisor has ended, the container's overlay is out of the mount table and what the container
    wrote is in its upper directory; the sync of the upper filesystem that the overlay's last unmount brings
    (ovl_sync_fs) is paid by a child named labkit-umount, which shows none of the container's paths and ends."""
    spec = lab.spec(["sh", "-c", "echo written > /f"])
    started = lab.start(spec)
    assert process.wait(started, timeout=10)
    assert not _mounted(spec.rootfs)
    assert (Path(spec.rootfs).parent / "upper" / "f").read_text() == "written\n"
    holders = _holders()
    for args in holders.values():
        assert spec.state_dir not in args and spec.rootfs not in args, args
    assert not subprocess.run(["pgrep", "-f", spec.state_dir], capture_output=True, text=True).stdout
    deadline = time.monotonic() + 60  # a deadline for the wait, not a measured time: a holder ends by itself
    while set(holders) & set(_holders()):
        assert time.monotonic() < deadline, f"labkit-umount still there: {set(holders) & set(_holders())}"
        time.sleep(0.05)


def test_sigkill_gives_137(lab: Lab) -> None:
    """A container killed by SIGKILL exits 128+9."""
    spec = lab.spec(["sleep", "1000"])
    started = lab.start(spec)
    assert procfs.alive(started.pid, started.pid_start_time)
    os.kill(started.pid, signal.SIGKILL)
    assert process.wait(started, timeout=10)
    record = process.read_exit(spec.state_dir)
    assert record is not None and record["ExitCode"] == 137 and record["Signal"] == 9
    assert not procfs.alive(started.pid, started.pid_start_time)


def test_pid_1_ignores_sigterm_without_a_handler(lab: Lab) -> None:
    """PID 1 with no SIGTERM handler survives SIGTERM (pid_namespaces(7)), which is why stop needs SIGKILL."""
    spec = lab.spec(["sleep", "1000"])
    started = lab.start(spec)
    os.kill(started.pid, signal.SIGTERM)
    assert not process.wait(started, timeout=0.3)
    assert procfs.alive(started.pid, started.pid_start_time)
    os.kill(started.pid, signal.SIGKILL)
    assert process.wait(started, timeout=10)


def test_sigterm_trap_gives_143(lab: Lab) -> None:
    """A shell that traps SIGTERM and exits 143 is recorded as 143."""
    spec = lab.spec(["sh", "-c", "trap 'exit 143' TERM; echo ready; sleep 1000 & wait"])
    started = lab.start(spec)
    _wait_for_output(spec.log_path, "ready")
    os.kill(started.pid, signal.SIGTERM)
    assert process.wait(started, timeout=10)
    record = process.read_exit(spec.state_dir)
    assert record is not None and record["ExitCode"] == 143


def test_missing_command_fails_with_127_and_cleans_up(lab: Lab) -> None:
    """A command not in PATH raises StartFailed(127) after exit.json, umount and cgroup removal are done."""
    cgroup = lab.cgroup()
    spec = lab.spec(
        ["nope"],
        cgroup_procs=(f"{cgroup}/cgroup.procs",),
        cleanup_rmdirs=(cgroup,),
    )
    with pytest.raises(StartFailed) as caught:
        process.start(spec, lab.supervisor_argv)
    assert caught.value.exit_code == 127
    assert str(caught.value) == 'exec: "nope": executable file not found in $PATH'
    record = process.read_exit(spec.state_dir)
    assert record is not None and record["ExitCode"] == 127
    assert not _mounted(spec.rootfs)
    assert not os.path.exists(cgroup)
    alive_shims = subprocess.run(["pgrep", "-f", spec.state_dir], capture_output=True, text=True).stdout
    assert alive_shims == ""


def test_directory_as_command_fails_with_126(lab: Lab) -> None:
    """Running a directory raises StartFailed(126) with Docker's wording."""
    spec = lab.spec(["/bin"])
    with pytest.raises(StartFailed) as caught:
        process.start(spec, lab.supervisor_argv)
    assert caught.value.exit_code == 126
    assert 'exec: "/bin": permission denied' in str(caught.value)  # Go's exec.LookPath, as runc reports it


def test_cwd_is_created_and_a_file_is_refused(lab: Lab) -> None:
    """A missing working directory is created; one that is a file fails the start."""
    record, spec = lab.run(["pwd"], cwd="/srv/app")
    assert _output(spec.log_path) == "/srv/app\n"
    with pytest.raises(StartFailed) as caught:
        process.start(lab.spec(["true"], cwd="/bin/busybox"), lab.supervisor_argv)
    assert "not a directory" in str(caught.value)


def test_capabilities_are_dockers_default(lab: Lab) -> None:
    """PID 1's effective and bounding capabilities are Docker's default mask 0xa80425fb."""
    record, spec = lab.run(["sh", "-c", "grep -E '^Cap(Eff|Bnd|Inh)' /proc/1/status"])
    caps = dict(line.split(":\t") for line in _output(spec.log_path).splitlines())
    assert int(caps["CapEff"], 16) == 0xA80425FB == capabilities.mask(capabilities.DOCKER_DEFAULT)
    assert int(caps["CapBnd"], 16) == 0xA80425FB
    assert int(caps["CapInh"], 16) == 0


def test_proc_and_sys_are_masked(lab: Lab) -> None:
    """Docker's masked paths are empty and its read-only paths refuse writes."""
    script = "ls /sys/firmware | wc -l; grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1"
    record, spec = lab.run(["sh", "-c", script])
    assert _output(spec.log_path).split() == ["0", "ro"]


def test_bind_mounts_are_visible_and_writable(lab: Lab, tmp_path: Path) -> None:
    """A writable bind shows host files and takes writes; a read-only bind refuses them."""
    volume = tmp_path / "labkit-volume"
    volume.mkdir()
    (volume / "hello").write_text("from host\n")
    hosts = tmp_path / "labkit-hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n")
    mounts = (
        Mount(str(volume), "/data"),
        Mount(str(volume), "/frozen", readonly=True),
        Mount(str(hosts), "/etc/hosts", readonly=True),
    )
    script = "cat /data/hello; echo written > /data/new; cat /etc/hosts; touch /frozen/x || echo refused"
    record, spec = lab.run(["sh", "-c", script], mounts=mounts)
    assert _output(spec.log_path) == "from host\n127.0.0.1\tlocalhost\nrefused\n"
    assert (volume / "new").read_text() == "written\n"
    assert not (volume / "x").exists()


def test_a_planted_symlink_cannot_move_a_mount_out_of_the_rootfs(lab: Lab, tmp_path: Path) -> None:
    """A destination that is a symlink in the image to a host-looking path, relative or absolute, lands inside
    the rootfs (``pid1.c``'s secure_join resolves it as if the rootfs were /)."""
    outside = tmp_path / "labkit-outside"
    outside.mkdir()
    volume = tmp_path / "labkit-vol"
    volume.mkdir()
    (volume / "mark").write_text("volume\n")
    hosts = tmp_path / "labkit-hosts"
    hosts.write_text("127.0.0.1 planted\n")
    spec = lab.spec(["cat", "/escape/mark", "/etc/hosts"],
                    mounts=(Mount(str(volume), "/escape"), Mount(str(hosts), "/etc/hosts")))
    # In the writable layer: /escape -> ../../../../<outside>, and /etc/hosts -> <outside>/hosts.
    os.symlink("../" * 12 + str(outside).lstrip("/"), os.path.join(spec.rootfs, "escape"))
    etc_hosts = os.path.join(spec.rootfs, "etc", "hosts")
    os.makedirs(os.path.dirname(etc_hosts), exist_ok=True)
    if os.path.lexists(etc_hosts):
        os.unlink(etc_hosts)
    os.symlink(str(outside / "hosts"), etc_hosts)
    started = lab.start(spec)
    assert process.wait(started, timeout=10)
    assert _output(spec.log_path) == "volume\n127.0.0.1 planted\n"
    assert os.listdir(outside) == [], "nothing was mounted or made on the host path"
    with open("/proc/self/mounts") as f:
        assert str(outside) not in f.read()


def test_readonly_rootfs_refuses_writes(lab: Lab) -> None:
    """With readonly_rootfs the container's / cannot be written."""
    record, spec = lab.run(["sh", "-c", "touch /x || echo refused"], readonly_rootfs=True)
    assert _output(spec.log_path) == "refused\n"


def test_oom_kill_count_sets_oomkilled(lab: Lab, tmp_path: Path) -> None:
    """An "oom_kill N" line with N>0 in the OOM file sets OOMKilled."""
    events = tmp_path / "labkit-memory.events"
    events.write_text("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    record, _ = lab.run(["true"], oom_file=str(events))
    assert record["OOMKilled"] is True


def test_exec_in_joins_the_container(lab: Lab, tmp_path: Path) -> None:
    """exec_in runs in the container's PID namespace, hostname and root, and returns the exit code."""
    cgroup = lab.cgroup()
    procs = (f"{cgroup}/cgroup.procs",)
    spec = lab.spec(["sleep", "1000"], hostname="exec-target", cgroup_procs=procs, cleanup_rmdirs=(cgroup,))
    started = lab.start(spec)
    out = tmp_path / "labkit-exec.out"
    with open(out, "w") as f:
        script = "echo $$; hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; pwd; grep -c . /proc/self/cgroup"
        code = process.exec_in(
            started.pid, ["sh", "-c", script], ["PATH=/bin"], cwd="/bin", cgroup_procs=procs, stdout=f.fileno()
        )
    assert code == 0
    pid, hostname, cmdline, cwd, _ = out.read_text().split("\n", 4)
    assert 1 < int(pid) < 100
    assert hostname == "exec-target"
    assert cmdline.strip() == "sleep 1000"
    assert cwd == "/bin"
    assert process.exec_in(started.pid, ["sh", "-c", "exit 5"], ["PATH=/bin"]) == 5
    assert process.exec_in(started.pid, ["sh", "-c", "kill -9 $$"], ["PATH=/bin"]) == 137
    with pytest.raises(StartFailed) as caught:
        process.exec_in(started.pid, ["nope"], ["PATH=/bin"])
    assert caught.value.exit_code == 127
    assert str(caught.value) == (
        "OCI runtime exec failed: exec failed: unable to start container process: "
        'exec: "nope": executable file not found in $PATH'
    )
    os.kill(started.pid, signal.SIGKILL)
    assert process.wait(started, timeout=10)
    assert not os.path.exists(cgroup)


def test_supervisor_survives_its_caller(lab: Lab) -> None:
    """A container started by a process that then exits keeps running, and its exit is still recorded."""
    spec = lab.spec(["sleep", "1000"])
    script = (
        "import dataclasses, json, sys\n"
        "from labkit.linux import process\n"
        "spec = process.LaunchSpec(**json.loads(sys.argv[1]))\n"
        "print(json.dumps(dataclasses.asdict(process.start(spec, json.loads(sys.argv[2])))))\n"
    )
    fields = dataclasses.asdict(spec)
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(fields), json.dumps(lab.supervisor_argv)],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    started = Started(**json.loads(result.stdout))
    lab.started.append(started)
    assert procfs.alive(started.pid, started.pid_start_time)
    with open(f"/proc/{started.shim_pid}/stat") as f:
        parent = int(f.read().rpartition(")")[2].split()[1])
    assert parent != os.getpid()
    os.kill(started.pid, signal.SIGKILL)
    assert process.wait(started, timeout=10)
    record = process.read_exit(spec.state_dir)
    assert record is not None and record["ExitCode"] == 137


def test_supervisor_memory_is_small(lab: Lab, supervisor_argv: list[str]) -> None:
    """The C shim stays near conmon's footprint."""
    spec = lab.spec(["sleep", "1000"])
    started = lab.start(spec)
    time.sleep(0.05)
    rss, private = _memory(started.shim_pid)
    print(f"\nsupervisor {os.path.basename(supervisor_argv[-1])}: RSS {rss:.2f} MB, private {private:.2f} MB")
    assert rss < 3 and private < 1
    os.kill(started.pid, signal.SIGKILL)
    assert process.wait(started, timeout=10)


def test_alive_tells_a_reused_pid_apart(lab: Lab) -> None:
    """alive() is false for the right PID with the wrong start time."""
    spec = lab.spec(["sleep", "1000"])
    started = lab.start(spec)
    assert procfs.alive(started.pid, started.pid_start_time)
    assert not procfs.alive(started.pid, started.pid_start_time + 1)
    os.kill(started.pid, signal.SIGKILL)
    assert process.wait(started, timeout=10)


def test_shim_is_built_once_per_source(tmp_path: Path) -> None:
    """The shim binary is named by its source hash and reused; no compiler means no binary."""
    directory = str(tmp_path / "labkit-shim-cache")
    first = supervisor.build_shim(directory)
    assert first is not None and os.path.basename(first).startswith("labkit-shim-")
    assert supervisor.build_shim(directory) == first
    assert os.listdir(directory) == [os.path.basename(first)]
    assert supervisor.build_shim(str(tmp_path / "labkit-empty"), compiler="labkit-no-such-cc") is None


def test_the_shim_is_linked_statically_where_the_c_library_allows(tmp_path: Path) -> None:
    """Where a static program can be linked (labkit-init is one), the shim is one too: no dynamic loader
    runs when a start execs it (its ELF program headers name no PT_INTERP)."""
    directory = str(tmp_path / "labkit-static")
    if supervisor.build_init(directory) is None:
        pytest.skip("this host cannot link a static C program (no libc.a)")
    shim = supervisor.build_shim(directory)
    assert shim is not None
    with open(shim, "rb") as f:
        elf = f.read()
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    kinds = [struct.unpack_from("<I", elf, phoff + i * phentsize)[0] for i in range(phnum)]
    assert 1 in kinds and 3 not in kinds  # PT_LOAD, and no PT_INTERP


def test_without_a_compiler_no_start_path_remains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no C compiler and no shim built before, the supervisor cannot be had and says why in one sentence;
    a shim built before is still used."""
    from labkit import helpers

    built = supervisor.build_shim(str(tmp_path / "labkit-built"))
    monkeypatch.setattr(helpers, "COMPILERS", ("labkit-no-such-cc",))
    assert supervisor.compiler_on_path() is None
    assert supervisor.problem(str(tmp_path / "labkit-built")) is None
    assert supervisor.command(str(tmp_path / "labkit-built")) == [built]
    empty = str(tmp_path / "labkit-empty")
    assert supervisor.problem(empty) == supervisor.NO_COMPILER
    with pytest.raises(HostUnsupported) as info:
        supervisor.command(empty)
    assert str(info.value) == supervisor.NO_COMPILER and "apt-get install gcc" in info.value.hint
    assert not os.path.exists(empty), "nothing is made"


def test_waiting_for_a_supervisor_reaped_at_once_finds_it_gone():
    """Where init reaps at once (systemd), a supervisor that led a session and ended leaves its PID alive as the id
    of the session what it started stays in; pidfd_open(2) then says EINVAL (kernel 6.1; later ones ESRCH), and
    wait() must take it as ended."""
    from tests.util import reaped_session_leader

    leader, member = reaped_session_leader()
    try:
        assert process.wait(leader, timeout=1) is True
    finally:
        os.kill(member, signal.SIGKILL)
