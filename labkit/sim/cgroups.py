"""Simulated cgroups: memory and pids counters with their limits, and the freezer.

The same controls as the kernel's cgroup v2 files (cgroups(7),
Documentation/admin-guide/cgroup-v2.rst):

* ``memory.max``: when a process needs more memory than the group may have,
  the OOM killer ends the group's largest process with SIGKILL (exit 137)
  and ``memory.events`` counts an ``oom_kill`` (inspect then says OOMKilled).
  Usage is what the simulated programs hold: a base size per process plus
  the shell variables it keeps (``x=$x$x`` doubles it).
* The host's memory: the simulated host has :data:`HOST_MEMORY` bytes of RAM.
  When the whole world's processes need more than that, the kernel's global
  OOM killer (mm/oom_kill.c, ``out_of_memory()`` outside any memcg) ends the
  largest process on the host, whatever its cgroup, with SIGKILL; its
  group's ``memory.events oom_kill`` still counts it ("killed by any kind of
  OOM killer", cgroup-v2.rst), so inspect says OOMKilled. So a hog started
  without ``--memory`` ends as it would on a real host, and the world it
  leaves stays small enough to save. Output held for a pipe's next stage or
  a ``$(...)`` counts too (the simulator runs a pipeline's stages one after
  the other, so it holds what a real pipe would make the writer wait on):
  the process that writes past the host's memory is the one killed.
* ``pids.max``: fork(2) fails with EAGAIN once the group has that many tasks.
* ``cgroup.freeze``: frozen tasks are not scheduled (see :mod:`labkit.sim.kernel`).
* ``cpu.stat usage_usec``: the CPU time the scheduler gave the group's processes
  (:data:`labkit.sim.kernel.OP_NS` per operation, a busy loop one CPU's worth);
  ``cpu.max`` is written but not enforced (the simulator says so).

This module counts and decides; it acts on no process (the OOM killer's
SIGKILL is sent by :func:`labkit.sim.process.need_memory`), so it imports only
the kernel's records.
"""

from __future__ import annotations

from typing import Any

from labkit.model.runtime import CgroupReading
from labkit.sim.kernel import SimContainer, World

#: The simulated host's RAM (bytes): what ``/proc/meminfo`` says without a limit, where the global OOM killer strikes.
#: The simulator holds every simulated byte in its own memory, so the modelled host is small.
HOST_MEMORY = 256 * 1024 * 1024


def limit_files(ct: SimContainer, memory_swap: int = 0, nano_cpus: int = 0) -> list[tuple[str, str]]:
    """The files written at start, with their values (as the trace shows them)."""
    out = []
    if ct.memory_max:
        out.append(("memory.max", str(ct.memory_max)))
        if memory_swap and memory_swap > 0:
            out.append(("memory.swap.max", str(max(memory_swap - ct.memory_max, 0))))
    if ct.pids_max:
        out.append(("pids.max", str(ct.pids_max)))
    if nano_cpus:
        out.append(("cpu.max", f"{nano_cpus * 100000 // 1_000_000_000} 100000"))
    return out


def usage(world: World, ct: SimContainer) -> int:
    """``memory.current``: what the group's processes hold."""
    return sum(p.mem for p in world.procs.values() if p.cid == ct.id)


def pids_current(world: World, ct: SimContainer) -> int:
    """``pids.current``: the group's tasks."""
    return sum(1 for p in world.procs.values() if p.cid == ct.id)


def can_fork(world: World, ct: SimContainer) -> bool:
    """Whether one more task fits under ``pids.max``."""
    return not ct.pids_max or pids_current(world, ct) < ct.pids_max


def charge(world: World, ct: SimContainer) -> None:
    """Recompute the group's usage and remember the peak."""
    ct.memory_peak = max(ct.memory_peak, usage(world, ct))


def oom_victim(world: World, proc: Any, extra: int) -> Any | None:
    """``proc`` is about to hold ``extra`` more bytes: ``None`` when they fit, else the process the OOM killer takes.

    First the group's own limit (``memory.max``: the memcg OOM killer picks
    within the group), then the host's memory (:data:`HOST_MEMORY`: the
    global OOM killer picks among every process of the world). The victim's
    group counts an ``oom_kill`` now; killing it is
    :func:`labkit.sim.process.need_memory`'s part (this module only counts).
    """
    ct = world.containers.get(proc.cid)
    if ct is None:
        return None
    want = usage(world, ct) + extra
    if ct.memory_max:
        ct.memory_peak = max(ct.memory_peak, min(want, ct.memory_max))
        if want > ct.memory_max:
            return _oom_pick(world, proc, extra, world.procs_of(ct.id))
    else:
        ct.memory_peak = max(ct.memory_peak, min(want, HOST_MEMORY))
    host = sum(p.mem for p in world.procs.values()) + sum(len(b) for b in world.buffers.values()) + extra
    if host > HOST_MEMORY:
        return _oom_pick(world, proc, extra, list(world.procs.values()))
    return None


def _oom_pick(world: World, proc: Any, extra: int, among: list[Any]) -> Any:
    """The largest of ``among`` (``proc`` counted with its request), its group's ``oom_kill`` counted."""
    # mm/oom_kill.c's oom_badness(): the task with the largest footprint; the one allocating counts its request.
    candidates = [(p.mem + (extra if p is proc else 0), p.hpid, p) for p in among]
    _, _, victim = max(candidates, key=lambda c: (c[0], c[1]))
    owner = world.containers.get(victim.cid)
    if owner is not None:
        owner.oom_kills += 1
    return victim


def stats(world: World, ct: SimContainer) -> dict[str, Any]:
    """The group's counters, named like the cgroup v2 files."""
    return {
        "memory.current": usage(world, ct),
        "memory.peak": ct.memory_peak,
        "memory.max": ct.memory_max or "max",
        "memory.events": {"oom_kill": ct.oom_kills},
        "pids.current": pids_current(world, ct),
        "pids.max": ct.pids_max or "max",
        "cpu.stat": {"usage_usec": ct.cpu_ns // 1000},
        "cgroup.freeze": int(ct.frozen),
    }


def reading(world: World, ct: SimContainer | None) -> CgroupReading | None:
    """The counters now, at the simulated clock; ``None`` once PID 1 has ended (the real group is removed then)."""
    if ct is None or ct.pid1 == 0:
        return None
    return CgroupReading(world.now, usage(world, ct), pids_current(world, ct), ct.oom_kills, cpu_ns=ct.cpu_ns,
                         memory_limit=ct.memory_max or HOST_MEMORY, net_rx=0, net_tx=0, block_read=0, block_write=0)
