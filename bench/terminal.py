#!/usr/bin/env python3
"""What a terminal costs an exec: ``labkit exec -it NAME true`` beside ``labkit exec NAME true`` (and Docker's).

    sudo .venv/bin/python bench/terminal.py [--rounds N] [--quick] [--json FILE]

Each command runs on a new pseudo-terminal (as a terminal emulator runs it: the command is the
session leader and the pty's slave is its 0-2 and controlling terminal) and is timed from fork to
reap. ``exec -it`` adds what a terminal is made of: the exec'd process opens a new
pseudo-terminal from the container's devpts and passes its master to the shim, which relays it
to the caller over a socket pair; the caller's terminal is put in raw mode and back. The cases
run round-robin (A B C A B C …) so load from elsewhere hits every case alike; per case the
median, min and max in milliseconds are printed, and the per-round ratio of ``-it`` to plain
exec. Through the resident engine (``bin/labkit`` and its C client) and in-process
(``LABKIT_NO_SERVER=1``). ``docker exec -it`` and ``docker exec`` are timed beside them when a
Docker daemon answers (``docker version``), with its ``busybox`` image; otherwise the line says
there is none. Uses a private state root and socket directory, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import labkit  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, "bin", "labkit")


def on_pty(argv: list[str], env: dict[str, str], timeout: float = 60) -> tuple[float, int, bytes]:
    """Run ``argv`` on a new pseudo-terminal (24x80); its wall time in ms, exit code and output."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(master)
            os.setsid()
            import fcntl
            import termios

            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + timeout
    status = None
    while status is None and time.monotonic() < deadline:
        if select.select([master], [], [], 0.01)[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:
                pass
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
    elapsed = (time.perf_counter() - start) * 1000
    os.close(master)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise RuntimeError(f"{argv} did not end within {timeout} s: {bytes(seen)!r}")
    return elapsed, os.waitstatus_to_exitcode(status), bytes(seen)


def stop_labkit(lab, env: dict[str, str], work: str) -> None:
    """Stop the bench's resident engine, remove every container and idle network of its state root, then the
    root itself: what a bench run on a private root leaves is nothing."""
    subprocess.run(["sh", BIN, "server", "stop"], env=env, capture_output=True, timeout=60)
    for cid in lab.store.container_ids():
        try:
            lab.rm(cid, force=True)
        except Exception:
            pass
    lab.network_prune()
    shutil.rmtree(work, ignore_errors=True)


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "version"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--quick", action="store_true", help="three rounds, for the CI smoke test")
    ap.add_argument("--json", metavar="FILE", help="write the figures here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/terminal.py needs root (it runs real containers); run it with sudo", file=sys.stderr)
        return 2
    rounds = 3 if args.quick else args.rounds
    work = tempfile.mkdtemp(prefix="labkit-bench-terminal-")
    root, sockets = os.path.join(work, "state"), os.path.join(work, "sock")
    os.makedirs(sockets, mode=0o700)
    env = {**os.environ, "LABKIT_ROOT": root, "LABKIT_SOCKET_DIR": sockets,
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}"}
    env.pop("LABKIT_NO_SERVER", None)
    here = {**env, "LABKIT_NO_SERVER": "1"}
    lab = labkit.connect(backend="linux", root=root)
    name = "bench-tty"
    docker = docker_answers()
    try:
        lab.run("busybox", ["sleep", "100000"], name=name, detach=True, network="none")
        subprocess.run(["sh", BIN, "version"], env=env, capture_output=True, timeout=120)  # the resident engine
        for _ in range(50):
            if os.path.exists(os.path.join(sockets, "client")):
                break
            time.sleep(0.1)
        cases = {
            "labkit exec -it NAME true (resident engine)": (["/bin/sh", BIN, "exec", "-it", name, "true"], env),
            "labkit exec NAME true (resident engine)": (["/bin/sh", BIN, "exec", name, "true"], env),
            "labkit exec -it NAME true (in-process)": ([sys.executable, "-m", "labkit", "exec", "-it", name, "true"], here),
            "labkit exec NAME true (in-process)": ([sys.executable, "-m", "labkit", "exec", name, "true"], here),
        }
        if docker:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
            subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "100000"],
                           check=True, capture_output=True, timeout=120)
            cases["docker exec -it NAME true"] = (["docker", "exec", "-it", name, "true"], dict(os.environ))
            cases["docker exec NAME true"] = (["docker", "exec", name, "true"], dict(os.environ))
        for argv, case_env in cases.values():  # warm-up: every path built and cached once
            on_pty(argv, case_env)
        times: dict[str, list[float]] = {case: [] for case in cases}
        for _ in range(rounds):
            for case, (argv, case_env) in cases.items():
                ms, code, out = on_pty(argv, case_env)
                if code != 0:
                    raise RuntimeError(f"{case}: exit {code}: {out!r}")
                times[case].append(ms)
        width = max(map(len, cases))
        print(f"{'case':<{width}}  {'median':>7}  {'min':>7}  {'max':>7}   (ms, {rounds} rounds)")
        for case, values in times.items():
            print(f"{case:<{width}}  {statistics.median(values):7.1f}  {min(values):7.1f}  {max(values):7.1f}")
        ratios = {}
        for way in ("resident engine", "in-process"):
            per_round = [a / b for a, b in zip(times[f"labkit exec -it NAME true ({way})"],
                                               times[f"labkit exec NAME true ({way})"], strict=True)]
            ratios[way] = per_round
            print(f"ratio exec -it / exec ({way}), per round: median {statistics.median(per_round):.2f} "
                  f"(min {min(per_round):.2f}, max {max(per_round):.2f})")
        if not docker:
            print("docker: no Docker daemon answers here (docker version), so no docker exec -it figure")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"rounds": rounds, "ms": times, "ratio": ratios, "docker": docker}, f, indent=2)
        return 0
    finally:
        if docker:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
        stop_labkit(lab, env, work)


if __name__ == "__main__":
    sys.exit(main())
