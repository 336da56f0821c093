"""Real containers without root: the spine's scenarios, run by an unprivileged user the session creates.

Every scenario runs in a child process as ``labkit-learner`` (the ``learner``
fixture of ``tests/learner.py``: made with useradd, removed at the end) under
Debian's ``/usr/bin/python3`` with the repository on PYTHONPATH: the test's own
interpreter may live where that user cannot read. The user's id map is the
*single-id* map (``0 UID 1``) except in
:func:`test_subuid_range_maps_65536_ids`, which grants an ``/etc/subuid`` range
for its duration and checks the ``newuidmap`` map. The pause tests cover both
the SIGSTOP fallback (no delegated cgroup) and a delegated cgroup v2 subtree
(a directory of the unified hierarchy chowned to the user, as systemd does).
"""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest

from tests.learner import USER, run_as, subordinate_range
from tests.util import KERNEL_TAKES_LOWERDIR_PLUS, live_pids_of, root_overlay_lowers, scaled, wait_for

pytestmark = pytest.mark.root


def _unified() -> str | None:
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


def as_learner(learner, code: str, cgroup: str | None = None, timeout: float = 120, path: str | None = None) -> dict:
    """Run a scenario as the learner (see :func:`tests.learner.run_as`): the JSON object its last line prints."""
    return run_as(learner, _dedent(code), cgroup, timeout, path)


def _dedent(code: str) -> str:
    """The shared head (the prelude, and what a scenario adds to it) as it is, then the scenario's own indented
    block dedented."""
    head = next((h for h in (PRELUDE + SERVE_AND_FETCH, BUILD, PRELUDE) if code.startswith(h)), "")
    return head + textwrap.dedent(code[len(head):])


PRELUDE = """
import hashlib, json, os, sys, time
import labkit
from tests.util import scaled, tree_digest
lab = labkit.connect()


def state_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()


def state(pid):
    return state_fields(pid)[0]
"""


def test_auto_picks_rootless_and_says_why(learner):
    """As an unprivileged user `auto` picks the rootless backend, says why, and keeps its state in the user's home."""
    got = as_learner(learner, PRELUDE + """
    from labkit.engine import default_root
    print(json.dumps({"name": lab.backend_name, "why": lab.backend_reason, "root": str(lab.store.root),
                      "default": default_root(), "uid": os.getuid()}))
    """)
    assert got["name"] == "rootless"
    assert "not root" in got["why"] and "user namespace" in got["why"] and "single id" in got["why"]
    assert got["root"] == got["default"] == os.path.join(learner.pw_dir, ".local", "share", "labkit")


def test_rootless_state_follows_xdg_data_home(learner):
    """With $XDG_DATA_HOME set, the rootless state root is $XDG_DATA_HOME/labkit and the simulator's beside it."""
    got = as_learner(learner, """
    import json, os
    os.environ["XDG_DATA_HOME"] = os.path.join(os.environ["HOME"], "data")
    import labkit
    from labkit.engine import default_root
    lab = labkit.connect()
    print(json.dumps({"root": str(lab.store.root), "sim": default_root("sim"), "simulator": str(lab.simulator().store.root)}))
    """)
    data = os.path.join(learner.pw_dir, "data")
    assert got["root"] == os.path.join(data, "labkit")
    assert got["sim"] == got["simulator"] == os.path.join(data, "labkit", "sim")


def test_auto_as_root_picks_root(tmp_path):
    """As root `auto` picks the root backend and its state under /var/lib/labkit, a world apart from a user's."""
    import labkit
    from labkit.backends import DEFAULT_ROOT, default_root, linux_problem

    assert linux_problem() is None
    saved = os.environ.pop("LABKIT_ROOT", None)
    try:
        assert default_root() == DEFAULT_ROOT
    finally:
        if saved is not None:
            os.environ["LABKIT_ROOT"] = saved
    lab = labkit.connect(root=tmp_path)
    assert lab.backend_name == "linux" and lab.backend_reason.startswith("root")


def test_auto_without_user_namespaces_falls_back_to_the_simulator(learner):
    """With user namespaces switched off (a limit of 0 set in a namespace of the test's own), `auto` picks the simulator and says why."""
    got = as_learner(learner, """
    import json, os
    from labkit.linux import namespaces, syscalls
    uid, gid = os.getuid(), os.getgid()
    syscalls.unshare(namespaces.CLONE_NEWUSER)   # a namespace of our own: the host's limit is not touched
    for name, text in (("setgroups", "deny"), ("uid_map", f"1000 {uid} 1"), ("gid_map", f"1000 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")                               # user.max_user_namespaces=0, in this namespace only
    import labkit
    from labkit.engine import default_root
    lab = labkit.connect()
    print(json.dumps({"name": lab.backend_name, "why": lab.backend_reason, "root": default_root(),
                      "euid": os.geteuid()}))
    """)
    assert got["euid"] == 1000
    assert got["name"] == "sim"
    assert "switched off" in got["why"] and "needs root" in got["why"]
    assert got["root"].endswith("/labkit/sim")


def test_container_is_isolated_and_pid_one(learner):
    """A rootless container's namespaces (user included) all differ from its starter's; inside it is PID 1 and root."""
    got = as_learner(learner, PRELUDE + """
    names = ("user", "pid", "mnt", "uts", "ipc", "net", "cgroup")
    c = lab.run("busybox", ["sleep", "60"], detach=True, name="iso")
    info = c.inspect()
    pid = info["State"]["Pid"]
    host = {n: os.readlink(f"/proc/self/ns/{n}") for n in names}
    mine = {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in names}
    code, out = c.exec(["sh", "-c", "cat /proc/1/cmdline | tr '\\\\0' ' '; echo; id -u; cat /proc/self/uid_map"])
    merged = info["GraphDriver"]["Data"]["MergedDir"]
    seen_from_host = sorted(os.listdir(f"/proc/{pid}/root"))
    merged_mounted, merged_empty = os.path.ismount(merged), os.listdir(merged) == []
    one = lab.run("busybox", ["sh", "-c", "echo $$"])
    dollar = one.logs()
    parent = state_fields(pid)[1]
    supervisor = os.path.basename(os.readlink(f"/proc/{parent}/exe"))
    lab.rm("iso", force=True)
    lab.rm(one.id)
    print(json.dumps({"host": host, "mine": mine, "code": code, "out": out, "merged_mounted": merged_mounted,
                      "merged_empty": merged_empty, "root_seen": seen_from_host, "one": dollar,
                      "uid": os.getuid(), "supervisor": supervisor}))
    """)
    assert got["supervisor"].startswith("labkit-shim-"), "the C shim made the user namespace and PID 1"
    for kind in got["host"]:
        assert got["host"][kind] != got["mine"][kind], kind
    assert got["code"] == 0
    cmdline, uid_inside, uid_map = got["out"].splitlines()[:3]
    assert cmdline.strip() == "sleep 60" and uid_inside == "0"
    assert uid_map.split() == ["0", str(got["uid"]), "1"], "the single-id map"
    assert got["one"] == "1\n"
    assert not got["merged_mounted"] and got["merged_empty"], "the overlay is mounted only in the container's namespace"
    assert "bin" in got["root_seen"] and "etc" in got["root_seen"]


def test_copy_up_whiteouts_and_untouched_layers(learner):
    """Writes land in the user's upper dir by copy-up, deletions leave 0/0 whiteouts and user.overlay.opaque; the image layers' hashes do not change."""
    got = as_learner(learner, PRELUDE + """
    img = lab.images.get("busybox")
    before = [tree_digest(p, owners=True) for p in img.lowerdirs()]
    c = lab.run("busybox", ["sh", "-c", "echo changed >> /etc/passwd; rm /etc/group; rm -rf /usr; mkdir /usr; "
                            "mkdir /data; echo x > /data/new"], name="cow")
    upper = c.inspect()["GraphDriver"]["Data"]["UpperDir"]
    wh = os.lstat(os.path.join(upper, "etc/group"))
    passwd = os.lstat(os.path.join(upper, "etc/passwd"))
    opaque = os.getxattr(os.path.join(upper, "usr"), "user.overlay.opaque")
    after = [tree_digest(p, owners=True) for p in img.lowerdirs()]
    diff = lab.diff("cow")
    lab.rm("cow")
    print(json.dumps({"same": before == after, "wh_chr": (wh.st_mode & 0o170000) == 0o020000, "wh_rdev": wh.st_rdev,
                      "passwd_uid": passwd.st_uid, "uid": os.getuid(), "opaque": opaque.decode(),
                      "upper": upper, "upper_gone": not os.path.exists(upper),
                      "diff": [[d["Kind"], d["Path"]] for d in diff]}))
    """)
    assert got["same"], "image layers are unchanged"
    assert got["wh_chr"] and got["wh_rdev"] == 0, "the kernel made a 0/0 whiteout in the upper dir"
    assert got["passwd_uid"] == got["uid"], "the copy-up belongs to the user on the host"
    assert got["opaque"] == "y"
    assert got["upper"].startswith(learner.pw_dir) and got["upper_gone"]
    assert [2, "/etc/group"] in got["diff"] and [0, "/etc/passwd"] in got["diff"] and [1, "/data/new"] in got["diff"]


def test_stop_start_pause_rm_without_a_freezer(learner):
    """Without a delegated cgroup, pause stops every process with SIGSTOP and unpause resumes them; stop, start and rm behave."""
    got = as_learner(learner, PRELUDE + """
    c = lab.run("busybox", ["sh", "-c", "sleep 60 & wait"], detach=True, name="life")
    pid = c.inspect()["State"]["Pid"]
    from labkit.linux import freezer
    deadline = time.monotonic() + scaled(10)  # sh forks its sleep a moment after run -d returns
    while len(pids := freezer.namespace_pids(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    lab.pause("life")
    paused = [state(p) for p in pids], lab.inspect("life")["State"]["Status"]
    lab.unpause("life")
    resumed = [state(p) for p in pids]
    lab.stop("life", timeout=1)
    stopped = lab.inspect("life")["State"]
    lab.start("life")
    restarted = lab.inspect("life")["State"]
    code, out = c.exec(["echo", "again"])
    cdir = str(lab.store.container_dir(c.id))
    lab.rm("life", force=True)
    print(json.dumps({"n": len(pids), "paused": paused, "resumed": resumed, "stopped": [stopped["Status"], stopped["ExitCode"]],
                      "restarted": [restarted["Status"], restarted["Pid"] != pid], "exec": [code, out],
                      "gone": not os.path.exists(cdir) and not lab.ps(all=True)}))
    """)
    assert got["n"] == 2
    assert got["paused"] == [["T", "T"], "paused"]
    assert all(s in "SR" for s in got["resumed"])
    assert got["stopped"][0] == "exited" and got["stopped"][1] in (137, 143)
    assert got["restarted"] == ["running", True]
    assert got["exec"] == [0, "again\n"]
    assert got["gone"]


def test_limits_without_a_delegated_cgroup_are_discarded_with_a_warning(learner):
    """Without a delegated cgroup nothing enforces limits: the API warns, the CLI prints Docker's WARNING line,
    and inspect still shows what was asked."""
    got = as_learner(learner, PRELUDE + """
    import subprocess, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = lab.create("busybox", ["true"], memory="32m", pids_limit=20, name="budget")
    host = c.inspect()["HostConfig"]
    lab.rm("budget")
    cli = subprocess.run([sys.executable, "-m", "labkit", "run", "--rm", "--network", "none", "-m", "32m",
                          "busybox", "true"], capture_output=True, text=True, env={**os.environ, "LABKIT_NO_SERVER": "1"})
    print(json.dumps({"enforced": sorted(lab.enforced_limits), "kept": c.warnings,
                      "warned": [str(w.message) for w in caught if w.category is labkit.LimitDiscarded],
                      "asked": [host["Memory"], host["PidsLimit"]], "cli": [cli.returncode, cli.stderr]}))
    """)
    assert got["enforced"] == []
    assert got["warned"] == got["kept"] and len(got["kept"]) == 2
    assert got["kept"][0].startswith("memory limit discarded: no cgroup v2 subtree is delegated to this user")
    assert got["kept"][1].startswith("pids limit discarded:")
    assert got["asked"] == [32 * 2**20, 20]
    assert got["cli"][0] == 0 and got["cli"][1].startswith("WARNING: memory limit discarded:"), got["cli"]


def test_a_service_balances_and_heals_rootless(learner):
    """Rootless, each replica publishes its port on 127.0.0.1 through slirp4netns; the balancer reaches every
    replica there, and a killed one is replaced while no request fails."""
    got = as_learner(learner, PRELUDE + """
    import urllib.request
    from tests.util import scaled
    svc = lab.service_create("web", "frontend-app:v2.1.0", replicas=2, ports=["3000"])
    try:
        port = svc["Ports"][0]["HostPort"]
        def ask():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                return json.loads(answer.read())["hostname"]
        seen, deadline = set(), time.monotonic() + scaled(60)
        while len(seen) < 2 and time.monotonic() < deadline:
            try:
                seen.add(ask())
            except OSError:
                time.sleep(0.2)
        old = lab.inspect("web.1")["Id"]
        lab.kill("web.1")
        answered, failed, end = 0, [], time.monotonic() + 3
        while time.monotonic() < end:
            try:
                ask()
                answered += 1
            except OSError as err:
                failed.append(repr(err))
        replaced, deadline = False, time.monotonic() + scaled(30)
        while not replaced and time.monotonic() < deadline:
            try:
                now = lab.inspect("web.1")
                replaced = now["Id"] != old and now["State"]["Status"] == "running"
            except labkit.NoSuchContainer:
                pass
            time.sleep(0.2)
    finally:  # a failed step must not leave the service's controller and replicas to the next tests
        lab.service_rm("web")
    print(json.dumps({"seen": len(seen), "answered": answered, "failed": failed, "replaced": replaced,
                      "left": [c["Names"][0] for c in lab.ps(all=True)]}))
    """, timeout=180)
    assert got["seen"] == 2, "both replicas answered through the balancer"
    assert got["answered"] and not got["failed"], got["failed"]
    assert got["replaced"] and got["left"] == []


def test_volume_persists_across_containers(learner):
    """A named volume written by one rootless container is read by the next."""
    got = as_learner(learner, PRELUDE + """
    lab.run("busybox", ["sh", "-c", "echo kept > /v/note"], volumes=["notes:/v"], auto_remove=True)
    c = lab.run("busybox", ["cat", "/v/note"], volumes=["notes:/v"])
    out = c.logs()
    lab.rm(c.id)
    lab.volume_rm("notes")
    print(json.dumps({"out": out}))
    """)
    assert got["out"] == "kept\n"


def _need_slirp4netns() -> None:
    """Fail (never skip) where the rootless network cannot be tested: CI must install slirp4netns."""
    if not shutil.which("slirp4netns"):
        pytest.fail("slirp4netns is missing, so rootless networking cannot be tested: apt-get install slirp4netns "
                    "(it belongs in the Makefile's APT_PKGS)")


def _pids_named(uid: int, *names: str) -> list[int]:
    """Live processes of ``uid`` whose command name is one of ``names``."""
    out = []
    for pid in live_pids_of(uid):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() in names:
                    out.append(pid)
        except FileNotFoundError:
            continue
    return out


def _slirp_pids(uid: int) -> list[int]:
    """Live slirp4netns processes of ``uid``."""
    return _pids_named(uid, "slirp4netns")


def test_network_none_and_host_rootless(learner):
    """Rootless, --network none has only lo and --network host shares the host's interfaces."""
    got = as_learner(learner, PRELUDE + """
    none = lab.run("busybox", ["cat", "/proc/net/dev"], network="none")
    ifaces = sorted(ln.split(":")[0].strip() for ln in none.logs().splitlines()[2:])
    host = lab.run("busybox", ["cat", "/proc/net/dev"], network="host")
    host_ifaces = sorted(ln.split(":")[0].strip() for ln in host.logs().splitlines()[2:])
    for c in (none, host):
        lab.rm(c.id)
    print(json.dumps({"ifaces": ifaces, "host": host_ifaces}))
    """)
    assert got["ifaces"] == ["lo"]
    assert len(got["host"]) > 1


def test_default_network_is_slirp4netns(learner):
    """Rootless, the default network is slirp4netns's tap0 with 10.0.2.100/24, a route through 10.0.2.2 and DNS at 10.0.2.3; its slirp4netns ends with the container."""
    _need_slirp4netns()
    got = as_learner(learner, PRELUDE + """
    c = lab.run("busybox", ["sh", "-c", "ip -4 addr show tap0; ip route; cat /etc/resolv.conf /etc/hosts"],
                name="net", hostname="box")
    out = c.logs()
    with open(f"{lab.store.container_dir(c.id)}/network.json") as f:
        slirp = json.load(f)["SlirpPid"]
    deadline = time.monotonic() + scaled(5)
    while os.path.exists(f"/proc/{slirp}") and state(slirp) not in "ZX" and time.monotonic() < deadline:
        time.sleep(0.01)
    gone = not os.path.exists(f"/proc/{slirp}") or state(slirp) in "ZX"
    lab.rm("net")
    print(json.dumps({"out": out, "slirp": slirp, "gone_before_rm": gone}))
    """)
    assert got["slirp"] > 0 and got["gone_before_rm"], "slirp4netns ended by itself when the container did"
    out = got["out"]
    assert "inet 10.0.2.100/24" in out and "mtu 65520" in out
    assert "default via 10.0.2.2 dev tap0" in out
    assert "nameserver 10.0.2.3" in out
    assert "10.0.2.100\tbox" in out
    time.sleep(0.1)
    assert _slirp_pids(learner.pw_uid) == []


#: Busybox httpd in a container with -p 80, and the host's wget asking 127.0.0.1 until it answers
#: (``c``, ``ns``, ``port`` and ``page`` for the test's own lines).
SERVE_AND_FETCH = """
import subprocess
c = lab.run("busybox", ["sh", "-c", "mkdir /www && echo hello-rootless > /www/index.html && "
                        "exec httpd -f -p 80 -h /www"], detach=True, name="web", ports=["80"])
ns = c.inspect()["NetworkSettings"]
port = ns["Ports"]["80/tcp"][0]["HostPort"]
page = ""
deadline = time.monotonic() + scaled(10)
while time.monotonic() < deadline:
    done = subprocess.run(["wget", "-q", "-T", "2", "-O", "-", f"http://127.0.0.1:{port}/"],
                          capture_output=True, text=True)
    if done.returncode == 0:
        page = done.stdout
        break
    time.sleep(0.1)
"""


@pytest.fixture
def no_compiler_path(learner):
    """A PATH like the learner's without a C compiler: the shim cannot be built, so no real container can start."""
    yield from _path_without(learner, "bin-without-cc", "cc", "gcc", "clang")


def test_without_a_compiler_rootless_refuses_plainly_and_auto_picks_the_simulator(learner, no_compiler_path):
    """Without a C compiler (and no shim built before, in a state root of its own) labkit has no way to start a
    container — there is no second starter in Python: ``connect()`` picks the simulator and says why; the rootless
    backend asked for by name refuses run and create before making anything, in one sentence (exit 125 from the
    command line); ``doctor`` says it too."""
    got = as_learner(learner, """
import json, os, subprocess, sys
os.environ["XDG_DATA_HOME"] = os.path.join(os.environ["HOME"], "data-without-cc")
import labkit
from labkit.errors import HostUnsupported
auto = labkit.connect()
lab = labkit.connect(backend="rootless")
refused = []
for call in (lambda: lab.run("busybox", ["true"]), lambda: lab.create("busybox", ["true"], name="never")):
    try:
        call()
    except HostUnsupported as err:
        refused.append(err.one_line())
cli = subprocess.run([sys.executable, "-m", "labkit", "--backend", "rootless", "run", "--rm", "busybox", "true"],
                     capture_output=True, text=True, env={**os.environ, "LABKIT_NO_SERVER": "1"})
doctor = subprocess.run([sys.executable, "-m", "labkit", "doctor"], capture_output=True, text=True,
                        env={**os.environ, "LABKIT_NO_SERVER": "1"})
root = lab.store.root
print(json.dumps({"auto": [auto.backend_name, auto.backend_reason], "refused": refused,
                  "cli": [cli.returncode, cli.stdout, cli.stderr], "doctor": doctor.stdout,
                  "left": lab.ps(all=True), "containers": sorted(os.listdir(root / "containers"))
                  if (root / "containers").exists() else [], "shims": sorted(os.listdir(root / "bin"))
                  if (root / "bin").exists() else []}))
""", path=no_compiler_path)
    assert got["auto"][0] == "sim" and "no C compiler" in got["auto"][1], got["auto"]
    assert len(got["refused"]) == 2 and all("no C compiler" in r and "apt-get install gcc" in r
                                            for r in got["refused"]), got["refused"]
    code, out, err = got["cli"]
    assert code == 125 and out == "" and "Traceback" not in err, err
    assert err.splitlines()[0].startswith("labkit: labkit starts real containers") and "no C compiler" in err
    assert "no C compiler" in got["doctor"] or "Real containers cannot start here" in got["doctor"]
    assert got["left"] == [] and got["containers"] == [] and got["shims"] == [], "nothing was made"


def test_published_port_reaches_httpd_rootless(learner):
    """Rootless -p publishes through slirp4netns on 127.0.0.1: wget from the host reaches busybox httpd inside; inspect and ps show Docker's shape; rm leaves no slirp4netns."""
    _need_slirp4netns()
    got = as_learner(learner, PRELUDE + SERVE_AND_FETCH + """
    with open(f"{lab.store.container_dir(c.id)}/network.json") as f:
        slirp = json.load(f)["SlirpPid"]
    ps = lab.ps()[0]["Ports"]
    lab.rm("web", force=True)
    after = os.path.exists(f"/proc/{slirp}") and open(f"/proc/{slirp}/stat").read().split()[2] not in "ZX"
    print(json.dumps({"page": page, "ns": ns, "port": port, "ps": ps, "slirp_after_rm": after}))
    """)
    assert got["page"] == "hello-rootless\n"
    ns = got["ns"]
    assert ns["IPAddress"] == "10.0.2.100" and ns["Gateway"] == "10.0.2.2" and ns["IPPrefixLen"] == 24
    assert ns["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": got["port"]}]
    assert ns["Networks"]["bridge"]["IPAddress"] == "10.0.2.100"
    assert ns["MacAddress"] == "02:42:0a:00:02:64"
    assert got["ps"] == [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": int(got["port"]), "Type": "tcp"}]
    assert not got["slirp_after_rm"]
    assert _slirp_pids(learner.pw_uid) == []


def test_port_in_use_is_refused_rootless(learner):
    """Rootless, -p to a host port something already listens on is refused before the container starts, in Docker's words."""
    _need_slirp4netns()
    got = as_learner(learner, PRELUDE + """
    import socket
    from labkit.errors import LabkitError
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        lab.run("busybox", ["true"], ports=[f"{port}:80"], name="clash")
        refused = ""
    except LabkitError as e:
        refused = e.one_line()
    busy.close()
    for r in lab.ps(all=True):
        lab.rm(r["Id"], force=True)
    print(json.dumps({"refused": refused, "port": port}))
    """)
    assert f"Bind for 127.0.0.1:{got['port']} failed" in got["refused"]
    assert _slirp_pids(learner.pw_uid) == []


def test_bad_input_is_refused_rootless_before_anything_is_made(learner):
    """Rootless, the labkit command refuses what Docker refuses with Docker's exit code and one line, and leaves
    no container, layer or name behind; a --rm container whose command is missing is removed."""
    got = as_learner(learner, PRELUDE + """
    import subprocess
    env = {**os.environ, "LABKIT_NO_SERVER": "1"}
    lab.run("busybox", ["true"], auto_remove=True)  # the base image and the state root exist before the count
    root = lab.store.root
    def listing():
        return {d: sorted(os.listdir(root / d)) for d in ("containers", "overlay", "volumes")}
    before = listing()
    cases = [["run", "--rm", "--cpus", "nan", "busybox", "true"], ["run", "--rm", "-w", "rel", "busybox", "true"],
             ["run", "--rm", "-v", "/tmp:/proc/sys", "busybox", "true"], ["run", "--rm", "-l", "=x", "busybox", "true"],
             ["run", "--rm", "--restart", "always", "busybox", "true"], ["run", "--rm", "-p", "1:2:3:4", "busybox"],
             ["run", "--rm", "--memory", "99999999999999999999g", "busybox", "true"], ["kill", "-s", "0", "ghost"],
             ["run", "--rm", "busybox", "/nope"], ["create", "--name", "_bad", "busybox"]]
    out = []
    for argv in cases:
        p = subprocess.run([sys.executable, "-m", "labkit", *argv], capture_output=True, text=True, env=env)
        said = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("Run 'labkit")]
        out.append([p.returncode, len(said)])
    print(json.dumps({"out": out, "same": listing() == before, "before": before, "after": listing()}))
    """)
    assert got["out"] == [[125, 1]] * 7 + [[1, 1], [127, 1], [1, 1]]
    assert got["same"], f"nothing made, nothing lost: {got['before']} then {got['after']}"


def test_run_rm_leaves_nothing_in_the_state_root_rootless(learner):
    """Rootless, when an attached --rm run returns, its record and layers are gone from the state root — also the
    directory overlayfs leaves in the work directory with mode 0, which the user must open up before deleting —
    twenty runs in a row, so a removal that finishes later would be seen."""
    got = as_learner(learner, PRELUDE + """
    root = lab.store.root
    def listing():
        got = {d: sorted(os.listdir(root / d)) for d in ("containers", "overlay", "volumes")}
        got["tmp"] = sorted(n for n in os.listdir(root / "tmp") if not n.startswith("trash-"))  # deleted in the background
        return got
    lab.run("busybox", ["true"], auto_remove=True)  # the image is pulled before the count
    before = listing()
    left = []
    for _ in range(20):
        c = lab.run("busybox", ["true"], auto_remove=True)
        if listing() != before:
            left.append(listing())
    print(json.dumps({"before": before, "left": left, "code": c.exit_code}))
    """)
    assert got["code"] == 0
    assert got["left"] == [], f"the state root held {got['before']} before, then {got['left'][:2]}"


def _path_without(learner, name: str, *programs: str):
    """A PATH like the learner's, in ``~/name``, with every program but ``programs``; removed afterwards."""
    path = Path(learner.pw_dir) / name
    path.mkdir()
    for d in ("/usr/local/bin", "/usr/bin", "/bin"):
        for entry in os.listdir(d):
            target = path / entry
            if entry not in programs and not target.exists():
                target.symlink_to(os.path.join(d, entry))
    try:
        yield str(path)
    finally:
        shutil.rmtree(path)


@pytest.fixture
def no_slirp_path(learner):
    """A PATH like the learner's with every program but slirp4netns and pasta: a host without a user-mode network stack."""
    yield from _path_without(learner, "bin-without-slirp", "slirp4netns", "pasta", "passt")


@pytest.fixture
def pasta_only_path(learner):
    """A PATH like the learner's with every program but slirp4netns: a host whose user-mode network stack is pasta."""
    if not shutil.which("pasta"):
        pytest.fail("pasta is missing, so rootless networking through it cannot be tested: apt-get install passt "
                    "(it belongs in the Makefile's APT_PKGS)")
    yield from _path_without(learner, "bin-with-pasta", "slirp4netns")


def test_pasta_carries_the_network_where_slirp4netns_is_missing(learner, pasta_only_path):
    """With pasta and no slirp4netns, a rootless container gets the same network (10.0.2.100, the gateway, the MAC),
    -p reaches busybox httpd inside, and rm leaves no pasta behind."""
    got = as_learner(learner, PRELUDE + SERVE_AND_FETCH + """
    inside = c.exec(["cat", "/proc/net/route"])[1]
    with open(f"{lab.store.container_dir(c.id)}/network.json") as f:
        driver = json.load(f)["Driver"]
    lab.rm("web", force=True)
    print(json.dumps({"page": page, "ns": ns, "driver": driver, "route": inside}))
    """, path=pasta_only_path)
    assert got["driver"] == "pasta"
    assert got["page"] == "hello-rootless\n"
    ns = got["ns"]
    assert (ns["IPAddress"], ns["Gateway"], ns["MacAddress"]) == ("10.0.2.100", "10.0.2.2", "02:42:0a:00:02:64")
    assert "tap0\t00000000\t0202000A" in got["route"], "a default route through 10.0.2.2"
    assert wait_for(lambda: not _pids_named(learner.pw_uid, "pasta", "passt", "passt.avx2"), timeout=5)


def test_without_slirp4netns_publishing_names_the_package(learner, no_slirp_path):
    """Without slirp4netns (or pasta), the default network is a namespace with only lo, which a warning says and
    names the package; -p is refused in one sentence naming it."""
    got = as_learner(learner, PRELUDE + """
    import warnings
    from labkit.errors import LabkitError
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        default = lab.run("busybox", ["cat", "/proc/net/dev"])
    warned = [str(w.message) for w in caught if w.category is labkit.NetworkReduced]
    ifaces = sorted(ln.split(":")[0].strip() for ln in default.logs().splitlines()[2:])
    lab.rm(default.id)
    try:
        lab.run("busybox", ["true"], ports=["8080:80"], name="pub")
        refused = ""
    except LabkitError as e:
        refused = e.one_line()
    for r in lab.ps(all=True):
        lab.rm(r["Id"], force=True)
    print(json.dumps({"ifaces": ifaces, "refused": refused, "warned": warned}))
    """, path=no_slirp_path)
    assert got["ifaces"] == ["lo"]
    assert len(got["warned"]) == 1 and "has only lo" in got["warned"][0] and "slirp4netns" in got["warned"][0]
    assert "user-mode network" in got["refused"] and "apt-get install slirp4netns" in got["refused"]


def test_restart_policy_rootless(learner):
    """Rootless, --restart on-failure:2 restarts a failing container twice (a published port included), as the user, and then leaves it exited."""
    _need_slirp4netns()
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    got = as_learner(learner, PRELUDE + f"""
    c = lab.run("busybox", ["sh", "-c", "echo run; sleep 0.2; exit 3"], detach=True, name="again",
                restart="on-failure:2", ports=["{port}:80"])
    deadline = time.monotonic() + scaled(30)
    while time.monotonic() < deadline:
        info = lab.inspect("again")
        if info["RestartCount"] == 2 and info["State"]["Status"] == "exited":
            break
        time.sleep(0.05)
    info = lab.inspect("again")
    logs = c.logs()
    cdir = lab.store.container_dir(c.id)
    note = (cdir / "restart.log").read_text() if (cdir / "restart.log").exists() else ""
    time.sleep(0.3)  # the last restarter decides not to restart, and exits
    lab.rm("again")
    print(json.dumps({{"count": info["RestartCount"], "state": info["State"]["Status"],
                      "code": info["State"]["ExitCode"], "logs": logs, "note": note}}))
    """)
    assert got["note"] == ""
    assert got["count"] == 2 and got["state"] == "exited" and got["code"] == 3
    assert got["logs"] == "run\nrun\nrun\n"
    assert _slirp_pids(learner.pw_uid) == []


def test_doctor_explains_rootless(learner):
    """labkit doctor tells the user, in words, about their user namespace, id map, cgroups, network and state."""
    got = as_learner(learner, """
    import json
    from labkit import doctor
    print(json.dumps({c["check"]: [c["ok"], c["detail"], c["meaning"]] for c in doctor.checks()}))
    """)
    assert got["rootless"][0] and "user namespace" in got["rootless"][2]
    assert "single id" in got["rootless ids"][1]
    assert not got["rootless cgroups"][0] and "SIGSTOP" in got["rootless cgroups"][2]
    assert "none or host" in got["rootless network"][2] and "slirp4netns" in got["rootless network"][2]
    assert got["rootless state"][1].startswith(learner.pw_dir)


@pytest.fixture
def delegated(learner):
    """A cgroup v2 directory handed to the learner, as systemd delegates one to a user session."""
    unified = _unified()
    if unified is None:
        pytest.fail("no cgroup2 mount on this host")
    path = os.path.join(unified, "labkit-learner-delegated")
    os.mkdir(path)
    try:
        for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(os.path.join(path, name), learner.pw_uid, learner.pw_gid)
        yield path
    finally:
        for d in sorted((os.path.join(r, n) for r, ds, _ in os.walk(path) for n in ds), key=len, reverse=True):
            os.rmdir(d)
        deadline = time.monotonic() + scaled(5)
        while True:
            try:
                os.rmdir(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def test_pause_freezes_in_a_delegated_cgroup(learner, delegated):
    """With a delegated cgroup v2 subtree, the container gets a group there and pause uses its cgroup.freeze."""
    got = as_learner(learner, PRELUDE + """
    c = lab.run("busybox", ["sleep", "60"], detach=True, name="frozen")
    pid = c.inspect()["State"]["Pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        own = [ln for ln in f.read().splitlines() if ln.startswith("0::")]
    inside = c.exec(["cat", "/proc/self/cgroup"])[1]
    lab.pause("frozen")
    group = lab.backend.delegated.unified + "/labkit/" + c.id
    with open(group + "/cgroup.events") as f:
        events = f.read()
    lab.unpause("frozen")
    lab.rm("frozen", force=True)
    print(json.dumps({"why": lab.backend_reason, "own": own, "inside": inside, "id": c.id, "events": events,
                      "gone": not os.path.exists(group)}))
    """, cgroup=delegated)
    assert "delegated cgroup" in got["why"]
    assert got["own"] == [f"0::/{os.path.basename(delegated)}/labkit/{got['id']}"]
    assert "0::/" in got["inside"].splitlines(), "its cgroup namespace makes its own group its /"
    assert "frozen 1" in got["events"]
    assert got["gone"]


def test_the_engine_leaves_the_delegated_cgroup_as_it_found_it(learner, delegated):
    """An engine that moved into the leaf ``engine`` of a delegated subtree without systemd (so that labkit's groups
    could get controllers) puts itself back and removes the leaf when it ends, its containers gone: no group and no
    controller given to children is left. Where the subtree has no controller to give (this host's unified mount
    holds none), nothing is made in the first place, and the same must hold."""
    got = as_learner(learner, PRELUDE + """
    top = lab.backend.delegated.unified
    with open(top + "/cgroup.controllers") as f:
        controllers = f.read().split()
    c = lab.run("busybox", ["sleep", "60"], detach=True, name="leaf")
    with open("/proc/self/cgroup") as f:
        engine = [ln for ln in f.read().splitlines() if ln.startswith("0::")]
    while_running = sorted(e.name for e in os.scandir(top) if e.is_dir())
    lab.rm("leaf", force=True)
    print(json.dumps({"controllers": controllers, "engine": engine, "while_running": while_running}))
    """, cgroup=delegated)
    name = os.path.basename(delegated)
    if got["controllers"]:  # the no-internal-process rule applies: the engine went down into the leaf
        assert got["engine"] == [f"0::/{name}/engine"]
        assert got["while_running"] == ["engine", "labkit"]
    else:
        assert got["engine"] == [f"0::/{name}"]
    assert wait_for(lambda: not [e.name for e in os.scandir(delegated) if e.is_dir()], timeout=5), \
        sorted(e.name for e in os.scandir(delegated) if e.is_dir())
    with open(os.path.join(delegated, "cgroup.subtree_control")) as f:
        assert f.read().split() == []


@pytest.fixture
def subuid(learner):
    """An /etc/subuid and /etc/subgid range for the learner, for this test only; its first id."""
    with subordinate_range(USER) as start:
        yield start


def test_subuid_range_maps_65536_ids(learner, subuid):
    """With an /etc/subuid range, newuidmap maps 65536 ids: a file chowned to 1000 inside belongs to START+999 on the host."""
    if not shutil.which("newuidmap"):
        pytest.fail("newuidmap is missing: apt-get install uidmap")
    got = as_learner(learner, PRELUDE + """
    c = lab.run("busybox", ["sh", "-c", "cat /proc/self/uid_map; touch /owned; chown 1000:1000 /owned; ls -ln /owned; "
                            "mkdir -p /d/e && touch /d/e/f && chown -R 1000:1000 /d"], name="ranged")
    upper = c.inspect()["GraphDriver"]["Data"]["UpperDir"]
    st = os.lstat(os.path.join(upper, "owned"))
    out = c.logs()
    lab.rm("ranged")
    layer_left = os.path.exists(os.path.dirname(upper))
    import labkit.store
    labkit.store.drain()  # rm took the layer away by rename; it is deleted in the background
    tmp = os.path.join(str(lab.store.root), "tmp")
    print(json.dumps({"why": lab.backend_reason, "out": out, "owner": [st.st_uid, st.st_gid], "uid": os.getuid(),
                      "layer_left": layer_left, "trash": [n for n in os.listdir(tmp) if n.startswith("trash-")]}))
    """)
    assert not got["layer_left"], "rm took the layer away"
    assert not got["trash"], "rm deletes even what the container owned as a subordinate id, in the background"
    assert "/etc/subuid" in got["why"]
    lines = [ln.split() for ln in got["out"].splitlines()]
    assert lines[0] == ["0", str(got["uid"]), "1"] and lines[1] == ["1", str(subuid), "65536"]
    assert got["owner"] == [subuid + 999, subuid + 999]


@pytest.fixture
def refusing_newuidmap(learner):
    """A PATH like the learner's whose newuidmap refuses, as it does when /etc/subuid and the helper disagree."""
    for path in _path_without(learner, "bin-refusing-map", "newuidmap"):
        fake = Path(path) / "newuidmap"
        fake.write_text("#!/bin/sh\necho 'newuidmap: uid range [1-65537) -> [300000-365536) not allowed' >&2\nexit 1\n")
        fake.chmod(0o755)
        yield path


def test_an_id_map_the_helper_refuses_fails_the_start_in_one_sentence(learner, subuid, refusing_newuidmap):
    """When newuidmap refuses the range, the start fails with its words, exit code 128, and nothing is left running."""
    got = as_learner(learner, PRELUDE + """
    try:
        lab.run("busybox", ["true"], name="unmapped", network="none")
        error = None
    except labkit.StartFailed as err:
        error = [err.exit_code, err.message]
    status = lab.inspect("unmapped")["State"]["Status"]
    lab.rm("unmapped")
    print(json.dumps({"error": error, "status": status}))
    """, path=refusing_newuidmap)
    code, message = got["error"]
    assert code == 128 and got["status"] == "created"
    assert message.startswith("error during container init: the id map could not be written: newuidmap ")
    assert message.endswith("not allowed"), message
    time.sleep(0.2)
    assert live_pids_of(learner.pw_uid) == []


BUILD = PRELUDE + """
ctx = os.path.join(os.environ["HOME"], "ctx")
os.makedirs(ctx, exist_ok=True)
with open(os.path.join(ctx, "note"), "w") as f:
    f.write("hi\\n")
"""


def test_a_rootless_build_marks_opaque_dirs_where_its_mounts_keep_them(learner):
    """A RUN step that makes a directory again leaves it opaque as user.overlay.opaque; the layer's tar and digest
    read the marker there, and the layers still hash to their digests."""
    got = as_learner(learner, BUILD + """
    from labkit.images import oci
    from labkit.linux import namespaces
    from labkit.grading import probes
    with open(os.path.join(ctx, "Labfile"), "w") as f:
        f.write("FROM busybox\\nRUN rm -rf /etc && mkdir /etc && echo x > /etc/new\\n")
    lab.build(ctx, "opq:1", on_step=lambda _line: None)
    top = lab.image_store.get("opq:1").layers[-1]
    unchanged = probes.PROBES["image_layers_unchanged"].func(lab, image="opq:1")
    print(json.dumps({"names": oci.tar_names(top.path, "user")[:2], "digest": top.digest,
                      "user": lab.image_store.layer_digest(top.path),
                      "trusted": oci.digest(top.path, "trusted", owners=namespaces.id_map().inside),
                      "unchanged": unchanged.passed}))
    """)
    assert got["names"] == ["etc", "etc/.wh..wh..opq"]
    assert got["digest"] == got["user"] != got["trusted"]
    assert got["unchanged"]


def test_a_rootless_layer_hashes_as_the_same_layer_built_as_root(learner, engine):
    """A layer records owners as containers see them: a rootless COPY (the user's file on the host, root's inside)
    gets the digest the same COPY built as root gets."""
    got = as_learner(learner, BUILD + """
    with open(os.path.join(ctx, "Labfile"), "w") as f:
        f.write("FROM busybox\\nCOPY note /note\\n")
    lab.build(ctx, "same:1", on_step=lambda _line: None)
    print(json.dumps({"ctx": ctx, "top": lab.image_store.get("same:1").layers[-1].digest}))
    """)
    engine.build(got["ctx"], "same:1", on_step=lambda _line: None)
    try:
        assert engine.image_store.get("same:1").layers[-1].digest == got["top"]
    finally:
        engine.image_store.remove("same:1")


def test_a_layer_an_earlier_labkit_hashed_with_host_ids_still_counts_as_intact(learner):
    """A rootless layer committed before owners were recorded as containers see them carries the digest of its
    host ids: the layers lab still finds it unchanged, and a changed byte is still caught under either digest."""
    got = as_learner(learner, BUILD + """
    import dataclasses
    from labkit.images import oci
    with open(os.path.join(ctx, "old-note"), "w") as f:
        f.write("a layer of this test's own, changed below\\n")
    with open(os.path.join(ctx, "Labfile"), "w") as f:
        f.write("FROM busybox\\nCOPY old-note /old-note\\n")
    lab.build(ctx, "old:1", on_step=lambda _line: None)
    layer = lab.image_store.get("old:1").layers[-1]
    legacy = dataclasses.replace(layer, digest=oci.digest(layer.path, "user"))
    intact = lab.image_store.intact
    before = [intact(layer), intact(legacy), legacy.digest != layer.digest]
    with open(os.path.join(layer.path, "old-note"), "a") as f:
        f.write("changed\\n")
    after = [intact(layer), intact(legacy)]
    lab.image_store.remove("old:1")
    print(json.dumps({"before": before, "after": after}))
    """)
    assert got["before"] == [True, True, True]
    assert got["after"] == [False, False]


@pytest.mark.parametrize("lowerdir_plus", [None, False], ids=["as-the-kernel-takes-it", "by-descriptors"])
def test_an_image_deeper_than_a_page_of_mount_options_builds_and_runs_rootless(learner, lowerdir_plus):
    """120 layers do not fit the page mount(2) reads; PID 1 stacks them for a RUN step and for a container, one
    by one ("lowerdir+") where the kernel takes that (Linux >= 6.8), else, or when the backend says the kernel
    does not (its ``lowerdir_plus`` False), named by descriptors; a bottom, a middle and a top layer's files show
    through, a file deleted in the middle layer (a whiteout) does not, and ``docker cp`` out of the stopped
    container mounts the same stack for itself."""
    got = as_learner(learner, BUILD + f"""
    lab.backend.lowerdir_plus = {lowerdir_plus}
    with open(os.path.join(ctx, "gone"), "w") as f:
        f.write("gone\\n")
    steps = "".join(f"COPY note /n{{i}}\\n" for i in range(58)) + "RUN rm /gone && echo mid > /mid\\n"
    steps += "".join(f"COPY note /n{{i}}\\n" for i in range(58, 116))
    with open(os.path.join(ctx, "Labfile"), "w") as f:
        f.write("FROM busybox\\nCOPY gone /gone\\n" + steps + "RUN cat /n0 /mid /n115 > /top\\n")
    lab.build(ctx, "deep:1", on_step=lambda _line: None)
    layers = len(lab.image_store.get("deep:1").layers)
    c = lab.run("deep:1", ["sh", "-c", "cat /top; test -e /gone || echo gone; cat /proc/self/mountinfo"])
    out, code = c.logs(), c.exit_code
    import tempfile
    with tempfile.TemporaryFile() as tar:  # docker cp out of the stopped container mounts its overlay for itself
        lab.copy_from(c.id, "/top", tar.fileno())
        tar.seek(0)
        copied = "hi\\nmid\\nhi\\n" in tar.read().decode(errors="replace")
    c.remove()
    lab.image_store.remove("deep:1")
    print(json.dumps({{"layers": layers, "out": out, "code": code, "copied": copied}}))
    """)
    assert got["layers"] == 120
    assert (got["code"], got["out"].splitlines()[:4]) == (0, ["hi", "mid", "hi", "gone"]), got["out"][:400]
    assert got["copied"], "docker cp read /top out of the stopped container"
    how, lowers = root_overlay_lowers(got["out"])
    assert len(lowers) == 121, "120 image layers and the init layer"
    if how == "lowerdir":
        assert all(name.isdigit() for name in lowers), lowers[:3]
    assert how == ("lowerdir+" if lowerdir_plus is None and KERNEL_TAKES_LOWERDIR_PLUS else "lowerdir")


def test_copy_chown_with_only_ones_own_id_is_refused_plainly(learner):
    """With the single-id map only root exists inside: COPY --chown=1000 fails in one sentence naming the fix."""
    got = as_learner(learner, BUILD + """
    with open(os.path.join(ctx, "Labfile"), "w") as f:
        f.write("FROM busybox\\nCOPY --chown=1000:1000 note /note\\n")
    try:
        lab.build(ctx, "owned:1", on_step=lambda _line: None)
        error = None
    except labkit.BuildFailed as err:
        error = err.one_line()
    print(json.dumps({"error": error, "tags": [t for i in lab.images() for t in i["RepoTags"]]}))
    """)
    assert got["error"].startswith("COPY --chown=1000:1000 failed: potentially insufficient UIDs or GIDs")
    assert "/etc/subuid" in got["error"]
    assert "owned:1" not in got["tags"]


def test_copy_chown_with_a_subuid_range_gives_the_owner_inside(learner, subuid):
    """With an /etc/subuid range, COPY --chown=1000:1000 gives the file uid 1000 in every container (START+999 on the
    host). A 0600 file given away so is unreadable to the user on the host, yet the layer's digest is taken (inside
    the user namespace), records 1000:1000, and the layer still hashes to it afterwards."""
    got = as_learner(learner, BUILD + """
    from labkit.grading import probes
    from labkit.images import oci
    os.chmod(os.path.join(ctx, "note"), 0o600)
    with open(os.path.join(ctx, "Labfile"), "w") as f:
        f.write("FROM busybox\\nCOPY --chown=1000:1000 note /srv/note\\n")
    lab.build(ctx, "owned:1", on_step=lambda _line: None)
    layer = lab.image_store.get("owned:1").layers[-1]
    host = os.lstat(os.path.join(layer.path, "srv", "note"))
    readable = os.access(os.path.join(layer.path, "srv", "note"), os.R_OK)
    c = lab.run("owned:1", ["sh", "-c", "ls -ln /srv/note; cat /srv/note"], name="owner")
    listing = c.logs()
    lab.rm("owner")
    from labkit.linux import namespaces
    import io, tarfile

    def owners():
        buf = io.BytesIO()
        oci.write_tar(layer.path, buf, "user")
        buf.seek(0)
        return json.dumps({m.name: [m.uid, m.gid] for m in tarfile.open(fileobj=buf)})

    in_tar = json.loads(namespaces.read_inside(namespaces.id_map(), owners))
    unchanged = probes.PROBES["image_layers_unchanged"].func(lab, image="owned:1")
    print(json.dumps({"host": [host.st_uid, host.st_gid], "inside": listing.split()[2:4], "text": listing,
                      "readable": readable, "in_tar": in_tar, "unchanged": unchanged.passed}))
    """)
    assert got["host"] == [subuid + 999, subuid + 999]
    assert got["inside"] == ["1000", "1000"] and got["text"].endswith("hi\n")
    assert not got["readable"], "the 0600 file of a subordinate owner is closed to the user on the host"
    assert got["in_tar"]["srv/note"] == [1000, 1000], "the tar records the owner containers see"
    assert got["unchanged"], "the layer hashes to its digest, taken inside the user namespace"


def test_nothing_left_behind(learner):
    """After the scenarios, the learner has no process left, no mount on the host, and the state can be removed whole."""
    got = as_learner(learner, """
    import json, labkit
    lab = labkit.connect()
    print(json.dumps({"containers": [c["Id"] for c in lab.ps(all=True)], "root": str(lab.store.root)}))
    """)
    assert got["containers"] == []
    time.sleep(0.2)
    assert live_pids_of(learner.pw_uid) == [], "no process of the learner (supervisors included) outlives its container"
    with open("/proc/self/mounts") as f:
        assert not [ln for ln in f if learner.pw_dir in ln]
    shutil.rmtree(got["root"])
    assert not os.path.exists(got["root"])


def test_privileged_port_is_refused_plainly(learner):
    """As a user, -p 80:80 is refused in one sentence that says ports below 1024 need root; nothing is left."""
    got = as_learner(learner, PRELUDE + """
    try:
        lab.run("busybox", ["sleep", "5"], detach=True, ports=["80:80"], name="priv")
        err = ""
    except labkit.LabkitError as e:
        err = e.one_line()
    state = lab.inspect("priv")["State"]["Status"]
    lab.rm("priv", force=True)
    print(json.dumps({"err": err, "state": state}))
    """)
    assert "Ports below 1024 need root" in got["err"] and got["state"] == "created"


def test_exit_code_is_always_pid_1s_rootless(learner):
    """Rootless, under load (three engines at once), every attached run returns exactly the code its PID 1 exited
    with, and so does the exit record its supervisor wrote: 240 runs of ``true`` and ``sh -c 'exit N'``."""
    out = as_learner(learner, PRELUDE + """
    import random
    children = []
    for k in range(3):
        pid = os.fork()
        if pid == 0:
            lab = labkit.connect()
            rng, wrong = random.Random(k), []
            for i in range(80):
                code = rng.choice((0, 0, 1, 7, 42, 254))
                cmd = ["true"] if code == 0 and i % 2 else ["sh", "-c", f"exit {code}"]
                c = lab.run("busybox", cmd)
                record = json.load(open(os.path.join(lab.store.container_dir(c.id), "exit.json")))
                if (c.exit_code, record["ExitCode"]) != (code, code):
                    wrong.append([cmd, c.exit_code, record, c.inspect()["State"]["Error"]])
                c.remove(force=True)
            with open(f"wrong-{k}.json", "w") as f:
                json.dump(wrong, f)
            os._exit(0)
        children.append(pid)
    codes = [os.waitpid(pid, 0)[1] for pid in children]
    wrong = [w for k in range(3) for w in json.load(open(f"wrong-{k}.json"))]
    print(json.dumps({"codes": codes, "wrong": wrong}))
    """, timeout=600)
    assert out["codes"] == [0, 0, 0] and out["wrong"] == [], out


def test_predictions_are_graded_by_fresh_experiments_rootless(learner):
    """As a user, each prediction is graded by its experiment run afresh on the rootless engine and removed
    after; the memory hog, whose limit this engine would discard, runs on the simulator and says so."""
    got = as_learner(learner, PRELUDE + """
    from labkit.cli import main
    from labkit.grading import load_bank
    answers = {("isolation", "iso.predict.hostpid"): "yes", ("layers", "lay.predict.change"): "C",
               ("layers", "lay.predict.delete"): "D", ("ephemeral", "eph.predict.kept"): "yes",
               ("states", "st.predict.status"): "exited", ("cgroups", "cg.predict.oom"): "a"}
    out = {}
    for (bank, qid), answer in answers.items():
        r = load_bank(bank, learner="ada")[qid].check(answer, engine=lab, run_line=main)
        out[qid] = [r.verdict, r.feedback]
    out["left"] = [c["Names"] for c in lab.ps(all=True)] + [c["Names"] for c in lab.simulator().ps(all=True)]
    out["limits"] = sorted(lab.enforced_limits)
    print(json.dumps(out))
    """, timeout=300)
    assert got.pop("left") == []
    limits = got.pop("limits")
    for qid, (verdict, feedback) in got.items():
        assert verdict == "correct", (qid, feedback)
    assert ("on the simulator" in got["cg.predict.oom"][1]) == ("memory" not in limits)


def test_cp_top_and_stats_rootless(learner):
    """Rootless, cp goes into a running container (through PID 1's user and mount namespaces) and into a stopped
    one (its overlay mounted in a user namespace of its own, the copy-up traced), and out again; top lists PID 1."""
    got = as_learner(learner, PRELUDE + """
    import io, tarfile, tempfile, threading
    def tar_of(name, data):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()
    def copy_to(path, data):
        r, w = os.pipe()
        feeder = threading.Thread(target=lambda: (os.write(w, data), os.close(w)))
        feeder.start()
        lab.copy_to("rl-cp", path, r)
        feeder.join()
        os.close(r)
    def copy_from(path):
        with tempfile.TemporaryFile() as f:
            lab.copy_from("rl-cp", path, f.fileno())
            f.seek(0)
            with tarfile.open(fileobj=f) as tar:
                return {m.name: tar.extractfile(m).read().decode() for m in tar if m.isfile()}
    pid = lab.run("busybox", ["sleep", "60"], name="rl-cp", detach=True).pid
    copy_to("/tmp", tar_of("in.txt", b"running\\n"))
    running = lab.exec_output("rl-cp", ["cat", "/tmp/in.txt"])
    top = lab.top("rl-cp")
    stats = lab.stats("rl-cp")
    lab.kill("rl-cp")
    with lab.tracing() as steps:
        copy_to("/etc", tar_of("group", b"root:x:0:\\n"))
    out = copy_from("/etc/group")
    lab.rm("rl-cp", force=True)
    print(json.dumps({"running": running, "pids": [int(r[1]) for r in top["Processes"]], "pid": pid,
                      "stats_pids": stats["Pids"], "copy_ups": [s.change.get("path") for s in steps
                                                                if s.kind == "copy-up"], "out": out}))
    """)
    assert got["running"] == [0, "running\n"]
    assert got["pid"] in got["pids"]
    assert got["copy_ups"] == ["/etc/group"] and got["out"] == {"group": "root:x:0:\n"}


def test_commit_save_load_and_export_without_root(learner):
    """Without root, commit makes a layer of a container's changes (a whiteout among them), export writes
    its merged files, and an image saved, removed and loaded again has its id and runs."""
    got = as_learner(learner, PRELUDE + """
    import io, tarfile
    c = lab.run("busybox", ["sh", "-c", "echo mine > /mine; rm /etc/group"], name="rl-commit")
    image_id = lab.commit(c.id, "rl:1", message="rootless")
    out = io.BytesIO()
    lab.export(c.id, out)
    names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
    lab.rm(c.id)
    saved = io.BytesIO()
    lab.save(["rl:1"], saved)
    lab.rmi("rl:1")
    lines = lab.load(io.BytesIO(saved.getvalue()))
    run = lab.run("rl:1", ["sh", "-c", "cat /mine; ls /etc"], name="rl-run")
    logs = run.logs()
    lab.rm(run.id)
    print(json.dumps({"id": image_id, "again": lab.image_inspect("rl:1")["Id"], "lines": lines, "logs": logs,
                      "names": names}))
    """)
    assert got["lines"] == ["Loaded image: rl:1"] and got["again"] == got["id"]
    assert got["logs"].startswith("mine\n") and "group" not in got["logs"].split() and "passwd" in got["logs"].split()
    assert "mine" in got["names"] and "etc/passwd" in got["names"] and "etc/group" not in got["names"]


def test_system_reset_removes_what_subordinate_ids_own_without_the_users_rm(learner, subuid):
    """A container writes a tree as its uid 1000 (START+999 on the host) in its writable layer and in a volume,
    which the user cannot even list on the host; ``labkit system reset -f``, run as the user, kills the running
    container and removes every container, volume and image and the state root, subordinate-owned files
    included: nothing of the user's labkit state is left, and no ``rm -rf`` of the user's was needed."""
    got = as_learner(learner, PRELUDE + """
    import subprocess
    root = os.path.join(os.environ["HOME"], "reset-root")
    lab = labkit.connect(root=root)
    tree = "mkdir -p DIR/d/e && echo x > DIR/d/e/f && chown -R 1000:1000 DIR/d && chmod 0700 DIR/d"
    c = lab.run("busybox", ["sh", "-c", tree.replace("DIR", "/srv") + " && " + tree.replace("DIR", "/data")],
                name="writer", volumes=["owned-data:/data"], network="none")
    up = lab.run("busybox", ["sleep", "600"], name="sleeper", detach=True, network="none")
    pid = up.pid
    upper = c.inspect()["GraphDriver"]["Data"]["UpperDir"]
    owner = os.lstat(os.path.join(upper, "srv", "d")).st_uid
    try:
        os.listdir(os.path.join(upper, "srv", "d"))
        closed = False
    except PermissionError:
        closed = True
    reset = subprocess.run([sys.executable, "-m", "labkit", "system", "reset", "-f"], capture_output=True, text=True,
                           env={**os.environ, "LABKIT_ROOT": root, "LABKIT_NO_SERVER": "1"}, timeout=120)
    print(json.dumps({"uid": os.getuid(), "owner": owner, "closed": closed, "exit": reset.returncode,
                      "out": reset.stdout, "err": reset.stderr, "root_left": os.path.lexists(root),
                      "pid_alive": os.path.exists(f"/proc/{pid}")}))
    """)
    assert got["owner"] == subuid + 999, got
    assert got["closed"], "the user could list a directory a subordinate id owns with mode 0700"
    assert got["exit"] == 0, got["err"]
    assert "2 containers, 1 volume, 0 networks, 1 image and the state root" in got["out"], got["out"]
    assert not got["root_left"], "the state root, with the subordinate-owned trees, is still there"
    assert not got["pid_alive"], "the running container's PID 1 outlived the reset"


def test_the_rootless_trace_names_the_user_namespace_and_the_network_helper(learner):
    """Rootless, a run's trace makes the user namespace before the clone (CLONE_NEWUSER among its flags), the
    network helper (slirp4netns or pasta) gives the container its address after it, and the overlay is mounted
    after that, in PID 1's mount namespace; the simulator, as the same user, traces the start step for step
    alike."""
    got = as_learner(learner, PRELUDE + """
    traces = {}
    for backend in ("rootless", "sim"):
        lab = labkit.connect(backend=backend, root=os.path.join(os.environ["HOME"], f"trace-{backend}"))
        with lab.tracing() as steps:
            lab.run("busybox", ["true"], auto_remove=True)
        traces[backend] = [[s.kind, s.change.get("uid", s.change.get("driver", "")), s.mechanism] for s in steps
                           if s.kind in ("userns", "clone", "network", "mount-overlay", "pivot-root", "exec")]
        lab.reset()
    print(json.dumps({"uid": os.getuid(), **traces}))
    """)
    real = got["rootless"]
    assert [k for k, _, _ in real] == ["userns", "clone", "network", "mount-overlay", "pivot-root", "exec"], real
    assert real[0][1] == got["uid"] and "CLONE_NEWUSER" in real[1][2] and real[2][1] in ("slirp4netns", "pasta")
    assert got["sim"] == real


def test_the_rootless_trace_tells_a_file_made_again_from_a_copy_up_as_the_simulator_does(learner):
    """Rootless, overlayfs keeps a copy-up's origin in ``user.overlay.origin`` (``userxattr``): a file removed and
    made again is traced as a whiteout and an add, an append as a copy-up, and the simulator, as the same user,
    traces both alike."""
    got = as_learner(learner, PRELUDE + """
    traces = {}
    for backend in ("rootless", "sim"):
        lab = labkit.connect(backend=backend, root=os.path.join(os.environ["HOME"], f"layer-{backend}"))
        c = lab.run("busybox", ["sleep", "600"], detach=True, network="none")
        traces[backend] = []
        for command in ("rm /etc/group && echo g > /etc/group", "echo more >> /etc/passwd"):
            with lab.tracing() as steps:
                c.exec(["sh", "-c", command])
            traces[backend].append([[s.kind, s.change["path"]] for s in steps
                                    if s.kind in ("copy-up", "whiteout", "add", "write-upper")])
        lab.reset()
    print(json.dumps(traces))
    """)
    assert got["rootless"] == [[["whiteout", "/etc/group"], ["add", "/etc/group"]],
                               [["copy-up", "/etc/passwd"], ["write-upper", "/etc/passwd"]]], got["rootless"]
    assert got["sim"] == got["rootless"]
