"""The rootless benchmark still runs: a few interleaved rounds, root beside rootless, and nothing left behind."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "rootless.py"


@pytest.mark.root
@pytest.mark.parametrize("case", ["run", "exec"])
def test_quick_run_prints_medians_and_a_ratio_and_removes_its_user(tmp_path, case):
    """`rootless.py --quick [--case exec]` exits 0, prints a median/min/max row for root and rootless and the
    per-round ratio, and removes its user, its containers and its work dir."""
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_ROOT"}
    out_json = tmp_path / "figures.json"
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--case", case, "--tmp", str(work), "--json", str(out_json)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"case\s+median\s+min\s+max", out)
    assert re.search(r"^\s+root\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d$", out, re.M)
    assert re.search(r"^\s+rootless\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d$", out, re.M)
    assert re.search(r"ratio rootless / root, per round: median \d+\.\d\d \(min \d+\.\d\d, max \d+\.\d\d\)", out)
    figures = json.loads(out_json.read_text())
    assert len(figures["ratio"]["per_round"]) == 3
    assert "rootless" in figures["reasons"]["rootless"] and figures["case"] == case
    assert list(work.iterdir()) == [], "the bench left files in its work directory's parent"
    with pytest.raises(KeyError):
        pwd.getpwnam("labkit-bencher")
