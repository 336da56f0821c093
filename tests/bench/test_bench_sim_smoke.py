"""bench/sim.py runs (a tiny pass, no root): it must not rot. No timing is asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "sim.py"


def test_tiny_pass_prints_every_table_and_leaves_nothing(tmp_path):
    """`sim.py --rounds 2 --sizes 10,100` exits 0, prints its three tables with medians, goes back from
    positions that replay the same number of steps at every N, and removes its state root."""
    env = {k: v for k, v in os.environ.items() if k not in ("LABKIT_ROOT", "LABKIT_BACKEND")}
    done = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "2", "--sizes", "10,100", "--tmp", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"run --rm busybox true\s+\d+\.\d+ \(", out) and re.search(r"exec sh -c echo hi\s+\d", out)
    assert "each replaying 9 steps" in out
    assert re.search(r"N = 10: back from step 9\s+\d+\.\d+ \(", out)
    assert re.search(r"N = 100: back from step 73\s+\d+\.\d+ \(", out), "73 is 9 steps past the checkpoint at 63"
    assert re.search(r"K = 100\s+\d+\.\d+ \(", out)
    assert list(tmp_path.iterdir()) == [], "the bench left its state root behind"
