#!/usr/bin/env python3
"""How fast the simulator runs, and what stepping back costs at depth.

    python bench/sim.py [--rounds N]

Prints medians (min–max) of:
  * simulated engine operations per second: `run busybox true` (create, start, exit, record)
    and `exec sh -c 'echo hi'` on a running container, with the simulator's clock manual;
  * `Walk.back()` over a trace of 10, 1 000 and 10 000 steps (it should stay flat: the
    walk replays at most CHECKPOINT steps from a checkpoint);
  * the simulator's own snapshot restore (`SimBackend.restore`) after 10 and 100 containers.
Needs no root. Uses a private state root and removes it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from labkit.engine import Engine  # noqa: E402
from labkit.model import events  # noqa: E402
from labkit.model.events import Step  # noqa: E402
from labkit.model.walk import Walk  # noqa: E402
from labkit.sim.backend import SimBackend  # noqa: E402
from labkit.store import Store  # noqa: E402


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):10.3f} ({min(xs):.3f}–{max(xs):.3f})"


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=31)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="labkit-bench-sim-")
    try:
        lab = Engine(root=root, backend=SimBackend(Store(root), realtime=False))
        lab.run("busybox", ["true"])  # builds the synthetic base image once

        def run_true() -> None:
            lab.run("busybox", ["true"], auto_remove=True)

        runs = timed(run_true, args.rounds)
        c = lab.run("busybox", ["sleep", "100000"], detach=True)
        execs = timed(lambda: lab.exec_output(c.id, ["sh", "-c", "echo hi"]), args.rounds)
        print(f"{'simulated operation':44} {'ms, median (min–max)':>28}   ops/s")
        print(f"{'run --rm busybox true':44} {med(runs):>28}   {1000 / statistics.median(runs):7.0f}")
        print(f"{'exec sh -c echo hi':44} {med(execs):>28}   {1000 / statistics.median(execs):7.0f}")

        print(f"\n{'Walk.back() after N steps':44} {'µs, median (min–max)':>28}")
        for n in (10, 1_000, 10_000):
            steps = [Step(i, "exec", f"c{i % 5}", *events.copy_up(f"/f{i % 300}", i, 1)) for i in range(n)]
            w = Walk(steps)
            w.goto(n - 1)
            w.back()  # builds the checkpoints once
            samples = []
            for _ in range(args.rounds):
                w.goto(n - 1)
                t = time.perf_counter()
                w.back()
                samples.append((time.perf_counter() - t) * 1e6)
            print(f"{f'  N = {n}':44} {med(samples):>28}")

        print(f"\n{'SimBackend.restore(snapshot) with K containers':44} {'ms, median (min–max)':>28}")
        backend = lab.backend
        for k in (10, 100):
            while len(lab.ps(all=True)) < k:
                lab.create("busybox", ["true"])
            snap = backend.snapshot()
            print(f"{f'  K = {k}':44} {med(timed(lambda s=snap: backend.restore(s), max(5, args.rounds // 3))):>28}")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
