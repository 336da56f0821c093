"""kill -9 at any moment leaves a state that the next command reads truthfully and finishes.

Each trial runs one verb (run, start, stop, restart, rm, exec) through the ``labkit`` command and
SIGKILLs one party at a random moment of it: the client (``bin/labkit``; the engine's worker
is then interrupted as Ctrl-C would), the engine (the server's worker running the command,
the server itself, or the whole in-process command with ``LABKIT_NO_SERVER``), or the
container's supervisor (``labkit-shim``). Then:

* ``ps -a`` agrees with the kernel: a container is Up or Paused exactly when its PID 1
  is alive, and then under a live supervisor; no process of an exited one is left;
* every verb works again: a stopped container starts and is Up, and ``rm -f`` removes it;
* nothing is left of the trial: mounts, cgroups, veths, processes, containers, writable
  layers, half-written records or intents under the trial's state root.

Beside the random trials: a process killed at each named step of create, start, stop and
rm (the step replaced by ``os._exit(9)``), the restart policy killed between two runs, and
the exit code of many short runs under load, which must be PID 1's exactly.

The seed is printed; ``LABKIT_CRASH_SEED=N`` replays a run. ``--long`` runs 2000 trials,
``LABKIT_CRASH_TRIALS=N`` any number; ``LABKIT_CRASH_KEEP_GOING=1`` counts the failures
instead of stopping at the first.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import leaks, state_root
from tests.util import wait_for

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
LABKIT = str(REPO / "bin" / "labkit")
VERBS = ("run", "start", "stop", "restart", "rm", "exec")
VICTIMS = ("client", "worker", "server", "in-process", "shim")
#: How often each is chosen: a command run in-process costs an interpreter's start (~0.5 s), a server's death one more.
WEIGHTS = (3, 3, 1, 1, 3)
#: PID 1 of every trial: ends at once (exit 3) on the stop signal, so stop and restart take no timeout.
COMMAND = ["sh", "-c", "trap 'exit 3' TERM; sleep 60 & wait"]


@pytest.fixture(scope="module")
def world():
    """A state root and a server of this module's own, the busybox image built once."""
    root = state_root()
    sockets = Path(tempfile.mkdtemp(prefix="labkit-test-sock-crash-"))
    env = {**os.environ, "LABKIT_ROOT": str(root), "LABKIT_SOCKET_DIR": str(sockets),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    env.pop("LABKIT_NO_SERVER", None)
    p = subprocess.run([LABKIT, "run", "--rm", "busybox", "true"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    yield root, env
    subprocess.run([LABKIT, "server", "stop"], env=env, capture_output=True, timeout=60)
    subprocess.run(["rm", "-rf", str(sockets)])


def lk(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([LABKIT, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def _pids(pattern: bytes) -> list[int]:
    """Live processes whose command line holds ``pattern`` (a zombie has ended already)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if pattern not in f.read():
                    continue
            with open(f"/proc/{name}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                    continue
        except OSError:
            continue
        out.append(int(name))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _children_named(parent: int, comm: str) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            if text[text.index("(") + 1:text.rindex(")")] == comm and int(text.rpartition(")")[2].split()[2]) == parent:
                out.append(int(name))
    return out


def victims(kind: str, root: Path, env: dict[str, str], client: subprocess.Popen[bytes]) -> list[int]:
    """The processes that stand for ``kind`` in this trial right now."""
    if kind in ("client", "in-process"):
        return [client.pid]
    if kind == "shim":
        return _pids(f"{root}/containers/".encode())
    server = Path(env["LABKIT_SOCKET_DIR"]) / "engine.pid"
    try:
        spid = int(server.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return [spid] if kind == "server" else _children_named(spid, "labkit-worker")


def kernel_truth(root: Path, cid: str) -> tuple[list[int], list[int]]:
    """(processes in the container's cgroup, supervisors of the container), as the kernel has them."""
    procs: list[int] = []
    group = Path("/sys/fs/cgroup/labkit") / cid
    for f in [group / "cgroup.procs", *Path("/sys/fs/cgroup").glob(f"*/labkit/{cid}/cgroup.procs")]:
        try:
            procs += [int(x) for x in f.read_text().split()]
        except OSError:
            continue
    return sorted(set(procs)), _pids(f"{root}/containers/{cid}/".encode())


def check_ps_matches_kernel(root: Path, env: dict[str, str], label: str) -> dict[str, dict]:
    """``ps -a`` (and inspect) against the kernel: Up/Paused exactly when PID 1 lives, under its supervisor.

    A container may end on its own between two looks (a stop signal sent just before the kill takes
    effect), so a disagreement is looked at again a moment later; a lie stays, and fails.
    """
    for attempt in range(3):
        try:
            return _check_ps_matches_kernel(root, env, label)
        except AssertionError:
            if attempt == 2:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _check_ps_matches_kernel(root: Path, env: dict[str, str], label: str) -> dict[str, dict]:
    p = lk(env, "ps", "-a", "--no-trunc", "--format", "{{json .}}")
    assert p.returncode == 0, f"{label}: ps -a failed: {p.stderr}"
    rows = {json.loads(line)["ID"]: json.loads(line) for line in p.stdout.splitlines() if line.strip()}
    for cid, row in rows.items():
        state = json.loads(lk(env, "inspect", cid).stdout)[0]["State"]
        up = row["Status"].startswith("Up")
        assert up == (state["Status"] in ("running", "paused")), f"{label}: ps {row['Status']!r} vs {state}"
        procs, shims = kernel_truth(root, cid)
        if up:
            assert _alive(state["Pid"]), f"{label}: ps says {row['Status']!r} but PID 1 ({state['Pid']}) is gone"
            assert state["Pid"] in procs, f"{label}: PID 1 {state['Pid']} is not in the container's cgroup {procs}"
            assert shims, f"{label}: ps says {row['Status']!r} but no supervisor runs for it"
        else:
            assert not procs, f"{label}: ps says {row['Status']!r} but processes {procs} run in its cgroup"
            assert not shims, f"{label}: ps says {row['Status']!r} but supervisors {shims} still run"
        assert state["Status"] != "removing", f"{label}: a removal was left in progress: {state}"
    return rows


def ids_under(root: Path) -> set[str]:
    names = set()
    for sub in ("containers", "overlay"):
        if (root / sub).exists():
            names |= {n.removesuffix("-init") for n in os.listdir(root / sub) if len(n.removesuffix("-init")) == 64}
    return names


def trial(n: int, rng: random.Random, root: Path, env: dict[str, str]) -> str:
    verb, kind = rng.choice(VERBS), rng.choices(VICTIMS, WEIGHTS)[0]
    name = f"crash{n}"
    port = ["-p", "127.0.0.1::80"] if rng.random() < 0.3 else []
    if verb != "run":
        before = "create" if verb == "start" else "run"
        args = [before, *(["-d"] if before == "run" else []), "--name", name, *port, "busybox", *COMMAND]
        p = lk(env, *args)
        assert p.returncode == 0, f"trial {n}: setup {args}: {p.stderr}"
    argv = {"run": ["run", "-d", "--name", name, *port, "busybox", *COMMAND], "start": ["start", name],
            "stop": ["stop", name], "restart": ["restart", name], "rm": ["rm", "-f", name],
            "exec": ["exec", name, "sh", "-c", "echo hi > /tmp/x; sleep 0.1"]}[verb]
    delay = rng.uniform(0, 0.4 if kind in ("in-process",) else 0.15)
    label = f"trial {n} ({verb}, kill -9 {kind} after {delay * 1000:.0f} ms)"
    run_env = {**env, "LABKIT_NO_SERVER": "1"} if kind == "in-process" else env
    client = subprocess.Popen([LABKIT, *argv], env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    if kind == "shim" and verb in ("run", "start", "restart"):
        if rng.random() < 0.5:  # once it is there, anywhere in its start
            wait_for(lambda: victims(kind, root, env, client) or client.poll() is not None, timeout=10, every=0.002)
            delay /= 3
        else:  # or while it supervises a running container
            delay = rng.uniform(0.1, 0.8)
    time.sleep(delay)
    for pid in victims(kind, root, env, client):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        client.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        client.kill()
        raise AssertionError(f"{label}: the command hung after the kill: {client.stderr}") from None
    ids = ids_under(root)
    rows = check_ps_matches_kernel(root, env, label)
    for cid, row in rows.items():  # every verb works again: start what is not running, then remove it
        if not row["Status"].startswith("Up"):
            p = lk(env, "start", cid)
            assert p.returncode == 0, f"{label}: start after the crash failed: {p.stderr}"
        assert lk(env, "ps", "-q", "--no-trunc", "-f", f"id={cid}").stdout.strip() == cid, \
            f"{label}: not Up after start"
        p = lk(env, "rm", "-f", cid)
        assert p.returncode == 0, f"{label}: rm -f after the crash failed: {p.stderr}"
    assert not lk(env, "ps", "-aq").stdout.strip(), f"{label}: containers left after rm -f"
    ids |= ids_under(root)
    assert wait_for(lambda: not leaks(root, ids), timeout=10), f"{label}: left behind: {leaks(root, ids)}"
    return f"{verb}/{kind}"


def test_kill_9_at_random_points_leaves_a_truthful_and_finishable_state(world, request):
    """After kill -9 of the client, the engine or the shim anywhere in run/start/stop/restart/rm, ps -a matches the
    kernel, start and rm -f work, and nothing of the trial is left on the host."""
    root, env = world
    seed = int(os.environ.get("LABKIT_CRASH_SEED") or random.randrange(1 << 32))
    trials = int(os.environ.get("LABKIT_CRASH_TRIALS") or (2000 if request.config.getoption("--long") else 200))
    print(f"crash trials: {trials}, seed {seed} (LABKIT_CRASH_SEED={seed} replays them)")
    rng = random.Random(seed)
    done: dict[str, int] = {}
    failed: list[str] = []
    t0 = time.monotonic()
    for n in range(trials):
        try:
            kind = trial(n, rng, root, env)
        except AssertionError as err:
            if not os.environ.get("LABKIT_CRASH_KEEP_GOING"):
                raise
            failed.append(str(err).splitlines()[0])
            clear(root, env)
            continue
        done[kind] = done.get(kind, 0) + 1
    print(f"{trials} trials in {time.monotonic() - t0:.0f} s: {sorted(done.items())}")
    assert not failed, f"{len(failed)} of {trials} trials failed:\n" + "\n".join(failed)


def clear(root: Path, env: dict[str, str]) -> None:
    """After a failed trial (``LABKIT_CRASH_KEEP_GOING``): take away what it left, so the next starts clean."""
    for cid in ids_under(root):
        lk(env, "rm", "-f", cid)
        procs, shims = kernel_truth(root, cid)
        for pid in procs + shims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    subprocess.run(["sh", "-c", f"grep -o ' {root}[^ ]*' /proc/self/mounts | xargs -r -n1 umount -l"])
    for cid in ids_under(root):
        subprocess.run(["ip", "link", "del", f"lk{cid[:11]}"], capture_output=True)
        subprocess.run(["rmdir", f"/sys/fs/cgroup/labkit/{cid}"], capture_output=True)
    for sub in ("containers", "overlay"):
        subprocess.run(["sh", "-c", f"rm -rf {root}/{sub}/* {root}/tmp/c-* {root}/tmp/intent-*"])


def _exit_code_loop(env: dict[str, str], root: Path, runs: int, seed: int) -> list[str]:
    """``run busybox`` ``true`` and ``sh -c 'exit N'`` ``runs`` times; each mismatch, with what the state root says."""
    rng = random.Random(seed)
    wrong = []
    for i in range(runs):
        code = rng.choice((0, 0, 1, 7, 42, 255 - 1))
        name = f"code{seed}-{i}"
        cmd = ["true"] if code == 0 and i % 2 else ["sh", "-c", f"exit {code}"]
        p = subprocess.run([LABKIT, "run", "--name", name, "busybox", *cmd], env=env, capture_output=True,
                           text=True, timeout=120)
        if p.returncode != code:
            state = subprocess.run([LABKIT, "inspect", "-f", "{{json .State}}", name], env=env, capture_output=True,
                                   text=True).stdout.strip()
            cdir = root / "containers" / json.loads(lk(env, "inspect", name).stdout)[0]["Id"]
            notes = {f: (cdir / f).read_text() for f in ("exit.json", "shim.log") if (cdir / f).exists()}
            wrong.append(f"{cmd}: exit {p.returncode}, want {code}; State {state}; {notes}; stderr {p.stderr!r}")
        subprocess.run([LABKIT, "rm", "-f", name], env=env, capture_output=True, timeout=60)
    return wrong


def test_exit_code_is_always_pid_1s(world):
    """Under load (three loops at once), every attached run exits with exactly the code its PID 1 returned."""
    from concurrent.futures import ThreadPoolExecutor

    root, env = world
    seed = int(os.environ.get("LABKIT_CRASH_SEED") or random.randrange(1 << 32))
    print(f"exit-code runs: seed {seed}")
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda k: _exit_code_loop(env, root, 100, seed + k), range(3)))
    wrong = [w for r in results for w in r]
    assert not wrong, f"{len(wrong)} of 300 runs exited with another code than PID 1's:\n" + "\n".join(wrong)


#: Where a process dies in the deterministic trials: (verb, what is replaced by os._exit(9), what the script runs).
#: The name is an attribute path from the script's ``lab`` (an Engine) or a module of labkit's.
POINTS = {
    "create, after the writable layer, before the record": ("lab.store.create", "run"),
    "start, after the network and mounts, before the supervisor": ("labkit.linux.process.start", "start"),
    "start, supervisor spawned, its report unread": ("labkit.linux.process._await_start", "start"),
    "start, PID 1 running, before the record says so": ("lab._save:running", "start"),
    "stop, signalled, before waiting": ("lab.backend.wait", "stop"),
    "rm -f, recorded as removing, before anything was removed": ("lab.backend.remove", "rm"),
    "rm -f, layers removed, before the record went": ("lab.store.delete", "rm"),
}

_POINT_SCRIPT = """
import importlib, os, sys, labkit
from labkit.model.lifecycle import Status
lab = labkit.connect(backend="linux", root=sys.argv[1])
where, verb, name = sys.argv[2], sys.argv[3], sys.argv[4]
target, _, when = where.partition(":")
owner_path, attr = target.rsplit(".", 1)
owner = eval(owner_path, {"lab": lab}) if owner_path.split(".")[0] == "lab" \\
    else importlib.import_module(owner_path)
real = getattr(owner, attr)

def die(*args, **kw):
    if when == "running" and args[0].status is not Status.RUNNING:
        return real(*args, **kw)
    os._exit(9)

setattr(owner, attr, die)
command = ["sh", "-c", "trap 'exit 3' TERM; sleep 60 & wait"]
if verb == "run":
    lab.run("busybox", command, name=name, detach=True, ports=["127.0.0.1::80"])
elif verb == "start":
    lab.start(name)
elif verb == "stop":
    lab.stop(name)
elif verb == "rm":
    lab.rm(name, force=True)
"""


@pytest.mark.parametrize("point", list(POINTS))
def test_killed_at_a_known_point_is_finished_or_undone(world, point):
    """A process killed at each step of create, start, stop and rm leaves a state that ps -a reads truthfully,
    that start and rm -f then work on, and nothing of it on the host."""
    root, env = world
    where, verb = POINTS[point]
    name = f"point-{abs(hash(point)) % 10**6}"
    if verb == "start":
        assert lk(env, "create", "--name", name, "-p", "127.0.0.1::80", "busybox", *COMMAND).returncode == 0
    elif verb in ("stop", "rm"):
        assert lk(env, "run", "-d", "--name", name, "-p", "127.0.0.1::80", "busybox", *COMMAND).returncode == 0
    p = subprocess.run([sys.executable, "-c", _POINT_SCRIPT, str(root), where, verb, name], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 9, p.stderr
    ids = ids_under(root)
    rows = check_ps_matches_kernel(root, env, point)
    for cid, row in rows.items():
        if not row["Status"].startswith("Up"):
            p = lk(env, "start", cid)
            assert p.returncode == 0, f"{point}: start after the crash failed: {p.stderr}"
        assert lk(env, "rm", "-f", cid).returncode == 0
    assert not ids_under(root) - ids and not lk(env, "ps", "-aq").stdout.strip()
    assert wait_for(lambda: not leaks(root, ids), timeout=10), f"{point}: left behind: {leaks(root, ids)}"


def test_restart_policy_killed_between_two_runs_leaves_an_exited_container(world):
    """The restart policy's process killed while it waits to start the next run: the next ps -a says Exited (not
    Restarting for ever), start and rm -f work, and nothing is left."""
    root, env = world
    p = lk(env, "run", "-d", "--name", "flaky", "--restart", "on-failure:20", "busybox", "sh", "-c", "exit 1")
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    config = root / "containers" / cid / "config.json"

    def restarter() -> list[int]:
        if json.loads(config.read_text())["state"]["status"] != "restarting":
            return []
        return [pid for pid in _pids(b"labkit.restarter") if _pids(cid.encode()).count(pid)]

    assert wait_for(restarter, timeout=30, every=0.005), "the restart policy never waited between two runs"
    for pid in restarter():
        os.kill(pid, signal.SIGKILL)
    ids = ids_under(root)
    rows = check_ps_matches_kernel(root, env, "restart policy killed")
    assert rows[cid]["Status"].startswith("Exited (1)"), rows[cid]["Status"]
    assert lk(env, "start", cid).returncode == 0
    assert lk(env, "rm", "-f", cid).returncode == 0
    assert wait_for(lambda: not leaks(root, ids), timeout=10), f"left behind: {leaks(root, ids)}"
