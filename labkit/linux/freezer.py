"""Pause: every process of a container stopped at once, and let go again (``docker pause``/``unpause``).

Two freezers can do it, and which one a container gets is a property of what
its user may write:

- **the cgroup freezer** (as root, or rootless in a delegated cgroup v2 subtree):
  v1 writes ``FROZEN`` to ``freezer.state`` (cgroup-v1/freezer-subsystem.rst),
  v2 writes ``1`` to ``cgroup.freeze`` (cgroup-v2.rst, "Core Interface Files").
  The kernel stops the group's tasks where no one can see it: a parent's
  waitpid(2) learns nothing, and a task forked meanwhile is frozen too.
  :class:`CgroupFreezer` writes those files; every container's
  :class:`~labkit.linux.cgroups.Cgroup` is one.
- **SIGSTOP** (rootless without a cgroup the user may write): every process of
  the container's PID namespace is stopped by signal (:func:`stop_processes`)
  and woken by SIGCONT. This one shows: a parent waiting with WUNTRACED sees
  its child stopped, and a shell prints "Stopped".
"""

from __future__ import annotations

import os
import signal
import time

from labkit.errors import HostUnsupported, LabkitError
from labkit.linux.cgroupfs import POLL, GroupFiles


class CgroupFreezer(GroupFiles):
    """A group's freezer: v1 ``freezer.state`` or v2 ``cgroup.freeze``, whichever the host's layout names
    (:attr:`labkit.linux.hierarchies.Layout.freezer`)."""

    def _freezer_file(self) -> str:
        if self.layout.freezer == "v1":
            path = self.interface_file("freezer", "freezer.state")
        elif self.layout.freezer == "v2":
            path = self._unified("cgroup.freeze")
        else:
            path = None
        if path is None or not self.fs.exists(path):
            detail = (
                "its cgroup v2 has no cgroup.freeze (it needs Linux 5.2 or later)"
                if self.layout.freezer == "v2"
                else "it has no cgroup freezer"
            )
            raise HostUnsupported(f"this host cannot pause containers: {detail}")
        return path

    def freeze_requested(self) -> bool:
        """Whether a freeze was asked for (even if not yet complete)."""
        try:
            path = self._freezer_file()
        except HostUnsupported:
            return False
        state = self.fs.read(path).strip()
        return state != "THAWED" if self.layout.freezer == "v1" else state == "1"

    def frozen(self) -> bool:
        """Whether every process in the group is frozen now."""
        path = self._freezer_file()
        if self.layout.freezer == "v1":
            return self.fs.read(path).strip() == "FROZEN"
        return self._read_keyed(self._unified("cgroup.events")).get("frozen") == 1

    def freeze(self, timeout: float = 5.0) -> None:
        """Stop every process in the group, and wait until they are all stopped.

        v1 writes ``FROZEN`` to ``freezer.state`` and polls until it reads back
        ``FROZEN`` rather than ``FREEZING`` (cgroup-v1/freezer-subsystem.rst);
        v2 writes ``1`` to ``cgroup.freeze`` and polls ``cgroup.events`` for
        ``frozen 1`` (cgroup-v2.rst, "Core Interface Files").

        Raises:
            HostUnsupported: The host has no freezer.
            LabkitError: The group did not freeze within ``timeout`` seconds; it
                is thawed again before this is raised.
        """
        path = self._freezer_file()
        self._write(path, "FROZEN" if self.layout.freezer == "v1" else "1")
        deadline = time.monotonic() + timeout
        while not self.frozen():
            if time.monotonic() > deadline:
                self.thaw()
                raise LabkitError(
                    f"cgroup {self.parent}/{self.name} did not freeze within {timeout:g} seconds",
                    "A process may be stuck in the kernel (uninterruptible I/O); try again.",
                )
            time.sleep(POLL)

    def thaw(self) -> None:
        """Let every process in the group run again."""
        path = self._freezer_file()
        self._write(path, "THAWED" if self.layout.freezer == "v1" else "0")


def freeze(group: CgroupFreezer | None, pid: int) -> bool:
    """Stop the container whose PID 1 is ``pid``: its ``group``'s freezer, or SIGSTOP without a group.

    Returns:
        Whether it was done by signal (for the trace: a learner sees which freezer was used).
    """
    if group is not None:
        group.freeze()
        return False
    stop_processes(pid)  # no freezer this user may use
    return True


def thaw(group: CgroupFreezer | None, pid: int) -> bool:
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
