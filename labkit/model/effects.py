"""What overlayfs did, as typed events: copy-up, whiteout, opaque, redirect, and the plain changes.

Every operation of :class:`labkit.model.overlay.Overlay` returns the effects it
had; each says in one sentence what the kernel did (:meth:`Effect.explain`) and
names the mechanism.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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
