"""bench/viz.py still runs: one round of every figure and stepper case, printed as a table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "viz.py"


def test_one_round_prints_the_table():
    """`viz.py --rounds 1` exits 0 and prints a row with a median and a verdict for every figure and stepper case."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "1"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"case\s+median \(min–max\)\s+draw\s+png\s+< 150 ms", out)
    for case in ("figure  layers", "figure  lifecycle:", "figure  lifecycle --all", "figure  walls",
                 "figure  resources: 300 samples", "figure  network",
                 "stepper layers, 1000 steps: Step", "stepper layers, 1000 steps: Back near step 1000",
                 "stepper lifecycle, 1000 steps: Back near step 1000"):
        assert re.search(re.escape(case) + r".*\s\d+\.\d \(\d+\.\d–\d+\.\d\).*\s(yes|NO)$", out, re.M), case
    assert "Walk: from the nearest checkpoint" in out


def test_rounds_out_of_range_are_refused():
    """More rounds than the trace has fresh positions for is refused in one line."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--rounds must be between 1 and 200" in done.stderr
