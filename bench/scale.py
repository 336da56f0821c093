#!/usr/bin/env python3
"""How many sleeping containers start in T seconds, and what 100 running ones cost: labkit beside runc.

    sudo .venv/bin/python bench/scale.py [--seconds 30] [--hundred 100] [--quick]

For each runtime in turn (labkit in-process with `--network none`, then `runc run -d` on a busybox
bundle), one starter starts `sleep` containers back to back for T seconds and counts them; then the
memory the first N running containers took (MemTotal − MemAvailable before and after, from
/proc/meminfo) is divided by N. Everything is torn down (and the teardown timed) before the next
runtime starts. runc comes from Debian's package (installed when missing). Uses private roots.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from lifecycle import Work, build_bundles, build_rootfs  # noqa: E402

import labkit  # noqa: E402


def used_kb() -> int:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":")
            info[key] = int(value.split()[0])
    return info["MemTotal"] - info["MemAvailable"]


def labkit_scale(seconds: float, hundred: int, root: Path) -> dict[str, float]:
    lab = labkit.connect(backend="linux", root=root)
    lab.run("busybox", ["true"], auto_remove=True, network="none")  # warm
    base = used_kb()
    started, per_container = 0, 0.0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            lab.run("busybox", ["sleep", "100000"], detach=True, network="none")
            started += 1
            if started == hundred:
                per_container = (used_kb() - base) / hundred
        t = time.monotonic()
        for c in lab.ps(all=True):
            lab.rm(c["Id"], force=True)
        return {"started": started, "kb_per_container": per_container, "teardown_s": time.monotonic() - t}
    finally:
        for c in lab.ps(all=True):
            lab.rm(c["Id"], force=True)


def runc_scale(seconds: float, hundred: int, work: Work) -> dict[str, float]:
    if not shutil.which("runc"):
        subprocess.run(["apt-get", "install", "-y", "-q", "runc"], check=True, capture_output=True)
    build_rootfs(work)
    build_bundles(work)
    bundle = str(work.bundle("sleep"))
    names: list[str] = []
    base = used_kb()
    per_container = 0.0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            name = f"lkb-scale-{len(names)}"
            subprocess.run(["runc", "--root", str(work.runc), "run", "-d", "--bundle", bundle, name],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            names.append(name)
            if len(names) == hundred:
                per_container = (used_kb() - base) / hundred
        started = len(names)
        t = time.monotonic()
        _runc_teardown(work, names)
        return {"started": started, "kb_per_container": per_container, "teardown_s": time.monotonic() - t}
    finally:
        _runc_teardown(work, names)


def _runc_teardown(work: Work, names: list[str]) -> None:
    for name in names:
        subprocess.run(["runc", "--root", str(work.runc), "delete", "-f", name], capture_output=True)
    names.clear()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--hundred", type=int, default=100, help="memory is read after this many are running")
    ap.add_argument("--quick", action="store_true", help="2 seconds each, memory after 10: a CI smoke pass")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/scale.py needs root; run it with sudo", file=sys.stderr)
        return 2
    seconds, hundred = (2.0, 10) if args.quick else (args.seconds, args.hundred)
    top = Path(tempfile.mkdtemp(prefix="labkit-bench-scale-"))
    try:
        rows = [("labkit in-process (run -d, --network none)", labkit_scale(seconds, hundred, top / "state")),
                ("runc run -d", runc_scale(seconds, hundred, Work(top)))]
        print(f"sleeping containers started in {seconds:.0f} s by one starter; memory after {hundred} running")
        print(f"{'runtime':44} {'started':>8} {'per second':>11} {'kB per container':>17} {'teardown s':>11}")
        for name, r in rows:
            print(f"{name:44} {r['started']:8.0f} {r['started'] / seconds:11.1f} {r['kb_per_container']:17.0f} "
                  f"{r['teardown_s']:11.1f}")
        ratio = rows[0][1]["started"] / max(rows[1][1]["started"], 1)
        print(f"labkit / runc started: {ratio:.2f} (target ≥ 1: {'met' if ratio >= 1 else 'not met'})")
        return 0
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
