"""State on disk: one root, atomic writes, readable by any process.

Layout under the state root (``/var/lib/labkit`` as root; ``$LABKIT_ROOT`` or
``Engine(root=...)`` to move it)::

    containers/<id>/config.json     the ContainerRecord (written whole, atomically)
    containers/<id>/json.log        stdout/stderr in Docker's json-file format
    containers/<id>/exit.json       written by the supervisor when PID 1 ends
    containers/<id>/hostname|hosts|resolv.conf
    containers/<id>/intent          the verb a process is carrying out on the container, flock(2)ed by it
    overlay/<id>/{diff,work,merged} the writable layer (diff is UpperDir)
    overlay/<id>-init/diff          placeholders for the per-container /etc files
    volumes/<name>/_data            a named volume's data, and volumes/<name>/meta.json
    images/                         the image store (labkit.images)
    lock                            flock(2) taken while names and ids change

Every file is written as ``tmp`` then ``rename(2)``, which POSIX makes atomic:
a reader sees the old file or the new one, never half of one. A killed
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
import fcntl
import json
import os
import queue
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labkit.model.container import ContainerRecord


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (tmp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # One line, from the C encoder (an indented dump takes Python's, several times slower);
    # `labkit inspect` is the readable view.
    text = json.dumps(data)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any | None:
    """Read a JSON file, or ``None`` if it does not exist (or is being replaced)."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


class _Reaper:
    """One daemon thread that deletes discarded trees, in the order they came."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Path] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def put(self, path: Path) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="labkit-reaper", daemon=True)
                self.thread.start()
        self.queue.put(path)

    def run(self) -> None:
        while True:
            path = self.queue.get()
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                self.queue.task_done()

    def drain(self) -> None:
        """Wait until everything discarded so far is deleted."""
        if self.thread is not None and self.thread.is_alive():
            self.queue.join()


_reaper = _Reaper()
atexit.register(_reaper.drain)
drain = _reaper.drain
TRASH = "trash-"
INTENT = "intent"


def discard(path: Path, tmp: Path) -> bool:
    """Take the tree ``path`` away now (a rename into ``tmp``) and delete it in the background.

    Returns False if there was nothing at ``path``.
    """
    trash = tmp / f"{TRASH}{secrets.token_hex(8)}"
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return False
    _reaper.put(trash)
    return True


class Store:
    """The state root and the records in it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._held: set[str] = set()  # containers this process holds an intent on
        self._locking = threading.local()  # how deep this thread is in locked()
        for sub in ("containers", "overlay", "volumes", "images", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for name in os.listdir(self.root / "tmp"):  # left by a process that died before deleting it
            if name.startswith(TRASH):
                _reaper.put(self.root / "tmp" / name)

    def discard(self, path: Path) -> bool:
        """:func:`discard` a tree under this root."""
        return discard(path, self.root / "tmp")

    # -- paths ---------------------------------------------------------------
    def container_dir(self, cid: str) -> Path:
        return self.root / "containers" / cid

    def layer_dir(self, cid: str) -> Path:
        return self.root / "overlay" / cid

    def init_dir(self, cid: str) -> Path:
        return self.root / "overlay" / f"{cid}-init"

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
        sweep run under the lock, such as ``prune_networks``' reading of the records).
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
        tmp = self.root / "tmp" / f"intent-{cid}-{os.getpid()}"
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

    @staticmethod
    def unlocked(path: Path) -> bool:
        """Whether no process holds an flock(2) on ``path`` (an intent left by a killed process)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    # -- containers ----------------------------------------------------------
    def container_ids(self) -> list[str]:
        """Every container that has a record (half-made ones have none and are skipped)."""
        base = self.root / "containers"
        return sorted(d for d in os.listdir(base) if not d.startswith(".") and (base / d / "config.json").exists())

    def load(self, cid: str) -> ContainerRecord | None:
        data = read_json(self.container_dir(cid) / "config.json")
        return ContainerRecord.from_json(data) if data else None

    def create(self, record: ContainerRecord) -> None:
        """Write a new container's record: its directory appears whole, by rename."""
        final = self.container_dir(record.id)
        tmp = self.root / "tmp" / f"c-{record.id}"
        tmp.mkdir(parents=True, exist_ok=True)
        write_json(tmp / "config.json", record.to_json())
        os.replace(tmp, final)

    def save(self, record: ContainerRecord) -> bool:
        """Update an existing container's record; False (nothing written) if it was removed meanwhile.

        Never makes the directory: a process that read a record before another
        removed the container must not bring it back by saving it. ``rm`` renames
        the directory away first (:meth:`delete`), so the write below fails with
        ENOENT once it is gone, at whatever moment that happened.
        """
        try:
            write_json(self.container_dir(record.id) / "config.json", record.to_json())
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
        Reading one small file keeps ``create`` and name lookups fast with many containers.
        """
        index = read_json(self.root / "names.json")
        if index is None:
            index = {}
            for cid in self.container_ids():
                rec = self.load(cid)
                if rec is not None:
                    index[rec.name] = cid
            write_json(self.root / "names.json", index)
        return {name: cid for name, cid in index.items() if self.container_dir(cid).exists()
                or (self.root / "tmp" / f"c-{cid}").exists()}

    def set_name(self, name: str, cid: str) -> None:
        """Record ``name`` as ``cid``'s (call with :meth:`locked` held)."""
        index = self.names()
        index[name] = cid
        write_json(self.root / "names.json", index)

    def drop_name(self, name: str, cid: str) -> None:
        """Forget ``name`` if it is still ``cid``'s (call with :meth:`locked` held)."""
        index = self.names()
        if index.get(name) == cid:
            del index[name]
            write_json(self.root / "names.json", index)
