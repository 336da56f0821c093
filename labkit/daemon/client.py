"""The caller's side of the resident engine: where it listens, whether it runs, and how to stop it.

The ``labkit`` command itself (``bin/labkit`` and its compiled fast path,
``labkit/linux/client.c``) speaks to the engine without importing labkit; this
module is what the rest of labkit knows of it: ``labkit server status|stop``
and ``labkit doctor`` ask here. It imports only the standard library, so the
command line pays nothing for it and nothing here reaches the engine.

The socket directory's rule is stated twice, once per language that must know
it before anything else runs: :func:`socket_dir` here, and the shell lines at
the top of ``bin/labkit`` (which hand the directory to its Python part and to
the compiled client). ``tests/test_server.py`` holds the two equal.
"""

from __future__ import annotations

import os
import select
import signal

#: The names the engine keeps in its socket directory: the socket, the lock only one server may hold,
#: the pid file of the one that holds it, and the compiled client ``bin/labkit`` execs.
SOCKET = "engine.sock"
LOCK = "engine.lock"
PIDFILE = "engine.pid"
CLIENT = "client"
#: The engine's module (``python -m labkit.daemon.server DIR``), as its command line shows it.
SERVER_MODULE = "labkit.daemon.server"


def socket_dir(env: dict[str, str] | None = None, uid: int | None = None) -> str:
    """Where this user's engine listens: ``$LABKIT_SOCKET_DIR``, else ``$XDG_RUNTIME_DIR/labkit``, else
    ``/run/labkit`` for root and ``/tmp/labkit-UID`` for others (the rule of ``bin/labkit``'s shell lines)."""
    env = dict(os.environ) if env is None else env
    uid = os.getuid() if uid is None else uid
    if env.get("LABKIT_SOCKET_DIR"):
        return env["LABKIT_SOCKET_DIR"]
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "labkit")
    return "/run/labkit" if uid == 0 else f"/tmp/labkit-{uid}"


def running(directory: str | None = None) -> int | None:
    """The pid of the engine of ``directory`` (default: this user's), or None."""
    try:
        with open(os.path.join(directory or socket_dir(), PIDFILE)) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return pid if SERVER_MODULE.encode() in f.read() else None
    except (OSError, ValueError):
        return None


def stop(directory: str | None = None, timeout: float = 10) -> bool:
    """Stop the engine of ``directory`` (default: this user's) and wait for it, ``timeout`` seconds at most;
    True if one was running."""
    pid = running(directory)
    if pid is None:
        return False
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        select.select([fd], [], [], timeout)  # the pidfd reads as ready when the process has exited (pidfd_open(2))
    finally:
        os.close(fd)
    return True
