"""Containers without root: a user namespace, its id map, and what a user may still do.

A user without root can create a *user namespace* and be root inside it
(user_namespaces(7)): the kernel then lets it make the other namespaces
(pid, mnt, uts, ipc, net, cgroup) and mount overlayfs, proc, tmpfs and
devpts in them — but never change anything the host owns. Since Linux 5.11
overlayfs may be mounted there, with ``userxattr`` (overlayfs.rst, "Non-standard
behavior"): its markers then live in ``user.overlay.*`` xattrs.

**The id map** says which host ids the ids inside stand for, written once into
``/proc/PID/uid_map`` and ``gid_map`` (lines ``inside host count``):

- *single id*: ``0 UID 1`` — the user is root inside, and every other id shows
  as ``nobody`` (65534). Any user may write this map for itself, after writing
  ``deny`` to ``/proc/PID/setgroups`` (a process that could drop groups could
  escape a ``deny`` ACL).
- *subordinate range*: ``0 UID 1`` plus ``1 START COUNT`` where ``/etc/subuid``
  and ``/etc/subgid`` grant the user a range (usually 65536 ids) — what rootless
  Podman uses. Only the set-user-ID helpers ``newuidmap``/``newgidmap`` (package
  ``uidmap``) may write a map naming ids the user does not own.

**What does not work without root, and what labkit does instead:**

- cgroups: limits and the freezer need a cgroup v2 directory the user may write
  (systemd *delegates* one to each user session); :func:`delegated_cgroup`
  finds it. Without one the container runs without limits, and pause stops its
  processes with SIGSTOP (:func:`stop_processes`) instead of freezing them.
- devices: mknod(2) is refused in a user namespace, so ``/dev/null`` and the
  other nodes are the host's, bind-mounted.
- networks: a veth pair and a bridge live in the host's network namespace,
  which a user namespace cannot touch; ``none`` and ``host`` work, and a
  user-mode network stack (``slirp4netns``, ``pasta``) can stand in for a bridge.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from labkit.linux import namespaces, syscalls

#: The user-mode network helpers that can give a rootless container a network (Podman's choice, in order).
NETWORK_HELPERS = ("pasta", "slirp4netns")

#: Which Debian package provides each helper.
HELPER_PACKAGES = {"pasta": "passt", "slirp4netns": "slirp4netns", "newuidmap": "uidmap"}


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
    if shutil.which("newuidmap") and shutil.which("newgidmap"):
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
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(1, f"{' '.join(argv)}: {done.stderr.strip() or 'failed'}")


def enter(idmap: IdMap) -> None:
    """unshare(CLONE_NEWUSER) and write the single-id map for the caller; it is root inside afterwards.

    A range map needs a helper run from outside (:func:`write_range_map`), so
    :mod:`labkit.linux.process` does that handshake itself.
    """
    syscalls.unshare(namespaces.CLONE_NEWUSER)
    write_single_map(idmap)


# ------------------------------------------------------------------ probes


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
            syscalls.unshare(namespaces.CLONE_NEWNS)
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


def network_helper() -> str | None:
    """The first user-mode network helper on PATH (``pasta``, ``slirp4netns``), or None."""
    return next((h for h in NETWORK_HELPERS if shutil.which(h)), None)


def delegated_cgroup(proc_cgroup: str = "/proc/self/cgroup", mounts_file: str = "/proc/self/mounts"):  # type: ignore[no-untyped-def]
    """The cgroup v2 subtree this user may manage, as a :class:`~labkit.linux.cgroups.Layout`, or None.

    systemd *delegates* a subtree to each user session (``user@UID.service``):
    its directories and their ``cgroup.procs`` belong to the user, so the
    user may make child groups, move its own processes between them (the
    writer needs write access to ``cgroup.procs`` of the common ancestor,
    cgroup-v2.rst "Delegation Containment") and freeze or kill them. The
    topmost directory on the way up from this process's own group that the
    user can write is that subtree's root; labkit makes ``labkit/<id>`` there.
    Its controllers are those the root's ``cgroup.controllers`` lists.
    """
    from labkit.linux import cgroups

    unified = None
    with open(mounts_file) as table:
        for line in table:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                unified = fields[1]
                break
    if unified is None:
        return None
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
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            available = f.read().split()
    except OSError:
        available = []
    # Every non-root v2 group has cgroup.freeze (Linux 5.2+), and labkit's groups are made below ``root``.
    return cgroups.Layout("v2", {c: root for c in available}, root, "v2")


# ------------------------------------------------- pause without a freezer


def namespace_pids(pid: int, proc: str = "/proc") -> list[int]:
    """Host PIDs of every process in the PID namespace whose first process is ``pid`` (PID 1 first).

    Without a cgroup, a container's processes are exactly those whose
    ``/proc/PID/ns/pid`` names its PID namespace (exec'd ones join it too).
    """
    try:
        target = os.stat(f"{proc}/{pid}/ns/pid").st_ino
    except OSError:
        return []
    found = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"{proc}/{entry}/ns/pid").st_ino == target:
                found.append(int(entry))
        except OSError:
            continue
    return sorted(found, key=lambda p: (p != pid, p))


def stop_processes(pid: int, proc: str = "/proc", settle: float = 2.0) -> list[int]:
    """Pause without a freezer: SIGSTOP every process of the container, until no new one appears.

    Unlike the cgroup freezer this is visible to the processes' parents (a
    stopped child is reported by waitpid(2) with WUNTRACED, a shell prints
    "Stopped"), and a process forked between listing and stopping is caught
    only by listing again — which is why the loop runs until a pass finds
    nobody new. SIGSTOP reaches even PID 1 of the container: it is one of the
    two signals an ancestor namespace may always send it (pid_namespaces(7)).

    Returns:
        The PIDs stopped.
    """
    stopped: set[int] = set()
    deadline = time.monotonic() + settle
    while True:
        fresh = [p for p in namespace_pids(pid, proc) if p not in stopped]
        if not fresh or time.monotonic() > deadline:
            break
        for p in fresh:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            stopped.add(p)
    for p in stopped:
        _wait_state(p, "T", proc)
    return sorted(stopped)


def continue_processes(pid: int, proc: str = "/proc") -> list[int]:
    """Unpause without a freezer: SIGCONT every process of the container (waking happens even for PID 1)."""
    pids = namespace_pids(pid, proc)
    for p in pids:
        try:
            os.kill(p, signal.SIGCONT)
        except ProcessLookupError:
            continue
    return pids


def stopped(pid: int, proc: str = "/proc") -> bool:
    """Whether PID 1 of the container is stopped by a signal (state ``T`` in ``/proc/PID/stat``)."""
    return _state(pid, proc) == "T"


def _state(pid: int, proc: str) -> str:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0].decode()
    except (OSError, IndexError):
        return ""


def _wait_state(pid: int, state: str, proc: str, timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while _state(pid, proc) not in (state, "", "Z", "X") and time.monotonic() < deadline:
        time.sleep(0.002)
