"""The simulated ``/proc``: files made up from the world when they are read, as proc(5)'s are.

A container's mount namespace has ``/proc`` mounted from a proc filesystem
whose PID namespace is the container's (pid_namespaces(7)): it lists only
the container's processes, under the PIDs they have there. The simulator
synthesises the few files the lessons read:

* ``/proc/<pid>/cmdline``, ``comm``, ``status`` (Name, State, Pid, PPid, VmRSS);
* ``/proc/meminfo``: ``MemTotal`` is the container's ``memory.max``, or the
  simulated host's memory (:data:`labkit.sim.cgroups.HOST_MEMORY`) without one;
* ``/proc/mounts``: the overlay, ``/proc`` itself and the container's mounts;
* ``/proc/net/dev``: the interfaces of the container's network namespace;
* ``/proc/uptime``: the simulated clock.

:class:`labkit.sim.overlay.Vfs` mounts it at ``/proc``: every path it is
handed starts with ``/proc``. Errors are :class:`OSError` with the errno
the syscall gives.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from labkit.sim import cgroups
from labkit.sim.kernel import SimContainer, World
from labkit.sim.network import interfaces

#: The permission bits of /proc's directories and files (proc(5): read-only to all).
MODES = {"dir": 0o555, "file": 0o444}

_PID_FILES = ("cmdline", "comm", "status")


def _procs(world: World, ct: SimContainer) -> dict[int, Any]:
    """The container's processes by the PID its namespace gives them."""
    return {p.pid: p for p in world.procs_of(ct.id)}


def kind(world: World, ct: SimContainer, path: str) -> str:
    """What ``path`` is: ``dir`` or ``file``.

    Raises:
        OSError: ENOENT for a name /proc does not have.
    """
    parts = path.split("/")[2:]
    procs = _procs(world, ct)
    if not parts or parts == ["net"]:
        return "dir"
    if parts[0].isdigit() and int(parts[0]) in procs:
        if len(parts) == 1:
            return "dir"
        if len(parts) == 2 and parts[1] in _PID_FILES:
            return "file"
    if len(parts) == 1 and parts[0] in ("meminfo", "mounts", "uptime"):
        return "file"
    if parts == ["net", "dev"]:
        return "file"
    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)


def listdir(world: World, ct: SimContainer, path: str) -> list[str]:
    """The names in a /proc directory (a PID directory for each of the container's processes).

    Raises:
        OSError: ENOTDIR for a file, ENOENT for a name /proc does not have.
    """
    procs = _procs(world, ct)
    if path == "/proc":
        return [str(pid) for pid in sorted(procs)] + ["meminfo", "mounts", "net", "uptime"]
    if path == "/proc/net":
        return ["dev"]
    pid = path.split("/")[2]
    if pid.isdigit() and int(pid) in procs and path.count("/") == 2:
        return list(_PID_FILES)
    raise OSError(errno.ENOTDIR if kind(world, ct, path) != "dir" else errno.ENOENT,
                  os.strerror(errno.ENOENT), path)


def read(world: World, ct: SimContainer, path: str) -> bytes:
    """What reading a /proc file gives now.

    Raises:
        OSError: EISDIR for a directory, ENOENT for a name /proc does not have.
    """
    if kind(world, ct, path) == "dir":
        raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    parts = path.split("/")[2:]
    if parts[0].isdigit():
        return _pid_file(ct, _procs(world, ct)[int(parts[0])], parts[1])
    if parts == ["net", "dev"]:
        rows = "".join(f"{i.name:>6}:       0       0    0    0    0     0          0         0        0"
                       "       0    0    0    0     0       0          0\n"
                       for i in interfaces(world, ct, ct.host_net))
        return ("Inter-|   Receive                                                |  Transmit\n"
                " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
                "drop fifo colls carrier compressed\n" + rows).encode()
    if parts == ["mounts"]:
        lines = ["overlay / overlay rw,relatime 0 0", "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0"]
        lines += [f"labkit-sim {dest} none {'ro' if ro else 'rw'},bind 0 0" for dest, _, ro in ct.mounts]
        return ("\n".join(lines) + "\n").encode()
    if parts == ["uptime"]:
        return f"{world.now:.2f} 0.00\n".encode()
    limit = ct.memory_max or cgroups.HOST_MEMORY
    used = cgroups.usage(world, ct)
    return f"MemTotal: {limit // 1024} kB\nMemFree: {(limit - used) // 1024} kB\n".encode()


def _pid_file(ct: SimContainer, p: Any, name: str) -> bytes:
    """``/proc/<pid>/<name>`` of process ``p`` (a task of a frozen container shows as ``D (disk sleep)``)."""
    comm = os.path.basename(p.argv[0]) if p.argv else ""
    if name == "cmdline":
        return b"".join(a.encode() + b"\0" for a in p.argv)
    if name == "comm":
        return (comm[:15] + "\n").encode()
    state = {"run": "R (running)", "sleep": "S (sleeping)", "wait": "S (sleeping)",
             "serve": "S (sleeping)"}.get(p.state, "R (running)")
    if ct.frozen:
        state = "D (disk sleep)"
    ids = f"Uid:\t{p.uid}\t{p.uid}\t{p.uid}\t{p.uid}\nGid:\t{p.gid}\t{p.gid}\t{p.gid}\t{p.gid}\n"
    groups = "Groups:\t" + " ".join(str(g) for g in p.groups) + ("\n" if not p.groups else " \n")
    caps = (f"CapInh:\t{0:016x}\nCapPrm:\t{p.cap_eff:016x}\nCapEff:\t{p.cap_eff:016x}\nCapBnd:\t{p.cap_bnd:016x}\n"
            f"CapAmb:\t{0:016x}\nNoNewPrivs:\t1\nSeccomp:\t{p.seccomp}\n")
    return (f"Name:\t{comm[:15]}\nState:\t{state}\nPid:\t{p.pid}\nPPid:\t{p.ppid}\n{ids}{groups}"
            f"VmRSS:\t{p.mem // 1024} kB\n{caps}").encode()


# -- ps -ef on the simulated host (docker top) --------------------------------------------------------

#: ``ps -ef``'s titles, as ``docker top`` shows them.
PS_EF_TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]


def _user_name(uid: int) -> str:
    """The host's name for ``uid``, as ps prints it (the number when the host has none)."""
    try:
        import pwd  # not on every system the simulator runs on
    except ImportError:
        return "root" if uid == 0 else str(uid)
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _cpu_time(ns: int) -> str:
    """ps's TIME: CPU time as ``[DD-]HH:MM:SS``."""
    seconds = ns // 1_000_000_000
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def ps_ef(world: World, ct: SimContainer) -> list[list[str]]:
    """The container's processes as ``ps -ef`` on the simulated host lists them (``docker top``), host PID order.

    PID and PPID are host PIDs (PID 1's parent is outside the world: 0); C is the share of a CPU the
    process used since it started, TIME the CPU time it used (the scheduler's, :data:`labkit.sim.kernel.OP_NS`
    per operation); STIME is when it started on the simulated clock.
    """
    rows = []
    today = world.wall().date()
    for p in sorted(_procs(world, ct).values(), key=lambda q: q.hpid):
        lived = world.now - p.started
        share = int(100 * p.cpu_ns / (lived * 1e9)) if lived > 0 else 0
        started = world.wall(p.started)
        stime = started.strftime("%H:%M") if started.date() == today else started.strftime("%b%d")
        parent = p.parent_hpid if p.parent_hpid in world.procs else 0
        rows.append([_user_name(p.uid), str(p.hpid), str(parent), str(share), stime, "?", _cpu_time(p.cpu_ns),
                     " ".join(p.argv)])
    return rows
