"""What an exec runs: find the program an argv names, start it, and run it a slice at a time.

execve(2) looks at the file it is handed and picks how to run it; here
:func:`lookup` searches ``$PATH`` as execvp(3) does and :func:`classify`
names the program found:

* ``sh`` (busybox's ash, or a ``#!`` script for one of the shells): the
  simulated shell, :mod:`labkit.sim.shell`;
* ``applet``: one of busybox's programs, by the name it was called with
  (``/bin/ls`` is a link to ``/bin/busybox``); ``watch`` is run as the shell
  loop it amounts to;
* ``node``: the lesson image's web server (below).

:func:`start` makes the process (fork(2) + execve(2)) and :func:`step` runs
one for a slice: the scheduler (:mod:`labkit.sim.kernel`) and the shell
(:class:`labkit.sim.shell.Exec`, :data:`EXEC`) are handed these, so neither
imports this module.

``node server.js`` is the lesson image's server, simulated: it reads the
``SERVICE`` and ``VERSION`` constants from ``server.js`` (as the busybox
stand-in does), prints the same start-up line, answers ``GET /`` with the
same JSON (``service``, ``version``, ``env``, ``hostname``, ``pid``),
``GET /health`` with ``ok`` and anything else with 404, logs
``GET / 200`` per request, and closes with exit code 0 on SIGTERM.
:func:`http_get` is a request sent to a port it listens on.
"""

from __future__ import annotations

import errno
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from labkit.errors import StartFailed
from labkit.sim import network
from labkit.sim.busybox import APPLETS, run_applet, watch_script
from labkit.sim.kernel import SimContainer, World
from labkit.sim.overlay import vfs_for
from labkit.sim.process import DEFAULT_PATH, Proc, exit_proc, spawn, write
from labkit.sim.shell import Exec, new_shell, run_shell

# -- finding the program ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Program:
    """What an argv resolves to: a kind, the applet's name, and the script for a shell script."""

    kind: str
    name: str
    path: str
    script: str | None = None


def lookup(world: World, ct: SimContainer, argv: list[str], env: dict[str, str], cwd: str = "/") -> Program:
    """Find ``argv[0]`` the way execvp(3) does: in ``$PATH`` unless it has a slash.

    Raises:
        StartFailed: 127 when nothing is found, 126 when it cannot be run — with the
            same words the linux backend uses.
    """
    vfs = vfs_for(world, ct.id)
    name = argv[0]
    if "/" in name:
        path = name if name.startswith("/") else os.path.normpath(os.path.join(cwd, name))
        try:
            node = vfs.stat(path, follow=True)
        except OSError as e:
            code = 127 if e.errno == errno.ENOENT else 126
            raise StartFailed(f'exec: "{name}": stat {name}: {os.strerror(e.errno or 0).lower()}', code) from None
        if node.kind == "dir" or not node.mode & 0o111:  # Go's LookPath: a directory is ErrPermission too
            raise StartFailed(f'exec: "{name}": permission denied', 126)
        return classify(vfs, argv, path)
    for directory in (env.get("PATH") or DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            node = vfs.stat(candidate, follow=True)
        except OSError:
            continue
        if node.kind == "file" and node.mode & 0o111:
            return classify(vfs, argv, candidate)
    raise StartFailed(f'exec: "{name}": executable file not found in $PATH', 127)


def classify(vfs: Any, argv: list[str], path: str) -> Program:
    """Which simulated program a found executable is: busybox applets by the name they were called with."""
    real = vfs.realpath(path)
    base = os.path.basename(real)
    called = os.path.basename(argv[0])
    if base == "busybox":
        applet = argv[1] if called == "busybox" and len(argv) > 1 else called
        if applet == "watch":
            return Program("sh", "watch", real, script=watch_script(argv[2:] if called == "busybox" else argv[1:]))
        return Program("sh" if applet in ("sh", "ash") else "applet", applet, real)
    if base == "node" or called == "node":
        return Program("node", "node", real)
    try:
        head = vfs.read(real)[:256]
    except OSError:
        head = b""
    if head.startswith(b"#!"):
        interp = head[2:].split(b"\n", 1)[0].strip().split()
        if interp and os.path.basename(interp[0].decode()) in ("sh", "ash", "bash", "dash"):
            return Program("sh", "sh", real, script=vfs.read(real).decode(errors="replace"))
    if base in ("sh", "ash", "bash", "dash"):
        return Program("sh", "sh", real)
    if base in APPLETS:
        return Program("applet", base, real)
    return Program("applet", "__unknown__", real)


def env_dict(env: list[str] | tuple[str, ...]) -> dict[str, str]:
    """An OCI ``Env`` list (``KEY=VALUE``) as the environment a program starts with; ``PATH`` defaults as
    execvp(3)'s search here does (:data:`~labkit.sim.process.DEFAULT_PATH`)."""
    out = {}
    for item in env:
        k, sep, v = item.partition("=")
        if k and sep:
            out[k] = v
    out.setdefault("PATH", DEFAULT_PATH)
    return out


# -- starting and running it --------------------------------------------------------------------------

def start(world: World, ct: SimContainer, prog: Program, argv: list[str], *, env: dict[str, str], cwd: str,
                  fds: dict, stdin: bytes = b"", parent: Proc | None = None) -> Proc:
    """execve(2) of a found program in a fresh process."""
    if prog.kind == "sh":
        shell = new_shell(world, ct, argv, prog.script, parent=parent, env=env, cwd=cwd, fds=fds, stdin=stdin)
        shell.fork_retries = prog.name == "watch"
        return shell
    child = spawn(world, ct, argv, prog.kind, parent=parent, env=env, cwd=cwd, fds=fds, stdin=stdin)
    if prog.kind == "applet":
        child.vars = {"__applet": prog.name}
    return child


def step(world: World, p: Proc, budget: int) -> int:
    """Let ``p`` run up to ``budget`` operations; return how many it used (a :data:`labkit.sim.kernel.Step`)."""
    if p.kind == "sh":
        return run_shell(world, p, EXEC, budget)
    if p.kind == "node":
        return run_node(world, p)
    if p.kind == "restarter":
        return relaunch(world, p)
    return run_applet(world, p)


def relaunch(world: World, restarter: Proc) -> int:
    """The restart policy's delay is over (:func:`labkit.sim.process.cancel_restart` did not end the
    restarter first): PID 1 starts again as its last start had it — the same command, environment,
    user and capabilities, a fresh PID namespace, its address back — and ``RestartCount`` counts it.

    A run that cannot start (its program was deleted meanwhile) ends the policy, with the start's
    exit code, as Docker's daemon leaves a container whose restart failed stopped.
    """
    exit_proc(world, restarter, 0)
    ct = world.containers.get(restarter.argv[-1])
    if ct is None or ct.restarter != restarter.hpid or ct.launch is None:
        return 1
    launch = ct.launch
    ct.restarter = 0
    ct.restart_count += 1
    ct.oom_kills, ct.frozen, ct.memory_peak = 0, False, 0
    ct.next_pid = 1  # a new PID namespace: PID 1 again (namespaces.enter_new)
    ct.net = network.reattach(world, ct, launch.net)
    env = dict(launch.env)
    try:
        prog = lookup(world, ct, list(launch.argv), env, launch.cwd)
        pid1 = start(world, ct, prog, list(launch.argv), env=env, cwd=launch.cwd,
                     fds={1: ("log", "stdout"), 2: ("log", "stderr")})
    except (StartFailed, BlockingIOError) as err:
        ct.net_left, ct.net = ct.net, None
        ct.ended = (err.exit_code if isinstance(err, StartFailed) else 126, world.rfc3339(), False)
        return 1
    pid1.uid, pid1.gid, pid1.groups, pid1.cap_eff, pid1.cap_bnd, pid1.seccomp, pid1.nproc = launch.ids
    ct.pid1 = pid1.hpid
    ct.starts += 1
    ct.run_started = world.now
    return 1


#: What the shell is handed to run what it does not run itself.
EXEC = Exec(lookup=lookup, start=start, step=step)


# -- node server.js -----------------------------------------------------------------------------------

def _script_path(p: Proc) -> str | None:
    args = [a for a in p.argv[1:] if not a.startswith("-")]
    if not args:
        return None
    return os.path.normpath(args[0] if args[0].startswith("/") else os.path.join(p.cwd, args[0]))


def _constants(source: str) -> tuple[str, str]:
    service = re.search(r'^const SERVICE = "(.*)";', source, re.M)
    version = re.search(r'^const VERSION = "(.*)";', source, re.M)
    return (service.group(1) if service else "app", version.group(1) if version else "0.0.0")


def run_node(world: World, p: Proc) -> int:
    """The server's first step: load the script, listen, then wait for requests (state ``serve``)."""
    if p.pending:
        sigs, p.pending = p.pending, []
        if any(s in (15, 2) for s in sigs) and p.listen:
            write(world, p, 1, "SIGTERM received, closing\n")
            exit_proc(world, p, 0)
            return 1
    if p.listen:
        p.state = "serve"
        return 1
    script = _script_path(p)
    if script is None:
        write(world, p, 2, "node: the simulator runs scripts only: node server.js\n")
        exit_proc(world, p, 9)
        return 1
    try:
        source = vfs_for(world, p.cid).read(script).decode(errors="replace")
    except OSError:
        write(world, p, 2, f"Error: Cannot find module '{script}'\n")
        exit_proc(world, p, 1)
        return 1
    service, version = _constants(source)
    port = int(p.env.get("PORT") or 3000)
    p.listen = port
    p.vars = {"service": service, "version": version}
    write(world, p, 1, f"{service} {version} listening on port {port} (NODE_ENV={p.env.get('NODE_ENV', 'undefined')})\n")
    p.state = "serve"
    return 1


def listener(world: World, cid: str, port: int) -> Proc | None:
    """The process of container ``cid`` listening on TCP ``port``, if any."""
    for p in world.procs_of(cid):
        if p.kind == "node" and p.listen == port:
            return p
    return None


def http_get(world: World, cid: str, port: int, path: str = "/") -> tuple[int, str]:
    """One HTTP GET to ``port`` inside container ``cid``: ``(status, body)``.

    Raises:
        ConnectionRefusedError: Nothing listens there (ECONNREFUSED, as connect(2) says).
        TimeoutError: The container is paused: its server cannot answer.
    """
    server = listener(world, cid, port)
    if server is None:
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"connect to port {port}: Connection refused")
    ct = world.containers[cid]
    if ct.frozen:
        raise TimeoutError(errno.ETIMEDOUT, "the container is paused (frozen): nothing answers until unpause")
    status: int
    if path == "/":
        status = 200
        body = json.dumps({
            "service": server.vars.get("service"),
            "version": server.vars.get("version"),
            "env": server.env.get("NODE_ENV") or None,
            "hostname": ct.hostname,
            "pid": server.pid,
        }, separators=(",", ":")) + "\n"
    elif path == "/health":
        status, body = 200, "ok"
    else:
        status, body = 404, "not found\n"
    write(world, server, 1, f"GET {path} {status}\n")
    return status, body
