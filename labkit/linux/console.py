"""A container's terminal from the host's side: the caller's connection to it, and the relay.

``run -t`` and ``exec -t`` give the container a terminal of its own: a new
pseudo-terminal from the devpts instance mounted in the container (``pid1.c``'s
open_console), whose master its supervisor holds and relays (``console.c``).
The caller's terminal never crosses into the container (see
:mod:`labkit.linux.stdio` for why): a caller is a ``SOCK_SEQPACKET`` connection
to the supervisor, and :func:`relay` copies bytes between it and the caller's
own descriptors, as ``docker``'s client copies between its terminal and the
daemon's stream::

    caller's terminal ─(raw mode)─▶ relay ─'d' input──▶ supervisor ──▶ master ══ slave: the container's 0-2
                     ◀─────────────       ◀─output────            ◀──

``run -it`` connects before PID 1 runs (:func:`pair`, passed to the supervisor),
so the first prompt is not missed; ``attach`` connects later
(:func:`connect`). The caller's window size goes with the start
(``LaunchSpec.winsize``) and then with every SIGWINCH as a ``w ROWS COLS``
message: the supervisor sets it on the master (TIOCSWINSZ) and the kernel
signals the container's foreground process group (tty_ioctl(4)). The detach
keys (Docker's ``ctrl-p,ctrl-q``) end the relay and leave the container
running; its terminal stays with its supervisor.

Through the resident engine (:mod:`labkit.daemon.server`) this process is a worker
that holds the ``labkit`` command's descriptors but is not in its terminal's
session, so SIGWINCH reaches the command, not the worker: the worker tells the
command ``tty`` on their connection (:data:`caller`), and the command then
sends a byte on each SIGWINCH (and puts its terminal back as it was at the
end, whatever becomes of the worker).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios
import threading
import tty
from collections.abc import Iterator

from labkit.linux.stdio import _write_all
from labkit.model.terminal import DEFAULT_KEYS

#: The supervisor's listening socket, in the container's state directory.
ATTACH_SOCKET = "attach.sock"
_MESSAGE = 4096

#: The ``labkit`` command's connection when this process is the resident engine's worker (set by
#: :mod:`labkit.daemon.server`); None when the command runs in this process.
caller: socket.socket | None = None


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of ``SOCK_SEQPACKET`` sockets: ours, and the one the supervisor takes."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return ours, theirs


def connect(state_dir: str) -> socket.socket:
    """Connect to the terminal of the container whose supervisor listens in ``state_dir``.

    The path goes through ``/proc/self/fd``: a unix socket's path holds at most
    108 bytes (unix(7)), less than a deep state root needs.

    Raises:
        OSError: Nobody listens there (the container has no terminal, or has ended).
    """
    dfd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(f"/proc/self/fd/{dfd}/{ATTACH_SOCKET}")
    except OSError:
        sock.close()
        raise
    finally:
        os.close(dfd)
    return sock


def window_size(*fds: int | None) -> tuple[int, int]:
    """``(rows, columns)`` of the first of ``fds`` that is a terminal (TIOCGWINSZ); ``(0, 0)`` if none is."""
    for fd in fds:
        if fd is None:
            continue
        try:
            rows, cols, _, _ = struct.unpack("4H", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            continue
        if rows and cols:
            return rows, cols
    return 0, 0


@contextlib.contextmanager
def raw_mode(fd: int | None) -> Iterator[None]:
    """Put the terminal ``fd`` in raw mode (no echo, no line editing, no ^C as a signal: the container's
    terminal does all that) for the block, and back as it was after it. Not a terminal: nothing changes."""
    if fd is None or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class _Resizes:
    """Where news of the caller's window size changing comes from: the ``labkit`` command's connection
    (in the resident engine's worker), or this process's own SIGWINCH (in-process)."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self._pipe: tuple[int, int] | None = None
        self._old: object = None
        if caller is not None:
            try:
                caller.sendall(b"tty\n")
                self.fd = caller.fileno()
            except OSError:
                pass
        elif threading.current_thread() is threading.main_thread():
            r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            self._pipe = (r, w)
            self._old = signal.signal(signal.SIGWINCH, lambda *_: _poke(w))
            self.fd = r

    def drain(self) -> bool:
        """Read what announced a change; False when the ``labkit`` command has gone (end of file)."""
        if self.fd is None:
            return True
        try:
            return bool(os.read(self.fd, 256))
        except BlockingIOError:
            return True
        except OSError:
            return False

    def close(self) -> None:
        if self._pipe is not None:
            signal.signal(signal.SIGWINCH, self._old)  # type: ignore[arg-type]
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None


def _poke(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, b"w")


def relay(sock: socket.socket, stdin: int | None, stdout: int, keys: bytes = DEFAULT_KEYS) -> bool:
    """Copy between the caller's descriptors and a container's terminal until it ends or the caller detaches.

    Args:
        sock: The connection to the terminal's supervisor (:func:`pair`, :func:`connect`).
        stdin: What the caller types (``-i``), in raw mode while this runs if it is a terminal;
            None sends nothing.
        stdout: Where the terminal's output goes.
        keys: The detach keys (:func:`labkit.model.terminal.detach_keys`): typed in this order, they end the relay
            and are not sent.

    Returns:
        True if the caller detached (the keys, or the ``labkit`` command went away), False when
        the container's terminal closed (its processes ended).
    """
    resizes = _Resizes()
    held = bytearray()  # typed keys that may begin the detach sequence
    source = stdin
    rows, cols = window_size(stdin, stdout)
    if rows:  # the caller's size now, as Docker's client sends it on attach: the container redraws to it
        _send(sock, b"w%d %d" % (rows, cols))
    try:
        with raw_mode(stdin):
            while True:
                watched = [sock.fileno(), *(fd for fd in (source, resizes.fd) if fd is not None)]
                try:
                    ready = select.select(watched, [], [])[0]
                except InterruptedError:
                    continue
                if sock.fileno() in ready:
                    try:
                        data = sock.recv(65536)
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        return False
                    try:
                        _write_all(stdout, data)
                    except OSError as err:
                        if err.errno not in (errno.EPIPE, errno.EIO):
                            raise
                        return True  # nobody reads what we would show: the caller is gone
                if resizes.fd is not None and resizes.fd in ready:
                    if not resizes.drain():
                        return True
                    rows, cols = window_size(stdin, stdout)
                    if rows:
                        _send(sock, b"w%d %d" % (rows, cols))
                if source is not None and source in ready:
                    try:
                        typed = os.read(source, _MESSAGE)
                    except OSError:
                        typed = b""
                    if not typed:
                        source = None  # end of input: the container's terminal stays open, as Docker's does
                        continue
                    out, detached = _scan(typed, held, keys)
                    if out and not _send(sock, b"d" + out):
                        return False
                    if detached:
                        return True
    finally:
        resizes.close()


def _scan(typed: bytes, held: bytearray, keys: bytes) -> tuple[bytes, bool]:
    """What of ``typed`` goes to the container, and whether the detach keys were completed.

    Keys that may begin the sequence are held back in ``held`` until the sequence is complete
    (detach) or broken (they are sent after all).
    """
    out = bytearray()
    for byte in typed:
        if keys and byte == keys[len(held)]:
            held.append(byte)
            if len(held) == len(keys):
                held.clear()
                return bytes(out), True
            continue
        out += held
        held.clear()
        if keys and byte == keys[0]:
            held.append(byte)
        else:
            out.append(byte)
    return bytes(out), False


def _send(sock: socket.socket, message: bytes) -> bool:
    """Send one message (input split to the supervisor's message size); False if it has gone."""
    kind, body = message[:1], message[1:]
    try:
        if kind != b"d":
            sock.send(message)
            return True
        for start in range(0, len(body), _MESSAGE - 1):
            sock.send(kind + body[start:start + _MESSAGE - 1])
    except OSError:
        return False
    return True
