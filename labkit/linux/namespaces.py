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

The shim makes and joins them (``pid1.c``: unshare(2) in PID 1, setns(2) for
exec, in that order: cgroup's after the cgroups are joined, mnt last, since
after it ``/proc`` paths resolve inside the container); this module names
them and reads them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

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

def ns_link(pid: int | str, name: str, proc: str = "/proc") -> str:
    """The text of ``/proc/PID/ns/NAME``, e.g. ``'net:[4026531840]'``."""
    return os.readlink(f"{proc}/{pid}/ns/{name}")


def ns_links(pid: int | str, names: Iterable[str] = FLAGS, proc: str = "/proc") -> dict[str, str]:
    """The namespace links of ``pid`` for each of ``names``, keyed by name."""
    return {name: ns_link(pid, name, proc) for name in names}


def ns_inode(pid: int | str, name: str, proc: str = "/proc") -> int:
    """The inode number that identifies the namespace ``name`` of ``pid``."""
    return os.stat(f"{proc}/{pid}/ns/{name}").st_ino


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
