"""State on disk: one root, atomic writes, readable by any process of its owner and by nobody else.

Layout under the state root (``/var/lib/labkit`` as root; ``$LABKIT_ROOT`` or
``Engine(root=...)`` to move it)::

    containers/<id>/config.json     the ContainerRecord (written whole, atomically)
    containers/<id>/config.json.previous   the record before the last change (see install)
    containers/<id>/json.log        stdout/stderr in Docker's json-file format
    containers/<id>/exit.json       written by the supervisor when PID 1 ends
    containers/<id>/hostname|hosts|resolv.conf
    containers/<id>/intent          the verb a process is carrying out on the container, flock(2)ed by it
    overlay/<id>/{diff,work,merged} the writable layer (diff is UpperDir)
    overlay/<id>-init/diff          placeholders for the per-container /etc files
    tmp/spare-init-<n>              a removed container's init layer, kept for the next one
    volumes/<name>/_data            a named volume's data, and volumes/<name>/meta.json
    images/                         the image store (labkit.images)
    lock                            flock(2) taken while names and ids change

The root is 0710 root:root as root (Docker's ``/var/lib/docker`` is), 0700 for a
user (rootless); each container's, layer's and volume's directory is 0700 and
each record, log and image config 0600, so another user of the machine can
neither read a container's ``-e SECRET=…`` nor reach its writable layer — where
a container may have left a set-user-ID-root program — through the host's paths
(:func:`make_private`, which also tightens a root an earlier labkit left open).

Every file is written as ``tmp`` then put in place by ``rename(2)`` (or, over an
old file, by swapping the two names, :func:`install`), which the kernel makes
atomic: a reader sees the old file or the new one, never half of one. A killed
process leaves at worst a ``*.tmp`` file that nothing reads.

Trees that go (a removed container's directory and layers) are renamed into
``tmp/trash-*`` at once — from then on nothing finds them — and deleted by a
background thread (:func:`discard`): ``rm`` does not wait for a dozen rmdir(2)s.
An interpreter waits for those deletions when it exits (``atexit``); trash a
killed process left is taken by the next :class:`Store` opened on the root.

A verb that changes the kernel's side of a container in several steps (``start``,
``rm``, the restart policy) holds an *intent*: ``containers/<id>/intent`` names
the verb and its writer holds an flock(2) on it. The kernel drops that lock when
its holder dies, kill -9 included, so an intent whose lock is free was left by a
process killed half-way (:meth:`Store.abandoned`), and the next process to read
the container finishes or undoes that verb's work.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import json
import os
import queue
import secrets
import shutil
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from labkit.errors import InvalidArgument
from labkit.model.container import ContainerRecord


def write_json(path: str | Path, data: Any, previous: str | Path | None = None,
               dispose: Callable[[Path], object] | None = None) -> None:
    """Write ``data`` as JSON to ``path`` atomically (tmp file + rename), readable by its owner alone (0600).

    The temporary file is made anew (``O_EXCL``) with mode 0600, so the data is
    never, even for a moment, in a file others may read (a record holds the
    container's environment, ``-e SECRET=…``): a file left by a killed process
    of the same PID, whatever its mode, is removed first, not reused — a
    reader that opened it before would read through that descriptor what is
    written into it now.

    It takes the place of the file before it as :func:`install` says; with ``previous``, what
    ``path`` held is kept there (the last good copy, for :func:`read_json_or`); ``dispose`` takes
    the file that goes (default: unlink(2) it now).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # One line, from the C encoder (an indented dump takes Python's, several times slower);
    # `labkit inspect` is the readable view.
    text = json.dumps(data).encode()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(tmp, flags, PRIVATE_FILE)
    except FileExistsError:
        os.unlink(tmp)
        fd = os.open(tmp, flags, PRIVATE_FILE)
    with open(fd, "wb") as f:
        f.write(text)
    install(tmp, path, previous, dispose)


def install(tmp: Path, path: Path, previous: str | Path | None = None,
            dispose: Callable[[Path], object] | None = None) -> None:
    """Put the new file ``tmp`` at ``path`` atomically: a reader opens the old file or the new one, whole.

    Not by rename(2) over the old file: ext4 answers a rename over a file by writing the new
    one's data out at once (its ``auto_da_alloc`` safeguard for power loss, ext4(5)), which on a
    busy disk takes milliseconds to tens of them, every time a record changes. The two files
    swap names instead (renameat2(2), ``RENAME_EXCHANGE``), which is as atomic for a reader and
    leaves the writing out to the kernel's usual writeback; then the old file, now at the
    temporary name, goes (``dispose``, else unlink(2) now) — or with ``previous`` is kept there,
    in place of the one before it, swapped the same way, and that one goes. Where the swap
    cannot be had (no such call in the C library, a filesystem without it) or ``path`` does
    not exist yet, a plain rename(2) does it.
    """
    if not _exchange(tmp, path):
        os.replace(tmp, path)
        return
    if previous is not None and not _exchange(tmp, Path(previous)):
        os.replace(tmp, previous)  # the first one kept: nothing there to write out first
        return
    if dispose is None:
        os.unlink(tmp)
    else:
        dispose(tmp)


_RENAME_EXCHANGE = 2  # linux/fs.h
_renameat2: Any = None  # the C library's renameat2(2), bound on first use; False where there is none


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` (renameat2(2), RENAME_EXCHANGE); False if ``b`` does not exist or the swap cannot
    be had here. Raises FileNotFoundError if ``a`` is gone (its directory was renamed away)."""
    global _renameat2
    if _renameat2 is None:
        try:
            import ctypes  # noqa: PLC0415  (only once a file is replaced: the simulator on macOS never needs it)

            _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
            _renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
            _renameat2.restype = ctypes.c_int
            _renameat2.get_errno = ctypes.get_errno
        except (OSError, AttributeError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    at_cwd = -100  # AT_FDCWD
    if _renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = _renameat2.get_errno()
    if err == errno.ENOENT:
        if not os.path.lexists(a):
            raise FileNotFoundError(err, os.strerror(err), str(a))
        return False
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def read_json(path: str | Path) -> Any | None:
    """Read a JSON file, or ``None`` if it does not exist (or is being replaced)."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def read_json_or(path: str | Path, previous: str | Path) -> Any | None:
    """:func:`read_json` of ``path``, or of the copy :func:`write_json` kept at ``previous`` if ``path`` holds no
    JSON: what a power cut can leave of a file replaced without its data written out yet (see :func:`install`)."""
    try:
        return read_json(path)
    except ValueError:
        return read_json(previous)


def delete_tree(path: str | Path) -> None:
    """Delete the tree ``path`` as :func:`shutil.rmtree` does, also through directories its owner cannot enter.

    overlayfs makes the ``work`` directory inside a layer's work directory with mode 0
    (fs/overlayfs/super.c, ``ovl_workdir_create``) and leaves it there after the unmount.
    Root passes it anyway (CAP_DAC_OVERRIDE, capabilities(7)); any other user cannot
    open it (path_resolution(7)), so rmtree would leave it and every directory above it.
    Its owner may chmod(2) it, so a directory (or its parent) the user owns gets read,
    write and search for its owner, and is deleted again.
    """
    def unlock(_func: Any, name: str, _exc: Any) -> None:
        changed = False
        for d in (os.path.dirname(name), name):
            with contextlib.suppress(OSError):
                st = os.lstat(d)
                if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o700 != 0o700:
                    os.chmod(d, stat.S_IMODE(st.st_mode) | 0o700)
                    changed = True
        if not changed:
            return  # not a question of permissions: the error stands (ignored, as rmtree's ignore_errors)
        with contextlib.suppress(OSError):
            if os.path.isdir(name) and not os.path.islink(name):
                rmtree(name)
            else:
                os.unlink(name)

    def rmtree(top: str | Path) -> None:
        if sys.version_info >= (3, 12):  # onerror is deprecated there; onexc gets the same call
            shutil.rmtree(top, onexc=unlock)
        else:
            shutil.rmtree(top, onerror=unlock)

    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):  # a single file discarded (a replaced record, see install)
            os.unlink(path)
            return
    except FileNotFoundError:
        return
    rmtree(path)


class _Reaper:
    """One daemon thread that deletes discarded trees, in the order they came, while no verb runs.

    The thread shares the interpreter's lock with the verbs: deleting while a verb runs would
    make the verb wait for it, and on a busy machine the thread may be descheduled while it
    holds that lock. So it waits until this process is between verbs (:meth:`busy` marks a
    verb), or at most :data:`PATIENCE` seconds: a loop of verbs never pauses, and its trash
    must not pile up.
    """

    #: The longest a discarded tree waits for the verbs to pause (seconds).
    PATIENCE = 1.0

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[Path, Callable[[Path], object]]] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.verbs = 0  # verbs running in this process now
        self.idle = threading.Condition()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Mark a verb as running for as long as the block runs (see the class docstring)."""
        with self.idle:
            self.verbs += 1
        try:
            yield
        finally:
            with self.idle:
                self.verbs -= 1
                if not self.verbs:
                    self.idle.notify_all()

    def put(self, path: Path, delete: Callable[[Path], object] = delete_tree) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="labkit-reaper", daemon=True)
                self.thread.start()
        self.queue.put((path, delete))

    def run(self) -> None:
        while True:
            path, delete = self.queue.get()
            try:
                with self.idle:
                    self.idle.wait_for(lambda: not self.verbs, timeout=self.PATIENCE)
                delete(path)
            except Exception:  # noqa: S110 - what could not go stays in tmp/trash-*: the next Store takes it up
                pass
            finally:
                self.queue.task_done()

    def drain(self) -> None:
        """Wait until everything discarded so far is deleted."""
        if self.thread is not None and self.thread.is_alive():
            self.queue.join()


_reaper = _Reaper()
atexit.register(_reaper.drain)
drain = _reaper.drain
busy = _reaper.busy
TRASH = "trash-"
INTENT = "intent"


def discard(path: Path, tmp: Path, delete: Callable[[Path], object] = delete_tree) -> bool:
    """Take the tree ``path`` away now (a rename into ``tmp``) and delete it in the background with ``delete``
    (:func:`delete_tree`, or one that also deletes what only a user namespace may, for a rootless layer).

    Returns False if there was nothing at ``path``.
    """
    trash = tmp / f"{TRASH}{secrets.token_hex(8)}"
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return False
    _reaper.put(trash, delete)
    return True


#: The record before its last change, beside ``config.json`` (:meth:`Store.save`).
PREVIOUS_RECORD = "config.json.previous"
#: A directory no other user may list or enter: each container's, layer's, volume's and image's.
PRIVATE_DIR = 0o700
#: A file no other user may read: records (they hold the environment), logs, image configs.
PRIVATE_FILE = 0o600
SUBDIRS = ("containers", "overlay", "volumes", "images", "tmp", "networks", "services")
#: Everything labkit makes at the top of a state root: the subdirectories, the compiled supervisor (``bin``),
#: the compiled seccomp filters, the simulator's world (``sim``, inside a user's real root), the lock, the
#: names and the events journal (:mod:`labkit.journal`). A reset removes these and nothing else.
TOP_LEVEL = (*SUBDIRS, "bin", "seccomp", "sim", "lock", "names.json", "events.log")


def root_mode(euid: int | None = None) -> int:
    """The state root's mode: 0710 as root (owner root:root, as Docker's ``/var/lib/docker``), else 0700.

    Only root (and the root group) may enter root's state root, so no other user
    can reach a container's writable layer through the host's paths: a
    set-user-ID-root program a container wrote there would otherwise run as root
    for anyone who finds it (path_resolution(7): search permission on every
    directory on the way). A user's own root (rootless) is that user's alone.
    """
    return 0o710 if (os.geteuid() if euid is None else euid) == 0 else PRIVATE_DIR


def make_private(root: Path) -> None:
    """Give the state root its group and :func:`root_mode`, and tighten what an earlier labkit left open in it.

    Called on every open: when the root's mode is already right, that is one
    stat(2). Otherwise (a root made by an older labkit, 0755, its records 0644)
    every container's, layer's, volume's and image's directory becomes
    :data:`PRIVATE_DIR` and every record, log and image config :data:`PRIVATE_FILE`.

    Raises:
        PermissionError: The root belongs to another user. What is in a state root decides what runs
            as its user (the supervisor it holds, the layers): a root another user made — one that
            ``LABKIT_ROOT`` names in an environment ``su`` kept, say — is refused, not taken over.
    """
    mode = root_mode()
    st = os.stat(root)
    if st.st_uid != os.geteuid():
        raise PermissionError(errno.EPERM, f"it belongs to uid {st.st_uid}")
    if os.geteuid() == 0 and st.st_gid != 0:
        os.chown(root, 0, 0)  # root:root, as Docker's data root: 0710 lets the root group through, nobody else
    if stat.S_IMODE(st.st_mode) == mode:
        return
    for sub in SUBDIRS:
        path = root / sub
        if path.is_dir() and not path.is_symlink():
            os.chmod(path, PRIVATE_DIR)
    for entries in (root / "containers", root / "overlay", root / "volumes", root / "images" / "layers"):
        for entry in _entries(entries):
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, PRIVATE_DIR)
    for directory in (root, root / "networks", root / "services", root / "images", root / "images" / "images",
                      *(Path(e.path) for sub in ("containers", "volumes") for e in _entries(root / sub)
                        if e.is_dir(follow_symlinks=False))):
        for entry in _entries(directory):
            if entry.is_file(follow_symlinks=False) and entry.name.endswith((".json", ".log")):
                os.chmod(entry.path, PRIVATE_FILE)
    os.chmod(root, mode)  # last: a tightening cut short is taken up again on the next open


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


class Store:
    """The state root and the records in it (private: see :func:`root_mode` and :func:`make_private`)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._paths: dict[tuple[str, str], Path] = {}
        self._held: set[str] = set()  # containers this process holds an intent on
        self._locking = threading.local()  # how deep this thread is in locked()
        self.root.mkdir(mode=root_mode(), parents=True, exist_ok=True)
        try:
            make_private(self.root)
        except PermissionError as err:  # only a user's own directory can be made private to that user
            raise InvalidArgument(
                f"the state root {self.root} is not this user's ({err.strerror}): labkit keeps its state where "
                "only its own user can reach or change it", "Give --root (or LABKIT_ROOT) a directory of your own, "
                "or chown it to yourself first") from None
        for sub in ("containers", "overlay", "volumes", "images", "tmp"):
            (self.root / sub).mkdir(mode=PRIVATE_DIR, exist_ok=True)
        for name in os.listdir(self.root / "tmp"):  # left by a process that died before deleting it
            if name.startswith(TRASH):
                _reaper.put(self.root / "tmp" / name)

    def discard(self, path: Path, delete: Callable[[Path], object] = delete_tree) -> bool:
        """:func:`discard` a tree under this root."""
        return discard(path, self.root / "tmp", delete)

    # -- paths ---------------------------------------------------------------
    # A verb asks for the same few paths dozens of times, and each pathlib join parses its parts
    # again: the paths of recent containers are kept (they never change for an id).
    def _path(self, kind: str, cid: str) -> Path:
        key = (kind, cid)
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) > 4096:
                self._paths.clear()
            sub, name = ("containers", cid) if kind == "c" else ("overlay", cid if kind == "l" else f"{cid}-init")
            path = self._paths[key] = self.root / sub / name
        return path

    def container_dir(self, cid: str) -> Path:
        return self._path("c", cid)

    def layer_dir(self, cid: str) -> Path:
        return self._path("l", cid)

    def init_dir(self, cid: str) -> Path:
        return self._path("i", cid)

    def volume_dir(self, name: str) -> Path:
        return self.root / "volumes" / name

    @property
    def images_root(self) -> Path:
        return self.root / "images"

    # -- locking ---------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock (flock(2)): one process at a time changes names and ids.

        Re-entrant within a thread: a flock(2) lock belongs to an open file, so a second open
        of the lock file by a thread already holding it would wait for itself forever (a
        sweep run under the lock, such as ``network_prune``' reading of the records).
        """
        depth = getattr(self._locking, "depth", 0)
        if depth:
            self._locking.depth = depth + 1
            try:
                yield
            finally:
                self._locking.depth = depth
            return
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._locking.depth = 1
            yield
        finally:
            self._locking.depth = 0
            os.close(fd)

    # -- intents ---------------------------------------------------------------
    @contextlib.contextmanager
    def intent(self, cid: str, verb: str) -> Iterator[None]:
        """Mark ``verb`` as under way on container ``cid`` for as long as the block runs.

        The file appears already locked (written and flock(2)ed under a temporary name,
        then linked into place), so no reader ever sees it unlocked while its writer
        lives. A block that ends with an error (Ctrl-C included) leaves the intent, as a
        killed process would: what it made is found and undone by the next reader. Nested
        intents on one container within a process are one intent. A container without a
        directory (removed meanwhile) gets none.
        """
        if cid in self._held:
            yield
            return
        path = self.container_dir(cid) / INTENT
        tmp = self.root / "tmp" / f"{INTENT}-{cid}-{os.getpid()}-{threading.get_native_id()}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        finish = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, verb.encode())
            try:
                os.replace(tmp, path)
            except FileNotFoundError:
                os.unlink(tmp)
            self._held.add(cid)
            try:
                yield
            except BaseException:
                finish = False  # left as if killed: the next reader checks that nothing is half done
                raise
        finally:
            self._held.discard(cid)
            with contextlib.suppress(FileNotFoundError):
                if finish and os.fstat(fd).st_nlink:  # still ours (a removed container's went with its directory)
                    os.unlink(path)
            os.close(fd)

    @contextlib.contextmanager
    def abandoned(self, cid: str) -> Iterator[str | None]:
        """The verb a killed process left half done on ``cid``, or None; held by the caller within the block.

        Within the block the caller finishes or undoes that verb's work; the intent goes
        when the block ends. None when there is no intent, or when its process still runs
        (it holds the lock), or when it is this process's own.
        """
        path = self.container_dir(cid) / INTENT
        if cid in self._held:
            yield None
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield None
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None  # its process is at work on it
                return
            if not os.fstat(fd).st_nlink:
                yield None  # finished between our open and our lock
                return
            verb = os.read(fd, 64).decode(errors="replace") or "?"
            self._held.add(cid)
            try:
                yield verb
            finally:
                self._held.discard(cid)
            with contextlib.suppress(FileNotFoundError):
                if os.fstat(fd).st_nlink:
                    os.unlink(path)
        finally:
            os.close(fd)

    def stray_intents(self) -> list[Path]:
        """Intents a killed process left under their temporary name (``tmp/intent-<id>-<pid>-<tid>``),
        before linking them into place: those whose process is gone."""
        found = []
        for name in os.listdir(self.root / "tmp"):
            parts = name.split("-")
            if parts[0] != INTENT or len(parts) != 4 or not parts[2].isdigit():
                continue
            try:
                os.kill(int(parts[2]), 0)
            except ProcessLookupError:
                found.append(self.root / "tmp" / name)
            except PermissionError:
                pass  # alive, another user's
        return found

    # -- containers ----------------------------------------------------------
    def container_ids(self) -> list[str]:
        """Every container that has a record (half-made ones have none and are skipped)."""
        base = self.root / "containers"
        return sorted(d for d in os.listdir(base) if not d.startswith(".") and (base / d / "config.json").exists())

    def load(self, cid: str) -> ContainerRecord | None:
        cdir = self.container_dir(cid)
        data = read_json_or(cdir / "config.json", cdir / PREVIOUS_RECORD)
        return ContainerRecord.from_json(data) if data else None

    def create(self, record: ContainerRecord) -> None:
        """Write a new container's record: its directory appears whole, by rename."""
        final = self.container_dir(record.id)
        tmp = self.root / "tmp" / f"c-{record.id}"
        tmp.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        write_json(tmp / "config.json", record.to_json())
        os.replace(tmp, final)

    def save(self, record: ContainerRecord) -> bool:
        """Update an existing container's record; False (nothing written) if it was removed meanwhile.

        Never makes the directory: a process that read a record before another
        removed the container must not bring it back by saving it. ``rm`` renames
        the directory away first (:meth:`delete`), so the write below fails with
        ENOENT once it is gone, at whatever moment that happened.
        """
        cdir = self.container_dir(record.id)
        try:
            # The record before the previous one is deleted in the background: freeing blocks ext4 has
            # written out costs a discard request to the disk with its `discard` option and no journal.
            write_json(cdir / "config.json", record.to_json(), cdir / PREVIOUS_RECORD, self.discard)
        except FileNotFoundError:
            return False
        return True

    def delete(self, cid: str) -> None:
        """Remove a container's directory: renamed away at once, its files deleted in the background."""
        self.discard(self.container_dir(cid))

    # -- names ---------------------------------------------------------------------------------
    def names(self) -> dict[str, str]:
        """Every container name and its id, from ``names.json`` (rebuilt from the records if missing).

        A name is claimed here before its container's record is written, so a process
        killed in between leaves a name pointing at no container: such a name is free.
        ``rm`` leaves its name in the file for the same reason: the name of a container that
        is gone is free, and the next :meth:`set_name` writes the file without it (one
        rewrite per container instead of two: replacing a file makes ext4 start writing
        its data out at once, its ``auto_da_alloc`` safeguard).
        Reading one small file keeps ``create`` and name lookups fast with many containers.
        """
        try:
            index = read_json(self.root / "names.json")
        except ValueError:  # what a power cut can leave (see install): the records say the same
            index = None
        if index is None:
            index = {}
            for cid in self.container_ids():
                rec = self.load(cid)
                if rec is not None:
                    index[rec.name] = cid
            write_json(self.root / "names.json", index)
        return {name: cid for name, cid in index.items() if self.container_dir(cid).exists()
                or (self.root / "tmp" / f"c-{cid}").exists()}

    def set_name(self, name: str, cid: str, names: dict[str, str] | None = None) -> None:
        """Record ``name`` as ``cid``'s (call with :meth:`locked` held; ``names``: :meth:`names` read under it)."""
        index = dict(self.names() if names is None else names)
        index[name] = cid
        write_json(self.root / "names.json", index, dispose=self.discard)

