"""Simulated processes: fork, exec, exit, wait and signals, with host and namespaced PIDs.

A :class:`Proc` is plain data (so the world can be saved and a snapshot
copied): which container it lives in, its PID there and on the host, its
parent, what program it runs and where it is in it. Programs are of three
kinds: ``sh`` (the shell's bytecode, :mod:`labkit.sim.shell`), ``applet`` (one
of busybox's programs, run in one step, or sleeping) and ``node`` (the lesson
image's web server, which waits for requests); :mod:`labkit.sim.programs`
finds which one an argv names and runs it. This module knows only the
process table: it runs no program.

Signals follow signal(7) and the PID-namespace rule of pid_namespaces(7):
the kernel delivers to a namespace's PID 1 only the signals it has a handler
for (SIGKILL from outside always), so ``sleep`` or an untrapped ``sh`` as PID 1
ignores SIGTERM. A ``trap``'s handler runs between commands; when PID 1 ends,
every other process of its namespace is killed.
"""

from __future__ import annotations

import errno
import os
import signal as _signal
from dataclasses import dataclass, field
from typing import Any

from labkit.model import restarts
from labkit.sim import cgroups
from labkit.sim.kernel import LogLine, SimContainer, World
from labkit.sim.overlay import DISK, disk_used, vfs_for

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Resident memory the simulator charges a fresh process of each kind (bytes).
BASE_MEMORY = {"sh": 512 * 1024, "applet": 256 * 1024, "node": 2 * 1024 * 1024}

#: Signals whose default action is to terminate the process (signal(7)).
TERMINATING = {
    _signal.SIGHUP, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGTERM, _signal.SIGUSR1, _signal.SIGUSR2,
    _signal.SIGPIPE, _signal.SIGALRM, _signal.SIGABRT,
}


@dataclass
class Proc:
    """One simulated process.

    Attributes:
        hpid: PID in the host's namespace.
        pid: PID in its container's PID namespace (1 for the container's first process).
        ppid: Parent's PID in the container (0: its parent is outside, as for PID 1 and exec'd processes).
        cid: The container.
        argv: Its command line.
        kind: ``sh``, ``applet`` or ``node``.
        state: ``run``, ``sleep`` (until ``wake``), ``wait`` (for a child), ``serve`` (a server idle), ``exited``.
        env: Environment, ``{name: value}``.
        cwd: Working directory.
        fds: Where fd 1 and 2 go: ``("log", stream)``, ``("exec", id, stream)``, ``("buf", id)``,
            ``("file", path)`` or ``("null",)``.
        stdin: What fd 0 reads; ``stdin_pos``: how much was read.
        mem: Resident bytes charged to the container's memory cgroup.
        frames: The shell's call stack: ``[code, pc, slots]`` lists (a trap handler is a frame).
        vars: Shell variables; ``exported``: the ones in the environment.
        traps: ``{signal name: command}``.
        pending: Signals delivered but not yet acted on.
        status: ``$?``.
        waiting: What a waiting process waits for: ``("fg", hpid)``, ``("all",)``, ``("pid", hpid)``.
        children: Host PIDs of live children (background jobs included).
        child_codes: Exit codes of children that ended, by namespaced PID (for ``wait PID``).
        last_bg: ``$!``; ``shell_pid``: ``$$`` (a subshell keeps its parent's).
        on_wake: What to do when a sleep ends (``"exit"`` for the ``sleep`` program).
        redirs: Saved fds of redirections in force (``{ ...; } > f``).
        positional: ``$0 $1 ...``.
        listen: The TCP port a server listens on.
        exit_code: Set once exited.
        dash_c: A shell running ``sh -c``: it execs its last simple command instead of forking (as ash does).
        fork_retries: busybox ``watch``: a fork(2) refused (EAGAIN, the pids limit) is not fatal, as it is to ash;
            system(3) returns -1 and watch tries again at its next interval.
        uid / gid / groups: Who it runs as (``-u``); a child inherits them, as fork(2) does.
        cap_eff / cap_bnd: Its effective and bounding capability sets (bit masks, ``/proc/PID/status``).
        seccomp: Its seccomp mode (2: a filter, 0: none, ``--privileged``).
        nproc: Its ``RLIMIT_NPROC`` soft limit (-1: none): a fork by a non-root user with that many processes
            of its uid fails with EAGAIN (setrlimit(2)).
        cpu_ns: CPU time it used (:data:`labkit.sim.kernel.OP_NS` per operation; ``top``'s TIME);
            ``cpu_until``: the simulated instant its slices so far reach (:func:`labkit.sim.kernel.charge_cpu`).
    """

    hpid: int
    pid: int
    ppid: int
    cid: str
    argv: list[str]
    kind: str
    state: str = "run"
    wake: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    fds: dict[int, tuple] = field(default_factory=dict)
    stdin: bytes = b""
    stdin_pos: int = 0
    mem: int = 0
    frames: list[list] = field(default_factory=list)
    vars: dict[str, str] = field(default_factory=dict)
    exported: set[str] = field(default_factory=set)
    traps: dict[str, str] = field(default_factory=dict)
    pending: list[int] = field(default_factory=list)
    status: int = 0
    waiting: tuple = ()
    children: list[int] = field(default_factory=list)
    child_codes: dict[int, int] = field(default_factory=dict)
    last_bg: int = 0
    shell_pid: int = 0
    on_wake: str | None = None
    redirs: list[dict[int, tuple]] = field(default_factory=list)
    positional: list[str] = field(default_factory=list)
    listen: int = 0
    parent_hpid: int = 0
    exit_code: int | None = None
    started: float = 0.0
    dash_c: bool = False
    fork_retries: bool = False
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    cap_eff: int = 0
    cap_bnd: int = 0
    seccomp: int = 2
    nproc: int = -1
    cpu_ns: int = 0
    cpu_until: float = 0.0


#: Live output streams of running ``exec`` calls, by id: ``(stdout, stderr)`` (not saved with the world).
EXEC_STREAMS: dict[int, tuple[Any, Any]] = {}


# -- output ---------------------------------------------------------------------------------------

def write(world: World, proc: Proc, fd: int, data: bytes | str) -> OSError | None:
    """write(2) to one of ``proc``'s file descriptors: ``None``, or the error it failed with (ENOSPC)."""
    if isinstance(data, str):
        data = data.encode()
    if not data:
        return None
    target = proc.fds.get(fd, ("null",))
    if target[0] == "buf" and not need_memory(world, proc, len(data)):
        return None  # the output held for a pipe or $(...) passed the host's memory: the OOM killer took ``proc``
    try:
        write_target(world, proc.cid, target, data)
    except OSError as e:
        return e
    return None


def need_memory(world: World, proc: Proc, extra: int) -> bool:
    """``proc`` is about to hold ``extra`` more bytes: allowed, or the OOM killer strikes.

    The victim :func:`labkit.sim.cgroups.oom_victim` picks gets SIGKILL (exit 137).

    Returns:
        True when the allocation succeeds; False when ``proc`` itself was
        OOM-killed (the caller must stop running it).
    """
    victim = cgroups.oom_victim(world, proc, extra)
    if victim is None:
        return True
    exit_proc(world, victim, 128 + _signal.SIGKILL)
    return victim is not proc and proc.hpid in world.procs


def write_target(world: World, cid: str, target: tuple, data: bytes) -> None:
    kind = target[0]
    if kind == "log":
        log_append(world, cid, target[1], data.decode(errors="replace"))
    elif kind == "buf":
        buf = world.buffers.get(target[1])
        if buf is not None:
            buf.extend(data)
    elif kind == "exec":
        streams = EXEC_STREAMS.get(target[1])
        if streams is not None:
            _host_write(streams[0 if target[2] == "stdout" else 1], data)
    elif kind == "file":
        vfs_for(world, cid).write(target[1], data, append=True)


def _host_write(stream: Any, data: bytes) -> None:
    if stream is None:
        return
    if isinstance(stream, int):
        while data:
            n = os.write(stream, data)
            data = data[n:]
        return
    try:
        stream.write(data)
    except TypeError:
        stream.write(data.decode(errors="replace"))
    stream.flush()


def log_append(world: World, cid: str, stream: str, text: str) -> None:
    """Add output to the container's json-file log, one entry per finished line."""
    ct = world.containers.get(cid)
    if ct is None:
        return
    text = ct.partial.pop(stream, "") + text
    *lines, rest = text.split("\n")
    for line in lines:
        _log_line(world, ct, stream, line + "\n")
    if rest:
        if len(rest) > _PARTIAL_MAX:  # the log driver splits a long line into 16 KiB entries, as dockerd does
            _log_line(world, ct, stream, rest)
        else:
            ct.partial[stream] = rest


#: The longest unfinished line kept before it is logged as an entry of its own (dockerd's 16 KiB message buffer).
_PARTIAL_MAX = 16 * 1024


def _log_line(world: World, ct: SimContainer, stream: str, text: str) -> None:
    """One json-file entry, if the modelled disk has room (else it is lost, as dockerd loses it on ENOSPC)."""
    size = len(text)
    if disk_used(world) + size > DISK:
        world.dropped_log_lines += 1
        return
    world.log_bytes += size
    ct.logs.append(LogLine(stream, text, world.now))


def flush_logs(world: World, ct: SimContainer) -> None:
    """A process's last unfinished line still goes to the log when it ends."""
    for stream, rest in sorted(ct.partial.items()):
        _log_line(world, ct, stream, rest)
    ct.partial.clear()


# -- fork / exec / exit ---------------------------------------------------------------------------

def spawn(world: World, ct: SimContainer, argv: list[str], kind: str, *, parent: Proc | None = None,
          env: dict[str, str] | None = None, cwd: str = "/", fds: dict[int, tuple] | None = None,
          stdin: bytes = b"", check_pids: bool = True) -> Proc:
    """fork(2) + execve(2): a new process in ``ct``'s namespaces, charged to its cgroups.

    Raises:
        BlockingIOError: EAGAIN when ``pids.max`` is reached (the fork fails).
    """
    if check_pids and not cgroups.can_fork(world, ct):
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    if parent is not None and parent.uid != 0 and parent.nproc >= 0 and \
            sum(1 for q in world.procs.values() if q.uid == parent.uid) >= parent.nproc:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")  # RLIMIT_NPROC (setrlimit(2))
    pid = ct.next_pid
    ct.next_pid += 1
    p = Proc(
        hpid=world.new_hpid(), pid=pid, ppid=parent.pid if parent and parent.cid == ct.id else 0, cid=ct.id,
        argv=list(argv), kind=kind, env=dict(env or {}), cwd=cwd,
        fds=dict(fds or {1: ("null",), 2: ("null",)}), stdin=stdin, mem=BASE_MEMORY.get(kind, 256 * 1024),
        parent_hpid=parent.hpid if parent else 0, started=world.now,
    )
    p.shell_pid = pid
    if parent is not None and parent.cid == ct.id:  # fork(2): who it is, its capabilities and limits go along
        p.uid, p.gid, p.groups, p.cap_eff, p.cap_bnd = parent.uid, parent.gid, parent.groups, parent.cap_eff, \
            parent.cap_bnd
        p.seccomp, p.nproc = parent.seccomp, parent.nproc
    world.procs[p.hpid] = p
    if parent is not None:
        parent.children.append(p.hpid)
    cgroups.charge(world, ct)
    return p


def exit_proc(world: World, p: Proc, code: int) -> None:
    """The process ends with ``code`` (exit(2), or 128+N for a signal): tell its parent, reap it."""
    if p.hpid not in world.procs:
        return
    p.state = "exited"
    p.exit_code = code
    del world.procs[p.hpid]
    ct = world.containers.get(p.cid)
    for hpid in p.children:
        child = world.procs.get(hpid)
        if child is not None:
            # An orphan is re-parented to its namespace's init (the container's PID 1).
            child.parent_hpid = ct.pid1 if ct else 0
            child.ppid = 1 if ct and ct.pid1 else 0
    parent = world.procs.get(p.parent_hpid)
    if parent is not None:
        if p.hpid in parent.children:
            parent.children.remove(p.hpid)
        parent.child_codes[p.pid] = code
        _notify_parent(parent, p, code)
    if ct is not None:
        if p.hpid == ct.pid1:
            _end_container(world, ct, code)
        cgroups.charge(world, ct)


def _notify_parent(parent: Proc, child: Proc, code: int) -> None:
    if parent.state != "wait":
        return
    kind = parent.waiting[0] if parent.waiting else ""
    if kind in ("fg", "pid") and parent.waiting[1] == child.hpid:
        parent.status = code
        parent.state = "run"
        parent.waiting = ()
    elif kind == "all" and not parent.children:
        parent.status = 0
        parent.state = "run"
        parent.waiting = ()


def _end_container(world: World, ct: SimContainer, code: int) -> None:
    """PID 1 is gone: the kernel kills the rest of the namespace (pid_namespaces(7)), the freezer thaws."""
    for other in world.procs_of(ct.id):
        other.children = []
        exit_proc(world, other, 128 + _signal.SIGKILL)
    flush_logs(world, ct)
    ct.pid1 = 0
    ct.frozen = False
    ct.ended = (code, world.rfc3339(), ct.oom_kills > 0)
    # Its network namespace went with PID 1, and its address with it; what it had is kept for the trace.
    ct.net_left, ct.net, ct.nets, ct.next_if = ct.net, None, (), 1
    _schedule_restart(world, ct, code)


#: The restarter's program name: the real backend's supervisor execs ``python -m labkit.restarter``.
RESTARTER = "labkit-restarter"


def _schedule_restart(world: World, ct: SimContainer, code: int) -> None:
    """``--restart``: if the policy restarts this run's end (:func:`labkit.model.restarts.should_restart`), a
    restarter process of the host sleeps the policy's delay, then starts PID 1 again
    (:func:`labkit.sim.programs.relaunch`) — as the real backend's supervisor execs its restarter."""
    if ct.launch is None or not restarts.should_restart(ct.restart_policy, ct.restart_max, code, ct.restart_count,
                                                        ct.stopped_by_hand):
        return
    ct.restart_delay = restarts.next_delay(ct.restart_delay, world.now - ct.run_started)
    hpid = world.new_hpid()
    world.procs[hpid] = Proc(hpid=hpid, pid=hpid, ppid=0, cid="", argv=[RESTARTER, ct.id], kind="restarter",
                             state="sleep", wake=world.now + ct.restart_delay, on_wake="restart", started=world.now)
    ct.restarter = hpid


def cancel_restart(world: World, ct: SimContainer) -> None:
    """The restarter waiting to start ``ct`` again ends without doing so (``stop``, ``rm``, a new ``start``)."""
    waiting = world.procs.get(ct.restarter) if ct.restarter else None
    ct.restarter = 0
    if waiting is not None:
        exit_proc(world, waiting, 128 + _signal.SIGTERM)


def kill(world: World, p: Proc, sig: int) -> None:
    """kill(2): deliver ``sig`` to ``p`` as the kernel would."""
    ct = world.containers.get(p.cid)
    if sig == _signal.SIGKILL:
        if ct is not None and ct.frozen:
            p.pending.append(sig)  # a frozen task dies only once thawed (cgroup v1 freezer)
            return
        exit_proc(world, p, 128 + sig)
        return
    if sig == _signal.SIGCONT or sig in (_signal.SIGCHLD, _signal.SIGWINCH, _signal.SIGURG):
        return
    handled = (p.kind == "sh" and _signal.Signals(sig).name[3:] in p.traps) or (
        p.kind == "node" and sig in (_signal.SIGTERM, _signal.SIGINT))
    if not handled:
        if p.pid == 1 and not getattr(ct, "tiny_init", False):
            return  # PID 1 of a namespace gets only the signals it handles (--init forwards them instead)
        if sig in TERMINATING:
            exit_proc(world, p, 128 + sig)
        return
    p.pending.append(sig)
    if ct is not None and ct.frozen:
        return
    if p.state == "wait" and p.waiting[:1] in (("all",), ("pid",)):
        # The wait builtin returns at once, with 128+N, when a trapped signal arrives.
        p.status = 128 + sig
        p.state = "run"
        p.waiting = ()
    elif p.state in ("sleep", "serve"):
        p.state = "run"
        p.wake = 0.0
        p.on_wake = None
        if p.kind == "sh":
            p.status = 128 + sig


def thaw(world: World, ct: SimContainer) -> None:
    """The freezer lets go: SIGKILLs that arrived while frozen now kill."""
    ct.frozen = False
    for p in world.procs_of(ct.id):
        if _signal.SIGKILL in p.pending:
            exit_proc(world, p, 128 + _signal.SIGKILL)
        elif p.pending and p.state in ("sleep", "serve", "wait"):
            sigs, p.pending = p.pending, []
            for sig in sigs:
                kill(world, p, sig)
