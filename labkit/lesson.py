"""A notebook's lesson: what it makes is removed at its end, when a cell fails, or when its kernel stops.

Each notebook of the lesson runs real containers (and, in ``06``, services; in
``04``, volumes). Jupyter's **Run All** stops at the first cell that raises, so a
clean-up written only as the notebook's last cell would never run then, and the
containers would be left for the next notebook and for the learner's terminal.
One :class:`Lesson` per notebook keeps the list instead, and removes everything
on it

* when the notebook's last cell calls :meth:`Lesson.cleanup`;
* right after a cell fails (an IPython ``post_run_cell`` callback: the failed
  cell's output then says what was removed and how to start again);
* when the kernel stops (``atexit``), whatever happened before.

Whatever the simulator produced says so: a cell that entered a simulated world
(the whole notebook on the simulator, or ``02``'s limits on a host that cannot
enforce them) ends with a line saying its output is simulated, and every
picture drawn from the simulator is stamped (:func:`labkit.viz.palette.mark_simulated`).

The same names are removed at the notebook's start too (:meth:`Lesson.clear`):
a notebook run after another one that stopped half-way, or run twice, never
trips on leftovers.

A *predict, then observe* experiment runs only once its predictions were
checked (:meth:`Lesson.predicted`): seen first, it would give the answer away.
A lab's solution never runs on its own: **Run All** would otherwise do the
learner's work and the lab would read "correct" before any was done. The
solution cell runs only once the learner has pressed the lab's **Run checks**
(:meth:`Lesson.tried`); before, it says what to do first.

Waits are bounded: :meth:`Lesson.wait` polls until a condition holds or a
deadline passes, and then says what it waited for, the last error seen, and
what to check, instead of hanging the notebook.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from labkit.errors import InvalidArgument, LabkitError, NotFound

if TYPE_CHECKING:
    from labkit.engine import Engine

T = TypeVar("T")

#: What a learner should look at when something a notebook waits for over the network never comes.
NETWORK_CHECK = ("Run `labkit doctor` in a terminal (it checks the host, the bridges and their subnets), "
                 "and check that nothing on this host drops or reroutes traffic to the containers' subnet "
                 "(a firewall rule, a VPN, a route)")

#: The line under a cell whose output came from the simulator.
SIMULATED_NOTE = ("▲ SIMULATED: this cell's output came from labkit's simulator, a model of the kernel, not from "
                  "this host's kernel")

#: The lesson the newest notebook cell made: a re-run first cell replaces it (its callbacks go with it).
_current: Lesson | None = None


def _worlds_entered() -> int:
    """How often this process has entered a simulated world so far (0 while the simulator is not even loaded)."""
    sim = sys.modules.get("labkit.sim.backend")
    return int(sim.SimBackend.worlds_entered) if sim is not None else 0


def _shell() -> Any:
    """The IPython shell this code runs in, or None outside one (a script, a test)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if get else None


class Lesson:
    """What one notebook made on ``engine`` (and on any other engine it names), and its removal.

    Args:
        engine: The engine the notebook's containers run on.
        containers: Container names the notebook will make; any an earlier run left are removed now.
        services: Service names likewise (removed before the containers: a service removes its replicas).
        volumes: Volume names likewise (removed last: a volume in use cannot go).
    """

    def __init__(self, engine: Engine, containers: tuple[str, ...] = (), services: tuple[str, ...] = (),
                 volumes: tuple[str, ...] = ()) -> None:
        global _current
        self.engine = engine
        self._containers: dict[tuple[int, str], Any] = {}  # (id(engine), name) -> engine, in the order made
        self._services: dict[str, None] = {}
        self._volumes: dict[str, None] = {}
        if _current is not None:
            _current.detach()
        _current = self
        self._shell = _shell()
        self._entered = _worlds_entered()  # the simulated worlds entered before this cell ran
        if self._shell is not None:
            self._shell.events.register("pre_run_cell", self._before_cell)
            self._shell.events.register("post_run_cell", self._after_cell)
        atexit.register(self._at_exit)
        for name in services:
            self.clear_service(name)
        self.clear(*containers)
        for name in volumes:
            self.clear_volume(name)

    # -- what the notebook makes -----------------------------------------------------------------------
    def clear(self, *names: str, engine: Engine | None = None) -> None:
        """Remove containers ``names`` an earlier run left behind, so the names are free; remove them again at
        the end. ``engine``: another engine than the lesson's (02's limits may run on the simulator)."""
        eng = engine or self.engine
        for name in names:
            self._containers[(id(eng), name)] = eng
            self._rm_container(eng, name)

    def clear_service(self, name: str) -> None:
        """Remove service ``name`` if an earlier run left it; remove it again at the end."""
        self._services[name] = None
        self._rm_service(name)

    def clear_volume(self, name: str) -> None:
        """Remove volume ``name`` if an earlier run left it; remove it again at the end."""
        self._volumes[name] = None
        self._rm_volume(name)

    # -- removal -----------------------------------------------------------------------------------------
    def cleanup(self, quiet: bool = False) -> list[str]:
        """Remove every service, container and volume of the lesson that exists; return what was removed.

        Nothing that fails to go stops the rest: what could not be removed is printed with the reason.
        """
        removed, failed = [], []
        for name in list(self._services):
            try:
                if self._rm_service(name):
                    removed.append(f"service {name}")
            except (LabkitError, OSError) as err:
                failed.append(f"service {name}: {err}")
        for eng, name in [(e, n) for (_i, n), e in reversed(self._containers.items())]:
            try:
                if self._rm_container(eng, name):
                    removed.append(name)
            except (LabkitError, OSError) as err:
                failed.append(f"{name}: {err}")
        for name in list(self._volumes):
            try:
                if self._rm_volume(name):
                    removed.append(f"volume {name}")
            except (LabkitError, OSError) as err:
                failed.append(f"volume {name}: {err}")
        if not quiet:
            print("clean-up removed:", ", ".join(removed) if removed else "nothing (it was all gone already)")
            for line in failed:
                print("could not remove", line, "— `labkit ps -a` shows what is left; `labkit rm -f NAME` removes it")
        return removed

    def detach(self) -> None:
        """Stop cleaning up on a failed cell (a newer lesson in this kernel took over); the kernel's exit still does."""
        if self._shell is not None:
            for event, callback in (("pre_run_cell", self._before_cell), ("post_run_cell", self._after_cell)):
                try:
                    self._shell.events.unregister(event, callback)
                except ValueError:
                    pass
            self._shell = None

    def _before_cell(self, _info: Any = None) -> None:
        self._entered = _worlds_entered()

    def _after_cell(self, result: Any) -> None:
        """Say so under a cell whose output the simulator made; when a cell raised, remove everything now (Run All
        stops here, so the last cell will not run) and say so."""
        if _worlds_entered() > self._entered:
            why = "" if self.engine.backend.simulated else " (this host cannot do it for you, as said above)"
            print(f"\n{SIMULATED_NOTE}{why}.")
        error = getattr(result, "error_in_exec", None)
        if error is None:
            return
        print(f"\nThis cell failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}), "
              "so the notebook's clean-up ran now:")
        self.cleanup()
        print("Read the error above (for a network wait: " + NETWORK_CHECK + "), then run the notebook again "
              "from the top (Kernel ▸ Restart Kernel and Run All Cells): its first cells make everything again.")

    def _at_exit(self) -> None:
        try:
            self.cleanup(quiet=True)
        except Exception:  # the interpreter is going away: nothing left to report to
            pass

    def _rm_container(self, engine: Engine, name: str) -> bool:
        try:
            engine.rm(name, force=True)
            return True
        except NotFound:
            return False

    def _rm_service(self, name: str) -> bool:
        if name not in [s["Name"] for s in self.engine.service_ls()]:
            return False
        self.engine.service_rm(name)
        return True

    def _rm_volume(self, name: str) -> bool:
        if name not in [v["Name"] for v in self.engine.volume_ls()]:
            return False
        self.engine.volume_rm(name)
        return True

    # -- predictions and solutions -----------------------------------------------------------------------
    def predicted(self, quiz: Any, *ids: str) -> bool:
        """Whether every prediction ``ids`` of ``quiz`` (a :class:`labkit.grading.widgets.Quiz`) has been checked:
        the experiment that shows what the engine does runs only then. Before, it prints which predictions to
        make first and returns False.

        Raises:
            InvalidArgument: ``quiz`` asks no question of one of ``ids``.
        """
        cells = {c.question.id: c for c in getattr(quiz, "cells", ())}
        unknown = [i for i in ids if i not in cells]
        if unknown:
            raise InvalidArgument(f"the quiz asks no question {unknown[0]}", f"Ask one of {', '.join(cells)}")
        waiting = [cells[i] for i in ids if cells[i].last is None]
        if not waiting:
            return True
        print("Predict first: answer these above and press Check, then run this cell again to see what the "
              "engine does:")
        for cell in waiting:
            prompt = " ".join(cell.question.prompt.split())
            print(f"  • {prompt[:110]}{'…' if len(prompt) > 110 else ''}")
        return False


    def tried(self, checks: Any) -> bool:
        """Whether the learner has run the lab's checks (``checks``, its :class:`labkit.grading.widgets.QuizCell`)
        at least once: a solution cell runs only then. Before, it prints what to do first and returns False."""
        if getattr(checks, "last", None) is not None:
            return True
        print("This cell is a solution: it runs once you have tried. Do the task (in a terminal, or in a cell of "
              "your own), press Run checks above, then run this cell again to see one way to do it.")
        return False

    # -- waiting -----------------------------------------------------------------------------------------
    def wait(self, what: str, ready: Callable[[], T], timeout: float, check: str = NETWORK_CHECK,
             every: float = 0.1) -> T | None:
        """Call ``ready`` until it returns something true, for at most ``timeout`` seconds.

        An ``OSError`` from ``ready`` (a refused or reset connection, a timeout) counts as "not yet", and is
        followed by a pause of at least a tenth of a second; a false answer by ``every`` seconds (0 for a
        ``ready`` that itself takes time, as a request does). Returns what ``ready`` returned, or None after printing that the wait for ``what`` gave up,
        the last error seen, and ``check``: what to look at.
        """
        deadline = time.monotonic() + timeout
        last: OSError | None = None
        while True:
            pause = every
            try:
                value = ready()
                if value:
                    return value
            except OSError as err:
                last, pause = err, max(every, 0.1)
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
        seen = f" (last error: {type(last).__name__}: {last})" if last is not None else ""
        print(f"gave up after {timeout:g} s waiting for {what}{seen}. {check}.")
        return None
