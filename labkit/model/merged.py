"""The merged view of an overlay: what a path resolves to through the upper layer and the lowers.

Lookup goes top-down: a non-directory hides everything below it, directories
with the same name merge, an opaque directory stops the merge and a whiteout
hides the name below it (Documentation/filesystems/overlayfs.rst). Symlinks are
followed as in a container whose root is the overlay. :class:`labkit.model.overlay.Overlay`
asks this view before every change.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from dataclasses import dataclass

from labkit.model.layers import (
    MAXSYMLINKS,
    Dir,
    File,
    Layer,
    LayerRef,
    Node,
    Symlink,
    WhiteoutNode,
    _ancestors,
    _base,
    _fail,
    _join,
    _parent,
)

# --------------------------------------------------------------------------- merged view


@dataclass(frozen=True)
class MergedEntry:
    """One layer's contribution to a merged path: which layer, at which path there, what node."""

    layer: LayerRef
    path: str
    node: Node


class MergedView:
    """Lookups over a (possibly changing) upper mapping and the fixed lowers."""

    def __init__(self, upper: Mapping[str, Node], lowers: tuple[Layer, ...]) -> None:
        self.upper = upper
        self.lowers = lowers

    def node_in(self, layer: LayerRef, path: str) -> Node | None:
        return self.upper.get(path) if layer == "upper" else self.lowers[layer].get(path)

    def stack(self, path: str) -> list[MergedEntry] | None:
        """The layers that make up merged ``path``, top first; ``None`` when it does not exist.

        Follows ovl_lookup(): per layer of the parent's merge stack, a missing
        name goes on to the next layer, a whiteout stops (hiding what is
        below), a non-directory is taken only if nothing was found above and
        stops, a directory is taken and merging goes on unless it is opaque.
        """
        if path == "/":
            root = [MergedEntry("upper", "/", self.upper["/"])]
            return root + [MergedEntry(i, "/", layer.entries["/"]) for i, layer in enumerate(self.lowers)]
        pstack = self.stack(_parent(path))
        if pstack is None or not isinstance(pstack[0].node, Dir):
            return None
        name = _base(path)
        found: list[MergedEntry] = []
        for pentry in pstack:
            where = _join(pentry.path, name)
            node = self.node_in(pentry.layer, where)
            if node is None:
                continue
            verdict = self._take(found, MergedEntry(pentry.layer, where, node))
            if verdict == "stop":
                break
            if verdict == "redirect":
                assert isinstance(node, Dir) and node.redirect is not None
                self._follow_redirect(found, node.redirect)
                break
        return found or None

    @staticmethod
    def _take(found: list[MergedEntry], entry: MergedEntry) -> str:
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

    def _follow_redirect(self, found: list[MergedEntry], target: str) -> None:
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
                if node is not None and self._take(found, MergedEntry(i, target, node)) == "stop":
                    return
                continue
            if blocked:
                return

    def top(self, path: str) -> MergedEntry | None:
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

    def _children(self, entry: MergedEntry) -> list[str]:
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
