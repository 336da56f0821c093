"""A container's process: start it, watch it, run more commands inside it.

:func:`start` turns a mounted rootfs into a running container with three
forks, so that the container's supervisor belongs to nobody who might go
away (a notebook kernel, a CLI)::

    caller ──fork──▶ A ──fork──▶ S (setsid; unshare(CLONE_NEWPID)) ──fork──▶ C
       │             └─ _exit(0)   │                                         │
       └─ waitpid(A)               └─ execv(shim): logs, waitpid(C),         │
                                      exit.json, cleanup                     │
                   C: PID 1 of the new PID namespace — join cgroups; unshare(mnt, uts, ipc,
                      cgroup[, net]); hostname; lo up; mounts; pivot_root; drop capabilities;
                      execve(the command)

With the C shim (the usual case as root) the same processes come from one
posix_spawn(3) of the shim, which forks A/S itself and whose PID 1 does C's
steps in C (``pid1.c``, :func:`_start_native`): a vfork and an exec instead of
three copies of a large Python process, and no interpreter work in PID 1.
Rootless starts go the same way: the shim makes the user namespace, writes
its id map and forks PID 1 in it (``shim.c``'s fork_in_userns). The Python
steps below remain for a host without a C compiler; both are tested to give
the same container, as root and rootless.

A exits at once, so S is re-parented to the host's init and the caller owes
it no waitpid(2). S unshares CLONE_NEWPID, which affects only the children it
forks afterwards (pid_namespaces(7)): C becomes PID 1 of a new namespace, and
S, the shim, stays its parent on the host side to reap it.

Rootless (``LaunchSpec.userns``), S stays in the host's user namespace and
forks one more process, U, which unshares a user namespace and then the PID
namespace (owned by it), forks C and exits; S, a child subreaper, inherits C
(:func:`_fork_in_userns`).

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
import signal
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import IO, Any

from labkit import helpers
from labkit.errors import InvalidArgument, StartFailed
from labkit.linux import capabilities, namespaces, rootfs, stdio, supervisor, syscalls
from labkit.linux.rootless import IdMap, write_range_map, write_single_map

#: Name of the file the supervisor writes when the container has exited.
EXIT_FILE = "exit.json"

#: The PATH Docker uses when the container's environment has none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_EXEC_PREFIX = "OCI runtime exec failed: exec failed: unable to start container process: "
_NETWORKS = ("none", "host")

#: Docker's default capabilities as the shim's ``--caps`` takes them (a hexadecimal mask).
_DEFAULT_CAPS = format(capabilities.mask(capabilities.DOCKER_DEFAULT), "x")

#: A stream for ``exec_in``: a file descriptor, an open file, or None.
Stream = int | IO[Any] | None
_last_cap: list[int] = []

#: prctl(2): orphaned descendants are re-parented to this process instead of init.
PR_SET_CHILD_SUBREAPER = 36

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
    """

    source: str
    destination: str
    readonly: bool = False


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
            :func:`labkit.linux.namespaces.configure_interface`.
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
        seccomp: A file holding the BPF program (:mod:`labkit.linux.seccomp`)
            that PID 1 installs as its last step before execve(2); ``None``
            runs the command without a seccomp filter.
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
    seccomp: str | None = None


@dataclass(frozen=True)
class Started:
    """A running container's processes, as the host sees them.

    Attributes:
        pid: Host PID of the container's PID 1.
        shim_pid: Host PID of its supervisor.
        pid_start_time: Field 22 of ``/proc/PID/stat`` (clock ticks since
            boot) when it started; a reused PID has a different one.
    """

    pid: int
    shim_pid: int
    pid_start_time: int


class _Failure(Exception):
    """A reason the command cannot start, with the exit code Docker gives it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _strerror(err: int) -> str:
    text = os.strerror(err)
    return text[:1].lower() + text[1:]


# ---------------------------------------------------------------- public API


def start(spec: LaunchSpec, supervisor_argv: Sequence[str] | None = None,
          on_netns: NetnsHook | None = None) -> Started:
    """Start the container described by ``spec`` and return once its command runs.

    Args:
        spec: What to run and where.
        supervisor_argv: The supervisor program (argv prefix); defaults to
            :func:`labkit.linux.supervisor.command` (the C shim, or the
            Python one on a host without a C compiler).
        on_netns: Called in this process once PID 1 has made its network
            namespace, with PID 1's host PID and a *lifeline*: the read end of
            a pipe whose write end only the supervisor holds, so it reaches end
            of file when the supervisor exits. PID 1 waits until the call
            returns before it mounts anything or execs, so what the call sets
            up (a user-mode network stack's tap device) is there when the
            command starts. If it raises, the container does not start, the
            supervisor records the exit and cleans up, and the error is raised
            here.

    Returns:
        The host PIDs of PID 1 and its supervisor.

    Raises:
        InvalidArgument: ``spec`` cannot describe a container.
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

    if supervisor.launches(shim):
        return _start_native(spec, shim, shim_args, on_netns)
    if not _last_cap:  # PID 1's Python steps drop capabilities up to the kernel's last one
        _last_cap.append(capabilities.last_cap())
    report_r, report_w = os.pipe()
    error_r, error_w = os.pipe()
    # With on_netns: PID 1 says "netns made" over one pipe and waits for "go" on another;
    # the third is the lifeline, whose write end only the supervisor keeps.
    ready, go, life = (os.pipe(), os.pipe(), os.pipe()) if on_netns else ((-1, -1),) * 3
    net = (ready[1], go[0], life[1]) if on_netns else None
    first = os.fork()
    if first == 0:
        try:
            if os.fork() == 0:
                _supervise(spec, shim, shim_args, report_w, error_w, net)
        finally:
            os._exit(0)
    os.close(report_w)
    os.close(error_w)
    for fd in net or ():
        os.close(fd)
    return _await_start(spec, first, report_r, error_r, on_netns, (ready[0], go[1], life[0]))


def _start_native(spec: LaunchSpec, shim: list[str], shim_args: list[str],
                  on_netns: NetnsHook | None = None) -> Started:
    """Start the container through the C shim, which forks PID 1 itself (``shim.c``'s launch, ``pid1.c``).

    One posix_spawn(3) — a vfork(2) and an exec, no copy of this process's
    memory — replaces the three Python forks of :func:`_supervise`; PID 1 then
    does in C what :func:`_container` does in Python, from the same spec, with
    the same exit codes and messages. The report and error pipes work as there,
    and so do rootless starts: the shim makes the user namespace and writes its
    id map (``--userns``, ``--subids``: newuidmap(1) from outside, as
    :func:`_fork_in_userns` does), PID 1 mounts the overlay itself
    (``--overlay``), and the ``on_netns`` handshake goes over the same three
    pipes (``--net-sync``, ``--lifeline``).
    """
    report_r, report_w = os.pipe()
    error_r, error_w = os.pipe()
    report_w, error_w = _above_stdio(report_w), _above_stdio(error_w)
    proxies = [(_above_stdio(fd), targets) for fd, targets in spec.proxies]
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
        *(["--net-sync", f"{theirs[0]},{theirs[1]}", "--lifeline", str(theirs[2])] if theirs else []),
    ]  # fmt: skip
    argv = [
        *shim, "--launch-report", str(report_w), "--launch-error", str(error_w),
        "--root", spec.rootfs, "--cwd", spec.cwd, "--hostname", spec.hostname,
        "--caps", _DEFAULT_CAPS,
        *(["--seccomp", spec.seccomp] if spec.seccomp else []),
        *(["--netns", spec.netns] if spec.netns else ["--new-net", "1"] if spec.network == "none" else []),
        *(["--eth0", f"{spec.address[0]}/{spec.address[1]}", "--gateway", spec.address[2]] if spec.address else []),
        *(["--readonly-rootfs", "1"] if spec.readonly_rootfs else []),
        *(["--block-signals", "1"] if spec.block_signals else []),
        *[arg for path in spec.cgroup_procs for arg in ("--cgroup", path)],
        *[arg for m in sorted(spec.mounts, key=lambda m: os.path.normpath(m.destination).count("/"))
          for arg in ("--bind", "ro" if m.readonly else "rw", m.source, m.destination)],
        *[arg for path in rootfs.MASKED_PATHS for arg in ("--mask", path)],
        *[arg for path in rootfs.READONLY_PATHS for arg in ("--readonly", path)],
        *[arg for item in spec.env for arg in ("--env", item)],
        *[arg for word in spec.argv for arg in ("--arg", word)],
        *rootless_args,
        *shim_args,
        *[arg for fd, targets in proxies for arg in ("--proxy", f"{fd}={targets}")],
    ]  # fmt: skip
    passed = [report_w, error_w, *theirs, *(fd for fd, _ in proxies)]
    try:
        # dup2(fd, fd) in the child clears close-on-exec there only (posix_spawn_file_actions_adddup2).
        child = os.posix_spawn(argv[0], argv, helpers.environ(),
                               file_actions=[(os.POSIX_SPAWN_DUP2, fd, fd) for fd in passed])
    except OSError as err:
        for fd in (report_r, report_w, error_r, error_w, *theirs, *ours):
            os.close(fd)
        _cleanup_here(spec)
        raise StartFailed(f"error during container init: {err.strerror}: {argv[0]}", 128) from None
    finally:
        for (fd, _), (orig, _) in zip(proxies, spec.proxies, strict=True):
            if fd != orig:
                os.close(fd)
    for fd in (report_w, error_w, *theirs):
        os.close(fd)
    return _await_start(spec, child, report_r, error_r, on_netns, (ready[0], go[1], life[0]))


def _await_start(spec: LaunchSpec, starter: int, report_r: int, error_r: int, on_netns: NetnsHook | None,
                 net: tuple[int, int, int]) -> Started:
    """Both starters' end: the supervisor's report, the starter reaped (it exits as soon as the supervisor
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
    try:
        if not _is_supervisor(shim_pid):
            return True  # the PID was reused: our supervisor is long gone
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))
    finally:
        os.close(fd)


def supervisors_of(exit_file: str, proc: str = "/proc") -> list[int]:
    """Every supervisor (and starter on its way to becoming one) whose arguments name ``exit_file``.

    A start whose starter was killed is known by nothing else: no record holds its PIDs yet.
    """
    want = exit_file.encode()
    found = []
    for name in os.listdir(proc):
        if name.isdigit():
            try:
                with open(f"{proc}/{name}/cmdline", "rb") as f:
                    if want in f.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                continue
    return found


def kill_trees(pids: Sequence[int], timeout: float = 5.0, proc: str = "/proc") -> None:
    """SIGKILL each of ``pids`` and all it forked, and wait until they are gone.

    Each is stopped (SIGSTOP) before its children are read (``/proc/PID/task/TID/children``),
    so none it forks afterwards is missed; a PID 1 that dies takes its PID namespace with it.
    """
    doomed: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in doomed or not alive(pid, 0, proc):
            continue
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        doomed.append(pid)
        try:
            for tid in os.listdir(f"{proc}/{pid}/task"):
                with open(f"{proc}/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(alive(pid, 0, proc) for pid in doomed) and time.monotonic() < deadline:
        time.sleep(0.01)


def alive(pid: int, start_time: int, proc: str = "/proc") -> bool:
    """Whether ``pid`` still runs and is the process that started at ``start_time``.

    A PID is reused once its process is gone, so the start time (field 22 of
    ``/proc/PID/stat``) tells the original from a newcomer. A zombie counts as
    gone. ``start_time`` 0 means "unknown": only existence is checked.
    """
    try:
        state, started = _stat_fields(pid, proc)
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X") and start_time in (0, started)


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
) -> int:
    """Run a command inside a running container and return its exit code (like ``docker exec``).

    A forked helper joins the container's cgroups and its cgroup, ipc, uts,
    net, pid and mnt namespaces with setns(2), then forks again: joining a PID
    namespace only places the *children* of the caller in it. That grandchild
    starts a session of its own (no controlling terminal), enters the
    container's root, drops to the same capabilities as PID 1 and executes
    the command.

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

    Returns:
        The exit code, or 128+N when signal N killed the command.

    Raises:
        StartFailed: The command could not be started (127 not found, 126 otherwise).
    """
    if not argv:
        raise InvalidArgument("No exec command specified", "Give the command to run inside the container.")
    stdin_fd, stdout_fd, stderr_fd = (_fileno(stream) for stream in (stdin, stdout, stderr))
    shim = list(supervisor_argv) if supervisor_argv else supervisor.command()
    # The command's 0-2 are pipes this process relays: never the caller's terminal (stdio.py).
    relay = stdio.Relay(stdin_fd, stdout_fd, stderr_fd)
    try:
        if supervisor.launches(shim):
            child, error_r = _exec_native(shim, pid, argv, env, cwd, cgroup_procs, relay.ends, seccomp)
        else:
            child, error_r = _exec_forked(pid, argv, env, cwd, cgroup_procs, relay.ends)
        relay.close_ends()
        return _exec_result(error_r, child, relay)
    finally:
        relay.close()


def _exec_forked(pid: int, argv: Sequence[str], env: Sequence[str], cwd: str, cgroup_procs: Sequence[str],
                 ends: tuple[int, int, int]) -> tuple[int, int]:
    """:func:`exec_in` in Python, without the C shim: returns the helper's PID and the error pipe's read end."""
    try:
        # A rootless container has its own user namespace, joined first: it grants the
        # capabilities that joining the others needs. A namespace shared with the host
        # (``--network host``) is skipped: joining it changes nothing, and from inside a user
        # namespace setns(2) would refuse it (its owner is the host's user namespace).
        names = [n for n in ("user", *namespaces.JOIN_ORDER)
                 if namespaces.ns_link(pid, n) != namespaces.ns_link("self", n)]
        opened = namespaces.open_namespaces(pid, names)
    except FileNotFoundError:
        raise ProcessLookupError(errno.ESRCH, f"container process {pid} is not running") from None
    try:
        root_fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        for _, fd in opened:
            os.close(fd)
        raise
    if not _last_cap:
        _last_cap.append(capabilities.last_cap())
    error_r, error_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        code = 126
        try:
            # Hold none of the caller's descriptors (sockets, pipes) while the command runs.
            _close_all_but({0, 1, 2, error_w, root_fd, *ends, *(fd for _, fd in opened)})
            _join_cgroups(cgroup_procs)
            namespaces.join(opened)
            child = os.fork()
            if child == 0:
                _exec_child(root_fd, list(argv), list(env), cwd, ends, error_w)
            _, status = os.waitpid(child, 0)
            code = _exit_code(status)
        except BaseException as e:
            _report(error_w, _as_failure(e, 126))
        finally:
            os._exit(code)
    os.close(error_w)
    os.close(root_fd)
    for _, fd in opened:
        os.close(fd)
    return helper, error_r


def _exec_native(shim: list[str], pid: int, argv: Sequence[str], env: Sequence[str], cwd: str,
                 cgroup_procs: Sequence[str], ends: tuple[int, int, int],
                 seccomp: str | None = None) -> tuple[int, int]:
    """:func:`exec_in` through the C shim (``pid1.c``, ``exec_run``): one posix_spawn(3), no Python fork.

    ``ends`` become the shim's 0-2, which the command inherits. Returns the shim's PID and the error
    pipe's read end.
    """
    error_r, error_w = os.pipe()
    error_w = _above_stdio(error_w)
    # dup2 onto 0-2 clears close-on-exec there; the ends are above 2, so none is clobbered on the way.
    actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(ends)]
    actions.append((os.POSIX_SPAWN_DUP2, error_w, error_w))
    args = [
        *shim, "--exec-pid", str(pid), "--launch-error", str(error_w), "--cwd", cwd, "--caps", _DEFAULT_CAPS,
        *(["--seccomp", seccomp] if seccomp else []),
        *[arg for path in cgroup_procs for arg in ("--cgroup", path)],
        *[arg for item in env for arg in ("--env", item)],
        *[arg for word in argv for arg in ("--arg", word)],
    ]  # fmt: skip
    try:
        child = os.posix_spawn(args[0], args, helpers.environ(), file_actions=actions)
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
        raise StartFailed(_EXEC_PREFIX + message, code)
    return _exit_code(status)


# ---------------------------------------------------------- the three forks


def _map_from_outside(idmap: IdMap, u_pid: int, ask_r: int, answer_w: int) -> None:
    """Process S, for a subordinate range: wait until U has unshared its user namespace, map it, say so."""
    if not os.read(ask_r, 1):
        return  # U died before asking
    try:
        write_range_map(idmap, u_pid)
        os.write(answer_w, b"ok")
    except OSError as e:
        os.write(answer_w, str(e.strerror or e).encode()[:2000])


def _enter_userns(idmap: IdMap, sync: tuple[int, int] | None) -> None:
    """Process U, rootless: unshare(CLONE_NEWUSER), then get the id map written (user_namespaces(7)).

    The single-id map U writes for itself; a range map is written by S with
    newuidmap(1)/newgidmap(1), and U waits for its answer. Afterwards U is
    root in the new namespace and holds every capability there: enough to
    make the other namespaces and mount, and nothing over the host's.
    """
    syscalls.unshare(namespaces.CLONE_NEWUSER)
    if sync is None:
        write_single_map(idmap)
        return
    ask_w, answer_r = sync
    os.write(ask_w, b"1")
    os.close(ask_w)
    answer = _read_all(answer_r).decode(errors="replace")
    os.close(answer_r)
    if answer != "ok":
        raise OSError(1, f"the id map could not be written: {answer or 'the mapper died'}")


def _fork_in_userns(idmap: IdMap, pid1: Callable[[], None]) -> int:
    """Process S, rootless: fork U into a new user namespace; U makes the PID namespace, forks PID 1 and exits.

    PID 1 is then re-parented to S, which made itself a child subreaper
    (prctl(2), ``PR_SET_CHILD_SUBREAPER``), so S reaps it as its own child while
    S itself stays in the host's user namespace, as the user. From there the
    restart policy S execs afterwards (``--then``) starts the next container
    as any starter does — from inside the container's user namespace it could
    only nest a new one in it — and newuidmap(1), which must run outside the
    namespace it maps, can map a subordinate range into U's.

    Returns:
        PID 1's host PID.
    """
    syscalls.prctl(PR_SET_CHILD_SUBREAPER, 1)
    pid_r, pid_w = os.pipe()
    ask, answer = (os.pipe(), os.pipe()) if idmap.kind == "range" else ((-1, -1), (-1, -1))
    u_pid = os.fork()
    if u_pid == 0:
        code = 1
        try:
            for fd in (pid_r, ask[0], answer[1]):
                if fd >= 0:
                    os.close(fd)
            _enter_userns(idmap, (ask[1], answer[0]) if ask[0] >= 0 else None)
            syscalls.unshare(namespaces.CLONE_NEWPID)  # PID 1's namespace, owned by the new user namespace
            child = os.fork()
            if child == 0:
                os.close(pid_w)
                pid1()
            os.write(pid_w, str(child).encode())
            code = 0
        except BaseException as e:
            try:
                os.write(pid_w, str(getattr(e, "strerror", None) or e).encode(errors="replace")[:2000])
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(pid_w)
    if ask[0] >= 0:
        os.close(ask[1])
        os.close(answer[0])
        try:
            _map_from_outside(idmap, u_pid, ask[0], answer[1])
        finally:
            os.close(ask[0])
            os.close(answer[1])
    answer_text = _read_all(pid_r).decode(errors="replace")
    os.close(pid_r)
    os.waitpid(u_pid, 0)  # U is gone: PID 1 is our child now
    if not answer_text.isdigit():
        raise OSError(errno.EPERM, answer_text or "the user namespace could not be made")
    return int(answer_text)


def _supervise(spec: LaunchSpec, shim: list[str], shim_args: list[str], report_w: int, error_w: int,
               net: tuple[int, int, int] | None = None) -> None:
    """Process S: new session, new PID namespace [in a new user namespace], fork PID 1, then become the shim.

    ``net`` is (ready_w, go_r, lifeline_w) of :func:`start`'s ``on_netns``
    handshake: PID 1 gets the first two, S keeps the lifeline for the shim to
    hold until it exits. Never returns.
    """
    child = 0
    try:
        os.setsid()
        report_w, error_w = _above_stdio(report_w), _above_stdio(error_w)
        if net is not None:
            net = (_above_stdio(net[0]), _above_stdio(net[1]), _above_stdio(net[2]))
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # the shim must not hold the caller's terminal or pipes open
        proxy_fds = {fd for fd, _ in spec.proxies}
        _close_all_but({0, 1, 2, report_w, error_w, *proxy_fds, *(net or ())})
        os.chdir("/")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()

        def pid1() -> None:
            for fd in (out_r, err_r, report_w, *(net[2:] if net else ())):
                os.close(fd)
            _container(spec, out_w, err_w, error_w, net[:2] if net else None)

        if spec.userns is not None:
            child = _fork_in_userns(spec.userns, pid1)
        else:
            syscalls.unshare(namespaces.CLONE_NEWPID)
            child = os.fork()
            if child == 0:
                pid1()
        os.close(out_w)
        os.close(err_w)
        if net is not None:
            os.close(net[0])
            os.close(net[1])
            os.set_inheritable(net[2], True)  # the lifeline: held by the shim until it exits
        _, start_time = _stat_fields(child)
        os.write(report_w, f"ok {child} {os.getpid()} {start_time}".encode())
        os.close(report_w)
        os.set_inheritable(out_r, True)
        os.set_inheritable(err_r, True)
        for fd in proxy_fds:
            os.set_inheritable(fd, True)
        shim_args = [*shim_args, *[arg for fd, targets in spec.proxies for arg in ("--proxy", f"{fd}={targets}")]]
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        argv = [*shim, "--pid", str(child), "--stdout", str(out_r), "--stderr", str(err_r), *shim_args]
        os.execve(argv[0], argv, helpers.environ())
    except BaseException as e:
        if child:
            os.kill(child, signal.SIGKILL)
        try:
            os.write(report_w, f"error {e}".encode())
        except OSError:
            pass
    finally:
        os._exit(1)


def _container(spec: LaunchSpec, out_w: int, err_w: int, error_w: int,
               net: tuple[int, int] | None = None) -> None:
    """Process C, PID 1 of the new PID namespace: build the container around itself, then execve. Never returns."""
    code = 128
    try:
        _join_cgroups(spec.cgroup_procs)
        syscalls.unshare(namespaces.container_flags(new_network=spec.network == "none" and not spec.netns))
        if net is not None:
            # Our network namespace exists: the starter attaches a network to it, then says "go".
            ready_w, go_r = net
            os.write(ready_w, b"1")
            os.close(ready_w)
            go = os.read(go_r, 1)
            os.close(go_r)
            if go != b"1":
                raise _Failure(128, "error during container init: the container's network could not be set up")
        if spec.netns:
            # The engine made and wired this network namespace (veth, address, route) beforehand.
            fd = os.open(spec.netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(fd, namespaces.CLONE_NEWNET)
            finally:
                os.close(fd)
        if spec.address:
            namespaces.configure_interface("eth0", *spec.address)
        if spec.hostname:
            syscalls.sethostname(spec.hostname)
        rootfs.make_private()
        if spec.network == "none" and not spec.netns:
            namespaces.loopback_up()
        root = os.path.realpath(spec.rootfs)
        if spec.overlay is not None:
            # Rootless: the overlay can only be mounted here, in a mount namespace of our user namespace.
            syscalls.mount("overlay", root, "overlay", 0, spec.overlay)
        rootfs.bind_self(root)
        rootfs.mount_proc(root)
        userns = spec.userns
        rootfs.mount_dev(root, host_devices=userns is not None,
                         tty_gid=5 if userns is None or userns.maps_inside(5) else None)
        rootfs.mount_sys(root)
        for mount in sorted(spec.mounts, key=lambda m: os.path.normpath(m.destination).count("/")):
            rootfs.bind(root, mount.source, mount.destination, mount.readonly)
        rootfs.mask(root)
        rootfs.make_readonly(root)
        rootfs.pivot(root)
        _enter_cwd(spec.cwd, create=True)
        if spec.readonly_rootfs:
            rootfs.remount_root_readonly()
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.close(out_w)
        os.close(err_w)
        _become_program(spec.argv, spec.env, error_w, spec.block_signals)
    except BaseException as e:
        failure = _as_failure(e, 128)
        code = failure.code
        _report(error_w, failure)
    finally:
        os._exit(code)


def _exec_child(root_fd: int, argv: list[str], env: list[str], cwd: str, ends: tuple[int, int, int],
                error_w: int) -> None:
    """The process ``exec_in`` runs: already in the container's namespaces, now in its root. Never returns.

    It starts a session of its own (setsid(2)), so the caller's terminal is not its controlling
    terminal, and its 0-2 are the relay's pipes (``ends``).
    """
    code = 126
    try:
        os.setsid()
        os.fchdir(root_fd)
        os.chroot(".")
        _enter_cwd(cwd, create=False)
        for target, fd in enumerate(ends):
            os.dup2(fd, target)
        _become_program(argv, env, error_w)
    except BaseException as e:
        failure = _as_failure(e, 126)
        code = failure.code
        _report(error_w, failure)
    finally:
        os._exit(code)


def _become_program(argv: list[str], env: list[str], error_w: int, block_signals: bool = False) -> None:
    """The last steps before execve(2), shared by PID 1 and exec: capabilities, signals, fds.

    ``block_signals`` execs with every signal blocked: for labkit-init as PID 1, a signal
    sent before it installs its own mask would otherwise be dropped (the kernel discards
    an unhandled signal to a namespace's init, unless it is blocked: then it stays pending).
    """
    path = _lookup(argv[0], env)
    capabilities.restrict(capabilities.mask(capabilities.DOCKER_DEFAULT), _last_cap[0])
    syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    # Ignored signals stay ignored across execve(2), and Python ignores SIGPIPE
    # and SIGXFSZ; a program expects every signal at its default.
    for signum in range(1, signal.NSIG):
        if signum not in (signal.SIGKILL, signal.SIGSTOP):
            syscalls.signal_default(signum)
    signal.pthread_sigmask(signal.SIG_SETMASK, signal.valid_signals() if block_signals else [])
    os.umask(0o022)
    _close_all_but({0, 1, 2, error_w})
    try:
        os.execve(path, argv, _environ(env))
    except OSError as e:
        code = 127 if e.errno == errno.ENOENT else 126
        raise _Failure(code, f"exec {path}: {_strerror(e.errno or 0)}") from None


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
        if not os.path.exists(mount.source):
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


def _lookup(name: str, env: list[str]) -> str:
    """Find the program like Go's exec.LookPath inside the container, with Docker's exit codes."""
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as e:
            raise _Failure(
                127 if e.errno == errno.ENOENT else 126, f'exec: "{name}": stat {name}: {_strerror(e.errno or 0)}'
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise _Failure(126, f'exec: "{name}": is a directory')
        if not st.st_mode & 0o111:
            raise _Failure(126, f'exec: "{name}": permission denied')
        return name
    search = _environ(env).get("PATH", DEFAULT_PATH)
    for directory in search.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise _Failure(127, f'exec: "{name}": executable file not found in $PATH')


def _environ(env: Sequence[str]) -> dict[str, str]:
    pairs = (item.partition("=") for item in env)
    return {key: value for key, sep, value in pairs if key and sep}


def _enter_cwd(cwd: str, create: bool) -> None:
    """chdir into ``cwd``; create it (like Docker does for WORKDIR) when asked; a file there is an error."""
    if create:
        try:
            os.makedirs(cwd, exist_ok=True)
        except FileExistsError:
            pass
        except NotADirectoryError:
            raise _Failure(128, f'chdir to cwd ("{cwd}") set in config.json failed: not a directory') from None
    try:
        os.chdir(cwd)
    except OSError as e:
        raise _Failure(
            128 if create else 126, f'chdir to cwd ("{cwd}") set in config.json failed: {_strerror(e.errno or 0)}'
        ) from None


def _join_cgroups(procs_files: Sequence[str]) -> None:
    """Move the calling process into each cgroup: writing "0" to cgroup.procs means "me" (cgroups(7))."""
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def _as_failure(error: BaseException, default_code: int) -> _Failure:
    if isinstance(error, _Failure):
        return error
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        if error.filename and os.fsdecode(error.filename) not in reason:
            reason = f"{reason}: {os.fsdecode(error.filename)}"
        return _Failure(default_code, f"error during container init: {reason}")
    return _Failure(default_code, f"error during container init: {error!r}")


def _decode_failure(data: bytes) -> tuple[int, str]:
    """The exit code and message of an error pipe's ``CODE\\0MESSAGE`` (written by :func:`_report` or ``pid1.c``)."""
    code, _, message = data.decode(errors="replace").partition("\0")
    return int(code), message


def _report(error_w: int, failure: _Failure) -> None:
    try:
        os.write(error_w, f"{failure.code}\0{failure.message}".encode(errors="replace")[:4000])
    except OSError:
        pass


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _above_stdio(fd: int) -> int:
    """A descriptor number above 2, so that pointing 0-2 at /dev/null cannot clobber it."""
    return fd if fd > 2 else fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _close_all_but(keep: set[int]) -> None:
    """Close every descriptor not in ``keep`` (close_range(2) under os.closerange)."""
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _stat_fields(pid: int, proc: str = "/proc") -> tuple[str, int]:
    """(state, start time) from ``/proc/PID/stat``; the command name may hold spaces, so split after ')'."""
    with open(f"{proc}/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    return fields[0].decode(), int(fields[19])


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
