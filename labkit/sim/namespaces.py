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

from labkit.model import events
from labkit.sim.kernel import SimContainer


def clone_flags(network: str) -> tuple[str, ...]:
    """The CLONE_NEW* flags the real backend uses: all of them, less NEWNET with ``--network host``."""
    if network == "host":
        return tuple(f for f in events.NAMESPACE_FLAGS if f != "NEWNET")
    return events.NAMESPACE_FLAGS


def enter_new(ct: SimContainer, hostname: str) -> None:
    """A fresh PID namespace (the next PID is 1) and a UTS namespace named ``hostname``."""
    ct.next_pid = 1
    ct.hostname = hostname
