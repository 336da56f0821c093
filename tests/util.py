"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable

#: How many times longer than on this project's machine a test's deadline for a slow step may be: an emulated
#: guest (``tests/vm/run.py`` under TCG) runs each process several times slower, and sets
#: ``LABKIT_TEST_TIME_SCALE``. Only deadlines that bound whole programs scale (a learner's snippet, a notebook);
#: what a test asserts does not change with it.
TIME_SCALE = max(1.0, float(os.environ.get("LABKIT_TEST_TIME_SCALE") or 1))


def scaled(seconds: float) -> float:
    """``seconds`` times :data:`TIME_SCALE`: a deadline for a whole program on a slower host."""
    return seconds * TIME_SCALE


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


def live_pids_of(uid: int) -> list[int]:
    """Live processes of ``uid``: a zombie has already ended, and reaping it is the host init's job."""
    import os

    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                        continue
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            out.append(int(entry))
    return out


def tree_digest(path: str, owners: bool = False) -> str:
    """A hash of every name, mode, size (and with ``owners`` uid) and byte under ``path``."""
    import hashlib
    import os

    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for n in sorted(files + dirs):
            p = os.path.join(root, n)
            st = os.lstat(p)
            owner = f":{st.st_uid}" if owners else ""
            h.update(f"{os.path.relpath(p, path)}:{st.st_mode}:{st.st_size}{owner}".encode())
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers (a server ``proc`` started, e.g. JupyterLab); fail if ``proc`` ends first or
    ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"jupyter lab did not answer {url} within {timeout:.0f} s")


def stop_group(proc: subprocess.Popen) -> None:
    """End a process and everything it started (its own session): SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


#: Whether this kernel takes overlayfs's lower layers one by one through fsconfig(2) ("lowerdir+", Linux 6.8).
KERNEL_TAKES_LOWERDIR_PLUS = tuple(int(part) for part in os.uname().release.split(".")[:2]) >= (6, 8)


def root_overlay_lowers(mountinfo: str) -> tuple[str, list[str]]:
    """How the overlay mounted at ``/`` in ``mountinfo`` (a container's ``/proc/self/mountinfo``) got its lower
    layers, and what it shows of them, top first: ``("lowerdir+", paths)`` one by one (Linux >= 6.8), or
    ``("lowerdir", names)`` in one string (paths, or the numbers of descriptors they were opened as)."""
    line = next(ln for ln in mountinfo.splitlines() if ln.split()[3:5] == ["/", "/"] and " - overlay " in ln)
    options = line.split(" - ", 1)[1].split()[2].split(",")
    plus = [o.partition("=")[2] for o in options if o.startswith("lowerdir+=")]
    if plus:
        return "lowerdir+", plus
    return "lowerdir", next(o.partition("=")[2] for o in options if o.startswith("lowerdir=")).split(":")


def reaped_session_leader() -> tuple[int, int]:
    """A PID that lives on only as a session's id: its leader was reaped, a process of its session still runs.

    What a container's supervisor or network helper becomes where init reaps at once (systemd): pidfd_open(2)
    of that PID fails with EINVAL on kernel 6.1 (ESRCH on later ones). Returns ``(leader, member)``; the caller kills ``member``.
    """
    read, write = os.pipe()
    leader = os.fork()
    if leader == 0:  # the leader: a session of its own, a member left in it, then gone
        os.setsid()
        member = os.fork()
        if member == 0:
            os.close(read)
            os.close(write)
            time.sleep(60)
            os._exit(0)
        os.write(write, str(member).encode())
        os._exit(0)
    os.close(write)
    member = int(os.read(read, 32))
    os.close(read)
    os.waitpid(leader, 0)
    return leader, member
