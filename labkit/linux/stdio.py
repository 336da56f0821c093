"""A command's standard streams inside a container: pipes that labkit relays, never the caller's descriptors.

``docker exec`` from a terminal must not hand that terminal to the container.
A descriptor of it lets any process the command leaves behind (``sh -c
'watcher &'``) write on the caller's screen, read what is typed (or push
keystrokes with ``TIOCSTI``, tty_ioctl(4)) long after exec returned; and a
terminal that is the command's *controlling* terminal is reachable again
through ``/dev/tty`` (tty(4)) even without a descriptor. So the command gets
three pipes (stdin ``/dev/null`` unless input is asked for), its starter puts
it in a session of its own (setsid(2): no controlling terminal), and this
process copies between those pipes and whatever the caller gave — a
terminal, a file, a socket, a notebook's pipe — for as long as the command
runs. When it has exited, what it wrote is passed on and the pipes are
closed: a process it left behind then gets ``EPIPE``/``SIGPIPE`` on writing
and end of file on reading, and nothing of the caller's is left to it.

A command that asks for a terminal (``run -t``, ``exec -t``) gets none of the
caller's either: it gets a new one from the container's own devpts, whose
other side only its supervisor holds, and the caller's bytes are relayed to it
the same way (:mod:`labkit.linux.console`).

The copying keeps what the caller saw before: output in the order it was
written (stdout and stderr that go to the same file share one pipe, so
``2>&1`` interleaves as it did), and a reader that goes away (``| head -1``)
closes the pipe, so the command dies of ``SIGPIPE`` as it would have (exit
141).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import termios

_CHUNK = 65536


def _same_file(a: int, b: int) -> bool:
    """Whether two descriptors lead to the same file (a terminal both 1 and 2 point at, ``2>&1``)."""
    if a == b:
        return True
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _pipe() -> tuple[int, int]:
    """A close-on-exec pipe, both ends above 2 (a caller may have closed its 0-2)."""
    r, w = os.pipe()
    return _above_stdio(r), _above_stdio(w)


def _above_stdio(fd: int) -> int:
    if fd > 2:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


def _write_all(fd: int, data: bytes) -> None:
    """Write everything, waiting when ``fd`` is non-blocking and full; OSError (EPIPE …) propagates."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])
        except InterruptedError:
            continue


class Relay:
    """Pipes standing in for a caller's stdin, stdout and stderr, and the copying between the two sides.

    Args:
        stdin: What the command reads (a descriptor), copied into its stdin
            pipe until end of file or until the command exits; None gives it
            ``/dev/null``.
        stdout: Where the command's output goes; None: this process's fd 1.
        stderr: Where its errors go; None: this process's fd 2.

    :attr:`ends` are the command's 0, 1 and 2 (close-on-exec here; a spawn's
    dup2 onto 0-2 makes them the child's); :meth:`close_ends` drops this
    process's copies once the command has them, :meth:`pump` copies until the
    command's process exits.
    """

    def __init__(self, stdin: int | None, stdout: int | None, stderr: int | None) -> None:
        self._source = stdin
        out_target = 1 if stdout is None else stdout
        err_target = 2 if stderr is None else stderr
        self._mine: list[int] = []  # the read ends of the output pipes, the write end of stdin's
        self._targets: dict[int, int] = {}  # read end -> where its bytes go
        self.ends: tuple[int, int, int]
        try:
            if stdin is None:
                child_in = _above_stdio(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
                self._in_w = -1
            else:
                child_in, self._in_w = _pipe()
                os.set_blocking(self._in_w, False)  # a command that does not read must not stall the output
                self._mine.append(self._in_w)
            out_r, out_w = _pipe()
            self._mine.append(out_r)
            self._targets[out_r] = out_target
            if _same_file(out_target, err_target):
                err_w = out_w
            else:
                err_r, err_w = _pipe()
                self._mine.append(err_r)
                self._targets[err_r] = err_target
        except BaseException:
            self.close()
            raise
        self.ends = (child_in, out_w, err_w)

    def close_ends(self) -> None:
        """Close this process's copies of the command's ends (it holds its own now)."""
        for fd in set(self.ends):
            os.close(fd)
        self.ends = ()  # type: ignore[assignment]

    def close(self) -> None:
        """Close every descriptor the relay still holds."""
        if self.ends:
            self.close_ends()
        while self._mine:
            os.close(self._mine.pop())
        self._targets.clear()
        self._in_w = -1

    def pump(self, pid: int) -> None:
        """Copy between the caller's descriptors and the command's pipes until process ``pid`` has exited.

        ``pid`` is the process whose end is the command's end (the starter that
        waits for it). Its exit is seen through a pidfd (pidfd_open(2)); what
        the command wrote before it is passed on, then every pipe is closed. The
        caller still reaps ``pid``.
        """
        pidfd = os.pidfd_open(pid)
        pending = b""  # read from the caller's stdin, not yet taken by the command's
        try:
            while True:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                for fd in self._targets:
                    poller.register(fd, select.POLLIN)
                if pending:
                    poller.register(self._in_w, select.POLLOUT)
                elif self._source is not None:
                    poller.register(self._source, select.POLLIN)
                try:
                    events = poller.poll()
                except InterruptedError:
                    continue
                if any(fd == pidfd for fd, _ in events):
                    break
                for fd, _ in events:
                    if fd in self._targets:
                        self._copy_out(fd)
                    elif fd == self._source:
                        pending = self._take_input()
                    elif fd == self._in_w:
                        pending = self._feed(pending)
            # The command has exited: everything it wrote is in the pipes. Pass on exactly that, no more —
            # a process it left behind may write on, and never reaches the caller.
            for fd in list(self._targets):
                waiting = bytearray(4)
                fcntl.ioctl(fd, termios.FIONREAD, waiting)
                left = int.from_bytes(waiting, "little")
                while left > 0:
                    data = os.read(fd, min(left, _CHUNK))
                    if not data or not self._deliver(fd, data):
                        break
                    left -= len(data)
        finally:
            os.close(pidfd)
            self.close()

    def _copy_out(self, fd: int) -> None:
        """Pass on what ``fd`` holds; at end of file, or when the caller's reader went away, close it."""
        data = os.read(fd, _CHUNK)
        if data:
            self._deliver(fd, data)
        else:
            self._drop(fd)

    def _deliver(self, fd: int, data: bytes) -> bool:
        """Write ``data`` where ``fd``'s bytes go; False (and ``fd`` closed) if nobody reads there any more."""
        try:
            _write_all(self._targets[fd], data)
            return True
        except OSError as err:
            if err.errno not in (errno.EPIPE, errno.EBADF, errno.EIO, errno.ENOSPC):
                raise
        # Close the pipe, so that the command's next write fails as its write to the caller's
        # descriptor would have (SIGPIPE).
        self._drop(fd)
        return False

    def _drop(self, fd: int) -> None:
        del self._targets[fd]
        self._mine.remove(fd)
        os.close(fd)

    def _take_input(self) -> bytes:
        """Read what the caller typed or piped; at its end, the command's stdin ends too."""
        source = self._source
        if source is None:
            return b""
        try:
            data = os.read(source, _CHUNK)
        except BlockingIOError:
            return b""
        except OSError:  # EIO: the terminal hung up
            data = b""
        if not data:
            self._source = None
            self._close_stdin()
        return data

    def _feed(self, pending: bytes) -> bytes:
        """Write what is pending into the command's stdin; returns what is left of it."""
        try:
            pending = pending[os.write(self._in_w, pending):]
        except BlockingIOError:
            return pending
        except OSError:  # EPIPE: the command closed its stdin, so what is left cannot reach it
            self._source = None
            pending = b""
        if not pending and self._source is None:
            self._close_stdin()
        return pending

    def _close_stdin(self) -> None:
        if self._in_w >= 0:
            self._mine.remove(self._in_w)
            os.close(self._in_w)
            self._in_w = -1
