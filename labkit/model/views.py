"""What a container's process sees, and what the host sees of it: the facts behind the walls and network pictures.

A container is a process whose namespaces and cgroups give it a view of its
own. Both backends report that view in the same two shapes, so a picture
never has to know where the facts came from:

* :class:`ProcessView`: one process seen from the host and from inside —
  its PID in each PID namespace (pid_namespaces(7)), the hostname of each UTS
  namespace (uts_namespaces(7)), the interfaces of each network namespace
  (network_namespaces(7)), how many mounts each mount namespace holds
  (mount_namespaces(7)), and its cgroup path and limits (cgroup_namespaces(7),
  cgroups(7)).
* :class:`NetworkView`: the interfaces of the host's network namespace and of
  the container's, with their addresses, MACs and the bridge each port is
  plugged into, and the host end of the container's veth pair (veth(4)).

The linux backend fills them from what the kernel prints (``/proc`` files,
cgroup limit files, ``ip -o`` lines), parsed by the pure functions below; the
simulator fills them from its model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Limits at or above this are "no limit" (cgroup v1 writes 2^63 rounded down to a page).
UNLIMITED = 1 << 60


@dataclass(frozen=True)
class ProcessSide:
    """One side of the wall: what the host, or the process itself, sees.

    Attributes:
        pid: The process's PID in this side's PID namespace.
        hostname: The hostname of this side's UTS namespace.
        interfaces: Interface names of this side's network namespace.
        mounts: How many mounts this side's mount namespace holds.
        cgroup: The process's cgroup path as this side's cgroup namespace shows it.
        memory_limit: The memory limit in bytes seen here (None: none, or not visible).
        pids_limit: The process-count limit seen here (None: none, or not visible).
        mem_total: ``MemTotal`` of ``/proc/meminfo`` as read here, in bytes (None when not read).
        cgroup_files: How many entries ``/sys/fs/cgroup`` shows here (0: the limits are not visible).
    """

    pid: int
    hostname: str
    interfaces: tuple[str, ...]
    mounts: int
    cgroup: str
    memory_limit: int | None = None
    pids_limit: int | None = None
    mem_total: int | None = None
    cgroup_files: int = 0


@dataclass(frozen=True)
class ProcessView:
    """A container's PID 1 seen from the host and from inside."""

    host: ProcessSide
    inside: ProcessSide


@dataclass(frozen=True)
class Interface:
    """A network interface as ``ip`` lists it.

    Attributes:
        name: Its name (``lo``, ``eth0``, a bridge, a veth's host end).
        addresses: Its addresses with prefix length (``172.17.0.2/16``); IPv6 ones have colons.
        mac: Its link-layer address ("" when unknown or none).
        master: The bridge it is plugged into ("" when none): a veth's host end has one.
    """

    name: str
    addresses: tuple[str, ...] = ()
    mac: str = ""
    master: str = ""


@dataclass(frozen=True)
class NetworkView:
    """The interfaces on both sides of a container's network namespace.

    Attributes:
        host: The host network namespace's interfaces.
        inside: The container's (the host's own with ``--network host``).
        veth: The host end of the container's veth pair ("" without one: ``none`` and ``host`` modes).
    """

    host: tuple[Interface, ...]
    inside: tuple[Interface, ...]
    veth: str = ""


# -- reading what the kernel prints -----------------------------------------------------------------

def parse_nspid(status: str) -> tuple[int, ...]:
    """``NSpid:`` of ``/proc/<pid>/status``: the PID in each nested PID namespace, outermost first."""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return tuple(int(x) for x in line.split()[1:])
    for line in status.splitlines():
        if line.startswith("Pid:"):
            return (int(line.split()[1]),)
    return ()


def parse_net_dev(text: str) -> tuple[str, ...]:
    """Interface names from ``/proc/net/dev`` (its first two lines are headers)."""
    return tuple(line.split(":", 1)[0].strip() for line in text.splitlines()[2:] if ":" in line)


def count_mounts(text: str) -> int:
    """Lines of ``/proc/<pid>/mounts``."""
    return sum(1 for line in text.splitlines() if line.strip())


def parse_cgroup(text: str) -> str:
    """The cgroup path from ``/proc/<pid>/cgroup``: the memory controller's, else the v2 (``0::``) one."""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for ctl in parts[1].split(",") or [""]:
                paths[ctl] = parts[2]
    return paths.get("memory") or paths.get("") or next(iter(paths.values()), "?")


def parse_limit(text: str | None) -> int | None:
    """A cgroup limit file's value in bytes/count; ``None`` for ``max`` or an effectively unlimited number."""
    if text is None:
        return None
    word = text.strip().split()[0] if text.strip() else "max"
    if word == "max" or not word.lstrip("-").isdigit():
        return None
    value = int(word)
    return None if value >= UNLIMITED or value < 0 else value


def parse_memtotal(meminfo: str) -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in bytes."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def side_from_texts(texts: Mapping[str, Any], innermost: bool) -> ProcessSide:
    """One side from the files the kernel shows there.

    Args:
        texts: ``status`` and ``cgroup`` of the process, this side's ``hostname``,
            ``net_dev`` (``/proc/net/dev``) and ``mounts``; optionally the limit files'
            texts ``memory_limit`` and ``pids_limit``, ``meminfo`` and ``cgroup_files``
            (how many entries ``/sys/fs/cgroup`` lists).
        innermost: Take the PID of the innermost PID namespace (the container's view)
            rather than the outermost (the host's).
    """
    nspid = parse_nspid(texts["status"])
    return ProcessSide(
        pid=(nspid[-1] if innermost else nspid[0]) if nspid else 0,
        hostname=texts["hostname"].strip(),
        interfaces=parse_net_dev(texts["net_dev"]),
        mounts=count_mounts(texts["mounts"]),
        cgroup=parse_cgroup(texts["cgroup"]),
        memory_limit=parse_limit(texts.get("memory_limit")),
        pids_limit=parse_limit(texts.get("pids_limit")),
        mem_total=parse_memtotal(texts.get("meminfo") or ""),
        cgroup_files=int(texts.get("cgroup_files") or 0),
    )


def parse_ip(text: str) -> tuple[Interface, ...]:
    """Interfaces from ``ip -o link`` and ``ip -o addr`` lines (iproute2 and busybox print the same form).

    A link line gives the MAC (``link/ether ...``) and the bridge (``master ...``);
    an address line (``inet``/``inet6``) gives an address. ``eth0@if7`` is ``eth0``.
    """
    found: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        parts = line.replace("\\", " ").split()
        if len(parts) < 3 or not parts[0].rstrip(":").isdigit():
            continue
        name = parts[1].rstrip(":").split("@")[0]
        entry = found.setdefault(name, {"addresses": [], "mac": "", "master": ""})
        if parts[2] in ("inet", "inet6") and len(parts) > 3:
            if parts[3] not in entry["addresses"]:
                entry["addresses"].append(parts[3])
            continue
        for key, value in zip(parts, parts[1:], strict=False):
            if key == "master":
                entry["master"] = value
            elif key == "link/ether":
                entry["mac"] = value
    return tuple(Interface(n, tuple(e["addresses"]), e["mac"], e["master"]) for n, e in found.items())


__all__ = ["UNLIMITED", "Interface", "NetworkView", "ProcessSide", "ProcessView", "count_mounts", "parse_cgroup",
           "parse_ip", "parse_limit", "parse_memtotal", "parse_net_dev", "parse_nspid", "side_from_texts"]
