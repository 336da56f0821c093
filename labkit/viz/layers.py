"""The layer stack, as the lesson draws it: shared read-only layers under one writable layer per container.

Three steps, kept apart so each can be tested and reused:

1. **Plain data → scene** (:func:`scene`, pure): the image's layers (role, size,
   file count) and, per container, what its upper dir holds and what the lower
   layers show at the same paths. The rules of overlayfs decide what each upper
   entry *is* (Documentation/filesystems/overlayfs.rst): a character device 0/0
   is a whiteout; a directory with ``trusted.overlay.opaque=y`` is opaque; a file
   the lower layers also have was copied up (its lower size is the bytes copied);
   anything else was created in the upper layer.
2. **Where the plain data comes from**: :func:`gather` asks the engine
   (``inspect``, the image's layers, :meth:`labkit.Engine.layer_contents`, which
   the real backend reads from the upper dir on disk and the simulator from its
   overlay model); :func:`scene_from_overlays` reads pure overlay models. Both
   end in :func:`scene`.
3. **Scene → figure** (:func:`draw`): matplotlib, no I/O.

Layers are numbered as ``docker history`` lists them from the bottom: layer 1 is
the base OS. A trace step can be applied to a scene (:meth:`LayerScene.after`), so
the stepper redraws the stack as copy-ups and whiteouts happen.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from labkit.errors import InvalidArgument, NoSuchContainer
from labkit.model.overlay import LayerContents, Served
from labkit.viz import palette as P

if TYPE_CHECKING:
    from labkit.engine import Engine

#: Upper-dir entry kinds the pictures tell apart.
COPY_UP, ADDED, WHITEOUT, OPAQUE = "copy-up", "add", "whiteout", "opaque"

MAX_LINES = 6  # entries listed per writable layer before "… and N more"


@dataclass(frozen=True)
class ImageLayer:
    """One read-only layer, as the picture labels it.

    Attributes:
        number: 1 for the bottom layer (base OS), counting up.
        role: What the layer holds in the lesson's words ("base OS", "runtime", "app code").
        size: Bytes of regular files.
        files: Entries (files, directories, links, whiteouts).
        digest: ``sha256:…`` of the layer, when known.
        known: False for a layer only a trace's ``mount-overlay`` told of: its size and files are not known.
    """

    number: int
    role: str
    size: int
    files: int
    digest: str = ""
    known: bool = True


@dataclass(frozen=True)
class Change:
    """One entry of a writable layer.

    Attributes:
        kind: ``copy-up``, ``add``, ``whiteout`` or ``opaque``.
        path: The path inside the container.
        bytes: Data copied up (``copy-up``) or written (``add``).
        from_layer: The image layer a copy-up came from.
        is_dir: A directory (shown with a trailing ``/``).
    """

    kind: str
    path: str
    bytes: int = 0
    from_layer: int | None = None
    is_dir: bool = False


@dataclass(frozen=True)
class Writable:
    """One container's writable layer (its overlayfs upper dir).

    Attributes:
        name: The container's name.
        id: Its full id ("" when unknown).
        changes: What the upper dir holds, in path order (parent directories that were
            only copied up to hold something are left out).
        size: Bytes of regular files in the upper dir.
        files: Entries in the upper dir.
        serves: For the scene's chosen path, which layer serves it in this container.
        status: The container's status, when known.
        traced: Drawn from a trace (the stepper), which records the engine's writes only: an empty
            list then means "none recorded" once the container's processes have run.
        before: The container existed before the trace began (the trace stops or removes it): what
            its writable layer held then is not in the trace, so an empty list is never "empty".
    """

    name: str
    id: str = ""
    changes: tuple[Change, ...] = ()
    size: int = 0
    files: int = 0
    serves: Served | None = None
    status: str = ""
    traced: bool = False
    before: bool = False

    def with_change(self, change: Change) -> Writable:
        """This layer after ``change`` (replacing any earlier entry for the same path)."""
        kept = tuple(c for c in self.changes if c.path != change.path)
        changes = tuple(sorted(kept + (change,), key=lambda c: c.path))
        grow = change.bytes if change.kind in (COPY_UP, ADDED) else 0
        return replace(self, changes=changes, size=self.size + grow, files=self.files + 1)


@dataclass(frozen=True)
class LayerScene:
    """Everything the layer picture shows.

    Attributes:
        image: The image's name (``frontend-app:v2.1.0``).
        layers: Its read-only layers, bottom first.
        containers: One writable layer per container, left to right.
        path: The path whose serving layer is marked, if any.
        removed: Containers that were here and were removed (their writable layers deleted with them).
        simulated: Read from the simulator's model (the picture is stamped so).
    """

    image: str
    layers: tuple[ImageLayer, ...]
    containers: tuple[Writable, ...] = ()
    path: str | None = None
    removed: tuple[str, ...] = ()
    simulated: bool = False

    def after(self, step: Any) -> LayerScene:
        """The scene after one trace step (:class:`labkit.model.events.Step`); other kinds change nothing.

        ``create-layer`` adds an empty writable layer, ``remove-layer`` takes it away,
        ``copy-up`` / ``whiteout`` / ``opaque`` / ``add`` put an entry in it.
        """
        kind, change, cid = step.kind, dict(step.change or {}), step.container
        idx = next((i for i, w in enumerate(self.containers) if cid and w.id == cid), None)
        if kind == "create-layer" and idx is None:
            return replace(self, containers=self.containers + (Writable(name=step.label(), id=cid),))
        if kind == "remove-layer" and idx is not None:
            return replace(self, containers=self.containers[:idx] + self.containers[idx + 1:])
        entry = _change_from_step(kind, change)
        if entry is None:
            return self
        if idx is None:
            return replace(self, containers=self.containers + (Writable(name=step.label(), id=cid).with_change(entry),))
        layers = list(self.containers)
        layers[idx] = layers[idx].with_change(entry)
        return replace(self, containers=tuple(layers))


def _change_from_step(kind: str, change: Mapping[str, Any]) -> Change | None:
    path = change.get("path")
    if not path:
        return None
    if kind == "copy-up":
        src = change.get("from_layer")
        return Change(COPY_UP, path, int(change.get("bytes") or 0), src if isinstance(src, int) else None)
    if kind == "whiteout":
        return Change(WHITEOUT, path)
    if kind == "opaque":
        return Change(OPAQUE, path, is_dir=True)
    if kind == "add":
        return Change(ADDED, path, int(change.get("bytes") or 0))
    return None


def replay(base: LayerScene, steps: Iterable[Any]) -> LayerScene:
    """``base`` with every step applied in order (for the stepper)."""
    out = base
    for step in steps:
        out = out.after(step)
    return out


# -- 1. plain data → scene (pure) -------------------------------------------------------------

def scene(image: str, layers: Sequence[Mapping[str, Any]], containers: Sequence[Mapping[str, Any]] = (),
          path: str | None = None) -> LayerScene:
    """Build a :class:`LayerScene` from plain data, by overlayfs's rules.

    Args:
        image: The image's name.
        layers: Bottom first: ``{"role", "size", "files"[, "digest"]}``.
        containers: Each ``{"name"[, "id", "status"], "upper": [...], "below": {...}[, "serves"]}``:
            ``upper`` lists the upper dir's entries as ``{"path", "type", "size"[, "opaque", "made_anew"]}``
            with ``type`` one of ``file``, ``dir``, ``symlink``, ``whiteout`` (``made_anew``: a file made
            in the writable layer over an image file, a new file and no copy-up); ``below`` maps a
            path to ``{"layer", "size"}`` when the image layers show something there;
            ``serves`` says which layer serves ``path``.
        path: The path to mark, if any.
    """
    image_layers = tuple(
        ImageLayer(i + 1, str(lay.get("role") or f"layer {i + 1}"), int(lay.get("size") or 0),
                   int(lay.get("files") or 0), str(lay.get("digest") or ""))
        for i, lay in enumerate(layers)
    )
    writables = tuple(_writable(c) for c in containers)
    return LayerScene(image, image_layers, writables, path)


def _writable(c: Mapping[str, Any]) -> Writable:
    upper = sorted(c.get("upper") or (), key=lambda e: e["path"])
    below: Mapping[str, Mapping[str, Any]] = c.get("below") or {}
    changes = []
    size = 0
    for e in upper:
        kind = e.get("type", "file")
        p = e["path"]
        if kind == "file":
            size += int(e.get("size") or 0)
        change = classify(p, kind, int(e.get("size") or 0), bool(e.get("opaque")),
                          None if e.get("made_anew") else below.get(p))
        if change is not None:
            changes.append(change)
    return Writable(name=str(c.get("name", "")), id=str(c.get("id", "")), changes=tuple(changes), size=size,
                    files=len(upper), serves=c.get("serves"), status=str(c.get("status", "")))


def classify(path: str, kind: str, size: int, opaque: bool, below: Mapping[str, Any] | None) -> Change | None:
    """What one upper-dir entry means (overlayfs.rst): whiteout, opaque dir, copy-up or new.

    A directory the lower layers also have and that is not opaque was only copied
    up to hold something below it: it says nothing of its own, so it gives ``None``.
    """
    if kind == "whiteout":
        return Change(WHITEOUT, path)
    if kind == "dir":
        if opaque:
            return Change(OPAQUE, path, is_dir=True)
        return None if below is not None else Change(ADDED, path, is_dir=True)
    if below is not None:
        layer = below.get("layer")
        return Change(COPY_UP, path, int(below.get("size") or 0), layer if isinstance(layer, int) else None)
    return Change(ADDED, path, size)


# -- 2a. the engine's state ----------------------------------------------------------------------

def gather(engine: Engine, refs: Sequence[str], path: str | None = None) -> LayerScene:
    """The scene for containers (or one image) from the engine's state.

    Reads the image's layers from the image store (role from the image history,
    size, file count) and, per container, :meth:`labkit.Engine.layer_contents`:
    the real backend reads the upper dir on disk (each entry's type, size, the
    whiteout (char 0/0) and opaque (xattr) marks, and what the image layers hold
    at the same path); the simulator reads its overlay model. Both say which
    layer serves ``path``.

    Args:
        engine: A :class:`labkit.Engine`.
        refs: Container names or ids sharing one image; or a single image reference.
        path: A path to mark with the layer that serves it.

    Raises:
        InvalidArgument: No reference, or containers of different images.
        NotFound: A reference that is neither a container nor an image.
    """
    if not refs:
        raise InvalidArgument("no container or image to draw", "Name one or more containers, or an image")
    containers: list[dict[str, Any]] = []
    image = None
    for ref in refs:
        try:
            info = engine.inspect(ref)
        except NoSuchContainer:
            if len(refs) == 1:
                image = engine.image_store.get(ref)
                break
            raise
        img = engine.image_store.get(info["Image"])
        if image is not None and img.id != image.id:
            raise InvalidArgument(
                f"{refs[0]} and {ref} run different images; one picture draws containers that share their layers",
                "Draw each image's containers separately",
            )
        image = img
        containers.append(container_data(info["Name"].lstrip("/"), engine.layer_contents(info["Id"], path),
                                         info["Id"], info["State"]["Status"]))
    assert image is not None
    name = image.repo_tags[0] if image.repo_tags else image.short_id
    layers = [{"role": layer.comment or _role_from(layer.created_by), "size": layer.size, "files": layer.files,
               "digest": layer.digest} for layer in image.layers]
    return replace(scene(name, layers, containers, path), simulated=engine.backend.simulated)


def _role_from(created_by: str) -> str:
    text = created_by.replace("/bin/sh -c #(nop) ", "").strip()
    return text[:24] or "layer"


def container_data(name: str, contents: LayerContents, cid: str = "", status: str = "") -> dict[str, Any]:
    """The plain data :func:`scene` takes for one container, from what its backend read of its writable layer."""
    upper = [{"path": e.path, "type": e.kind, "size": e.size, "opaque": e.opaque, "made_anew": e.made_anew}
             for e in contents.entries]
    below = {e.path: {"layer": e.lower_layer, "size": e.lower_size} for e in contents.entries
             if e.lower_layer is not None}
    out: dict[str, Any] = {"name": name, "id": cid, "status": status, "upper": upper, "below": below}
    if contents.serves is not None:
        out["serves"] = contents.serves
    return out


# -- 2b. the pure overlay model -------------------------------------------------------------------

def scene_from_overlays(overlays: Mapping[str, Any], roles: Sequence[str] = (), image: str = "image",
                        path: str | None = None) -> LayerScene:
    """The scene for containers modelled by :class:`labkit.model.overlay.Overlay` (all on the same lowers).

    Args:
        overlays: Container name → its overlay (its lowers: the image's layers alone, top first).
        roles: Role of each lower layer, bottom first (default "layer N").
        image: The image's name.
        path: A path to mark.
    """
    if not overlays:
        raise InvalidArgument("no overlay to draw", "Pass at least one container's Overlay")
    first = next(iter(overlays.values()))
    n = len(first.lowers)
    sums = {s.layer: s for s in first.describe()}
    layers = []
    for number in range(1, n + 1):
        s = sums[n - number]
        layers.append({"role": roles[number - 1] if number - 1 < len(roles) else "",
                       "size": s.bytes, "files": s.files + s.dirs + s.symlinks + s.whiteouts})
    return scene(image, layers, [container_data(name, ov.contents(path)) for name, ov in overlays.items()], path)


# -- 3. scene → figure --------------------------------------------------------------------------

#: Geometry, in the axes' 0–100 box.
_LEFT, _RIGHT = 27.0, 98.5          # the columns containers stand in
_LOW_TOP, _LOW_BOTTOM = 44.0, 4.0   # the read-only layers
_UP_TOP, _UP_BOTTOM = 86.0, 51.0    # the writable layers


def draw(sc: LayerScene, *, into: Any = None) -> Any:
    """The layer stack as a figure.

    Read-only image layers are wide blue bars shared by every container (label:
    number, role, size, file count); above them, one orange writable layer ✎ per
    container listing its entries. Copy-ups are vermillion arrows from the layer
    the file came from up to its entry, labelled with the bytes copied; whiteouts
    are grey tombstones; opaque directories a hatched purple square. For the
    chosen path, a green frame marks the layer that serves it in each container.

    Artists carry ``gid`` names tests can find: ``lower:N``, ``upper:NAME``,
    ``copy-up:PATH``, ``tombstone:PATH``, ``opaque:PATH``, ``serves:NAME``.

    Drawn on ``into``, a figure made before, when given (see :func:`labkit.viz.palette.figure`).
    """
    fig = P.figure(13.0, 8.0, into=into)
    ax = P.blank_axes(fig)
    ncont = len(sc.containers)
    if ncont and not sc.layers:  # a trace that stacked no overlay (it only stops or removes) tells no layers
        title = f"{_count(ncont, 'container')}: the trace does not say which image layers it stands on"
    elif ncont:
        title = f"{sc.image}: {_count(ncont, 'container')} on {_count(len(sc.layers), 'shared read-only layer')}"
    else:
        title = f"{sc.image}: {_count(len(sc.layers), 'read-only layer')}"
    ax.text(50, 97, title, ha="center", va="top", fontsize=P.TITLE, fontweight="bold", family=P.FONT)
    _draw_lowers(ax, sc)
    if ncont:
        ax.text(1.5, (_UP_TOP + _UP_BOTTOM) / 2, f"{P.PENCIL} writable\n(upperdir)\none per container",
                ha="left", va="center", fontsize=P.LABEL, color=P.BLACK, family=P.FONT)
        width = (_RIGHT - _LEFT) / ncont
        for i, w in enumerate(sc.containers):
            _draw_writable(ax, sc, w, _LEFT + i * width, width)
    elif sc.removed:
        ax.text((_LEFT + _RIGHT) / 2, (_UP_TOP + _UP_BOTTOM) / 2,
                f"{', '.join(sc.removed)} removed: its writable layer was deleted with it",
                ha="center", va="center", fontsize=P.LABEL, color=P.GREY, style="italic", family=P.FONT,
                gid="removed")
    else:
        ax.text((_LEFT + _RIGHT) / 2, (_UP_TOP + _UP_BOTTOM) / 2,
                "no container yet: each 'run' adds its own writable layer here",
                ha="center", va="center", fontsize=P.LABEL, color=P.GREY, style="italic", family=P.FONT)
    if sc.path:
        ax.text(50, 91.5, f"{sc.path}: the green frame marks the layer that serves it",
                ha="center", va="top", fontsize=P.TEXT, color=P.SERVES, fontweight="bold", family=P.FONT)
    return P.mark_simulated(fig, sc.simulated)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _lower_band(sc: LayerScene, number: int) -> tuple[float, float]:
    """(bottom, top) of image layer ``number``'s bar."""
    n = max(1, len(sc.layers))
    h = (_LOW_TOP - _LOW_BOTTOM) / n
    bottom = _LOW_BOTTOM + (number - 1) * h
    return bottom, bottom + h * 0.9


def _draw_lowers(ax: Any, sc: LayerScene) -> None:
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    from matplotlib.patches import Rectangle

    for layer in sc.layers:
        bottom, top = _lower_band(sc, layer.number)
        ax.add_patch(Rectangle((1.5, bottom), _RIGHT - 1.5, top - bottom, facecolor=P.LOWER, edgecolor=P.BLUE,
                               linewidth=1.5, gid=f"lower:{layer.number}", zorder=1))
        mid = (bottom + top) / 2
        ax.text(2.5, mid + 0.2, f"L{layer.number}  {layer.role}", ha="left", va="bottom", fontsize=P.LABEL,
                fontweight="bold", family=P.FONT, zorder=2)
        detail = (f"{P.size_text(layer.size)} · {_count(layer.files, 'file')} · read-only" if layer.known
                  else "read-only · its size is not in the trace")
        ax.text(2.5, mid - 0.2, detail,
                ha="left", va="top", fontsize=P.TEXT, family=P.FONT, zorder=2)


def _short_path(path: str, room: int) -> str:
    return path if len(path) <= room else "…" + path[-(room - 1):]


#: The order entries are listed in when a writable layer holds more than fits: what overlayfs
#: did to the image's files first (copy-ups, whiteouts, opaque dirs), then what is merely new.
_SHOWN_FIRST = {COPY_UP: 0, WHITEOUT: 1, OPAQUE: 2, ADDED: 3}


def shown_entries(w: Writable) -> tuple[tuple[Change, ...], int]:
    """The entries a writable layer lists, and how many are left out (summed up as "… and N more").

    Up to :data:`MAX_LINES` rows: copy-ups, whiteouts and opaque dirs before new
    files, each kind in path order; when some are left out, the last row says so.
    """
    ordered = sorted(w.changes, key=lambda c: (_SHOWN_FIRST.get(c.kind, 9), c.path))
    if len(ordered) <= MAX_LINES:
        return tuple(ordered), 0
    return tuple(ordered[:MAX_LINES - 1]), len(ordered) - (MAX_LINES - 1)


def _draw_writable(ax: Any, sc: LayerScene, w: Writable, x0: float, width: float) -> None:
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    from matplotlib.patches import Rectangle

    pad = 0.8
    left, right = x0 + pad, x0 + width - pad
    ax.add_patch(Rectangle((left, _UP_BOTTOM), right - left, _UP_TOP - _UP_BOTTOM, facecolor=P.UPPER,
                           edgecolor=P.BLACK, linewidth=1.5, gid=f"upper:{w.name}", zorder=1))
    status = f"  ({w.status})" if w.status else ""
    ax.text(left + 1, _UP_TOP - 1, f"{P.PENCIL} {w.name}{status}", ha="left", va="top", fontsize=P.LABEL,
            fontweight="bold", family=P.FONT, zorder=3)
    ax.text(left + 1, _UP_TOP - 5.6, f"{P.size_text(w.size)} · {_count(w.files, 'entry')}".replace("entrys", "entries"),
            ha="left", va="top", fontsize=P.SMALL, family=P.FONT, zorder=3)
    room = max(12, int((right - left) * 0.95))
    shown, more = shown_entries(w)
    # Rows fill the box below the name and sizes, above the line that says who serves the chosen path.
    rows_top, rows_bottom = _UP_TOP - 10.5, _UP_BOTTOM + (4.5 if sc.path else 1.0)
    line_h = (rows_top - rows_bottom) / MAX_LINES
    text_x = left + 3.6
    if not shown:
        # A real trace records the engine's own writes (copy-ups it made, whiteouts), not what the container's
        # processes write: once one has run, an empty list means "none recorded", not "none made".
        if w.before:
            quiet = "made before this trace: what it wrote then\nis not in it ('labkit diff' lists it)"
        elif not w.traced or w.status in ("", "created"):
            quiet = "empty: nothing written yet"
        else:
            quiet = "no write recorded in this trace\n('labkit diff' lists what its processes wrote)"
        ax.text(text_x, rows_top, quiet, ha="left", va="top", fontsize=P.TEXT,
                style="italic", family=P.FONT, zorder=3)
    for row, c in enumerate(shown):
        y = rows_top - row * line_h
        name = _short_path(c.path, room - 14) + ("/" if c.is_dir else "")
        mid = y - line_h * 0.42  # the row's text is hung from y; its middle is a little under half a line below
        if c.kind == WHITEOUT:
            _tombstone(ax, text_x - 2.6, mid - 1.3, 1.9, 2.8, gid=f"tombstone:{c.path}")
            label = f"{name}  whiteout"
        elif c.kind == OPAQUE:
            ax.add_patch(Rectangle((text_x - 2.6, mid - 1.2), 1.9, 2.4, facecolor=P.OPAQUE, edgecolor=P.BLACK,
                                   hatch="///", gid=f"opaque:{c.path}", zorder=3))
            label = f"{name}  opaque dir"
        elif c.kind == COPY_UP:
            _up_mark(ax, text_x - 1.6, mid)
            src = f" from L{c.from_layer}" if c.from_layer else ""
            label = f"{name}  copied up{src}"
        else:
            _new_mark(ax, text_x - 1.6, mid)
            label = f"{name}  new" + (f", {P.size_text(c.bytes)}" if c.bytes else "")
        ax.text(text_x, y, label, ha="left", va="top", fontsize=P.TEXT, family=P.FONT, zorder=3, color=P.BLACK,
                gid=f"entry:{w.name}:{c.path}")
    known = range(1, len(sc.layers) + 1)
    _copy_up_arrows(ax, sc, [c for c in shown if c.kind == COPY_UP and c.from_layer in known], left, right)
    if more:
        y = rows_top - len(shown) * line_h
        ax.text(text_x, y, f"… and {more} more", ha="left", va="top", fontsize=P.TEXT, style="italic",
                family=P.FONT, zorder=3, gid=f"more:{w.name}")
    if sc.path and w.serves is not None:
        _mark_serving(ax, sc, w, left, right)


def _new_mark(ax: Any, x: float, y: float) -> None:
    """A bold plus: a file created in the writable layer (two strokes: cheaper to draw than a glyph)."""
    ax.plot([x - 0.55, x + 0.55, float("nan"), x, x], [y, y, float("nan"), y - 0.9, y + 0.9], color=P.BLACK,
            linewidth=2.5, solid_capstyle="butt", zorder=3)


def _up_mark(ax: Any, x: float, y: float) -> None:
    """An upward arrow: a file copied up from an image layer."""
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    from matplotlib.patches import Polygon

    ax.plot([x, x], [y - 1.1, y + 0.2], color=P.BLACK, linewidth=2.5, solid_capstyle="butt", zorder=3)
    ax.add_patch(Polygon([(x - 0.55, y + 0.1), (x + 0.55, y + 0.1), (x, y + 1.2)], closed=True,
                         facecolor=P.BLACK, edgecolor=P.BLACK, linewidth=0.5, zorder=3))


def _copy_up_arrows(ax: Any, sc: LayerScene, ups: list[Change], left: float, right: float) -> None:
    """One arrow per copy-up, from the layer the file came from up into the writable layer, with the bytes.

    Arrows stand side by side across the column; their labels take three heights in
    the source layer's bar in turn, so neighbours' labels stand on different lines.
    """
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    from matplotlib.patches import FancyArrowPatch

    step = (right - left - 4) / max(len(ups), 1)
    for k, c in enumerate(ups):
        bottom, top = _lower_band(sc, c.from_layer)  # type: ignore[arg-type]
        sx = left + 3 + k * step
        sy = bottom + (top - bottom) * (0.75, 0.5, 0.25)[k % 3]
        P.add_arrow(ax, FancyArrowPatch((sx, sy), (sx, _UP_BOTTOM), arrowstyle="-|>", mutation_scale=24, linewidth=3,
                                         color=P.COPY_UP, shrinkA=0, shrinkB=0, gid=f"copy-up:{c.path}", zorder=4))
        label = f"{os.path.basename(c.path)} {P.size_text(c.bytes)}"
        # About 0.8 axes units per character at this size: a label that would run off the bar's
        # right end stands on the arrow's left instead.
        leftward = sx + 1.5 + 0.8 * len(label) > _RIGHT
        ax.text(sx - 0.6 if leftward else sx + 0.6, sy, label, ha="right" if leftward else "left", va="center",
                fontsize=P.SMALL, fontweight="bold", color=P.WHITE, family=P.FONT, zorder=5,
                gid=f"copy-up-label:{c.path}",
                bbox={"boxstyle": "round,pad=0.25", "facecolor": P.COPY_UP, "edgecolor": "none"})


def _tombstone(ax: Any, x: float, y: float, w: float, h: float, gid: str) -> None:
    """A small grave: a rectangle with a round top and a cross (a whiteout hides a name, it does not erase it)."""
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    import numpy as np
    from matplotlib.patches import Polygon

    r = w / 2
    angles = np.linspace(0, np.pi, 16)
    top = [(x + r + r * np.cos(a), y + h - r * 0.9 + r * 0.9 * np.sin(a) * 1.6) for a in angles]
    pts = [(x + w, y)] + top + [(x, y)]
    ax.add_patch(Polygon(pts, closed=True, facecolor=P.WHITEOUT, edgecolor=P.BLACK, linewidth=1.2, gid=gid,
                         zorder=3))
    cx, cy = x + r, y + h * 0.45  # a Latin cross: the bar above the middle of the upright
    ax.plot([cx - r * 0.45, cx + r * 0.45, float("nan"), cx, cx], [cy + h * 0.12, cy + h * 0.12, float("nan"),
            cy - h * 0.25, cy + h * 0.25], color=P.WHITE, linewidth=1.5, zorder=4)


def _mark_serving(ax: Any, sc: LayerScene, w: Writable, left: float, right: float) -> None:
    # matplotlib loads when a picture is drawn, not when labkit.viz is imported
    from matplotlib.patches import Rectangle

    serves = w.serves
    if serves == "upper":
        box = (left, _UP_BOTTOM, right - left, _UP_TOP - _UP_BOTTOM)
        say = "served by the writable layer"
    elif isinstance(serves, int) and 1 <= serves <= len(sc.layers):
        bottom, top = _lower_band(sc, serves)
        box = (left, bottom, right - left, top - bottom)
        say = f"served by L{serves} ({sc.layers[serves - 1].role})"
    else:
        box = None
        say = "hidden by a whiteout" if serves == "hidden" else "in no layer"
    if box is not None:
        ax.add_patch(Rectangle(box[:2], box[2], box[3], facecolor="none", edgecolor=P.SERVES, linewidth=5,
                               gid=f"serves:{w.name}", zorder=6))
    ax.text((left + right) / 2, _UP_BOTTOM + 0.8, f"{sc.path}: {say}", ha="center", va="bottom", fontsize=P.SMALL,
            fontweight="bold", color=P.SERVES, family=P.FONT, zorder=6)


def picture(engine: Engine, *refs: str, path: str | None = None) -> Any:
    """Gather and draw in one call: ``picture(lab, "web1", "web2", path="/app/server.js")``."""
    return draw(gather(engine, list(refs), path))


__all__ = [
    "Change",
    "ImageLayer",
    "LayerScene",
    "Served",
    "Writable",
    "classify",
    "container_data",
    "draw",
    "gather",
    "picture",
    "replay",
    "scene",
    "scene_from_overlays",
    "shown_entries",
]
