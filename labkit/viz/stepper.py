"""The stepper: walk any trace forward and back, one kernel step at a time.

A trace is a list of :class:`labkit.model.events.Step` — from a real run
(``with lab.tracing() as steps: ...``) or from the simulator. For each step the
widget shows its sentence, the kernel mechanism, and the picture of the state
*after* it: the layer stack with each container's writable layer as far as the
trace has filled it (copy-ups, whiteouts, new files) when the trace touched the
layers, else the lifecycle diagram with the status reached so far.

The state after a step comes from :class:`labkit.model.walk.Walk`: a step forward
applies one step, a step back (or a jump) replays at most
:data:`labkit.model.walk.CHECKPOINT` steps from the nearest checkpoint, so Back
costs the same at step 10 and at step 10 000. Pictures are cached per position
(the last :data:`CACHE` positions shown), so going back over them costs nothing.

Step / Back / Reset move one step or to the start; the slider (or
:meth:`Stepper.goto`) jumps; Play advances on its own (ipywidgets' ``Play``
ticks in the browser and moves the slider). :attr:`Stepper.state` is the model
state after the step shown, for code and quizzes to read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from html import escape
from types import MappingProxyType
from typing import Any

from labkit.errors import InvalidArgument
from labkit.model.walk import Box, State, Walk
from labkit.viz import layers, lifecycle
from labkit.viz import palette as P

#: Step kinds about the layers (the layer picture is drawn for a trace with one of them).
LAYER_KINDS = frozenset({"create-layer", "remove-layer", "lookup", "copy-up-dir", "copy-up", "write-upper", "whiteout",
                         "opaque", "add"})

#: The pictures a stepper can draw: the layer stack, the lifecycle diagram, or whichever the trace is about.
PICTURES = ("auto", "layers", "lifecycle")

#: Rendered positions kept (a PNG is some tens of kB; a long trace played through would otherwise keep them all).
CACHE = 256


def status_after(steps: Sequence[Any], index: int) -> str | None:
    """The status the last status-setting step up to ``index`` set (any container), by a scan from the start.

    The stepper itself reads statuses from :class:`TracePictures`, whose cost does not
    grow with ``index``; this is the plain definition, for one-off questions.
    """
    status = None
    for step in steps[: index + 1]:
        status = (step.change or {}).get("status", status)
    return status


class TracePictures:
    """``index → Figure``: the picture of the state after step ``index``, read from one :class:`Walk`.

    The walk starts from what is known before the trace: every container of
    ``base`` (its writable layer's entries, its status) and, with an unknown status,
    every container the trace speaks of before it creates that container's layer
    (it existed already). So a trace recorded around ``stop`` draws no status
    until the exit step says ``exited``, as the steps alone tell.

    Args:
        steps: The trace.
        base: A :class:`labkit.viz.layers.LayerScene` to start from (the image's layers,
            and containers as they were when the trace began, e.g.
            ``layers.gather(lab, ["frontend-app:v2.1.0"])``); without it the image layers
            drawn are the ones the trace's ``mount-overlay`` step stacked, as many as it says.
        picture: ``"layers"``, ``"lifecycle"``, or ``"auto"``: the layers when the trace
            touches them, else the lifecycle.

    Attributes:
        walk: The walk over the trace (its position is the last index asked for).
        layered: Whether the trace touches the layers (then the layer stack is drawn,
            else the lifecycle diagram).
    """

    def __init__(self, steps: Sequence[Any], base: Any = None, picture: str = "auto") -> None:
        if picture not in PICTURES:
            raise InvalidArgument(f"no picture named {picture!r}", f"Choose one of {', '.join(PICTURES)}")
        self.steps = list(steps)
        self.base = base if base is not None else layers.LayerScene("image", ())
        self.layered = picture == "layers" or (picture == "auto" and any(s.kind in LAYER_KINDS for s in self.steps))
        # Entries the base scene already had, per container id: path → (walk entry, Change). The walk
        # keeps the same entry object until a step replaces it, so "is" tells base entries from new ones.
        self._known: dict[str, dict[str, tuple[Mapping[str, Any], Any]]] = {}
        start: dict[str, Box] = {}
        for w in self.base.containers:
            if w.id:
                entries = {c.path: (_entry(c), c) for c in w.changes}
                self._known[w.id] = entries
                start[w.id] = Box(status=w.status, upper=MappingProxyType({p: e for p, (e, _c) in entries.items()}))
        self._focus: list[str] = []
        focus, created = "", set()
        known = set(start)
        for s in self.steps:
            cid = s.container
            if cid:
                focus = cid
                if s.kind == "create-layer":
                    created.add(cid)
                elif cid not in created and cid not in start:
                    start[cid] = Box(status="")
            self._focus.append(focus)
        #: Containers the trace met before it created them, and not in ``base``: they existed before it began.
        self._before = set(start) - known
        self.walk = Walk(self.steps, start=MappingProxyType(start))
        #: The trace (or its base) is the simulator's: every picture is stamped so.
        self.simulated = self.base.simulated or any(s.simulated for s in self.steps)

    def state(self, index: int) -> State:
        """The state after step ``index``: one step applied when moving on by one, else a bounded replay."""
        w = self.walk
        if index == w.position:
            return w.state
        if index == w.position + 1:
            return w.step()
        return w.goto(index)

    def status(self, index: int) -> str | None:
        """The status, after step ``index``, of the container that step (or the last one naming one) is about.

        ``deleted`` once its writable layer is removed; ``None`` while unknown.
        """
        state = self.state(index)
        cid = self._focus[index] if 0 <= index < len(self._focus) else ""
        if not cid:
            return None
        box = state.get(cid)
        if box is None:
            return "deleted"
        return box.status or None

    def scene(self, index: int) -> Any:
        """The :class:`labkit.viz.layers.LayerScene` after step ``index``.

        Containers of ``base`` keep their place (those without an id, which no step can
        name, are drawn as given; those whose layer a step removed are gone); containers
        the trace adds follow, in the order the trace met them.
        """
        state = self.state(index)
        containers = []
        named = {w.id: w.name for w in self.base.containers if w.id}
        for s in self.steps[: index + 1]:
            if s.container:
                named.setdefault(s.container, s.label())
        removed = tuple(name for cid, name in named.items() if cid not in state)
        for w in self.base.containers:
            if not w.id:
                containers.append(w)
            elif w.id in state:
                containers.append(self._writable(w, state[w.id]))
        known = {w.id for w in self.base.containers if w.id}
        for cid, box in state.items():
            if cid not in known:
                containers.append(self._writable(None, box, cid, named.get(cid, "")))
        image_layers = self.base.layers
        if not image_layers:
            # No base scene: the layers the trace stacked, as many as its sentence says (the newest mount up to
            # here; before the first mount, that one's: an image's layers are the same before and after).
            mounts = [(i, s) for i, s in enumerate(self.steps) if s.kind == "mount-overlay"]
            done = [s for i, s in mounts if i <= index]
            chosen = done[-1] if done else (mounts[0][1] if mounts else None)
            lowers = list((chosen.change or {}).get("lowers", ())) if chosen else []
            image_layers = tuple(layers.ImageLayer(n, "read-only layer", 0, 0, known=False)
                                 for n in range(1, len(lowers) + 1))
        return replace(self.base, layers=image_layers, containers=tuple(containers), removed=removed)

    def _writable(self, base: Any, box: Box, cid: str = "", name: str = "") -> Any:
        """A writable layer: ``base``'s (or a new one, called ``name``) with the entries the walk holds for it."""
        w = base if base is not None else layers.Writable(name=name or cid[:12], id=cid)
        known = self._known.get(w.id, {})
        changes, size, files = [], w.size, w.files
        for path in sorted(box.upper):
            entry = box.upper[path]
            if path in known and known[path][0] is entry:
                changes.append(known[path][1])
                continue
            change = layers._change_from_step(entry["kind"], {**entry, "path": path})
            if change is None:
                continue
            changes.append(change)
            if change.kind in (layers.COPY_UP, layers.ADDED):
                size += change.bytes
            if path not in known:
                files += 1
        serves: Any = w.serves
        chosen = self.base.path
        found = self.walk.served_by(w.id, chosen) if chosen and w.id else None
        if found in ("upper", "hidden"):
            # A step put this path, or a whiteout or opaque dir above it, in the writable layer:
            # from here on the upper layer answers for it, or hides it (overlayfs.rst).
            serves = found
        return replace(w, changes=tuple(changes), size=size, files=files, serves=serves, status=box.status, traced=True,
                       before=w.id in self._before)

    def __call__(self, index: int, into: Any = None) -> Any:
        """The figure after step ``index`` (drawn on ``into``, a figure made before, when given)."""
        if self.layered:
            fig = layers.draw(self.scene(index), into=into)
        else:
            fig = lifecycle.draw(self.status(index), into=into)
        return P.mark_simulated(fig, self.simulated)


def _entry(change: Any) -> Mapping[str, Any]:
    """A base scene's change as the walk writes an upper entry (``{"kind", "bytes", "from_layer"}``)."""
    return MappingProxyType({"kind": change.kind, "bytes": change.bytes, "from_layer": change.from_layer})


def picture_after(steps: Sequence[Any], base: Any = None, picture: str = "auto") -> Callable[[int], Any]:
    """The default renderer: ``index → Figure`` of the state after that step (a :class:`TracePictures`).

    Args:
        steps: The trace.
        base: A :class:`labkit.viz.layers.LayerScene` to start from (the image's layers,
            e.g. ``layers.gather(lab, ["frontend-app:v2.1.0"])``); without it the layer
            picture starts with no image layers drawn.
    """
    return TracePictures(steps, base, picture)


def caption(step: Any, index: int, total: int) -> str:
    """The HTML shown above the picture: position, verb and the container's name, kind, the sentence, the
    mechanism."""
    head = " ".join(p for p in (step.verb, step.label()) if p)  # "exec cow-a"
    verb = f" · {escape(head)}" if head else ""
    kernel = "simulated, as the kernel would do it" if step.simulated else "kernel"
    return (f"<div style='font-size:16px'><b>step {index + 1} of {total}{verb} · {escape(step.kind)}</b><br>"
            f"{escape(step.what)}<br><i>{kernel}: {escape(step.mechanism)}</i></div>")


class Stepper:
    """A widget over a trace: Step, Back, Play, Reset and a slider.

    ``goto(i)`` shows the state after step ``i``; ``state`` is that state as data::

        s = Stepper(steps)
        s.goto(-1)                                # the last step
        box = s.state[container.id]               # status, pid, argv, lowers, upper, cgroup, address
        s.served_by(container.id, "/etc/passwd")  # "upper", "hidden", an image layer number or "image"

    Args:
        steps: The trace (any sequence of steps, real or simulated).
        render: ``index → Figure``; default :func:`picture_after`.
        base: The layer scene to start from (passed to :func:`picture_after`).
        picture: ``"layers"``, ``"lifecycle"`` or ``"auto"`` (passed to :func:`picture_after`).
        interval_ms: Time between steps when playing.

    Attributes:
        widget: The ipywidgets box to display (the object itself displays too).
    """

    def __init__(self, steps: Sequence[Any], render: Callable[[int], Any] | None = None, base: Any = None,
                 interval_ms: int = 900, picture: str = "auto") -> None:
        # ipywidgets loads when a widget is made: a picture alone does not need it
        import ipywidgets as W

        self.steps = list(steps)
        if not self.steps:
            raise InvalidArgument("the trace is empty: there is nothing to step through",
                                  "Record one with 'with lab.tracing() as steps:' around a verb")
        self.render = render or picture_after(self.steps, base, picture)
        # The states come from the default renderer's walk when it is the renderer (one walk, one
        # replay per move), else from a walk of their own over the same steps and base.
        self._states = (self.render if isinstance(self.render, TracePictures)
                        else TracePictures(self.steps, base, picture))
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._figure: Any = None
        # The slider counts steps as the caption does, from 1: "step 6 of 10" sits at 6.
        total = len(self.steps)
        self.slider = W.IntSlider(value=1, min=1, max=total, description="step", continuous_update=False)
        self.play = W.Play(value=1, min=1, max=total, interval=interval_ms, description="Play")
        W.link((self.play, "value"), (self.slider, "value"))
        self.back_button = W.Button(description="◀ Back", tooltip="one step back")
        self.step_button = W.Button(description="Step ▶", tooltip="one step forward")
        self.reset_button = W.Button(description="Reset", tooltip="back to the first step")
        self.back_button.on_click(lambda _b: self.back())
        self.step_button.on_click(lambda _b: self.step())
        self.reset_button.on_click(lambda _b: self.reset())
        self.caption = W.HTML()
        self.image = W.Image(format="png")
        self.slider.observe(lambda _change: self._show(), names="value")
        controls = W.HBox([self.back_button, self.step_button, self.play, self.reset_button, self.slider])
        # One step has nowhere to go: its picture is shown without controls that would do nothing.
        self.widget = W.VBox([controls, self.caption, self.image] if total > 1 else [self.caption, self.image])
        self.widget.add_class("labkit-stepper")
        self._show()

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)

    @property
    def index(self) -> int:
        """The position shown now (0 = the first step)."""
        return int(self.slider.value) - 1

    def step(self) -> None:
        """One step forward (stays on the last)."""
        self.slider.value = min(self.slider.value + 1, self.slider.max)

    def back(self) -> None:
        """One step back (stays on the first)."""
        self.slider.value = max(self.slider.value - 1, 1)

    def reset(self) -> None:
        """Back to the first step."""
        self.play.playing = False
        self.slider.value = 1

    def goto(self, index: int) -> None:
        """Show the state after step ``index`` (0 = the first; negative counts from the end, -1 = the last).

        Raises:
            InvalidArgument: The trace has no step ``index``.
        """
        total = len(self.steps)
        if not -total <= index < total:
            raise InvalidArgument(f"the trace has {total} steps: there is no step {index}",
                                  f"Give an index from 0 to {total - 1}, or -1 for the last step")
        self.slider.value = index % total + 1

    @property
    def state(self) -> State:
        """The model state after the step shown: container id → :class:`labkit.model.walk.Box`.

        Each box says the container's status, PID 1 and its command, the layers its root is stacked
        from and whether that overlay is mounted, what its writable layer holds (path →
        ``{"kind": "copy-up"|"add"|"whiteout"|"opaque", ...}``), the cgroup files written and its
        address — as far as the trace tells. It is read-only: mappings are proxies, boxes frozen.
        """
        return self._states.state(self.index)

    def served_by(self, container: str, path: str) -> str | int:
        """After the step shown, which layer serves ``path`` in ``container`` (see
        :meth:`labkit.model.walk.Walk.served_by`): ``"upper"``, ``"hidden"``, an image layer's
        number (1 = the base layer) when the trace tells it, else ``"image"``."""
        self._states.state(self.index)
        return self._states.walk.served_by(container, path)

    def png(self, index: int) -> bytes:
        """The picture after step ``index``, rendered once and kept while among the last :data:`CACHE` shown."""
        if index in self._cache:
            self._cache.move_to_end(index)
        else:
            self._cache[index] = P.png(self._draw(index))
            if len(self._cache) > CACHE:
                self._cache.popitem(last=False)
        return self._cache[index]

    def _draw(self, index: int) -> Any:
        """The figure after step ``index``. The default renderer draws every position on one figure:
        its canvas, renderer and the text sizes measured on it are kept from click to click."""
        if isinstance(self.render, TracePictures):
            self._figure = self.render(index, into=self._figure)
            return self._figure
        return self.render(index)

    def _show(self) -> None:
        i = self.index
        self.caption.value = caption(self.steps[i], i, len(self.steps))
        self.image.value = self.png(i)
        self.back_button.disabled = i == 0
        self.step_button.disabled = i == len(self.steps) - 1


__all__ = ["CACHE", "LAYER_KINDS", "PICTURES", "Stepper", "TracePictures", "caption", "picture_after", "status_after"]
