"""labkit.linux.usernet without a container: ending a network helper that is already gone."""

from __future__ import annotations

import errno
import os
import signal

import pytest

from labkit.linux import usernet
from tests.util import reaped_session_leader


def test_stopping_a_helper_that_lives_on_only_as_its_sessions_id_finds_it_gone(monkeypatch):
    """A helper that ended and was reaped between stop_helper's two looks leaves its PID as its session's id:
    pidfd_open(2) says EINVAL there on kernels before 6.9 or so (Debian 12's 6.1; later ones say ESRCH), which
    means gone, not an error for ``rm`` to report."""
    leader, member = reaped_session_leader()
    try:
        with pytest.raises(OSError) as seen:
            os.close(os.pidfd_open(leader))
        assert seen.value.errno in (errno.EINVAL, errno.ESRCH)
        monkeypatch.setattr(usernet, "helper_running", lambda info: True)  # its first look saw it alive
        assert usernet.stop_helper({"SlirpPid": leader, "Driver": "slirp4netns"}) is False
    finally:
        os.kill(member, signal.SIGKILL)
