"""The contract: every backend gives the same statuses, exit codes, errors, files and shapes."""

from __future__ import annotations

import os
import warnings

import pytest

import labkit
from labkit.errors import IllegalTransition
from tests.util import wait_for


def test_lifecycle_walk(lab):
    """create → start → pause → unpause → stop → start → rm passes through the same statuses and codes."""
    c = lab.create("busybox", ["sleep", "300"])
    seen = [(c.status, c.exit_code)]
    c.start()
    seen.append((c.status, c.exit_code))
    c.pause()
    seen.append((c.status, c.exit_code))
    c.unpause()
    seen.append((c.status, c.exit_code))
    c.stop(timeout=0)
    seen.append((c.status, c.exit_code))
    c.start()
    seen.append((c.status, c.exit_code))
    c.remove(force=True)
    assert seen == [("created", 0), ("running", 0), ("paused", 0), ("running", 0), ("exited", 137), ("running", 0)]
    assert c.id not in lab.store.container_ids()


def _moves(lab):
    c = lab.create("busybox", ["sleep", "300"], name="mover")
    out = []
    for verb in ("pause", "unpause", "kill"):
        with pytest.raises(IllegalTransition) as e:
            getattr(lab, verb)("mover")
        out.append(("created", verb, str(e.value)))
    c.start()
    for verb, call in (("unpause", lambda: lab.unpause("mover")), ("rm", lambda: lab.rm("mover"))):
        with pytest.raises(IllegalTransition) as e:
            call()
        out.append(("running", verb, str(e.value)))
    c.pause()
    for verb, call in (("pause", lambda: lab.pause("mover")), ("start", lambda: lab.start("mover")),
                       ("rm", lambda: lab.rm("mover")), ("exec", lambda: lab.exec("mover", ["true"]))):
        with pytest.raises(IllegalTransition) as e:
            call()
        out.append(("paused", verb, str(e.value)))
    c.unpause()
    c.stop(timeout=0)
    for verb, call in (("pause", lambda: lab.pause("mover")), ("exec", lambda: lab.exec("mover", ["true"]))):
        with pytest.raises(IllegalTransition) as e:
            call()
        out.append(("exited", verb, str(e.value)))
    return [(s, v, m.replace(c.id, "<id>")) for s, v, m in out]


def test_illegal_moves_give_dockers_errors(lab):
    """Every refused verb raises Docker's message, the same on every backend."""
    assert _moves(lab) == [
        ("created", "pause", "container <id> is not running"),
        ("created", "unpause", "Container <id> is not paused"),
        ("created", "kill", "Cannot kill container: mover: container <id> is not running"),
        ("running", "unpause", "Container <id> is not paused"),
        ("running", "rm", 'cannot remove container "mover": container is running: stop the container before '
                          "removing or force remove"),
        ("paused", "pause", "Container <id> is already paused"),
        ("paused", "start", "cannot start a paused container, try unpause instead"),
        ("paused", "rm", 'cannot remove container "mover": container is paused and must be unpaused first'),
        ("paused", "exec", "Container mover is paused, unpause the container before exec"),
        ("exited", "pause", "container <id> is not running"),
        ("exited", "exec", "container <id> is not running"),
    ]


def test_pid_one_and_hostname(lab):
    """The command sees itself as PID 1 and the hostname is the short id."""
    c = lab.run("busybox", ["sh", "-c", "echo $$; hostname"])
    assert c.logs() == f"1\n{c.id[:12]}\n"
    assert c.exit_code == 0


SCRIPT = ("echo changed >> /etc/passwd; rm /etc/group; mkdir /data; echo x > /data/new; touch /etc/zz; "
          "echo 1 > /tmp/a; rm -r /home; mkdir /home; mkdir /var/www/site")


def test_copy_up_whiteout_and_diff(lab):
    """The same script leaves the same A/C/D list: copy-ups are C, deletions D (last), new files A."""
    c = lab.run("busybox", ["sh", "-c", SCRIPT])
    assert c.exit_code == 0, c.logs()
    assert [(d["Kind"], d["Path"]) for d in c.diff()] == [
        (1, "/data"), (1, "/data/new"),
        (0, "/etc"), (0, "/etc/passwd"), (1, "/etc/zz"), (2, "/etc/group"),
        (0, "/home"),
        (0, "/tmp"), (1, "/tmp/a"),
        (0, "/var"), (0, "/var/www"), (1, "/var/www/site"),
    ]
    code, out = c.exec(["true"]) if c.status == "running" else (0, "")
    assert code == 0


#: What overlayfs does for each command, step by step, on both backends (Documentation/filesystems/overlayfs.rst):
#: a write-needing access looks the file up, copies its parent directories up first, copies the file, then the
#: write acts on the copy; a delete copies the parent up and leaves a whiteout in it; a new file in an upper
#: directory is created there alone.
OVERLAY_STEPS = [
    ("echo x >> /etc/group", [("lookup", "/etc/group"), ("copy-up-dir", "/etc"), ("copy-up", "/etc/group"),
                              ("write-upper", "/etc/group")]),
    ("echo y >> /etc/group", []),  # copied once: the second write finds the upper copy
    ("chmod 600 /etc/passwd", [("lookup", "/etc/passwd"), ("copy-up", "/etc/passwd"), ("write-upper", "/etc/passwd")]),
    ("rm /bin/ls", [("copy-up-dir", "/bin"), ("whiteout", "/bin/ls")]),
    ("mkdir /data && echo z > /data/new", [("add", "/data/new")]),
]


def test_each_write_is_traced_as_overlayfs_does_it(lab):
    """A copy-up is its lookup, the parent directories, the copy and the write on the copy; a delete is the
    parent's copy-up and a whiteout; a new file is an add — the same steps on every backend."""
    c = lab.run("busybox", ["sleep", "300"], detach=True)
    for command, expected in OVERLAY_STEPS:
        with lab.tracing() as steps:
            assert c.exec(["sh", "-c", command])[0] == 0, command
        got = [(s.kind, s.change.get("path")) for s in steps if s.kind != "exec-in"]
        assert got == expected, command
        assert {s.name for s in steps} == {c.name}, command


def test_containers_do_not_see_each_others_writes(lab):
    """Two containers of one image share its layers, never each other's writes."""
    a = lab.run("busybox", ["sleep", "300"], detach=True)
    b = lab.run("busybox", ["sleep", "300"], detach=True)
    assert a.exec(["sh", "-c", "echo from-a > /tmp/note"])[0] == 0
    assert b.exec(["cat", "/tmp/note"]) == (1, "cat: can't open '/tmp/note': No such file or directory\n")
    assert a.exec(["cat", "/tmp/note"]) == (0, "from-a\n")
    la = a.inspect()["GraphDriver"]["Data"]
    lb = b.inspect()["GraphDriver"]["Data"]
    assert la["LowerDir"].split(":")[1:] == lb["LowerDir"].split(":")[1:] and la["UpperDir"] != lb["UpperDir"]


def test_volume_data_survives_rm(lab):
    """A volume's data outlives the container that wrote it."""
    lab.volume_create("contract-kept")
    try:
        c = lab.run("busybox", ["sh", "-c", "echo precious > /data/f"], volumes=["contract-kept:/data"])
        assert c.exit_code == 0
        assert [(d["Kind"], d["Path"]) for d in c.diff()] == [(1, "/data")]
        c.remove()
        d = lab.run("busybox", ["cat", "/data/f"], volumes=["contract-kept:/data"])
        assert d.logs() == "precious\n"
        d.remove()
    finally:
        lab.volume_rm("contract-kept")


def test_stop_exit_codes(lab):
    """stop: `sleep` as PID 1 ignores SIGTERM and is killed (137); a trap on TERM exits 143."""
    t = lab.run("busybox", ["sh", "-c", "trap 'exit 143' TERM; echo ready; while true; do sleep 0.1; done"],
                detach=True)
    assert wait_for(lambda: "ready" in t.logs())
    t.stop(timeout=5)
    assert t.exit_code == 143
    k = lab.run("busybox", ["sleep", "300"], detach=True)
    k.stop(timeout=0.2)
    assert (k.status, k.exit_code) == ("exited", 137)


def test_oom_kill(lab):
    """Allocating past --memory ends in an OOM kill: 137 and OOMKilled true."""
    c = lab.run("busybox", ["sh", "-c", "x=a; while true; do x=$x$x; done"], memory="16m")
    st = c.inspect()["State"]
    assert (st["Status"], st["ExitCode"], st["OOMKilled"]) == ("exited", 137, True)


def test_pids_limit(lab):
    """At --pids-limit fork fails with busybox's message and the shell exits 2; the container lives on."""
    c = lab.run("busybox", ["sleep", "300"], pids_limit=5, detach=True)
    code, out = c.exec(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do sleep 2 >/dev/null 2>&1 & done; echo all"])
    assert (code, out) == (2, "sh: can't fork: Resource temporarily unavailable\n")
    assert c.status == "running"


@pytest.mark.parametrize("kind, limit", [("memory", {"memory": "32m"}), ("pids", {"pids_limit": 20}),
                                         ("cpu", {"cpus": 0.5})])
def test_a_limit_nothing_enforces_is_discarded_with_a_warning(lab, kind, limit):
    """A limit outside ``enforced_limits`` gives a LimitDiscarded warning (Docker's "Limitation discarded");
    one inside gives none; inspect shows what was asked either way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = lab.create("busybox", ["true"], **limit)
    warned = [str(w.message) for w in caught if issubclass(w.category, labkit.LimitDiscarded)]
    if kind in lab.enforced_limits:
        assert warned == [] and c.warnings == []
    else:
        assert len(warned) == 1 and warned == c.warnings and "discarded" in warned[0]
    host = c.inspect()["HostConfig"]
    assert (host["Memory"], host["PidsLimit"], host["NanoCpus"]) == (
        32 * 2**20 if kind == "memory" else 0, 20 if kind == "pids" else None, 5 * 10**8 if kind == "cpu" else 0)


def test_what_each_backend_enforces(lab):
    """Root on this host enforces memory, pids and CPU; the simulator models memory and pids but not CPU time."""
    assert lab.enforced_limits == ({"memory", "pids"} if lab.backend_name == "sim" else {"memory", "pids", "cpu"})


def test_unknown_command_fails_start_with_127(lab):
    """A missing command fails start with 127; the container stays created with the error recorded."""
    from labkit.errors import StartFailed

    c = lab.create("busybox", ["nope-not-here"])
    with pytest.raises(StartFailed) as info:
        c.start()
    assert info.value.exit_code == 127
    assert str(info.value) == 'exec: "nope-not-here": executable file not found in $PATH'
    st = c.inspect()["State"]
    assert (st["Status"], st["ExitCode"]) == ("created", 127)


def test_logs_have_both_streams(lab):
    """logs keep stdout and stderr apart, one entry per line, with a time."""
    c = lab.run("busybox", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    lines = list(lab.logs(c.id))
    assert [(s, t) for s, t, _ in lines] == [("stdout", "out\n"), ("stderr", "err\n")]
    assert all(when.endswith("Z") for _, _, when in lines)
    assert c.exit_code == 3


INSPECT_KEYS = {"Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath",
                "LogPath", "Name", "RestartCount", "Driver", "Platform", "MountLabel", "ProcessLabel",
                "AppArmorProfile", "ExecIDs", "HostConfig", "GraphDriver", "Mounts", "Config", "NetworkSettings"}


def test_inspect_and_ps_shapes(lab):
    """inspect and ps have Docker's keys on every backend."""
    c = lab.run("busybox", ["sleep", "300"], detach=True, name="shapes", env={"A": "1"})
    info = c.inspect()
    assert set(info) == INSPECT_KEYS
    assert set(info["State"]) == {"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid",
                                  "ExitCode", "Error", "StartedAt", "FinishedAt"}
    assert {"LowerDir", "MergedDir", "UpperDir", "WorkDir"} <= set(info["GraphDriver"]["Data"])
    assert info["State"]["Pid"] > 0 and "A=1" in info["Config"]["Env"]
    row = next(r for r in lab.ps() if r["Id"] == c.id)
    assert set(row) == {"Id", "Names", "Image", "ImageID", "Command", "Created", "Ports", "Labels", "State",
                        "Status", "HostConfig", "NetworkSettings", "Mounts"}
    assert row["Names"] == ["/shapes"] and row["Status"].startswith("Up")
    assert row["NetworkSettings"]["Networks"] == info["NetworkSettings"]["Networks"], "ps carries inspect's networks"


def test_exec_missing_command(lab):
    """exec of a missing program raises with 127 and the runtime's words."""
    from labkit.errors import StartFailed

    c = lab.run("busybox", ["sleep", "300"], detach=True)
    with pytest.raises(StartFailed) as info:
        c.exec(["nosuch"])
    assert info.value.exit_code == 127
    assert str(info.value).endswith('exec: "nosuch": executable file not found in $PATH')


def test_network_shapes(lab):
    """Both backends give a bridge address with Docker's MAC, publish -p on 127.0.0.1, and release the address on stop."""
    c = lab.run("busybox", ["sleep", "30"], detach=True, ports=["18230:80"])
    ns = c.inspect()["NetworkSettings"]
    ip = ns["IPAddress"]
    assert ip.split(".")[-1] == "2" or int(ip.split(".")[-1]) > 1
    assert ns["MacAddress"] == "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    assert ns["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18230"}]}
    assert ns["Networks"]["bridge"]["Gateway"] == ns["Gateway"]
    row = [r for r in lab.ps() if r["Id"] == c.id][0]
    assert row["Ports"] == [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 18230, "Type": "tcp"}]
    code, hosts = c.exec(["cat", "/etc/hosts"])
    assert f"{ip}\t{c.id[:12]}" in hosts
    c.stop(timeout=0)
    assert c.inspect()["NetworkSettings"]["IPAddress"] == ""
    assert [r["Ports"] for r in lab.ps(all=True) if r["Id"] == c.id][0] == [{"PrivatePort": 80, "Type": "tcp"}]


def test_init_forwards_sigterm(lab):
    """With --init a plain sleep ends on stop's SIGTERM (143) on both backends; without it, SIGKILL (137)."""
    c = lab.run("busybox", ["sleep", "30"], detach=True, init=True)
    c.stop(timeout=20)
    assert c.exit_code == 143


def test_run_in_phases(lab):
    """run_phases walks a run as it happens: create, then start, then exit, each with its own steps."""
    phases = lab.run_phases("busybox", ["sh", "-c", "rm /etc/group"])
    name, steps = next(phases)
    assert name == "create" and [s.kind for s in steps] == ["create-layer"]
    assert phases.container.status == "created"
    name, steps = next(phases)
    kinds = [s.kind for s in steps]
    assert name == "start" and kinds[-3:] == ["clone", "pivot-root", "exec"] and "mount-overlay" in kinds
    name, steps = next(phases)
    assert name == "exit" and {"whiteout", "exit"} <= {s.kind for s in steps}
    assert phases.container.exit_code == 0
    assert [s.kind for s in phases.steps][:1] == ["create-layer"]


def kinds_of(steps, container=None):
    return [s.kind for s in steps if container is None or s.container == container]


def test_exec_is_a_step_of_its_own(lab):
    """exec records one exec-in step (setns(2) + execve(2)) with its command, the target PID 1 and the exit code."""
    c = lab.run("busybox", ["sleep", "30"], detach=True)
    with lab.tracing() as steps:
        assert c.exec(["sh", "-c", "exit 3"])[0] == 3
    assert kinds_of(steps) == ["exec-in"]
    step = steps[0]
    assert step.verb == "exec" and step.container == c.id and "setns(2)" in step.mechanism
    assert step.change == {"argv": ["sh", "-c", "exit 3"], "target_pid": c.pid, "exit_code": 3}
    c.remove(force=True)


def test_exec_reads_what_is_given_as_stdin(lab):
    """exec with ``stdin`` (``exec -i``) gives the command that input to its end; without, it reads nothing."""
    c = lab.run("busybox", ["sleep", "30"], detach=True)
    with open(os.devnull, "rb") as empty:
        r, w = os.pipe()
        os.write(w, b"hi\nthere\n")
        os.close(w)
        try:
            assert c.exec(["sh", "-c", "cat; exit 4"], stdin=r) == (4, "hi\nthere\n")
        finally:
            os.close(r)
        assert c.exec(["sh", "-c", "cat; exit 5"], stdin=empty) == (5, "")
    assert c.exec(["sh", "-c", "cat; exit 6"]) == (6, "")
    c.remove(force=True)


def test_exit_traces_the_teardown(lab):
    """When PID 1 ends, the exit is followed by the overlay's umount2(2), the network's end, the cgroup's rmdir(2)."""
    with lab.tracing() as steps:
        c = lab.run("busybox", ["true"])
    after = kinds_of(steps, c.id)[kinds_of(steps, c.id).index("exit"):]
    assert after == ["exit", "umount", "network-detach", "cgroup-remove"]
    umount = next(s for s in steps if s.kind == "umount")
    assert umount.change["merged"] == lab.inspect(c.id)["GraphDriver"]["Data"]["MergedDir"]
    assert "umount2(2)" in umount.mechanism
    detach = next(s for s in steps if s.kind == "network-detach")
    attach = next(s for s in steps if s.kind == "network")
    assert (detach.change["veth"], detach.change["ip"]) == (attach.change["veth"], attach.change["ip"])
    assert all(c.id in d for d in next(s for s in steps if s.kind == "cgroup-remove").change["dirs"])


def test_exit_without_a_network_has_no_detach_step(lab):
    """--network none: nothing to unplug, so no network-detach step."""
    with lab.tracing() as steps:
        c = lab.run("busybox", ["true"], network="none")
    assert kinds_of(steps, c.id)[-3:] == ["exit", "umount", "cgroup-remove"]


def test_rm_force_traces_the_exit_before_the_layer_goes(lab):
    """rm -f of a running container: SIGKILL, the exit (137) and its teardown, then the writable layer goes."""
    c = lab.run("busybox", ["sleep", "30"], detach=True, network="none")
    with lab.tracing() as steps:
        c.remove(force=True)
    assert kinds_of(steps) == ["signal", "exit", "umount", "cgroup-remove", "remove-layer"]
    assert steps[1].change["exit_code"] == 137 and {s.verb for s in steps} == {"rm"}


def test_volume_and_network_verbs_are_traced(lab):
    """volume create/rm and network create/rm each record one step naming the volume's directory or the bridge."""
    with lab.tracing() as steps:
        vol = lab.volume_create("contract-traced")
        lab.volume_rm("contract-traced")
        net = lab.network_create("contract-traced")
        lab.network_rm("contract-traced")
    assert kinds_of(steps) == ["volume-create", "volume-remove", "network-create", "network-remove"]
    assert [s.verb for s in steps] == ["volume-create", "volume-rm", "network-create", "network-rm"]
    assert steps[0].change == {"volume": "contract-traced", "path": vol["Mountpoint"]}
    assert steps[1].change["path"] == vol["Mountpoint"]
    bridge = net["Options"]["com.docker.network.bridge.name"]
    assert steps[2].change == {"network": "contract-traced", "bridge": bridge,
                               "subnet": net["IPAM"]["Config"][0]["Subnet"]}
    assert steps[3].change == {"network": "contract-traced", "bridge": bridge}
    assert all(s.container == "" for s in steps)


def test_a_volume_made_by_run_is_traced(lab):
    """A named volume that run -v makes on first use records the same volume-create step."""
    with lab.tracing() as steps:
        c = lab.run("busybox", ["true"], volumes=["contract-made:/data"])
    assert "volume-create" in kinds_of(steps)
    c.remove()
    lab.volume_rm("contract-made")


@pytest.mark.parametrize("script, pid1", [("sleep 100 & sleep 200", ["sleep", "200"]),
                                          ("trap 'exit 3' TERM; sleep 200", ["sh", "-c", "trap 'exit 3' TERM; sleep 200"])])
def test_sh_c_execs_its_last_command_unless_it_traps(lab, script, pid1):
    """busybox's ``sh -c`` replaces itself with its last simple command (PID 1 is that program), except when a trap
    is set and the shell must stay to run it."""
    c = lab.run("busybox", ["sh", "-c", script], detach=True)
    code, out = c.exec(["cat", "/proc/1/cmdline"])
    assert (code, out.split("\0")[:-1]) == (0, pid1)
