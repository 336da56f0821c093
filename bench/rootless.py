"""Start-to-exit of a container rootless beside the same container as root, in one run.

Run as root with any Python 3.11 (``sudo .venv/bin/python bench/rootless.py``).
The script makes an unprivileged user (``--user``; by default ``$LABKIT_TEST_USER``
with ``-bench`` added, else ``labkit-bencher``; removed at the end), then starts
two workers with the same interpreter (``/usr/bin/python3``, which any user can
run) and the repository on PYTHONPATH: one as root with the ``linux`` backend,
one as that user with the ``rootless`` backend. Each worker keeps one warm
engine (image built, supervisor compiled, a few unrecorded runs) and, when
asked, times in its own process::

    engine.run("busybox", ["true"], network="none", auto_remove=True)

— ``labkit run --rm --network none busybox true`` in-process: create, start,
wait until the exit is recorded and the supervisor has cleaned up, remove —
and (``--via cli``, or ``both``, the default) the same command through the
``labkit`` command as a learner types it: the command's shell lines, the
compiled client (``labkit/linux/client.c``) and the user's resident engine,
whose socket is where it is for any user with no ``XDG_RUNTIME_DIR``
(``/tmp/labkit-UID``; root's in the run's directory, not to meet another
root engine of the host). The ``labkit`` command is the repository's
``bin/labkit`` in a venv of the same interpreter (``--system-site-packages``,
the checkout on its path) that both users can read.
With ``--case exec`` each worker starts one ``sleep`` container instead and
times ``exec CONTAINER true`` in it (removed when the worker ends).
Timing inside each worker keeps the pipe between the script and the workers
out of the figures.

The two run in interleaved rounds (root then rootless, then the other way
round; in-process, then through the CLI), so load from elsewhere hits both
alike, and the ratio rootless/root is taken per round before its median is
taken.

What differs between the two, besides the user namespace: as root the
container gets cgroups (made and removed every run); rootless without a
delegated cgroup it gets none, and the overlay is mounted by PID 1 inside its
own mount namespace instead of by the engine. The rootless user's id map is
the single-id map unless ``--map range`` grants it an ``/etc/subuid`` range
(then ``newuidmap``/``newgidmap`` run at every start). The range is granted and
the user made and removed with shadow's own tools (useradd, usermod, userdel),
which lock /etc/subuid and /etc/subgid: another user's lines, made meanwhile,
are left as they are.

Nothing is left behind: root's state is a private directory
(``--tmp``/labkit-bench-rootless-…), the user's is in its home, and both go at
the end, on an error and on Ctrl-C, with every process of the user (its engine
too) and its socket directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PREFIX = "labkit-bench-rootless"
#: The user the bench makes and removes: beside the test suite's own (``LABKIT_TEST_USER``), never it.
USER = f"{os.environ['LABKIT_TEST_USER'][:26]}-bench" if os.environ.get("LABKIT_TEST_USER") else "labkit-bencher"
REPO = Path(__file__).resolve().parent.parent
#: The user's subordinate range with ``--map range``: above useradd's automatic ones (100000 up).
SUB_START = 900_000_000
#: Seconds a worker may take to answer (its warm-up builds the busybox image).
ANSWER_TIMEOUT = 300.0

#: The worker: one warm engine that times one ``run --rm`` per "python" line on stdin, and the same through the
#: ``labkit`` command (argv[5]; its resident engine on the same state root) per "cli" line.
WORKER = r"""
import json, os, subprocess, sys, time
import labkit

lab = labkit.connect(backend=sys.argv[1], root=sys.argv[2])
case, command = sys.argv[4], sys.argv[5]
box = lab.run("busybox", ["sleep", "3600"], network="none", detach=True) if case == "exec" else None
cli = [command, "exec", box.id, "true"] if box else [command, "run", "--rm", "--network", "none", "busybox", "true"]


def once(via):
    t0 = time.perf_counter()
    if via == "cli":
        done = subprocess.run(cli, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cli)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    elif box is None:
        lab.run("busybox", ["true"], network="none", auto_remove=True)
    else:
        box.exec(["true"])
    return time.perf_counter() - t0


def socket_dir():
    from labkit.daemon import client
    return client.socket_dir()


try:
    for _ in range(int(sys.argv[3])):
        once("python")
        if command:
            once("cli")
    sockets = socket_dir() if command else ""
    deadline = time.monotonic() + 120  # the first command started the engine, which compiles the client meanwhile
    while command and not os.path.exists(os.path.join(sockets, "client")) and time.monotonic() < deadline:
        time.sleep(0.1)
    if command:
        once("cli")  # one more warm run, now through the compiled client
    print(json.dumps({"backend": lab.backend_name, "why": lab.backend_reason, "sockets": sockets,
                      "client": bool(command) and os.path.exists(os.path.join(sockets, "client"))}), flush=True)
    for line in sys.stdin:
        if line.strip() not in ("python", "cli"):
            break
        try:
            print(json.dumps({"s": once(line.strip())}), flush=True)
        except Exception as e:
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
finally:
    if box is not None:
        box.remove(force=True)
    if command:
        subprocess.run([command, "server", "stop"], capture_output=True, timeout=60)
"""

#: What each --case times, in-process.
CASES = {"run": "start-to-exit of `run --rm --network none busybox true`",
         "exec": "`exec CONTAINER true` in a running `--network none` busybox"}


class Failed(Exception):
    """The run cannot go on; the message says why."""


class Worker:
    """One worker process and its pipes."""

    def __init__(self, label: str, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self.label = label
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.hello = self._answer()

    def _answer(self) -> dict:
        out = self.proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], ANSWER_TIMEOUT)
        line = out.readline() if ready else ""
        if not line:
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise Failed(f"the {self.label} worker stopped answering: {err.strip()[-800:] or 'no output'}")
        return json.loads(line)

    def run(self, via: str = "python") -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{via}\n")
        answer = self._answer()
        if "error" in answer:
            raise Failed(f"{self.label}: {answer['error']}")
        return float(answer["s"])

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------------- the user


def _user_pids(uid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    out.append(int(entry))
            except FileNotFoundError:
                continue
    return out


def make_user(id_range: bool) -> pwd.struct_passwd:
    """The unprivileged user, fresh: without a subordinate range (login.defs(5): a count of 0 grants none), or
    with one granted by usermod when asked."""
    remove_user()
    done = subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", USER],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise Failed(f"useradd {USER}: {done.stderr.strip()}")
    if id_range:
        if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
            raise Failed("--map range needs newuidmap and newgidmap: apt-get install uidmap")
        span = f"{SUB_START}-{SUB_START + 65535}"
        done = subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, USER], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise Failed(f"usermod --add-subuids {span} {USER}: {done.stderr.strip()}")
    return pwd.getpwnam(USER)


def remove_user() -> None:
    """End every process of the user, delete it (userdel takes its subordinate ranges too), its home and its
    engine's socket directory."""
    try:
        info = pwd.getpwnam(USER)
    except KeyError:
        return
    for _ in range(3):
        pids = _user_pids(info.pw_uid)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    shutil.rmtree(info.pw_dir, ignore_errors=True)
    sockets = f"/tmp/labkit-{info.pw_uid}"
    if os.path.isdir(sockets) and os.stat(sockets).st_uid == info.pw_uid:
        shutil.rmtree(sockets, ignore_errors=True)


def make_command(python: str, work: Path) -> str:
    """A ``labkit`` command both users can run: ``bin/labkit`` in a venv of ``python`` whose site-packages has
    the checkout on its path (a .pth file) and sees the system's packages (PyYAML, jsonschema)."""
    venv = work / "venv"
    done = subprocess.run([python, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise Failed(f"{python} -m venv: {done.stderr.strip()[-300:]}")
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "labkit-checkout.pth").write_text(f"{REPO}\n")
    command = venv / "bin" / "labkit"
    shutil.copy(REPO / "bin" / "labkit", command)  # a copy: the command finds its python3 beside itself
    command.chmod(0o755)
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import labkit, yaml, jsonschema"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise Failed(f"the CLI's venv cannot import labkit: {probe.stderr.strip()[-300:]} "
                     "(apt-get install python3-yaml python3-jsonschema)")
    return str(command)


# -------------------------------------------------------------------------------- reporting


def fmt_ms(v: float) -> str:
    return f"{v * 1000:.1f}"


def machine() -> dict[str, str]:
    with open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    one, five, _ = os.getloadavg()
    return {"cpus": f"{os.cpu_count()} x {model}", "kernel": platform.release(), "labkit": rev or "?",
            "load_start": f"{one:.2f} {five:.2f}"}


def report(times: dict[str, list[float]], hello: dict[str, dict], rounds: int, warmup: int,
           case: str = "run", via: str = "python") -> dict:
    how = "in-process" if via == "python" else "through the labkit command"
    print(f"\n== {CASES[case]}, {how}: {rounds} rounds + {warmup} warm-up runs per worker, interleaved")
    for label, h in hello.items():
        print(f"  {label}: {h['why']}")
        if via == "cli":
            print(f"  {label}'s engine listens in {h['sockets']}; "
                  f"{'the compiled client' if h['client'] else 'no compiled client: the Python one'} sends")
    print(f"\n  {'case':<30} {'median':>8} {'min':>8} {'max':>8}  (ms)")
    rows = []
    for label, series in times.items():
        m, lo, hi = statistics.median(series), min(series), max(series)
        print(f"  {label:<30} {fmt_ms(m):>8} {fmt_ms(lo):>8} {fmt_ms(hi):>8}")
        rows.append({"case": label, "median_ms": m * 1000, "min_ms": lo * 1000, "max_ms": hi * 1000,
                     "n": len(series)})
    per_round = [b / a for a, b in zip(times["root"], times["rootless"], strict=True)]
    m, lo, hi = statistics.median(per_round), min(per_round), max(per_round)
    print(f"\n  ratio rootless / root, per round: median {m:.2f} (min {lo:.2f}, max {hi:.2f})")
    one, five, _ = os.getloadavg()
    print(f"  (load average {one:.2f} {five:.2f} on {os.cpu_count()} CPUs at the end)")
    return {"rows": rows, "ratio": {"median": m, "min": lo, "max": hi, "per_round": per_round}}


# ------------------------------------------------------------------------------------- main


def bench(args: argparse.Namespace, work: Path, cleanup: list[Path]) -> dict:
    user = make_user(args.map == "range")
    results: dict = {"machine": machine(), "rounds": args.rounds, "map": args.map, "case": args.case}
    for k, v in results["machine"].items():
        print(f"{k:>10}: {v}")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
    state = work / "state"
    state.mkdir()
    user_state = os.path.join(user.pw_dir, ".local", "share", "labkit")
    vias = ["python", "cli"] if args.via == "both" else [args.via]
    command = ""
    if "cli" in vias:
        # Both users run the venv: in a directory of its own under the system's temp dir (every user may pass
        # through /tmp; --tmp may be a private one), root's, which the user may read and not change.
        shared = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-cli-"))
        shared.chmod(0o755)
        cleanup.append(shared)
        command = make_command(args.python, shared)
    # Root's engine socket beside the venv: a short path (a unix socket's is at most 107 bytes, unix(7)).
    root_sockets = (Path(command).parents[2] if command else work) / "sockets"
    workers: list[Worker] = []
    try:
        workers.append(Worker("root", [args.python, "-c", WORKER, "linux", str(state), str(args.warmup),
                                       args.case, command],
                              {**env, "HOME": "/root", "LABKIT_ROOT": str(state),
                               "LABKIT_SOCKET_DIR": str(root_sockets)}, str(work)))
        workers.append(Worker("rootless", ["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid),
                                           "--init-groups", args.python, "-c", WORKER, "rootless", user_state,
                                           str(args.warmup), args.case, command],
                              {**env, "HOME": user.pw_dir}, user.pw_dir))
        times = {via: {w.label: [] for w in workers} for via in vias}
        for r in range(args.rounds):
            for via in vias:
                for w in workers if r % 2 == 0 else workers[::-1]:
                    times[via][w.label].append(w.run(via))
        hello = {w.label: w.hello for w in workers}
        if "python" in vias:
            results.update(report(times["python"], hello, args.rounds, args.warmup, args.case))
        if "cli" in vias:
            results["cli"] = report(times["cli"], hello, args.rounds, args.warmup, args.case, via="cli")
            results["cli"]["client"] = {w.label: w.hello["client"] for w in workers}
            results["cli"]["sockets"] = {w.label: w.hello["sockets"] for w in workers}
        results["reasons"] = {w.label: w.hello["why"] for w in workers}
    finally:
        for w in workers:
            w.close()
    return results


def main(argv: list[str] | None = None) -> int:
    global USER  # --user names another
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=31, help="timed rounds (default 31)")
    parser.add_argument("--warmup", type=int, default=3, help="unrecorded runs per worker first (default 3)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 1 warm-up run: a smoke test")
    parser.add_argument("--map", choices=("single", "range"), default="single",
                        help="the rootless user's id map (default single; range grants an /etc/subuid range)")
    parser.add_argument("--case", choices=sorted(CASES), default="run",
                        help="what is timed: run (start-to-exit, the default) or exec (in a running container)")
    parser.add_argument("--via", choices=("python", "cli", "both"), default="both",
                        help="in-process (python), through the labkit command (cli), or both (the default)")
    parser.add_argument("--user", help=f"the user to make and remove (default {USER})")
    parser.add_argument("--python", default="/usr/bin/python3",
                        help="the interpreter of both workers; any user must be able to run it")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--tmp", default="/tmp", help="where root's private state directory is made")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup = 3, 1
    if args.user:
        USER = args.user
    if os.geteuid() != 0:
        print("rootless.py: needs root (it creates and removes a user); run it with sudo.", file=sys.stderr)
        return 2
    if not os.access(args.python, os.X_OK):
        print(f"rootless.py: {args.python} is missing; give --python an interpreter any user can run.",
              file=sys.stderr)
        return 2
    owner = os.getpid()

    def terminate(signum: int, _frame: object) -> None:
        if os.getpid() != owner:  # a forked copy dies quietly; the cleanup is the owner's
            os._exit(128 + signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    work = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-", dir=args.tmp))
    cleanup = [work]
    try:
        results = bench(args, work, cleanup)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    except Failed as err:
        print(f"rootless.py: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        remove_user()
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
