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

**The user namespace** (CLONE_NEWUSER, user_namespaces(7)) is the seventh, and
a container gets it when labkit runs without root: a user may create one and
be root inside it, and the kernel then lets it make the other six and mount
overlayfs, proc, tmpfs and devpts in them — but never change anything the host
owns. Since Linux 5.11 overlayfs may be mounted there, with ``userxattr``
(overlayfs.rst, "Non-standard behavior"): its markers then live in
``user.overlay.*`` xattrs.

Its **id map** says which host ids the ids inside stand for, written once into
``/proc/PID/uid_map`` and ``gid_map`` (lines ``inside host count``):

- *single id*: ``0 UID 1`` — the user is root inside, and every other id shows
  as ``nobody`` (65534). Any user may write this map for itself, after writing
  ``deny`` to ``/proc/PID/setgroups`` (a process that could drop groups could
  escape a ``deny`` ACL).
- *subordinate range*: ``0 UID 1`` plus ``1 START COUNT`` where ``/etc/subuid``
  and ``/etc/subgid`` grant the user a range (usually 65536 ids) — what rootless
  Podman uses. Only the set-user-ID helpers ``newuidmap``/``newgidmap`` (package
  ``uidmap``) may write a map naming ids the user does not own.

The supervisor stays in the host's user namespace (a process of the new one
makes the PID namespace, see :mod:`labkit.linux.process`), so ``--restart``
starts the next container as the user, not nested inside the last one's
namespaces. What else differs without root lives with each concept: a
delegated cgroup (:func:`labkit.linux.cgroups.delegated`), pause by SIGSTOP
(:mod:`labkit.linux.freezer`), a user-mode network (:mod:`labkit.linux.usernet`),
and who owns a layer's files (:mod:`labkit.linux.ownership`).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from labkit import helpers
from labkit.errors import HostUnsupported, InvalidArgument
from labkit.images.ownership import OVERFLOW_ID
from labkit.linux import syscalls
from labkit.model import views
from labkit.model.views import ProcessView
from labkit.store import delete_tree

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


def pid_namespace_members(pid: int, proc: str = "/proc") -> set[int]:
    """Host PIDs of every process in ``pid``'s PID namespace (its ``/proc/PID/ns/pid`` link names the same
    namespace, namespaces(7)); empty when ``pid`` is gone."""
    try:
        target = os.readlink(f"{proc}/{pid}/ns/pid")
    except OSError:
        return set()
    members = set()
    for name in os.listdir(proc):
        if name.isdigit():
            try:
                if os.readlink(f"{proc}/{name}/ns/pid") == target:
                    members.add(int(name))
            except OSError:
                continue
    return members


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


# ------------------------------------------------------- the user namespace

@dataclass(frozen=True)
class IdMap:
    """How the ids inside a container's user namespace map to the host's.

    Attributes:
        uid: The host uid that is root (0) inside.
        gid: The host gid that is group 0 inside.
        uid_range: ``(first, count)`` of subordinate uids from ``/etc/subuid``,
            mapped to 1..count inside; None for the single-id map.
        gid_range: The same from ``/etc/subgid``.
    """

    uid: int
    gid: int
    uid_range: tuple[int, int] | None = None
    gid_range: tuple[int, int] | None = None

    @property
    def kind(self) -> str:
        """``"range"`` when subordinate ids are mapped too, else ``"single"``."""
        return "range" if self.uid_range and self.gid_range else "single"

    def uid_lines(self) -> str:
        """The text of ``uid_map``: ``0 UID 1`` and, with a range, ``1 START COUNT``."""
        return _lines(self.uid, self.uid_range)

    def gid_lines(self) -> str:
        """The text of ``gid_map``."""
        return _lines(self.gid, self.gid_range)

    def inside(self, uid: int, gid: int) -> tuple[int, int]:
        """The owner a container sees for a file the host says ``uid:gid`` owns: the user's own ids are
        0, a subordinate id its place in the range (START is 1), any other the overflow id 65534, as
        stat(2) reports them inside the namespace (user_namespaces(7), "Unmapped user and group IDs")."""
        return _inside(uid, self.uid, self.uid_range), _inside(gid, self.gid, self.gid_range)

    def maps_inside(self, gid: int) -> bool:
        """Whether group ``gid`` inside the namespace stands for a host group (devpts's ``gid=5`` needs it)."""
        return gid == 0 or (self.gid_range is not None and 1 <= gid <= self.gid_range[1])

    def describe(self) -> str:
        """One sentence saying which map this is, for ``doctor`` and ``inspect``."""
        if self.uid_range and self.gid_range:
            return (f"uid {self.uid} is root inside, and ids 1-{self.uid_range[1]} inside are host ids "
                    f"{self.uid_range[0]}-{self.uid_range[0] + self.uid_range[1] - 1} (/etc/subuid, newuidmap)")
        return (f"single id: uid {self.uid} is root inside and every other id shows as nobody "
                "(no /etc/subuid range, or no newuidmap)")


def _inside(host: int, own: int, extra: tuple[int, int] | None) -> int:
    if host == own:
        return 0
    if extra and extra[0] <= host < extra[0] + extra[1]:
        return host - extra[0] + 1
    return OVERFLOW_ID


def _lines(host: int, extra: tuple[int, int] | None) -> str:
    text = f"0 {host} 1\n"
    if extra:
        text += f"1 {extra[0]} {extra[1]}\n"
    return text


def subordinate_range(uid: int, path: str) -> tuple[int, int] | None:
    """The first ``(start, count)`` range ``path`` (``/etc/subuid`` or ``subgid``) grants ``uid``, or None.

    Lines are ``NAME_OR_ID:START:COUNT`` (subuid(5)); a user may be named or numbered.
    """
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        who, _, rest = line.strip().partition(":")
        start, _, count = rest.partition(":")
        if who in (name, str(uid)) and start.isdigit() and count.isdigit() and int(count) > 0:
            return int(start), int(count)
    return None


def id_map(uid: int | None = None, gid: int | None = None, subuid: str = "/etc/subuid",
           subgid: str = "/etc/subgid") -> IdMap:
    """The map a container of the current user gets: a subordinate range when granted and usable, else single-id.

    A range needs both files to grant one and both ``newuidmap`` and ``newgidmap`` on PATH.
    """
    uid = os.geteuid() if uid is None else uid
    gid = os.getegid() if gid is None else gid
    if helpers.which("newuidmap") and helpers.which("newgidmap"):
        urange, grange = subordinate_range(uid, subuid), subordinate_range(uid, subgid)
        if urange and grange:
            return IdMap(uid, gid, urange, grange)
    return IdMap(uid, gid)


def write_single_map(idmap: IdMap, pid: int | str = "self", proc: str = "/proc") -> None:
    """Write the single-id map of ``pid`` (the caller itself after unshare(CLONE_NEWUSER), by default).

    ``setgroups`` must say ``deny`` before an unprivileged process may write
    ``gid_map`` (user_namespaces(7), "The /proc/[pid]/setgroups file").
    """
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {idmap.uid} 1\n"), ("gid_map", f"0 {idmap.gid} 1\n")):
        fd = os.open(f"{proc}/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def write_range_map(idmap: IdMap, pid: int) -> None:
    """Map the subordinate ranges into ``pid``'s user namespace with newuidmap(1) and newgidmap(1).

    These set-user-ID helpers check ``/etc/subuid`` and ``/etc/subgid`` and
    write the maps the user could not write alone. They must run outside the
    namespace, on the process that made it.

    Raises:
        OSError: A helper refused; its message is kept.
    """
    for helper, base, extra in (("newuidmap", idmap.uid, idmap.uid_range), ("newgidmap", idmap.gid, idmap.gid_range)):
        if extra is None:
            raise OSError(22, f"{helper}: no subordinate range to map")
        argv = [helper, str(pid), "0", str(base), "1", "1", str(extra[0]), str(extra[1])]
        done = helpers.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(1, f"{' '.join(argv)}: {done.stderr.strip() or 'failed'}")


def enter(idmap: IdMap) -> None:
    """unshare(CLONE_NEWUSER) and write the single-id map for the caller; it is root inside afterwards.

    A range map needs a helper run from outside (:func:`write_range_map`), so
    :mod:`labkit.linux.process` does that handshake itself.
    """
    syscalls.unshare(CLONE_NEWUSER)
    write_single_map(idmap)


def remove_tree(idmap: IdMap, path: str) -> None:
    """Delete ``path`` completely, also what a container made as one of its subordinate ids.

    With a range map, a directory a container created as its uid 1000 belongs on the
    host to, say, uid 300999: the user cannot delete what is inside it. Inside a user
    namespace with the same map the user is root over those ids, so a child enters
    one (the maps written from outside, as for a container) and removes the tree there —
    what ``podman unshare rm -rf`` does.
    """
    delete_tree(path)
    if not os.path.lexists(path) or idmap.kind != "range":
        return

    def remove() -> bool:
        delete_tree(path)
        return not os.path.lexists(path)

    as_root_inside(idmap, remove)


def chown_inside(idmap: IdMap, paths: list[str], uid: int, gid: int) -> None:
    """Give ``paths`` the owner ``uid:gid`` as a container sees ids (``COPY --chown`` in a rootless build).

    The user may not chown(2) a file to another host id; inside a user namespace with
    the range map it is root over the subordinate ids, and lchown to 1000 there makes
    the file belong to, say, 300999 on the host — 1000 in every container.

    Raises:
        HostUnsupported: The single-id map has no id but 0 (as Podman says, not enough
            ids in the user namespace), or the chown was refused.
    """
    if not paths or (uid, gid) == (0, 0):
        return
    if idmap.kind != "range":
        raise HostUnsupported(
            f"potentially insufficient UIDs or GIDs available in user namespace (requested {uid}:{gid} for "
            f"{paths[0]}): only your own id is mapped, as root", "Ask for an /etc/subuid and /etc/subgid range "
            "(and install the uidmap package) to map 65536 ids, or leave --chown out")

    def chown() -> bool:
        for path in paths:
            os.lchown(path, uid, gid)
        return True

    if not as_root_inside(idmap, chown):
        raise HostUnsupported(f"chown {uid}:{gid} was refused inside the user namespace for {paths[0]}",
                              f"Check that /etc/subuid and /etc/subgid grant at least {max(uid, gid) + 1} ids")


def read_inside(idmap: IdMap, work: Callable[[], str]) -> str | None:
    """What ``work`` returns when run as root in a user namespace with ``idmap``'s range map (None if it
    raised): there a file of a subordinate owner is readable, and stat(2) shows owners as containers do."""
    r, w = os.pipe()

    def send() -> bool:
        os.write(w, work().encode())
        return True

    try:
        done = as_root_inside(idmap, send)
        os.close(w)
        w = -1
        with os.fdopen(r, "rb", closefd=False) as f:
            text = f.read().decode()
        return text if done else None
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def as_root_inside(idmap: IdMap, work: Callable[[], bool]) -> bool:
    """Run ``work`` in a child that is root in a new user namespace with ``idmap``'s range map.

    The child unshares CLONE_NEWUSER and waits; the maps are written from outside by
    newuidmap/newgidmap (user_namespaces(7): only a process outside may map ranges it
    was granted in /etc/subuid). Returns what ``work`` returned, False if it raised.
    """
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(go_w)
            os.close(ready_r)
            syscalls.unshare(CLONE_NEWUSER)
            os.write(ready_w, b"1")
            if os.read(go_r, 1) == b"1" and work():
                code = 0
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(ready_w)
    try:
        if os.read(ready_r, 1) == b"1":
            write_range_map(idmap, pid)
            os.write(go_w, b"1")
    finally:
        os.close(go_w)
        os.close(ready_r)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def userns_problem(state_dir: str | None = None) -> str | None:
    """Why this user cannot make rootless containers here, or None when it can.

    The sysctls tell part of it; the rest (a security module refusing
    unprivileged user namespaces, an old kernel refusing overlayfs in one) only
    shows by trying, so a forked child unshares a user and mount namespace,
    mounts a tmpfs, and an overlay with ``userxattr`` on it. Nothing of it
    outlives the child.
    """
    max_ns = _read("/proc/sys/user/max_user_namespaces")
    if max_ns == "0":
        return "user namespaces are switched off (user.max_user_namespaces = 0)"
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return "unprivileged user namespaces are switched off (kernel.unprivileged_userns_clone = 0)"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            enter(IdMap(os.geteuid(), os.getegid()))
            syscalls.unshare(CLONE_NEWNS)
            syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
            where = state_dir if state_dir and os.path.isdir(state_dir) else "/tmp"
            syscalls.mount("tmpfs", where, "tmpfs", 0, "size=64k")
            for d in ("l", "u", "w", "m"):
                os.mkdir(os.path.join(where, d))
            try:
                syscalls.mount("overlay", f"{where}/m", "overlay", 0,
                               f"lowerdir={where}/l,upperdir={where}/u,workdir={where}/w,userxattr")
            except OSError as e:
                raise OSError(e.errno, "overlayfs cannot be mounted in a user namespace here "
                              f"(it needs Linux 5.11 or later): {e.strerror}") from None
            code = 0
        except BaseException as e:
            os.write(w, str(getattr(e, "strerror", None) or e).encode()[:500])
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    if "overlayfs" in message:
        return message
    return f"this user may not create a user namespace: {message or 'the kernel refused'}"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None
