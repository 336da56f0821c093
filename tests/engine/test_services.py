"""The services room's waits (labkit/engine/services.py): how long they last and what they say when they give up."""

from __future__ import annotations

import pytest

from labkit.engine import Engine
from labkit.engine.services import CONVERGE_SECONDS, converge_seconds
from labkit.sim.backend import SimBackend
from labkit.store import Store


@pytest.mark.parametrize("given, expected", [
    (None, CONVERGE_SECONDS), ("", CONVERGE_SECONDS), ("600", 600.0), ("0", 0.0), ("2.5", 2.5),
    ("nan", CONVERGE_SECONDS), ("inf", CONVERGE_SECONDS), ("-1", CONVERGE_SECONDS), ("86400", CONVERGE_SECONDS),
    ("soon", CONVERGE_SECONDS),
])
def test_the_wait_has_a_deadline_whatever_its_variable_says(monkeypatch, given, expected):
    """LABKIT_SERVICE_WAIT gives a slow host more time; what is not a number of seconds below a day is the default,
    so no wait is ever without an end."""
    if given is None:
        monkeypatch.delenv("LABKIT_SERVICE_WAIT", raising=False)
    else:
        monkeypatch.setenv("LABKIT_SERVICE_WAIT", given)
    assert converge_seconds() == expected


def test_the_note_given_is_the_last_failure_not_the_clean_up_after_it(tmp_path):
    """A replica that cannot start is noted, then removed and noted again: a learner told why the service did not
    converge hears the failure, not the removal; with no failure noted, the last line."""
    sim = Engine(root=tmp_path, backend=SimBackend(Store(tmp_path)))
    log = sim.store.root / "services" / "web.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("10:00:00.001 started web.1 in 0.05 s\n"
                   "10:00:01.002 reconcile: exec: \"nosuchcommand\": executable file not found in $PATH\n"
                   "10:00:01.500 removed web.1 (created)\n")
    assert sim.services.last_note("web") == 'exec: "nosuchcommand": executable file not found in $PATH'
    log.write_text("10:00:00.001 started web.1 in 0.05 s\n10:00:02.000 removed web.2 (exited)\n")
    assert sim.services.last_note("web") == "removed web.2 (exited)"
    log.unlink()
    assert sim.services.last_note("web") == ""
