"""What a real container looks like from inside and from the host: the walls and network pictures, ``top``.

Each answer is the kernel's own: ``ps`` on the host kept to the container's
cgroup (``cgroup.procs``), ``/proc/PID`` and ``/proc/PID/ns/*`` links
(namespaces(7)), the cgroup's interface files, and what a shell inside the
container prints (:mod:`labkit.linux.namespaces`, :mod:`labkit.linux.network`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from labkit.errors import LabkitError, NotFound
from labkit.linux import cgroups, namespaces, procfs
from labkit.linux import network as net
from labkit.linux.networking import Networking
from labkit.model.container import ContainerRecord
from labkit.model.runtime import CgroupReading
from labkit.model.views import NetworkView, ProcessView
from labkit.store import read_json


class Views(Networking):
    """What the pictures, the graders and ``docker top`` read of a running container."""

    def top(self, record: ContainerRecord, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
        """``ps ps_args`` on the host, kept to the processes in the container's cgroup (``cgroup.procs``), as
        dockerd's ``top`` does; rootless without a delegated cgroup, to those in PID 1's PID namespace."""
        try:
            group = self._group_or_none(record)
            pids = set(group.pids()) if group is not None else set()
        except (NotFound, OSError):
            pids = set()
        if not pids:
            pids = namespaces.pid_namespace_members(record.state.pid)
        return procfs.ps_table(ps_args, pids)

    def process_view(self, record: ContainerRecord) -> ProcessView:
        """PID 1 as the kernel shows it to the host and to itself (see :func:`labkit.linux.namespaces.process_view`)."""
        return namespaces.process_view(record.state.pid, lambda script: self._sh(record, script),
                                       self._limit_texts(record))

    def network_view(self, record: ContainerRecord) -> NetworkView:
        """The host's interfaces and the container's, as the kernel lists them (:func:`labkit.linux.net.network_view`)."""
        info = read_json(self.store.container_dir(record.id) / "network.json")
        veth = info.get("Veth", "") if info is not None and self._net_live(record, info) else ""
        return net.network_view(record.state.pid, lambda script: self._sh(record, script), veth,
                                record.config.network == "host")

    def _limit_texts(self, record: ContainerRecord) -> tuple[str | None, str | None]:
        """The container's memory and pids limit files as the host reads them (None where absent)."""
        try:
            group = self._group_or_none(record)
        except (NotFound, OSError):
            group = None
        if group is None:
            return None, None
        layout = group.layout
        texts: list[str | None] = []
        for path in (group.interface_file("memory", "memory.max" if layout.is_unified("memory")
                                          else "memory.limit_in_bytes"), group.interface_file("pids", "pids.max")):
            try:
                texts.append(Path(path).read_text() if path else None)
            except OSError:
                texts.append(None)
        return texts[0], texts[1]

    def meter(self, record: ContainerRecord) -> Meter | None:
        """The container's cgroup files, read against the host's clock; ``None`` when its group cannot be found."""
        try:
            return Meter(self._group(record), pid=record.state.pid)
        except (LabkitError, OSError):
            return None

    def kernel_memory_limit(self, record: ContainerRecord) -> int | None:
        """``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1) of the container's group; None if unreadable."""
        try:
            group = cgroups.Cgroup.open(self.layout, record.id)
            path = group.interface_file("memory", "memory.max" if self.layout.is_unified("memory")
                                        else "memory.limit_in_bytes")
            with open(path or "") as f:
                text = f.read().strip()
            return None if text == "max" else int(text)
        except (OSError, ValueError, LabkitError):
            return None

    def host_has_pid1(self, record: ContainerRecord) -> bool:
        """``/proc/PID`` exists: a container's PID 1 is an ordinary host process."""
        return record.state.pid > 0 and os.path.isdir(f"/proc/{record.state.pid}")

    def shared_namespaces(self, record: ContainerRecord, kinds: tuple[str, ...]) -> list[str]:
        """The kinds whose ``/proc/PID/ns/KIND`` link names the same namespace as this process's (namespaces(7))."""
        pid = record.state.pid
        return [kind for kind in kinds if os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}")]


class Meter:
    """A group's counters read against the host's monotonic clock (a :class:`labkit.backend.Meter`).

    Args:
        group: The container's group.
        clock: Seconds now (``time.monotonic``).
        sleep: Waits that many seconds (``time.sleep``).
    """

    def __init__(self, group: cgroups.Cgroup, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, pid: int = 0, proc: str = "/proc") -> None:
        self.group = group
        self._clock = clock
        self._sleep = sleep
        self._pid = pid  # PID 1 on the host: its /proc/PID/net/dev is its network namespace's
        self._proc = proc

    def clock(self) -> float:
        """Seconds on the host's monotonic clock."""
        return self._clock()

    def read(self) -> CgroupReading | None:
        """``memory.current`` (or ``memory.usage_in_bytes``), ``pids.current`` and ``oom_kill`` now.

        The supervisor removes the group as soon as PID 1 ends: a group whose
        files can no longer be read gives ``None``.
        """
        at = self._clock()
        memory, pids = _safe(self.group.memory_usage), _safe(self.group.pids_current)
        if memory is None and pids is None:
            return None
        host = procfs.host_memory(self._proc)
        limit = _safe(self.group.memory_limit)
        block = _safe_pair(self.group.block_io)
        net = procfs.net_bytes(self._pid, self._proc) if self._pid else None
        return CgroupReading(at, memory, pids, _safe(self.group.oom_kills), cpu_ns=_safe(self.group.cpu_usage_ns),
                             memory_limit=min(limit, host) if limit and host else (limit or host),
                             cache=_safe(self.group.inactive_file),
                             net_rx=net[0] if net else None, net_tx=net[1] if net else None,
                             block_read=block[0] if block else None, block_write=block[1] if block else None)

    def pause(self, seconds: float) -> None:
        """Sleep."""
        self._sleep(seconds)



def _safe(read: Callable[[], int | None]) -> int | None:
    try:
        return read()
    except (OSError, ValueError):
        return None



def _safe_pair(read: Callable[[], tuple[int, int] | None]) -> tuple[int, int] | None:
    try:
        return read()
    except (OSError, ValueError):
        return None

