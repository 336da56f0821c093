"""Walk a trace forward and back, with the state after every step.

A trace (:mod:`labkit.model.events`) says what the kernel did; :class:`Walk`
says what the world looked like after each step: every container's status,
its PID 1 and command, which layers its root is stacked from and whether that
overlay is mounted, what its writable layer holds (new files, copy-ups with
their bytes and source layer, whiteouts, opaque directories), the cgroup files
written, its address. It is pure: it reads only the steps' ``change`` data, so
a real run and a simulated one walk alike.

Going back must stay cheap after thousands of steps. The walk keeps a
checkpoint of the state every :data:`CHECKPOINT` steps (states are immutable,
so a checkpoint is a reference, not a copy) and replays at most that many
steps from the nearest one: :meth:`Walk.goto` costs the same at step 10 and at
step 10 000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

#: A checkpoint every this many steps bounds the replay behind any goto().
CHECKPOINT = 64


@dataclass(frozen=True)
class Box:
    """One container as the steps so far describe it.

    Attributes:
        status: The last status a step set (``created`` until one does).
        pid: Its PID 1 on the host (0 when not running).
        argv: The command PID 1 executes (the last ``exec`` step's), kept after it ends.
        lowers: The layers its root is stacked from (top first), once mounted.
        mounted: Whether its overlay is mounted now (from ``mount-overlay`` to ``umount``).
        upper: What its writable layer holds: path → ``{"kind": "add"|"copy-up"|"whiteout"|"opaque", ...}``.
        cgroup: Cgroup files written: name → value.
        address: Its IP address on a bridge, if any.
        exit_code: How PID 1 last ended.
    """

    status: str = "created"
    pid: int = 0
    argv: tuple[str, ...] = ()
    lowers: tuple[str, ...] = ()
    mounted: bool = False
    upper: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    cgroup: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    address: str = ""
    exit_code: int | None = None


State = Mapping[str, Box]  # container id → Box


def apply(state: State, step: Any) -> State:
    """The state after one step (a new mapping; ``state`` is left as it was)."""
    cid = step.container
    if not cid:
        return state
    box = state.get(cid, Box())
    ch = step.change or {}
    kind = step.kind
    if kind == "create-layer":
        box = Box()
    elif kind == "mount-overlay":
        box = replace(box, lowers=tuple(ch.get("lowers", ())), mounted=True)
    elif kind == "umount":
        box = replace(box, mounted=False)
    elif kind == "cgroup-write":
        name = str(ch.get("file", "")).rsplit("/", 1)[-1]
        box = replace(box, cgroup=MappingProxyType({**box.cgroup, name: str(ch.get("value", ""))}))
    elif kind == "cgroup-remove":
        box = replace(box, cgroup=MappingProxyType({}))
    elif kind == "network":
        box = replace(box, address=str(ch.get("ip", "")))
    elif kind == "network-detach":
        box = replace(box, address="")
    elif kind == "clone":
        box = replace(box, pid=int(ch.get("pid", box.pid)), status=ch.get("status", box.status))
    elif kind == "exec":
        box = replace(box, pid=int(ch.get("pid", box.pid)), status=ch.get("status", box.status),
                      argv=tuple(ch.get("argv", box.argv)))
    elif kind in ("copy-up", "add", "whiteout", "opaque"):
        entry = {"kind": kind, **{k: v for k, v in ch.items() if k != "path"}}
        box = replace(box, upper=MappingProxyType({**box.upper, ch.get("path", "?"): entry}))
    elif kind == "exit":
        box = replace(box, status="exited", pid=0, exit_code=ch.get("exit_code"), address="")
    elif kind == "remove-layer":
        return MappingProxyType({k: v for k, v in state.items() if k != cid})
    elif "status" in ch:
        box = replace(box, status=ch["status"])
    return MappingProxyType({**state, cid: box})


class Walk:
    """A position in a trace, with the state after it; ``step``/``back``/``goto``/``reset``.

    Position -1 is before the first step (the empty state).
    """

    def __init__(self, steps: Sequence[Any], start: State | None = None) -> None:
        self.steps = list(steps)
        self._start: State = start if start is not None else MappingProxyType({})
        self._layer_of: dict[tuple[Any, str], int] | None = None  # made on the first served_by()
        self._checkpoints: dict[int, State] = {-1: self._start}
        self._built = -1  # checkpoints exist up to this position
        self.position = -1
        self._state: State = self._start

    def _state_at(self, index: int) -> State:
        """The state after step ``index``: from the checkpoint at or before it, at most CHECKPOINT steps on.

        Checkpoints sit at positions -1, 63, 127, …; the missing ones up to ``index``
        are made once, the first time a position beyond them is asked for.
        """
        if index < 0:
            return self._start
        anchor = ((index + 1) // CHECKPOINT) * CHECKPOINT - 1
        while self._built < anchor:
            state = self._checkpoints[self._built]
            for i in range(self._built + 1, self._built + CHECKPOINT + 1):
                state = apply(state, self.steps[i])
            self._built += CHECKPOINT
            self._checkpoints[self._built] = state
        state = self._checkpoints[anchor]
        for i in range(anchor + 1, index + 1):
            state = apply(state, self.steps[i])
        return state

    @property
    def state(self) -> State:
        """The world after the current step."""
        return self._state

    @property
    def current(self) -> Any | None:
        """The step just taken (None before the first)."""
        return self.steps[self.position] if self.position >= 0 else None

    def goto(self, index: int) -> State:
        """Jump to the state after step ``index`` (-1: before the first)."""
        self.position = max(-1, min(index, len(self.steps) - 1))
        self._state = self._state_at(self.position)
        return self._state

    def step(self) -> State:
        """One step forward (applied incrementally: no replay)."""
        if self.position + 1 < len(self.steps):
            self.position += 1
            self._state = apply(self._state, self.steps[self.position])
        return self._state

    def back(self) -> State:
        """One step back: from the nearest checkpoint, at most :data:`CHECKPOINT` steps of replay."""
        return self.goto(self.position - 1)

    def reset(self) -> State:
        """Back to before the first step."""
        return self.goto(-1)

    def served_by(self, container: str, path: str) -> str | int:
        """Which layer a path of a container comes from at this point, as overlayfs looks it up.

        Returns:
            ``"upper"`` when the writable layer has it (a copy-up, a new file, an opaque dir);
            ``"hidden"`` when a whiteout covers it or one of its parents, or a parent is an opaque
            dir whose upper copy does not have it (the image's copy is still in its layer, unseen);
            else the image layer's number (1 = the base layer) when a copy-up in the trace said
            where this path lives in the same image, or ``"image"`` when the trace does not tell.
        """
        box = self._state.get(container)
        upper = box.upper if box else {}
        parts = [p for p in path.split("/") if p]
        below_opaque = False
        # Lookup goes down from /: a whiteout hides the whole subtree, an opaque dir stops the
        # lookup from merging the lower dirs below it (Documentation/filesystems/overlayfs.rst,
        # "whiteouts and opaque directories").
        for depth in range(1, len(parts)):
            entry = upper.get("/" + "/".join(parts[:depth]))
            if entry is not None and entry["kind"] == "whiteout":
                return "hidden"
            if entry is not None and entry["kind"] == "opaque":
                below_opaque = True
        entry = upper.get("/" + "/".join(parts))
        if entry is not None:
            return "hidden" if entry["kind"] == "whiteout" else "upper"
        if below_opaque:
            return "hidden"
        layer = self._layers_known().get((_image_key(container, box.lowers if box else ()), "/" + "/".join(parts)))
        return layer if layer is not None else "image"

    def _layers_known(self) -> dict[tuple[Any, str], int]:
        """(image key, path) → the image layer a copy-up anywhere in the trace took that path from.

        The image's layers never change, so what a later step says holds before it too: stepping
        back to before a copy-up still names the layer that serves the file.
        """
        if self._layer_of is None:
            known: dict[tuple[Any, str], int] = {}
            lowers = {cid: box.lowers for cid, box in self._start.items()}
            for s in self.steps:
                ch = s.change or {}
                if s.kind == "mount-overlay" and s.container:
                    lowers[s.container] = tuple(ch.get("lowers", ()))
                elif s.kind == "copy-up" and isinstance(ch.get("from_layer"), int):
                    key = _image_key(s.container, lowers.get(s.container, ()))
                    known[(key, str(ch.get("path", "")))] = ch["from_layer"]
            self._layer_of = known
        return self._layer_of


def _image_key(container: str, lowers: Sequence[str]) -> Any:
    """Containers on the same image layers (the lowers under each one's own init layer) share what
    copy-ups tell of those layers; a container not seen mounting has a key of its own."""
    return tuple(lowers[1:]) if len(lowers) > 1 else ("container", container)
