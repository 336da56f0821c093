"""The container supervisor: which program it is, and a Python version of it.

Every running container has a supervisor, the parent of its PID 1. It copies
the container's stdout and stderr into a json-file log, reaps PID 1, writes
``exit.json`` and cleans up the mounts and cgroups. It must outlive whoever
started the container (a notebook kernel that restarts, a CLI that exits),
and there is one per container, so it should cost little: the C program
``shim.c`` stays under 2 MB of RSS, where a resident Python costs ~8 MB.

:func:`command` picks the program: the C shim, compiled once with ``cc`` into
a cache directory keyed by a hash of its source, or — on a host without a C
compiler — this module run as a script, which implements the same program
with the same arguments::

    --pid N --stdout FD --stderr FD --exit-file PATH --log PATH
    [--oom PATH] [--umount PATH]... [--rmdir PATH]... [--unlink PATH]...
    [--proxy FD=IP:PORT[,IP:PORT...]]... [--then ARG]...

``--proxy`` relays connections accepted on a listening socket the engine
bound (a published port) to the container's address, round-robin over
several addresses (a service's replicas) — what Docker's docker-proxy does.

As a script this module imports only the standard library, so it can run
with ``python -I`` and start fast.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import socket
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone

#: Where the compiled shim is cached unless ``LABKIT_SHIM_DIR`` or an argument says otherwise.
DEFAULT_SHIM_DIR = "/var/lib/labkit/bin"

_LINE_MAX = 16384
_MNT_DETACH = 2
_commands: dict[tuple[str, str], list[str]] = {}


def rfc3339nano(ns: int | None = None) -> str:
    """A UTC timestamp in Go's RFC3339Nano form (trailing zeros of the fraction trimmed)."""
    ns = time.time_ns() if ns is None else ns
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{text}{fraction}Z"


def json_log_line(data: bytes, stream: str, ns: int | None = None) -> bytes:
    """One json-file log line for ``data``, escaped as Docker's encoder does (``<`` as ``\\u003c``)."""
    text = json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return f'{{"log":{text},"stream":"{stream}","time":"{rfc3339nano(ns)}"}}\n'.encode()


def oom_kills(path: str) -> int:
    """The N of the ``oom_kill N`` line in memory.events (v2) or memory.oom_control (v1); 0 if absent."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        return 0
    return 0


def exit_record(status: int, oom_file: str | None) -> dict[str, object]:
    """The exit.json record for a wait status: ExitCode is the code, or 128+signal."""
    signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = 128 + signal if signal else os.waitstatus_to_exitcode(status)
    oom = bool(oom_file) and oom_kills(oom_file or "") > 0
    return {"ExitCode": code, "FinishedAt": rfc3339nano(), "OOMKilled": oom, "Signal": signal}


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or all of it (rename(2))."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _warn(exit_file: str, what: str) -> None:
    try:
        with open(os.path.join(os.path.dirname(exit_file), "shim.log"), "a") as f:
            f.write(f"labkit-supervisor: {what}\n")
    except OSError:
        pass


def parse_proxy(text: str) -> tuple[int, list[tuple[str, int]]]:
    """``"5=172.17.0.2:3000,172.17.0.3:3000"`` → ``(5, [("172.17.0.2", 3000), ...])``."""
    fd, _, targets = text.partition("=")
    out = []
    for item in targets.split(","):
        host, _, port = item.rpartition(":")
        out.append((host, int(port)))
    return int(fd), out


def _copy_output(fds: dict[int, str], log_fd: int, proxies: Sequence[tuple[int, list[tuple[str, int]]]] = ()) -> None:
    """Log each line of each pipe until all of them reach end of file, relaying published ports meanwhile."""
    pending = {fd: b"" for fd in fds}
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    listeners = {fd: _Listener(socket.socket(fileno=fd), targets) for fd, targets in proxies}
    for fd in listeners:
        poller.register(fd, select.POLLIN)
    peers: dict[int, int] = {}
    while pending:
        for fd, _ in poller.poll():
            if fd in listeners:
                _accept(fd, listeners[fd], peers, poller)
                continue
            if fd in peers:
                _relay(fd, peers, poller)
                continue
            chunk = os.read(fd, _LINE_MAX)
            now = time.time_ns()
            buf = pending[fd] + chunk
            lines = buf.split(b"\n")
            rest = lines.pop()
            out = [json_log_line(line + b"\n", fds[fd], now) for line in lines]
            if not chunk and rest:
                out.append(json_log_line(rest, fds[fd], now))
                rest = b""
            elif len(rest) >= _LINE_MAX:
                out.append(json_log_line(rest, fds[fd], now))
                rest = b""
            if out:
                os.write(log_fd, b"".join(out))
            if chunk:
                pending[fd] = rest
            else:
                poller.unregister(fd)
                os.close(fd)
                del pending[fd]
    for fd in list(peers):
        os.close(fd)
    for listener in listeners.values():
        listener.sock.close()


class _Listener:
    """A published port: the socket the engine bound, and where its connections go (round-robin)."""

    def __init__(self, sock: socket.socket, targets: list[tuple[str, int]]) -> None:
        self.sock, self.targets, self.next = sock, targets, 0


def _accept(fd: int, listener: _Listener, peers: dict[int, int], poller: select.poll) -> None:
    """Accept a client on a published port and connect it to the next target that answers."""
    try:
        client, _ = listener.sock.accept()
    except OSError:
        return
    for _ in range(len(listener.targets)):
        target = listener.targets[listener.next]
        listener.next = (listener.next + 1) % len(listener.targets)
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            up.connect(target)
        except OSError:
            up.close()
            continue
        a, b = client.detach(), up.detach()
        peers[a], peers[b] = b, a
        poller.register(a, select.POLLIN)
        poller.register(b, select.POLLIN)
        return
    client.close()


def _relay(fd: int, peers: dict[int, int], poller: select.poll) -> None:
    """Copy what is readable on one side of a connection to the other; close both at the end."""
    other = peers[fd]
    try:
        data = os.read(fd, 65536)
        if data:
            os.write(other, data)
            return
    except OSError:
        pass
    for end in (fd, other):
        poller.unregister(end)
        os.close(end)
        del peers[end]


def _rmdir_quietly(path: str) -> None:
    """rmdir(2) that may fail: a cgroup with children (EBUSY) stays."""
    try:
        os.rmdir(path)
    except OSError:
        pass


def _cleanup(umounts: list[str], rmdirs: list[str], exit_file: str, unlinks: Sequence[str] = ()) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for path in umounts:
        if libc.umount2(os.fsencode(path), _MNT_DETACH) < 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
            _warn(exit_file, f"umount2 {path}: {os.strerror(ctypes.get_errno())}")
    for path in rmdirs:
        # A v1 cgroup can stay busy for a moment after its last task exited.
        for _ in range(100):
            try:
                os.rmdir(path)
                _rmdir_quietly(os.path.dirname(path))  # labkit's parent group, if that was its last group
                break
            except FileNotFoundError:
                _rmdir_quietly(os.path.dirname(path))
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    _warn(exit_file, f"rmdir {path}: {e.strerror}")
                    break
                time.sleep(0.01)
    for path in unlinks:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            _warn(exit_file, f"unlink {path}: {e.strerror}")


def main(argv: list[str]) -> int:
    """Run the supervisor: the same program and arguments as ``shim.c``."""
    options: dict[str, list[str]] = {}
    if len(argv) % 2:
        print("labkit-supervisor: arguments come in --key value pairs", file=sys.stderr)
        return 2
    for key, value in zip(argv[::2], argv[1::2], strict=True):
        options.setdefault(key.lstrip("-"), []).append(value)
    try:
        pid = int(options["pid"][0])
        exit_file = options["exit-file"][0]
        log_path = options["log"][0]
        streams = {int(options["stdout"][0]): "stdout", int(options["stderr"][0]): "stderr"}
    except (KeyError, ValueError):
        print("usage: supervisor --pid N --stdout FD --stderr FD --exit-file PATH --log PATH", file=sys.stderr)
        return 2
    oom_file = options.get("oom", [None])[0]
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    _copy_output(streams, log_fd, [parse_proxy(p) for p in options.get("proxy", [])])
    _, status = os.waitpid(pid, 0)
    record = exit_record(status, oom_file)
    write_atomically(exit_file, (json.dumps(record) + "\n").encode())
    _cleanup(options.get("umount", []), options.get("rmdir", []), exit_file, options.get("unlink", []))
    then = options.get("then", [])
    if then:  # the restart policy decides what happens next
        os.close(log_fd)
        os.execv(then[0], then)
    return 0


def build_shim(shim_dir: str | None = None, compiler: str | None = None) -> str | None:
    """Compile ``shim.c`` (with ``pid1.c``) once and return the binary's path, or None without a C compiler.

    See :func:`build_program`."""
    return build_program("shim", shim_dir, compiler, parts=("pid1.c", "pid1.h"))


def build_init(shim_dir: str | None = None, compiler: str | None = None) -> str | None:
    """Compile ``init.c`` statically (an image need not have a C library), or None if that is impossible."""
    return build_program("init", shim_dir, compiler, static=True)


def build_program(name: str, shim_dir: str | None = None, compiler: str | None = None,
                  static: bool = False, parts: tuple[str, ...] = ()) -> str | None:
    """Compile ``<name>.c`` from this package once and return the binary's path, or None.

    The binary is named after a hash of the source, so a changed source gets
    a new binary and old ones are never used. It is compiled to a temporary
    name and renamed into place, so concurrent starters never run half a file.

    Args:
        shim_dir: Cache directory; defaults to ``$LABKIT_SHIM_DIR`` or
            :data:`DEFAULT_SHIM_DIR`.
        compiler: The C compiler to use; defaults to the first of cc, gcc,
            clang on PATH.
        parts: More files of this package the program is built from (``.c``
            files are compiled with it, headers only hashed).
    """
    import hashlib
    import subprocess

    from labkit import helpers

    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.join(here, f"{name}.c")
    files = [source, *(os.path.join(here, part) for part in parts)]
    hasher = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            hasher.update(f.read())
    digest = hasher.hexdigest()[:16]
    directory = shim_dir or os.environ.get("LABKIT_SHIM_DIR") or DEFAULT_SHIM_DIR
    binary = os.path.join(directory, f"labkit-{name}-{digest}")
    if os.access(binary, os.X_OK):
        return binary
    cc = compiler or next(filter(None, map(helpers.which, helpers.COMPILERS)), None)
    if cc is None:
        return None
    os.makedirs(directory, exist_ok=True)
    tmp = f"{binary}.{os.getpid()}.tmp"
    try:
        flags = ["-static"] if static else []
        sources = [path for path in files if path.endswith(".c")]
        helpers.run([cc, "-std=gnu99", "-O2", *flags, "-o", tmp, *sources], check=True, capture_output=True)
        os.replace(tmp, binary)
    except (OSError, subprocess.CalledProcessError):
        if os.path.exists(tmp):
            os.unlink(tmp)
        return None
    return binary


def python_command() -> list[str]:
    """The argv prefix that runs this module as the supervisor (the fallback without a C compiler)."""
    return [sys.executable, "-I", os.path.abspath(__file__)]


def launches(argv: Sequence[str]) -> bool:
    """Whether the supervisor ``argv`` can start the container itself (the C shim; see ``pid1.c``)."""
    return len(argv) == 1 and os.path.basename(argv[0]).startswith("labkit-shim-")


def command(shim_dir: str | None = None) -> list[str]:
    """The argv prefix of the supervisor to use: the C shim if it can be built, else :func:`python_command`."""
    directory = shim_dir or os.environ.get("LABKIT_SHIM_DIR") or DEFAULT_SHIM_DIR
    key = (directory, sys.executable)
    if key not in _commands or not os.access(_commands[key][0], os.X_OK):
        binary = build_shim(directory)
        _commands[key] = [binary] if binary else python_command()
    return list(_commands[key])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
