"""What the security tests share: an unprivileged user of their own, for rootless runs and as the other user."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.util import live_pids_of

#: Not the rootless suite's user: the two may run in one session, each making and removing its own.
ROOTLESS_USER = "labkit-secuser"


@pytest.fixture(scope="session")
def rootless_user():
    """An unprivileged user with a home (single-id map: no subordinate range), removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("making a user needs root")
    subprocess.run(["userdel", "-r", ROOTLESS_USER], capture_output=True)  # a crashed run's leftover
    saved = {p: Path(p).read_text() for p in ("/etc/subuid", "/etc/subgid") if os.path.exists(p)}
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", ROOTLESS_USER], check=True, capture_output=True)
    for path, text in saved.items():  # useradd may grant a subordinate range: the single-id map is enough here
        Path(path).write_text(text)
    info = pwd.getpwnam(ROOTLESS_USER)
    try:
        yield info
    finally:
        left = live_pids_of(info.pw_uid)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["userdel", "-r", ROOTLESS_USER], capture_output=True)
        for path, text in saved.items():
            Path(path).write_text(text)
        shutil.rmtree(info.pw_dir, ignore_errors=True)
        assert not left, f"processes of {ROOTLESS_USER} outlived the tests: {left}"


REPO = Path(__file__).resolve().parents[2]


def run_as(user: pwd.struct_passwd, code: str, timeout: float = 300) -> str:
    """Run Python ``code`` as ``user`` (Debian's python3, labkit from this repository) in its home; its stdout."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": user.pw_dir, "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
    p = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
                        "/usr/bin/python3", "-c", code], capture_output=True, text=True, env=env, cwd=user.pw_dir,
                       timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p.stdout
