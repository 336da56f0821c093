"""Start-to-exit of a container rootless beside the same container as root, in one run.

Run as root with any Python 3.11 (``sudo .venv/bin/python bench/rootless.py``).
The script makes an unprivileged user (``labkit-bencher``, removed at the end),
then starts two workers with the same interpreter (``/usr/bin/python3``, which
any user can run) and the repository on PYTHONPATH: one as root with the
``linux`` backend, one as that user with the ``rootless`` backend. Each
worker keeps one warm engine (image built, supervisor compiled, a few
unrecorded runs) and, when asked, times in its own process::

    engine.run("busybox", ["true"], network="none", auto_remove=True)

— ``labkit run --rm --network none busybox true`` in-process: create, start,
wait until the exit is recorded and the supervisor has cleaned up, remove.
With ``--case exec`` each worker starts one ``sleep`` container instead and
times ``exec CONTAINER true`` in it (removed when the worker ends).
Timing inside each worker keeps the pipe between the script and the workers
out of the figures.

The two run in interleaved rounds (root then rootless, then the other way
round), so load from elsewhere hits both alike, and the ratio rootless/root is
taken per round before its median is taken.

What differs between the two, besides the user namespace: as root the
container gets cgroups (made and removed every run); rootless without a
delegated cgroup it gets none, and the overlay is mounted by PID 1 inside its
own mount namespace instead of by the engine. The rootless user's id map is
the single-id map unless ``--map range`` grants it an ``/etc/subuid`` range
(then ``newuidmap``/``newgidmap`` run at every start).

Nothing is left behind: root's state is a private directory
(``--tmp``/labkit-bench-rootless-…), the user's is in its home, and both go at
the end, on an error and on Ctrl-C, with every process of the user.
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
USER = "labkit-bencher"
REPO = Path(__file__).resolve().parent.parent
SUBID_FILES = ("/etc/subuid", "/etc/subgid")
SUB_START = 400000
#: Seconds a worker may take to answer (its warm-up builds the busybox image).
ANSWER_TIMEOUT = 300.0

#: The worker: one warm engine that times one ``run --rm`` per "run" line on stdin.
WORKER = r"""
import json, sys, time
import labkit

lab = labkit.connect(backend=sys.argv[1], root=sys.argv[2])
case = sys.argv[4]
box = lab.run("busybox", ["sleep", "3600"], network="none", detach=True) if case == "exec" else None


def once():
    t0 = time.perf_counter()
    if box is None:
        lab.run("busybox", ["true"], network="none", auto_remove=True)
    else:
        box.exec(["true"])
    return time.perf_counter() - t0


try:
    for _ in range(int(sys.argv[3])):
        once()
    print(json.dumps({"backend": lab.backend_name, "why": lab.backend_reason}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        try:
            print(json.dumps({"s": once()}), flush=True)
        except Exception as e:
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
finally:
    if box is not None:
        box.remove(force=True)
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

    def run(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
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


def _drop_subids(name: str) -> None:
    """Remove ``name``'s lines from /etc/subuid and /etc/subgid, leaving every other line as it is."""
    for path in SUBID_FILES:
        if os.path.exists(path):
            text = Path(path).read_text()
            kept = "".join(ln for ln in text.splitlines(keepends=True) if not ln.startswith(f"{name}:"))
            if kept != text:
                Path(path).write_text(kept)


def make_user(id_range: bool) -> pwd.struct_passwd:
    """The unprivileged user, fresh; with a subordinate range only when asked (useradd may grant one)."""
    remove_user()
    done = subprocess.run(["useradd", "-m", "-s", "/bin/sh", USER], capture_output=True, text=True)
    if done.returncode != 0:
        raise Failed(f"useradd {USER}: {done.stderr.strip()}")
    _drop_subids(USER)
    if id_range:
        if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
            raise Failed("--map range needs newuidmap and newgidmap: apt-get install uidmap")
        for path in SUBID_FILES:
            with open(path, "a") as f:
                f.write(f"{USER}:{SUB_START}:65536\n")
    return pwd.getpwnam(USER)


def remove_user() -> None:
    """End every process of the user, delete it and its home, and its subordinate ranges."""
    try:
        info = pwd.getpwnam(USER)
    except KeyError:
        _drop_subids(USER)
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
    _drop_subids(USER)


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
           case: str = "run") -> dict:
    print(f"\n== {CASES[case]}, in-process: {rounds} rounds + {warmup} warm-up runs per worker, interleaved")
    for label, h in hello.items():
        print(f"  {label}: {h['why']}")
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


def bench(args: argparse.Namespace, work: Path) -> dict:
    user = make_user(args.map == "range")
    results: dict = {"machine": machine(), "rounds": args.rounds, "map": args.map, "case": args.case}
    for k, v in results["machine"].items():
        print(f"{k:>10}: {v}")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
    state = work / "state"
    state.mkdir()
    user_state = os.path.join(user.pw_dir, ".local", "share", "labkit")
    workers: list[Worker] = []
    try:
        workers.append(Worker("root", [args.python, "-c", WORKER, "linux", str(state), str(args.warmup),
                               args.case],
                              {**env, "HOME": "/root"}, str(work)))
        workers.append(Worker("rootless", ["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid),
                                           "--init-groups", args.python, "-c", WORKER, "rootless", user_state,
                                           str(args.warmup), args.case],
                              {**env, "HOME": user.pw_dir}, user.pw_dir))
        times: dict[str, list[float]] = {w.label: [] for w in workers}
        for r in range(args.rounds):
            for w in workers if r % 2 == 0 else workers[::-1]:
                times[w.label].append(w.run())
        results.update(report(times, {w.label: w.hello for w in workers}, args.rounds, args.warmup, args.case))
        results["reasons"] = {w.label: w.hello["why"] for w in workers}
    finally:
        for w in workers:
            w.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=31, help="timed rounds (default 31)")
    parser.add_argument("--warmup", type=int, default=3, help="unrecorded runs per worker first (default 3)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 1 warm-up run: a smoke test")
    parser.add_argument("--map", choices=("single", "range"), default="single",
                        help="the rootless user's id map (default single; range grants an /etc/subuid range)")
    parser.add_argument("--case", choices=sorted(CASES), default="run",
                        help="what is timed: run (start-to-exit, the default) or exec (in a running container)")
    parser.add_argument("--python", default="/usr/bin/python3",
                        help="the interpreter of both workers; any user must be able to run it")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--tmp", default="/tmp", help="where root's private state directory is made")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup = 3, 1
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
    try:
        results = bench(args, work)
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
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
