"""The verdicts a grading result can carry, named once for the results and for what renders them."""

from __future__ import annotations

CORRECT = "correct"
PARTIAL = "partial"
INCORRECT = "incorrect"
NOT_ATTEMPTED = "not attempted"
#: Every verdict, best first.
VERDICTS = (CORRECT, PARTIAL, INCORRECT, NOT_ATTEMPTED)
