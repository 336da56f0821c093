"""The simulated kernel: one in-memory world, its clock and its scheduler.

A :class:`World` holds everything the simulator models: the containers'
writable layers (immutable :class:`~labkit.model.overlay.Overlay` values),
their cgroup counters and log lines, and one process table for the whole
"host" (each :class:`~labkit.sim.process.Proc` has a host PID and a PID in its
container's PID namespace). Nothing here touches the real kernel.

**The clock.** ``World.now`` is simulated seconds since the world was made
(``World.epoch`` is the wall-clock time of second 0, so a simulated instant
prints as an RFC 3339 time). Time moves only when asked to: :func:`advance`
runs every runnable process at the current instant, then jumps to the next
wake-up (a ``sleep`` ending), never further than its target. A process that
never sleeps (``while true; do :; done``) gets :data:`BUDGET` operations per
:data:`TICK` of simulated time, so a busy loop costs bounded work and makes
the clock move in ticks rather than spinning at one instant.

**Frozen processes** (a paused container, the cgroup freezer) are skipped by
the scheduler: the clock passes them by, a ``sleep`` that ends while frozen
ends only at the thaw, and a SIGKILL sent to them takes effect at the thaw
(as on a cgroup v1 freezer).

**What runs.** The scheduler does not know the programs: whoever moves the
clock hands it a :data:`Step` (:func:`labkit.sim.programs.step`), which runs
one process for a slice, whatever program it is. So this module imports no
other module of the simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from labkit.model.container import now_rfc3339

#: Operations a runnable process may execute per tick before the clock must move.
BUDGET = 100
#: Simulated seconds a tick lasts (what a busy loop costs per ``BUDGET`` operations).
TICK = 0.01
#: Operations one :func:`advance` call may execute in all before it gives up (a guard against loops forever).
MAX_OPS = 2_000_000
#: How far a wait without a timeout looks ahead (simulated seconds) before it gives up.
HORIZON = 24 * 3600.0
#: CPU time one operation costs (nanoseconds): a busy loop's ``BUDGET`` operations fill its ``TICK``, one CPU's
#: worth, so a process that never sleeps reads as 100 % in ``stats`` and ``top``.
OP_NS = int(TICK * 1e9) // BUDGET


@dataclass
class LogLine:
    """One json-file log entry: ``{"log": text, "stream": ..., "time": ...}``."""

    stream: str
    text: str
    time: float


@dataclass
class SimContainer:
    """What the simulator keeps for one container (the engine keeps its record).

    Attributes:
        id: The container's id.
        lowers: Image layer directories, top first (``lowerdir=`` order, init layer excluded).
        upper: The writable layer's entries (``{path: Node}``); the overlay is rebuilt from it.
        clock: The overlay's logical clock; ``next_inode``: its next hard-link id.
        hostname: The UTS namespace's hostname.
        mounts: ``[(destination, host source, read-only)]``: volumes, binds, the /etc files.
        memory_max / pids_max: The cgroup limits (0 / None: unlimited).
        oom_kills: OOM kills in this cgroup since the last start (``memory.events oom_kill``).
        frozen: The freezer state.
        next_pid: The next PID the container's PID namespace hands out.
        pid1: Host PID of the current PID 1 (0 when none).
        ended: How PID 1 of the current start ended: ``(exit code, finished time, oom)``, or ``None``.
        starts: How many times PID 1 was started.
        logs: Log lines, oldest first; ``partial``: an unfinished line per stream.
        effects: Overlay effects not yet turned into trace steps (``observe_layer``).
        reported: The writable layer's ``(kind, path)`` changes as the last trace step told them.
        made_anew: Files of the writable layer made there, not copied up (``observe_layer``).
        memory_peak: The highest usage seen (``memory.peak``).
        env: The container's environment.
        init: Whether the ``-init`` layer (the /etc placeholders) is under the image layers.
        logs_on_disk: How many log lines were written to ``json.log``.
        upper_bytes: Bytes the writable layer's files hold (its share of the modelled disk).
        readonly_rootfs: ``run --read-only``: writes to the overlay fail with EROFS (mounts keep their own mode).
        cpu_ns: CPU time the group's processes used, those that ended included (``cpu.stat usage_usec``).
        launch: How PID 1 was last started, for the restart policy to start it again.
        restart_policy / restart_max: ``--restart`` (``no``, ``always``, ``unless-stopped``, ``on-failure``) and N.
        restart_count: Runs the policy started since the last ``start`` (``RestartCount``).
        restart_delay: The policy's last delay (seconds; 0: none yet), which the next one doubles.
        restarter: Host PID of the restarter waiting out the delay (0: none).
        stopped_by_hand: ``stop`` or ``kill`` ended this run: the policy leaves it alone.
        run_started: When the current run began (simulated seconds).
    """

    id: str
    lowers: list[str]
    upper: dict[str, Any] = field(default_factory=dict)
    clock: int = 0
    next_inode: int = 1_000_000
    hostname: str = ""
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)
    memory_max: int = 0
    pids_max: int | None = None
    oom_kills: int = 0
    frozen: bool = False
    next_pid: int = 1
    pid1: int = 0
    ended: tuple[int, str, bool] | None = None
    starts: int = 0
    logs: list[LogLine] = field(default_factory=list)
    partial: dict[str, str] = field(default_factory=dict)
    effects: list[Any] = field(default_factory=list)
    reported: set[tuple[str, str]] = field(default_factory=set)
    memory_peak: int = 0
    env: list[str] = field(default_factory=list)
    init: bool = True
    logs_on_disk: int = 0
    tiny_init: bool = False  # run --init: a tiny init forwards signals, so the command gets default actions
    net: dict[str, Any] | None = None  # the address it holds while running (see labkit.sim.network.attach)
    host_net: bool = False  # run --network host: it shares the host's network namespace
    net_left: dict[str, Any] | None = None  # the address PID 1's end took away, until the trace has told it
    nets: tuple[dict[str, Any], ...] = ()  # the endpoints network connect added while it runs (after ``net``)
    next_if: int = 1  # the number of the next ethN network connect makes in this run
    upper_bytes: int = 0
    readonly_rootfs: bool = False  # run --read-only: writes to the overlay fail with EROFS
    made_anew: frozenset[str] = frozenset()  # immutable, so a world saved before it existed reads it too
    # Plain defaults (class attributes too), so a world saved before these existed loads with them.
    cpu_ns: int = 0
    launch: Launch | None = None
    restart_policy: str = "no"
    restart_max: int = 0
    restart_count: int = 0
    restart_delay: float = 0.0
    restarter: int = 0
    stopped_by_hand: bool = False
    run_started: float = 0.0


@dataclass(frozen=True)
class Launch:
    """What PID 1 was started with, so that the restart policy starts the same again.

    Attributes:
        argv / env / cwd: Its command, environment and working directory.
        ids: ``(uid, gid, groups, effective capabilities, bounding set, seccomp mode, RLIMIT_NPROC)``,
            as the start left PID 1 (``-u``, ``--cap-add``/``--cap-drop``, ``--ulimit nproc``).
        net: The address it had (None: no network of its own), given back at the next run when still free.
    """

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str
    ids: tuple[Any, ...]
    net: dict[str, Any] | None = None


@dataclass
class World:
    """Everything the simulator models, in one picklable value.

    Attributes:
        version: The on-disk format's version.
        epoch: Wall-clock seconds (Unix time) of simulated second 0.
        now: Simulated seconds since ``epoch``.
        real_anchor: The wall-clock time ``now`` was last synchronised with.
        next_hpid: The next host PID.
        containers: The simulated containers by id.
        procs: Every live process by host PID.
        buffers: Pipe and command-substitution buffers by id.
        next_buffer: The next buffer id.
        generation: Bumped on every save (other processes reload when it changes).
        log_bytes: Bytes of every container's log lines (they count against the modelled disk).
        dropped_log_lines: Log lines lost because the modelled disk was full.
    """

    version: int = 1
    epoch: float = field(default_factory=time.time)
    now: float = 0.0
    real_anchor: float = field(default_factory=time.time)
    next_hpid: int = 30000
    containers: dict[str, SimContainer] = field(default_factory=dict)
    procs: dict[int, Any] = field(default_factory=dict)
    buffers: dict[int, bytearray] = field(default_factory=dict)
    next_buffer: int = 1
    generation: int = 0
    log_bytes: int = 0
    dropped_log_lines: int = 0

    # -- time --------------------------------------------------------------------------------
    def wall(self, t: float | None = None) -> datetime:
        """The simulated instant ``t`` (default now) as a UTC time."""
        return datetime.fromtimestamp(self.epoch, timezone.utc) + timedelta(seconds=self.now if t is None else t)

    def rfc3339(self, t: float | None = None) -> str:
        """The simulated instant as Docker writes times."""
        return now_rfc3339(self.wall(t))

    def new_hpid(self) -> int:
        self.next_hpid += 1
        return self.next_hpid

    def new_buffer(self) -> int:
        self.next_buffer += 1
        self.buffers[self.next_buffer] = bytearray()
        return self.next_buffer

    def procs_of(self, cid: str) -> list[Any]:
        """The live processes of one container, PID order."""
        return sorted((p for p in self.procs.values() if p.cid == cid), key=lambda p: p.pid)


#: Runs process ``p`` for at most ``budget`` operations and returns how many it used (at least 1 when it did
#: anything); a sleeper whose sleep has ended is stepped too, so that its program does what waking means to it.
Step = Callable[[World, Any, int], int]


def _runnable(world: World, p: Any) -> bool:
    ct = world.containers.get(p.cid)
    return p.state == "run" and not (ct is not None and ct.frozen)


def run_instant(world: World, step: Step, budgets: dict[int, int] | None = None) -> tuple[int, bool]:
    """Run every runnable process at the current instant until each blocks or uses its budget.

    Returns:
        (operations executed, whether some process still wanted to run).
    """
    budgets = {} if budgets is None else budgets
    total = 0
    progressed = True
    while progressed:
        progressed = False
        for p in sorted(world.procs.values(), key=lambda q: q.hpid):
            if p.hpid not in world.procs or not _runnable(world, p):
                continue
            left = budgets.get(p.hpid, BUDGET)
            if left <= 0:
                continue
            used = step(world, p, left)
            budgets[p.hpid] = left - used
            total += used
            charge_cpu(world, p, used)
            progressed = progressed or used > 0
    hungry = any(_runnable(world, p) and budgets.get(p.hpid, BUDGET) <= 0 for p in world.procs.values())
    return total, hungry


def charge_cpu(world: World, p: Any, ops: int) -> None:
    """Account ``ops`` operations of CPU time to ``p`` and to its container's group (:data:`OP_NS` each).

    A process runs on one CPU at a time, so it is charged no more than the time that passes: its slices
    are laid end to end from the current instant (``p.cpu_until``), and what would reach past the
    current tick is not charged (the scheduler may run it again at the same instant, as when the clock
    was asked to move by nothing).
    """
    begin = max(p.cpu_until, world.now)
    end = min(begin + ops * OP_NS / 1e9, world.now + TICK)
    if end <= begin:
        return
    p.cpu_until = end
    ns = round((end - begin) * 1e9)
    p.cpu_ns += ns
    ct = world.containers.get(p.cid)
    if ct is not None:
        ct.cpu_ns += ns


def wake_sleepers(world: World, step: Step) -> None:
    """Wake every unfrozen process whose sleep has ended; one that sleeps to do something on waking
    (``on_wake``: the ``sleep`` program exits) is stepped at once, before anything else runs."""
    for p in list(world.procs.values()):
        if p.state == "sleep" and p.wake <= world.now + 1e-9:
            ct = world.containers.get(p.cid)
            if ct is not None and ct.frozen:
                continue
            p.state = "run"
            p.wake = 0.0
            if p.on_wake is not None:
                charge_cpu(world, p, step(world, p, 1))


def next_wake(world: World) -> float | None:
    """When the earliest unfrozen sleeper wakes, or ``None``."""
    times = [
        p.wake for p in world.procs.values()
        if p.state == "sleep" and not world.containers.get(p.cid, SimContainer("", [])).frozen
    ]
    return min(times) if times else None


def advance(world: World, until: float, done: Callable[[], bool] | None = None, max_ops: int = MAX_OPS, *,
            step: Step) -> bool:
    """Move the clock forward to ``until``, running processes on the way.

    Args:
        world: The world.
        until: The simulated time to reach (the clock never passes it).
        done: Stop as soon as this says True (checked after every instant).
        max_ops: Give up after this many operations (the clock stays where it got to).
        step: What runs a process for a slice (:func:`labkit.sim.programs.step`).

    Returns:
        Whether ``done`` became true.
    """
    ops = 0
    while True:
        wake_sleepers(world, step)
        used, hungry = run_instant(world, step)
        ops += used
        if done is not None and done():
            return True
        if ops >= max_ops:
            return False
        wake = next_wake(world)
        target = wake if wake is not None else until
        if hungry:
            target = min(target, world.now + TICK)
        # The target is past ``until``, or nothing will ever run again, or ``until`` is reached with a process
        # still hungry: its next slice belongs to the next tick, which starts after ``until``.
        if target > until + 1e-12 or (target <= world.now and ((not hungry and wake is None)
                                                               or world.now >= until - 1e-12)):
            world.now = max(world.now, until)
            wake_sleepers(world, step)
            run_instant(world, step)
            return done() if done is not None else False
        world.now = max(world.now, target)
