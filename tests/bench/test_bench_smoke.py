"""The lifecycle benchmark still runs: a few rounds, labkit and the unshare floor only (no peers to install)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "lifecycle.py"


@pytest.mark.root
def test_quick_labkit_only_run_prints_a_medians_table_and_leaves_nothing(tmp_path):
    """`lifecycle.py --quick --labkit-only` exits 0, prints a median/min/max table, and removes its work dir."""
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_ROOT"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--labkit-only", "--tmp", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"case\s+median\s+min\s+max\s+fails", out)
    assert re.search(r"labkit in-process: engine\.run.*\s\d+(\.\d)?\s+\d", out)
    assert re.search(r"labkit CLI: labkit run --rm --network none busybox true\s+\d", out)
    assert "resident memory per running container" in out
    assert list(tmp_path.iterdir()) == [], "the bench left files in its work directory's parent"
