"""What a simulated container looks like from inside and from the host: the walls and network pictures, ``top``.

:meth:`Views.meter` gives a :class:`SimMeter`: the modelled cgroup counters
against the simulated clock, whose pause lets simulated time pass, so a
sampled container draws a curve.

Only the simulated world is read: a simulated PID is never looked up in the
host's ``/proc``.
"""

from __future__ import annotations

import os
from typing import Any

from labkit.errors import HostUnsupported
from labkit.model.container import ContainerRecord
from labkit.model.runtime import CgroupReading
from labkit.model.views import NetworkView, ProcessView
from labkit.sim import cgroups, namespaces, network, procfs
from labkit.sim.base import SimBase


class Views(SimBase):
    """What the pictures, the graders and ``docker top`` read of a running container."""

    def top(self, record: ContainerRecord, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
        """The simulated host's process table for the container, in ``ps -ef``'s columns (the only ones the
        model has: no other ``ps`` options)."""
        if ps_args not in (["-ef"], ["-e", "-f"], ["-f"], ["ef"]):
            raise HostUnsupported(f"the simulator's top shows ps -ef's columns only, not ps {' '.join(ps_args)}",
                                  "Leave the ps options out, or run on the real backend")
        with self._locked() as w:
            rows = procfs.ps_ef(w, self._container(w, record))
        return list(procfs.PS_EF_TITLES), rows

    def processes(self, record: ContainerRecord) -> list[dict[str, Any]]:
        """The container's processes: PID inside, host PID, parent, command, state."""
        with self._locked() as w:
            return [{"pid": p.pid, "host_pid": p.hpid, "ppid": p.ppid, "argv": list(p.argv), "state": p.state,
                     "memory": p.mem} for p in w.procs_of(record.id)]

    def cgroup_stats(self, record: ContainerRecord) -> dict[str, Any]:
        """The container's cgroup counters (memory.current, pids.current, ...)."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            return cgroups.stats(w, ct) if ct is not None else {}

    def process_view(self, record: ContainerRecord) -> ProcessView:
        """PID 1 as the simulated host and the process itself see it (:func:`labkit.sim.namespaces.process_view`).

        Only the simulated world is read: a simulated PID is never looked up in the host's ``/proc``.
        """
        with self._locked() as w:
            return namespaces.process_view(w, self._container(w, record), os.uname().nodename)

    def network_view(self, record: ContainerRecord) -> NetworkView:
        """The simulated host's interfaces and the container's (:func:`labkit.sim.network.interfaces`)."""
        with self._locked() as w:
            ct = self._container(w, record)
            return NetworkView(network.host_interfaces(w), network.interfaces(w, ct, ct.host_net),
                               network.veth_name(record.id) if ct.net and ct.net["Bridge"] else "")

    def kernel_memory_limit(self, record: ContainerRecord) -> int | None:
        """None: the model keeps no cgroup files; the record is all there is."""
        return None

    def host_has_pid1(self, record: ContainerRecord) -> bool:
        """The simulated host's process table, never the real ``/proc``."""
        return any(p["host_pid"] == record.state.pid for p in self.processes(record))

    def shared_namespaces(self, record: ContainerRecord, kinds: tuple[str, ...]) -> list[str]:
        """The model keeps no ``/proc/PID/ns`` links: a PID 1 that is PID 1 inside has its own namespaces
        (:func:`labkit.sim.namespaces.enter_new` gave it every kind), otherwise it shares them all."""
        first = [p for p in self.processes(record) if p["host_pid"] == record.state.pid]
        return [] if first and first[0]["pid"] == 1 else list(kinds)

    def meter(self, record: ContainerRecord) -> SimMeter | None:
        """The simulated group's counters against the simulated clock; ``None`` when PID 1 is not running."""
        with self._locked() as w:
            ct = w.containers.get(record.id)
            if ct is None or ct.pid1 == 0:
                return None
        return SimMeter(self, record)


class SimMeter:
    """A simulated container's cgroup counters against the simulated clock (a :class:`labkit.backend.Meter`).

    :meth:`pause` is a wait on the simulated kernel: the container's processes run
    for that much simulated time (the clock jumps; nothing sleeps), so sampling
    a container draws the curve its program makes, and an OOM kill lands between
    two readings.
    """

    def __init__(self, backend: SimBase, record: ContainerRecord) -> None:
        self.backend = backend
        self.record = record

    def clock(self) -> float:
        """Simulated seconds since the world began."""
        with self.backend._locked() as w:
            return w.now

    def read(self) -> CgroupReading | None:
        """``memory.current``, ``pids.current`` and ``oom_kill`` now; ``None`` once PID 1 has ended."""
        with self.backend._locked() as w:
            return cgroups.reading(w, w.containers.get(self.record.id))

    def pause(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (less if PID 1 ends first)."""
        self.backend.wait(self.record, seconds)
