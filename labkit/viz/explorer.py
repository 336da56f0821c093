"""The copy-up explorer: do one thing to one file, for real, and see what it cost in the layers.

Pick a file of the container's merged view, pick an action — read, append,
chmod, delete, rename — and the explorer runs it inside the container with
``exec``. Then it shows what overlayfs did (Documentation/filesystems/overlayfs.rst):
reading copies nothing; the first append or chmod copies the *whole* file up from
its image layer (so a 100 MB file costs 100 MB and the time to copy it, even to
change one byte or one permission bit); deleting leaves a whiteout; renaming a
lower file copies it up and leaves a whiteout at the old name.

Time is measured on the host around the ``exec`` (its wall time); the bytes are
those of the copy-up steps the engine recorded from the writable layer. The
file list and the picture come from the engine, so the explorer works on the
simulator as on the real backend.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from labkit.errors import InvalidArgument, LabkitError, NoSuchContainer
from labkit.viz import layers
from labkit.viz import palette as P

if TYPE_CHECKING:
    from labkit.engine import Engine

#: What each action runs inside the container (``{p}`` is the quoted path).
ACTIONS = {
    "read": "cat {p} > /dev/null",
    "append": "echo labkit >> {p}",
    "chmod": "chmod 600 {p}",
    "delete": "rm {p}",
    "rename": "mv {p} {p}.renamed",
}


@dataclass(frozen=True)
class Result:
    """What one action did.

    Attributes:
        action: One of :data:`ACTIONS`.
        path: The file it acted on.
        exit_code: The command's exit code.
        output: What the command printed.
        seconds: Wall time of the ``exec``, measured on the host.
        copied: Bytes copied up from image layers.
        steps: The layer steps recorded (a copy-up's lookup, parent directories, copy and write; whiteout,
            opaque, add); the exec itself is left out.
        simulated: Run on the simulator: ``seconds`` is then the time the model took on the host (loading
            and saving its world grows with the files copied up), not a kernel's, and is not shown as one.
    """

    action: str
    path: str
    exit_code: int
    output: str
    seconds: float
    copied: int
    steps: tuple[Any, ...] = field(default=(), compare=False)
    simulated: bool = False

    def summary(self) -> str:
        """One line for a learner."""
        kinds = ", ".join(s.kind for s in self.steps if s.kind in CHANGES)
        what = f"copy-up of {P.size_text(self.copied)}" if self.copied else "no copy-up"
        if kinds and not self.copied:
            what = kinds
        failed = f" (failed with exit code {self.exit_code}: {self.output.strip()})" if self.exit_code else ""
        return f"{self.action} {self.path}: {what}; {self.time_text()}{failed}"

    def time_text(self) -> str:
        """How long the exec took, or, on the simulator, that it models bytes and not time."""
        return "time not modelled (simulator)" if self.simulated else f"{self.seconds * 1000:.1f} ms"


#: The steps that change what the writable layer holds, which a summary names.
CHANGES = ("copy-up", "whiteout", "opaque", "add")
#: The steps the explorer keeps: those changes and the steps of a copy-up around them.
LAYER_KINDS = ("lookup", "copy-up-dir", *CHANGES, "write-upper")


def merged_files(engine: Engine, ref: str, under: str = "/", limit: int = 500) -> list[str]:
    """Regular files of the container's merged view under ``under``, the first ``limit`` in path order.

    Asks :meth:`labkit.Engine.files`: ``find`` inside on the real backend, the overlay model on the simulator.
    """
    return engine.files(ref, under)[:limit]


def run_action(engine: Engine, ref: str, action: str, path: str) -> Result:
    """Do ``action`` to ``path`` inside the container; time it; collect the layer steps it caused."""
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown action {action!r}", f"Use one of: {', '.join(ACTIONS)}")
    cmd = ACTIONS[action].format(p=shlex.quote(path))
    with engine.tracing() as steps:
        start = time.perf_counter()
        code, out = engine.exec_output(ref, ["/bin/sh", "-c", cmd])
        seconds = time.perf_counter() - start
    copied = sum(int((s.change or {}).get("bytes") or 0) for s in steps if s.kind == "copy-up")
    return Result(action, path, code, out, seconds, copied, tuple(s for s in steps if s.kind in LAYER_KINDS),
                  simulated=engine.simulated)


class CopyUpExplorer:
    """Pick a file and an action; run it; see the layers and the cost.

    Args:
        engine: A :class:`labkit.Engine`.
        ref: A running container.
        under: Only offer files below this directory.
        remake: Makes the container again (``lambda: lab.run(IMAGE, CMD, name=REF, detach=True)``): a click
            after the container was removed (a notebook's clean-up, ``labkit rm`` in a terminal) then starts
            a fresh one and says so. Without it, the click says the container is gone and how to bring it back.

    Attributes:
        results: Every action run so far, oldest first.
    """

    def __init__(self, engine: Engine, ref: str, under: str = "/", remake: Callable[[], Any] | None = None) -> None:
        # ipywidgets loads when a widget is made: a picture alone does not need it
        import ipywidgets as W

        self.engine = engine
        self.ref = ref
        self.under = under
        self.remake = remake
        self.results: list[Result] = []
        self.file = W.Dropdown(description="file", options=merged_files(engine, ref, under),
                               layout=W.Layout(width="420px"))
        self.action = W.ToggleButtons(options=list(ACTIONS), value="read", description="action")
        self.run_button = W.Button(description="Run it", button_style="primary")
        self.run_button.on_click(lambda _b: self.click())
        self.message = W.HTML()
        self.history = W.HTML()
        self.image = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.file, self.run_button]), self.action, self.message, self.image,
                              self.history])
        self.widget.add_class("labkit-explorer")  # how a page (or a test of a run notebook) finds it
        self._figure: Any = None
        self._draw(None)

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)

    def click(self) -> Result | None:
        """What **Run it** does: :meth:`run`, and when the container is gone, make it again (with ``remake``)
        or say plainly that it is gone and how to bring it back: never a silent click."""
        try:
            return self.run()
        except NoSuchContainer:
            if self.remake is None:
                self.message.value = (f"<div style='font-size:16px'><b>{escape(self.ref)} is gone</b> (removed by "
                                      "the notebook's clean-up, or in a terminal). Run the cell that starts it "
                                      "again, then this one.</div>")
                return None
        except LabkitError as err:
            self.message.value = f"<div style='font-size:16px'><b>{escape(err.one_line())}</b></div>"
            return None
        self.remake()
        result = self.run()
        self.message.value = (f"<div style='font-size:16px'><b>{escape(self.ref)} was gone: a fresh one was started "
                              f"from its image (its writable layer starts empty).</b><br>{escape(result.summary())}"
                              "</div>")
        return result

    def run(self) -> Result:
        """Run the chosen action on the chosen file, then redraw."""
        path = self.file.value
        if not path:
            raise InvalidArgument("no file is chosen", f"Pick one of the files under {self.under}")
        result = run_action(self.engine, self.ref, self.action.value, path)
        self.results.append(result)
        self.message.value = f"<div style='font-size:16px'><b>{escape(result.summary())}</b></div>"
        rows = "".join(
            f"<tr><td>{escape(r.action)}</td><td>{escape(r.path)}</td><td>{escape(r.time_text())}</td>"
            f"<td>{escape(P.size_text(r.copied))}</td></tr>" for r in self.results)
        self.history.value = ("<table><tr><th>action</th><th>file</th><th>time (exec)</th><th>copied up</th></tr>"
                              f"{rows}</table>")
        options = merged_files(self.engine, self.ref, self.under)
        self.file.options = options
        if path in options:
            self.file.value = path
        self._draw(path)
        return result

    def _draw(self, path: str | None) -> None:
        # One figure drawn again on every run: its canvas and the text sizes measured on it are kept.
        self._figure = layers.draw(layers.gather(self.engine, [self.ref], path), into=self._figure)
        self.image.value = P.png(self._figure)


__all__ = ["ACTIONS", "CopyUpExplorer", "Result", "merged_files", "run_action"]
