"""Results and questions as HTML (for notebooks) and as text (for terminals).

Kept out of the domain classes: :class:`~labkit.grading.results.Result` and
:class:`~labkit.grading.questions.Question` only delegate here. Everything a
learner or a bank wrote is escaped. Hidden checks are shown by their
placeholder title and pass/fail only — their :class:`CheckResult` carries
nothing more to show.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from labkit.grading.verdicts import CORRECT, NOT_ATTEMPTED, PARTIAL

if TYPE_CHECKING:  # the results delegate their pictures here: only their types are named
    from labkit.grading.results import CheckResult, Result

_COLOURS = {CORRECT: "#1a7f37", PARTIAL: "#9a6700", NOT_ATTEMPTED: "#57606a"}
_WRONG = "#cf222e"


def _colour(verdict: str) -> str:
    return _COLOURS.get(verdict, _WRONG)


def _mark(check: CheckResult) -> str:
    if check.missing and not check.hidden:
        return "○"
    return "✓" if check.passed else "✗"


def result_text(result: Result) -> str:
    """A result as plain lines: the summary, the feedback, each check, the explanation."""
    lines = [f"{result.bank + ':' if result.bank else ''}{result.qid} — {result.summary()}"]
    if result.feedback and result.feedback != result.summary():
        lines.append(result.feedback)
    for c in result.checks:
        line = f"  {_mark(c)} {c.name} ({c.points:g}/{c.max_points:g})"
        if c.message and not c.hidden:
            line += f": {c.message}"
        lines.append(line)
        if c.hint:
            lines.append(f"      hint: {c.hint}")
    if result.explanation and result.verdict != NOT_ATTEMPTED:
        lines.append(f"Why: {result.explanation}")
    return "\n".join(lines)


def result_html(result: Result) -> str:
    """A result as a small HTML block for a notebook cell."""
    colour = _colour(result.verdict)
    parts = [
        f'<div class="labkit-result" data-verdict="{escape(result.verdict)}" '
        f'style="border-left:4px solid {colour};padding:4px 10px;margin:4px 0">',
        f'<div style="color:{colour};font-weight:bold">{escape(result.summary())}</div>',
    ]
    if result.feedback and result.feedback != result.summary():
        parts.append(f'<div class="labkit-feedback">{escape(result.feedback)}</div>')
    if result.checks:
        parts.append('<ul class="labkit-checks" style="margin:4px 0">')
        for c in result.checks:
            body = escape(c.name)
            if c.message and not c.hidden:
                body += f" — {escape(c.message)}"
            if c.hint:
                body += f' <i>(hint: {escape(c.hint)})</i>'
            parts.append(f'<li style="color:{"#1a7f37" if c.passed else _WRONG}">{_mark(c)} {body} '
                         f"({c.points:g}/{c.max_points:g})</li>")
        parts.append("</ul>")
    if result.explanation and result.verdict != NOT_ATTEMPTED:
        parts.append(f'<div class="labkit-explain"><b>Why:</b> {escape(result.explanation)}</div>')
    parts.append("</div>")
    return "".join(parts)


def question_text(question: Any) -> str:
    """A question as text: its prompt and, for choices, the options lettered in this learner's order."""
    lines = [f"[{question.id}] {question.prompt}"]
    for i, o in enumerate(getattr(question, "options", []) or []):
        lines.append(f"  {chr(ord('a') + i)}) {o.text}")
    task = question.spec.get("task")
    if task:
        lines += [f"Goal: {task['goal']}", "What to do:", *(f"  - {s}" for s in task["do"]),
                  f"How it is checked: {task['checked']}"]
    return "\n".join(lines)


def question_html(question: Any, options: bool = True) -> str:
    """A question as HTML (the static view; :mod:`labkit.grading.widgets` makes it interactive).

    Args:
        question: The question, drawn for a learner.
        options: List a choice question's options, lettered in this learner's order. A quiz
            widget passes ``False``: its radio buttons or check boxes already show them.
    """
    parts = [f'<div class="labkit-question" data-qid="{escape(question.id)}">',
             f"<p><b>{escape(question.id)}</b> ({question.points:g} pt) {escape(question.prompt)}</p>"]
    listed = getattr(question, "options", None) if options else None
    if listed:
        parts.append('<ol type="a">' + "".join(f"<li>{escape(o.text)}</li>" for o in listed) + "</ol>")
    task = question.spec.get("task")
    if task:
        parts.append(f"<p><b>Goal:</b> {escape(task['goal'])}</p><p><b>What to do:</b></p><ol>")
        parts += [f"<li>{escape(s)}</li>" for s in task["do"]]
        parts.append(f"</ol><p><b>How it is checked:</b> {escape(task['checked'])}</p>")
    parts.append("</div>")
    return "".join(parts)
