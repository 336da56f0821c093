"""Handles on containers, as docker-py's models: one-line verbs over the engine.

:class:`Container` is what ``lab.run`` and ``lab.create`` return; :class:`PhasedRun`
walks one run phase by phase (:meth:`labkit.engine.Engine.run_phases`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.errors import NoSuchContainer
from labkit.model import names as _names
from labkit.model.container import CreateOptions
from labkit.model.events import Step
from labkit.viz import walls

if TYPE_CHECKING:
    from labkit.engine.core import Engine


class Container:
    """A handle on one container, like docker-py's: one-line verbs over the engine.

    Attributes:
        id: The full 64-hex id.
        name: The name, without Docker's leading ``/``.
    """

    def __init__(self, engine: Engine, cid: str, name: str) -> None:
        self.engine = engine
        self.id = cid
        self.name = name
        self._final_code: int | None = None  # an attached run's exit code, kept for --rm
        self.warnings: list[str] = []  # limits discarded at create, as Docker's create answer lists them
        self._final_logs: list[tuple[str, str, str]] | None = None

    @property
    def short_id(self) -> str:
        return _names.short_id(self.id)

    @property
    def status(self) -> str:
        """The current ``State.Status`` (read fresh each time)."""
        return self.inspect()["State"]["Status"]

    @property
    def exit_code(self) -> int:
        try:
            return self.inspect()["State"]["ExitCode"]
        except NoSuchContainer:
            if self._final_code is None:
                raise
            return self._final_code

    @property
    def pid(self) -> int:
        """The host PID of the container's PID 1 (0 when not running)."""
        return self.inspect()["State"]["Pid"]

    def inspect(self) -> dict[str, Any]:
        return self.engine.inspect(self.id)

    def start(self) -> None:
        self.engine.start(self.id)

    def stop(self, timeout: float | None = None) -> None:
        self.engine.stop(self.id, timeout=timeout)

    def restart(self, timeout: float | None = None) -> None:
        self.engine.restart(self.id, timeout=timeout)

    def kill(self, signal: str | int = "KILL") -> None:
        self.engine.kill(self.id, signal=signal)

    def pause(self) -> None:
        self.engine.pause(self.id)

    def unpause(self) -> None:
        self.engine.unpause(self.id)

    def remove(self, force: bool = False, volumes: bool = False) -> None:
        self.engine.rm(self.id, force=force, volumes=volumes)

    def wait(self, timeout: float | None = None) -> int:
        return self.engine.wait(self.id, timeout=timeout)

    def diff(self) -> list[dict[str, Any]]:
        return self.engine.diff(self.id)

    def logs(self) -> str:
        """Everything the container wrote to stdout and stderr, as text."""
        try:
            lines = list(self.engine.logs(self.id))
        except NoSuchContainer:
            if self._final_logs is None:
                raise
            lines = self._final_logs
        return "".join(text for _stream, text, _t in lines)

    def exec(self, cmd: list[str] | str, **kw: Any) -> tuple[int, str]:
        """Run a command inside; return ``(exit_code, output)``."""
        return self.engine.exec_output(self.id, cmd, **kw)

    def show_layers(self, path: str | None = None) -> Any:
        """The picture of its layers, marking which one serves ``path`` (:func:`labkit.viz.layers.picture`)."""
        from labkit.viz import layers  # matplotlib is imported when a picture is drawn, not with labkit

        return layers.picture(self.engine, self.id, path=path)

    def show_walls(self) -> Any:
        """The picture of its walls, host view against container view (:func:`labkit.viz.walls.picture`)."""
        return walls.picture(self.engine, self.id)

    def __repr__(self) -> str:
        return f"<Container {self.short_id} {self.name}>"


class PhasedRun:
    """An iterator over the phases of one run: ``(name, steps)`` for create, start and exit."""

    def __init__(self, engine: Engine, options: CreateOptions) -> None:
        self.engine, self.options = engine, options
        self.container: Container | None = None
        self.steps: list[Step] = []
        self._phases = iter(("create", "start", "exit"))

    def __iter__(self) -> PhasedRun:
        return self

    def __next__(self) -> tuple[str, list[Step]]:
        phase = next(self._phases)
        with self.engine.tracing() as steps:
            if phase == "create":
                self.container = self.engine.containers.create(self.options)
            elif phase == "start":
                self.engine.start(self.container.id)  # type: ignore[union-attr]
            else:
                self.engine.wait(self.container.id)  # type: ignore[union-attr]
        self.steps += steps
        return phase, steps
