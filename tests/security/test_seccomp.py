"""Docker's seccomp profile on real containers: what it refuses, what it lets through, and how to change it.

Every container's PID 1 and every ``exec`` run under the filter labkit compiles
from Docker's default profile (``labkit/model/seccomp.py``, libseccomp). A small
static probe (``probe.c``, built here with ``gcc -static`` and mounted read-only
into a busybox container) makes the calls and prints what the kernel answered.
The same probe under ``--security-opt seccomp=unconfined`` shows each refusal is
the filter's doing: there the calls go through.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.learner import run_as
from tests.util import wait_for

pytestmark = pytest.mark.root

#: Docker's default capabilities (CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
#: NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP) as /proc/PID/status prints them.
DOCKER_CAPS = "00000000a80425fb"

#: Calls Docker's default profile refuses a default container, each with EPERM.
REFUSED = ("unshare-user", "clone-newuser", "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
           "socket-vsock", "personality", "mount-cgroup")


@pytest.fixture(scope="session")
def probe():
    """A directory holding the static probe, readable by every user (a rootless container mounts it too)."""
    where = tempfile.mkdtemp(prefix="seccomp-probe-")
    os.chmod(where, 0o755)
    source = Path(__file__).with_name("probe.c")
    subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(where, "probe"), str(source)], check=True,
                   capture_output=True)
    yield where
    shutil.rmtree(where, ignore_errors=True)


def answers(text: str) -> dict[str, str]:
    """The probe's lines as {call: answer}."""
    return dict(line.split(" ", 1) for line in text.splitlines() if line.count(" ") == 1)


def status(text: str) -> dict[str, str]:
    """The ``Key: value`` lines of /proc/PID/status."""
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def test_pid1_and_exec_run_in_seccomp_filter_mode(engine):
    """A default container's PID 1 and an exec'd process show ``Seccomp: 2`` with one filter, NoNewPrivs set."""
    c = engine.run("busybox", ["sleep", "60"], detach=True)
    code, pid1 = engine.exec_output(c.id, ["cat", "/proc/1/status"])
    assert code == 0
    code, execd = engine.exec_output(c.id, ["cat", "/proc/self/status"])
    assert code == 0
    for text in (pid1, execd):
        fields = status(text)
        assert (fields["Seccomp"], fields["Seccomp_filters"], fields["NoNewPrivs"]) == ("2", "1", "1")
    host_view = status(Path(f"/proc/{c.inspect()['State']['Pid']}/status").read_text())
    assert host_view["Seccomp"] == "2", "the host sees the same filter on PID 1"
    assert c.inspect()["HostConfig"]["SecurityOpt"] is None, "Docker shows null for the default profile"


def test_capabilities_are_dockers_default(engine):
    """PID 1 and exec hold exactly Docker's 14 capabilities: effective, permitted and bounding; none inheritable or ambient."""
    c = engine.run("busybox", ["sleep", "60"], detach=True)
    for argv in (["cat", "/proc/1/status"], ["cat", "/proc/self/status"]):
        code, text = engine.exec_output(c.id, argv)
        fields = status(text)
        assert code == 0
        assert (fields["CapEff"], fields["CapPrm"], fields["CapBnd"]) == (DOCKER_CAPS,) * 3, argv
        assert (fields["CapInh"], fields["CapAmb"]) == ("0" * 16,) * 2, argv


def test_default_profile_refuses_what_docker_refuses(engine, probe):
    """Namespaces, keyrings, eBPF, perf, AF_VSOCK, personality and cgroup mounts fail with EPERM; clone3 says ENOSYS; fork and sockets work."""
    c = engine.run("busybox", ["/probe/probe", *REFUSED, "clone3", "fork", "socket-inet"],
                   volumes=[f"{probe}:/probe:ro"])
    got = answers(c.logs())
    assert c.exit_code == 0, c.logs()
    assert {call: got.get(call) for call in REFUSED} == dict.fromkeys(REFUSED, "EPERM")
    assert got["clone3"] == "ENOSYS", "so that a C library falls back to clone(2), whose flags the filter can see"
    assert (got["fork"], got["socket-inet"]) == ("ok", "ok")


def test_busybox_unshare_is_refused(engine):
    """``unshare -U`` (busybox's applet) fails in a default container and works with seccomp=unconfined."""
    refused = engine.run("busybox", ["unshare", "-U", "true"])
    assert refused.exit_code != 0 and "Operation not permitted" in refused.logs()
    allowed = engine.run("busybox", ["unshare", "-U", "true"], security_opt=["seccomp=unconfined"])
    assert allowed.exit_code == 0, allowed.logs()


def _limit_files(pid: int) -> dict[str, str]:
    """The container's memory and pids limits, read on the host through PID 1's cgroups (v1 or v2)."""
    points = {}
    with open("/proc/self/mounts") as f:
        for line in f:
            _, point, fstype, options = line.split()[:4]
            for controller in ("memory", "pids"):
                if fstype == "cgroup" and controller in options.split(","):
                    points[controller] = point
            if fstype == "cgroup2":
                points.setdefault("", point)
    files = {"memory": ("memory.limit_in_bytes",), "pids": ("pids.max",), "": ("memory.max", "pids.max")}
    found = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            for name in files.get(controller, ()):
                file = Path(points.get(controller, "/nonexistent") + path) / name
                if file.exists():
                    found.setdefault(name, file.read_text().strip())
    return found


def _run_attack(engine, probe, security_opt):
    """Run the probe's attack in a container limited to 64 MB and 64 processes: its answers, and the host's
    limit files before the attack and after it."""
    wait_then_attack = "until [ -e /tmp/go ]; do sleep 0.05; done; /probe/probe lift; sleep 60"
    c = engine.run("busybox", ["sh", "-c", wait_then_attack], volumes=[f"{probe}:/probe:ro"],
                   memory="64m", pids_limit=64, security_opt=security_opt, detach=True)
    pid = c.inspect()["State"]["Pid"]
    before = _limit_files(pid)
    assert engine.exec_output(c.id, ["touch", "/tmp/go"])[0] == 0
    assert wait_for(lambda: "lift-write-pids" in c.logs(), timeout=20), c.logs()
    return answers(c.logs()), before, _limit_files(pid)


def test_a_container_cannot_lift_its_own_limits(engine, probe):
    """The attack (a user namespace, then a cgroup v1 mount of the container's own groups, then writing unlimited) is refused at its first step; the host's limit files keep their values."""
    got, before, after = _run_attack(engine, probe, [])
    assert got["lift-unshare"] == "EPERM"
    assert got["lift-mount-memory"] == got["lift-mount-pids"] == "EPERM"
    assert before and after == before
    assert "pids.max" in before and before["pids.max"] == "64"


def test_unconfined_the_same_attack_lifts_the_pids_limit(engine, probe):
    """The probe is real: without the filter (seccomp=unconfined) the same container lifts its own pids limit on a cgroup v1 host."""
    if not os.path.isdir("/sys/fs/cgroup/pids"):
        got, _, _ = _run_attack(engine, probe, ["seccomp=unconfined"])
        assert got["lift-unshare"] == "ok", "no v1 pids hierarchy to mount here: the unshare goes through"
        return
    got, before, after = _run_attack(engine, probe, ["seccomp=unconfined"])
    assert got["lift-unshare"] == got["lift-mount-pids"] == got["lift-write-pids"] == "ok"
    assert (before["pids.max"], after["pids.max"]) == ("64", "max")


def test_unconfined_runs_without_a_filter(engine, probe):
    """--security-opt seccomp=unconfined: Seccomp 0 in PID 1 and exec, the calls go through, inspect shows the option."""
    c = engine.run("busybox", ["sleep", "60"], detach=True, security_opt=["seccomp=unconfined"],
                   volumes=[f"{probe}:/probe:ro"])
    _, pid1 = engine.exec_output(c.id, ["cat", "/proc/1/status"])
    _, execd = engine.exec_output(c.id, ["cat", "/proc/self/status"])
    assert status(pid1)["Seccomp"] == status(execd)["Seccomp"] == "0"
    code, out = engine.exec_output(c.id, ["/probe/probe", "unshare-user", "keyctl", "clone3"])
    assert answers(out) == {"unshare-user": "ok", "keyctl": "ok", "clone3": "ok"}
    assert c.inspect()["HostConfig"]["SecurityOpt"] == ["seccomp=unconfined"]
    assert status(pid1)["CapEff"] == DOCKER_CAPS, "the capabilities stay Docker's"


def test_a_custom_profile_refusing_mkdir(engine, probe, tmp_path):
    """seccomp=FILE runs PID 1 and exec under that profile: mkdir fails with EPERM, the rest works; inspect keeps the profile's JSON."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    path = tmp_path / "no-mkdir.json"
    path.write_text(json.dumps(profile, indent=4))
    c = engine.run("busybox", ["sh", "-c", "/probe/probe mkdir unshare-user; sleep 60"], detach=True,
                   security_opt=[f"seccomp={path}"], volumes=[f"{probe}:/probe:ro"])
    assert wait_for(lambda: "unshare-user" in c.logs(), timeout=20), c.logs()
    assert answers(c.logs()) == {"mkdir": "EPERM", "unshare-user": "ok"}
    code, out = engine.exec_output(c.id, ["sh", "-c", "mkdir /tmp/x; echo $?; grep ^Seccomp: /proc/self/status"])
    assert "Operation not permitted" in out and out.splitlines()[-2:] == ["1", "Seccomp:\t2"]
    assert c.inspect()["HostConfig"]["SecurityOpt"] == ["seccomp=" + json.dumps(profile, separators=(",", ":"))]
    path.unlink()
    engine.stop(c.id, timeout=0)
    engine.start(c.id)  # the profile was kept at create: the file is no longer needed
    assert wait_for(lambda: engine.exec_output(c.id, ["/probe/probe", "mkdir"])[1] == "mkdir EPERM\n", timeout=20)


def test_build_steps_run_under_the_filter(engine, tmp_path):
    """A Labfile's RUN step runs under Docker's default profile too, as BuildKit's do."""
    (tmp_path / "Labfile").write_text("FROM busybox\n"
                                      "RUN grep ^Seccomp: /proc/self/status > /seccomp; unshare -U true; echo $? >> /seccomp\n"
                                      'CMD ["cat", "/seccomp"]\n')
    engine.build(str(tmp_path), "seccomp-step:1", on_step=lambda *_: None)
    c = engine.run("seccomp-step:1")
    assert c.logs() == "Seccomp:\t2\n1\n"


def test_the_compiled_filter_is_made_once_per_profile(engine, tmp_path):
    """Containers with the same profile share one BPF file in ROOT/seccomp; another profile adds one; unconfined none."""
    cache = Path(engine.store.root) / "seccomp"
    engine.run("busybox", ["true"])
    before = set(os.listdir(cache))
    engine.run("busybox", ["true"])
    engine.run("busybox", ["true"], security_opt=["seccomp=unconfined"])
    assert set(os.listdir(cache)) == before and len([f for f in before if f.endswith(".bpf")]) >= 1
    engine.run("busybox", ["true"], security_opt=['seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":'
                                                  '[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}'])
    added = set(os.listdir(cache)) - before
    assert len(added) == 1 and added.pop().endswith(".bpf")


@pytest.fixture
def lk(engine):
    """`labkit ARGS...` in a new process on the test engine's state root: (rc, stdout, stderr)."""
    env = {**os.environ, "LABKIT_ROOT": str(engine.store.root)}

    def run(*args: str, cwd: str | None = None) -> tuple[int, str, str]:
        p = subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, env=env,
                           timeout=120, cwd=cwd)
        assert "Traceback" not in p.stderr, p.stderr
        return p.returncode, p.stdout, p.stderr

    return run


@pytest.mark.parametrize(("opt", "words"), [
    ("seccomp=/nonexistent/profile.json", "opening seccomp profile (/nonexistent/profile.json) failed"),
    ("seccomp={not json", "compacting json for seccomp profile"),
    ('seccomp={"defaultAction":"SCMP_ACT_NOPE"}', "unknown action 'SCMP_ACT_NOPE'"),
    ('seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}',
     "SCMP_ACT_NOTIFY"),
    ('seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW",'
     '"args":[{"index":7,"value":1,"op":"SCMP_CMP_EQ"}]}]}', "index must be a whole number from 0 to 5"),
    ("seccomp=", "invalid --security-opt"),
    ("seccomp", "invalid --security-opt"),
    ("apparmor=unconfined", "invalid --security-opt 2"),
])
def test_bad_security_opts_are_refused_before_anything_is_made(lk, engine, opt, words):
    """A bad --security-opt: exit 125, one sentence that names the problem (then Docker's help line), no container."""
    before = set(engine.store.container_ids())
    rc, out, err = lk("run", "--security-opt", opt, "busybox", "true")
    assert rc == 125 and out == ""
    said = [line for line in err.splitlines() if line and not line.startswith("Run 'labkit run --help'")]
    assert len(said) == 1 and words in said[0], err
    assert set(engine.store.container_ids()) == before


def test_the_cli_reads_a_profile_relative_to_its_directory(lk, engine, tmp_path):
    """`labkit run --security-opt seccomp=FILE` reads FILE from where the command was typed, as docker's CLI does."""
    (tmp_path / "allow.json").write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    rc, out, err = lk("run", "--rm", "--security-opt", "seccomp=allow.json", "busybox", "grep", "^Seccomp:",
                      "/proc/1/status", cwd=str(tmp_path))
    assert (rc, out) == (0, "Seccomp:\t2\n"), err


# -------------------------------------------------------------------------------------------- rootless

ROOTLESS = """
import json
import labkit
lab = labkit.connect()
probe = {probe!r}
c = lab.run("busybox", ["sleep", "60"], detach=True, volumes=[f"{{probe}}:/probe:ro"])
out = {{"pid1": lab.exec_output(c.id, ["cat", "/proc/1/status"])[1],
       "exec": lab.exec_output(c.id, ["cat", "/proc/self/status"])[1],
       "probe": lab.exec_output(c.id, ["/probe/probe", "unshare-user", "clone-newuser", "keyctl", "add_key",
                                       "mount-cgroup", "clone3", "fork"])[1],
       "backend": lab.backend_name}}
lab.rm(c.id, force=True)
u = lab.run("busybox", ["sh", "-c", "grep ^Seccomp: /proc/1/status; /probe/probe unshare-user"],
            security_opt=["seccomp=unconfined"], volumes=[f"{{probe}}:/probe:ro"])
out["unconfined"] = u.logs()
lab.rm(u.id)
print(json.dumps(out))
"""


def test_rootless_containers_get_the_same_filter(learner, probe):
    """Rootless: Seccomp 2 and Docker's CapEff in PID 1 and exec, the same calls refused; unconfined lets them through."""
    got = run_as(learner, ROOTLESS.format(probe=probe))
    assert got["backend"] == "rootless"
    for key in ("pid1", "exec"):
        fields = status(got[key])
        assert (fields["Seccomp"], fields["CapEff"], fields["NoNewPrivs"]) == ("2", DOCKER_CAPS, "1"), key
    assert answers(got["probe"]) == {"unshare-user": "EPERM", "clone-newuser": "EPERM", "keyctl": "EPERM",
                                     "add_key": "EPERM", "mount-cgroup": "EPERM", "clone3": "ENOSYS", "fork": "ok"}
    assert got["unconfined"] == "Seccomp:\t0\nunshare-user ok\n"


def test_dockers_profile_is_compiled_to_a_binary_tree():
    """Docker's ~370 calls are laid out as libseccomp's binary tree of call numbers, as runc asks for over 32
    calls, and not as one line of comparisons, which the kernel walks to its end for every call number when
    it installs the filter (seccomp_cache_prepare)."""
    from labkit.linux import capabilities, seccomp

    program = seccomp.compile_bpf(seccomp.for_container((), capabilities.DOCKER_DEFAULT))
    codes = [struct.unpack_from("<H", program, i)[0] for i in range(0, len(program), 8)]
    assert codes.count(0x25) > 100  # BPF_JMP | BPF_JGT | BPF_K: the tree's inner nodes
