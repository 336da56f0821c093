"""bench/network.py runs (a tiny pass): it must not rot. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "network.py")


def test_network_bench_quick_pass():
    """The quick pass prints its three tables and exits 0, leaving nothing behind."""
    p = subprocess.run([sys.executable, BENCH, "--quick"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    for line in ("ratio bridge / none", "ratio published / direct", "sequential requests per second"):
        assert line in p.stdout
