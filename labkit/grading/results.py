"""What grading a question produces: plain dataclasses, serialisable to JSON.

A :class:`Result` is the verdict on one answer (or one lab run); a lab's
result carries one :class:`CheckResult` per probe. Their shape follows the
results of graded web courses: every check has a name, points earned out of a
maximum, a message and optional output, so a score is always the sum of parts a
learner can see.

Rendering lives in :mod:`labkit.grading.render`; ``_repr_html_`` only delegates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from labkit.grading.render import result_html, result_text
from labkit.grading.verdicts import CORRECT, INCORRECT, NOT_ATTEMPTED, PARTIAL, VERDICTS

__all__ = ["CORRECT", "INCORRECT", "NOT_ATTEMPTED", "PARTIAL", "VERDICTS", "CheckResult", "Result", "verdict_for"]



@dataclass(frozen=True)
class CheckResult:
    """One probe of a lab, run against the engine's real state."""

    name: str
    """What the check looks at, in words ("container frontend-app is running"); a hidden check says only "hidden check N"."""
    points: float
    """Points earned: ``max_points`` when it passed, 0 otherwise."""
    max_points: float
    """Points this check is worth."""
    passed: bool
    """Whether the state the check asks for is there."""
    message: str = ""
    """What was found, for the learner; generic for hidden checks."""
    hint: str = ""
    """What to try when it failed (empty when it passed, and always empty for hidden checks)."""
    hidden: bool = False
    """A hidden check shows pass/fail, never its probe, arguments or message."""
    missing: bool = False
    """The object the check looks at does not exist yet (counts toward "not attempted", not "wrong")."""
    output: str = ""
    """Raw evidence the probe read (a file's first bytes, a status); empty for hidden checks."""

    def to_json(self) -> dict[str, Any]:
        """A plain dict (for submissions and the attempts log)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        """Read what :meth:`to_json` wrote."""
        return cls(**data)


@dataclass(frozen=True)
class Result:
    """The verdict on one answer to one question."""

    qid: str
    """The question's id, unique within its bank (``lesson8.p1``)."""
    verdict: str
    """One of ``correct``, ``partial``, ``incorrect``, ``not attempted``."""
    points: float
    """Points earned."""
    max_points: float
    """Points the question is worth."""
    feedback: str = ""
    """Why this answer earned what it did: a reject's own feedback, a chosen option's explanation, a check summary."""
    explanation: str = ""
    """The question's explanation of the right answer (shown after every attempt)."""
    canonical: str = ""
    """The accepted answer's canonical spelling when it was matched by typo tolerance or an alias; else empty."""
    matched_by: str = ""
    """How the answer was judged: ``exact``, ``alias``, ``regex``, ``fuzzy``, ``reject``, ``option``, ``numeric``, ``probe`` or empty."""
    response: Any = None
    """The answer as given (text, option list, number); ``None`` for labs."""
    bank: str = ""
    """The bank the question belongs to."""
    learner: str = ""
    """Who answered (the per-learner variant depends on it)."""
    variant: str = ""
    """The per-learner parameters the question was drawn with, as ``key=value`` pairs; empty without params."""
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)
    """A lab's checks, in the bank's order."""
    observed: Any = None
    """For a "predict, then observe" question: what the engine really did."""
    ts: str = ""
    """When the attempt was recorded (RFC 3339, UTC), stamped by the attempts log and submissions."""
    verified: str = ""
    """Set teacher-side by ``labkit grades verify``: ``verified``, ``self-reported`` or ``not verifiable``."""

    @property
    def correct(self) -> bool:
        """Full marks."""
        return self.verdict == CORRECT

    @property
    def hidden_count(self) -> int:
        """How many of the checks are hidden."""
        return sum(c.hidden for c in self.checks)

    def summary(self) -> str:
        """One line: verdict and points, and for labs whether only the public checks passed."""
        head = f"{self.verdict}: {_num(self.points)}/{_num(self.max_points)}"
        if not self.checks:
            return head
        public = [c for c in self.checks if not c.hidden]
        hidden = [c for c in self.checks if c.hidden]
        public_ok = all(c.passed for c in public)
        if not hidden:
            return head + (" (all checks passed)" if public_ok else "")
        hidden_ok = sum(c.passed for c in hidden)
        if public_ok and hidden_ok == len(hidden):
            return head + f" (all checks passed, {len(hidden)} of them hidden)"
        if public_ok:
            # Never "all tests passed" when only the public ones did.
            return head + f" (public checks passed; {hidden_ok} of {len(hidden)} hidden checks passed)"
        return head + f" ({hidden_ok} of {len(hidden)} hidden checks passed)"

    def to_json(self) -> dict[str, Any]:
        """A plain dict (for submissions and the attempts log)."""
        data = dataclasses.asdict(self)
        data["checks"] = [c.to_json() for c in self.checks]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        """Read what :meth:`to_json` wrote (unknown keys are ignored, so old files stay readable)."""
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["checks"] = tuple(CheckResult.from_json(c) for c in data.get("checks") or ())
        return cls(**kw)

    def _repr_html_(self) -> str:
        return result_html(self)

    def __str__(self) -> str:
        return result_text(self)


def verdict_for(points: float, max_points: float) -> str:
    """``correct`` at full marks, ``partial`` above zero, else ``incorrect``."""
    if max_points > 0 and points >= max_points - 1e-9:
        return CORRECT
    return PARTIAL if points > 0 else INCORRECT


def _num(x: float) -> str:
    return f"{x:g}"
