"""The simulated container filesystem: the overlay model over the image's layer directories, plus mounts.

A container's ``/`` is a :class:`labkit.model.overlay.Overlay`: its lower
layers are read once from the image's layer directories on disk (the same
directories the real backend hands to ``lowerdir=``) and cached by path; its
upper layer lives in the world. Every change goes through the model, so
copy-up, whiteouts and opaque directories happen exactly as the model (and
Documentation/filesystems/overlayfs.rst) says, and the model's effects are
kept for the trace.

On top of it sit the container's mounts, as mount(2) would stack them:
volumes and bind mounts are real host directories (a volume's data is on
disk, so it outlives the container), ``/etc/hostname``, ``/etc/hosts`` and
``/etc/resolv.conf`` are bind-mounted files, ``/proc`` is :mod:`labkit.sim.procfs`
(synthesised from the simulated process table) and ``/dev/null`` swallows what
is written to it.

The disk is modelled too: every container's writable layer and every log
line share :data:`DISK` bytes, as the containers of one host share the
filesystem under ``/var/lib``. A write that would pass it fails with
ENOSPC (write(2)) and changes nothing, so a learner's ``while true; do echo
x >> f; done`` ends in an error message rather than in a world too big to
save. A volume or a bind mount is a real host directory: a write there is
held to the same bound (what the world already uses plus that file's size).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat as _stat
import zlib
from dataclasses import dataclass, replace
from typing import Any

from labkit.images.oci import is_whiteout
from labkit.model.overlay import WHITEOUT, Dir, File, Layer, Overlay, Symlink, WhiteoutNode
from labkit.sim import procfs
from labkit.sim.kernel import SimContainer, World

#: The per-container files bind-mounted over the init layer's placeholders.
ETC_FILES = ("hostname", "hosts", "resolv.conf")

_LAYERS: dict[str, Layer] = {}

#: Files at least this big are read from their layer directory only when their bytes are needed (see
#: :class:`LayerBytes`); smaller ones are read with the layer.
LAZY_SIZE = 256 * 1024


class LayerBytes:
    """The contents of a big file of an image layer, kept as where they are on disk, plus what was appended.

    A copy-up copies the whole file (overlayfs does, and the trace says how many bytes), but the model
    need not carry 99 MB of ``node`` through every save of its world: the upper copy refers to the image
    layer's file, which never changes once the layer is committed, and keeps only the bytes written after
    it. It reads as the file's bytes wherever bytes are needed (:func:`bytes`, slicing, ``decode``); its
    length, an append and a save cost nothing.
    """

    __slots__ = ("path", "size", "tail", "_data")

    def __init__(self, path: str, size: int, tail: bytes = b"") -> None:
        self.path, self.size, self.tail = path, size, tail
        self._data: bytes | None = None

    def __bytes__(self) -> bytes:
        if self._data is None:
            with open(self.path, "rb") as f:
                self._data = f.read(self.size).ljust(self.size, b"\0") + self.tail
        return self._data

    def __len__(self) -> int:
        return self.size + len(self.tail)

    def __add__(self, more: bytes) -> LayerBytes:
        return LayerBytes(self.path, self.size, self.tail + bytes(more))

    def __getitem__(self, key: Any) -> Any:
        return bytes(self)[key]

    def decode(self, *args: Any, **kw: Any) -> str:
        return bytes(self).decode(*args, **kw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LayerBytes) and (other.path, other.size, other.tail) == (self.path, self.size, self.tail):
            return True
        if isinstance(other, (LayerBytes, bytes)):
            return len(other) == len(self) and bytes(other) == bytes(self)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.path, self.size, self.tail))

    def __reduce__(self) -> tuple[Any, ...]:
        return (LayerBytes, (self.path, self.size, self.tail))  # saved as a reference, never as the bytes

    def __repr__(self) -> str:
        return f"LayerBytes({self.path!r}, {self.size}, +{len(self.tail)})"

#: The simulated host's disk (bytes): writable layers, log lines and written volume files together.
DISK = 128 * 1024 * 1024

#: Model operations that can make the disk fuller (the others only remove or rename).
_GROWING = {"write", "open_write", "create", "utimes", "mkdir", "chmod", "symlink", "link", "truncate", "rename"}


def layer_bytes(upper: dict[str, Any]) -> int:
    """Bytes one writable layer's files hold (a hard-linked file counted once)."""
    total = 0
    seen: set[int] = set()
    for node in upper.values():
        if isinstance(node, File):
            if node.inode is not None:
                if node.inode in seen:
                    continue
                seen.add(node.inode)
            total += len(node.data)
    return total


def disk_used(world: World) -> int:
    """Bytes the world keeps on its modelled disk: every writable layer's files and every log line."""
    return world.log_bytes + sum(ct.upper_bytes for ct in world.containers.values())


def _enospc(path: str) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


@dataclass(frozen=True)
class Stat:
    """What stat(2) tells the simulated programs.

    Attributes:
        kind: file, dir, symlink or dev.
        mode: Permission bits, with setuid/setgid/sticky.
        size: ``st_size``: a file's bytes, a symlink's target length, 4096 for a
            directory (one ext4 block, what the real upper and lower
            directories report).
        uid / gid: The owner as the container sees it (the id map applied).
        mtime: Modification time (Unix seconds).
        nlink: ``st_nlink``: a file's names in its layer (2 after ``ln``); a
            directory's 2 + its subdirectories, or 1 when overlayfs merges it
            from several layers (ovl_getattr() does not count a merged
            directory's links: "nlink=1 seems to pacify 'find' and other utilities").
        ino: ``st_ino`` (stable for one file, shared by its hard links).
        rdev: ``(major, minor)`` of a device.
    """

    kind: str  # file, dir, symlink, dev
    mode: int
    size: int
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    nlink: int = 1
    ino: int = 0
    rdev: tuple[int, int] = (0, 0)

    @property
    def blocks(self) -> int:
        """``st_blocks`` (512-byte units) on a 4 KiB-block filesystem; a symlink's target fits in its inode."""
        if self.kind in ("symlink", "dev"):
            return 0
        return -(-self.size // 4096) * 8


#: Size ``stat`` reports for a directory: one 4 KiB block, as on ext4 and xfs.
DIR_SIZE = 4096

#: /dev entries the container sees: (major, minor) as devices(7) numbers them.
DEVICES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/stdout": (136, 0), "/dev/stderr": (136, 0)}


def container_id(host_id: int, mine: int) -> int:
    """The id a host owner has inside the container: the user running the simulator is root there.

    A rootless container's user namespace maps id 0 to the user who made it
    (user_namespaces(7)), so the files that user extracted or wrote show owner
    0 inside, as on the real rootless backend; as root nothing changes.
    """
    return 0 if host_id == mine else host_id


def _opaque(path: str) -> bool:
    for prefix in ("trusted", "user"):
        try:
            if os.getxattr(path, f"{prefix}.overlay.opaque", follow_symlinks=False) == b"y":
                return True
        except (OSError, AttributeError):
            continue
    return False


def read_layer(path: str, lazy: bool = True) -> Layer:
    """Read a layer directory into a model :class:`Layer` (once; layers never change after commit).

    A character device 0/0 is a whiteout, as is an OCI ``.wh.NAME`` file (what the
    simulator writes where it may not mknod); a directory with
    ``trusted.overlay.opaque`` or ``user.overlay.opaque`` set to ``y`` is opaque.
    """
    cached = _LAYERS.get(path)
    if cached is not None:
        return cached
    entries: dict[str, Any] = {}
    root_st = os.lstat(path)
    uid, gid = os.geteuid(), os.getegid()
    entries["/"] = Dir(_stat.S_IMODE(root_st.st_mode), container_id(root_st.st_uid, uid),
                       container_id(root_st.st_gid, gid), int(root_st.st_mtime))
    for cur, dirs, files in os.walk(path):
        rel_dir = "/" + os.path.relpath(cur, path) if cur != path else ""
        for name in sorted(dirs + files):
            full = os.path.join(cur, name)
            st = os.lstat(full)
            rel = f"{rel_dir}/{name}"
            mode = _stat.S_IMODE(st.st_mode)
            owner = (container_id(st.st_uid, uid), container_id(st.st_gid, gid))
            if name.startswith(".wh.") and _stat.S_ISREG(st.st_mode):
                if name != ".wh..wh..opq":
                    entries[f"{rel_dir}/{name[4:]}"] = WHITEOUT
                continue
            if _stat.S_ISDIR(st.st_mode):
                entries[rel] = Dir(mode, *owner, int(st.st_mtime), opaque=_opaque(full))
            elif _stat.S_ISLNK(st.st_mode):
                entries[rel] = Symlink(os.readlink(full), *owner, int(st.st_mtime))
            elif _stat.S_ISREG(st.st_mode):
                data: bytes | LayerBytes
                if lazy and st.st_size >= LAZY_SIZE:
                    data = LayerBytes(full, st.st_size)
                else:
                    with open(full, "rb") as f:
                        data = f.read()
                entries[rel] = File(data, mode, *owner, int(st.st_mtime),  # type: ignore[arg-type]
                                    inode=st.st_ino if st.st_nlink > 1 else None)
            elif is_whiteout(st):
                entries[rel] = WHITEOUT
        for name in dirs:
            if os.path.exists(os.path.join(cur, name, ".wh..wh..opq")):
                rel = f"{rel_dir}/{name}"
                entries[rel] = replace(entries[rel], opaque=True)
    layer = Layer(entries)
    _LAYERS[path] = layer
    return layer


def read_layer_fresh(path: str) -> Layer:
    """Read a directory that may still change (a build's upper dir): never cached, every file's bytes read now."""
    layer = read_layer(path, lazy=False)
    _LAYERS.pop(path, None)
    return layer


def write_upper(entries: dict[str, Any], upper: str, mtime: int) -> None:
    """Write a model upper layer into the directory ``upper`` in overlayfs's on-disk format.

    Whiteouts are character devices 0/0 (mknod(2) allows them without privilege
    since Linux 5.8); where mknod is refused, an OCI ``.wh.NAME`` file stands
    in. Opaque directories get ``trusted.overlay.opaque=y``, or
    ``user.overlay.opaque=y`` without CAP_SYS_ADMIN.
    """
    for name in os.listdir(upper):
        full = os.path.join(upper, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)
    links: dict[int, str] = {}
    dirs = []
    for path in sorted(entries, key=lambda p: (p.count("/"), p)):
        node = entries[path]
        if path == "/":
            continue
        full = os.path.join(upper, path.lstrip("/"))
        if isinstance(node, Dir):
            os.mkdir(full)
            os.chmod(full, node.mode)
            if node.opaque:
                _set_opaque(full)
            dirs.append((full, node))
        elif isinstance(node, File):
            if node.inode is not None and node.inode in links:
                os.link(links[node.inode], full)
                continue
            with open(full, "wb") as f:
                f.write(bytes(node.data))
            os.chmod(full, node.mode)
            os.utime(full, (node.mtime or mtime, node.mtime or mtime))
            if node.inode is not None:
                links[node.inode] = full
        elif isinstance(node, Symlink):
            os.symlink(node.target, full)
        elif isinstance(node, WhiteoutNode):
            try:
                os.mknod(full, _stat.S_IFCHR | 0o600, os.makedev(0, 0))
            except (PermissionError, AttributeError):
                parent, base = os.path.split(full)
                open(os.path.join(parent, ".wh." + base), "wb").close()
    for full, node in reversed(dirs):
        os.utime(full, (node.mtime or mtime, node.mtime or mtime))


def _set_opaque(path: str) -> None:
    for prefix in ("trusted", "user"):
        try:
            os.setxattr(path, f"{prefix}.overlay.opaque", b"y")
            return
        except OSError:
            continue
    open(os.path.join(path, ".wh..wh..opq"), "wb").close()


def init_layer() -> Layer:
    """The container's ``-init`` layer: empty placeholders for the bind-mounted /etc files."""
    entries: dict[str, Any] = {"/": Dir(), "/etc": Dir()}
    for name in ETC_FILES:
        entries[f"/etc/{name}"] = File(b"")
    entries["/etc/mtab"] = Symlink("/proc/mounts")  # as Docker's init layer (and the linux backend's) has it
    return Layer(entries)


def overlay_of(world: World, ct: SimContainer) -> Overlay:
    """The container's overlay: the init layer and the image layers under its upper layer."""
    lowers = ((init_layer(),) if ct.init else ()) + tuple(read_layer(p) for p in ct.lowers)
    return Overlay(lowers, Layer(ct.upper), clock=ct.clock, next_inode=ct.next_inode)


def _norm(path: str) -> str:
    return os.path.normpath("/" + path).replace("//", "/")


class Vfs:
    """The filesystem a container's processes see: its overlay with mounts on top.

    Paths are absolute. Errors are :class:`OSError` with the errno the syscall gives.
    """

    def __init__(self, world: World, ct: SimContainer, who: Any = None) -> None:
        self.world = world
        self.ct = ct
        #: The process whose permissions are checked (its ``uid``, ``gid``, ``groups``); None: root's, none.
        self.who = who

    def _may(self, path: str, bit: int) -> None:
        """Permission to read (4) or write (2) ``path`` for a process that is not root, by the owner, group and
        other bits as the kernel reads them (generic_permission, fs/namei.c); EACCES without it."""
        who = self.who
        if who is None or who.uid == 0:
            return
        try:
            st = self.stat(path, follow=True)
        except OSError:
            return  # what does not exist is refused by the operation itself
        if st.kind == "dev":
            return
        if st.uid == who.uid:
            allowed = st.mode >> 6
        elif st.gid == who.gid or st.gid in who.groups:
            allowed = st.mode >> 3
        else:
            allowed = st.mode
        if not allowed & bit:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)

    def _may_create(self, path: str) -> None:
        """Permission to make a name in ``path``'s directory, or to write ``path`` if it exists."""
        self._may(path if self.exists(path) else os.path.dirname(path) or "/", 2)

    # -- the overlay -------------------------------------------------------------------------------
    @property
    def overlay(self) -> Overlay:
        return overlay_of(self.world, self.ct)

    def _change(self, op: str, *args: Any) -> None:
        if getattr(self.ct, "readonly_rootfs", False):  # run --read-only: / is mounted read-only
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(args[1] if op in ("symlink", "link") else args[0]))
        ov = self.overlay
        # Files changed now get the simulated wall-clock second as their mtime.
        ov = replace(ov, clock=int(self.world.epoch + self.world.now) - 1)
        new, effects = getattr(ov, op)(*args)
        upper = dict(new.upper.entries)
        size = layer_bytes(upper)
        if op in _GROWING and size > self.ct.upper_bytes and disk_used(self.world) - self.ct.upper_bytes + size > DISK:
            # write(2) with the filesystem full: ENOSPC, and the layer stays as it was (a copy-up too).
            raise _enospc(str(args[1] if op in ("symlink", "link") else args[0]))
        self.ct.upper = upper
        self.ct.upper_bytes = size
        self.ct.clock = new.clock
        self.ct.next_inode = new.next_inode
        self.ct.effects.extend(effects)

    def _mount(self, path: str) -> tuple[str, str, bool] | None:
        best = None
        for dest, src, ro in self.ct.mounts:
            if path == dest or path.startswith(dest.rstrip("/") + "/"):
                if best is None or len(dest) > len(best[0]):
                    best = (dest, src, ro)
        return best

    def _host(self, path: str) -> tuple[str, bool, str] | None:
        """The host path behind ``path`` if a mount serves it: (host path, read-only, mount point)."""
        m = self._mount(path)
        if m is None:
            return None
        dest, src, ro = m
        return src + path[len(dest):], ro, dest

    def _self(self, path: str) -> str:
        """``/proc/self`` is the asking process's own directory (proc(5)); without one, it is left as it is."""
        if self.who is not None and (path == "/proc/self" or path.startswith("/proc/self/")):
            return f"/proc/{self.who.pid}" + path[len("/proc/self"):]
        return path

    @staticmethod
    def _special(path: str) -> str | None:
        if path == "/proc" or path.startswith("/proc/"):
            return "proc"
        if path in ("/dev/null", "/dev/zero", "/dev/stdout", "/dev/stderr"):
            return "dev"
        return None

    # -- reading -------------------------------------------------------------------------------------
    def stat(self, path: str, follow: bool = False) -> Stat:
        path = self._self(_norm(path))
        if self._special(path) == "dev":
            return Stat("dev", 0o666, 0, rdev=DEVICES[path], ino=DEVICES[path][1] + 1)
        if self._special(path) == "proc":
            kind = procfs.kind(self.world, self.ct, path)
            return Stat(kind, procfs.MODES[kind], 0)
        host = self._host(path)
        if host is not None:
            st = os.stat(host[0]) if follow else os.lstat(host[0])
            kind = "dir" if _stat.S_ISDIR(st.st_mode) else "symlink" if _stat.S_ISLNK(st.st_mode) else "file"
            return Stat(kind, _stat.S_IMODE(st.st_mode), st.st_size, container_id(st.st_uid, os.geteuid()),
                        container_id(st.st_gid, os.getegid()), int(st.st_mtime), st.st_nlink, st.st_ino)
        ov = self.overlay
        node, layer = ov.lookup(path, follow=follow)
        canon = self.realpath(path) if follow and isinstance(node, Dir) else path
        entries = ov.upper.entries if layer == "upper" else ov.lowers[layer].entries
        nlink, ino = 1, zlib.crc32(f"{layer}:{canon}".encode())
        if isinstance(node, Dir):
            if len(ov.served_by(canon)) > 1:
                nlink = 1  # a merged directory (ovl_getattr)
            else:
                inside = canon.rstrip("/") + "/"
                nlink = 2 + sum(1 for p, n in entries.items()
                                if isinstance(n, Dir) and p.startswith(inside) and "/" not in p[len(inside):])
        elif isinstance(node, File) and node.inode is not None:
            nlink = sum(1 for n in entries.values() if isinstance(n, File) and n.inode == node.inode)
            ino = node.inode
        size = DIR_SIZE if isinstance(node, Dir) else node.size
        return Stat(node.kind, node.mode, size, node.uid, node.gid, node.mtime, nlink, ino)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path, follow=True)
        except OSError:
            return False
        return True

    def is_dir(self, path: str) -> bool:
        try:
            return self.stat(path, follow=True).kind == "dir"
        except OSError:
            return False

    def read(self, path: str) -> bytes:
        path = self._self(_norm(path))
        if self._special(path) == "dev":
            return b""
        if self._special(path) == "proc":
            return procfs.read(self.world, self.ct, path)
        self._may(path, 4)
        host = self._host(path)
        if host is not None:
            if os.path.isdir(host[0]):
                raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            with open(host[0], "rb") as f:
                return f.read()
        return bytes(self.overlay.read(path))  # a big image file's bytes are read from its layer only now

    def readdir(self, path: str) -> list[str]:
        path = self._self(_norm(path))
        if self._special(path) == "proc":
            return procfs.listdir(self.world, self.ct, path)
        host = self._host(path)
        if host is not None:
            return sorted(os.listdir(host[0]))
        return self.overlay.readdir(path)

    def readlink(self, path: str) -> str:
        path = _norm(path)
        host = self._host(path)
        if host is not None:
            return os.readlink(host[0])
        return self.overlay.readlink(path)

    def realpath(self, path: str) -> str:
        """``path`` with every symlink resolved (inside the container's root)."""
        parts = [p for p in _norm(path).split("/") if p]
        cur = "/"
        hops = 0
        while parts:
            comp = parts.pop(0)
            cand = _norm(cur + "/" + comp)
            try:
                st = self.stat(cand)
            except OSError:
                return _norm(cand + "/" + "/".join(parts))
            if st.kind == "symlink" and hops < 40:
                hops += 1
                target = self.readlink(cand)
                cur = "/" if target.startswith("/") else cur
                parts = [p for p in target.split("/") if p] + parts
                continue
            cur = cand
        return cur

    # -- writing ---------------------------------------------------------------------------------------
    def _host_write(self, host: tuple[str, bool, str], path: str) -> str:
        if host[1]:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return host[0]

    def write(self, path: str, data: bytes, append: bool = False) -> None:
        """open(O_WRONLY|O_CREAT|(O_APPEND or O_TRUNC)) and write: the shell's ``>>`` and ``>``."""
        path = _norm(path)
        kind = self._special(path)
        if kind == "dev":
            return
        if kind == "proc":
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)
        self._may_create(path)
        host = self._host(path)
        if host is not None:
            hp = self._host_write(host, path)
            kept = os.path.getsize(hp) if append and os.path.isfile(hp) else 0
            if data and disk_used(self.world) + kept + len(data) > DISK:
                raise _enospc(path)
            with open(hp, "ab" if append else "wb") as f:
                f.write(data)
            return
        self._change("write", path, data, append)

    def truncate(self, path: str, size: int) -> None:
        """truncate(2): cut the file to ``size`` bytes or extend it with zeros (a copy-up for an image file)."""
        path = _norm(path)
        if self._special(path) == "dev":
            return
        if self._special(path) == "proc":
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)
        host = self._host(path)
        if host is not None:
            hp = self._host_write(host, path)
            if size > os.path.getsize(hp) and disk_used(self.world) + size > DISK:
                raise _enospc(path)
            os.truncate(hp, size)
            return
        self._change("truncate", path, size)

    def truncate_open(self, path: str) -> None:
        """open(O_WRONLY|O_CREAT|O_TRUNC): a ``>`` redirect copies up (or creates) even before any write."""
        self.write(path, b"", append=False)

    def append_open(self, path: str) -> None:
        """open(O_WRONLY|O_CREAT|O_APPEND): a ``>>`` redirect copies up at open."""
        path = _norm(path)
        if not self._special(path):
            self._may_create(path)
        if self._special(path) or self._host(path) is not None:
            if self._host(path) is not None:
                with open(self._host_write(self._host(path), path), "ab"):  # type: ignore[arg-type]
                    pass
            return
        self._change("open_write", path, False, True)

    def touch(self, path: str) -> None:
        """``touch``: utimes(2) on an existing file (a copy-up!), else create it empty."""
        path = _norm(path)
        self._may_create(path)
        host = self._host(path)
        if host is not None:
            hp = self._host_write(host, path)
            with open(hp, "ab"):
                pass
            os.utime(hp)
            return
        if self.exists(path):
            self._change("utimes", path, int(self.world.epoch + self.world.now))
        else:
            self._change("create", path, b"")

    def mkdir(self, path: str) -> None:
        path = _norm(path)
        self._may(os.path.dirname(path) or "/", 2)
        host = self._host(path)
        if host is not None:
            os.mkdir(self._host_write(host, path))
            return
        self._change("mkdir", path)

    def _busy(self, path: str) -> None:
        if any(dest == path for dest, _, _ in self.ct.mounts) or self._special(path) or path == "/proc":
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)

    def unlink(self, path: str) -> None:
        path = _norm(path)
        self._busy(path)
        self._may(os.path.dirname(path) or "/", 2)
        host = self._host(path)
        if host is not None:
            os.unlink(self._host_write(host, path))
            return
        self._change("unlink", path)

    def rmdir(self, path: str) -> None:
        path = _norm(path)
        self._busy(path)
        host = self._host(path)
        if host is not None:
            os.rmdir(self._host_write(host, path))
            return
        self._change("rmdir", path)

    def rename(self, old: str, new: str) -> None:
        old, new = _norm(old), _norm(new)
        self._busy(old)
        a, b = self._mount(old), self._mount(new)
        if a != b:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), old)
        host = self._host(old)
        if host is not None:
            os.rename(self._host_write(host, old), self._host(new)[0])  # type: ignore[index]
            return
        self._change("rename", old, new)

    def chmod(self, path: str, mode: int) -> None:
        path = _norm(path)
        host = self._host(path)
        if host is not None:
            os.chmod(self._host_write(host, path), mode)
            return
        self._change("chmod", path, mode)

    def symlink(self, target: str, path: str) -> None:
        path = _norm(path)
        host = self._host(path)
        if host is not None:
            os.symlink(target, self._host_write(host, path))
            return
        self._change("symlink", target, path)

    def makedirs(self, path: str) -> None:
        """``mkdir -p``: every missing directory on the way."""
        cur = ""
        for part in [p for p in _norm(path).split("/") if p]:
            cur += "/" + part
            if not self.is_dir(cur):
                self.mkdir(cur)


def vfs_for(world: World, cid: str, who: Any = None) -> Vfs:
    """The filesystem container ``cid``'s processes see (``who``: the process whose permissions count)."""
    return Vfs(world, world.containers[cid], who)


def _differs(upper: Any, lower: Any) -> bool:
    """docker diff's rule: type, mode or owner changed; for non-directories also size or mtime."""
    if (upper.kind, upper.mode, upper.uid, upper.gid) != (lower.kind, lower.mode, lower.uid, lower.gid):
        return True
    return upper.kind != "dir" and (upper.size != lower.size or upper.mtime != lower.mtime)


def changes(ov: Overlay, image_lowers: tuple[Layer, ...]) -> list[tuple[str, str]]:
    """``docker diff`` read from the upper layer, the way overlay2 (and the linux backend) reads the upper dir.

    Walks the upper layer: a name with nothing below is ``A`` (and so is all
    under it), a whiteout is ``D`` (last among its siblings), an object that
    differs from the one below is ``C``; a directory with changes below it,
    or an opaque one, is ``C`` before them, and the lower names an opaque
    directory hides are ``D``. Unlike :meth:`Overlay.diff` (a comparison of
    the two merged trees), an opaque directory counts as changed even when
    it looks the same, as it does for Docker.
    """
    below_view = Overlay(image_lowers)
    upper = ov.upper
    out: list[tuple[str, str]] = []

    def below(path: str) -> Any:
        try:
            return below_view.lookup(path)[0]
        except OSError:
            return None

    def walk(rel_dir: str, parent_added: bool) -> None:
        deleted = []
        for name in upper.children(rel_dir):
            path = (rel_dir.rstrip("/") + "/" + name) if rel_dir != "/" else "/" + name
            node = upper.get(path)
            if node is None:
                continue
            if node.kind == "whiteout":
                deleted.append(path)
                continue
            lower = None if parent_added else below(path)
            if lower is None:
                out.append(("A", path))
                if isinstance(node, Dir):
                    walk(path, True)
                continue
            if isinstance(node, Dir):
                mark = len(out)
                walk(path, node.opaque)
                if node.opaque and lower.kind == "dir":
                    hidden = sorted(set(below_view.readdir(path)) - set(upper.children(path)))
                    out.extend(("D", f"{path}/{h}") for h in hidden)
                if len(out) > mark or _differs(node, lower) or node.opaque:
                    out.insert(mark, ("C", path))
            elif _differs(node, lower):
                out.append(("C", path))
        out.extend(("D", d) for d in deleted)

    walk("/", False)
    return out
