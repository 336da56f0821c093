"""The rootless benchmark still runs: a few interleaved rounds, root beside rootless, in-process and through the
``labkit`` command, and nothing left behind."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "rootless.py"


def bench_user() -> str:
    """The user the script makes (it follows LABKIT_TEST_USER, as this session does)."""
    spec = importlib.util.spec_from_file_location("bench_rootless", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.USER


@pytest.mark.root
@pytest.mark.parametrize("case", ["run", "exec"])
def test_quick_run_prints_medians_and_a_ratio_and_removes_its_user(tmp_path, case):
    """`rootless.py --quick [--case exec]` exits 0, prints a median/min/max row for root and rootless and the
    per-round ratio, in-process and through the labkit command (the user's engine in /tmp/labkit-UID, reached by
    the compiled client), and removes its user, its engine, its containers and its work dir."""
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
    ratios = re.findall(r"ratio rootless / root, per round: median \d+\.\d\d \(min \d+\.\d\d, max \d+\.\d\d\)",
                        out)
    assert len(ratios) == 2 and "through the labkit command" in out, out
    figures = json.loads(out_json.read_text())
    assert len(figures["ratio"]["per_round"]) == 3 and len(figures["cli"]["ratio"]["per_round"]) == 3
    assert figures["cli"]["client"] == {"root": True, "rootless": True}, "a command went without the C client"
    assert re.search(r"rootless's engine listens in /tmp/labkit-\d+;", out), out
    assert not any(os.path.exists(d) for d in figures["cli"]["sockets"].values()), "an engine's sockets were left"
    assert "rootless" in figures["reasons"]["rootless"] and figures["case"] == case
    assert list(work.iterdir()) == [], "the bench left files in its work directory's parent"
    user = bench_user()
    assert user == f"{os.environ['LABKIT_TEST_USER'][:26]}-bench" if os.environ.get("LABKIT_TEST_USER") \
        else user == "labkit-bencher"
    with pytest.raises(KeyError):
        pwd.getpwnam(user)
