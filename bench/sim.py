#!/usr/bin/env python3
"""How fast the simulator runs, and what stepping back costs at depth.

    python bench/sim.py [--rounds N] [--sizes 10,1000,10000] [--tmp DIR]

Prints medians (min–max) of:
  * simulated engine operations per second: `run busybox true` (create, start, exit, record)
    and `exec sh -c 'echo hi'` on a running container, with the simulator's clock manual;
  * `Walk.back()` over the first N steps (10, 1 000, 10 000) of a trace the simulator engine
    recorded itself (runs that add, copy up and delete files), each time stepping back onto a
    position the same number of steps past its checkpoint, so every N replays as many steps
    and the figures compare: they should stay flat, the walk replaying at most CHECKPOINT steps
    (what still differs is the state each replayed step copies: a container's writable layer
    holds more entries later in a run);
  * the simulator's own snapshot restore (`SimBackend.restore`) after 10 and 100 containers.
Needs no root. Uses a private state root (under --tmp, default the system's) and removes it.
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
from labkit.model.events import Step  # noqa: E402
from labkit.model.walk import CHECKPOINT, Walk  # noqa: E402
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


#: What each traced run does: 200 new files, a copy-up and a whiteout, so about 215 steps a run.
BUSY = "i=0; while [ $i -lt 200 ]; do echo $i > /tmp/f$i; i=$((i+1)); done; echo x >> /etc/passwd; rm /etc/group"


def recorded_trace(lab: Engine, n: int) -> list[Step]:
    """The first ``n`` steps the simulator engine records for runs of :data:`BUSY` (each removed after)."""
    start = len(lab.trace)
    while len(lab.trace) - start < n:
        lab.run("busybox", ["sh", "-c", BUSY]).remove()
    return lab.trace[start:start + n]


def back_from(n: int, replay: int) -> int:
    """The position to step back from in a trace of ``n`` steps: the last one whose back() lands
    ``replay`` steps past a checkpoint (checkpoints sit after steps -1, 63, 127, …)."""
    return ((n - 1 - replay) // CHECKPOINT) * CHECKPOINT + replay


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--sizes", default="10,1000,10000", help="trace lengths for Walk.back(), comma-separated")
    ap.add_argument("--tmp", default=None, help="where to make the private state root")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    root = tempfile.mkdtemp(prefix="labkit-bench-sim-", dir=args.tmp)
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

        trace = recorded_trace(lab, sizes[-1])
        replay = (sizes[0] - 1) % CHECKPOINT  # as far past a checkpoint as the shortest trace allows
        print(f"\nWalk.back() in the first N steps the simulator recorded, each replaying {replay} steps")
        print(f"{'':44} {'µs, median (min–max)':>28}")
        for n in sizes:
            w = Walk(trace[:n])
            start = back_from(n, replay)
            w.goto(start)
            w.back()  # builds the checkpoints once
            samples = []
            for _ in range(args.rounds):
                w.goto(start)
                t = time.perf_counter()
                w.back()
                samples.append((time.perf_counter() - t) * 1e6)
            print(f"{f'  N = {n}: back from step {start}':44} {med(samples):>28}")

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
