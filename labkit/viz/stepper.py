"""The stepper: walk any trace forward and back, one kernel step at a time.

A trace is a list of :class:`labkit.model.events.Step` — from a real run
(``with lab.tracing() as steps: ...``) or from the simulator. For each step the
widget shows its sentence, the kernel mechanism, and the picture of the state
*after* it, redrawn from the steps' ``change`` data: the layer stack gathering
copy-ups and whiteouts (:func:`labkit.viz.layers.replay`) when the trace touched
the layers, else the lifecycle diagram with the status reached so far.

Step / Back / Reset move one step or to the start; the slider jumps; Play
advances on its own (ipywidgets' ``Play`` ticks in the browser and moves the
slider). Pictures are cached per position, so going back costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from labkit.viz import palette as P

#: Step kinds that change the layer picture.
LAYER_KINDS = frozenset({"create-layer", "remove-layer", "copy-up", "whiteout", "opaque", "add"})


def status_after(steps: Sequence[Any], index: int) -> str | None:
    """The container status reached by step ``index`` (from the steps' ``change["status"]``)."""
    status = None
    for step in steps[: index + 1]:
        status = (step.change or {}).get("status", status)
    return status


def picture_after(steps: Sequence[Any], base: Any = None) -> Callable[[int], Any]:
    """The default renderer: ``index → Figure`` of the state after that step.

    Args:
        steps: The trace.
        base: A :class:`labkit.viz.layers.LayerScene` to start from (the image's layers,
            e.g. ``layers.gather(lab, ["frontend-app:v2.1.0"])``); without it the layer
            picture starts with no image layers drawn.
    """
    from labkit.viz import layers, lifecycle

    if any(s.kind in LAYER_KINDS for s in steps):
        start = base if base is not None else layers.LayerScene("image", ())

        def layer_picture(index: int) -> Any:
            return layers.draw(layers.replay(start, steps[: index + 1]))

        return layer_picture

    def lifecycle_picture(index: int) -> Any:
        return lifecycle.draw(status_after(steps, index))

    return lifecycle_picture


def caption(step: Any, index: int, total: int) -> str:
    """The HTML shown above the picture: position, kind, the sentence, the mechanism."""
    verb = f" · {escape(step.verb)}" if step.verb else ""
    return (f"<div style='font-size:16px'><b>step {index + 1} of {total}{verb} · {escape(step.kind)}</b><br>"
            f"{escape(step.what)}<br><i>kernel: {escape(step.mechanism)}</i></div>")


class Stepper:
    """A widget over a trace: Step, Back, Play, Reset and a slider.

    Args:
        steps: The trace (any sequence of steps, real or simulated).
        render: ``index → Figure``; default :func:`picture_after`.
        base: The layer scene to start from (passed to :func:`picture_after`).
        interval_ms: Time between steps when playing.

    Attributes:
        widget: The ipywidgets box to display (the object itself displays too).
    """

    def __init__(self, steps: Sequence[Any], render: Callable[[int], Any] | None = None, base: Any = None,
                 interval_ms: int = 900) -> None:
        import ipywidgets as W

        from labkit.errors import InvalidArgument

        self.steps = list(steps)
        if not self.steps:
            raise InvalidArgument("the trace is empty: there is nothing to step through",
                                  "Record one with 'with lab.tracing() as steps:' around a verb")
        self.render = render or picture_after(self.steps, base)
        self._cache: dict[int, bytes] = {}
        last = len(self.steps) - 1
        self.slider = W.IntSlider(value=0, min=0, max=last, description="step", continuous_update=False)
        self.play = W.Play(value=0, min=0, max=last, interval=interval_ms, description="Play")
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
        self.widget = W.VBox([controls, self.caption, self.image])
        self._show()

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)

    @property
    def index(self) -> int:
        """The position shown now (0 = the first step)."""
        return int(self.slider.value)

    def step(self) -> None:
        """One step forward (stays on the last)."""
        self.slider.value = min(self.index + 1, self.slider.max)

    def back(self) -> None:
        """One step back (stays on the first)."""
        self.slider.value = max(self.index - 1, 0)

    def reset(self) -> None:
        """Back to the first step."""
        self.play.playing = False
        self.slider.value = 0

    def png(self, index: int) -> bytes:
        """The picture after step ``index``, rendered once and cached."""
        if index not in self._cache:
            self._cache[index] = P.png(self.render(index))
        return self._cache[index]

    def _show(self) -> None:
        i = self.index
        self.caption.value = caption(self.steps[i], i, len(self.steps))
        self.image.value = self.png(i)
        self.back_button.disabled = i == 0
        self.step_button.disabled = i == len(self.steps) - 1


__all__ = ["LAYER_KINDS", "Stepper", "caption", "picture_after", "status_after"]
