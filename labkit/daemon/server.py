"""The resident engine behind the ``labkit`` command: one warm Python process per user.

A ``labkit`` command is short; a Python interpreter that imports the engine,
builds the command line and then starts a container spends most of its time on
the first two. As ``dockerd`` does for ``docker``, this server keeps that work
done once. The ``labkit`` command (``bin/labkit``, a few lines of stdlib
Python started without ``site``) sends its arguments, environment, working
directory, umask and its own stdin, stdout and stderr (SCM_RIGHTS, unix(7))
over a unix socket; the server forks a worker that takes them over and runs
:func:`labkit.cli.main` exactly as the command would have, and sends back the
exit code. Output goes straight to the caller's terminal or pipe.

So nothing about a command changes but its speed: the worker is a fresh
process per command (its own environment, directory and descriptors) forked
from a server that has imported everything and built the parser — forked
ahead, in fact: a spare worker waits for the next command, warmed up, and the
server hands it the request (:meth:`Server.fork_spare`). The first
``labkit`` command starts the server and runs in-process itself; so does every
command when ``LABKIT_NO_SERVER`` is set, or when the server finds that
labkit's code changed since it started (it then exits, and the next command
starts a new one). The server exits after :data:`IDLE_SECONDS` without a
command, or on SIGTERM (``labkit server stop``).

The socket lives in a directory only its user can enter
(:func:`labkit.daemon.client.socket_dir` says which), and the
server also checks each caller's uid (SO_PEERCRED): a command never runs with
someone else's rights. With a C compiler the server also builds
``linux/client.c`` there as ``client``: ``bin/labkit`` then execs that instead
of starting even a small interpreter (a command costs ~2 ms more than its work, half of it
checking that the client and its directory are the caller's alone). The server runs
with the environment labkit gives its helpers (:mod:`labkit.helpers`), not the first
caller's; a worker takes its caller's environment for the command alone, and every
process the command starts for labkit's own use gets the helpers' environment again.

Wire format, one request per connection: the client sends ``LEN`` (10 ASCII
digits) then ``LEN`` bytes of NUL-separated fields — ``1`` (the version), the
working directory, the umask in octal, the number of arguments, the
arguments, then ``KEY=VALUE`` environment entries — with its descriptors 0, 1
and 2 attached to the first message. The worker answers ``started\\n`` before it
runs the command, ``tty\\n`` if the command relays a container's terminal (the
client then sends a byte on each SIGWINCH it gets, and puts its terminal's
modes back at the end), and ``exit N\\n`` as soon as it has ended; the server says
``exit N`` once more when it reaps the worker (so a worker that died still gets
its caller an answer), or ``again\\n`` (run it yourself) without running anything.
A caller that got no ``started`` may run the command itself: nothing ran.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import io
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

import labkit
from labkit import helpers, store
from labkit.backends import default_root
from labkit.daemon.client import CLIENT, LOCK, PIDFILE, SERVER_MODULE, SOCKET
from labkit.engine import Engine, bridge_idle_seconds

#: Seconds without a command after which the server exits.
IDLE_SECONDS = 15 * 60
_MAX_REQUEST = 4 << 20


def _private_dir(path: str) -> None:
    """Make ``path`` a directory only this user can enter, or refuse one that someone else could."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or not os.path.isdir(path):
        raise PermissionError(f"{path} must be a directory only uid {os.getuid()} can enter")


#: labkit's own package directory (above daemon/): the source whose change retires a server.
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fingerprint(top: str = PACKAGE) -> float:
    """The newest modification time among labkit's own files: a changed file means stale code here."""
    newest = 0.0
    stack = [top]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        stack.append(entry.path)
                elif entry.name.endswith((".py", ".c", ".h")):
                    newest = max(newest, entry.stat().st_mtime)
    return newest


class _Changes:
    """Whether labkit's own source changed since this server started, asked once per command.

    inotify(7) watches each directory of the package (not ``__pycache__``): a
    command costs one read(2) of the events that came, not a stat(2) of every
    file (:func:`_fingerprint`, ~2 ms). An event about a ``.py``, ``.c`` or
    ``.h`` file, about a directory, about a watched directory itself, or a
    lost event (the queue overflowed) means stale code. Where inotify cannot be
    had (no such call in the C library, no watches left), the newest
    modification time is compared on every command instead.
    """

    # inotify(7): IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE,
    # IN_DELETE_SELF, IN_MOVE_SELF; the last two, IN_Q_OVERFLOW and IN_IGNORED say the watch itself is gone.
    _MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
    _LOST = 0x400 | 0x800 | 0x4000 | 0x8000
    _ISDIR = 0x40000000
    _EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name

    def __init__(self, top: str = PACKAGE) -> None:
        self.top = top
        self.changed = False
        self.fd = -1
        try:
            self.fd = self._watch(top)
        except (OSError, AttributeError):
            self.fingerprint = _fingerprint(top)

    @classmethod
    def _watch(cls, top: str) -> int:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        try:
            stack = [top]
            while stack:
                directory = stack.pop()
                if libc.inotify_add_watch(fd, os.fsencode(directory), cls._MASK) < 0:
                    raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
                with os.scandir(directory) as entries:
                    stack += [e.path for e in entries if e.is_dir(follow_symlinks=False) and e.name != "__pycache__"]
        except BaseException:
            os.close(fd)
            raise
        return fd

    def __call__(self) -> bool:
        """True once anything of labkit's source changed (and from then on)."""
        if self.changed:
            return True
        if self.fd < 0:
            self.changed = _fingerprint(self.top) != self.fingerprint
            return self.changed
        while not self.changed:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            at = 0
            while at + self._EVENT.size <= len(data):
                _, mask, _, size = self._EVENT.unpack_from(data, at)
                name = data[at + self._EVENT.size:at + self._EVENT.size + size].rstrip(b"\0")
                at += self._EVENT.size + size
                if (mask & self._LOST or (mask & self._ISDIR and name != b"__pycache__")
                        or name.endswith((b".py", b".c", b".h"))):
                    self.changed = True
        return self.changed

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

#: Modules a worker may need that the server does not import ahead: pictures and widgets pull in
#: matplotlib and ipywidgets (``labkit show`` imports them itself); the rest are entry points.
_NOT_AHEAD = ("labkit.viz", "labkit.grading.widgets", "labkit.grading.render", "labkit.__main__",
              "labkit.daemon.server", "labkit.restarter", "labkit.service")


def _warm() -> Any:
    """Import what commands use, find the shim, build the command line once; return the parser.

    Everything imported here is shared by every worker (fork); a module a
    worker imported itself would cost it that import on every command.
    """
    # the warm-up itself: what the resident engine imports here, every worker it forks shares, off every command's
    # start
    import importlib
    import pkgutil

    import labkit
    import labkit.cli

    for info in pkgutil.walk_packages(labkit.__path__, "labkit."):
        if not info.name.startswith(_NOT_AHEAD):
            try:
                importlib.import_module(info.name)
            except ImportError:
                pass  # an optional dependency (pyroute2) missing: the command that needs it says so
    try:
        import pyroute2  # noqa: F401  (0.3 s to import: paid here once, not per bridged run)
    except ImportError:
        pass
    # Kernel code the resident engine loads once, ahead of the commands, off every command's start path
    from labkit.backends import default_root, linux_problem
    from labkit.linux import capabilities, seccomp, supervisor

    supervisor.hash_sources()
    seccomp.warm(capabilities.DOCKER_DEFAULT)  # libseccomp found (ldconfig -p) and Docker's profile resolved once
    if os.getuid() == 0:
        # Docker's device rules as a cgroup BPF program, loaded (and verified) here once rather than in every
        # worker: its descriptor is inherited across fork(2) and closed on exec (labkit.linux.devices).
        from labkit.linux import devices

        try:
            devices.warm()
        except OSError:
            pass  # no cgroup BPF here: the command that needs it says so
    # Whether real containers can run here, asked once (for a user, a probe in a forked child: a user namespace
    # and an overlay mount), and the shim of the default state root (LinuxBackend keeps it in ROOT/bin), compiled
    # once and found: every worker inherits both answers. Only a root that exists: callers that name another one
    # with --root build their own on first use, and the server makes no state root of its own.
    if linux_problem(rootless=os.getuid() != 0) is None:
        root = default_root()
        if os.path.isdir(root) and supervisor.problem(os.path.join(root, "bin")) is None:
            supervisor.command(os.path.join(root, "bin"))
    return labkit.cli.build_parser()


def _install_client(directory: str) -> None:
    """Build ``client.c`` into ``directory`` and point ``directory/client`` at it (atomically); skip without cc."""
    # Kernel code the resident engine loads for the one command that needs it, off every command's start path
    from labkit.linux import supervisor

    # Linked statically where the C library allows it: every command execs this program, and a static one
    # starts without the dynamic loader's work (mapping libc, relocating), about a third of a millisecond here.
    binary = supervisor.build_program("client", directory, static=True) or supervisor.build_program("client", directory)
    if binary is None:
        return
    os.chmod(binary, 0o755)  # whatever the umask: bin/labkit runs no client that others may write
    link = os.path.join(directory, CLIENT)
    tmp = f"{link}.{os.getpid()}"
    os.symlink(os.path.basename(binary), tmp)
    os.replace(tmp, link)
    for name in os.listdir(directory):  # binaries of older sources
        if name.startswith("labkit-client-") and name != os.path.basename(binary) and ".tmp" not in name:
            os.unlink(os.path.join(directory, name))


class Server:
    """The listening socket, the workers running commands, and the idle clock."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, SOCKET)
        self.stopping = False
        # From the start: a `labkit server stop` that comes while the socket is bound but the client still
        # compiles must end the server through close(), not leave its socket behind.
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        self.workers: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
        self.callers: dict[int, int] = {}  # a worker's connection fd -> its pidfd, until the caller hangs up
        self.sweeps: dict[tuple[str | None, ...], dict[str, str]] = {}  # environments whose bridges to check
        self.last_env: dict[str, str] | None = None  # the last command's environment: see _build_ahead
        self.changes = _Changes()  # before the imports: a change made while they run is seen
        self.parser = _warm()
        # Workers are forks: keep the collector off the objects imported so far, so that a worker
        # does not write to (and so copy) every page of them (gc.freeze, "copy-on-write friendly").
        gc.collect()
        gc.freeze()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = f"{self.path}.{os.getpid()}"
        self.sock.bind(tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)  # atomically: a client never sees a socket nobody listens on
        self.sock.listen(64)
        self.inode = os.stat(self.path).st_ino
        _install_client(directory)
        self.spare: tuple[int, socket.socket] | None = None
        self.fork_spare()

    def fork_spare(self) -> None:
        """Fork the worker of the next command now, off its path, and let it warm up while it waits.

        A fork of this process costs a few milliseconds, and a fresh fork pays again for every
        page of the shared interpreter it first writes to (copy-on-write: reference counts
        change as objects are used). The spare takes both ahead: it becomes what a worker is
        before its command (:func:`_ready`), parses a few command lines (what argparse touches
        for any command) unless a request is there already, then waits for a request handed
        over on its channel (:meth:`hand_over`). When the server goes, the spare reads end of
        file and exits.

        The server forks it once the command before has ended (its caller hung up, or its
        worker was reaped), or after a second with none: not beside a running command, whose
        worker, supervisor and PID 1 would share the CPUs with the fork and its warm-up.
        """
        if self.spare is not None or self.stopping:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return
        if pid == 0:
            code = 1
            try:
                ours.close()
                self.sock.close()
                self.changes.close()
                for pidfd, (_, other) in self.workers.items():
                    os.close(pidfd)
                    other.close()
                _name(SPARE_NAME)
                _ready()
                for argv in _WARM_ARGV:
                    if select.select([theirs], [], [], 0)[0]:
                        break  # a request (or the server's end) came: serve it now, warm or not
                    try:
                        self.parser.parse_args(argv)
                    except SystemExit:
                        pass
                if self.last_env is not None and not select.select([theirs], [], [], 0)[0]:
                    _build_ahead(self.last_env)
                request = _take_over(theirs)
                theirs.close()
                if request is not None:
                    fields, fds, conn = request
                    code = _work(fields, fds, self.parser, conn)
                else:
                    code = 0
            finally:
                os._exit(code)
        theirs.close()
        self.spare = (pid, ours)

    def hand_over(self, data: bytes, conn: socket.socket, fds: list[int]) -> int | None:
        """Give a request (its bytes, connection and descriptors) to the spare; its pid, or None without one."""
        if self.spare is None:
            return None
        pid, channel = self.spare
        self.spare = None
        try:
            socket.send_fds(channel, [b"%010d" % len(data)], [conn.fileno(), *fds])
            channel.sendall(data)
        except OSError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        finally:
            channel.close()
        return pid

    def drop_spare(self) -> None:
        if self.spare is not None:
            pid, channel = self.spare
            self.spare = None
            channel.close()  # it reads end of file and exits
            os.waitpid(pid, 0)

    def serve(self) -> None:
        last = time.monotonic()
        while True:
            if self.stopping and not self.workers:
                break
            if not self.workers and time.monotonic() - last > IDLE_SECONDS:
                break
            if self.sweeps and not self.workers and time.monotonic() - last > bridge_idle_seconds():
                self.sweep()
            waiting: list[Any] = [self.sock, *self.workers, *self.callers]
            ready = select.select(waiting, [], [], 1.0)[0]
            if not ready:
                self.fork_spare()  # a second without news: one is there for the next command, whatever runs
            for fd in ready:
                if fd is self.sock:
                    if not self.stopping:
                        self.accept()
                        last = time.monotonic()
                elif fd in self.workers:
                    self.reap(fd)
                elif fd in self.callers:
                    self.hung_up(fd)
            if self.stale():
                self.stopping = True
        self.close()

    def stale(self) -> bool:
        """Another server took the socket's name, or it was removed: this one should go."""
        try:
            return os.stat(self.path).st_ino != self.inode
        except FileNotFoundError:
            return True

    def close(self) -> None:
        if not self.stale():
            os.unlink(self.path)
        self.sock.close()
        self.changes.close()
        self.drop_spare()
        if self.sweeps:
            self.sweep()

    def sweep(self) -> None:
        """Take down the bridges the workers' containers left idle (a worker exits before its own timer).

        In a child, one environment at a time (it decides the state root and backend, as it did
        for the commands): this process keeps no engine, so every worker starts from a clean one.
        """
        envs = list(self.sweeps.values())
        self.sweeps.clear()
        pid = os.fork()
        if pid == 0:
            try:
                self.sock.close()

                for env in envs:
                    os.environ.clear()
                    os.environ.update(env)
                    try:
                        Engine(backend=os.environ.get("LABKIT_BACKEND") or "auto").network_prune()
                    except Exception:
                        pass  # that root's bridges stay for `labkit network prune`
            finally:
                os._exit(0)
        os.waitpid(pid, 0)

    def accept(self) -> None:
        conn, _ = self.sock.accept()
        try:
            request = _receive(conn)
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
            if request is None or uid != os.getuid():
                conn.close()
                return
            fields, fds, data = request
            if self.changes():  # labkit changed under us: the caller runs it afresh
                self.stopping = True
                conn.sendall(b"again\n")
                conn.close()
                for fd in fds:
                    os.close(fd)
                return
            pid = self.hand_over(data, conn, fds)
            if pid is None:
                pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    # Hold nothing of the other commands: a caller waits for its connection's end of
                    # file, which never comes while another process keeps a copy of it open.
                    self.sock.close()
                    self.changes.close()
                    for pidfd, (_, other) in self.workers.items():
                        os.close(pidfd)
                        other.close()
                    _ready()
                    code = _work(fields, fds, self.parser, conn)
                finally:
                    os._exit(code)
            for fd in fds:
                os.close(fd)
            self.remember(fields)
            pidfd = os.pidfd_open(pid)
            self.workers[pidfd] = (pid, conn)
            self.callers[conn.fileno()] = pidfd
        except Exception:  # a bad request or a failed fork: that caller runs its command itself
            conn.close()

    def remember(self, fields: list[str]) -> None:
        """Note a command's environment: the bridges of its state root are checked once things are idle."""
        _, _, _, count, *rest = fields
        env = dict(item.partition("=")[::2] for item in rest[int(count):] if "=" in item)
        key = tuple(env.get(k) for k in ("LABKIT_ROOT", "LABKIT_BACKEND", "HOME", "XDG_DATA_HOME"))
        self.sweeps[key] = env
        self.last_env = env

    def hung_up(self, fd: int) -> None:
        """The caller went (Ctrl-C ended the ``labkit`` command): interrupt its worker as Ctrl-C would.

        A caller also hangs up once it has its command's exit code; the worker ignores SIGINT from
        then on (:func:`_work`), so this interrupts only a command still running.

        A caller that speaks instead (the window-size news of a command attached to a container's
        terminal, :mod:`labkit.linux.console`) talks to its worker, which watches it from then on.
        """
        pidfd = self.callers.pop(fd)
        pid, conn = self.workers[pidfd]
        try:
            if conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                return
        except BlockingIOError:
            self.callers[fd] = pidfd  # woken for nothing: go on watching
            return
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        self.fork_spare()

    def reap(self, pidfd: int) -> None:
        pid, conn = self.workers.pop(pidfd)
        self.callers.pop(conn.fileno(), None)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        try:
            conn.sendall(f"exit {code if code >= 0 else 128 - code}\n".encode())
        except OSError:
            pass
        conn.close()
        self.fork_spare()


#: The process names (/proc/PID/comm) of a spare waiting for a command, and of a worker running one.
SPARE_NAME, WORKER_NAME = "labkit-spare", "labkit-worker"


def _name(name: str) -> None:
    """Name this process in ps and /proc/PID/comm (proc(5)), where the server and its forks would all be python."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name)
    except OSError:
        pass


#: Command lines a spare worker parses while it waits, so that argparse's pages are its own already.
_WARM_ARGV = (["ps"], ["rm", "x"], ["stop", "x"], ["run", "--rm", "busybox", "true"], ["exec", "x", "true"])


#: What decides which engine a command builds (its state root and backend, the shim it finds): a command whose
#: environment has the same values takes the engine a spare built ahead for them (:func:`_build_ahead`).
_ENGINE_ENV = ("LABKIT_ROOT", "LABKIT_BACKEND", "LABKIT_SHIM_DIR", "HOME", "XDG_DATA_HOME", "PATH")
#: The engine built ahead by this spare, and the values of :data:`_ENGINE_ENV` it was built under.
_ahead: tuple[tuple[str | None, ...], Any] | None = None


def _build_ahead(env: dict[str, str]) -> None:
    """In a spare, before its command comes: build the engine the last command built, for the next one.

    Commands come from one user and mostly from one shell, so the next one most likely names the
    same state root: the spare opens it (the store, the backend chosen, the cgroup layout read,
    each image's config parsed) while nobody waits, and :func:`_engine_factory` hands it over if
    the command's environment decides the same engine. Only a state root that exists is opened:
    a spare never makes one (a root removed since is not brought back), and anything that goes
    wrong leaves the command to build its own.
    """
    global _ahead
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)

        backend = env.get("LABKIT_BACKEND") or "auto"
        root = default_root(backend)
        if not os.path.isabs(root) or not os.path.isdir(os.path.join(root, "containers")):
            return  # a relative root is the command's directory's (this process is in /); a missing one stays so
        engine = labkit.connect(backend=backend)
        engine.backend.cgroup_version()  # the real backend reads its cgroup layout once, from /proc/self/mountinfo
        engine.images.store.parse_all()
        _ahead = (tuple(env.get(k) for k in _ENGINE_ENV), engine)
    except Exception:
        _ahead = None
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _engine_factory(backend: str = "auto", root: str | None = None) -> Any:
    """The command's engine: the one built ahead if the command's options and environment decide the same one
    (:func:`_build_ahead`), else a new one, as :func:`labkit.cli.session.default_engine_factory` builds it."""
    global _ahead
    ahead, _ahead = _ahead, None
    if (ahead is not None and root == os.environ.get("LABKIT_ROOT") and backend == (os.environ.get("LABKIT_BACKEND")
                                                                                  or "auto")
            and ahead[0] == tuple(os.environ.get(k) for k in _ENGINE_ENV)):
        return ahead[1]

    return labkit.connect(backend=backend, root=root)


def _take_over(channel: socket.socket) -> tuple[list[str], list[int], socket.socket] | None:
    """The spare's side of :meth:`Server.hand_over`: the request's fields, its three descriptors and its
    connection; None when the server went without handing one over."""
    try:
        head, fds, _, _ = socket.recv_fds(channel, 10, 4)
    except OSError:
        return None
    if len(fds) != 4:  # end of file: the server went
        for fd in fds:
            os.close(fd)
        return None
    head = _recv_up_to(channel, 10, head)
    size = int(head) if head.isdigit() else 0
    data = _recv_up_to(channel, size)
    if not size or len(data) != size:  # cut short: the server gave up on this spare and runs the command itself
        for fd in fds:
            os.close(fd)
        return None
    conn = socket.socket(fileno=fds[0])
    return data.decode("utf-8", "surrogateescape").split("\0"), fds[1:], conn


def _recv_up_to(sock: socket.socket, size: int, data: bytes = b"") -> bytes:
    """``data`` and what follows it on ``sock``, until ``size`` bytes or end of file (then fewer)."""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _receive(conn: socket.socket) -> tuple[list[str], list[int], bytes] | None:
    """One request: its fields, the three descriptors that came with it, and its bytes."""
    fds: list[int] = []
    data = b""
    while len(data) < 10:
        chunk, ancillary, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(3 * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += list(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
        if not chunk:
            break
        data += chunk
    if len(data) < 10 or not data[:10].isdigit() or int(data[:10]) > _MAX_REQUEST:
        for fd in fds:
            os.close(fd)
        return None
    size = int(data[:10])
    data = _recv_up_to(conn, size, data[10:])
    fields = data.decode("utf-8", "surrogateescape").split("\0")
    if len(fds) != 3 or len(data) != size or fields[0] != "1":
        for fd in fds:
            os.close(fd)
        return None
    return fields, fds, data


def _ready() -> None:
    """What a worker is before it knows its command (a spare does this ahead, off the command's path).

    Its own session, so that the server's signals are not its; the signal dispositions of a
    fresh interpreter; and its environment set once already, back to what it was: the first
    setenv(3)s in a fork write to (and so copy) the C library's and the interpreter's pages,
    which the caller's environment would otherwise pay for (about a millisecond).
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(saved)


def _work(fields: list[str], fds: list[int], parser: Any, conn: socket.socket) -> int:
    """The worker (after :func:`_ready`): become the caller's command (descriptors, environment,
    directory), then run it."""
    # The command line is loaded by _warm(), once main() has re-executed this process with a clean
    # environment: at the top of this module it would load twice on a cold start
    from labkit import cli

    # Kernel code the resident engine loads for the one command that needs it, off every command's start path
    from labkit.linux import console

    gc.disable()  # a short-lived process: collecting would only touch (and copy) shared pages
    _name(WORKER_NAME)
    conn.sendall(b"started\n")  # from here on the command may have done something: never run it twice
    console.caller = conn  # a command attached to a container's terminal hears of window sizes through it
    _, cwd, umask, count, *rest = fields
    argv, env = rest[: int(count)], rest[int(count):]
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(item.partition("=")[::2] for item in env if "=" in item)
    os.umask(int(umask, 8))
    try:
        os.chdir(cwd)
    except OSError as err:
        os.write(2, f"labkit: cannot enter the working directory {cwd}: {err.strerror}.\n".encode())
        return 1

    def stream(fd: int, mode: str) -> io.TextIOWrapper:
        raw = io.open(fd, mode + "b", closefd=False)  # noqa: UP020  (buffered binary under the text layer)
        return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace" if fd == 2 else "strict",
                                line_buffering=os.isatty(fd))

    sys.stdin, sys.stdout, sys.stderr = stream(0, "r"), stream(1, "w"), stream(2, "w")
    sys.argv = [cli.PROG, *argv]
    try:
        code = cli.main(argv, parser=parser, engine_factory=_engine_factory)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except KeyboardInterrupt:
        code = 130
    for out in (sys.stdout, sys.stderr):
        try:
            out.flush()
        except OSError:
            pass
    # The caller has its answer now; what is left (deleting a removed container's files,
    # labkit.store.discard) goes on without its terminal or pipes, and without SIGINT: a caller
    # hangs up once it has read the exit below, and the server then interrupts its worker
    # (Server.hung_up) — the Ctrl-C of a command that has already ended, which would only cut
    # that deletion short (and leave its trash to the next command's engine).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        conn.sendall(f"exit {code}\n".encode())
    except OSError:
        pass
    conn.close()

    store.drain()
    return code


def start(directory: str) -> int:
    """Run a server on ``directory`` unless one runs already; returns 0, or 1 if it could not start."""
    try:
        _private_dir(directory)
    except OSError:
        return 1
    lock = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another server holds it
    with open(os.path.join(directory, PIDFILE), "w") as f:
        f.write(str(os.getpid()))
    server = Server(directory)
    try:
        server.serve()
    finally:
        os.unlink(os.path.join(directory, PIDFILE))
    return 0


def main(argv: list[str]) -> int:
    """``python -m labkit.daemon.server DIR``: detach from the caller and serve until idle."""
    if len(argv) != 1:
        print(f"usage: python -m {SERVER_MODULE} SOCKET_DIR", file=sys.stderr)
        return 2

    clean = helpers.environ()
    if dict(os.environ) != clean:
        # The first command's environment started this process; the server outlives that command and
        # forks every later one, so it runs with the helpers' environment instead (what a worker needs
        # of its caller's, it gets with the request). An LD_PRELOAD the caller had is left behind here.
        os.execve(sys.executable, helpers.python(SERVER_MODULE, *argv), clean)
    if os.fork() > 0:
        return 0  # the caller goes on at once
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.chdir("/")
    return start(argv[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
