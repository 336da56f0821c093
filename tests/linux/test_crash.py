"""kill -9 at any moment leaves a state that the next command reads truthfully and finishes.

Each trial runs one verb (run, start, stop, restart, rm) through the ``labkit`` command and
SIGKILLs one party at a random moment of it: the client (``bin/labkit``; the engine's worker
is then interrupted as Ctrl-C would), the engine (the server's worker running the command,
the server itself, or the whole in-process command with ``LABKIT_NO_SERVER``), or the
container's supervisor (``labkit-shim``). Then:

* ``ps -a`` agrees with the kernel: a container is Up or Paused exactly when its PID 1
  is alive, and then under a live supervisor; no process of an exited one is left;
* every verb works again: a stopped container starts and is Up, and ``rm -f`` removes it;
* nothing is left of the trial: mounts, cgroups, veths, processes, containers, writable
  layers, half-written records or intents under the trial's state root.

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
VERBS = ("run", "start", "stop", "restart", "rm")
VICTIMS = ("client", "worker", "server", "in-process", "shim")
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
    """``ps -a`` (and inspect) against the kernel: Up/Paused exactly when PID 1 lives, under its supervisor."""
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
    verb, kind = rng.choice(VERBS), rng.choice(VICTIMS)
    name = f"crash{n}"
    port = ["-p", "127.0.0.1::80"] if rng.random() < 0.3 else []
    if verb != "run":
        before = "create" if verb == "start" else "run"
        args = [before, *(["-d"] if before == "run" else []), "--name", name, *port, "busybox", *COMMAND]
        p = lk(env, *args)
        assert p.returncode == 0, f"trial {n}: setup {args}: {p.stderr}"
    argv = {"run": ["run", "-d", "--name", name, *port, "busybox", *COMMAND], "start": ["start", name],
            "stop": ["stop", name], "restart": ["restart", name], "rm": ["rm", "-f", name]}[verb]
    delay = rng.uniform(0, 0.4 if kind in ("in-process",) else 0.15)
    label = f"trial {n} ({verb}, kill -9 {kind} after {delay * 1000:.0f} ms)"
    run_env = {**env, "LABKIT_NO_SERVER": "1"} if kind == "in-process" else env
    client = subprocess.Popen([LABKIT, *argv], env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    if kind == "shim" and verb in ("run", "start", "restart"):  # once it is there, anywhere in its start
        wait_for(lambda: victims(kind, root, env, client) or client.poll() is not None, timeout=10, every=0.002)
        delay /= 3
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
