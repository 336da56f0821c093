"""The host's process table as ``/proc`` shows it (proc(5)): which processes live, their trees, ``ps``.

The real backend knows a container's processes by what the kernel publishes
under ``/proc``: a PID is the same process only while its start time (field 22
of ``/proc/PID/stat``) is unchanged, a process's children are listed in
``/proc/PID/task/TID/children``, a supervisor is known by its arguments in
``/proc/PID/cmdline``; ``/proc/meminfo`` says how much memory the host has and
``/proc/PID/net/dev`` what a network namespace has received and sent. Every
function takes the ``/proc`` it reads as a parameter, so tests can lay out
their own. The simulator's twin is :mod:`labkit.sim.procfs`, the ``/proc`` it
synthesises.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence

from labkit import helpers
from labkit.errors import InvalidArgument


def alive(pid: int, start_time: int, proc: str = "/proc") -> bool:
    """Whether ``pid`` still runs and is the process that started at ``start_time``.

    A PID is reused once its process is gone, so the start time (field 22 of
    ``/proc/PID/stat``) tells the original from a newcomer. A zombie counts as
    gone. ``start_time`` 0 means "unknown": only existence is checked.
    """
    try:
        state, started = _stat_fields(pid, proc)
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X") and start_time in (0, started)


def start_time(pid: int, proc: str = "/proc") -> int:
    """When ``pid`` started (field 22 of ``/proc/PID/stat``, what :func:`alive` compares), or 0 if it is gone."""
    try:
        return _stat_fields(pid, proc)[1]
    except (OSError, IndexError, ValueError):
        return 0


def _stat_fields(pid: int, proc: str = "/proc") -> tuple[str, int]:
    """(state, start time) from ``/proc/PID/stat``; the command name may hold spaces, so split after ')'."""
    with open(f"{proc}/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    return fields[0].decode(), int(fields[19])


def supervisors_of(exit_file: str, proc: str = "/proc") -> list[int]:
    """Every supervisor (and starter on its way to becoming one) whose arguments name ``exit_file``.

    A start whose starter was killed is known by nothing else: no record holds its PIDs yet.
    """
    want = exit_file.encode()
    found = []
    for name in os.listdir(proc):
        if name.isdigit():
            try:
                with open(f"{proc}/{name}/cmdline", "rb") as f:
                    if want in f.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                continue
    return found


def kill_trees(pids: Sequence[int], timeout: float = 5.0, proc: str = "/proc") -> None:
    """SIGKILL each of ``pids`` and all it forked, and wait until they are gone.

    Each is stopped (SIGSTOP) before its children are read (``/proc/PID/task/TID/children``),
    so none it forks afterwards is missed; a PID 1 that dies takes its PID namespace with it.
    """
    doomed: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in doomed or not alive(pid, 0, proc):
            continue
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        doomed.append(pid)
        try:
            for tid in os.listdir(f"{proc}/{pid}/task"):
                with open(f"{proc}/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(alive(pid, 0, proc) for pid in doomed) and time.monotonic() < deadline:
        time.sleep(0.01)


def ps_table(ps_args: Sequence[str], pids: set[int]) -> tuple[list[str], list[list[str]]]:
    """``ps ps_args`` run on the host, its rows kept to ``pids``: (titles, rows), as dockerd's ``top`` parses it.

    Raises:
        InvalidArgument: ``ps`` refused the options, or printed no PID column to pick the rows by.
    """
    try:
        done = helpers.run(["ps", *ps_args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InvalidArgument(f"ps: {err}", "Check that procps is installed (apt-get install procps)") from None
    if done.returncode != 0:
        raise InvalidArgument(f"Error running top: ps {' '.join(ps_args)}: {done.stderr.strip() or 'failed'}",
                              "Give ps options such as -ef or aux")
    lines = done.stdout.splitlines()
    titles = lines[0].split() if lines else []
    if "PID" not in titles:
        raise InvalidArgument("Couldn't find PID field in ps output", "Give ps options whose output has a PID column")
    at = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > at and fields[at].isdigit() and int(fields[at]) in pids:
            rows.append(fields)
    return titles, rows


def host_memory(proc: str = "/proc") -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in bytes: what an unlimited group may use at most."""
    try:
        with open(os.path.join(proc, "meminfo")) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def net_bytes(pid: int, proc: str = "/proc") -> tuple[int, int] | None:
    """Bytes received and sent on every interface but ``lo`` of ``pid``'s network namespace
    (``/proc/PID/net/dev``, proc(5)); None when it cannot be read."""
    try:
        with open(os.path.join(proc, str(pid), "net", "dev")) as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None
    rx = tx = 0
    for line in lines:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() == "lo" or len(fields) < 9:
            continue
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx
