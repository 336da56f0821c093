"""The layers overlayfs stacks, as pure values: files, directories, symlinks and whiteouts by path.

A :class:`Layer` is what one directory of an overlay holds (an image layer, or a
container's upper layer); its nodes are :class:`File`, :class:`Dir`,
:class:`Symlink` and :class:`WhiteoutNode` (a character device 0/0: a removed
name). The pictures read them through :class:`LayerSummary`, :class:`UpperEntry`
and :class:`LayerContents`. How layers merge into one view is
:mod:`labkit.model.overlay`'s.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from labkit.errors import InvalidArgument

#: Where a merged object comes from: ``"upper"`` or a lower layer's index (0 = top).
LayerRef = Literal["upper"] | int

#: Which layer serves a path, as the pictures number layers: ``"upper"``, an image layer's number
#: (1 = the bottom one), ``"hidden"`` (a whiteout covers it) or ``"missing"`` (no layer has it).
Served = str | int

#: Path resolution gives up after this many symlinks, like the kernel (ELOOP).
MAXSYMLINKS = 40

#: The most lower layers one overlay stacks (OVL_MAX_STACK, fs/overlayfs/params.h). A container's
#: own init layer is one of them, so an image may have at most ``MAX_STACK - 1`` layers.
MAX_STACK = 500


# --------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class File:
    """A regular file in one layer.

    Attributes:
        data: The file's bytes.
        mode: Permission bits (``0o644``), without the file-type bits.
        uid: Owner.
        gid: Group.
        mtime: Modification time (the model's logical clock).
        inode: Entries of one layer with the same non-``None`` inode are hard
            links to one file; ``None`` means a file with a single name.
        xattrs: Extended attributes as sorted ``(name, value)`` pairs.
    """

    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    inode: int | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()

    kind: ClassVar[str] = "file"

    @property
    def size(self) -> int:
        """Size in bytes, as ``st_size`` reports it."""
        return len(self.data)


@dataclass(frozen=True)
class Dir:
    """A directory in one layer (its children are separate entries of the layer).

    Attributes:
        mode: Permission bits.
        uid: Owner.
        gid: Group.
        mtime: Modification time as set by ``utimes`` (not updated by entries).
        opaque: ``trusted.overlay.opaque="y"``: lower directories with this
            name are not merged in.
        redirect: ``trusted.overlay.redirect``: the lower path this directory
            was renamed from (only with ``redirect_dir=on``).
        xattrs: Extended attributes other than overlayfs's own.
    """

    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    opaque: bool = False
    redirect: str | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()

    kind: ClassVar[str] = "dir"

    @property
    def size(self) -> int:
        """Directories count as zero bytes in layer sizes."""
        return 0


@dataclass(frozen=True)
class Symlink:
    """A symbolic link; its size is the length of its target, as ``lstat`` says."""

    target: str
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    inode: int | None = None

    kind: ClassVar[str] = "symlink"
    mode: ClassVar[int] = 0o777
    xattrs: ClassVar[tuple[tuple[str, bytes], ...]] = ()

    @property
    def size(self) -> int:
        """Length of the target in bytes."""
        return len(os.fsencode(self.target))


@dataclass(frozen=True)
class WhiteoutNode:
    """A whiteout: a character device 0/0 that hides the same name in lower layers.

    A whiteout is invisible in the merged view (lookup says ENOENT). Whether it
    sits in the upper layer (overlayfs made it) or in a lower layer (an image
    layer's ``.wh.NAME`` applied on extraction), it hides what is below it.
    """

    kind: ClassVar[str] = "whiteout"
    mode: ClassVar[int] = 0o000
    uid: ClassVar[int] = 0
    gid: ClassVar[int] = 0
    mtime: ClassVar[int] = 0
    xattrs: ClassVar[tuple[tuple[str, bytes], ...]] = ()

    @property
    def size(self) -> int:
        """A whiteout holds no data."""
        return 0


#: The one whiteout value (all whiteouts are alike).
WHITEOUT = WhiteoutNode()

Node = File | Dir | Symlink | WhiteoutNode


# --------------------------------------------------------------------------- paths


def _norm(path: str) -> str:
    """``a//b/`` -> ``/a/b``; the overlay's root is ``/``. No symlinks are followed."""
    parts = [p for p in path.split("/") if p and p != "."]
    return "/" + "/".join(parts)


def _parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def _base(path: str) -> str:
    return path.rsplit("/", 1)[1]


def _join(parent: str, name: str) -> str:
    return parent + name if parent == "/" else f"{parent}/{name}"


def _is_below(path: str, ancestor: str) -> bool:
    """True when ``path`` lies strictly inside directory ``ancestor``."""
    return ancestor == "/" and path != "/" or path.startswith(ancestor + "/")


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]`` (root excluded, path excluded)."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _fail(code: int, op: str, path: str, why: str) -> OSError:
    """The OSError a syscall would raise, with one sentence that explains it."""
    return OSError(code, f"{os.strerror(code)} ({errno.errorcode[code]}): {op} {path}: {why}", path)


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer: an immutable mapping from absolute path to :data:`Node`.

    ``"/"`` is always present and is a :class:`Dir`; every other entry's parent
    is a :class:`Dir` of the same layer.
    """

    entries: Mapping[str, Node] = field(default_factory=lambda: MappingProxyType({"/": Dir()}))

    def __post_init__(self) -> None:
        entries = dict(self.entries)
        entries.setdefault("/", Dir())
        object.__setattr__(self, "entries", MappingProxyType(entries))
        object.__setattr__(self, "_child_cache", None)

    @classmethod
    def from_tree(cls, tree: Mapping[str, Any]) -> Layer:
        """Build a layer from a nested dict; see :func:`from_tree`."""
        return from_tree(tree)

    def get(self, path: str) -> Node | None:
        """The entry at ``path`` in this layer alone, or ``None``."""
        return self.entries.get(path)

    def children(self, path: str) -> list[str]:
        """Sorted names directly inside ``path`` in this layer (whiteouts included)."""
        index: dict[str, list[str]] | None = self._child_cache  # type: ignore[attr-defined]
        if index is None:
            index = _child_index(self.entries)
            object.__setattr__(self, "_child_cache", index)
        return index.get(path, [])

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layer) and dict(self.entries) == dict(other.entries)

    def __hash__(self) -> int:
        return hash(frozenset(self.entries.items()))

    def __repr__(self) -> str:
        return f"Layer({len(self.entries)} entries)"


def _child_index(entries: Mapping[str, Node]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for path in entries:
        if path != "/":
            index.setdefault(_parent(path), []).append(_base(path))
    for names in index.values():
        names.sort()
    return index


def from_tree(tree: Mapping[str, Any], mtime: int = 0) -> Layer:
    """Build a :class:`Layer` from a small nested description, for tests and pictures.

    Keys are names or slash-separated paths; values are ``bytes``/``str`` (a
    file), a nested ``dict`` (a directory), a :data:`Node` (used as is) or
    :data:`WHITEOUT`. Missing parent directories are created with mode 0755.

    Example::

        from_tree({"etc": {"passwd": "root:x:0:0\\n", "old.conf": WHITEOUT},
                   "bin/sh": Symlink("busybox")})

    Args:
        tree: The description.
        mtime: Modification time given to the files built from bytes/str.
    """
    entries: dict[str, Node] = {"/": Dir()}

    def put(path: str, value: Any) -> None:
        for anc in _ancestors(path):
            if not isinstance(entries.setdefault(anc, Dir()), Dir):
                raise InvalidArgument(f"{anc} is not a directory in this tree, so {path} cannot be inside it",
                                      "Describe a directory as a dict")
        if isinstance(value, Mapping):
            entries.setdefault(path, Dir())
            for name, child in value.items():
                put(_norm(_join(path, str(name))), child)
        elif isinstance(value, (bytes, str)):
            entries[path] = File(value.encode() if isinstance(value, str) else value, mtime=mtime)
        elif isinstance(value, (File, Dir, Symlink, WhiteoutNode)):
            entries[path] = value
        else:
            raise InvalidArgument(f"{path}: a tree value must be bytes, str, dict or a Node, "
                                  f"not {type(value).__name__}", "Use bytes for a file and a dict for a directory")

    for key, value in tree.items():
        path = _norm(str(key))
        if path == "/":
            if isinstance(value, Dir):
                entries["/"] = value
                continue
            raise InvalidArgument("the root of a tree must be a Dir", "Give '/' a Dir(...) or leave it out")
        put(path, value)
    return Layer(entries)


@dataclass(frozen=True)
class LayerSummary:
    """What a layer holds, for the layer picture.

    Attributes:
        layer: ``"upper"`` or the lower layer's index (0 = top).
        files: Regular files (each name counts).
        dirs: Directories, root excluded.
        symlinks: Symbolic links.
        whiteouts: Whiteouts (deletions of lower names).
        opaque_dirs: Directories marked opaque.
        bytes: File data in bytes (hard links counted once).
    """

    layer: LayerRef
    files: int
    dirs: int
    symlinks: int
    whiteouts: int
    opaque_dirs: int
    bytes: int


@dataclass(frozen=True)
class UpperEntry:
    """One name in a container's writable layer, and what the image layers hold at the same path.

    Attributes:
        path: The path inside the container (``/app/server.js``).
        kind: ``file``, ``dir``, ``symlink`` or ``whiteout``.
        size: Bytes of a regular file (a symlink's target length; 0 for the rest).
        opaque: A directory marked opaque (it hides the image layers' directory below it).
        lower_layer: The image layer that holds something at ``path`` (1 = the bottom layer; 0 when
            an image layer holds it but which one cannot be told), or ``None`` when none does (then
            the entry is new).
        lower_size: Bytes of the image layers' regular file at ``path`` (what a copy-up copied).
        made_anew: A non-directory made in the writable layer where an image layer has the name (removed and
            made again, or moved there): it hides the image's file but is no copy of it. overlayfs stores the
            ``overlay.origin`` xattr on a copy-up alone (fs/overlayfs/copy_up.c).
    """

    path: str
    kind: str
    size: int = 0
    opaque: bool = False
    lower_layer: int | None = None
    lower_size: int = 0
    made_anew: bool = False


@dataclass(frozen=True)
class LayerContents:
    """A container's writable layer as a backend reads it: every entry, and who serves one path.

    The real backend reads it from the upper dir on disk, the simulator from its
    model (:meth:`Overlay.contents`); the layer picture draws either the same way.

    Attributes:
        entries: Every name in the writable layer, in path order (root excluded).
        serves: Which layer serves the path asked about, or ``None`` when none was asked.
    """

    entries: tuple[UpperEntry, ...] = ()
    serves: Served | None = None


def _summarize(ref: LayerRef, layer: Layer) -> LayerSummary:
    counts = {"file": 0, "dir": 0, "symlink": 0, "whiteout": 0}
    opaque = 0
    size = 0
    seen: set[int] = set()
    for path, node in layer.entries.items():
        if path == "/":
            continue
        counts[node.kind] += 1
        if isinstance(node, Dir) and node.opaque:
            opaque += 1
        if isinstance(node, File):
            if node.inode is None or node.inode not in seen:
                size += node.size
            if node.inode is not None:
                seen.add(node.inode)
    return LayerSummary(ref, counts["file"], counts["dir"], counts["symlink"], counts["whiteout"], opaque, size)
