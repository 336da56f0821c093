"""Teacher-side verification: re-grade what learners handed in against the banks and the engine's state.

A score in a submission or an attempts log is what the learner's kernel
computed: *self-reported*. ``labkit grades verify DIR`` takes each learner's
best attempt per question and grades it again, here:

* a lab's probes run again against the engine state that is there (the
  per-learner token in the task names that learner's containers, so one
  learner's state never verifies another's score);
* an answer is judged again from the response it recorded, with the bank as
  it is now ("predict, then observe" answers against the engine, too).

Each gets one status:

``verified``
    Graded here, it earns at least what was claimed.
``self-reported``
    Graded here, it earns less than claimed: the state is not (or no longer)
    there as claimed, or the recorded score was changed by hand.
``not verifiable``
    Nothing here to grade it against: the lab's objects do not exist on this
    engine, the bank or the question is unknown, or the attempt recorded no answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labkit.errors import LabkitError
from labkit.grading.banks import load_bank
from labkit.grading.results import NOT_ATTEMPTED, Result

if TYPE_CHECKING:
    from labkit.engine import Engine
    from labkit.grading.experiments import LineRunner

VERIFIED = "verified"
SELF_REPORTED = "self-reported"
NOT_VERIFIABLE = "not verifiable"


@dataclass(frozen=True)
class Verification:
    """One handed-in score checked again.

    Attributes:
        claimed: The attempt as handed in (its ``verified`` field set to the status).
        status: ``verified``, ``self-reported`` or ``not verifiable``.
        points: What it earns graded here (``None`` when it could not be graded).
        why: One sentence: what was found.
    """

    claimed: Result
    status: str
    points: float | None
    why: str


def best_attempts(results: Iterable[Result]) -> list[Result]:
    """Each learner's best attempt per question (the latest among equals), sorted by learner, bank, question."""
    best: dict[tuple[str, str, str], Result] = {}
    for r in results:
        key = (r.learner, r.bank, r.qid)
        if key not in best or r.points >= best[key].points:
            best[key] = r
    return [best[k] for k in sorted(best)]


def verify_one(claimed: Result, engine: Engine, run_line: LineRunner | None = None) -> Verification:
    """Grade one handed-in attempt again (see the module docstring for the statuses).

    ``run_line`` runs the lines of a question's experiment (:data:`~labkit.grading.experiments.LineRunner`).
    """
    def done(status: str, points: float | None, why: str) -> Verification:
        return Verification(dataclasses.replace(claimed, verified=status), status, points, why)

    try:
        question = load_bank(claimed.bank).question(claimed.qid, claimed.learner)
    except LabkitError as err:
        return done(NOT_VERIFIABLE, None, err.message)
    is_lab = question.type == "lab"
    if not is_lab and claimed.response is None:
        return done(NOT_VERIFIABLE, None, "the attempt recorded no answer")
    needs_engine = is_lab or "observe" in question.spec
    try:
        again = question.check(None if is_lab else claimed.response, engine=engine if needs_engine else None,
                               run_line=run_line)
    except LabkitError as err:
        return done(NOT_VERIFIABLE, None, err.message)
    if again.verdict == NOT_ATTEMPTED:
        what = "the lab's containers and volumes" if is_lab else "what the prediction is about"
        return done(NOT_VERIFIABLE, None, f"{what} do not exist on this engine")
    if again.points + 1e-9 >= claimed.points:
        return done(VERIFIED, again.points, f"graded here: {again.summary()}")
    return done(SELF_REPORTED, again.points,
                f"claimed {claimed.points:g}/{claimed.max_points:g}, graded here: {again.summary()}")


def verify(results: Iterable[Result], engine: Engine, labs_only: bool = False,
           run_line: LineRunner | None = None) -> list[Verification]:
    """Verify every learner's best attempt per question (``labs_only``: the labs alone)."""
    out = []
    for claimed in best_attempts(results):
        if labs_only and not claimed.checks and claimed.matched_by != "probe":
            continue
        out.append(verify_one(claimed, engine, run_line))
    return out
