"""The cgroup filesystem as labkit uses it: its file operations, and one group's interface files.

:class:`Cgroupfs` is every read, write, mkdir and rmdir labkit does on a cgroup
filesystem (cgroups(7)); a test may replace it with one that lays out a
temporary directory the way the kernel does on ``mkdir``. :class:`GroupFiles`
is one group's directories across the hierarchies it joins and the paths of
its interface files there; the rooms that write those files build on it:
:class:`labkit.linux.freezer.CgroupFreezer` (``freezer.state``,
``cgroup.freeze``) and :class:`labkit.linux.cgroups.Cgroup` (the limits, the
accounting, the processes).
"""

from __future__ import annotations

import errno
import os

from labkit.errors import HostUnsupported, InvalidArgument
from labkit.linux.hierarchies import Layout

#: How often a wait on a group polls (a freeze to complete, a group to empty; Docker polls every 10 ms).
POLL = 0.01


def _gone(err: OSError, path: str) -> OSError:
    """A file of a removed group answers ENODEV once its node is deactivated (kernfs): that means what
    ENOENT means, the group is gone, and callers that expect a group to vanish catch FileNotFoundError."""
    if err.errno == errno.ENODEV:
        return FileNotFoundError(errno.ENOENT, f"{os.strerror(errno.ENODEV)} (the group was removed)", path)
    return err


class Cgroupfs:
    """The file operations this module does on a cgroup filesystem.

    cgroupfs files already exist (``mkdir`` makes them), so :meth:`write` never
    creates one: writing a file that is missing fails with ENOENT, as on the
    kernel. A test may pass a subclass whose :meth:`mkdir` lays out those files
    in a temporary directory the way the kernel would.
    """

    def mkdir(self, path: str) -> None:
        """Make one group directory."""
        os.mkdir(path, 0o755)

    def rmdir(self, path: str) -> None:
        """Remove one group directory (fails with EBUSY while it has processes or children)."""
        os.rmdir(path)

    def read(self, path: str) -> str:
        """The whole content of an interface file.

        Raises:
            FileNotFoundError: The group is gone, also when it went between open(2) and read(2).
        """
        try:
            with open(path) as f:
                return f.read()
        except OSError as err:
            raise _gone(err, path) from None

    def write(self, path: str, text: str) -> None:
        """Write ``text`` in one write(2), as cgroupfs expects.

        Raises:
            FileNotFoundError: The group is gone, also when it went between open(2) and write(2).
        """
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # as a shell `>` does; cgroupfs ignores the truncation
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        except OSError as err:
            raise _gone(err, path) from None

    def write_each(self, path: str, texts: list[str]) -> None:
        """Write each of ``texts`` in a write(2) of its own, all on one open file (a rule per write, as
        ``devices.allow`` reads them).

        Raises:
            FileNotFoundError: The group is gone, also when it went between open(2) and a write(2).
        """
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            try:
                for text in texts:
                    os.write(fd, text.encode())
            finally:
                os.close(fd)
        except OSError as err:
            raise _gone(err, path) from None

    def exists(self, path: str) -> bool:
        """Whether an interface file or group directory exists."""
        return os.path.exists(path)

    def listdir(self, path: str) -> list[str]:
        """The child groups of a group directory."""
        return [e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]


def check_name(what: str, value: str, allow_slash: bool) -> None:
    parts = value.split("/") if allow_slash else [value]
    if not value or any(p in ("", ".", "..") or (not allow_slash and "/" in p) for p in parts):
        raise InvalidArgument(
            f'invalid cgroup {what} "{value}": it must be a relative directory name without "." or ".." parts',
            "Use a name such as a container id.",
        )


def keyed(text: str) -> dict[str, int]:
    """Parse ``key value`` lines (memory.events, memory.oom_control, cgroup.events, cpu.stat)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


class GroupFiles:
    """One group's directories, one per hierarchy it joins (``<hierarchy>/<parent>/<name>``), and its files.

    Attributes:
        layout: The host layout the group was made for.
        name: The group's directory name (a container id).
        parent: The directory, under each hierarchy, that holds labkit's groups.
        fs: The file operations it uses.
        dirs: Every group directory, one per joined hierarchy.
        procs_files: The ``cgroup.procs`` files a new process writes its pid into.
        written: ``(path, value)`` of every write made through :meth:`_write`, in order, for the step trace.
    """

    def __init__(self, layout: Layout, name: str, parent: str = "labkit", fs: Cgroupfs | None = None) -> None:
        check_name("name", name, allow_slash=False)
        check_name("parent", parent, allow_slash=True)
        self.layout = layout
        self.name = name
        self.parent = parent
        self.fs = fs or Cgroupfs()
        self._dir = {h: os.path.join(h, parent, name) for h in layout.joined()}
        self.dirs: tuple[str, ...] = tuple(self._dir.values())
        self.procs_files: tuple[str, ...] = tuple(os.path.join(d, "cgroup.procs") for d in self.dirs)
        self.written: list[tuple[str, str]] = []

    def _write(self, path: str, text: str) -> None:
        """Write an interface file and remember it in :attr:`written`."""
        self.written.append((path, text))
        self.fs.write(path, text)

    def interface_file(self, controller: str, filename: str) -> str | None:
        """The file ``filename`` in this group's directory of ``controller``'s hierarchy.

        None when the host has no such controller, e.g. ``interface_file("pids", "pids.max")``.
        """
        hierarchy = self.layout.controllers.get(controller)
        if hierarchy is None or hierarchy not in self._dir:
            return None
        return os.path.join(self._dir[hierarchy], filename)

    def _unified(self, filename: str) -> str | None:
        if self.layout.unified is None:
            return None
        return os.path.join(self._dir[self.layout.unified], filename)

    def _set(self, controller: str, filename: str, value: str) -> None:
        path = self.interface_file(controller, filename)
        if path is None:
            raise HostUnsupported(f"this host has no {controller} controller, so {filename} cannot be written")
        self._write(path, value)

    def _read_int(self, path: str | None) -> int | None:
        if path is None:
            return None
        try:
            return int(self.fs.read(path).split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _read_keyed(self, path: str | None) -> dict[str, int]:
        if path is None:
            return {}
        try:
            return keyed(self.fs.read(path))
        except OSError:
            return {}
