"""The terminal benchmark still runs: a few interleaved rounds of ``exec -it`` beside ``exec``, nothing left behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "terminal.py"


@pytest.mark.root
def test_quick_run_prints_medians_and_the_ratio_and_removes_its_state(tmp_path):
    """`terminal.py --quick` exits 0, prints median/min/max for exec -it and exec, through the resident engine
    and in-process, and the per-round ratio of the two; its state root and engine are gone afterwards."""
    out_json = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out_json)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for way in ("resident engine", "in-process"):
        for case in ("exec -it NAME true", "exec NAME true"):
            assert re.search(rf"^labkit {case} \({way}\)\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d$", done.stdout, re.M), done.stdout
        assert re.search(rf"ratio exec -it / exec \({way}\), per round: median \d+\.\d\d", done.stdout)
    figures = json.loads(out_json.read_text())
    assert figures["rounds"] == 3 and all(len(v) == 3 for v in figures["ms"].values())
    assert "labkit-bench-terminal-" not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                                          text=True).stdout
