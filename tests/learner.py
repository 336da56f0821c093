"""An unprivileged user for the tests that run labkit without root (rootless containers, attacks from a user).

The ``learner`` fixture (registered for every test in ``tests/conftest.py``)
makes the user with useradd for the session and removes it at the end, after
checking that none of its processes or mounts outlived the tests. :func:`run_as`
runs a Python snippet as that user under Debian's ``/usr/bin/python3`` with the
repository on PYTHONPATH: the test's own interpreter may live where that user
cannot read. The user is ``labkit-learner`` unless ``LABKIT_TEST_USER`` names
another, so that two test sessions on one host need not share (and remove) one.

/etc/subuid and /etc/subgid are shared by every session on the host, so they are
only ever changed through shadow's own tools, which lock them (useradd, usermod,
userdel): the user is made without a subordinate range (the single-id map is the
default tested here), :func:`subordinate_range` grants one with ``usermod
--add-subuids`` and takes it back with ``--del-subuids``, and userdel removes
whatever is left. Nothing reads a whole file and writes it back, which would
undo another session's user made meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.util import TIME_SCALE, free_port, live_pids_of, scaled, stop_group, wait_until_up

USER = os.environ.get("LABKIT_TEST_USER", "labkit-learner")
PYTHON = "/usr/bin/python3"
REPO = str(Path(__file__).resolve().parents[1])

#: useradd's options for a user without a subordinate id range (login.defs(5): a count of 0 grants none).
NO_SUBORDINATE_RANGE = ("-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0")
#: The size of the range :func:`subordinate_range` grants, as useradd's default.
SUB_COUNT = 65536


def subordinate_start(user: str) -> int:
    """The first id of ``user``'s test range: far above useradd's automatic ranges (100000 up), and different
    for two test users, so that two sessions' ranges do not overlap."""
    return 1_000_000_000 + (zlib.crc32(user.encode()) % 10_000) * SUB_COUNT


@contextlib.contextmanager
def subordinate_range(user: str) -> Iterator[int]:
    """An /etc/subuid and /etc/subgid range of 65536 ids for ``user`` while the block runs; yields its start.

    usermod adds and deletes the one range under shadow's lock of the two files (other users' lines, made or
    removed meanwhile by another session, are left as they are)."""
    start = subordinate_start(user)
    span = f"{start}-{start + SUB_COUNT - 1}"
    subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, user], check=True, capture_output=True)
    try:
        yield start
    finally:
        subprocess.run(["usermod", "--del-subuids", span, "--del-subgids", span, user], check=True,
                       capture_output=True)


def remove_user(user: pwd.struct_passwd) -> tuple[list[int], list[str]]:
    """Kill what ``user`` left running, then remove the user, its subordinate ranges and its home; the
    processes that were still alive and the mounts under the home, for the caller to fail on."""
    left = live_pids_of(user.pw_uid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if user.pw_dir in line]
    delete_user(user.pw_name)
    shutil.rmtree(user.pw_dir, ignore_errors=True)
    return left, mounts


def remove_leftover_user(name: str) -> None:
    """Remove ``name`` and whatever it still runs if a crashed test run left it behind."""
    try:
        remove_user(pwd.getpwnam(name))
    except KeyError:
        pass


def delete_user(name: str, timeout: float = 10.0) -> None:
    """userdel ``name``, retried until the processes just killed are gone: userdel(8) refuses a user that
    still owns a process, and a killed process holds its /proc entry until its parent reaps it. Fails the
    test with userdel's own words if the user is still there at the deadline (exit 6: no such user is done)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        done = subprocess.run(["userdel", "-r", name], capture_output=True, text=True)
        if done.returncode in (0, 6, 12):  # 12: the home could not be removed; the caller removes it
            return
        if time.monotonic() > deadline:
            pytest.fail(f"could not remove the test user {name}: {done.stderr.strip()}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def learner():
    """An unprivileged user with a home of its own; everything it leaves is checked, then it is removed."""
    if not os.path.exists(PYTHON):
        pytest.fail(f"{PYTHON} is needed to run labkit as another user (apt-get install python3)")
    remove_leftover_user(USER)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", *NO_SUBORDINATE_RANGE, USER], check=True, capture_output=True)
    info = pwd.getpwnam(USER)
    try:
        yield info
    finally:
        leftovers, mounts = remove_user(info)
        assert not leftovers, f"processes of {USER} outlived the tests: {leftovers}"
        assert not mounts, f"mounts on the host under {info.pw_dir}: {mounts}"


def run_as(learner, code: str, cgroup: str | None = None, timeout: float = 120, path: str | None = None) -> dict:
    """Run ``code`` as the learner (labkit importable; ``path`` its PATH) and return the JSON object its last line prints.

    ``timeout`` is for this project's machine; a slower host stretches it (:func:`tests.util.scaled`), and the
    snippet's own deadlines may use ``scaled`` too: the scale is in its environment."""
    env = {"PATH": path or "/usr/local/bin:/usr/bin:/bin", "HOME": learner.pw_dir, "PYTHONPATH": REPO,
           "LANG": "C.UTF-8", "LABKIT_TEST_TIME_SCALE": str(TIME_SCALE)}
    argv = ["setpriv", "--reuid", str(learner.pw_uid), "--regid", str(learner.pw_gid), "--init-groups",
            PYTHON, "-c", code]
    if cgroup:  # start inside the delegated cgroup, as a systemd user session does
        argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, *argv]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=learner.pw_dir, timeout=scaled(timeout))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# A learner who ran the README's `make lab` in a checkout of their own

#: The user who runs ``make lab`` and the notebooks: a name of its own beside :data:`USER` (whose tests grant and
#: take back subordinate ranges), made as Debian's useradd makes any user, with a range of its own.
LAB_USER = USER[:28] + "-nb"
#: What the copy of the checkout for the learner leaves out: root's venv and everything built from the tree.
NOT_COPIED = shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "__pycache__", ".*_cache")
#: Seconds ``make lab`` may take until JupyterLab answers: the venv installed with a cold pip cache on a busy host,
#: and the lesson images built.
MAKE_LAB_DEADLINE = 900


@dataclass(frozen=True)
class LabLearner:
    """A user who ran ``make lab`` in a checkout of their own, and what the test saw of it."""

    user: pwd.struct_passwd
    #: The user's checkout (a copy of this one without root's venv); ``make lab`` made ``.venv`` in it.
    checkout: Path
    #: The user's environment: their PATH (Debian's ``python3`` first), HOME, LANG, USER and a socket directory.
    env: dict[str, str]
    #: The notebooks JupyterLab listed at the top of its tree, through its contents API with the token.
    served: list[str]
    #: Everything ``make lab`` printed.
    log: str

    @property
    def python(self) -> Path:
        """The interpreter of the venv ``make lab`` made."""
        return self.checkout / ".venv" / "bin" / "python"

    def argv(self, *cmd: str) -> list[str]:
        """``cmd`` as this user (its uid, gid and groups)."""
        return ["setpriv", "--reuid", str(self.user.pw_uid), "--regid", str(self.user.pw_gid), "--init-groups",
                *cmd]


def _pip_cache() -> Path:
    """The test user's pip cache, kept between sessions (a learner's ~/.cache/pip outlives a lab too), so the
    registry is asked for the learner's packages once per machine rather than once per session."""
    return Path(tempfile.gettempdir()) / f"labkit-nb-pip-cache-{LAB_USER}"


@pytest.fixture(scope="session")
def lab_learner():
    """A user made for the session runs ``make lab LAB_ARGS=--no-browser …`` in a copy of the checkout in their
    home, with their own PATH (Debian's /usr/bin/python3), until JupyterLab answers (within
    :data:`MAKE_LAB_DEADLINE`); its contents API is asked for the notebooks it serves; JupyterLab is stopped.

    The user's venv, images (``~/.local/share/labkit``) and checkout stay for the session's tests (the notebooks
    run with that venv); at the end the user's engine is stopped, and every process and mount the user left is
    checked for before the user and home are removed.
    """
    if os.geteuid() != 0:
        pytest.skip("making a user to run make lab as needs root")
    remove_leftover_user(LAB_USER)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", LAB_USER], check=True, capture_output=True)
    user = pwd.getpwnam(LAB_USER)
    home = Path(user.pw_dir)
    checkout, sockets, cache = home / "labkit", home / "sockets", _pip_cache()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "USER": LAB_USER,
           "LABKIT_SOCKET_DIR": str(sockets), "PIP_CACHE_DIR": str(cache)}
    lab = LabLearner(user, checkout, env, [], "")
    try:
        shutil.copytree(REPO, checkout, ignore=NOT_COPIED)
        sockets.mkdir(mode=0o700)
        cache.mkdir(mode=0o700, exist_ok=True)
        for path in (checkout, sockets, cache):
            subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(path)], check=True)
        port, token = free_port(), secrets.token_hex(16)
        args = (f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} --LabApp.news_url= "
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
        log_path = home / "make.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(lab.argv("make", "lab", f"LAB_ARGS={args}"), cwd=checkout, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            try:
                wait_until_up(f"http://127.0.0.1:{port}/api/status?token={token}", proc, timeout=scaled(MAKE_LAB_DEADLINE))
            except AssertionError as e:
                pytest.fail(f"make lab as {LAB_USER}: {e}: {log_path.read_text()[-3000:]}")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=30) as r:
                listing = json.loads(r.read())
        finally:
            stop_group(proc)
        served = sorted(e["name"] for e in listing["content"] if e["name"].endswith(".ipynb"))
        lab = LabLearner(user, checkout, env, served, log_path.read_text())
        yield lab
    finally:
        engine = checkout / ".venv" / "bin" / "labkit"
        if engine.exists():
            subprocess.run(lab.argv(str(engine), "server", "stop"), cwd=checkout, env=env, capture_output=True,
                           timeout=60)
        left, mounts = remove_user(user)
        if os.path.isdir(cache):
            os.chown(cache, 0, 0)  # no later user given the same uid finds a cache of its own
        assert not left, f"processes of {LAB_USER} outlived the tests: {left}"
        assert not mounts, f"mounts on the host under {home}: {mounts}"
