"""A container's process: start it, watch it, run more commands inside it.

:func:`start` turns a mounted rootfs into a running container through one
program, the C shim (``shim.c`` with ``pid1.c``), so that the container's
supervisor belongs to nobody who might go away (a notebook kernel, a CLI)::

    caller ──posix_spawn──▶ shim ──fork──▶ S (setsid; unshare(CLONE_NEWPID)) ──fork──▶ C
       │                     └─ _exit(0)    │                                          │
       └─ waitpid(shim)                     └─ supervise: logs, waitpid(C),            │
                                               exit.json, cleanup                      │
                   C: PID 1 of the new PID namespace (pid1.c) — join cgroups; unshare(mnt, uts, ipc,
                      cgroup[, net]); hostname; lo up; mounts; pivot_root; drop capabilities;
                      execve(the command)

One posix_spawn(3) — a vfork(2) and an exec, no copy of this (large) Python
process — and no interpreter work in PID 1: the container is built in C only,
as crun builds it, so the security-critical steps (where a mount may land,
which capabilities stay) exist once. A host without a C compiler (and no shim
built before) cannot start real containers: :func:`labkit.linux.supervisor.command`
says so, and ``labkit.connect()`` picks the simulator there.

The shim's first fork exits at once, so S is re-parented to the host's init
and the caller owes it no waitpid(2). S unshares CLONE_NEWPID, which affects
only the children it forks afterwards (pid_namespaces(7)): C becomes PID 1 of
a new namespace, and S stays its parent on the host side to reap it.
Rootless (``LaunchSpec.userns``), S stays in the host's user namespace and
forks one more process, U, which unshares a user namespace and then the PID
namespace (owned by it), forks C and exits; S, a child subreaper, inherits C
(``shim.c``'s fork_in_userns).

C reports a failure (command not found, a mount refused) through a pipe that
closes on a successful execve(2) (``O_CLOEXEC``): an empty read means the
program runs, a message means it did not, and :func:`start` raises it as
:class:`~labkit.errors.StartFailed` once the shim has recorded the exit and
cleaned up.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import threading
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from typing import IO, Any

from labkit import helpers
from labkit.errors import InvalidArgument, StartFailed
from labkit.linux import capabilities, console, stdio, supervisor, syscalls
from labkit.linux.namespaces import IdMap
from labkit.model.container import MASKED_PATHS, READONLY_PATHS

#: Name of the file the supervisor writes when the container has exited.
EXIT_FILE = "exit.json"

_EXEC_PREFIX = "OCI runtime exec failed: exec failed: unable to start container process: "


def exec_failed(code: int, message: str) -> StartFailed:
    """An exec that could not start, worded as Docker words it: the runtime's failures behind runc's words, a
    user or group the container does not have as the daemon's own (it looks the user up before runc runs)."""
    if message.startswith(("unable to find user ", "unable to find group ")):
        return StartFailed(message, code)
    return StartFailed(_EXEC_PREFIX + message, code)
_NETWORKS = ("none", "host")

#: Docker's default capabilities as the shim's ``--caps`` takes them (a hexadecimal mask).
_DEFAULT_CAPS = format(capabilities.mask(capabilities.DOCKER_DEFAULT), "x")

#: A stream for ``exec_in``: a file descriptor, an open file, or None.
Stream = int | IO[Any] | None

#: Called with PID 1's host PID and the lifeline descriptor (see :func:`start`).
NetnsHook = Callable[[int, int], None]


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host path into the container.

    Attributes:
        source: The host path (a volume's data directory, a file such as
            the container's ``hosts``).
        destination: Where it appears inside the container.
        readonly: Whether the container may write through it.
        fstype: ``"tmpfs"`` for a new, empty tmpfs at ``destination`` (``source`` unused), else "".
        flags: The tmpfs's mount(2) flags; ``data``: its tmpfs(5) options.
    """

    source: str
    destination: str
    readonly: bool = False
    fstype: str = ""
    flags: int = 0
    data: str = ""


@dataclass(frozen=True)
class LaunchSpec:
    """Everything :func:`start` needs to turn a mounted rootfs into a running container.

    Attributes:
        rootfs: The merged directory of an overlay the caller has mounted.
        argv: The command; ``argv[0]`` is searched in the container's PATH.
        env: The environment, as ``KEY=VALUE`` strings.
        state_dir: Where the supervisor writes ``exit.json``.
        log_path: The json-file log the output is appended to.
        cwd: Working directory inside the container; created if missing.
        hostname: Hostname of the container's UTS namespace ("" keeps the host's).
        mounts: Bind mounts (volumes, ``/etc/hosts``, ``/etc/hostname``,
            ``/etc/resolv.conf``), mounted parents first.
        cgroup_procs: ``cgroup.procs`` files PID 1 joins before it unshares
            its cgroup namespace, so that its cgroup becomes its ``/``.
        network: ``"none"`` (a new network namespace with only ``lo``, up) or
            ``"host"`` (the host's network namespace).
        netns: A network namespace the engine made and wired (a veth's eth0 in
            it) for PID 1 to join instead.
        address: ``(ip, prefixlen, gateway)`` PID 1 gives eth0 in ``netns``
            (with ``lo`` up and a default route), see
            ``pid1.c``'s configure_eth0.
        oom_file: ``memory.events`` (v2) or ``memory.oom_control`` (v1), read
            at exit for the ``oom_kill`` count.
        cleanup_umounts: Mounts the supervisor detaches after the exit.
        cleanup_rmdirs: Directories (cgroups) it removes after that.
        readonly_rootfs: Mount the container's ``/`` read-only.
        userns: Run rootless: the supervisor unshares a user namespace with
            this id map first, so that it and PID 1 are root only inside it.
        overlay: Options of an overlay that PID 1 mounts at ``rootfs`` itself,
            inside its new mount namespace (rootless: a user may mount
            overlayfs only in a mount namespace its user namespace owns, so
            the mount is never visible on the host and vanishes with PID 1's
            namespace).
        lowerdir_plus: With ``overlay`` too deep for a page of mount options: PID 1 tries
            overlayfs's "lowerdir+" first (Linux >= 6.8) and names the lower layers by
            descriptors where the kernel refuses it; False: by descriptors at once
            (:func:`labkit.linux.overlay.mount_at` says how).
        seccomp: A file holding the BPF program (:mod:`labkit.linux.seccomp`)
            that PID 1 installs as its last step before execve(2); ``None``
            runs the command without a seccomp filter.
        tty: Give PID 1 a terminal (``run -t``): a new pseudo-terminal from
            the container's devpts is its 0-2, the supervisor holds the master
            and relays it (:mod:`labkit.linux.console`).
        winsize: The terminal's first ``(rows, columns)``; ``(0, 0)``: none.
        caps: The capabilities the command keeps (a mask, bit N = capability N); Docker's default set.
        user: ``-u``'s ``USER[:GROUP]``, read in the container's ``/etc/passwd`` by PID 1 ("": root).
        rlimits: ``--ulimit``s as ``(RLIMIT_* number, soft, hard)``, -1 for unlimited.
        privileged: ``--privileged``: sysfs writable and the host's devices in ``/dev`` (the caller
            leaves out the masked paths and the seccomp filter, and gives every capability).
        stdin: ``-i`` without a terminal: the read end of a pipe that is PID 1's stdin (None: /dev/null).
        stdin_hold: Its write end, for the supervisor to hold open while nobody writes it (``run -di``).
    """

    rootfs: str
    argv: list[str]
    env: list[str]
    _: KW_ONLY
    state_dir: str
    log_path: str
    cwd: str = "/"
    hostname: str = ""
    mounts: tuple[Mount, ...] = ()
    cgroup_procs: tuple[str, ...] = ()
    network: str = "none"
    netns: str | None = None
    address: tuple[str, int, str] | None = None
    proxies: tuple[tuple[int, str], ...] = ()
    oom_file: str | None = None
    cleanup_umounts: tuple[str, ...] = ()
    cleanup_rmdirs: tuple[str, ...] = ()
    cleanup_unlinks: tuple[str, ...] = ()
    on_exit: tuple[str, ...] = ()
    block_signals: bool = False
    readonly_rootfs: bool = False
    userns: IdMap | None = None
    overlay: str | None = None
    lowerdir_plus: bool = True
    seccomp: str | None = None
    tty: bool = False
    winsize: tuple[int, int] = (0, 0)
    caps: int = capabilities.mask(capabilities.DOCKER_DEFAULT)
    user: str = ""
    rlimits: tuple[tuple[int, int, int], ...] = ()
    privileged: bool = False
    stdin: int | None = None
    stdin_hold: int | None = None


def _mount_args(mounts: Sequence[Mount]) -> list[str]:
    """The shim's ``--bind MODE SRC DST`` and ``--tmpfs FLAGS DST DATA``, parents first (mounted in this order)."""
    out: list[str] = []
    for m in sorted(mounts, key=lambda m: os.path.normpath(m.destination).count("/")):
        if m.fstype:
            out += ["--tmpfs", hex(m.flags), m.destination, m.data]
        else:
            out += ["--bind", "ro" if m.readonly else "rw", m.source, m.destination]
    return out


def _process_args(caps: int, user: str, rlimits: Sequence[tuple[int, int, int]]) -> list[str]:
    """The shim's arguments for who the command runs as: ``--caps``, ``--user``, ``--rlimit``."""
    return ["--caps", format(caps, "x"), *(["--user", user] if user else []),
            *[arg for r in rlimits for arg in ("--rlimit", "{}:{}:{}".format(*r))]]


@dataclass(frozen=True)
class Started:
    """A running container's processes, as the host sees them.

    Attributes:
        pid: Host PID of the container's PID 1.
        shim_pid: Host PID of its supervisor.
        pid_start_time: Field 22 of ``/proc/PID/stat`` (clock ticks since
            boot) when it started; a reused PID has a different one.
        exit_fd: With :func:`start`'s ``watch_exit``: the read end of a pipe whose
            write end only the supervisor holds, until it has recorded the exit
            (``exit.json``); it reads end of file then, or when the supervisor dies.
            The caller closes it. -1 without.
    """

    pid: int
    shim_pid: int
    pid_start_time: int
    exit_fd: int = -1


# ---------------------------------------------------------------- public API


def start(spec: LaunchSpec, supervisor_argv: Sequence[str] | None = None,
          on_netns: NetnsHook | None = None, attach: int | None = None, watch_exit: bool = False) -> Started:
    """Start the container described by ``spec`` and return once its command runs.

    One posix_spawn(3) of the C shim, which leaves this process, forks PID 1
    and supervises it (``shim.c``'s launch); PID 1 builds the container and
    execs the command (``pid1.c``). Rootless, the shim makes the user namespace
    and writes its id map (``--userns``, ``--subids``: newuidmap(1) from
    outside), PID 1 mounts the overlay itself (``--overlay``), and the
    ``on_netns`` handshake goes over three pipes (``--net-sync``,
    ``--lifeline``).

    Args:
        spec: What to run and where.
        supervisor_argv: The shim (argv prefix); defaults to
            :func:`labkit.linux.supervisor.command`.
        on_netns: Called in this process once PID 1 has made its network
            namespace, with PID 1's host PID and a *lifeline*: the read end of
            a pipe whose write end only the supervisor holds, so it reaches end
            of file when the supervisor exits. PID 1 waits until the call
            returns before it mounts anything or execs, so what the call sets
            up (a user-mode network stack's tap device) is there when the
            command starts. If it raises, the container does not start, the
            supervisor records the exit and cleans up, and the error is raised
            here.
        attach: With ``spec.tty``: a connected ``SOCK_SEQPACKET`` socket
            (:func:`labkit.linux.console.pair`) the supervisor takes as the
            terminal's first caller before PID 1 runs, so that nothing PID 1
            writes is missed (``run -it``). Later callers connect to
            ``STATE_DIR/attach.sock`` (:func:`labkit.linux.console.connect`).
        watch_exit: Return :attr:`Started.exit_fd` (``--exit-fd``), so that the caller
            learns of the recorded exit while the supervisor still undoes the run.

    Returns:
        The host PIDs of PID 1 and its supervisor.

    Raises:
        InvalidArgument: ``spec`` cannot describe a container.
        HostUnsupported: No shim, and no C compiler to build one.
        StartFailed: The command could not be started (127: not found;
            126: not executable; 128: the container could not be set up).
            The supervisor has then written ``exit.json`` and cleaned up.
    """
    _validate(spec)
    shim = list(supervisor_argv) if supervisor_argv else supervisor.command()
    exit_file = os.path.join(spec.state_dir, EXIT_FILE)
    for stale in (exit_file, f"{exit_file}.tmp"):
        if os.path.exists(stale):
            os.unlink(stale)
    shim_args = [
        "--exit-file", exit_file, "--log", spec.log_path,
        *(["--oom", spec.oom_file] if spec.oom_file else []),
        *[arg for path in spec.cleanup_umounts for arg in ("--umount", path)],
        *[arg for path in spec.cleanup_rmdirs for arg in ("--rmdir", path)],
        *[arg for path in spec.cleanup_unlinks for arg in ("--unlink", path)],
        *[arg for word in spec.on_exit for arg in ("--then", word)],
    ]  # fmt: skip
    report_r, report_w = os.pipe()
    error_r, error_w = os.pipe()
    report_w, error_w = _above_stdio(report_w), _above_stdio(error_w)
    exit_r, exit_w = os.pipe() if watch_exit else (-1, -1)
    exit_w = _above_stdio(exit_w) if watch_exit else -1
    proxies = [(_above_stdio(fd), targets) for fd, targets in spec.proxies]
    attach_fd = _above_stdio(os.dup(attach)) if spec.tty and attach is not None else -1
    # PID 1's stdin pipe (-i without -t): passed as numbers above 2, the caller's descriptors left as they are.
    stdin_fds = [_above_stdio(os.dup(fd)) for fd in (spec.stdin, spec.stdin_hold) if fd is not None] \
        if spec.stdin is not None else []
    # With on_netns: PID 1 says "netns made" on `ready` and waits for "go"; the shim holds `life` until it exits.
    ready, go, life = [os.pipe() for _ in range(3)] if on_netns else [(-1, -1)] * 3
    theirs = [_above_stdio(fd) for fd in (ready[1], go[0], life[1])] if on_netns else []
    ours = [ready[0], go[1], life[0]] if on_netns else []
    userns = spec.userns
    rootless_args = [
        *(["--userns", f"{userns.uid}:{userns.gid}", "--host-devices", "1",
           "--tty-gid", "5" if userns.maps_inside(5) else "-1"] if userns else []),
        *(["--subids", "{}:{}:{}:{}".format(*userns.uid_range, *userns.gid_range)]
          if userns and userns.kind == "range" and userns.uid_range and userns.gid_range else []),
        *(["--overlay", spec.overlay] if spec.overlay is not None else []),
        *(["--lowerdir-plus", "0"] if spec.overlay is not None and not spec.lowerdir_plus else []),
        *(["--net-sync", f"{theirs[0]},{theirs[1]}", "--lifeline", str(theirs[2])] if theirs else []),
    ]  # fmt: skip
    argv = [
        *shim, "--launch-report", str(report_w), "--launch-error", str(error_w),
        "--root", spec.rootfs, "--cwd", spec.cwd, "--hostname", spec.hostname,
        *_process_args(spec.caps, spec.user, spec.rlimits),
        *(["--privileged", "1"] if spec.privileged else []),
        *(["--seccomp", spec.seccomp] if spec.seccomp else []),
        *(["--netns", spec.netns] if spec.netns else ["--new-net", "1"] if spec.network == "none" else []),
        *(["--eth0", f"{spec.address[0]}/{spec.address[1]}", "--gateway", spec.address[2]] if spec.address else []),
        *(["--readonly-rootfs", "1"] if spec.readonly_rootfs else []),
        *(["--block-signals", "1"] if spec.block_signals else []),
        *[arg for path in spec.cgroup_procs for arg in ("--cgroup", path)],
        *_mount_args(spec.mounts),
        # Docker's masked paths (/dev/null over files, an empty read-only tmpfs over directories) and
        # read-only paths: one list, the one inspect's HostConfig shows; none with --privileged.
        *[arg for path in (() if spec.privileged else MASKED_PATHS) for arg in ("--mask", path)],
        *[arg for path in (() if spec.privileged else READONLY_PATHS) for arg in ("--readonly", path)],
        *[arg for item in spec.env for arg in ("--env", item)],
        *[arg for word in spec.argv for arg in ("--arg", word)],
        *rootless_args,
        *(["--tty", "{}:{}".format(*spec.winsize),
           "--attach-socket", os.path.join(spec.state_dir, console.ATTACH_SOCKET)] if spec.tty else []),
        *(["--attach-fd", str(attach_fd)] if attach_fd >= 0 else []),
        *(["--stdin", str(stdin_fds[0])] if stdin_fds else []),
        *(["--stdin-hold", str(stdin_fds[1])] if len(stdin_fds) > 1 else []),
        *shim_args,
        *(["--exit-fd", str(exit_w)] if watch_exit else []),
        *[arg for fd, targets in proxies for arg in ("--proxy", f"{fd}={targets}")],
    ]  # fmt: skip
    mine = [exit_w] if watch_exit else []
    passed = [report_w, error_w, *theirs, *(fd for fd, _ in proxies), *([attach_fd] if attach_fd >= 0 else []),
              *stdin_fds, *mine]
    try:
        # dup2(fd, fd) in the child clears close-on-exec there only (posix_spawn_file_actions_adddup2).
        child = os.posix_spawn(argv[0], argv, helpers.environ(),
                               file_actions=[(os.POSIX_SPAWN_DUP2, fd, fd) for fd in passed])
    except OSError as err:
        for fd in (report_r, report_w, error_r, error_w, *theirs, *ours, *mine, *([exit_r] if watch_exit else [])):
            os.close(fd)
        _cleanup_here(spec)
        raise StartFailed(f"error during container init: {err.strerror}: {argv[0]}", 128) from None
    finally:
        for (fd, _), (orig, _) in zip(proxies, spec.proxies, strict=True):
            if fd != orig:
                os.close(fd)
        if attach_fd >= 0:
            os.close(attach_fd)  # the supervisor has its own copy
        for fd in stdin_fds:
            os.close(fd)
    for fd in (report_w, error_w, *theirs, *mine):
        os.close(fd)
    try:
        started = _await_start(spec, child, report_r, error_r, on_netns, (ready[0], go[1], life[0]))
    except BaseException:
        if watch_exit:
            os.close(exit_r)
        raise
    return replace(started, exit_fd=exit_r) if watch_exit else started


def _await_start(spec: LaunchSpec, starter: int, report_r: int, error_r: int, on_netns: NetnsHook | None,
                 net: tuple[int, int, int]) -> Started:
    """A start's end: the supervisor's report, the starter reaped (it exits as soon as the supervisor
    is on its own), the ``on_netns`` handshake over ``net`` (ready, go, lifeline: our ends), PID 1's
    exec awaited, and what the start came to (:func:`_outcome`). Closes every descriptor given."""
    ready_r, go_w, life_r = net
    ours = [ready_r, go_w, life_r] if on_netns else []
    hook_error: BaseException | None = None
    try:
        report = _read_all(report_r).decode(errors="replace")
        try:
            os.waitpid(starter, 0)
        except ChildProcessError:
            pass  # a SIGCHLD handler of the caller's reaped it first
        kind, _, rest = report.partition(" ")
        if on_netns and kind == "ok" and os.read(ready_r, 1) == b"1":
            try:
                on_netns(int(rest.split()[0]), life_r)
                os.write(go_w, b"1")
            except BaseException as err:
                hook_error = err  # PID 1 reads end of file instead of "go", and gives up
        while ours:  # before waiting for the exec: PID 1 may still wait for "go" or its end of file
            os.close(ours.pop())
        failure = _read_all(error_r)
    finally:
        os.close(report_r)
        os.close(error_r)
        while ours:
            os.close(ours.pop())
    return _outcome(spec, kind, rest, failure, hook_error)


def _outcome(spec: LaunchSpec, kind: str, rest: str, failure: bytes,
             hook_error: BaseException | None = None) -> Started:
    """What a start came to, from the supervisor's report (``ok PID1 SHIM STARTTIME`` or ``error …``)
    and PID 1's error pipe: the running container, or the error, once the supervisor has cleaned up."""
    if kind != "ok":
        _cleanup_here(spec)
        raise StartFailed(f"error during container init: {rest or 'the supervisor did not start'}", 128)
    pid, shim_pid, start_time = (int(x) for x in rest.split())
    started = Started(pid=pid, shim_pid=shim_pid, pid_start_time=start_time)
    if hook_error is not None:
        wait(started, timeout=10)
        raise hook_error
    if failure:
        code, message = _decode_failure(failure)
        wait(started, timeout=10)
        raise StartFailed(message, code)
    return started


def read_exit(state_dir: str) -> dict[str, Any] | None:
    """The exit record the supervisor wrote, or None while the container runs.

    Returns:
        ``{"ExitCode": int, "FinishedAt": "<RFC3339Nano>", "OOMKilled": bool,
        "Signal": int | None}``; ExitCode is 128+N when signal N killed it.
    """
    try:
        with open(os.path.join(state_dir, EXIT_FILE)) as f:
            record: dict[str, Any] = json.load(f)
            return record
    except FileNotFoundError:
        return None


def wait(target: Started | int, timeout: float | None = None) -> bool:
    """Wait until the supervisor has finished: the exit is recorded and cleanup done.

    The supervisor is nobody's child but init's, so waitpid(2) cannot be
    used; a pidfd (pidfd_open(2)) becomes readable when any process exits.

    Args:
        target: A :class:`Started`, or the supervisor's PID.
        timeout: Seconds to wait; None waits for ever.

    Returns:
        True when the supervisor has exited, False on timeout.
    """
    shim_pid = target.shim_pid if isinstance(target, Started) else int(target)
    try:
        fd = os.pidfd_open(shim_pid)
    except ProcessLookupError:
        return True
    except OSError as error:
        # EINVAL: the PID is still in use, but by no process: the supervisor leads a session, and once it is reaped
        # its PID lives on as the session id of what stayed in it (pidfd_create() in kernel/pid.c wants a task of
        # PIDTYPE_TGID). A host whose init reaps at once (systemd) gets here; the supervisor is gone.
        if error.errno == errno.EINVAL:
            return True
        raise
    try:
        if not _is_supervisor(shim_pid):
            return True  # the PID was reused: our supervisor is long gone
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))
    finally:
        os.close(fd)


def exec_in(
    pid: int,
    argv: Sequence[str],
    env: Sequence[str],
    cwd: str = "/",
    cgroup_procs: Sequence[str] = (),
    stdout: Stream = None,
    stderr: Stream = None,
    stdin: Stream = None,
    supervisor_argv: Sequence[str] | None = None,
    seccomp: str | None = None,
    tty: bool = False,
    detach_keys: bytes = b"\x10\x11",
    caps: int = capabilities.mask(capabilities.DOCKER_DEFAULT),
    user: str = "",
    rlimits: Sequence[tuple[int, int, int]] = (),
    detach: bool = False,
) -> int | None:
    """Run a command inside a running container and return its exit code (like ``docker exec``).

    The C shim (``pid1.c``'s exec_run, one posix_spawn(3)) joins the
    container's cgroups and its user (rootless), cgroup, ipc, uts, net, pid
    and mnt namespaces with setns(2), then forks: joining a PID namespace only
    places the *children* of the caller in it. The child starts a session of
    its own (no controlling terminal), enters the container's root, drops to
    the same capabilities as PID 1 and executes the command; the shim waits
    for it and exits with its code.

    The command's stdin, stdout and stderr are pipes that this process relays
    to and from the streams given here until the command exits
    (:class:`labkit.linux.stdio.Relay`): no descriptor of the caller's — a
    terminal least of all — reaches the container.

    Args:
        pid: Host PID of the container's PID 1.
        argv: The command; ``argv[0]`` is searched in ``env``'s PATH.
        env: The environment, as ``KEY=VALUE`` strings.
        cwd: Working directory inside the container; it must exist.
        cgroup_procs: ``cgroup.procs`` files of the container's cgroups.
        stdout: File descriptor (or open file) the command's output is
            copied to; None: this process's fd 1.
        stderr: Same for errors (None: fd 2).
        stdin: File descriptor (or open file) copied into the command's
            input until its end; None gives it ``/dev/null``.
        supervisor_argv: The C shim to run it through (as for :func:`start`);
            default :func:`labkit.linux.supervisor.command`.
        seccomp: The container's seccomp filter (``LaunchSpec.seccomp``), which
            the command runs under as PID 1 does.
        tty: Give the command a terminal of the container's (``exec -t``): a
            new pseudo-terminal from its devpts; the shim holds the master and
            relays it to this process, which copies it to ``stdout`` and
            ``stdin`` to it (:func:`labkit.linux.console.relay`; stderr is the
            terminal too, as in Docker).
        detach_keys: With ``tty``: the keys that leave the command running and return.
        caps: The container's capabilities (``LaunchSpec.caps``), which the command keeps.
        user: ``exec -u``'s ``USER[:GROUP]`` ("": root), read in the container's ``/etc/passwd``.
        rlimits: The container's ``--ulimit``s (``LaunchSpec.rlimits``).
        detach: ``exec -d``: return as soon as the command runs (its 0-2 are /dev/null, its waiter
            is in a session of its own and is reaped here when it ends, or by init once this process
            is gone).

    Returns:
        The exit code, or 128+N when signal N killed the command; None when the caller detached
        (``detach``, or the detach keys typed).

    Raises:
        HostUnsupported: No shim, and no C compiler to build one.
        StartFailed: The command could not be started (127 not found, 126 otherwise).
    """
    if not argv:
        raise InvalidArgument("No exec command specified", "Give the command to run inside the container.")
    stdin_fd, stdout_fd, stderr_fd = (_fileno(stream) for stream in (stdin, stdout, stderr))
    shim = list(supervisor_argv) if supervisor_argv else supervisor.command()
    who = _process_args(caps, user, rlimits)
    if detach:
        _exec_detached(shim, pid, argv, env, cwd, cgroup_procs, seccomp, who)
        return None
    if tty:
        return _exec_tty(shim, pid, argv, env, cwd, cgroup_procs, seccomp, stdin_fd,
                         1 if stdout_fd is None else stdout_fd, detach_keys, who)
    # The command's 0-2 are pipes this process relays: never the caller's terminal (stdio.py).
    relay = stdio.Relay(stdin_fd, stdout_fd, stderr_fd)
    try:
        child, error_r = _spawn_exec(shim, pid, argv, env, cwd, cgroup_procs, relay.ends, seccomp, who=who)
        relay.close_ends()
        return _exec_result(error_r, child, relay)
    finally:
        relay.close()


def _exec_detached(shim: list[str], pid: int, argv: Sequence[str], env: Sequence[str], cwd: str,
                   cgroup_procs: Sequence[str], seccomp: str | None, who: list[str]) -> None:
    """``exec -d``: the command started with /dev/null for 0-2, its waiter in a session of its own; returns once
    the command runs (its error pipe closes on execve), or raises why it could not start."""
    null = _above_stdio(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
    try:
        child, error_r = _spawn_exec(shim, pid, argv, env, cwd, cgroup_procs, (null, null, null), seccomp,
                                     who=who, setsid=True)
    finally:
        os.close(null)
    try:
        failure = _read_all(error_r)
    finally:
        os.close(error_r)
    if failure:
        os.waitpid(child, 0)
        code, message = _decode_failure(failure)
        raise exec_failed(code, message)
    threading.Thread(target=os.waitpid, args=(child, 0), daemon=True).start()


def _exec_tty(shim: list[str], pid: int, argv: Sequence[str], env: Sequence[str], cwd: str,
              cgroup_procs: Sequence[str], seccomp: str | None, stdin: int | None, stdout: int,
              detach_keys: bytes, who: list[str]) -> int | None:
    """``exec -t``: the shim relays the command's terminal over a socket pair; this process relays that to
    the caller's descriptors. The shim's own 0-2 are /dev/null: nothing of the caller's is passed."""
    ours, theirs = console.pair()
    null = _above_stdio(os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC))
    attach = _above_stdio(os.dup(theirs.fileno()))
    theirs.close()
    try:
        child, error_r = _spawn_exec(shim, pid, argv, env, cwd, cgroup_procs, (null, null, null), seccomp,
                                     tty=console.window_size(stdin, stdout), attach=attach, who=who)
    except BaseException:
        ours.close()
        raise
    finally:
        os.close(null)
        os.close(attach)
    detached = False
    try:
        try:
            failure = _read_all(error_r)
        finally:
            os.close(error_r)
        if not failure:
            detached = console.relay(ours, stdin, stdout, detach_keys)
    except BaseException:
        detached = True
        raise
    finally:
        ours.close()
        if detached:  # the command goes on without us; its waiter is reaped when it ends
            threading.Thread(target=os.waitpid, args=(child, 0), daemon=True).start()
    if detached:
        return None
    _, status = os.waitpid(child, 0)
    if failure:
        code, message = _decode_failure(failure)
        raise exec_failed(code, message)
    return _exit_code(status)


def _spawn_exec(shim: list[str], pid: int, argv: Sequence[str], env: Sequence[str], cwd: str,
                cgroup_procs: Sequence[str], ends: tuple[int, int, int],
                seccomp: str | None = None, tty: tuple[int, int] | None = None,
                attach: int = -1, who: Sequence[str] = ("--caps", _DEFAULT_CAPS),
                setsid: bool = False) -> tuple[int, int]:
    """The shim for :func:`exec_in` (``--exec-pid``), spawned.

    ``ends`` become the shim's 0-2, which the command inherits (without ``tty``). With ``tty`` (the
    window size), the command gets a terminal and the shim relays it to ``attach``. Returns the shim's
    PID and the error pipe's read end.
    """
    error_r, error_w = os.pipe()
    error_w = _above_stdio(error_w)
    # dup2 onto 0-2 clears close-on-exec there; the ends are above 2, so none is clobbered on the way.
    actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(ends)]
    actions.append((os.POSIX_SPAWN_DUP2, error_w, error_w))
    if tty is not None:
        actions.append((os.POSIX_SPAWN_DUP2, attach, attach))
    args = [
        *shim, "--exec-pid", str(pid), "--launch-error", str(error_w), "--cwd", cwd, *who,
        *(["--tty", "{}:{}".format(*tty), "--attach-fd", str(attach)] if tty is not None else []),
        *(["--seccomp", seccomp] if seccomp else []),
        *[arg for path in cgroup_procs for arg in ("--cgroup", path)],
        *[arg for item in env for arg in ("--env", item)],
        *[arg for word in argv for arg in ("--arg", word)],
    ]  # fmt: skip
    try:
        # With a terminal, the shim's session is its own: the caller's terminal hanging up (SIGHUP when the
        # labkit command that detached ends, tty(4)) is none of its business; ^C reaches it as a byte.
        child = os.posix_spawn(args[0], args, helpers.environ(), file_actions=actions,
                               setsid=tty is not None or setsid)
    except BaseException:
        os.close(error_r)
        raise
    finally:
        os.close(error_w)
    return child, error_r


def _exec_result(error_r: int, child: int, relay: stdio.Relay) -> int:
    """An exec's end: its error pipe read to end of file (it closes on execve), its streams relayed
    until ``child`` (the process that waits for the command) exits, ``child`` reaped.

    Returns the command's exit code; raises what kept it from starting.
    """
    try:
        failure = _read_all(error_r)
        if not failure:
            relay.pump(child)
    except BaseException:
        # Interrupted (Ctrl-C): the command goes on without us, as docker exec's does; its pipes
        # are closed, and the process that waits for it is reaped when it ends.
        threading.Thread(target=os.waitpid, args=(child, 0), daemon=True).start()
        raise
    finally:
        os.close(error_r)
    _, status = os.waitpid(child, 0)
    if failure:
        code, message = _decode_failure(failure)
        raise exec_failed(code, message)
    return _exit_code(status)


# ------------------------------------------------------------------ helpers


def _validate(spec: LaunchSpec) -> None:
    if not spec.argv or not spec.argv[0]:
        raise InvalidArgument("No command specified", "Give a command, or build an image with CMD or ENTRYPOINT.")
    if spec.network not in _NETWORKS:
        raise InvalidArgument(
            f'network "{spec.network}" not found', f"This starter knows the networks {', '.join(_NETWORKS)}."
        )
    if not os.path.isdir(spec.rootfs):
        raise InvalidArgument(f"rootfs {spec.rootfs} is not a directory", "Mount the container's overlay first.")
    for directory in (spec.state_dir, os.path.dirname(spec.log_path) or "."):
        if not os.path.isdir(directory):
            raise InvalidArgument(
                f"directory {directory} does not exist", "Create the container's state directory first."
            )
    for mount in spec.mounts:
        if not mount.fstype and not os.path.exists(mount.source):
            raise InvalidArgument(
                f'invalid mount config for type "bind": bind source path does not exist: {mount.source}',
                "Create the host path first, or use a named volume.",
            )
        if not mount.destination.startswith("/"):
            raise InvalidArgument(
                f"invalid mount config for type \"bind\": invalid mount path: '{mount.destination}' "
                "mount path must be absolute",
                "Write the container path from /.",
            )


def _decode_failure(data: bytes) -> tuple[int, str]:
    """The exit code and message of an error pipe's ``CODE\\0MESSAGE`` (written by :func:`_report` or ``pid1.c``)."""
    code, _, message = data.decode(errors="replace").partition("\0")
    return int(code), message


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _above_stdio(fd: int) -> int:
    """A descriptor number above 2, so that pointing 0-2 at /dev/null cannot clobber it."""
    return fd if fd > 2 else fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _is_supervisor(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"labkit" in f.read()
    except OSError:
        return False


def _fileno(stream: Stream) -> int | None:
    if stream is None or isinstance(stream, int):
        return stream
    stream.flush()
    return stream.fileno()


def _exit_code(status: int) -> int:
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)


def _cleanup_here(spec: LaunchSpec) -> None:
    """Undo the caller's mounts and cgroups when no supervisor ever ran to do it."""
    for path in spec.cleanup_umounts:
        try:
            syscalls.umount2(path, syscalls.MNT_DETACH)
        except OSError:
            pass
    for path in spec.cleanup_rmdirs:
        for d in (path, os.path.dirname(path)):  # the group, then labkit's parent group if that was its last
            try:
                os.rmdir(d)
            except OSError:
                pass
