"""An unprivileged user for the tests that run labkit without root (rootless containers, attacks from a user).

The ``learner`` fixture (registered for every test in ``tests/conftest.py``)
makes the user with useradd for the session and removes it at the end, after
checking that none of its processes or mounts outlived the tests. :func:`run_as`
runs a Python snippet as that user under Debian's ``/usr/bin/python3`` with the
repository on PYTHONPATH: the test's own interpreter may live where that user
cannot read. The user is ``labkit-learner`` unless ``LABKIT_TEST_USER`` names
another, so that two test sessions on one host need not share (and remove) one.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.util import live_pids_of

USER = os.environ.get("LABKIT_TEST_USER", "labkit-learner")
PYTHON = "/usr/bin/python3"
REPO = str(Path(__file__).resolve().parents[1])

SUBID_FILES = ("/etc/subuid", "/etc/subgid")
#: With the backups useradd and userdel write beside them.
SUBID_AND_BACKUPS = (*SUBID_FILES, "/etc/subuid-", "/etc/subgid-")


def restore(saved: dict[str, str | None]) -> None:
    """Put files (/etc/subuid, /etc/subgid) back as they were (absent ones removed)."""
    for path, text in saved.items():
        if text is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            Path(path).write_text(text)


@pytest.fixture(scope="session")
def learner():
    """An unprivileged user with a home of its own; everything it leaves is checked, then it is removed."""
    if not os.path.exists(PYTHON):
        pytest.fail(f"{PYTHON} is needed to run labkit as another user (apt-get install python3)")
    subprocess.run(["userdel", "-r", USER], capture_output=True)  # a crashed run's leftover
    saved = {p: Path(p).read_text() if os.path.exists(p) else None for p in SUBID_AND_BACKUPS}
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", USER], check=True, capture_output=True)
    restore(saved)  # useradd may grant a subordinate range; the single-id map is the default tested here
    info = pwd.getpwnam(USER)
    try:
        yield info
    finally:
        leftovers = live_pids_of(info.pw_uid)
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f if info.pw_dir in line]
        subprocess.run(["userdel", "-r", USER], capture_output=True)
        restore(saved)
        shutil.rmtree(info.pw_dir, ignore_errors=True)
        assert not leftovers, f"processes of {USER} outlived the tests: {leftovers}"
        assert not mounts, f"mounts on the host under {info.pw_dir}: {mounts}"


def run_as(learner, code: str, cgroup: str | None = None, timeout: float = 120, path: str | None = None) -> dict:
    """Run ``code`` as the learner (labkit importable; ``path`` its PATH) and return the JSON object its last line prints."""
    env = {"PATH": path or "/usr/local/bin:/usr/bin:/bin", "HOME": learner.pw_dir, "PYTHONPATH": REPO,
           "LANG": "C.UTF-8"}
    argv = ["setpriv", "--reuid", str(learner.pw_uid), "--regid", str(learner.pw_gid), "--init-groups",
            PYTHON, "-c", code]
    if cgroup:  # start inside the delegated cgroup, as a systemd user session does
        argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, *argv]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=learner.pw_dir, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])
