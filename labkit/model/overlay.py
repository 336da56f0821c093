"""overlayfs as a pure model: read-only lower layers under one writable upper layer.

A container's root filesystem is an overlay mount
(Documentation/filesystems/overlayfs.rst): the image layers are ``lowerdir=``
(leftmost is top) and the container's own layer is ``upperdir=``. This module
holds the kernel's rules once, with no I/O, so the simulator can obey them,
the pictures can draw them ("which layer serves this path", copy-up arrows,
whiteout tombstones) and the explanations can quote them:

* **Lookup** goes top-down. A non-directory hides everything below it,
  directories with the same name merge, an *opaque* directory stops the merge
  and a *whiteout* hides the name below it and is itself invisible.
* **Copy-up**: the first write-needing access to a lower object copies it
  (and, first, its missing parent directories, with the lower metadata) into
  the upper layer; the upper copy is used from then on.
* **Whiteouts and opaque directories** record removals without touching a
  lower layer: removing a name that a lower layer still has leaves a whiteout
  (a character device 0/0); a directory created over a whiteout is opaque.

Every operation takes an immutable :class:`Overlay` and returns
``(new_overlay, effects)``: the effects are typed events (:class:`CopyUp`,
:class:`Whiteout`, :class:`Opaque`, ...) that say what the kernel did, each
with a one-sentence :meth:`Effect.explain` and the kernel mechanism it names.
Failures raise :class:`OSError` with the errno the real syscall gives
(``ENOENT``, ``EEXIST``, ``ENOTEMPTY``, ``EXDEV``, ``EISDIR``, ``ENOTDIR``, ...),
and leave nothing changed.

Modelled mount: ``index=off`` (copy-up breaks hard links, as Docker mounts),
``metacopy=off`` (copy-up copies data too) and ``redirect_dir`` off unless
:attr:`Overlay.redirect_dir` is set (then renaming a lower directory copies up
the directory alone and records ``trusted.overlay.redirect``).

Paths are absolute inside the overlay (``/etc/passwd``); intermediate symlinks
are followed as in a container whose root is the overlay (an absolute target
starts again at the overlay's root; ``..`` stops at it). The model keeps file
modification times as a logical clock that ticks once per changing operation;
directory times are not tracked.

**Held equal to the kernel.** ``tests/linux/test_overlay_vs_kernel.py`` applies
random sequences (100 examples of up to 20 operations, once with
``redirect_dir`` off and once on) to a real overlay mount and to this model,
and compares after every step: the errno of each failing operation, the merged
view (names, types, contents, modes, owners, ``user.*`` xattrs, hard links),
the upper directory (copy-ups, whiteouts, opaque and redirect markers) and
``readdir``. ``tests/contract/test_differential.py`` does the same through the
whole engine, simulator against real containers (25 examples). What they leave
out is where the model and the kernel differ, on purpose:

* **Times.** The kernel stamps wall-clock ``mtime``/``ctime``/``atime``; the
  model counts changes, and does not track directories' times at all.
* **Order of readdir.** Compared as sets: the kernel's order is the upper
  filesystem's hash order, which means nothing to a learner.
* **Inode and device numbers.** overlayfs reports the real layer's ``st_ino``
  (or an ``xino``-composed one) and its own ``st_dev``; the model has none.
* **Other xattrs.** ``security.*`` (SELinux labels) and overlayfs's own
  ``origin``/``impure`` bookkeeping in the upper directory are not modelled;
  the opaque, whiteout and redirect markers are.
* **Mount options.** ``index=on``, ``metacopy=on``, ``nfs_export`` and
  ``volatile`` are not modelled (Docker mounts without them).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from labkit.errors import InvalidArgument

__all__ = [
    "CopyUp",
    "Create",
    "Dir",
    "Effect",
    "File",
    "HardLinkBroken",
    "Layer",
    "LayerContents",
    "LayerRef",
    "LayerSummary",
    "Link",
    "Node",
    "Opaque",
    "Overlay",
    "ParentCopyUp",
    "Redirect",
    "Remove",
    "Rename",
    "SetAttr",
    "Served",
    "Symlink",
    "UpperEntry",
    "WHITEOUT",
    "Whiteout",
    "WhiteoutNode",
    "WriteData",
    "from_tree",
]

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
    """

    path: str
    kind: str
    size: int = 0
    opaque: bool = False
    lower_layer: int | None = None
    lower_size: int = 0


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


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Effect:
    """Something the kernel did while serving an operation (base class).

    Subclasses name the kernel mechanism in :attr:`mechanism` and say what
    happened in :meth:`explain`, in one sentence a learner understands.
    """

    mechanism: ClassVar[str] = ""

    def explain(self) -> str:
        """One sentence saying what happened and why."""
        raise NotImplementedError


@dataclass(frozen=True)
class CopyUp(Effect):
    """A lower object was copied into the upper layer (data, owner, mode, times, xattrs).

    Attributes:
        path: The merged path.
        from_layer: The lower layer it came from.
        bytes: How many bytes of data were copied.
        reason: The access that needed it: ``"open-for-write"``, ``"truncate"``,
            ``"chmod"``, ``"chown"``, ``"utimes"``, ``"setxattr"``,
            ``"removexattr"``, ``"link"``, ``"rename"``.
    """

    path: str
    from_layer: int
    bytes: int
    reason: str
    mechanism: ClassVar[str] = "ovl_copy_up(): copy-up on first write-needing access"

    def explain(self) -> str:
        return (
            f"copy-up: {self.reason} needs a writable {self.path}, so overlayfs copied it from "
            f"lower layer {self.from_layer} into the upper layer ({self.bytes} bytes); "
            f"from now on the upper copy is used and the lower one is never touched."
        )


@dataclass(frozen=True)
class ParentCopyUp(Effect):
    """A directory was created in the upper layer so that something could go inside it."""

    path: str
    from_layer: int
    mechanism: ClassVar[str] = "ovl_copy_up(): parent directories are copied up first"

    def explain(self) -> str:
        return (
            f"copy-up of a parent: {self.path} did not exist in the upper layer yet, so overlayfs created it "
            f"there with the owner, mode and times of the directory in lower layer {self.from_layer} "
            f"(only the directory, not its contents); it stays merged with the lower one."
        )


@dataclass(frozen=True)
class Whiteout(Effect):
    """A whiteout (character device 0/0) was put in the upper layer to hide a lower name."""

    path: str
    mechanism: ClassVar[str] = "whiteout: character device 0/0 in the upper layer"

    def explain(self) -> str:
        return (
            f"whiteout: a lower layer still has {self.path} and lower layers are read-only, so overlayfs "
            f"left a character device 0/0 named {self.path} in the upper layer that hides it."
        )


@dataclass(frozen=True)
class Opaque(Effect):
    """A directory was marked opaque, so lower directories of that name stop merging in."""

    path: str
    mechanism: ClassVar[str] = 'opaque directory: xattr trusted.overlay.opaque="y"'

    def explain(self) -> str:
        return (
            f'opaque: {self.path} got trusted.overlay.opaque="y", so whatever lower layers have under '
            f"{self.path} stays hidden and only the upper directory's contents show."
        )


@dataclass(frozen=True)
class Redirect(Effect):
    """A renamed lower directory remembers where its lower contents are."""

    path: str
    target: str
    mechanism: ClassVar[str] = "redirect_dir: xattr trusted.overlay.redirect"

    def explain(self) -> str:
        return (
            f"redirect: {self.path} got trusted.overlay.redirect={self.target}, so overlayfs keeps merging "
            f"in the lower contents of {self.target} although the directory now has a new name."
        )


@dataclass(frozen=True)
class Create(Effect):
    """A new object was created in the upper layer.

    Attributes:
        path: The merged path.
        kind: ``"file"``, ``"dir"`` or ``"symlink"``.
        over_whiteout: The new object replaced a whiteout of a removed lower name.
    """

    path: str
    kind: str
    over_whiteout: bool = False
    mechanism: ClassVar[str] = "new entries always go to the upper layer"

    def explain(self) -> str:
        where = " in place of the whiteout that hid the old lower one" if self.over_whiteout else ""
        return f"create: the new {self.kind} {self.path} was made in the upper layer{where}."


@dataclass(frozen=True)
class Remove(Effect):
    """An entry was removed from the upper layer (lower layers are never changed)."""

    path: str
    kind: str
    mechanism: ClassVar[str] = "unlink/rmdir in the upper layer"

    def explain(self) -> str:
        return f"remove: the {self.kind} {self.path} was deleted from the upper layer."


@dataclass(frozen=True)
class Rename(Effect):
    """An upper-layer entry (and everything below it) moved to a new name."""

    old: str
    new: str
    mechanism: ClassVar[str] = "rename(2) inside the upper layer"

    def explain(self) -> str:
        return f"rename: {self.old} was renamed to {self.new} inside the upper layer."


@dataclass(frozen=True)
class Link(Effect):
    """A hard link was made in the upper layer."""

    source: str
    path: str
    mechanism: ClassVar[str] = "link(2) inside the upper layer, after copying up the source"

    def explain(self) -> str:
        return f"link: {self.path} is a new name for the upper-layer file {self.source}."


@dataclass(frozen=True)
class HardLinkBroken(Effect):
    """Copy-up gave a file its own inode, so its lower hard-link siblings no longer share changes."""

    path: str
    siblings: tuple[str, ...]
    mechanism: ClassVar[str] = "index=off: copy-up breaks hard links"

    def explain(self) -> str:
        names = ", ".join(self.siblings)
        return (
            f"hard link broken: {self.path} was a hard link with {names} in its lower layer; copy-up made a "
            f"separate upper file, so changes to it no longer show under the other names (index=off)."
        )


@dataclass(frozen=True)
class WriteData(Effect):
    """File data changed in the upper layer."""

    path: str
    size: int
    mechanism: ClassVar[str] = "write(2)/truncate(2) on the upper file"

    def explain(self) -> str:
        return f"write: {self.path} in the upper layer now holds {self.size} bytes."


@dataclass(frozen=True)
class SetAttr(Effect):
    """Metadata (mode, owner, times, an xattr) changed on an upper-layer object."""

    path: str
    attr: str
    value: str
    mechanism: ClassVar[str] = "setattr/setxattr on the upper object"

    def explain(self) -> str:
        return f"{self.attr}: {self.path} in the upper layer now has {self.attr} {self.value}."


# --------------------------------------------------------------------------- merged view


@dataclass(frozen=True)
class _Entry:
    """One layer's contribution to a merged path: which layer, at which path there, what node."""

    layer: LayerRef
    path: str
    node: Node


class _View:
    """Lookups over a (possibly changing) upper mapping and the fixed lowers."""

    def __init__(self, upper: Mapping[str, Node], lowers: tuple[Layer, ...]) -> None:
        self.upper = upper
        self.lowers = lowers

    def node_in(self, layer: LayerRef, path: str) -> Node | None:
        return self.upper.get(path) if layer == "upper" else self.lowers[layer].get(path)

    def stack(self, path: str) -> list[_Entry] | None:
        """The layers that make up merged ``path``, top first; ``None`` when it does not exist.

        Follows ovl_lookup(): per layer of the parent's merge stack, a missing
        name goes on to the next layer, a whiteout stops (hiding what is
        below), a non-directory is taken only if nothing was found above and
        stops, a directory is taken and merging goes on unless it is opaque.
        """
        if path == "/":
            root = [_Entry("upper", "/", self.upper["/"])]
            return root + [_Entry(i, "/", layer.entries["/"]) for i, layer in enumerate(self.lowers)]
        pstack = self.stack(_parent(path))
        if pstack is None or not isinstance(pstack[0].node, Dir):
            return None
        name = _base(path)
        found: list[_Entry] = []
        for pentry in pstack:
            where = _join(pentry.path, name)
            node = self.node_in(pentry.layer, where)
            if node is None:
                continue
            verdict = self._take(found, _Entry(pentry.layer, where, node))
            if verdict == "stop":
                break
            if verdict == "redirect":
                assert isinstance(node, Dir) and node.redirect is not None
                self._follow_redirect(found, node.redirect)
                break
        return found or None

    @staticmethod
    def _take(found: list[_Entry], entry: _Entry) -> str:
        node = entry.node
        if isinstance(node, WhiteoutNode):
            return "stop"
        if not isinstance(node, Dir):
            if not found:
                found.append(entry)
            return "stop"
        found.append(entry)
        if node.opaque:
            return "stop"
        if entry.layer == "upper" and node.redirect is not None:
            return "redirect"
        return "go on"

    def _follow_redirect(self, found: list[_Entry], target: str) -> None:
        """An upper directory with trusted.overlay.redirect merges the lower dirs at ``target``."""
        for i, layer in enumerate(self.lowers):
            blocked = False
            for anc in _ancestors(target):
                node = layer.get(anc)
                if isinstance(node, (WhiteoutNode, File, Symlink)):
                    blocked = True
                    break
                if node is None:
                    break
            else:
                node = layer.get(target)
                if node is not None and self._take(found, _Entry(i, target, node)) == "stop":
                    return
                continue
            if blocked:
                return

    def top(self, path: str) -> _Entry | None:
        st = self.stack(path)
        return st[0] if st else None

    def is_merged(self, path: str) -> bool:
        """A directory with more than one layer, or an upper dir with a lower origin."""
        st = self.stack(path)
        return st is not None and len(st) > 1

    def lower_positive(self, path: str) -> bool:
        """Would a lower layer show ``path`` if the upper layer did not hide it? (ovl_lower_positive)"""
        pstack = self.stack(_parent(path))
        if pstack is None:
            return False
        name = _base(path)
        for pentry in pstack:
            if pentry.layer == "upper":
                continue
            node = self.node_in(pentry.layer, _join(pentry.path, name))
            if node is not None:
                return not isinstance(node, WhiteoutNode)
        return False

    def names(self, path: str, listing: bool = True) -> list[str]:
        """readdir(): upper names first, then each lower layer's new names; whiteouts hide.

        With ``listing``, a directory served by a single layer is read as it
        is, like the kernel reads a directory that is not merged: a stray
        whiteout inside it is then listed (though looking it up says ENOENT).
        Without it (the emptiness check of rmdir and rename) whiteouts never count.
        """
        st = self.stack(path)
        assert st is not None
        if listing and len(st) == 1:
            return list(self._children(st[0]))
        out: list[str] = []
        seen: set[str] = set()
        for entry in st:
            for name in self._children(entry):
                if name in seen:
                    continue
                seen.add(name)
                if not isinstance(self.node_in(entry.layer, _join(entry.path, name)), WhiteoutNode):
                    out.append(name)
        return out

    def _children(self, entry: _Entry) -> list[str]:
        if entry.layer == "upper":
            prefix = "/" if entry.path == "/" else entry.path + "/"
            return sorted(p[len(prefix):] for p in self.upper if p != "/" and _parent(p) == entry.path
                          and p.startswith(prefix))
        return self.lowers[entry.layer].children(entry.path)

    def resolve(self, path: str, op: str, follow: bool = True) -> str:
        """Walk ``path`` like namei(): follow symlinks in the middle (and at the end if ``follow``).

        Returns the canonical path, which may not exist (only its parent must).
        Raises ENOENT / ENOTDIR / ELOOP as the kernel would.
        """
        todo = [p for p in path.split("/") if p]
        cur = "/"
        hops = 0
        while todo:
            comp = todo.pop(0)
            last = not todo
            if comp == ".":
                continue
            if comp == "..":
                cur = _parent(cur)
                continue
            cand = _join(cur, comp)
            if last and not follow:
                return cand
            top = self.top(cand)
            if top is None:
                if last:
                    return cand
                raise _fail(errno.ENOENT, op, path, f"{cand} does not exist")
            node = top.node
            if isinstance(node, Symlink):
                hops += 1
                if hops > MAXSYMLINKS:
                    raise _fail(errno.ELOOP, op, path, "too many levels of symbolic links")
                if node.target.startswith("/"):
                    cur = "/"
                todo = [p for p in node.target.split("/") if p] + todo
                if not todo:
                    raise _fail(errno.ENOENT, op, path, f"the symlink {cand} has an empty target")
                continue
            if not last and not isinstance(node, Dir):
                raise _fail(errno.ENOTDIR, op, path, f"{cand} is not a directory")
            cur = cand
        return cur

    def resolve_parent(self, path: str, op: str) -> str:
        """Resolve everything but the last component (which is not followed); the parent must be a dir."""
        canon = self.resolve(path, op, follow=False)
        if canon == "/":
            return canon
        parent = self.top(_parent(canon))
        if parent is None:
            raise _fail(errno.ENOENT, op, path, f"{_parent(canon)} does not exist")
        if not isinstance(parent.node, Dir):
            raise _fail(errno.ENOTDIR, op, path, f"{_parent(canon)} is not a directory")
        return canon


# --------------------------------------------------------------------------- transaction


class _Txn:
    """One operation in progress: a private copy of the upper layer and the effects so far."""

    def __init__(self, ov: Overlay) -> None:
        self.ov = ov
        self.up: dict[str, Node] = dict(ov.upper.entries)
        self.view = _View(self.up, ov.lowers)
        self.effects: list[Effect] = []
        self.clock = ov.clock + 1
        self.next_inode = ov.next_inode

    def done(self) -> tuple[Overlay, tuple[Effect, ...]]:
        new = replace(self.ov, upper=Layer(self.up), clock=self.clock, next_inode=self.next_inode)
        return new, tuple(self.effects)

    # --- copy-up ---------------------------------------------------------

    def copy_up(self, path: str, reason: str) -> None:
        """Make ``path`` (which exists in the merged view) live in the upper layer."""
        top = self.view.top(path)
        assert top is not None
        if top.layer == "upper":
            return
        self.copy_up_parents(path)
        node = top.node
        if isinstance(node, Dir):
            self.up[path] = Dir(node.mode, node.uid, node.gid, node.mtime, xattrs=node.xattrs)
        elif isinstance(node, File):
            self.up[path] = replace(node, inode=None)
            if node.inode is not None:
                siblings = tuple(
                    p for p, n in self.ov.lowers[top.layer].entries.items()
                    if p != top.path and isinstance(n, File) and n.inode == node.inode
                )
                if siblings:
                    self.effects.append(HardLinkBroken(path, siblings))
        elif isinstance(node, Symlink):
            self.up[path] = replace(node, inode=None)
        assert isinstance(top.layer, int)
        self.effects.append(CopyUp(path, top.layer, node.size if isinstance(node, File) else 0, reason))

    def copy_up_parents(self, path: str) -> None:
        """Create the missing upper ancestors of ``path`` from their lower directories."""
        for anc in _ancestors(path):
            top = self.view.top(anc)
            assert top is not None and isinstance(top.node, Dir)
            if top.layer != "upper":
                node = top.node
                self.up[anc] = Dir(node.mode, node.uid, node.gid, node.mtime, xattrs=node.xattrs)
                assert isinstance(top.layer, int)
                self.effects.append(ParentCopyUp(anc, top.layer))

    # --- namespace helpers --------------------------------------------------

    def create(self, path: str, node: Node) -> None:
        """Put a new object at ``path`` in the upper layer (ovl_create_object)."""
        self.copy_up_parents(path)
        over = isinstance(self.up.get(path), WhiteoutNode)
        # ovl_create_over_whiteout(): a new directory must not merge the removed one below.
        # ovl_create_upper() also marks a new directory in a merged parent opaque unless
        # ovl_allow_offline_changes() (no redirect_dir, index, metacopy or xino=on): an
        # optimization that keeps later lookups from searching the lower layers.
        opaque = isinstance(node, Dir) and (over or (self.ov.redirect_dir and self.view.is_merged(_parent(path))))
        if opaque and isinstance(node, Dir):
            node = replace(node, opaque=True)
        self.up[path] = node
        self.effects.append(Create(path, node.kind, over))
        if opaque:
            self.effects.append(Opaque(path))

    def remove_upper_tree(self, path: str) -> None:
        for p in [p for p in self.up if p == path or _is_below(p, path)]:
            del self.up[p]

    def move_upper_tree(self, old: str, new: str) -> None:
        moved = {p: n for p, n in self.up.items() if p == old or _is_below(p, old)}
        for p in moved:
            del self.up[p]
        for p, n in moved.items():
            self.up[new + p[len(old):]] = n

    def update_inode(self, path: str, change: Callable[[Any], Node]) -> None:
        """Change the upper object at ``path`` and every hard link of it."""
        node = self.up[path]
        inode = getattr(node, "inode", None)
        targets = [path] if inode is None else [
            p for p, n in self.up.items() if getattr(n, "inode", None) == inode and type(n) is type(node)
        ]
        for p in targets:
            self.up[p] = change(self.up[p])


# --------------------------------------------------------------------------- the overlay


@dataclass(frozen=True)
class Overlay:
    """An overlay mount: read-only ``lowers`` (index 0 is the top) under a writable ``upper``.

    Attributes:
        lowers: The lower layers, in ``lowerdir=`` order (leftmost, index 0, is top).
        upper: The writable layer (``upperdir=``).
        redirect_dir: ``redirect_dir=on``: renaming a lower or merged
            directory copies up the directory alone and records where its
            lower contents are; off (the default) makes such a rename fail
            with EXDEV. Some distribution kernels turn it on by default.
        clock: The logical time stamped on files changed by the next operation, minus one.
        next_inode: The next fresh hard-link group id.
    """

    lowers: tuple[Layer, ...]
    upper: Layer = field(default_factory=Layer)
    redirect_dir: bool = False
    clock: int = 0
    next_inode: int = 1_000_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "lowers", tuple(self.lowers))
        if not self.lowers:
            raise InvalidArgument("an overlay needs at least one lower layer (lowerdir=)",
                                  "Pass the image's layers, top first")

    @classmethod
    def from_trees(cls, *lowers: Mapping[str, Any], upper: Mapping[str, Any] | None = None,
                   redirect_dir: bool = False) -> Overlay:
        """Build an overlay from :func:`from_tree` descriptions, top lower layer first."""
        up = from_tree(upper) if upper is not None else Layer()
        return cls(tuple(from_tree(t) for t in lowers), up, redirect_dir)

    def _view(self) -> _View:
        return _View(self.upper.entries, self.lowers)

    # --- reading --------------------------------------------------------------

    def lookup(self, path: str, follow: bool = False) -> tuple[Node, LayerRef]:
        """The merged object at ``path`` and the layer it comes from (``lstat``, or ``stat`` if ``follow``).

        For a merged directory the node is the topmost one (its metadata is
        what ``stat`` shows). Raises ENOENT (or ENOTDIR, ELOOP) like the syscall.
        """
        view = self._view()
        canon = view.resolve(path, "stat", follow)
        top = view.top(canon)
        if top is None:
            raise _fail(errno.ENOENT, "stat", path, "no layer has this name (or a whiteout hides it)")
        return top.node, top.layer

    def exists(self, path: str, follow: bool = False) -> bool:
        """Whether ``path`` exists in the merged view."""
        try:
            self.lookup(path, follow)
        except OSError:
            return False
        return True

    def served_by(self, path: str) -> tuple[LayerRef, ...]:
        """Which layers make up merged ``path``, top first (for the layer picture).

        A non-directory comes from exactly one layer; a merged directory lists
        every layer whose directory is merged in. Symlinks are not followed.
        """
        view = self._view()
        st = view.stack(view.resolve(path, "stat", follow=False))
        if st is None:
            raise _fail(errno.ENOENT, "stat", path, "no layer has this name (or a whiteout hides it)")
        return tuple(e.layer for e in st)

    def readdir(self, path: str) -> list[str]:
        """Names in merged directory ``path``: upper names first, then each lower's new names.

        Whiteouts and the names they hide are left out; merging stops at an
        opaque directory. Within one layer the model sorts names (a real
        directory's order depends on its filesystem). ``.`` and ``..`` are not listed.
        """
        view = self._view()
        canon = view.resolve(path, "opendir")
        top = view.top(canon)
        if top is None:
            raise _fail(errno.ENOENT, "opendir", path, "no such directory")
        if not isinstance(top.node, Dir):
            raise _fail(errno.ENOTDIR, "opendir", path, "it is not a directory")
        return view.names(canon)

    def read(self, path: str) -> bytes:
        """The contents of the file at ``path`` (symlinks followed); reading never copies up."""
        view = self._view()
        canon = view.resolve(path, "open")
        top = view.top(canon)
        if top is None:
            raise _fail(errno.ENOENT, "open", path, "no such file")
        if isinstance(top.node, Dir):
            raise _fail(errno.EISDIR, "read", path, "it is a directory")
        assert isinstance(top.node, File)
        return top.node.data

    def readlink(self, path: str) -> str:
        """The target of the symlink at ``path``."""
        node, _ = self.lookup(path)
        if not isinstance(node, Symlink):
            raise _fail(errno.EINVAL, "readlink", path, "it is not a symbolic link")
        return node.target

    def walk(self) -> dict[str, Node]:
        """The whole merged tree as ``{path: node}`` (root included, symlinks not followed).

        Stray whiteouts listed by an unmerged directory are left out, since
        they cannot be looked up.
        """
        view = self._view()
        out: dict[str, Node] = {}

        def visit(path: str) -> None:
            top = view.top(path)
            if top is None:
                return
            out[path] = top.node
            if isinstance(top.node, Dir):
                for name in view.names(path):
                    visit(_join(path, name))

        visit("/")
        return out

    def describe(self) -> tuple[LayerSummary, ...]:
        """Counts and bytes per layer, upper first, for the layer picture."""
        return (_summarize("upper", self.upper),) + tuple(
            _summarize(i, layer) for i, layer in enumerate(self.lowers)
        )

    def contents(self, path: str | None = None) -> LayerContents:
        """The upper layer's entries, each with what the lowers hold at its path, and who serves ``path``.

        Lowers are numbered from the bottom (the bottom layer is 1), as ``docker history``
        lists them and the pictures draw them; so the lowers here must be the image's layers alone.
        """
        n = len(self.lowers)
        below = self.image()
        entries = []
        for p, node in sorted(self.upper.entries.items()):
            if p == "/":
                continue
            layer, lower_size = None, 0
            if node.kind != "whiteout":
                try:
                    lnode, ref = below.lookup(p)
                except OSError:
                    pass
                else:
                    layer = n - int(ref)
                    lower_size = lnode.size if lnode.kind == "file" else 0
            entries.append(UpperEntry(p, node.kind, node.size, bool(getattr(node, "opaque", False)), layer,
                                      lower_size))
        serves: Served | None = None
        if path:
            try:
                top = self.served_by(path)[0]
                serves = "upper" if top == "upper" else n - int(top)
            except OSError:
                serves = "hidden" if below.exists(path) else "missing"
        return LayerContents(tuple(entries), serves)

    # --- writing: data ---------------------------------------------------------

    def open_write(self, path: str, truncate: bool = False, create: bool = False,
                   mode: int = 0o644) -> tuple[Overlay, tuple[Effect, ...]]:
        """``open(path, O_WRONLY[|O_TRUNC][|O_CREAT])``: copy-up happens here, even if nothing is written.

        Raises:
            OSError: ENOENT (missing and not ``create``), EISDIR (a directory).
        """
        tx = _Txn(self)
        self._open_write(tx, path, truncate, create, mode)
        return tx.done()

    def _open_write(self, tx: _Txn, path: str, truncate: bool, create: bool, mode: int) -> str:
        canon = tx.view.resolve(path, "open")
        top = tx.view.top(canon)
        if top is None:
            if not create:
                raise _fail(errno.ENOENT, "open", path, "no such file (and O_CREAT was not given)")
            self._check_parent(tx.view, canon, "open", path)
            tx.create(canon, File(b"", mode, mtime=tx.clock))
            return canon
        if isinstance(top.node, Dir):
            raise _fail(errno.EISDIR, "open", path, "a directory cannot be opened for writing")
        tx.copy_up(canon, "truncate" if truncate else "open-for-write")
        if truncate:
            # O_TRUNC sets the times even when the file was already empty (do_truncate ATTR_MTIME).
            tx.update_inode(canon, lambda n: replace(n, data=b"", mtime=tx.clock))
            tx.effects.append(WriteData(canon, 0))
        return canon

    def write(self, path: str, data: bytes, append: bool = False,
              mode: int = 0o644) -> tuple[Overlay, tuple[Effect, ...]]:
        """Like the shell's ``>`` (or ``>>`` with ``append``): open with O_CREAT, then write ``data``."""
        tx = _Txn(self)
        canon = self._open_write(tx, path, not append, True, mode)
        if data:
            tx.update_inode(canon, lambda n: replace(
                n, data=(n.data + data) if append else data, mtime=tx.clock))
            size = tx.up[canon].size
            tx.effects.append(WriteData(canon, size))
        return tx.done()

    def create(self, path: str, data: bytes = b"", mode: int = 0o644) -> tuple[Overlay, tuple[Effect, ...]]:
        """A new file (``open(O_CREAT|O_EXCL)`` then write); EEXIST if the name exists."""
        tx = _Txn(self)
        canon = tx.view.resolve_parent(path, "open")
        if tx.view.top(canon) is not None:
            raise _fail(errno.EEXIST, "open", path, "a file with this name exists (O_EXCL)")
        tx.create(canon, File(bytes(data), mode, mtime=tx.clock))
        return tx.done()

    def truncate(self, path: str, size: int = 0) -> tuple[Overlay, tuple[Effect, ...]]:
        """``truncate(path, size)``: copy-up, then cut or zero-extend."""
        tx = _Txn(self)
        canon = self._existing(tx.view, path, "truncate", follow=True)
        if isinstance(tx.view.top(canon).node, Dir):  # type: ignore[union-attr]
            raise _fail(errno.EISDIR, "truncate", path, "a directory has no length to set")
        tx.copy_up(canon, "truncate")
        tx.update_inode(canon, lambda n: replace(n, data=n.data[:size].ljust(size, b"\0"), mtime=tx.clock))
        tx.effects.append(WriteData(canon, size))
        return tx.done()

    # --- writing: metadata -------------------------------------------------------

    def chmod(self, path: str, mode: int) -> tuple[Overlay, tuple[Effect, ...]]:
        """``chmod`` (symlinks followed): copies up, then sets the permission bits."""
        return self._setattr(path, "chmod", "mode", oct(mode), lambda n: replace(n, mode=mode & 0o7777))

    def chown(self, path: str, uid: int, gid: int) -> tuple[Overlay, tuple[Effect, ...]]:
        """``chown`` (symlinks followed): copies up, then sets owner and group."""
        return self._setattr(path, "chown", "owner", f"{uid}:{gid}", lambda n: replace(n, uid=uid, gid=gid))

    def utimes(self, path: str, mtime: int) -> tuple[Overlay, tuple[Effect, ...]]:
        """``utimes`` (symlinks followed): copies up, then sets the modification time."""
        return self._setattr(path, "utimes", "mtime", str(mtime), lambda n: replace(n, mtime=mtime))

    def setxattr(self, path: str, name: str, value: bytes) -> tuple[Overlay, tuple[Effect, ...]]:
        """``setxattr`` (symlinks followed): copies up, then sets the attribute."""
        def change(n: Any) -> Any:
            return replace(n, xattrs=tuple(sorted({**dict(n.xattrs), name: bytes(value)}.items())))
        return self._setattr(path, "setxattr", "xattr", name, change)

    def removexattr(self, path: str, name: str) -> tuple[Overlay, tuple[Effect, ...]]:
        """``removexattr``: ENODATA (without copy-up) if absent, else copies up and removes it."""
        node, _ = self.lookup(path, follow=True)
        if name not in dict(node.xattrs):
            # ovl_xattr_set() checks the lower object first: nothing to remove, nothing copied up.
            raise _fail(errno.ENODATA, "removexattr", path, f"it has no attribute {name}")

        def change(n: Any) -> Any:
            return replace(n, xattrs=tuple(kv for kv in n.xattrs if kv[0] != name))
        return self._setattr(path, "removexattr", "xattr", f"{name} removed", change)

    def _setattr(self, path: str, op: str, attr: str, shown: str,
                 change: Callable[[Any], Any]) -> tuple[Overlay, tuple[Effect, ...]]:
        tx = _Txn(self)
        canon = self._existing(tx.view, path, op, follow=True)
        tx.copy_up(canon, op)
        tx.update_inode(canon, change)
        tx.effects.append(SetAttr(canon, attr, shown))
        return tx.done()

    # --- writing: names ---------------------------------------------------------------

    def mkdir(self, path: str, mode: int = 0o755) -> tuple[Overlay, tuple[Effect, ...]]:
        """``mkdir``: a new upper directory; made opaque when it replaces a whiteout."""
        tx = _Txn(self)
        canon = tx.view.resolve_parent(path, "mkdir")
        if tx.view.top(canon) is not None:
            raise _fail(errno.EEXIST, "mkdir", path, "the name exists")
        tx.create(canon, Dir(mode & 0o7777, mtime=tx.clock))
        return tx.done()

    def symlink(self, target: str, path: str) -> tuple[Overlay, tuple[Effect, ...]]:
        """``symlink(target, path)``: only the parents are copied up, never the target."""
        tx = _Txn(self)
        canon = tx.view.resolve_parent(path, "symlink")
        if tx.view.top(canon) is not None:
            raise _fail(errno.EEXIST, "symlink", path, "the name exists")
        tx.create(canon, Symlink(target, mtime=tx.clock))
        return tx.done()

    def link(self, source: str, path: str) -> tuple[Overlay, tuple[Effect, ...]]:
        """``link(source, path)``: copies up the source, then links it in the upper layer."""
        tx = _Txn(self)
        src = self._existing(tx.view, source, "link", follow=False)
        canon = tx.view.resolve_parent(path, "link")
        if tx.view.top(canon) is not None:
            raise _fail(errno.EEXIST, "link", path, "the name exists")
        if isinstance(tx.view.top(src).node, Dir):  # type: ignore[union-attr]
            raise _fail(errno.EPERM, "link", source, "directories cannot be hard-linked")
        tx.copy_up(src, "link")
        node: Any = tx.up[src]
        if node.inode is None:
            tx.next_inode += 1
            node = replace(node, inode=tx.next_inode)
            tx.up[src] = node
        tx.copy_up_parents(canon)
        over = isinstance(tx.up.get(canon), WhiteoutNode)
        tx.up[canon] = node
        tx.effects.append(Link(src, canon))
        if over:
            tx.effects.append(Create(canon, node.kind, True))
        return tx.done()

    def unlink(self, path: str) -> tuple[Overlay, tuple[Effect, ...]]:
        """``unlink``: removes the upper entry; a name a lower layer still has becomes a whiteout."""
        tx = _Txn(self)
        canon = self._existing(tx.view, path, "unlink", follow=False)
        node = tx.view.top(canon).node  # type: ignore[union-attr]
        if isinstance(node, Dir):
            raise _fail(errno.EISDIR, "unlink", path, "it is a directory (use rmdir)")
        self._remove(tx, canon, node.kind)
        return tx.done()

    def rmdir(self, path: str) -> tuple[Overlay, tuple[Effect, ...]]:
        """``rmdir``: the merged directory must be empty; a lower one is replaced by a whiteout."""
        tx = _Txn(self)
        canon = self._existing(tx.view, path, "rmdir", follow=False)
        if canon == "/":
            raise _fail(errno.EBUSY, "rmdir", path, "the root of the overlay is a mount point")
        if not isinstance(tx.view.top(canon).node, Dir):  # type: ignore[union-attr]
            raise _fail(errno.ENOTDIR, "rmdir", path, "it is not a directory")
        if tx.view.names(canon, listing=False):
            raise _fail(errno.ENOTEMPTY, "rmdir", path, "the merged directory still has entries")
        self._remove(tx, canon, "dir")
        return tx.done()

    def _remove(self, tx: _Txn, canon: str, kind: str) -> None:
        # ovl_do_remove(): copy up the parent, then whiteout if a lower layer is positive.
        positive = tx.view.lower_positive(canon)
        tx.copy_up_parents(canon)
        if canon in tx.up:
            tx.remove_upper_tree(canon)
            tx.effects.append(Remove(canon, kind))
        if positive:
            tx.up[canon] = WHITEOUT
            tx.effects.append(Whiteout(canon))

    def rename(self, old: str, new: str) -> tuple[Overlay, tuple[Effect, ...]]:
        """``rename(old, new)``, with overlayfs's rules.

        A lower non-directory is copied up, moved in the upper layer, and a
        whiteout is left at the old name. A lower or merged directory gives
        EXDEV unless ``redirect_dir`` (then only the directory is copied up and
        gets a redirect). A directory that exists only in the upper layer moves
        normally, and becomes opaque when it lands in a merged directory.
        """
        tx = _Txn(self)
        view = tx.view
        # do_renameat2(): both parents are walked before either name is looked up.
        src = view.resolve_parent(old, "rename")
        dst = view.resolve_parent(new, "rename")
        if view.top(src) is None:
            raise _fail(errno.ENOENT, "rename", old, "no layer has this name (or a whiteout hides it)")
        if src == "/" or dst == "/":
            raise _fail(errno.EBUSY, "rename", old if src == "/" else new, "the overlay's root cannot move")
        if _is_below(dst, src):
            raise _fail(errno.EINVAL, "rename", new, f"{new} is inside {old}")
        src_top = view.top(src)
        dst_top = view.top(dst)
        assert src_top is not None
        if dst_top is not None and _is_below(src, dst):
            raise _fail(errno.ENOTEMPTY, "rename", new, f"{old} is inside {new}")
        if src == dst or (dst_top is not None and self._same_inode(src_top, dst_top)):
            return tx.done()  # vfs_rename(): renaming an inode onto itself does nothing.
        src_dir = isinstance(src_top.node, Dir)
        if dst_top is not None:
            dst_dir = isinstance(dst_top.node, Dir)
            if src_dir and not dst_dir:
                raise _fail(errno.ENOTDIR, "rename", new, "a directory cannot replace a non-directory")
            if not src_dir and dst_dir:
                raise _fail(errno.EISDIR, "rename", new, "a non-directory cannot replace a directory")
        src_lowered = len(view.stack(src) or []) > 1 or src_top.layer != "upper"
        if src_dir and src_lowered and not self.redirect_dir:
            raise _fail(errno.EXDEV, "rename", old,
                        "overlayfs does not move a directory that comes from a lower layer "
                        "(redirect_dir=off); mv copies it instead")
        if dst_top is not None and isinstance(dst_top.node, Dir) and view.names(dst, listing=False):
            raise _fail(errno.ENOTEMPTY, "rename", new, "the target directory is not empty")

        positive = view.lower_positive(src)
        was_opaque = isinstance(src_top.node, Dir) and src_top.node.opaque
        redirect_from = None
        if src_dir and src_lowered:
            lower_entry = next(e for e in view.stack(src) or [] if e.layer != "upper")
            redirect_from = lower_entry.path
            tx.copy_up(src, "rename")
        elif not src_dir:
            tx.copy_up(src, "rename")
        else:
            tx.copy_up_parents(src)
        tx.copy_up_parents(dst)
        if dst in tx.up:
            tx.remove_upper_tree(dst)
        tx.move_upper_tree(src, dst)
        tx.effects.append(Rename(src, dst))
        if redirect_from is not None:
            moved = tx.up[dst]
            assert isinstance(moved, Dir)
            tx.up[dst] = replace(moved, redirect=redirect_from)
            tx.effects.append(Redirect(dst, redirect_from))
        elif src_dir and not was_opaque and tx.view.is_merged(_parent(dst)):
            # ovl_rename(): a pure-upper directory moved into a merged directory is made
            # opaque, so that no lower directory of the same name can ever merge into it.
            moved = tx.up[dst]
            assert isinstance(moved, Dir)
            tx.up[dst] = replace(moved, opaque=True)
            tx.effects.append(Opaque(dst))
        if positive:
            tx.up[src] = WHITEOUT
            tx.effects.append(Whiteout(src))
        return tx.done()

    @staticmethod
    def _same_inode(a: _Entry, b: _Entry) -> bool:
        ia, ib = getattr(a.node, "inode", None), getattr(b.node, "inode", None)
        return a.layer == b.layer and ia is not None and ia == ib

    # --- helpers ------------------------------------------------------------------------

    @staticmethod
    def _existing(view: _View, path: str, op: str, follow: bool) -> str:
        canon = view.resolve(path, op, follow) if follow else view.resolve_parent(path, op)
        if view.top(canon) is None:
            raise _fail(errno.ENOENT, op, path, "no layer has this name (or a whiteout hides it)")
        return canon

    @staticmethod
    def _check_parent(view: _View, canon: str, op: str, path: str) -> None:
        parent = view.top(_parent(canon))
        if parent is None:
            raise _fail(errno.ENOENT, op, path, f"{_parent(canon)} does not exist")
        if not isinstance(parent.node, Dir):
            raise _fail(errno.ENOTDIR, op, path, f"{_parent(canon)} is not a directory")

    # --- docker diff -------------------------------------------------------------------------

    def image(self) -> Overlay:
        """The same lowers with an empty upper layer: what the image alone shows."""
        return replace(self, upper=Layer())

    def diff(self) -> list[tuple[str, str]]:
        """``docker diff``: ``(kind, path)`` with kind ``A`` (added), ``C`` (changed) or ``D`` (deleted).

        Compares the merged view with the image's view (the lowers alone), the
        way Docker's tree comparison does: ``C`` when the type, mode, owner or
        xattr ``security.capability`` differ, or for non-directories the size or
        mtime; ``D`` for a missing path (its subtree is not listed); a directory
        with changes below is printed ``C`` just before them unless it is itself
        ``A``; ``/`` never. Names are sorted; deletions come last in a directory.
        """
        new, old = self.walk(), self.image().walk()
        out: list[tuple[str, str]] = []
        _diff_dir("/", new, old, out, added=False)
        return out


def _children_of(tree: Mapping[str, Node], path: str) -> list[str]:
    return sorted(p for p in tree if p != "/" and _parent(p) == path)


def _stat_differs(a: Node, b: Node) -> bool:
    if a.kind != b.kind or a.mode != b.mode or a.uid != b.uid or a.gid != b.gid:
        return True
    if dict(a.xattrs).get("security.capability") != dict(b.xattrs).get("security.capability"):
        return True
    return not isinstance(a, Dir) and (a.mtime != b.mtime or a.size != b.size)


def _diff_dir(path: str, new: Mapping[str, Node], old: Mapping[str, Node],
              out: list[tuple[str, str]], added: bool) -> None:
    """One directory of moby's addChanges(): its children, then a ``C`` for itself if needed."""
    start = len(out)
    old_kids = set(_children_of(old, path)) if isinstance(old.get(path), Dir) and isinstance(new[path], Dir) \
        else set()
    for child in _children_of(new, path):
        child_added = False
        if child in old_kids:
            old_kids.discard(child)
            if _stat_differs(old[child], new[child]):
                out.append(("C", child))
                child_added = True
            if isinstance(new[child], Dir):
                _diff_dir(child, new, old, out, child_added)
        else:
            out.append(("A", child))
            if isinstance(new[child], Dir):
                _diff_dir(child, new, {}, out, True)
    for gone in sorted(old_kids):
        out.append(("D", gone))
    if len(out) > start and not added and path != "/":
        out.insert(start, ("C", path))
