"""Predict, then observe — in a fresh experiment the grader runs itself.

A "predict, then observe" question asks what the engine *will* do. Reading the
learner's own containers would grade whatever state they happen to be in: a
container that has since exited, been removed, restarted or written to again
says nothing about the prediction (a PID 1 that has exited is not in the
host's ``/proc``, though it was while it ran). So a question carries its
experiment in the bank, as the ``labkit`` lines its prompt shows::

    observe:
      probe: host_sees_pid
      args: {container: "seen-{token}"}
      experiment:
        - "labkit run -d --name seen-{token} busybox sleep 300"

and :func:`observe_fresh` runs those lines against the learner's engine with
fresh names (every parameter drawn again, so nothing the learner made is
touched or reused), reads the observer, and removes everything it made —
containers, services and volumes whose names carry the fresh values — even
when a line fails. Each line runs in this process, exactly as the learner
would type it, through the :data:`LineRunner` the caller hands in — the
command line's own :func:`labkit.cli.main` (``labkit quiz check`` hands the
one it runs in, a notebook's quiz imports it): the graders are part of the
command line, so they never import it; ``sleep N`` waits (at most
:data:`MAX_SLEEP` seconds). The value is remembered per engine, so checking a
corrected answer does not run the experiment again.

An experiment that relies on a limit (``needs: [memory]``: a memory hog that
the kernel must stop) runs on the simulator when the engine would discard
that limit (rootless without a delegated cgroup, see
:attr:`labkit.Engine.enforced_limits`): run unlimited, the hog would take the
host's memory; the simulator models the OOM kill, and the feedback says so.
"""

from __future__ import annotations

import io
import secrets
import shlex
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.errors import LabkitError
from labkit.grading import probes

if TYPE_CHECKING:
    from labkit.engine import Engine

#: How one ``labkit …`` line runs: :func:`labkit.cli.main`'s shape,
#: ``run_line(words after "labkit", engine_factory=..., stdout=..., stderr=...) -> exit code``.
LineRunner = Callable[..., int]

#: The longest ``sleep`` an experiment may ask for, in seconds.
MAX_SLEEP = 10.0

_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], tuple[Any, dict[str, Any]]]] = weakref.WeakKeyDictionary()


class ExperimentFailed(LabkitError):
    """A line of an experiment failed in a way that leaves nothing to observe."""


@dataclass(frozen=True)
class Step:
    """One line of an experiment and what it printed."""

    line: str
    code: int
    output: str


def check_line(line: str) -> str | None:
    """Why a line cannot be an experiment step (``None`` when it can): ``labkit …`` or ``sleep N``."""
    try:
        words = shlex.split(line)
    except ValueError as err:
        return f"the line {line!r} cannot be split into words ({err})"
    if not words:
        return "an experiment line is empty"
    if words[0] == "sleep":
        try:
            seconds = float(words[1]) if len(words) == 2 else -1.0
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= MAX_SLEEP:
            return f"the line {line!r} must be 'sleep N' with N from 0 to {MAX_SLEEP:g}"
        return None
    if words[0] != "labkit" or len(words) < 2:
        return f"the line {line!r} must start with labkit (or be 'sleep N')"
    return None


#: Exit codes that mean the ``labkit`` command itself failed (usage, the engine refused, no such command).
FAILED = {2, 125, 126, 127}


def run_lines(engine: Engine, lines: Sequence[str], run_line: LineRunner) -> list[Step]:
    """Run experiment lines against ``engine`` as a learner types them, each through ``run_line``; return what
    each printed.

    Stops after a line whose ``labkit`` command failed (exit 2 or 125-127, or any other non-zero
    code from a verb other than ``run``, ``exec`` and ``wait``, which pass on the container's own).
    """
    steps = []
    for line in lines:
        words = shlex.split(line)
        if words[0] == "sleep":
            time.sleep(min(float(words[1]), MAX_SLEEP))
            steps.append(Step(line, 0, ""))
            continue
        out = io.StringIO()
        code = run_line(words[1:], engine_factory=lambda **_kw: engine, stdout=out, stderr=out)
        steps.append(Step(line, code, out.getvalue()))
        if code in FAILED or (code != 0 and words[1] not in ("run", "exec", "wait")):
            break
    return steps


def clean_up(engine: Engine, marks: Sequence[str]) -> None:
    """Remove every service, container and volume whose name carries one of ``marks``."""

    def ours(name: str) -> bool:
        return any(m and m in name for m in marks)

    try:
        services = [s["Name"] for s in engine.service_ls()]
    except (LabkitError, OSError, AttributeError):
        services = []
    for name in services:
        if ours(name):
            try:
                engine.service_rm(name)
            except (LabkitError, OSError):
                pass
    for item in engine.ps(all=True):
        if any(ours(n.lstrip("/")) for n in item.get("Names", [])):
            try:
                engine.rm(item["Id"], force=True, volumes=True)
            except LabkitError:
                pass
    try:
        volumes = [v["Name"] for v in engine.volume_ls()]
    except (LabkitError, OSError, AttributeError):
        volumes = []
    for name in volumes:
        if ours(name):
            try:
                engine.volume_rm(name, force=True)
            except LabkitError:
                pass


def observe_fresh(engine: Engine, observe: dict[str, Any], fresh: dict[str, str],
                  fill: Any, key: tuple[str, ...], run_line: LineRunner) -> tuple[Any, dict[str, Any]]:
    """Run ``observe['experiment']`` with the ``fresh`` parameters, read the observer, clean up.

    Returns:
        The observed value, and the observer's arguments with the fresh names in them.

    Args:
        engine: The learner's engine.
        observe: The question's ``observe`` block as the bank wrote it (parameters not filled in).
        fresh: A new value for every parameter the block uses.
        fill: ``fill(value, params)``, which puts parameters into strings.
        key: What identifies this experiment and observer (for remembering the value).
        run_line: How a ``labkit …`` line runs (:data:`LineRunner`).

    Raises:
        probes.Missing: When the experiment left nothing to observe; the message names the
            line that failed and what it printed.
    """
    try:
        remembered = _CACHE.setdefault(engine, {})
    except TypeError:  # an engine that cannot be weakly referenced: never remembered
        remembered = {}
    if key in remembered:
        return remembered[key]
    lines = [str(x) for x in fill(list(observe.get("experiment") or []), fresh)]
    args = fill(dict(observe.get("args") or {}), fresh)
    steps: list[Step] = []
    try:
        steps = run_lines(engine, lines, run_line)
        if len(steps) < len(lines):
            last = steps[-1]
            said = (last.output.strip().splitlines() or [f"exit code {last.code}"])[-1]  # the error comes last
            raise probes.Missing(f"the experiment could not run here: '{last.line}' said: {said}",
                                 "Run 'labkit doctor' and 'labkit setup', then check again")
        value = probes.observe(engine, observe["probe"], args)
    finally:
        clean_up(engine, [v for v in fresh.values() if v])
    remembered[key] = (value, args)
    return value, args


def fresh_values(names: Sequence[str], kinds: dict[str, Any]) -> dict[str, str]:
    """A new value for each parameter: ``g`` and hex digits (long enough to be unique on the host)."""
    out = {}
    for name in names:
        kind = str(kinds.get(name, ""))
        width = int(kind[3:]) if kind.startswith("hex") and kind[3:].isdigit() else 6
        out[name] = "g" + secrets.token_hex(max(3, width) // 2 + 1)[: max(5, width - 1)]
    return out
