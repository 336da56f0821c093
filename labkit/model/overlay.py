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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from labkit.errors import InvalidArgument
from labkit.model.effects import (
    CopyUp,
    Create,
    Effect,
    HardLinkBroken,
    Link,
    Opaque,
    ParentCopyUp,
    Redirect,
    Remove,
    Rename,
    SetAttr,
    Whiteout,
    WriteData,
)
from labkit.model.layers import (
    MAX_STACK,
    MAXSYMLINKS,
    WHITEOUT,
    Dir,
    File,
    Layer,
    LayerContents,
    LayerRef,
    LayerSummary,
    Node,
    Served,
    Symlink,
    UpperEntry,
    WhiteoutNode,
    _ancestors,
    _fail,
    _is_below,
    _join,
    _parent,
    _summarize,
    from_tree,
)
from labkit.model.merged import MergedEntry, MergedView

__all__ = [
    "MAXSYMLINKS",
    "MAX_STACK",
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

# --------------------------------------------------------------------------- transaction


class _Txn:
    """One operation in progress: a private copy of the upper layer and the effects so far."""

    def __init__(self, ov: Overlay) -> None:
        self.ov = ov
        self.up: dict[str, Node] = dict(ov.upper.entries)
        self.view = MergedView(self.up, ov.lowers)
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

    def _view(self) -> MergedView:
        return MergedView(self.upper.entries, self.lowers)

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
    def _same_inode(a: MergedEntry, b: MergedEntry) -> bool:
        ia, ib = getattr(a.node, "inode", None), getattr(b.node, "inode", None)
        return a.layer == b.layer and ia is not None and ia == ib

    # --- helpers ------------------------------------------------------------------------

    @staticmethod
    def _existing(view: MergedView, path: str, op: str, follow: bool) -> str:
        canon = view.resolve(path, op, follow) if follow else view.resolve_parent(path, op)
        if view.top(canon) is None:
            raise _fail(errno.ENOENT, op, path, "no layer has this name (or a whiteout hides it)")
        return canon

    @staticmethod
    def _check_parent(view: MergedView, canon: str, op: str, path: str) -> None:
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
