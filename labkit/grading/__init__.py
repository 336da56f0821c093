"""Questions that grade themselves, and labs graded by the real state a learner made.

    >>> from labkit.grading import load_bank
    >>> bank = load_bank("lesson8")
    >>> r = bank["p1"].check("copy on wirte")
    >>> r.verdict, r.canonical
    ('correct', 'copy-on-write')

* :mod:`~labkit.grading.banks` — YAML banks, validated by ``schema.json``.
* :mod:`~labkit.grading.answers` — normalizing and matching typed answers and commands.
* :mod:`~labkit.grading.questions` — the six question types; ``check()``, ``hint()``, ``solution()``.
* :mod:`~labkit.grading.probes` — read-only lab checks of the engine's real state.
* :mod:`~labkit.grading.results` — the results (dataclasses).
* :mod:`~labkit.grading.gradebook` — submissions and the teacher's CSV.
* :mod:`~labkit.grading.render` — HTML and text; :mod:`~labkit.grading.widgets` — ipywidgets quiz cells.

This package imports only the standard library, PyYAML and jsonschema (the
latter two when a bank is loaded); ipywidgets only in ``widgets``.
"""

from labkit.grading.banks import Bank, BankError, NoSuchBank, load_bank, validate
from labkit.grading.gradebook import Gradebook, collect, read_csv, save_submission
from labkit.grading.questions import Question, make_question
from labkit.grading.results import CheckResult, Result

__all__ = [
    "Bank",
    "BankError",
    "CheckResult",
    "Gradebook",
    "NoSuchBank",
    "Question",
    "Result",
    "collect",
    "load_bank",
    "make_question",
    "read_csv",
    "save_submission",
    "validate",
]
