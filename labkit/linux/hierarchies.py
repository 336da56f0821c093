"""Which cgroup hierarchies a host offers, and which subtree of them a user may manage.

The shapes a host comes in (v1, v2, hybrid) and the groups a container makes in
them are described in :mod:`labkit.linux.cgroups`; this module reads the mount
table to find them (:func:`detect`) and, without root, finds the cgroup v2
subtree systemd delegated to the user (:func:`delegated`). A rootless container
gets limits and the cgroup freezer only there; without one it runs without
limits, and pause stops its processes by signal (:mod:`labkit.linux.freezer`).
"""

from __future__ import annotations

import atexit
import os
import re
from dataclasses import dataclass

from labkit.errors import HostUnsupported, InvalidArgument
from labkit.linux import systemd

#: Controllers a cgroup v1 mount may carry (named hierarchies such as
#: ``name=systemd`` carry none and are ignored).
V1_CONTROLLERS = frozenset(
    {
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "misc",
        "net_cls",
        "net_prio",
        "perf_event",
        "pids",
        "rdma",
    }
)

#: The v1 hierarchies a container joins (:mod:`labkit.linux.cgroups` says why).
JOINED_V1 = ("memory", "pids", "cpu", "cpuacct", "freezer", "devices", "blkio")

#: The command-line flag each limit's controller serves, for error messages.
LIMIT_FLAGS = {"memory": "--memory", "pids": "--pids-limit", "cpu": "--cpus"}


@dataclass(frozen=True)
class Layout:
    """The cgroup hierarchies this host offers.

    Attributes:
        version: ``"v1"``, ``"v2"`` or ``"hybrid"`` (v1 hierarchies plus a cgroup2 mount).
        controllers: Each controller the host offers, mapped to the mount point of
            the hierarchy it lives in (all map to the unified mount on v2).
        unified: The cgroup2 mount point, if there is one.
        freezer: Which freezer pause uses: ``"v1"`` (``freezer.state``), ``"v2"``
            (``cgroup.freeze``) or ``"none"``.
    """

    version: str
    controllers: dict[str, str]
    unified: str | None
    freezer: str

    @property
    def hierarchies(self) -> tuple[str, ...]:
        """Every mounted hierarchy that holds a controller, plus the unified one, without repeats."""
        paths = dict.fromkeys(self.controllers.values())
        if self.unified:
            paths[self.unified] = None
        return tuple(paths)

    def joined(self) -> tuple[str, ...]:
        """The hierarchies a container's group is made in (see the module docstring)."""
        paths = dict.fromkeys(self.controllers[c] for c in JOINED_V1 if c in self.controllers)
        if self.unified:
            paths[self.unified] = None
        return tuple(paths)

    def is_unified(self, controller: str) -> bool:
        """Whether ``controller`` lives in the unified (cgroup2) hierarchy."""
        return self.unified is not None and self.controllers.get(controller) == self.unified

    def describe(self) -> list[str]:
        """Plain-words lines saying what this host's cgroups allow, for ``labkit doctor``."""
        if self.version == "v2":
            lines = [f"cgroups: v2, one unified hierarchy at {self.unified}."]
        elif self.version == "hybrid":
            lines = [
                "cgroups: hybrid, one v1 hierarchy per controller plus a cgroup2 mount at "
                f"{self.unified} that containers also join."
            ]
        else:
            lines = ["cgroups: v1, one hierarchy per controller."]
        for controller, flag in LIMIT_FLAGS.items():
            where = self.controllers.get(controller)
            if where is None:
                lines.append(f"{flag} cannot be enforced: this host has no {controller} controller.")
            else:
                kind = "v2" if self.is_unified(controller) else "v1"
                lines.append(f"{flag} is enforced by the {controller} controller (cgroup {kind}, {where}).")
        v1_devices = "devices" in self.controllers and not self.is_unified("devices")
        ways = [w for w, here in (("the v1 devices controller", v1_devices),
                                  ("a BPF program on each container's cgroup v2 group", self.unified)) if here]
        if ways:
            lines.append(f"Docker's device rules are set in {' and '.join(ways)}.")
        else:
            lines.append("device rules cannot be set (no devices controller, no cgroup2 mount), so root containers "
                         "are refused; rootless ones run.")
        if self.freezer == "v1":
            lines.append("pause uses the v1 freezer (freezer.state).")
        elif self.freezer == "v2":
            lines.append("pause uses the v2 freezer (cgroup.freeze).")
        else:
            lines.append("pause cannot work: this host has no cgroup freezer.")
        return lines


def _unescape(field: str) -> str:
    """Undo the octal escapes (``\\040`` for a space) that /proc/self/mounts uses, see proc(5)."""
    if "\\" not in field:
        return field
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def detect(mounts_file: str = "/proc/self/mounts", freezer: str | None = None) -> Layout:
    """Find the cgroup hierarchies this host has mounted.

    Args:
        mounts_file: A mount table in the format of /proc/self/mounts (proc(5)).
            Its mount points are used as they are, so a table naming a temporary
            directory gives a layout rooted there.
        freezer: ``"v1"`` or ``"v2"`` to force which freezer pause uses; by default
            the v1 freezer controller when mounted, else the v2 ``cgroup.freeze``.

    Returns:
        The host's :class:`Layout`.

    Raises:
        HostUnsupported: No cgroup filesystem is mounted, or the forced freezer
            does not exist here.
        InvalidArgument: ``freezer`` is not ``"v1"`` or ``"v2"``.
    """
    controllers: dict[str, str] = {}
    unified: str | None = None
    with open(mounts_file) as table:
        for line in table:
            fields = line.split()
            if len(fields) < 4 or fields[2] not in ("cgroup", "cgroup2"):
                continue  # a busy host has hundreds of other mounts (every container's overlay, proc, ...)
            mount_point, fstype, options = _unescape(fields[1]), fields[2], fields[3].split(",")
            if fstype == "cgroup":
                for option in options:
                    if option in V1_CONTROLLERS:
                        controllers.setdefault(option, mount_point)
            elif fstype == "cgroup2" and unified is None:
                unified = mount_point
    v1 = bool(controllers)
    if unified is not None:
        # cgroup.controllers of the root lists what the unified hierarchy offers;
        # on a hybrid host it holds only what no v1 hierarchy has bound.
        try:
            with open(os.path.join(unified, "cgroup.controllers")) as f:
                for name in f.read().split():
                    controllers.setdefault(name, unified)
        except OSError:
            pass
    if not v1 and unified is None:
        raise HostUnsupported(
            "this host has no cgroup filesystem mounted, so container limits and pause cannot work",
            "Mount one (mount -t cgroup2 none /sys/fs/cgroup) or use the simulator backend.",
        )
    version = "hybrid" if v1 and unified else "v1" if v1 else "v2"
    return Layout(version, controllers, unified, _choose_freezer(controllers, unified, freezer))


def _choose_freezer(controllers: dict[str, str], unified: str | None, forced: str | None) -> str:
    """Pick the freezer pause uses: the forced one if it exists, else v1 when mounted, else v2."""
    has_v1 = "freezer" in controllers and controllers["freezer"] != unified
    if forced is None:
        return "v1" if has_v1 else "v2" if unified else "none"
    if forced not in ("v1", "v2"):
        raise InvalidArgument(f'unknown freezer "{forced}": it must be "v1" or "v2"')
    if forced == "v1" and not has_v1:
        raise HostUnsupported("this host has no v1 freezer controller mounted, so the v1 freezer cannot be used")
    if forced == "v2" and unified is None:
        raise HostUnsupported("this host has no cgroup2 mount, so the v2 freezer (cgroup.freeze) cannot be used")
    return forced


def delegated(proc_cgroup: str = "/proc/self/cgroup", mounts_file: str = "/proc/self/mounts",
              join: bool = False) -> Layout | None:
    """The cgroup v2 subtree this user may manage, as a :class:`Layout`, or None.

    Where the user has a systemd user manager, that subtree is labkit's own scope, which
    the manager delegates (:mod:`labkit.linux.systemd`): with ``join``, this process moves
    into it first (the engine does, so the containers it starts can join their groups there), and
    elsewhere the processes in the subtree's top go down into its leaf (:func:`_leave_for_leaf`).

    systemd *delegates* a subtree to each user session (``user@UID.service``):
    its directories and their ``cgroup.procs`` belong to the user, so the
    user may make child groups, move its own processes between them (the
    writer needs write access to ``cgroup.procs`` of the common ancestor,
    cgroup-v2.rst "Delegation Containment") and freeze or kill them. The
    topmost directory on the way up from this process's own group that the
    user can write is that subtree's root; labkit makes ``labkit/<id>`` there.
    Its controllers are those the root's ``cgroup.controllers`` lists.
    """
    unified = None
    with open(mounts_file) as table:
        for line in table:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                unified = fields[1]
                break
    if unified is None:
        return None
    scope = systemd.join_scope(unified) if join else systemd.scope_path(unified)
    if scope is not None:
        return _delegated_layout(scope)
    try:
        with open(proc_cgroup) as f:
            own = next((ln.split(":", 2)[2] for ln in f.read().splitlines() if ln.startswith("0::")), None)
    except OSError:
        return None
    if own is None:
        return None
    root = None
    path = os.path.normpath(unified + own)
    while path.startswith(unified):
        if os.access(path, os.W_OK) and os.access(os.path.join(path, "cgroup.procs"), os.W_OK):
            root = path
        if path == unified:
            break
        path = os.path.dirname(path)
    if root is None:
        return None
    if join:
        _leave_for_leaf(root)
    return _delegated_layout(root)


def _leave_for_leaf(root: str) -> None:
    """Move the processes in ``root`` itself into its leaf ``engine``, where root has controllers to give.

    cgroup v2 lets a group give controllers to its children only while it holds no process itself
    (cgroup-v2.rst, "No Internal Process Constraint": writing ``cgroup.subtree_control`` fails with
    EBUSY), and labkit's groups below ``root`` need them. So, as in labkit's systemd scope, the
    processes go one level down, into ``root/engine``; a user may move its own processes anywhere in
    a subtree delegated to it (cgroup-v2.rst, "Delegation Containment"). A process that ended on the
    way, or that is not this user's, stays where it is, and the limits say why when they are set.
    When this process ends, :func:`_back_from_leaf` undoes it if nothing else needs the leaf.
    """
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            if not f.read().split():
                return  # nothing to give to children: processes may stay (a hybrid host's unified tree)
        with open(os.path.join(root, "cgroup.procs")) as f:
            pids = f.read().split()
        if not pids:
            return
        leaf = os.path.join(root, systemd.LEAF)
        os.makedirs(leaf, exist_ok=True)
    except OSError:
        return
    for pid in pids:
        try:
            with open(os.path.join(leaf, "cgroup.procs"), "w") as f:
                f.write(pid)
        except OSError:  # ESRCH: it ended; EACCES/EPERM: not ours to move
            pass
    if str(os.getpid()) in pids:
        atexit.register(_back_from_leaf, root, os.getpid())


def _back_from_leaf(root: str, pid: int) -> None:
    """At the engine's exit, leave ``root`` as :func:`_leave_for_leaf` found it, where nothing needs the leaf.

    That is when this process is the leaf's last one and the leaf is ``root``'s only child (labkit's
    own groups are gone: the last one removed takes ``root/labkit`` with it). Then root gives its
    controllers back (it held processes before, so its ``cgroup.subtree_control`` was empty: the
    no-internal-process rule allows nothing else), this process goes back up into root, which the
    kernel allows once root gives no controller to children, and the empty leaf is removed (rmdir(2)
    refuses a group with a process or a child: EBUSY). Otherwise the leaf stays: other processes live
    there (the user's shell, another engine), and cgroup v2 allows them nowhere higher while labkit's
    groups below ``root`` keep its controllers; the next engine to end alone removes it.
    """
    if os.getpid() != pid:
        return  # a child forked from the engine inherits its atexit handlers; it moves nothing
    leaf = os.path.join(root, systemd.LEAF)
    try:
        with open(os.path.join(leaf, "cgroup.procs")) as f:
            if f.read().split() != [str(pid)]:
                return
        if [e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False)] != [systemd.LEAF]:
            return
        control = os.path.join(root, "cgroup.subtree_control")
        with open(control) as f:
            given = f.read().split()
        if given:
            with open(control, "w") as f:
                f.write(" ".join(f"-{c}" for c in given))
        with open(os.path.join(root, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        os.rmdir(leaf)
    except OSError:
        pass  # a group made meanwhile by another engine (EBUSY), or root taken away: the leaf stays


def _delegated_layout(root: str) -> Layout:
    """The layout of a delegated subtree whose top is ``root``: the controllers its parent gave it."""
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            available = f.read().split()
    except OSError:
        available = []
    # Every non-root v2 group has cgroup.freeze (Linux 5.2+), and labkit's groups are made below ``root``.
    return Layout("v2", {c: root for c in available}, root, "v2")

