"""Small helpers shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(pred: Callable[[], object], timeout: float = 10.0, every: float = 0.02) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` seconds pass; errors count as not yet."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return True
        except OSError:
            pass
        time.sleep(every)
    return bool(pred())
