#!/usr/bin/env python3
"""What copy-on-write costs: the first write to an image file (a copy-up) vs the second.

    sudo .venv/bin/python bench/copyup.py [--rounds N] [--sizes 1K,1M,16M,64M,256M] [--quick]

For each size, an image layer holds a file of that size; a fresh container appends one byte to it
twice, timed inside the container from the host's view (the exec's wall time, median over rounds,
a fresh container per round so every first write is a real copy-up). The first append makes the
kernel copy the whole file into the writable layer (overlayfs copy-up); the second finds it there.
Prints the curve notebook 03 draws: size, first write, second write, their ratio, MB/s of the copy.
Uses a private state root and removes everything at the end.
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

import labkit  # noqa: E402

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size_of(text: str) -> int:
    return int(text[:-1]) * UNITS[text[-1].upper()] if text[-1].upper() in UNITS else int(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sizes", default="1K,64K,1M,16M,64M,256M")
    ap.add_argument("--quick", action="store_true", help="a tiny pass for CI smoke tests")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/copyup.py needs root (it runs real containers); run it with sudo", file=sys.stderr)
        return 2
    sizes = ["1K", "1M"] if args.quick else args.sizes.split(",")
    rounds = 2 if args.quick else args.rounds
    root = tempfile.mkdtemp(prefix="labkit-bench-copyup-")
    lab = labkit.connect(backend="linux", root=root)
    try:
        ctx = os.path.join(root, "ctx")
        os.makedirs(ctx)
        steps = []
        for s in sizes:
            with open(os.path.join(ctx, f"f{s}"), "wb") as f:
                f.write(os.urandom(size_of(s)))
            steps.append(f"COPY f{s} /data/f{s}")
        with open(os.path.join(ctx, "Labfile"), "w") as f:
            f.write("FROM busybox\n" + "\n".join(steps) + "\nCMD [\"sleep\", \"100000\"]\n")
        lab.build(ctx, "copyup:bench", on_step=lambda _line: None)
        print(f"{'size':>6} {'first write ms':>22} {'second write ms':>22} {'first/second':>13} {'copy MB/s':>10}")
        for s in sizes:
            first, second = [], []
            for _ in range(rounds):
                c = lab.run("copyup:bench", detach=True, network="none")
                for store in (first, second):
                    t = time.perf_counter()
                    code, out = lab.exec_output(c.id, ["sh", "-c", f"echo x >> /data/f{s}"])
                    store.append((time.perf_counter() - t) * 1000)
                    if code != 0:
                        raise RuntimeError(f"append failed: {out}")
                lab.rm(c.id, force=True)
            f_med, s_med = statistics.median(first), statistics.median(second)
            rate = size_of(s) / (1 << 20) / max((f_med - s_med) / 1000, 1e-6)
            print(f"{s:>6} {f_med:9.2f} ({min(first):.1f}–{max(first):.1f}) {s_med:9.2f} ({min(second):.1f}–"
                  f"{max(second):.1f}) {f_med / s_med:13.2f} {rate:10.0f}")
        return 0
    finally:
        for c in lab.ps(all=True):
            lab.rm(c["Id"], force=True)
        lab.network_prune()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
