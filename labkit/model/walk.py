"""Walk a trace forward and back, with the state after every step.

A trace (:mod:`labkit.model.events`) says what the kernel did; :class:`Walk`
says what the world looked like after each step: every container's status,
its PID, which layers its root is stacked from, what its writable layer holds
(new files, copy-ups with their bytes and source layer, whiteouts, opaque
directories), the cgroup files written, its address. It is pure: it reads only
the steps' ``change`` data, so a real run and a simulated one walk alike.

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
        lowers: The layers its root is stacked from (top first), once mounted.
        upper: What its writable layer holds: path → ``{"kind": "add"|"copy-up"|"whiteout"|"opaque", ...}``.
        cgroup: Cgroup files written: name → value.
        address: Its IP address on a bridge, if any.
        exit_code: How PID 1 last ended.
    """

    status: str = "created"
    pid: int = 0
    lowers: tuple[str, ...] = ()
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
        box = replace(box, lowers=tuple(ch.get("lowers", ())))
    elif kind == "cgroup-write":
        name = str(ch.get("file", "")).rsplit("/", 1)[-1]
        box = replace(box, cgroup=MappingProxyType({**box.cgroup, name: str(ch.get("value", ""))}))
    elif kind == "network":
        box = replace(box, address=str(ch.get("ip", "")))
    elif kind in ("clone", "exec"):
        box = replace(box, pid=int(ch.get("pid", box.pid)), status=ch.get("status", box.status))
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

    def served_by(self, container: str, path: str) -> str:
        """Which layer a path of a container comes from at this point: ``upper``, ``hidden`` or ``image``."""
        box = self._state.get(container)
        entry = box.upper.get(path) if box else None
        if entry is None:
            return "image"
        return "hidden" if entry["kind"] == "whiteout" else "upper"
