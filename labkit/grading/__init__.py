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
* :mod:`~labkit.grading.experiments` — predictions graded by running their experiment afresh.
* :mod:`~labkit.grading.results` — the results (dataclasses).
* :mod:`~labkit.grading.gradebook` — the attempts log, submissions, progress and the teacher's CSVs.
* :mod:`~labkit.grading.verify` — teacher-side re-grading: ``verified``, ``self-reported``, ``not verifiable``.
* :mod:`~labkit.grading.render` — HTML and text; :mod:`~labkit.grading.widgets` — ipywidgets quiz cells.

This package imports only the standard library, PyYAML and jsonschema (the
latter two when a bank is loaded); ipywidgets only in ``widgets``.
"""

from labkit._lazy import lazy

# Names are loaded on first use, so `labkit --help` (which registers `labkit grade`) stays fast.
_WHERE = {
    "Bank": "banks", "BankError": "banks", "NoSuchBank": "banks", "load_bank": "banks", "validate": "banks",
    "Gradebook": "gradebook", "collect": "gradebook", "read_csv": "gradebook", "save_submission": "gradebook",
    "Question": "questions", "make_question": "questions",
    "CheckResult": "results", "Result": "results",
}


__getattr__ = lazy("labkit.grading", _WHERE)

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
