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
  which a user namespace cannot touch; ``none`` and ``host`` work, and for the
  default network and ``-p`` a user-mode network stack stands in for the
  bridge, as with rootless Podman: ``slirp4netns`` (:func:`attach_slirp`), or
  ``pasta`` where only it is installed (:func:`attach_pasta`), gives the
  container a tap device with 10.0.2.100/24 and carries its packets out
  through ordinary sockets of the user, and publishes ports by listening on
  the host for it. Without either the default network is a namespace with
  only ``lo``, and ``-p`` is refused naming the packages.
- restarts: the supervisor stays in the host's user namespace (a process of
  the new one makes the PID namespace, see :mod:`labkit.linux.process`), so
  ``--restart`` starts the next container as the user, not nested inside the
  last one's namespaces.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from labkit import helpers
from labkit.errors import Conflict, HostUnsupported, InvalidArgument, StartFailed
from labkit.linux import namespaces, syscalls
from labkit.store import delete_tree

#: The user-mode network helpers that can give a rootless container a network, in the order labkit prefers.
NETWORK_HELPERS = ("slirp4netns", "pasta")

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


#: What stat(2) shows inside a user namespace for an id its map lacks (/proc/sys/kernel/overflowuid).
OVERFLOW_ID = 65534


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
    syscalls.unshare(namespaces.CLONE_NEWUSER)
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
            syscalls.unshare(namespaces.CLONE_NEWUSER)
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
    """The user-mode network helper rootless containers use here: ``slirp4netns``, else ``pasta``, or None."""
    return next((h for h in NETWORK_HELPERS if helpers.which(h)), None)


def delegated_cgroup(proc_cgroup: str = "/proc/self/cgroup", mounts_file: str = "/proc/self/mounts",  # type: ignore[no-untyped-def]
                     join: bool = False):
    """The cgroup v2 subtree this user may manage, as a :class:`~labkit.linux.cgroups.Layout`, or None.

    Where the user has a systemd user manager, that subtree is labkit's own scope, which
    the manager delegates (:mod:`labkit.linux.systemd`): with ``join``, this process moves
    into it first (the engine does, so the containers it starts can join their groups there).

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
    from labkit.linux import systemd

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
    return _delegated_layout(root)


def _delegated_layout(root: str):  # type: ignore[no-untyped-def]
    """The layout of a delegated subtree whose top is ``root``: the controllers its parent gave it."""
    from labkit.linux import cgroups

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


# --------------------------------------------------- a network without root


#: What ``slirp4netns --configure`` gives the container, as rootless Podman has it: its address on a
#: /24, the gateway (the host, as seen from inside) and the DNS forwarder (the host's resolvers).
SLIRP_ADDRESS, SLIRP_PREFIXLEN, SLIRP_GATEWAY, SLIRP_DNS = "10.0.2.100", 24, "10.0.2.2", "10.0.2.3"
#: The tap device slirp4netns makes inside the container's network namespace.
SLIRP_TAP = "tap0"
#: The largest MTU slirp4netns allows but one (Podman's choice): fewer, bigger packets to copy.
SLIRP_MTU = 65520
#: ``Driver`` of a rootless container's ``network.json``.
SLIRP = "slirp4netns"


#: ``Driver`` of a rootless container's ``network.json`` when pasta carries it.
PASTA = "pasta"
#: The drivers of a rootless container's network: a helper runs for each such container.
USER_NETWORK_DRIVERS = (SLIRP, PASTA)


def slirp4netns() -> str | None:
    """The path of ``slirp4netns``, or None."""
    return helpers.which("slirp4netns")


def no_user_network(what: str) -> HostUnsupported:
    """The error for ``what`` (publishing ports, a network) when no user-mode network helper is installed."""
    return HostUnsupported(f"{what} needs root, or a user-mode network stack rootless: a veth pair cannot reach "
                           "a host bridge from a user namespace, and neither slirp4netns nor pasta is installed",
                           "Install the slirp4netns package (apt-get install slirp4netns; or passt, for pasta), "
                           "or use --network none or host")


def plan_user_network(network: str, network_id: str, name: str, hostname: str, ports) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """The ``network.json`` of a rootless container on the default network, before it starts.

    Its ``Driver`` is the helper that will carry it (:func:`network_helper`);
    either gives the container the same address, gateway, DNS and MAC.

    Every published port is checked free on the host now (a port in use is
    refused before anything is made, as with root) and a ``-p 80`` without a
    host port gets a free one. Published ports listen on 127.0.0.1 unless an
    address is given.

    Args:
        network: The network's name (``bridge``).
        network_id: Its id, for inspect.
        name: The container's name, for ``/etc/hosts``.
        hostname: Its hostname.
        ports: The ``-p`` bindings (:class:`~labkit.model.container.PortSpec`).

    Raises:
        HostUnsupported: Neither slirp4netns nor pasta is installed.
        InvalidArgument: A port is not tcp.
        Conflict: A host port is in use.
    """
    from labkit.linux import network as net

    helper = network_helper()
    if helper is None:
        raise no_user_network("publishing ports" if ports else f"network {network}")
    published: dict[str, list[dict[str, str]]] = {}
    for p in ports:
        key = f"{p.container_port}/{p.protocol}"
        if p.protocol != "tcp":
            raise InvalidArgument(f"publishing {key} is not supported", "labkit publishes tcp ports only")
        host_ip = p.host_ip or "127.0.0.1"  # a learner's lab is not reachable from the classroom network
        probe = net.listen(host_ip, int(p.host_port or 0))
        port = probe.getsockname()[1]
        probe.close()  # slirp4netns binds it once the container's network exists
        published.setdefault(key, []).append({"HostIp": host_ip, "HostPort": str(port)})
    return {"Network": network, "NetworkID": network_id, "Driver": helper, "Bridge": "", "Veth": "",
            "Interface": SLIRP_TAP, "IPAddress": SLIRP_ADDRESS, "IPPrefixLen": SLIRP_PREFIXLEN,
            "Gateway": SLIRP_GATEWAY, "DNS": SLIRP_DNS, "MacAddress": _mac(SLIRP_ADDRESS), "Sandbox": "",
            "SandboxKey": "", "Ports": published, "Name": name, "Hostname": hostname,
            "SlirpPid": 0, "SlirpStartTime": 0}


def slirp_resolv_conf(host: str) -> str:
    """The container's resolv.conf: slirp4netns's DNS forwarder, then the host's search and options lines."""
    kept = [ln for ln in host.splitlines() if ln.strip() and not ln.strip().startswith("nameserver")]
    return "".join(f"{ln}\n" for ln in [f"nameserver {SLIRP_DNS}", *kept])


def _mac(ip: str) -> str:
    """Docker's MAC for an address (``02:42`` and its four bytes), so inspect looks as Docker's does."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def slirp_argv(pid: int, exit_fd: int, ready_fd: int, api_socket: str | None = None) -> list[str]:
    """The slirp4netns command that gives PID ``pid``'s network namespace a tap device and a way out.

    * ``--configure``: bring ``tap0`` up with 10.0.2.100/24, a default route
      through 10.0.2.2 and the MTU; ``--ready-fd`` says when that is done.
    * ``--disable-host-loopback``: 10.0.2.2 does not lead to the host's
      127.0.0.1, so a container cannot reach what the host serves only locally.
    * ``--exit-fd``: slirp4netns ends when this descriptor hangs up — the
      lifeline only the container's supervisor holds, so it ends with the
      container however that ends.
    * ``--api-socket``: where ``add_hostfwd`` requests publish ports.

    slirp4netns joins the target's user and network namespaces (setns(2); the
    user owns them, so it may), opens ``/dev/net/tun`` there, and passes the
    tap's descriptor back to its other half in the host's namespaces, which
    runs the TCP/IP stack (libslirp) that turns the container's packets into
    ordinary sockets of the user.
    """
    argv = [slirp4netns() or "slirp4netns", "--configure", f"--mtu={SLIRP_MTU}", "--disable-host-loopback",
            f"--macaddress={_mac(SLIRP_ADDRESS)}", f"--exit-fd={exit_fd}", f"--ready-fd={ready_fd}"]
    if api_socket:
        argv.append(f"--api-socket={api_socket}")
    return [*argv, str(pid), SLIRP_TAP]


def attach_slirp(info: dict, pid: int, lifeline: int, log_path: str, timeout: float = 10.0) -> dict:  # type: ignore[type-arg]
    """Start slirp4netns for PID 1 ``pid`` and publish ``info``'s ports through it; return what to record.

    slirp4netns runs detached (its own session, nobody's child but init's), so
    no caller has to reap it. Its output goes to ``log_path``.

    Returns:
        ``SlirpPid``, ``SlirpStartTime`` and ``SandboxKey`` (PID 1's network namespace).

    Raises:
        StartFailed: slirp4netns did not configure the network (its log's last lines say why).
        Conflict: A host port could not be bound (taken since :func:`plan_user_network` checked it).
    """
    import tempfile

    api_dir = tempfile.mkdtemp(prefix="labkit-slirp-") if info["Ports"] else None
    api = os.path.join(api_dir, "api.sock") if api_dir else None
    ready_r, ready_w = os.pipe()
    slirp_pid = 0
    try:
        slirp_pid = _spawn_detached(slirp_argv(pid, lifeline, ready_w, api), (lifeline, ready_w), log_path)
        os.close(ready_w)
        ready_w = -1
        if _read_ready(ready_r, timeout) != b"1":
            raise StartFailed(f"slirp4netns could not give the container a network: {_tail(log_path)}", 128)
        started = _start_time(slirp_pid)
        for key, binds in info["Ports"].items():
            guest = int(key.split("/")[0])
            for b in binds:
                _add_hostfwd(api, b["HostIp"], int(b["HostPort"]), guest)  # type: ignore[arg-type]
        return {"SlirpPid": slirp_pid, "SlirpStartTime": started, "SandboxKey": f"/proc/{pid}/ns/net"}
    except BaseException:
        if slirp_pid:
            stop_helper({"SlirpPid": slirp_pid, "SlirpStartTime": 0})
        raise
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)
        if api_dir:
            shutil.rmtree(api_dir, ignore_errors=True)  # the ports are published; no one asks it anything else


def attach_user_network(info: dict, pid: int, lifeline: int, log_path: str) -> dict:  # type: ignore[type-arg]
    """Give PID 1 ``pid`` the network ``info`` plans, through the helper its ``Driver`` names."""
    attach = attach_pasta if info.get("Driver") == PASTA else attach_slirp
    return attach(info, pid, lifeline, log_path)


#: Runs pasta for as long as the container's supervisor lives. pasta does not notice that a namespace
#: it joined by PID went away, so this shell reads the lifeline (its stdin): at end of file the
#: supervisor is gone, and pasta, still the shell's unreaped child (its PID not reusable), is ended.
PASTA_WRAPPER = 'pasta "$@" </dev/null & p=$!; cat >/dev/null; kill "$p" 2>/dev/null; wait "$p"'


def pasta_argv(pid: int, ports: dict) -> list[str]:  # type: ignore[type-arg]
    """The pasta command that gives PID ``pid``'s network namespace what slirp4netns would give it.

    * ``--config-net`` with ``-a``/``-n``/``-g``: ``tap0`` up with 10.0.2.100/24 and a
      default route through 10.0.2.2 (pasta would copy the host's addresses otherwise);
      ``--dns-forward 10.0.2.3``: that address answers DNS from the host's resolvers.
    * ``--no-map-gw``: 10.0.2.2 does not lead to the host's 127.0.0.1, as
      slirp4netns's ``--disable-host-loopback``.
    * ``-t ADDR/HOST:CONTAINER`` per published port; no other forwarding
      (``-u none -T none -U none``), where pasta would forward every port it sees bound.
    * ``-f``: stay in the foreground of :data:`PASTA_WRAPPER`, which ends it.
    """
    forwards = [f"{b['HostIp']}/{b['HostPort']}:{key.split('/')[0]}" for key, binds in ports.items() for b in binds]
    return ["sh", "-c", PASTA_WRAPPER, "pasta", "-f", "-q", "--config-net", "-a", SLIRP_ADDRESS,
            "-n", str(SLIRP_PREFIXLEN), "-g", SLIRP_GATEWAY, "--dns-forward", SLIRP_DNS, "-I", SLIRP_TAP,
            "--ns-mac-addr", _mac(SLIRP_ADDRESS), "--no-map-gw", "-t", ",".join(forwards) or "none",
            "-u", "none", "-T", "none", "-U", "none", str(pid)]


def attach_pasta(info: dict, pid: int, lifeline: int, log_path: str, timeout: float = 10.0) -> dict:  # type: ignore[type-arg]
    """Start pasta for PID 1 ``pid`` with ``info``'s ports; return what to record (as :func:`attach_slirp`).

    pasta configures the namespace itself; it is ready once PID 1's namespace has
    its default route through the gateway (``/proc/PID/net/route``).

    Raises:
        StartFailed: pasta did not configure the network (its log's last lines say why).
    """
    wrapper = _spawn_detached(pasta_argv(pid, info["Ports"]), (), log_path, stdin=lifeline)
    try:
        deadline = time.monotonic() + timeout
        while not _routes_through(pid, SLIRP_GATEWAY):
            if time.monotonic() > deadline or _state(wrapper, "/proc") in ("Z", "X", ""):
                raise StartFailed(f"pasta could not give the container a network: {_tail(log_path)}", 128)
            time.sleep(0.005)
        return {"SlirpPid": wrapper, "SlirpStartTime": _start_time(wrapper), "SandboxKey": f"/proc/{pid}/ns/net"}
    except BaseException:
        stop_helper({"Driver": PASTA, "SlirpPid": wrapper, "SlirpStartTime": 0})
        raise


def _routes_through(pid: int, gateway: str) -> bool:
    """Whether PID ``pid``'s network namespace has a default route through ``gateway`` (proc(5), net/route)."""
    want = "".join(f"{int(b):02X}" for b in reversed(gateway.split(".")))  # little-endian hex, as the kernel prints
    try:
        with open(f"/proc/{pid}/net/route") as f:
            return any(fields[1] == "00000000" and fields[2] == want
                       for fields in (ln.split() for ln in f.read().splitlines()[1:]) if len(fields) > 2)
    except OSError:
        return False


def _spawn_detached(argv: list[str], fds: tuple[int, ...], log_path: str, stdin: int | None = None) -> int:
    """Start the network helper ``argv`` detached, with labkit's helper environment (:mod:`labkit.helpers`)."""
    pid = helpers.spawn_detached(argv, fds, log_path, stdin)
    if not pid:
        raise StartFailed(f"could not start {argv[0]}", 128)
    return pid


def _read_ready(fd: int, timeout: float) -> bytes:
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(int(timeout * 1000)):
        return b""
    return os.read(fd, 1)


def _tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            return " / ".join(ln.strip() for ln in f.read().splitlines()[-lines:]) or "no output"
    except OSError:
        return "no output"


def _add_hostfwd(api: str, host_ip: str, host_port: int, guest_port: int, timeout: float = 5.0) -> None:
    """Publish ``host_ip:host_port`` to the container's ``guest_port`` over slirp4netns's API socket."""
    import json
    import socket

    request = {"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": host_ip, "host_port": host_port,
                                                        "guest_addr": SLIRP_ADDRESS, "guest_port": guest_port}}
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(api)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)  # the API socket appears just after the network is configured
    with sock:
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    answer = json.loads(reply or b"{}")
    if "return" not in answer:
        desc = (answer.get("error") or {}).get("desc", "no answer")
        raise Conflict(f"driver failed programming external connectivity on endpoint: Bind for "
                       f"{host_ip}:{host_port} failed: {desc}",
                       "Pick another host port, e.g. -p 3001:3000, or stop whatever uses it")


def _start_time(pid: int, proc: str = "/proc") -> int:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            return int(f.read().rpartition(b")")[2].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def helper_running(info: dict | None, proc: str = "/proc") -> bool:  # type: ignore[type-arg]
    """Whether the network helper ``info`` records still runs (the same process: its start time matches).

    For slirp4netns that is slirp4netns itself; for pasta, the shell that holds it (:data:`PASTA_WRAPPER`).
    """
    if not info or not info.get("SlirpPid"):
        return False
    pid = int(info["SlirpPid"])
    try:
        with open(f"{proc}/{pid}/comm") as f:
            if f.read().strip() != ("sh" if info.get("Driver") == PASTA else "slirp4netns"):
                return False
    except OSError:
        return False
    want = int(info.get("SlirpStartTime") or 0)
    return _state(pid, proc) not in ("Z", "X", "") and (want == 0 or _start_time(pid, proc) == want)


def stop_helper(info: dict | None, timeout: float = 2.0) -> bool:  # type: ignore[type-arg]
    """End the network helper ``info`` records, if it still runs; True if it had to.

    It ends by itself when the container's supervisor exits (its lifeline);
    this is for ``rm`` and for a restart, whose new helper needs the same host
    ports. pasta's shell leads a process group of its own (its session), so
    the signal goes to the group: the shell and pasta both.
    """
    import select

    if not helper_running(info):
        return False
    try:
        fd = os.pidfd_open(int(info["SlirpPid"]))  # type: ignore[index]
    except ProcessLookupError:
        return False
    try:
        if not helper_running(info):
            return False  # it ended, and the PID went to another process, between the two looks
        group = info.get("Driver") == PASTA  # type: ignore[union-attr]

        def send(sig: int) -> None:
            if group:
                os.killpg(int(info["SlirpPid"]), sig)  # type: ignore[index]
            else:
                signal.pidfd_send_signal(fd, sig)

        send(signal.SIGTERM)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(int(timeout * 1000)):
            send(signal.SIGKILL)
            poller.poll(int(timeout * 1000))
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)
    return True
