"""The bench beside Docker still runs: a few interleaved rounds of exec -it and cp both ways, nothing left behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "beside_docker.py"
CASES = ("exec -it NAME true", "cp FILE NAME:/bench-in", "cp NAME:/bench-in OUT")


@pytest.mark.root
def test_quick_run_prints_medians_and_ratios_and_removes_its_dockerd_and_state(tmp_path):
    """`beside_docker.py --quick` exits 0 and prints median/min/max for labkit's three cases (and Docker's, with
    the per-round ratios, where docker.io is installed); its state root and its dockerd's state are gone after."""
    out_json = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out_json)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads(out_json.read_text())
    with_docker = bool(shutil.which("dockerd"))
    assert figures["docker"] is with_docker
    who = ("labkit", "docker") if with_docker else ("labkit",)
    for name in who:
        for case in CASES:
            assert re.search(rf"^{name} {re.escape(case)}\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d$", done.stdout, re.M), done.stdout
    if with_docker:
        for case in CASES:
            assert re.search(rf"ratio labkit / docker {re.escape(case)}, per round: median \d+\.\d\d", done.stdout)
        assert not os.path.exists(figures["dockerd_state"])
    else:
        assert re.search(r"^docker: .*labkit is measured alone$", done.stdout, re.M)
    assert re.search(r"^start: load average", done.stdout, re.M) and re.search(r"^end: load average", done.stdout, re.M)
    assert figures["rounds"] == 3 and all(len(v) == 3 for v in figures["ms"].values())
    assert not os.path.exists(figures["work"])


@pytest.mark.root
def test_labkit_only_says_so_in_one_line(tmp_path):
    """`--labkit-only` measures labkit alone and says why in one line."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "1", "--labkit-only"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == "docker: --labkit-only, so labkit is measured alone"
    assert "docker exec" not in done.stdout
