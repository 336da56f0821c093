#!/usr/bin/env python3
"""``labkit exec -it NAME true`` and ``labkit cp`` (into and out of a container) beside Docker's, in one run.

    sudo .venv/bin/python bench/beside_docker.py [--rounds N] [--quick] [--labkit-only] [--json FILE]

Six cases run round-robin (A B C … A B C …), so load from elsewhere hits every case alike, after
one warm-up round: ``labkit exec -it NAME true`` and ``docker exec -it NAME true``, each on a new
pseudo-terminal (``on_pty`` of ``bench/terminal.py``: the command is the session leader, the pty's
slave its 0-2 and controlling terminal); ``labkit cp FILE NAME:/bench-in`` and ``docker cp`` the
same (a 4 KiB file into a running container); ``labkit cp NAME:/bench-in OUT`` and ``docker cp`` the
same (out of it). Every case is timed from fork to reap. Per case the median, min and max in ms
are printed, and for each operation the median (min, max) of the per-round ratio labkit / Docker.
The load average is printed at the start and at the end.

labkit runs through its resident engine (``bin/labkit`` and its C client) on a private state root.
Docker is Debian's ``dockerd`` started for the run by ``tests/parity/dockerd.py``: its own socket,
data root, exec root, pidfile, cgroup parent and bridge, no iptables; never a system daemon. Its
``busybox`` image is imported from the files labkit's is made of. Both containers run ``sleep`` with
no network. The daemon and every state directory are removed at the end, on an error, on Ctrl-C
and on SIGTERM. Without docker.io (or with ``--labkit-only``) one line says so and labkit is
measured alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from terminal import on_pty, stop_labkit  # noqa: E402

import labkit  # noqa: E402
from tests.parity.dockerd import PREFIX, Dockerd, docker_cli, sweep_stale  # noqa: E402

BIN = os.path.join(REPO, "bin", "labkit")
NAME = "bench-docker"
OPERATIONS = ("exec -it NAME true", "cp FILE NAME:/bench-in", "cp NAME:/bench-in OUT")


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def timed(argv: list[str], env: dict[str, str], timeout: float = 120) -> tuple[float, int, bytes]:
    """Run ``argv`` with no terminal; its wall time from fork to reap in ms, exit code and stderr."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=timeout)
    return (time.perf_counter() - start) * 1000, done.returncode, done.stderr


def docker_present() -> bool:
    return shutil.which("dockerd") is not None and docker_cli() is not None


def _stop_on_sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21, help="timed rounds (default 21)")
    ap.add_argument("--quick", action="store_true", help="three rounds, for the smoke test")
    ap.add_argument("--labkit-only", action="store_true", help="no Docker, even where docker.io is installed")
    ap.add_argument("--json", metavar="FILE", help="write the figures here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/beside_docker.py needs root (it runs real containers and a dockerd); run it with sudo", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print("--rounds must be at least 1", file=sys.stderr)
        return 2
    rounds = 3 if args.quick else args.rounds
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    signal.signal(signal.SIGHUP, _stop_on_sigterm)

    with_docker = docker_present() and not args.labkit_only
    if not with_docker:
        why = "--labkit-only" if args.labkit_only else "docker.io (dockerd and a docker client) is not installed"
        print(f"docker: {why}, so labkit is measured alone", flush=True)
    work = tempfile.mkdtemp(prefix="labkit-bench-docker-")
    root, sockets = os.path.join(work, "state"), os.path.join(work, "sock")
    os.makedirs(sockets, mode=0o700)
    payload, out_dir = os.path.join(work, "payload"), os.path.join(work, "out")
    os.makedirs(out_dir)
    with open(payload, "wb") as f:
        f.write(os.urandom(4096))
    env = {**os.environ, "LABKIT_ROOT": root, "LABKIT_SOCKET_DIR": sockets,
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}"}
    env.pop("LABKIT_NO_SERVER", None)
    lab = labkit.connect(backend="linux", root=root)
    daemon: Dockerd | None = None
    try:
        print(f"start: {load_note()}", flush=True)
        lab.run("busybox", ["sleep", "100000"], name=NAME, detach=True, network="none")
        subprocess.run(["sh", BIN, "version"], env=env, capture_output=True, timeout=120)  # the resident engine
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(sockets, "client")) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not os.path.exists(os.path.join(sockets, "client")):
            print("labkit: no resident engine answered, so every labkit command runs in a fresh interpreter", flush=True)
        lk = ["/bin/sh", BIN]
        cases: dict[str, tuple[str, list[str], dict[str, str]]] = {
            "labkit exec -it NAME true": ("pty", [*lk, "exec", "-it", NAME, "true"], env),
            "labkit cp FILE NAME:/bench-in": ("plain", [*lk, "cp", payload, f"{NAME}:/bench-in"], env),
            "labkit cp NAME:/bench-in OUT": ("plain", [*lk, "cp", f"{NAME}:/bench-in",
                                                        os.path.join(out_dir, "labkit")], env),
        }
        if with_docker:
            from labkit.images.base import assemble, find_source

            sweep_stale()
            daemon = Dockerd(Path(tempfile.mkdtemp(prefix=PREFIX)))
            daemon.start()
            rootfs = daemon.state / "rootfs"
            rootfs.mkdir()
            kind, busybox = find_source("auto", "/bin/busybox", None)
            assemble(str(rootfs), kind, busybox)
            daemon.import_busybox(str(rootfs))
            shutil.rmtree(rootfs)
            done = daemon.docker("run", "-d", "--name", NAME, "--network", "none", "busybox", "sleep", "100000")
            if done.returncode:
                raise RuntimeError(f"docker run: {done.stderr.decode()}")
            dk = [daemon.cli]
            # Put Docker's rows beside labkit's, operation by operation, in the round-robin order.
            cases = {
                "labkit exec -it NAME true": cases["labkit exec -it NAME true"],
                "docker exec -it NAME true": ("pty", [*dk, "exec", "-it", NAME, "true"], daemon.env),
                "labkit cp FILE NAME:/bench-in": cases["labkit cp FILE NAME:/bench-in"],
                "docker cp FILE NAME:/bench-in": ("plain", [*dk, "cp", payload, f"{NAME}:/bench-in"], daemon.env),
                "labkit cp NAME:/bench-in OUT": cases["labkit cp NAME:/bench-in OUT"],
                "docker cp NAME:/bench-in OUT": ("plain", [*dk, "cp", f"{NAME}:/bench-in",
                                                            os.path.join(out_dir, "docker")], daemon.env),
            }

        def once(case: str) -> float:
            how, argv, case_env = cases[case]
            ms, code, out = (on_pty if how == "pty" else timed)(argv, case_env)
            if code != 0:
                raise RuntimeError(f"{case}: exit {code}: {out[-500:]!r}")
            return ms

        for case in cases:  # warm-up: every path built and cached once
            once(case)
        times: dict[str, list[float]] = {case: [] for case in cases}
        for _ in range(rounds):
            for case in cases:
                times[case].append(once(case))
        for who in ("labkit", "docker") if with_docker else ("labkit",):
            got = Path(out_dir, who).read_bytes()
            if got != Path(payload).read_bytes():
                raise RuntimeError(f"{who} cp: the file copied out is not the file copied in")

        width = max(map(len, cases))
        print(f"{'case':<{width}}  {'median':>7}  {'min':>7}  {'max':>7}   (ms, {rounds} rounds, interleaved)")
        for case, values in times.items():
            print(f"{case:<{width}}  {statistics.median(values):7.1f}  {min(values):7.1f}  {max(values):7.1f}")
        ratios: dict[str, list[float]] = {}
        if with_docker:
            for op in OPERATIONS:
                per_round = [a / b for a, b in zip(times[f"labkit {op}"], times[f"docker {op}"], strict=True)]
                ratios[op] = per_round
                print(f"ratio labkit / docker {op}, per round: median {statistics.median(per_round):.2f} "
                      f"(min {min(per_round):.2f}, max {max(per_round):.2f})")
        end_load = load_note()
        print(f"end: {end_load}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"rounds": rounds, "docker": with_docker, "ms": times, "ratio": ratios,
                           "load_end": end_load, "work": work,
                           "dockerd_state": str(daemon.state) if daemon else None}, f, indent=2)
        return 0
    finally:
        if daemon is not None:
            left = daemon.stop()
            if left:
                print(f"the bench's dockerd left these behind: {left}", file=sys.stderr)
        stop_labkit(lab, env, work)


if __name__ == "__main__":
    sys.exit(main())
