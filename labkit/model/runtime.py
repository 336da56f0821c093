"""What a backend reports about a container's process: plain values, the same on every backend.

A backend launches PID 1 and says so with :class:`Launched`; it notices PID 1
has ended and says how with :class:`Exited` (or, where it applies ``--restart``
itself, what its policy did since with :class:`Restarted`); it reads the container's cgroup
counters (cgroups(7)) as :class:`CgroupReading`. The engine turns these into
the record's ``State`` (:mod:`labkit.model.container`); the pictures draw them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Launched:
    """A container's PID 1 is running.

    Attributes:
        pid: Its PID in the host's PID namespace (``State.Pid``).
        pid_start_time: Its start time in clock ticks (``/proc/PID/stat`` field 22), so a reused PID is told apart.
        shim_pid: The PID of the supervisor that waits for it (0 where there is none).
        started_at: When it started (RFC 3339, ``State.StartedAt``).
    """

    pid: int
    pid_start_time: int
    shim_pid: int
    started_at: str


@dataclass(frozen=True)
class Exited:
    """A container's PID 1 has ended.

    Attributes:
        exit_code: Its exit status, or 128 + the signal that ended it (``State.ExitCode``).
        finished_at: When it ended (RFC 3339, ``State.FinishedAt``).
        oom_killed: The OOM killer ended a process of its cgroup (``State.OOMKilled``).
        error: Why labkit, not PID 1, decided how it ended (its supervisor died), for ``State.Error``.
    """

    exit_code: int
    finished_at: str
    oom_killed: bool = False
    error: str = ""


@dataclass(frozen=True)
class Restarted:
    """The run the record holds has ended, and the backend's own restart policy took over since.

    Only a backend that applies ``--restart`` itself answers this (the simulator, which waits the
    delay on its own clock); on the real backend a restarter process tells the engine instead.

    Attributes:
        ended: How the latest run ended.
        started_at: When the latest run started (RFC 3339, ``State.StartedAt``).
        restart_count: The runs the policy has started so far (``RestartCount``).
        running: The run under way, if the policy started one that still runs.
        waiting: No run is under way and the policy will start one when its delay is over
            (``restarting``); False with no run: the policy gave up (``exited``).
    """

    ended: Exited
    started_at: str
    restart_count: int
    running: Launched | None = None
    waiting: bool = False


@dataclass(frozen=True)
class CgroupReading:
    """One reading of a container's cgroup counters (cgroups(7)).

    Attributes:
        at: The meter's clock when read (seconds; only differences mean something).
        memory: Bytes charged to the group (``memory.current`` / ``memory.usage_in_bytes``), ``None`` if unreadable.
        pids: Tasks in the group (``pids.current``), ``None`` if unreadable.
        oom_kills: Processes the OOM killer ended in the group (``oom_kill`` in ``memory.events``).
        cpu_ns: CPU time the group's processes used so far (``cpuacct.usage`` / ``cpu.stat usage_usec``).
        memory_limit: The most memory the group may use: its limit, or the host's memory when it has none
            (what ``docker stats`` divides by).
        cache: Bytes of ``memory`` that are inactive page cache (``inactive_file`` in ``memory.stat``), which
            ``docker stats`` leaves out of MEM USAGE.
        net_rx: Bytes PID 1's network namespace received on its interfaces but ``lo``.
        net_tx: Bytes it sent on them.
        block_read: Bytes the group read from block devices (``io.stat`` / ``blkio.throttle.io_service_bytes``).
        block_write: Bytes it wrote to them.
    """

    at: float
    memory: int | None
    pids: int | None
    oom_kills: int | None
    cpu_ns: int | None = None
    memory_limit: int | None = None
    cache: int | None = None
    net_rx: int | None = None
    net_tx: int | None = None
    block_read: int | None = None
    block_write: int | None = None
