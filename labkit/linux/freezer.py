"""Pause: every process of a container stopped at once, and let go again (``docker pause``/``unpause``).

Two freezers can do it, and which one a container gets is a property of what
its user may write:

- **the cgroup freezer** (as root, or rootless in a delegated cgroup v2 subtree):
  v1 writes ``FROZEN`` to ``freezer.state`` (cgroup-v1/freezer-subsystem.rst),
  v2 writes ``1`` to ``cgroup.freeze`` (cgroup-v2.rst, "Core Interface Files").
  The kernel stops the group's tasks where no one can see it: a parent's
  waitpid(2) learns nothing, and a task forked meanwhile is frozen too.
  :meth:`labkit.linux.cgroups.Cgroup.freeze` writes those files.
- **SIGSTOP** (rootless without a cgroup the user may write): every process of
  the container's PID namespace is stopped by signal (:func:`stop_processes`)
  and woken by SIGCONT. This one shows: a parent waiting with WUNTRACED sees
  its child stopped, and a shell prints "Stopped".
"""

from __future__ import annotations

import os
import signal
import time

from labkit.linux import cgroups


def freeze(group: cgroups.Cgroup | None, pid: int) -> bool:
    """Stop the container whose PID 1 is ``pid``: its ``group``'s freezer, or SIGSTOP without a group.

    Returns:
        Whether it was done by signal (for the trace: a learner sees which freezer was used).
    """
    if group is not None:
        group.freeze()
        return False
    stop_processes(pid)  # no freezer this user may use
    return True


def thaw(group: cgroups.Cgroup | None, pid: int) -> bool:
    """Let the container go on, the way :func:`freeze` stopped it; whether it was by signal."""
    if group is not None:
        group.thaw()
        return False
    continue_processes(pid)
    return True


def namespace_pids(pid: int, proc: str = "/proc") -> list[int]:
    """Host PIDs of every process in the PID namespace whose first process is ``pid`` (PID 1 first).

    Without a cgroup, a container's processes are exactly those whose
    ``/proc/PID/ns/pid`` names its PID namespace (exec'd ones join it too).
    """
    try:
        target = os.stat(f"{proc}/{pid}/ns/pid").st_ino
    except OSError:
        return []
    found = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"{proc}/{entry}/ns/pid").st_ino == target:
                found.append(int(entry))
        except OSError:
            continue
    return sorted(found, key=lambda p: (p != pid, p))


def stop_processes(pid: int, proc: str = "/proc", settle: float = 2.0) -> list[int]:
    """Pause without a freezer: SIGSTOP every process of the container, until no new one appears.

    Unlike the cgroup freezer this is visible to the processes' parents (a
    stopped child is reported by waitpid(2) with WUNTRACED, a shell prints
    "Stopped"), and a process forked between listing and stopping is caught
    only by listing again — which is why the loop runs until a pass finds
    nobody new. SIGSTOP reaches even PID 1 of the container: it is one of the
    two signals an ancestor namespace may always send it (pid_namespaces(7)).

    Returns:
        The PIDs stopped.
    """
    stopped: set[int] = set()
    deadline = time.monotonic() + settle
    while True:
        fresh = [p for p in namespace_pids(pid, proc) if p not in stopped]
        if not fresh or time.monotonic() > deadline:
            break
        for p in fresh:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            stopped.add(p)
    for p in stopped:
        _wait_state(p, "T", proc)
    return sorted(stopped)


def continue_processes(pid: int, proc: str = "/proc") -> list[int]:
    """Unpause without a freezer: SIGCONT every process of the container (waking happens even for PID 1)."""
    pids = namespace_pids(pid, proc)
    for p in pids:
        try:
            os.kill(p, signal.SIGCONT)
        except ProcessLookupError:
            continue
    return pids


def stopped(pid: int, proc: str = "/proc") -> bool:
    """Whether PID 1 of the container is stopped by a signal (state ``T`` in ``/proc/PID/stat``)."""
    return _state(pid, proc) == "T"


def _state(pid: int, proc: str) -> str:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0].decode()
    except (OSError, IndexError):
        return ""


def _wait_state(pid: int, state: str, proc: str, timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while _state(pid, proc) not in (state, "", "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.002)
