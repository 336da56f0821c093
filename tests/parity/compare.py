"""Run one scenario with ``docker`` and with ``labkit`` and say, step by step, where they part.

A scenario is a list of :class:`Step`: the words after the program's name, and how the two answers are
compared. Both programs run every step in order, each on its own engine. Each answer is normalised
(:class:`Normaliser`): container and image ids become ``<ID1>``, ``<ID2>``… in the order each program
first printed them, durations (``5 seconds``, ``About a minute``) become ``<DUR>``, host paths of the
two engines' state roots ``<ROOT>``, runs of spaces (a table's padding) two spaces, and Docker's
name for the program labkit's. What is left must be equal,
except where a difference is named in ``DIFFERENCES`` (tests/parity/test_parity.py) and the step says
which one it allows.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HEX64 = re.compile(r"(?<![0-9a-f])(?:sha256:)?([0-9a-f]{64})(?![0-9a-f])")
HEX12 = re.compile(r"(?<![0-9a-f])([0-9a-f]{12})(?![0-9a-f])")
DURATION = re.compile(r"\b(Less than a second|About a minute|About an hour|\d+ (?:second|minute|hour|day|week|"
                      r"month|year)s?)\b")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")


@dataclass
class Answer:
    """What one program did for one step."""

    rc: int
    out: str
    err: str


@dataclass
class Step:
    """One command of a scenario.

    Attributes:
        args: The words after ``docker`` / ``labkit``; ``{who}`` in a word becomes the program's name and
            ``{other}`` the other's (``save -o d/{who}.tar`` then ``load -i d/{other}.tar``: each loads the
            other's archive).
        input: Bytes for the command's stdin.
        out: How stdout is compared: ``"exact"`` (after normalising), ``"json"`` (parsed,
            :func:`json_diff`), ``"lines"`` (as a set of lines) or ``"ignore"``.
        allow: Names of ``DIFFERENCES`` this step may show, with how each is recognised (a callable
            given both answers that returns True when the difference is the named one).
        timeout: Seconds each program gets for the step.
        fresh: Ids first printed by this step read ``<NEW>`` (rmi's layer chain ids: each engine has printed
            a different number of other ids before, so their numbers would differ).
    """

    args: list[str]
    input: bytes | None = None
    out: str = "exact"
    allow: dict[str, Callable[[Answer, Answer], bool]] = field(default_factory=dict)
    timeout: float = 60
    fresh: bool = False


@dataclass
class Outcome:
    """The comparison of one step: ``differences`` is empty when the two matched."""

    step: Step
    docker: Answer
    labkit: Answer
    differences: list[str] = field(default_factory=list)
    named: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"$ {' '.join(self.step.args)}\n  docker rc={self.docker.rc} out={self.docker.out!r} "
                f"err={self.docker.err!r}\n  labkit rc={self.labkit.rc} out={self.labkit.out!r} "
                f"err={self.labkit.err!r}\n  " + "\n  ".join(self.differences))


class Normaliser:
    """One program's output with its ids, durations and roots replaced by placeholders."""

    def __init__(self, roots: list[str]) -> None:
        self.ids: dict[str, str] = {}
        self.roots = [r for r in roots if r]

    def known(self, full: str) -> str:
        if full not in self.ids:
            self.ids[full] = f"<ID{len(self.ids) + 1}>"
        return self.ids[full]

    def learn(self, text: str) -> None:
        for m in HEX64.finditer(text):
            self.known(m.group(1))

    def __call__(self, text: str) -> str:
        self.learn(text)
        for root in self.roots:
            text = text.replace(root, "<ROOT>")
        text = HEX64.sub(lambda m: self.ids[m.group(1)], text)

        def short(m: re.Match[str]) -> str:
            for full, name in self.ids.items():
                if full.startswith(m.group(1)):
                    return name[:-1] + ":12>"
            return "<HEX12>"

        text = HEX12.sub(short, text)
        text = TIMESTAMP.sub("<TIME>", text)
        text = DURATION.sub("<DUR>", text)
        # A table's columns are as wide as their widest cell, and a duration's words vary from one engine's
        # moment to the other's: cells are compared, not their padding.
        return re.sub(r" {2,}", "  ", text)


def program_name(text: str) -> str:
    """Docker's words with labkit's name for the program (``docker: …``, ``'docker run --help'``)."""
    return re.sub(r"(^|'|\s)docker(?=[ :])", r"\1labkit", text, flags=re.M)


def same_or_hinted(docker: str, labkit: str) -> bool:
    """labkit's stderr says Docker's lines in Docker's words; it may end a line with a sentence of its own
    (``…is not running. Start it first with 'labkit start web'``) or add lines after them."""
    d_lines = [line for line in docker.splitlines() if line.strip()]
    l_lines = [line for line in labkit.splitlines() if line.strip()]
    if len(l_lines) < len(d_lines):
        return False
    for d, lk in zip(d_lines, l_lines, strict=False):
        if lk == d:
            continue
        stem = d.rstrip(".")
        if not (lk.startswith(stem + ". ") or lk.startswith(stem + "; ") or lk == stem + "."):
            return False
    return True


def keys(obj: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON object (``.HostConfig.Memory``)."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            found.add(f"{prefix}.{k}")
            found |= keys(v, f"{prefix}.{k}")
    return found


def json_diff(docker: Any, labkit: Any, path: str = "") -> list[str]:
    """Where two JSON values differ: missing or extra keys, and values (after normalising)."""
    if isinstance(docker, dict) and isinstance(labkit, dict):
        out = [f"only docker has {path}.{k}" for k in docker if k not in labkit]
        out += [f"only labkit has {path}.{k}" for k in labkit if k not in docker]
        both = [k for k in docker if k in labkit]
        if both != [k for k in labkit if k in docker]:
            out.append(f"{path}: keys in another order than Docker's")
        for k in docker:
            if k in labkit:
                out += json_diff(docker[k], labkit[k], f"{path}.{k}")
        return out
    if isinstance(docker, list) and isinstance(labkit, list) and len(docker) == len(labkit):
        return [d for i, (a, b) in enumerate(zip(docker, labkit, strict=True)) for d in json_diff(a, b, f"{path}[{i}]")]
    if docker != labkit:
        return [f"{path}: docker {json.dumps(docker)[:120]} labkit {json.dumps(labkit)[:120]}"]
    return []


class Scenario:
    """Runs steps with both programs and keeps each step's outcome."""

    def __init__(self, name: str, docker: Callable[..., subprocess.CompletedProcess],
                 labkit: Callable[..., subprocess.CompletedProcess], roots: tuple[list[str], list[str]],
                 wording: Callable[[str], str]) -> None:
        self.name = name
        self._run = {"docker": docker, "labkit": labkit}
        self.norm = {"docker": Normaliser(roots[0]), "labkit": Normaliser(roots[1])}
        self.wording = wording
        self.outcomes: list[Outcome] = []
        self.raw: dict[str, Answer] = {}
        #: Each program's own values for ``{name}`` in a step's words (an image id, which differs between them).
        self.vars: dict[str, dict[str, str]] = {"docker": {}, "labkit": {}}

    def answer(self, who: str, step: Step) -> Answer:
        other = "labkit" if who == "docker" else "docker"
        args = [a.replace("{who}", who).replace("{other}", other) for a in step.args]
        for name, value in self.vars[who].items():
            args = [a.replace("{" + name + "}", value) for a in args]
        done = self._run[who](*args, input=step.input, timeout=step.timeout)
        out = done.stdout.decode(errors="replace")
        err = done.stderr.decode(errors="replace")
        self.raw[who] = Answer(done.returncode, out, err)
        n = self.norm[who]
        if who == "docker":
            err = program_name(self.wording(err))
        known = len(n.ids)
        out, err = n(out), n(err)
        if step.fresh:
            for name in list(n.ids.values())[known:]:
                out, err = out.replace(name, "<NEW>"), err.replace(name, "<NEW>")
        return Answer(done.returncode, out, err)

    def step(self, args: list[str], **kw: Any) -> Outcome:
        """Run one step with both programs; record and return how they compare."""
        st = Step(args, **kw)
        d, lk = self.answer("docker", st), self.answer("labkit", st)
        outcome = Outcome(st, d, lk)
        found = outcome.differences
        if d.rc != lk.rc:
            found.append(f"exit code: docker {d.rc}, labkit {lk.rc}")
        if st.out == "exact" and d.out != lk.out:
            found.append("stdout differs")
        elif st.out == "lines" and sorted(d.out.splitlines()) != sorted(lk.out.splitlines()):
            found.append("stdout lines differ")
        elif st.out == "json":
            try:
                found += json_diff(json.loads(d.out), json.loads(lk.out))
            except ValueError as e:
                found.append(f"stdout is not JSON: {e}")
        if not same_or_hinted(d.err, lk.err):
            found.append("stderr differs")
        for name, recognise in st.allow.items():
            if found and recognise(d, lk):
                outcome.named.append(name)
                found.clear()
        self.outcomes.append(outcome)
        return outcome

    def steps(self, *many: list[str], **kw: Any) -> list[Outcome]:
        return [self.step(list(a), **kw) for a in many]

    def unexplained(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.differences]
