"""labkit beside a real dockerd: the lesson's scenarios run with ``docker`` and with ``labkit``, step by
step, and every answer must match — exit codes, output shapes, error words, inspect's keys and values,
diff lines, the tables and templates — except where a difference is named below.

Two tables name what may differ, each entry with why:

* ``DIFFERENCES``: where labkit differs from Docker on purpose. A step that shows one must say so
  (``allow=``), and the difference must be the named one, recognised by a check of its own.
* ``DAEMON_WORDING``: where the dockerd this suite starts (Debian's docker.io, 20.10) words a refusal
  otherwise than the Docker 28 that labkit follows (moby v28.5, /work/shared/docs/SEMANTICS.md). The
  suite rewrites 20.10's words into 28's before comparing, so labkit is held to the current words.

The summary at the end of the run prints the parity table (tests/parity/conftest.py).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.parity.compare import DURATION, HEX12, HEX64, TIMESTAMP, Answer, Scenario, program_name

pytestmark = pytest.mark.root

#: Where labkit differs from Docker on purpose: name -> one-line justification.
DIFFERENCES: dict[str, str] = {
    "offline": "labkit never pulls: a missing image is refused in one sentence naming build/load instead of "
               "Docker's registry error (the lesson runs without a network).",
    "ports on 127.0.0.1": "a port published without an address binds 127.0.0.1, not 0.0.0.0 and ::, so a "
                          "learner's container is not reachable from the network by default (README).",
    "usage line": "a flag or argument that cannot be read gets one line naming it (Docker's first line, "
                  "then labkit's pointer to --help) instead of Docker's usage synopsis; the exit code is Docker's.",
    "state layout": "host paths in inspect (ResolvConfPath, LogPath, GraphDriver.Data, SandboxKey) lie under "
                    "labkit's own state root in its own layout; both name real files of the container.",
    "bridge subnet": "the two engines' bridges have different subnets (the suite's dockerd gets a private 10.N/16 "
                     "so both can run side by side); addresses are compared by their place in the subnet.",
    "lesson label": "labkit's lesson image carries org.labkit.lesson.inputs, a hash of its build inputs, so "
                    "'labkit setup' rebuilds it only when they change.",
    "image ids": "an image id is the digest of its config, which holds its creation time: the two engines' "
                 "images have different ids (normalised like container ids).",
    "runtime wrapping": "a start that fails is reported by labkit's own runtime in runc's core words "
                        "(exec: \"x\": executable file not found in $PATH), without containerd's and runc's "
                        "wrapping (failed to create shim task: OCI runtime create failed: …), which labkit does not run.",
    "bridge name": "NetworkSettings.Bridge names the container's bridge (the network picture draws it); "
                   "Docker leaves this deprecated field empty on its default network.",
    "stopped sandbox": "a stopped container's SandboxID and SandboxKey are empty: labkit removes the network "
                       "namespace when PID 1 ends, so there is no sandbox left to name.",
    "cgroup namespace": "every labkit container has a cgroup namespace of its own (CgroupnsMode private, "
                        "Docker's default on cgroup v2); Docker on a cgroup v1 host shares the host's (host).",
    "archive refusal": "load of what is not an image archive says so in labkit's sentence (the input is not a tar "
                       "archive) instead of Go's tar reader's (Error processing tar file(exit status 1): unexpected EOF).",
    "save missing image": "save of an image that is not there is refused as every other command refuses it (No such "
                          "image: REF), not in the tar exporter's 'reference does not exist'.",
    "group help": "a command group typed without its command (labkit network) shows labkit's own list of its "
                  "commands, on stderr with exit 0 as Docker's does, not Docker's words for Docker's commands.",
    "cgroup hierarchies": "on a cgroup v1 host labkit puts a container in the hierarchies whose limits and "
                          "counters it uses (memory, pids, cpu, cpuacct, freezer, devices, blkio), so its "
                          "/sys/fs/cgroup shows those; Docker also makes groups in cpuset and name=systemd.",
}

#: inspect keys one Docker has and the other not: key -> (which one has it, why).
DAEMON_KEYS: dict[str, tuple[str, str]] = {
    "KernelMemory": ("20.10", "removed from HostConfig in API 1.42 (Docker 23+)"),
    "KernelMemoryTCP": ("20.10", "removed from HostConfig in API 1.42 (Docker 23+)"),
    "DNSNames": ("28", "added to each endpoint in API 1.44 (Docker 25)"),
}

#: An endpoint's ``Aliases`` in 20.10 end with the container's short id, which API 1.45 (Docker 26) moved to
#: ``DNSNames``: Docker 28 lists only the aliases asked for (``--alias``, ``--network-alias``).
ALIASES_SHORT_ID = "the container's short id in Aliases (20.10; moved to DNSNames in API 1.45)"

#: image inspect keys only 20.10 has: key -> why Docker 28 has it not.
IMAGE_KEYS_GONE: dict[str, str] = {
    "Container": "removed from image inspect in API 1.45 (Docker 26)",
    "ContainerConfig": "removed from image inspect in API 1.45 (Docker 26)",
    "VirtualSize": "removed from image inspect in API 1.44 (Docker 25)",
    "DockerVersion": "empty and left out by Docker 26+ for images it did not build",
}

#: Masked paths newer Docker adds (moby oci/defaults.go), which 20.10 did not mask yet.
NEWER_MASKED = ("/proc/interrupts", "/sys/devices/virtual/powercap")

#: dockerd 20.10's words -> Docker 28's (which labkit follows): (pattern, replacement, where 28 says it).
DAEMON_WORDING: list[tuple[str, str, str]] = [
    (r"Container ([0-9a-f]{64}) is not running", r"container \1 is not running",
     "moby v24+ daemon/errors.go errNotRunning: 'container %s is not running'"),
    (r'You cannot remove a paused container ([0-9a-f]{64})\. Unpause and then stop the container before '
     r"attempting removal or force remove", r'cannot remove container "{arg}": container is paused and must be '
     r"unpaused first", "moby v25+ daemon/delete.go cleanupContainer"),
    (r"You cannot remove a running container ([0-9a-f]{64})\. Stop the container before attempting removal or "
     r"force remove", r'cannot remove container "{arg}": container is running: stop the container before '
     r"removing or force remove", "moby v25+ daemon/delete.go cleanupContainer"),
    (r"Invalid filter '", "invalid filter '", "moby v23+ daemon/list.go: errors start lower-case"),
]

_ARG: list[str] = [""]


def daemon_wording(text: str) -> str:
    """dockerd 20.10's error words rewritten to Docker 28's (``DAEMON_WORDING``)."""
    for pattern, repl, _ in DAEMON_WORDING:
        text = re.sub(pattern, repl.replace("{arg}", _ARG[0]), text)
    return text


def _last_arg(args: list[str]) -> None:
    _ARG[0] = args[-1] if args else ""


def assert_parity(sc: Scenario) -> None:
    """Every step matched, or showed only a difference it names and ``DIFFERENCES`` justifies."""
    for o in sc.outcomes:
        for name in o.named:
            assert name in DIFFERENCES, f"{name!r} is not in the table of named differences"
    bad = sc.unexplained()
    assert not bad, "labkit and docker differ:\n" + "\n".join(o.describe() for o in bad)


def usage_line(d: Answer, lk: Answer) -> bool:
    """Same exit code, nothing on stdout, and one line of labkit's naming the command and what it could not read
    (the flag, or the missing argument)."""
    flag = re.search(r'for "(-\w, )?(--[\w-]+)" flag|unknown flag: (--[\w-]+)', d.err)
    named = (flag.group(2) or flag.group(3)) in lk.err if flag else "required" in lk.err
    return (d.rc == lk.rc and d.out == lk.out == "" and lk.err.count("\n") == 1 and named
            and re.match(r"labkit \w+( \w+)?: ", lk.err) is not None)


def runtime_wrapping(d: Answer, lk: Answer) -> bool:
    """Docker's line is runc's core words wrapped by containerd's and runc's; labkit's is the core alone."""
    m = re.search(r"unable to start container process: (?:error during container init: )?(.*): unknown", d.err)
    return (d.rc == lk.rc and m is not None
            and lk.err.startswith(f"labkit: Error response from daemon: {m.group(1)}."))


def run(sc: Scenario, args: list[str], **kw: Any):
    _last_arg(args)
    return sc.step(args, **kw)


# --- the lesson's lifecycle ---------------------------------------------------------------------------

def test_lifecycle(both):
    """create/start/pause/unpause/stop/start/kill/rm and each refusal: same codes, same words, same states."""
    sc = both()
    state = ["inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.State.Paused}} {{.State.ExitCode}}", "web"]
    for args in (["create", "--name", "web", "busybox", "sleep", "300"], state,
                 ["pause", "web"], ["unpause", "web"], ["start", "web"], state, ["start", "web"],
                 ["pause", "web"], state, ["pause", "web"], ["start", "web"], ["rm", "web"], ["exec", "web", "true"],
                 ["unpause", "web"], state, ["rm", "web"], ["stop", "-t", "1", "web"], state,
                 ["unpause", "web"], ["kill", "web"], ["stop", "web"], ["start", "web"], ["kill", "web"], state,
                 ["ps", "-a", "--format", "{{.Names}} {{.Status}}"], ["restart", "-t", "1", "web"], state,
                 ["rm", "-f", "web"], ["rm", "web"], ["ps", "-a", "-q"]):
        run(sc, args)
    assert_parity(sc)


# --- the filesystem: write, diff, copy-up --------------------------------------------------------------

def test_filesystem(both):
    """A write, an append to an image file (copy-up), a delete (whiteout) and a new directory show in
    ``diff`` as Docker shows them, and survive stop/start."""
    sc = both()
    run(sc, ["run", "-d", "--name", "fs", "busybox", "sleep", "300"])
    run(sc, ["diff", "fs"])
    run(sc, ["exec", "fs", "sh", "-c", "echo hi > /tmp/new; echo x >> /etc/passwd; rm /etc/group; "
             "mkdir -p /var/www/site/img && touch /var/www/site/img/a.png; rm /bin/vi"])
    run(sc, ["diff", "fs"], out="lines")  # Docker's order is its walk's (Go map order), labkit's sorted
    run(sc, ["exec", "fs", "sh", "-c", "tail -1 /etc/passwd; ls /etc; cat /etc/group"])
    run(sc, ["stop", "-t", "0", "fs"])
    run(sc, ["diff", "fs"], out="lines")
    run(sc, ["start", "fs"])
    run(sc, ["exec", "fs", "cat", "/tmp/new"])
    run(sc, ["run", "--rm", "busybox", "cat", "/etc/group"])
    run(sc, ["rm", "-f", "fs"])
    assert_parity(sc)


# --- inspect of frontend-app ---------------------------------------------------------------------------

def _inspect_norm(text: str) -> Any:
    """inspect's JSON with what is each engine's own replaced: ids, times, PIDs, paths, the subnet."""
    text = HEX64.sub("<ID>", text)
    text = HEX12.sub("<ID12>", text)
    text = TIMESTAMP.sub(lambda m: "<ZERO>" if m.group(0).startswith("0001") else "<TIME>", text)
    data = json.loads(text)

    def walk(o: Any, key: str = "") -> Any:
        if isinstance(o, dict):
            return {k: walk(v, k) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v, key) for v in o]
        if isinstance(o, str) and o.startswith("/tmp/"):
            return "<PATH>"  # "state layout"
        if key in ("IPAddress", "Gateway") and o:
            return "<NET>." + o.split(".")[-1]  # "bridge subnet"
        if key == "MacAddress" and o:
            return "02:42:<NET>:" + o.split(":")[-1]
        if key == "IPPrefixLen" and o:
            return "<LEN>"
        if key == "Pid" and o:
            return "<PID>"
        if key == "HostPort" and o:
            return "<PORT>"
        return o

    return walk(data)


def _ports_on_loopback(d: dict, lk: dict) -> bool:
    """Docker binds 0.0.0.0 and ::, labkit 127.0.0.1 ("ports on 127.0.0.1")."""
    for key, binds in (d.get("NetworkSettings", {}).get("Ports") or {}).items():
        lk_binds = lk["NetworkSettings"]["Ports"].get(key)
        if binds and [b["HostIp"] for b in binds] == ["0.0.0.0", "::"]:
            if lk_binds != [{"HostIp": "127.0.0.1", "HostPort": binds[0]["HostPort"]}]:
                return False
            lk["NetworkSettings"]["Ports"][key] = binds
    return True


def _drop_version_keys(obj: Any) -> None:
    """Remove the keys only one of the two Dockers has (``DAEMON_KEYS``)."""
    if isinstance(obj, dict):
        for key in list(obj):
            if key in DAEMON_KEYS:
                del obj[key]
            else:
                _drop_version_keys(obj[key])
    elif isinstance(obj, list):
        for item in obj:
            _drop_version_keys(item)


def compare_inspect(sc: Scenario, name: str) -> list[str]:
    run(sc, ["inspect", name], out="ignore")
    d = _inspect_norm(sc.raw["docker"].out)[0]
    lk = _inspect_norm(sc.raw["labkit"].out)[0]
    named = []
    if not _ports_on_loopback(d, lk):
        return ["NetworkSettings.Ports: not the named 127.0.0.1 difference"]
    named.append("ports on 127.0.0.1")
    _drop_version_keys(d)
    _drop_version_keys(lk)
    lk["HostConfig"]["MaskedPaths"] = [p for p in lk["HostConfig"]["MaskedPaths"] if p not in NEWER_MASKED]
    if "org.labkit.lesson.inputs" in (lk["Config"].get("Labels") or {}):
        del lk["Config"]["Labels"]["org.labkit.lesson.inputs"]
        named.append("lesson label")
    if lk["NetworkSettings"]["Bridge"] and not d["NetworkSettings"]["Bridge"]:
        lk["NetworkSettings"]["Bridge"] = ""
        named.append("bridge name")
    if d["State"]["Status"] == "exited" and not lk["NetworkSettings"]["SandboxID"]:
        for key in ("SandboxID", "SandboxKey"):
            lk["NetworkSettings"][key] = d["NetworkSettings"][key]
        named.append("stopped sandbox")
    if (d["HostConfig"]["CgroupnsMode"], lk["HostConfig"]["CgroupnsMode"]) == ("host", "private"):
        lk["HostConfig"]["CgroupnsMode"] = "host"
        named.append("cgroup namespace")
    from tests.parity.compare import json_diff

    diffs = json_diff(d, lk)
    sc.outcomes[-1].differences += diffs
    sc.outcomes[-1].named += named + ["state layout", "bridge subnet"]
    return diffs


def test_inspect_frontend_app(both):
    """inspect of the lesson's frontend-app, running and stopped: the same keys, the same values."""
    sc = both()
    run(sc, ["run", "-d", "--name", "frontend-app", "-p", "3000", "-e", "NODE_ENV=production",
             "frontend-app:v2.1.0"])
    time.sleep(1)
    compare_inspect(sc, "frontend-app")
    run(sc, ["stop", "frontend-app"])
    compare_inspect(sc, "frontend-app")
    run(sc, ["inspect", "-f", "{{.HostConfig.NetworkMode}} {{json .NetworkSettings.Ports}} {{.Config.Env}}",
             "frontend-app"])
    run(sc, ["rm", "frontend-app"])
    assert_parity(sc)


# --- errors -------------------------------------------------------------------------------------------

def _offline(d: Answer, lk: Answer) -> bool:
    return (d.rc == lk.rc == 125 and d.err.splitlines()[0] == lk.err.splitlines()[0]
            and "works offline" in lk.err)


def test_errors(both):
    """No such container or image, a name in use, removing a running container: Docker's words and codes."""
    sc = both()
    for args in (["rm", "nosuch"], ["stop", "nosuch"], ["logs", "nosuch"], ["inspect", "nosuch"],
                 ["exec", "nosuch", "true"], ["create", "--name", "taken", "busybox"],
                 ["create", "--name", "taken", "busybox"], ["start", "taken", "nosuch"], ["rm", "taken"],
                 ["run", "-d", "--name", "busy", "busybox", "sleep", "300"], ["rm", "busy"],
                 ["run", "--name", "busy", "busybox", "true"], ["rm", "-f", "busy"],
                 ["run", "busybox", "nosuchcommand"], ["run", "busybox", "/etc"],
                 ["ps", "--filter", "status=bogus"]):
        run(sc, args, allow={"runtime wrapping": runtime_wrapping})
    run(sc, ["run", "nosuchimage"], allow={"offline": _offline})
    for args in (["run", "--bogus", "busybox"], ["ps", "--bogus"], ["ps", "-n", "x"], ["stop", "-t", "x", "web"],
                 ["run", "-m", "abc", "busybox"], ["rm"], ["run"]):
        run(sc, args, allow={"usage line": usage_line})
    assert_parity(sc)


# --- formats: ps, images, logs, --format ---------------------------------------------------------------

def test_formats(both):
    """ps's and images' tables, ps filters and ordering, logs, and Go templates print as Docker prints them."""
    sc = both()
    # The pause keeps the two streams' lines in one order: each engine copies stdout and stderr apart.
    run(sc, ["run", "--name", "first", "busybox", "sh", "-c", "echo one >> /tmp/x && echo two; sleep 0.3; echo err >&2"])
    run(sc, ["run", "-d", "--name", "second", "busybox", "sleep", "300"])
    run(sc, ["create", "--name", "third", "busybox", "echo", "a&&b", ">>", "c"])
    for args in (["ps"], ["ps", "-a"], ["ps", "-a", "--no-trunc"], ["ps", "-q"], ["ps", "-aq"], ["ps", "-l"],
                 ["ps", "-n", "2"], ["ps", "--filter", "status=exited"], ["ps", "--filter", "status=created"],
                 ["ps", "-a", "--filter", "name=sec"], ["ps", "-a", "--format", "{{.Names}}\t{{.Command}}"],
                 ["ps", "-a", "--format", "table {{.Names}}\t{{.Status}}"],
                 ["ps", "-a", "--format", "{{json .Names}}"], ["ps", "--format", "{{.Bogus}}"],
                 ["images", "--format", "{{.ID}} {{.Nope}}"],
                 ["logs", "first"], ["logs", "--tail", "1", "first"],
                 ["inspect", "-f", "{{.Name}} {{.State.Status}} {{.Config.Cmd}} {{json .Config.Cmd}}", "first"],
                 ["inspect", "-f", "{{range .Config.Env}}{{.}};{{end}}", "second"],
                 ["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"],
                 ["inspect", "-f", "{{.Config.Cmd}} {{.Config.Env}} {{.Config.WorkingDir}} {{.Config.ExposedPorts}}",
                  "frontend-app:v2.1.0"]):
        run(sc, args)
    run(sc, ["images"], out="ignore")
    d, lk = sc.raw["docker"].out.splitlines(), sc.raw["labkit"].out.splitlines()
    assert d[0].split() == lk[0].split(), "images' header"
    assert [re.split(r"\s{2,}", row)[:2] for row in d[1:]] == [re.split(r"\s{2,}", row)[:2] for row in lk[1:]]
    run(sc, ["rm", "-f", "first", "second", "third"])
    assert_parity(sc)


# --- inside a container --------------------------------------------------------------------------------

def _fewer_hierarchies(d: Answer, lk: Answer) -> bool:
    """labkit's /sys/fs/cgroup lists the hierarchies it made the container's groups in, all of them Docker's."""
    mine, docker = set(lk.out.split()), set(d.out.split())
    return d.rc == lk.rc == 0 and bool(mine) and mine < docker and docker - mine <= {"blkio", "cpuset", "systemd",
                                                                                     "net_cls", "net_prio",
                                                                                     "hugetlb", "perf_event", "rdma",
                                                                                     "misc"}


def test_inside_a_container(both):
    """What a process sees inside: its environment, /etc/hosts, and its cgroup under /sys/fs/cgroup."""
    sc = both()
    run(sc, ["run", "--rm", "-e", "A=1", "busybox", "sh", "-c", "env | sort | grep -v HOSTNAME; echo $HOSTNAME | wc -c"])
    run(sc, ["run", "--rm", "busybox", "sh", "-c", "grep -v \"$HOSTNAME\" /etc/hosts"])
    run(sc, ["run", "--rm", "busybox", "sh", "-c", "grep -c \"\t$HOSTNAME$\" /etc/hosts"])
    run(sc, ["run", "--rm", "busybox", "sh", "-c", "ls -l /etc/mtab | sed 's/.* -> //'"])
    run(sc, ["run", "--rm", "-m", "64m", "--pids-limit", "50", "busybox", "sh", "-c",
             "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null "
             "|| cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"])
    run(sc, ["run", "--rm", "busybox", "sh", "-c", "echo 1 > /sys/fs/cgroup/pids/pids.max || echo refused"])
    run(sc, ["run", "--rm", "busybox", "sh", "-c", "touch /sys/fs/cgroup/x && echo writable"])
    run(sc, ["run", "--rm", "busybox", "ls", "/sys/fs/cgroup"], allow={"cgroup hierarchies": _fewer_hierarchies})
    assert_parity(sc)


def test_program_name_normalisation():
    """The suite reads Docker's ``docker:`` as labkit's ``labkit:`` and nothing else."""
    assert program_name("docker: Error\nRun 'docker run --help'") == "labkit: Error\nRun 'labkit run --help'"
    assert program_name("dockerd is fine") == "dockerd is fine"


# --- cp ------------------------------------------------------------------------------------------------

def test_cp(both, tmp_path):
    """cp both ways, into a running and a stopped container, with the copy-up in diff; its refusals."""
    sc = both()
    src = tmp_path / "note.txt"
    src.write_text("a note\n")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "inner.txt").write_text("inner\n")
    run(sc, ["run", "-d", "--name", "box", "busybox", "sleep", "300"])
    run(sc, ["cp", str(src), "box:/tmp/note.txt"])
    run(sc, ["cp", str(tmp_path / "tree"), "box:/srv"])
    run(sc, ["exec", "box", "sh", "-c", "cat /tmp/note.txt /srv/inner.txt; ls -l /tmp/note.txt | cut -c1-10"])
    sc.step(["cp", "box:/etc/passwd", str(tmp_path / "out-passwd")])
    run(sc, ["stop", "-t", "0", "box"])
    run(sc, ["cp", str(src), "box:/etc/passwd"])
    run(sc, ["diff", "box"], out="lines")
    run(sc, ["start", "box"])
    run(sc, ["exec", "box", "cat", "/etc/passwd"])
    run(sc, ["cp", "box:/nosuch", str(tmp_path / "x")])
    run(sc, ["cp", str(tmp_path / "nosuch"), "box:/tmp/"])
    run(sc, ["cp", "nosuchbox:/etc/passwd", str(tmp_path / "x")])
    run(sc, ["rm", "-f", "box"])
    assert (tmp_path / "out-passwd").read_text().startswith("root:")
    assert_parity(sc)


# --- the other everyday commands -----------------------------------------------------------------------

def test_port_rename_top(both):
    """port, rename and top's table, and the groups (container ls, image ls) Docker's CLI offers."""
    sc = both()
    run(sc, ["run", "-d", "--name", "web", "-p", "127.0.0.1::3000", "frontend-app:v2.1.0"])
    run(sc, ["port", "web"], out="ignore")
    d, lk = sc.raw["docker"].out, sc.raw["labkit"].out
    assert re.sub(r":\d+", ":<PORT>", d) == re.sub(r":\d+", ":<PORT>", lk), (d, lk)
    run(sc, ["rename", "web", "web2"])
    run(sc, ["rename", "web", "web3"])
    run(sc, ["container", "ls", "--format", "{{.Names}} {{.Image}}"])
    run(sc, ["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
    run(sc, ["top", "web2"], out="ignore")
    d_head, lk_head = sc.raw["docker"].out.splitlines()[0], sc.raw["labkit"].out.splitlines()[0]
    assert d_head.split() == lk_head.split(), (d_head, lk_head)
    run(sc, ["rm", "-f", "web2"])
    run(sc, ["top", "web2"])
    assert_parity(sc)


# --- terminals: run -it, exec -it, detach ----------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")


def _transcript(argv: list[str], env: dict[str, str], typed: list[tuple[str, str]]) -> tuple[int | None, str]:
    """Drive ``argv`` in a new pseudo-terminal (80x24): wait for each prompt, type each line; return the
    exit code and what the terminal showed, escape sequences dropped and ids normalised."""
    import io

    import pexpect

    child = pexpect.spawn(argv[0], argv[1:], env=env, dimensions=(24, 80), timeout=60, encoding="utf-8",
                          codec_errors="replace")
    shown = io.StringIO()
    child.logfile_read = shown
    try:
        for prompt, line in typed:
            if prompt:
                child.expect(prompt)
            else:  # nothing shows before the keys: wait until the client has made the terminal raw, or the
                _raw(child)  # line discipline itself would echo a key typed before then (an extra line)
            child.send(line)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    code = child.exitstatus if child.exitstatus is not None else child.signalstatus
    text = ANSI.sub("", shown.getvalue()).replace("\r\n", "\n")
    return code, HEX12.sub("<ID12>", HEX64.sub("<ID>", "\n".join(_screen_line(line) for line in text.split("\n"))))


def _raw(child, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    """Wait until the program on ``child``'s terminal has turned its echo and line editing off (as ``attach``
    does before it forwards keys), at most ``timeout`` seconds."""
    import termios
    import time

    deadline = time.monotonic() + timeout
    while termios.tcgetattr(child.child_fd)[3] & (termios.ECHO | termios.ICANON) and time.monotonic() < deadline:
        time.sleep(0.01)


def _screen_line(line: str) -> str:
    """A line as the terminal shows it: a carriage return moves back to column 0 and what follows overwrites
    (a shell redrawing its prompt after a resize leaves the same line on the screen)."""
    cells: list[str] = []
    col = 0
    for ch in line:
        if ch == "\r":
            col = 0
            continue
        if col < len(cells):
            cells[col] = ch
        else:
            cells.append(ch)
        col += 1
    return "".join(cells)


def test_terminal(dockerd, lesson_images, engine, served):
    """``run -it``, ``exec -it`` and detaching with Ctrl-P Ctrl-Q show the same screen and end with the same
    codes under docker and labkit."""
    from tests.parity.conftest import REPO

    lk = ["sh", str(REPO / "bin" / "labkit")]
    dk = [dockerd.cli]
    sessions = {
        "run -it": (["run", "-it", "--rm", "busybox", "sh"],
                    [(r"/ # ", "hostname; echo $TERM; tty; stty size; exit 3\r")]),
        "exec -it": (["exec", "-it", "tbox", "sh"],
                     [(r"/ # ", "echo $HOSTNAME; tty; tr '\\0' ' ' < /proc/1/cmdline; echo; exit\r")]),
        "attach, detach": (["attach", "dbox"], [(r"", "\r"), (r"/ # ", "\x10\x11")]),
        "exec -it, detach": (["exec", "-it", "tbox", "sh", "-c", "echo ready; exec sleep 200"],
                             [(r"ready", "\x10\x11")]),
        "start -ai, detach": (["start", "-ai", "cbox"], [(r"/ # ", "\x10\x11")]),
        "run -it, detach": (["run", "-it", "--name", "rbox", "busybox", "sh"], [(r"/ # ", "\x10\x11")]),
    }
    results: dict[str, dict[str, tuple[int | None, str]]] = {}
    for who, prog, env in (("docker", dk, dockerd.env), ("labkit", lk, served)):
        def call(*args: str, prog: list[str] = prog, env: dict[str, str] = env) -> None:
            import subprocess

            done = subprocess.run([*prog, *args], env=env, capture_output=True, timeout=60)
            assert done.returncode == 0, done.stderr

        call("run", "-d", "--name", "tbox", "busybox", "sleep", "300")
        call("run", "-dit", "--name", "dbox", "busybox", "sh")
        call("create", "-it", "--name", "cbox", "busybox", "sh")
        results[who] = {name: _transcript([*prog, *args], env, typed) for name, (args, typed) in sessions.items()}
        call("inspect", "-f", "{{.State.Running}}", "dbox")
        call("rm", "-f", "tbox", "dbox", "cbox", "rbox")
    from tests.parity.compare import Outcome, Step
    from tests.parity.conftest import OUTCOMES

    table = Scenario("terminal", dockerd.docker, dockerd.docker, ([], []), daemon_wording)  # for the summary only
    for name, (args, _) in sessions.items():
        (d_code, d_screen), (lk_code, lk_screen) = results["docker"][name], results["labkit"][name]
        table.outcomes.append(Outcome(Step(args), Answer(d_code or 0, d_screen, ""), Answer(lk_code or 0, lk_screen, ""),
                                      [] if (d_code, d_screen) == (lk_code, lk_screen) else ["screen or code"]))
    OUTCOMES["terminal"] = table
    differ = {name: (results["docker"][name], results["labkit"][name]) for name in sessions
              if results["docker"][name] != results["labkit"][name]}
    assert not differ, "\n".join(f"{n}:\n  docker {d!r}\n  labkit {lk!r}" for n, (d, lk) in differ.items())


# --- images: commit/history, save/load, export/import, tag/rmi ----------------------------------------

def _cells(text: str, rows: int) -> list[list[str]]:
    """A table's first ``rows`` lines as cells (columns are two or more spaces apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()[:rows]]


def test_commit_history(both):
    """A container writes a file and deletes one; commit with -m and -c makes an image whose history's top row
    is that layer, whose inspect says the change, and in which a new container sees the file and the whiteout."""
    sc = both()
    run(sc, ["run", "--name", "writer", "busybox", "sh", "-c", "echo made > /new.txt; rm /etc/group"])
    run(sc, ["diff", "writer"], out="lines")
    run(sc, ["commit", "-m", "a change", "-c", 'CMD ["cat", "/new.txt"]', "writer", "snap:1"])
    run(sc, ["history", "snap:1"], out="ignore")
    d, lk = sc.raw["docker"].out, sc.raw["labkit"].out
    assert _cells(d, 1) == _cells(lk, 1) and len(_cells(d, 2)) == len(_cells(lk, 2)) == 2, (d, lk)
    # the new layer's row, after its id; its age is each engine's own moment ("1 second ago", "Less than a second ago")
    assert [DURATION.sub("<DUR>", c) for c in _cells(d, 2)[1][1:]] == \
        [DURATION.sub("<DUR>", c) for c in _cells(lk, 2)[1][1:]], (d, lk)
    run(sc, ["history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "snap:1"], out="ignore")
    assert sc.raw["docker"].out.splitlines()[0] == sc.raw["labkit"].out.splitlines()[0]
    run(sc, ["history", "-q", "snap:1"], out="ignore")
    for who in ("docker", "labkit"):
        assert re.fullmatch(r"[0-9a-f]{12}", sc.raw[who].out.splitlines()[0]), sc.raw[who].out
    run(sc, ["inspect", "-f", "{{.Comment}} {{.Config.Cmd}} {{.Config.Env}} {{.Os}}/{{.Architecture}} "
             "{{len .RootFS.Layers}}", "snap:1"], out="ignore")
    d_words, lk_words = sc.raw["docker"].out.split(), sc.raw["labkit"].out.split()
    assert d_words[:-1] == lk_words[:-1], (d_words, lk_words)
    run(sc, ["image", "inspect", "snap:1"], out="ignore")
    d_keys = set(json.loads(sc.raw["docker"].out)[0]) - set(IMAGE_KEYS_GONE)
    lk_keys = set(json.loads(sc.raw["labkit"].out)[0])
    assert d_keys <= lk_keys, f"image inspect lacks {sorted(d_keys - lk_keys)}"
    run(sc, ["run", "--rm", "snap:1"])
    run(sc, ["run", "--rm", "snap:1", "sh", "-c", "cat /etc/group || echo gone; ls /etc | grep -c group"])
    run(sc, ["run", "--name", "w2", "snap:1", "true"])
    run(sc, ["diff", "w2"])
    run(sc, ["rm", "writer", "w2"])
    run(sc, ["rmi", "snap:1"], fresh=True)
    assert_parity(sc)


def _archive_refusal(d: Answer, lk: Answer) -> bool:
    return d.rc == lk.rc == 1 and d.out == lk.out == "" and "not a tar archive" in lk.err


def _save_missing(d: Answer, lk: Answer) -> bool:
    return (d.rc == lk.rc == 1 and "reference does not exist" in d.err
            and lk.err.startswith("Error response from daemon: No such image: nosuch:1."))


def test_save_load(both, tmp_path):
    """labkit's save loads into Docker and runs there; Docker's save loads into labkit and runs there; both
    list the loaded image alike."""
    sc = both()
    run(sc, ["run", "--name", "saver", "busybox", "sh", "-c", "echo saved > /s.txt; rm /etc/group"])
    run(sc, ["commit", "-c", 'CMD ["cat", "/s.txt"]', "saver", "moved:1"])
    run(sc, ["rm", "saver"])
    run(sc, ["save", "-o", str(tmp_path / "{who}.tar"), "moved:1"])
    run(sc, ["rmi", "moved:1"], out="lines")
    run(sc, ["load", "-i", str(tmp_path / "{other}.tar")])  # each engine loads the other's archive
    run(sc, ["images", "--format", "{{.Repository}}:{{.Tag}}", "moved"])
    run(sc, ["run", "--rm", "moved:1"])
    run(sc, ["run", "--rm", "moved:1", "sh", "-c", "cat /etc/group || echo gone"])
    run(sc, ["history", "--format", "{{.CreatedBy}}", "moved:1"], out="ignore")
    assert sc.raw["docker"].out.splitlines()[0] == sc.raw["labkit"].out.splitlines()[0]
    run(sc, ["load"], input=b"not a tar", allow={"archive refusal": _archive_refusal})
    run(sc, ["save", "nosuch:1"], allow={"save missing image": _save_missing})
    run(sc, ["rmi", "moved:1"], out="ignore")
    # What else goes with the image depends on which layers each engine shares with its own busybox.
    assert sc.raw["docker"].out.splitlines()[0] == sc.raw["labkit"].out.splitlines()[0] == "Untagged: moved:1"
    assert sc.raw["labkit"].out.splitlines()[1].startswith("Deleted: sha256:")
    assert_parity(sc)


def _tar_listing(path: Any) -> dict[str, tuple[Any, ...]]:
    """Each entry of a tar: its type, permissions, owner ids, size and link target (times are each engine's own;
    Go's tar writer also puts the file type's bits in the mode field, which tar(1) ignores)."""
    import stat
    import tarfile

    with tarfile.open(path) as tar:
        return {t.name.rstrip("/"): (t.type, stat.S_IMODE(t.mode), t.uid, t.gid, t.size, t.linkname)
                for t in tar.getmembers()}


def test_export_import(both, tmp_path):
    """export writes a container's files as one tar, entry for entry as Docker's (its init layer's /.dockerenv,
    /dev/console and empty /etc placeholders included); import makes an image of it with -c and -m."""
    sc = both()
    # /who.txt holds the engine's name (both six letters): the two exports differ in content as well as in
    # their times, so each engine's second import is a layer of its own even when both ran in the same second
    run(sc, ["run", "--name", "exporter", "busybox", "sh", "-c", "echo exported > /e.txt; echo {who} > /who.txt; "
                                                                 "rm /etc/group"])
    run(sc, ["export", "-o", str(tmp_path / "{who}.tar"), "exporter"])
    listing = {who: _tar_listing(tmp_path / f"{who}.tar") for who in ("docker", "labkit")}
    assert listing["docker"] == listing["labkit"], (sorted(set(listing["docker"].items()) ^
                                                           set(listing["labkit"].items())))
    run(sc, ["import", "-c", 'CMD ["cat", "/e.txt"]', "-m", "from a tar", str(tmp_path / "{who}.tar"), "flat:1"])
    run(sc, ["run", "--rm", "flat:1"])
    run(sc, ["run", "--rm", "flat:1", "sh", "-c", "cat /etc/group || echo gone"])
    run(sc, ["history", "--format", "{{.CreatedBy}}|{{.Comment}}", "flat:1"])
    run(sc, ["inspect", "-f", "{{.Comment}} {{.Config.Cmd}} {{len .RootFS.Layers}}", "flat:1"])
    run(sc, ["import", str(tmp_path / "{other}.tar"), "flat:2"])  # each engine imports the other's export
    run(sc, ["run", "--rm", "flat:2", "cat", "/e.txt"])
    run(sc, ["export", "nosuch"])
    run(sc, ["import", str(tmp_path / "nosuch.tar")])
    run(sc, ["rm", "exporter"])
    run(sc, ["rmi", "flat:1", "flat:2"], out="lines")
    assert_parity(sc)


def test_tag_rmi(both):
    """tag and rmi, and rmi's refusals: an image a container uses, a name that is not there."""
    sc = both()
    run(sc, ["tag", "busybox", "mine:1"])
    run(sc, ["tag", "mine:1", "mine:2"])
    run(sc, ["images", "--format", "{{.Repository}}:{{.Tag}}", "mine"])
    run(sc, ["rmi", "mine:2"])
    run(sc, ["run", "--name", "dep", "busybox", "sh", "-c", "echo x > /x"])
    run(sc, ["commit", "dep", "used:1"])
    run(sc, ["create", "--name", "user", "used:1"])
    run(sc, ["rmi", "used:1"])
    run(sc, ["tag", "used:1", "used:2"])
    run(sc, ["rmi", "used:2"])
    run(sc, ["run", "-d", "--name", "runner", "used:1", "sleep", "300"])
    run(sc, ["rmi", "-f", "used:1"])
    run(sc, ["rm", "-f", "user", "runner", "dep"])
    run(sc, ["rmi", "used:1"], out="lines")
    run(sc, ["rmi", "mine:1"])
    run(sc, ["rmi", "nosuch"])
    run(sc, ["tag", "nosuch", "x:1"])
    run(sc, ["tag", "busybox", "Bad:Name"])
    run(sc, ["images", "--format", "{{.Repository}}:{{.Tag}}"], out="lines")
    assert_parity(sc)


# --- images: rmi's lines and conflicts, image prune, system df, images --digests --------------------------

def _learn_id(sc: Scenario, name: str, ref: str) -> None:
    """Each engine's id of ``ref`` as ``{name}`` in later steps (their ids differ: "image ids")."""
    run(sc, ["inspect", "-f", "{{.Id}}", ref])
    for who in ("docker", "labkit"):
        sc.vars[who][name] = sc.raw[who].out.strip()[7:19]


def test_rmi_lines(both):
    """rmi as Docker's graph-driver store answers: one of several tags is untagged; an id with tags in several
    repositories must be forced, and then every tag goes; the Deleted lines name the image, then each layer it
    alone stacked by its chain id, then an untagged parent nothing else uses (--no-prune keeps it); -f of an
    image a stopped container uses deletes the image, the container still starts, and ps shows the image id."""
    sc = both()
    run(sc, ["run", "--name", "w1", "busybox", "sh", "-c", "echo a > /a"])
    run(sc, ["commit", "w1", "l2:1"])
    run(sc, ["run", "--name", "w2", "l2:1", "sh", "-c", "echo b > /b"])
    run(sc, ["commit", "w2", "l3:1"])
    run(sc, ["rm", "w1", "w2"])
    run(sc, ["tag", "l3:1", "l3:2"])
    run(sc, ["tag", "l3:1", "other:1"])
    run(sc, ["rmi", "l3:1"])
    _learn_id(sc, "l3", "l3:2")
    run(sc, ["rmi", "{l3}"])
    run(sc, ["rmi", "-f", "{l3}"], fresh=True)
    run(sc, ["create", "--name", "user", "l2:1"])
    run(sc, ["rmi", "l2:1"])
    run(sc, ["rmi", "-f", "l2:1"])
    run(sc, ["images", "--format", "{{.Repository}}:{{.Tag}}", "l2"])
    run(sc, ["ps", "-a", "--filter", "name=user", "--format", "{{.Names}} {{.Image}}"])
    run(sc, ["start", "-a", "user"])
    run(sc, ["rm", "user"])
    for prune in ([], ["--no-prune"]):
        run(sc, ["run", "--name", "w3", "busybox", "sh", "-c", f"echo c{len(prune)} > /c"])
        run(sc, ["commit", "w3", "p:1"])
        run(sc, ["run", "--name", "w4", "p:1", "sh", "-c", "echo d > /d"])
        run(sc, ["commit", "w4", "c:1"])
        run(sc, ["rm", "w3", "w4"])
        run(sc, ["rmi", "p:1"])
        run(sc, ["rmi", *prune, "c:1"], fresh=True)
        run(sc, ["images", "-a", "--filter", "dangling=true", "--format", "{{.Repository}}:{{.Tag}}"])
        if prune:  # dockerd deletes in the order of a Go map, which differs from run to run
            run(sc, ["image", "prune", "-f"], out="lines")
    run(sc, ["rmi", "0123456789ab"])
    assert_parity(sc)


def test_image_prune_df_digests(both):
    """image prune: the prompt, a no, the dangling image alone, then -a's every image no container uses, in
    Docker's lower-case lines with the bytes reclaimed; system df's table, its --format and -v's sections;
    images --digests."""
    sc = both()
    run(sc, ["create", "--name", "keep1", "busybox"], out="ignore")
    run(sc, ["create", "--name", "keep2", "frontend-app:v2.1.0"], out="ignore")
    run(sc, ["image", "prune", "-a", "-f"], out="ignore")  # what earlier scenarios left; both keep the two in use
    run(sc, ["run", "--name", "w1", "busybox", "sh", "-c", "echo x > /x"])
    run(sc, ["commit", "w1", "snap:1"])
    run(sc, ["commit", "w1"])
    run(sc, ["rm", "w1"])
    run(sc, ["images", "--filter", "dangling=true", "--format", "{{.Repository}}:{{.Tag}}"])
    run(sc, ["image", "prune"], input=b"n\n")
    run(sc, ["image", "prune", "-f"], out="lines")  # in the order of a Go map on dockerd's side
    run(sc, ["image", "prune", "-f"])
    run(sc, ["image", "prune", "-a"], input=b"y\n", fresh=True)
    run(sc, ["images", "--digests", "busybox"])
    run(sc, ["images", "--digests", "--format", "{{.Repository}} {{.Digest}}", "busybox"])
    run(sc, ["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"], out="ignore")
    assert sc.raw["docker"].out.splitlines()[:2] == sc.raw["labkit"].out.splitlines()[:2], sc.raw
    run(sc, ["system", "df"], out="ignore")
    d, lk = sc.raw["docker"].out.splitlines(), sc.raw["labkit"].out.splitlines()
    assert _cells(sc.raw["docker"].out, 1) == _cells(sc.raw["labkit"].out, 1), (d, lk)
    assert [row[:3] for row in _cells(sc.raw["docker"].out, 3)] == [row[:3] for row in _cells(sc.raw["labkit"].out, 3)]
    assert d[2].split()[-1] == lk[2].split()[-1] == "0B", "a created container's writable layer is empty"
    run(sc, ["system", "df", "--format", "json"], out="ignore")
    d_rows = [json.loads(line) for line in sc.raw["docker"].out.splitlines()]
    lk_rows = [json.loads(line) for line in sc.raw["labkit"].out.splitlines()]
    assert [list(r) for r in d_rows] == [list(r) for r in lk_rows] and [r["Type"] for r in d_rows] == \
        [r["Type"] for r in lk_rows]
    run(sc, ["system", "df", "-v"], out="ignore")
    heads = [[line for line in sc.raw[who].out.splitlines() if line.endswith(":") or line.startswith(
        ("REPOSITORY", "CONTAINER ID", "VOLUME NAME", "CACHE ID", "Build cache"))] for who in ("docker", "labkit")]
    assert [re.split(r"\s{2,}", h) for h in heads[0]] == [re.split(r"\s{2,}", h) for h in heads[1]], heads
    run(sc, ["rm", "keep1", "keep2"])
    assert_parity(sc)


def _group_help(d: Answer, lk: Answer) -> bool:
    """Docker's and labkit's group help: exit 0, nothing on stdout, the help on stderr."""
    return (d.rc == lk.rc == 0 and d.out == lk.out == "" and "Usage:  labkit " in d.err
            and lk.err.startswith("usage: labkit "))


def test_caps_groups_and_group_help(both):
    """--cap-add/--cap-drop of no capability: the daemon's refusal and Docker's exit codes; root's and a user's
    supplementary groups from the image's /etc/group; a group without its command shows help, exit 0."""
    sc = both()
    run(sc, ["run", "--rm", "--cap-add", "FOO", "busybox", "true"])
    run(sc, ["create", "--cap-drop", "CAP_FOO", "busybox"])
    run(sc, ["run", "--rm", "busybox", "id"])
    run(sc, ["run", "--rm", "-u", "nobody", "busybox", "id"])
    run(sc, ["run", "--rm", "busybox", "grep", "Groups", "/proc/self/status"])
    for group in ("network", "image", "system", "volume", "container"):
        run(sc, [group], allow={"group help": _group_help})


# --- network connect / disconnect ----------------------------------------------------------------------

def _drop_short_id_aliases(settings: dict) -> None:
    """20.10's Aliases without the short id it adds to every user network's endpoint (``ALIASES_SHORT_ID``):
    what the client sent, which Docker 28 keeps as sent: null for the network ``run`` put the container on
    (its ``IPAMConfig`` is null too), the ``--alias`` list, even empty, for one it joined with ``network connect``."""
    for endpoint in (settings.get("Networks") or {}).values():
        if endpoint.get("Aliases"):
            sent = [a for a in endpoint["Aliases"] if a != "<ID12>"]
            endpoint["Aliases"] = sent if sent or endpoint.get("IPAMConfig") is not None else None


def compare_network_settings(sc: Scenario, name: str) -> list[str]:
    """inspect's NetworkSettings of ``name`` on both engines, compared as :func:`compare_inspect` compares."""
    from tests.parity.compare import json_diff

    run(sc, ["inspect", name], out="ignore")
    d = _inspect_norm(sc.raw["docker"].out)[0]["NetworkSettings"]
    lk = _inspect_norm(sc.raw["labkit"].out)[0]["NetworkSettings"]
    _drop_version_keys(d)
    _drop_version_keys(lk)
    _drop_short_id_aliases(d)
    named = ["state layout", "bridge subnet"]
    if lk["Bridge"] and not d["Bridge"]:
        lk["Bridge"] = ""
        named.append("bridge name")
    diffs = json_diff(d, lk)
    sc.outcomes[-1].differences += diffs
    sc.outcomes[-1].named += named
    return diffs


def test_network_connect(both):
    """A running container joins a second and third network at once (the next ethN each, reached by name and
    alias from its peers, the default route through the network whose name sorts first), shows each in
    inspect, leaves one at once, and a stopped one joins for its next start; every refusal in Docker's words."""
    sc = both()
    ok = ">/dev/null 2>&1 && echo reached || echo unreached"
    for args in (["network", "create", "lkp-a"], ["network", "create", "lkp-b"],
                 ["run", "-d", "--name", "na", "--network", "lkp-a", "busybox", "sleep", "300"],
                 ["run", "-d", "--name", "nb", "--network", "lkp-b", "busybox", "sleep", "300"],
                 # Made now: inspect's output below names more ids on one side, after which ids number apart.
                 ["run", "-d", "--name", "nh", "--network", "host", "busybox", "sleep", "300"],
                 ["run", "-d", "--name", "nn", "--network", "none", "busybox", "sleep", "300"],
                 ["create", "--name", "ns", "busybox", "sleep", "300"],
                 ["exec", "nb", "ls", "/sys/class/net"],
                 ["network", "connect", "--alias", "front", "lkp-a", "nb"],
                 ["network", "connect", "bridge", "nb"],
                 ["network", "connect", "lkp-a", "nb"],
                 ["exec", "nb", "ls", "/sys/class/net"],
                 ["exec", "nb", "sh", "-c", "ip -o -4 addr | awk '{print $2, $4}' | sed 's/[0-9.]*[.]//'"],
                 ["exec", "nb", "sh", "-c", "ip route show default | awk '{print $5}'"],
                 ["exec", "nb", "sh", "-c", f"ping -c1 -W3 na {ok}"],
                 ["exec", "na", "sh", "-c", f"ping -c1 -W3 nb {ok}; ping -c1 -W3 front {ok}"],
                 ["network", "inspect", "-f", "{{len .Containers}}", "lkp-a"]):
        run(sc, args)
    compare_network_settings(sc, "nb")
    for args in (["network", "disconnect", "lkp-a", "nb"],
                 ["exec", "nb", "ls", "/sys/class/net"],
                 ["exec", "nb", "sh", "-c", "ip route show default | awk '{print $5}'"],
                 ["exec", "na", "sh", "-c", f"ping -c1 -W1 front {ok}"],
                 ["network", "disconnect", "lkp-a", "nb"],
                 ["network", "inspect", "-f", "{{len .Containers}}", "lkp-a"],
                 ["network", "connect", "none", "nb"], ["network", "connect", "host", "nb"],
                 ["network", "connect", "nosuch", "nb"], ["network", "connect", "lkp-a", "nosuch"],
                 ["network", "disconnect", "nosuch", "nb"], ["network", "disconnect", "lkp-a", "nosuch"],
                 ["network", "connect", "--alias", "x", "bridge", "na"],
                 ["network", "connect", "--ip", "10.1.2.3", "bridge", "na"],
                 ["network", "connect", "--ip", "10.1.2.3", "lkp-b", "na"],
                 ["network", "connect", "lkp-a", "nh"], ["network", "disconnect", "host", "nh"],
                 ["network", "connect", "lkp-a", "nn"],
                 ["network", "connect", "lkp-a", "ns"], ["network", "disconnect", "bridge", "ns"],
                 ["inspect", "-f", "{{.HostConfig.NetworkMode}} {{len .NetworkSettings.Networks}}", "ns"],
                 ["start", "ns"], ["exec", "ns", "ls", "/sys/class/net"],
                 ["exec", "ns", "sh", "-c", f"ping -c1 -W3 na {ok}"],
                 ["network", "disconnect", "lkp-a", "ns"],
                 ["exec", "ns", "ls", "/sys/class/net"],
                 ["inspect", "-f", "{{.HostConfig.NetworkMode}} {{len .NetworkSettings.Networks}}", "ns"],
                 ["rm", "-f", "na", "nb", "nh", "nn", "ns"], ["network", "rm", "lkp-a", "lkp-b"]):
        run(sc, args)
    for args in (["network", "connect", "lkp-a"], ["network", "disconnect"]):
        run(sc, args, allow={"usage line": usage_line})
    assert_parity(sc)


# --- attach without a terminal ---------------------------------------------------------------------------

def test_attach_without_terminal(both):
    """attach to a container run with -i and no terminal: what is piped in reaches its shell, its answers come
    back, and attach ends with its exit code; a stopped one is refused in Docker's client's words."""
    sc = both()
    # The shell reads all the input at once; its first command waits a second, by when either client relays
    # its output (Docker's loses what comes before, its output stream being attached after its input).
    for args, given in ((["run", "-di", "--name", "held", "busybox", "sh"], None),
                        (["attach", "held"], b"sleep 1; echo hello from $HOSTNAME; echo to stderr >&2\nexit 4\n"),
                        (["ps", "-a", "--format", "{{.Names}} {{.Status}}"], None),
                        (["attach", "held"], None),
                        (["inspect", "-f", "{{.Config.OpenStdin}} {{.Config.StdinOnce}} {{.State.ExitCode}}", "held"],
                         None),
                        (["rm", "held"], None)):
        run(sc, args, input=given)
    assert_parity(sc)
