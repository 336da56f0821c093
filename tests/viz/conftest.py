"""Fixtures for the pictures' real-engine tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def lesson_image(engine):
    """frontend-app:v2.1.0 built in the session's engine (three layers: base OS, runtime, app code)."""
    engine.setup(on_step=lambda _line: None)
    return "frontend-app:v2.1.0"
