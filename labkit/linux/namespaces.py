"""Linux namespaces: what each one isolates, and how to read and join them.

A namespace wraps one global resource so that the processes inside see their
own copy (namespaces(7)). labkit gives every container six of them:

========  ===============  ================================================
name      clone flag       what the container gets its own copy of
========  ===============  ================================================
pid       CLONE_NEWPID     process ids: its first process is PID 1
mnt       CLONE_NEWNS      the mount table: its own ``/``, ``/proc``, ``/dev``
uts       CLONE_NEWUTS     the hostname
ipc       CLONE_NEWIPC     System V IPC objects and POSIX message queues
net       CLONE_NEWNET     network devices, addresses, routes, ports
cgroup    CLONE_NEWCGROUP  the view of the cgroup tree (its cgroup is ``/``)
========  ===============  ================================================

Each namespace is a kernel object with an inode number; ``/proc/PID/ns/NAME``
is a link whose text (``pid:[4026532201]``) names it. Two processes share a
namespace exactly when these texts are equal, which is how the pictures and
the tests tell "inside" from "outside".
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from collections.abc import Callable, Iterable

from labkit.linux import syscalls
from labkit.model import views
from labkit.model.views import ProcessView

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

#: The namespaces a container gets, by their ``/proc/PID/ns`` name.
FLAGS: dict[str, int] = {
    "pid": CLONE_NEWPID,
    "mnt": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "net": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP,
}

#: The order ``exec_in`` joins them: cgroup, ipc, uts and net first, then pid
#: (which only affects children), and mnt last, because after it ``/proc``
#: paths resolve inside the container.
JOIN_ORDER = ("cgroup", "ipc", "uts", "net", "pid", "mnt")

#: setns(2) types by name, the user namespace included (a rootless container has one, joined first).
NSTYPES: dict[str, int] = {"user": CLONE_NEWUSER, **FLAGS}


def container_flags(new_network: bool) -> int:
    """The unshare(2) flags for a container's first process, except CLONE_NEWPID.

    CLONE_NEWPID is unshared by the supervisor before it forks, since a new PID
    namespace only applies to the children of the caller (pid_namespaces(7)).

    Args:
        new_network: Whether the container gets its own network namespace
            (``--network none`` or a bridge) or shares the host's.
    """
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP
    return flags | CLONE_NEWNET if new_network else flags


def ns_link(pid: int | str, name: str, proc: str = "/proc") -> str:
    """The text of ``/proc/PID/ns/NAME``, e.g. ``'net:[4026531840]'``."""
    return os.readlink(f"{proc}/{pid}/ns/{name}")


def ns_links(pid: int | str, names: Iterable[str] = FLAGS, proc: str = "/proc") -> dict[str, str]:
    """The namespace links of ``pid`` for each of ``names``, keyed by name."""
    return {name: ns_link(pid, name, proc) for name in names}


def ns_inode(pid: int | str, name: str, proc: str = "/proc") -> int:
    """The inode number that identifies the namespace ``name`` of ``pid``."""
    return os.stat(f"{proc}/{pid}/ns/{name}").st_ino


def open_namespaces(pid: int, names: Iterable[str] = JOIN_ORDER, proc: str = "/proc") -> list[tuple[str, int]]:
    """Open ``/proc/PID/ns/NAME`` for each name, returning (name, fd) pairs in order.

    Opening all of them before joining any matters: once the mount namespace
    is joined, ``/proc`` is the container's, where the host PID means nothing.
    The caller closes the descriptors.
    """
    opened: list[tuple[str, int]] = []
    try:
        for name in names:
            opened.append((name, os.open(f"{proc}/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
    except OSError:
        for _, fd in opened:
            os.close(fd)
        raise
    return opened


def join(opened: Iterable[tuple[str, int]]) -> None:
    """setns(2) into each opened namespace, checking its type by name.

    The calling process must be single-threaded (a mount namespace cannot be
    joined by a thread that shares its filesystem context with others), so this
    runs in a freshly forked child.
    """
    for name, fd in opened:
        syscalls.setns(fd, NSTYPES[name])


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_SIOCSIFADDR = 0x8916
_SIOCSIFNETMASK = 0x891C
_SIOCADDRT = 0x890B
_IFF_UP = 0x1
_RTF_UP, _RTF_GATEWAY = 0x1, 0x2


def loopback_up(name: str = "lo") -> None:
    """Bring the loopback device of the current network namespace up.

    A new network namespace has exactly one device, ``lo``, and it starts
    down (network_namespaces(7)); Docker's ``--network none`` leaves it up.
    This is the ioctl(2) ``ip link set lo up`` makes (netdevice(7)): read
    the flags, add IFF_UP, write them back.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh22x", name.encode(), 0)
        (flags,) = struct.unpack_from("16xh", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request))
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sh22x", name.encode(), flags | _IFF_UP))


def _sockaddr_in(address: str) -> bytes:
    return struct.pack("HH4s8x", socket.AF_INET, 0, socket.inet_aton(address))


def configure_interface(name: str, address: str, prefixlen: int, gateway: str) -> None:
    """Address ``name``, bring it and ``lo`` up, and route everything through ``gateway``.

    What ``ip addr add ADDRESS/PREFIXLEN dev NAME``, ``ip link set NAME up`` and
    ``ip route add default via GATEWAY`` do, through the older ioctl(2)s a
    container's first process can make without a netlink library: SIOCSIFADDR
    and SIOCSIFNETMASK (netdevice(7); the kernel derives the broadcast address,
    as Docker's eth0 shows it), then SIOCADDRT (``struct rtentry``, route(8)).
    The calling thread must be in the container's network namespace.
    """
    mask = socket.inet_ntoa(((0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF).to_bytes(4, "big"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fd = sock.fileno()
        fcntl.ioctl(fd, _SIOCSIFADDR, struct.pack("16s16s8x", name.encode(), _sockaddr_in(address)))
        fcntl.ioctl(fd, _SIOCSIFNETMASK, struct.pack("16s16s8x", name.encode(), _sockaddr_in(mask)))
        loopback_up(name)
        loopback_up("lo")
        # struct rtentry: rt_pad1, rt_dst, rt_gateway, rt_genmask, rt_flags, rt_pad2, rt_pad3, rt_pad4,
        # rt_metric, rt_dev, rt_mtu, rt_window, rt_irtt (native alignment; "0L" pads the end)
        route = struct.pack("@L16s16s16sHhLPhPLLH0L", 0, _sockaddr_in("0.0.0.0"), _sockaddr_in(gateway),
                            _sockaddr_in("0.0.0.0"), _RTF_UP | _RTF_GATEWAY, 0, 0, 0, 0, 0, 0, 0, 0)
        fcntl.ioctl(fd, _SIOCADDRT, route)


#: What one ``exec`` inside prints, in order, for :func:`process_view`: the container's own view of itself.
_SEP = "@@labkit-view@@"
_INSIDE = (f"cat /proc/1/status; echo {_SEP}; hostname; echo {_SEP}; cat /proc/net/dev; echo {_SEP}; "
           f"cat /proc/1/mounts; echo {_SEP}; cat /proc/1/cgroup; echo {_SEP}; cat /proc/meminfo; echo {_SEP}; "
           "ls /sys/fs/cgroup 2>/dev/null | wc -l")


def process_view(pid: int, exec_text: Callable[[str], tuple[int, str]], limits: tuple[str | None, str | None],
                 proc: str = "/proc") -> ProcessView:
    """A container's PID 1 as the kernel shows it to the host and to the process itself.

    The host side is read here: ``<proc>/<pid>/status`` (``NSpid`` lists the PID in
    every PID namespace, the host's first) and ``cgroup``, this host's hostname, its
    ``/proc/self/net/dev`` and mounts, and the texts of the container's memory and
    pids limit files. The inside is what one shell run in the container prints
    (``exec_text``), so every namespace answers for itself.

    Args:
        pid: Host PID of the container's PID 1.
        exec_text: Runs a ``/bin/sh -c`` script in the container; returns ``(exit code, output)``.
        limits: The memory and pids limit files' texts (None where a file is absent).
        proc: Where the host's procfs is mounted.

    Raises:
        InvalidArgument: The container could not print its view (its image lacks the tools).
    """
    from labkit.errors import InvalidArgument

    def read(path: str) -> str:
        with open(path) as f:
            return f.read()

    host = {"status": read(f"{proc}/{pid}/status"), "cgroup": read(f"{proc}/{pid}/cgroup"),
            "hostname": os.uname().nodename, "net_dev": read(f"{proc}/self/net/dev"),
            "mounts": read(f"{proc}/self/mounts"), "memory_limit": limits[0], "pids_limit": limits[1]}
    code, out = exec_text(_INSIDE)
    parts = [p.strip("\n") for p in out.split(_SEP)]
    if code != 0 or len(parts) != 7:
        raise InvalidArgument(f"the container could not print its own view of itself (exit code {code})",
                              "The image needs /bin/sh, cat, hostname, ls and wc (busybox has them)")
    inside: dict[str, object] = dict(zip(("status", "hostname", "net_dev", "mounts", "cgroup", "meminfo"), parts[:6],
                                         strict=True))
    inside["net_dev"] = parts[2] + "\n"
    inside["cgroup_files"] = int(parts[6].strip() or 0)
    return ProcessView(views.side_from_texts(host, innermost=False), views.side_from_texts(inside, innermost=True))
