"""bench/copyup.py and bench/scale.py run (a tiny pass each): they must not rot. No timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root

BENCH = os.path.join(os.path.dirname(__file__), "..", "..", "bench")


@pytest.mark.parametrize("script, words", [
    ("copyup.py", "first/second"),
    ("scale.py", "labkit / runc started"),
])
def test_quick_pass(script, words):
    """The quick pass prints its table and exits 0."""
    p = subprocess.run([sys.executable, os.path.join(BENCH, script), "--quick"], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    assert words in p.stdout
