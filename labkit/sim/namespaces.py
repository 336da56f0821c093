"""Simulated namespaces: what a container's first process gets from clone(2).

namespaces(7): a new PID namespace numbers its processes from 1 (the host
still sees each under a host PID), a UTS namespace holds its own hostname, a
mount namespace its own mount table (the overlay and its mounts,
:mod:`labkit.sim.overlay`), a network namespace only ``lo`` unless the
container shares the host's (:mod:`labkit.sim.network`). In the simulator a
namespace is just where these facts live: the container's PID counter, its
hostname, its mount list.
"""

from __future__ import annotations

import errno

from labkit.model import events, views
from labkit.model.views import ProcessSide, ProcessView
from labkit.sim.kernel import SimContainer, World
from labkit.sim.network import host_interfaces, interfaces
from labkit.sim.overlay import Vfs


def clone_flags(network: str) -> tuple[str, ...]:
    """The CLONE_NEW* flags the real backend uses: all of them, less NEWNET with ``--network host``."""
    if network == "host":
        return tuple(f for f in events.NAMESPACE_FLAGS if f != "NEWNET")
    return events.NAMESPACE_FLAGS


def enter_new(ct: SimContainer, hostname: str) -> None:
    """A fresh PID namespace (the next PID is 1) and a UTS namespace named ``hostname``."""
    ct.next_pid = 1
    ct.hostname = hostname


#: The simulated host's own mounts (a typical host's, before any container adds its overlay).
HOST_MOUNTS = ("/", "/proc", "/sys", "/sys/fs/cgroup", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp")


def process_view(world: World, ct: SimContainer, host_name: str) -> ProcessView:
    """The container's PID 1 seen from the simulated host and from inside (the simulator's own facts).

    The host sees PID 1 under its host PID, the host's hostname, lo with labkit's bridges and
    veth ends, its own mounts plus one overlay per running container, and the container's
    cgroup ``/labkit/<id>`` with its limits. Inside, the PID namespace numbers it 1, the UTS
    namespace holds the container's hostname, and ``/proc`` (the simulator's, as ``cat``
    inside would read it) lists its interfaces, mounts and ``MemTotal``; the cgroup
    namespace is rooted at the container's cgroup, so it sees ``/`` (cgroup_namespaces(7)),
    and no ``/sys/fs/cgroup`` is mounted inside, so the limits are not visible there.

    Raises:
        ProcessLookupError: The container has no PID 1 now.
    """
    pid1 = world.procs.get(ct.pid1)
    if pid1 is None:
        raise ProcessLookupError(errno.ESRCH, "the container's PID 1 is not running")
    running = sum(1 for c in world.containers.values() if c.pid1)
    bridged = sum(1 for c in world.containers.values() if c.pid1 and c.net)
    host = ProcessSide(pid=pid1.hpid, hostname=host_name, interfaces=tuple(i.name for i in host_interfaces(world)),
                       mounts=len(HOST_MOUNTS) + running + bridged, cgroup=f"/labkit/{ct.id}",
                       memory_limit=ct.memory_max or None, pids_limit=ct.pids_max or None)
    vfs = Vfs(world, ct)
    inside = ProcessSide(
        pid=pid1.pid,
        hostname=ct.hostname,
        interfaces=tuple(i.name for i in interfaces(world, ct, ct.host_net)),
        mounts=views.count_mounts(vfs.read("/proc/mounts").decode()),
        cgroup="/",
        mem_total=views.parse_memtotal(vfs.read("/proc/meminfo").decode()),
    )
    return ProcessView(host, inside)
