"""Quiz cells for notebooks: choose or type, press Check, read the feedback.

The only module of :mod:`labkit.grading` that imports ipywidgets. Everything
happens in the kernel: the Check button calls ``question.check()`` in Python,
so the answer and its result live in Python objects (``cell.results``,
``cell.last``, ``quiz.results()``) and, when asked, in the attempts log or a
submission — not only in the browser.

    >>> from labkit.grading import load_bank
    >>> from labkit.grading.widgets import QuizCell, quiz
    >>> quiz(load_bank("lesson8"))            # one cell per question  # doctest: +SKIP

Tests drive a cell as a learner would: set ``cell.input.value``, call
``cell.check_button.click()``, read ``cell.feedback.value``.

**A Check reads the answer the learner sees.** ipywidgets syncs a model's
state to the kernel with a throttle (``WidgetModel.sync`` in
@jupyter-widgets/base): while one update of a model is unacknowledged, newer
ones wait in the browser, but a button's click is a custom message that is
sent at once. A click can so overtake the last keystrokes, and a ``Text`` with
``continuous_update=False`` sends nothing at all until it loses focus. So the
text box syncs on every keystroke (``continuous_update=True``), and a click in
a running kernel is graded :data:`SETTLE` seconds later, after the kernel has
taken in the updates that were still on their way. A ``.click()`` from
Python (a test, a notebook cell) grades at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

# The command line's entry point: a question's experiment runs its `labkit …` lines through it
# (labkit.grading.experiments), as the learner would type them.
from labkit.cli import main as run_line
from labkit.grading.gradebook import append_attempt, save_submission
from labkit.grading.questions import ChoiceQuestion, LabQuestion, MultiQuestion, Question
from labkit.grading.render import question_html, result_html
from labkit.grading.results import Result

if TYPE_CHECKING:
    from labkit.engine import Engine

#: Seconds between a click and its grading in a running kernel: the browser's held-back
#: updates of the answer (see the module docstring) arrive well within it.
SETTLE = 0.3


class CheckButton(w.Button):
    """A Button that tells a click from the browser (``from_browser``) from ``.click()`` in Python."""

    def _handle_button_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        if content.get("event", "") == "click":
            self.from_browser = True
            try:
                self.click()
            finally:
                self.from_browser = False

    from_browser = False


class QuizCell:
    """One question as a widget: its prompt, an input, Check and Hint buttons, and the feedback.

    Args:
        question: The question, already drawn for the learner.
        engine: The engine labs and "predict, then observe" questions read the truth from.
        on_result: Called with every :class:`Result` (e.g. to record it somewhere).
        attempts_log: Append each result to this attempts log (``True``: the default log).
        submissions: Append each result to the learner's submission in this directory
            (default: ``$LABKIT_SUBMIT``, which a teacher sets for every learner, e.g. in
            JupyterHub's spawner environment; unset, nothing is submitted).

    Attributes:
        results: Every result of this cell, oldest first.
        input: The input widget (``Text``, ``RadioButtons``, a box of ``Checkbox``, or ``None`` for labs).
        check_button: Press to check (``.click()`` in tests).
        hint_button: Press to show the hint.
        feedback: An ``HTML`` widget showing the last result or the hint.
        widget: The whole cell (a ``VBox``); displaying the cell displays it.
    """

    def __init__(
        self,
        question: Question,
        *,
        engine: Engine | None = None,
        on_result: Callable[[Result], Any] | None = None,
        attempts_log: Any = None,
        submissions: Any = None,
    ) -> None:
        self.question = question
        self.engine = engine
        self.on_result = on_result
        self.attempts_log = attempts_log
        self.submissions = submissions if submissions is not None else os.environ.get("LABKIT_SUBMIT") or None
        self.results: list[Result] = []
        self.listeners: list[Callable[[Result], Any]] = []
        self.input = self._make_input()
        self.check_button = CheckButton(description="Run checks" if isinstance(question, LabQuestion) else "Check",
                                     button_style="primary", tooltip="Check this answer")
        self.hint_button = w.Button(description="Hint", tooltip="Show a hint")
        self.feedback = w.HTML(value="")
        self.check_button.on_click(lambda b: self._clicked(getattr(b, "from_browser", False)))
        self.hint_button.on_click(lambda _b: self.show_hint())
        rows: list[Any] = [w.HTML(value=question_html(question, options=False))]  # the input shows the options
        if self.input is not None:
            rows.append(self.input)
        rows += [w.HBox([self.check_button, self.hint_button]), self.feedback]
        self.widget = w.VBox(rows, layout=w.Layout(border="1px solid #d0d7de", padding="6px", margin="6px 0"))
        self.widget.add_class("labkit-quiz")

    def _make_input(self) -> Any:
        q = self.question
        if isinstance(q, LabQuestion):
            return None
        if isinstance(q, MultiQuestion):
            # ipywidgets gives a Checkbox a fixed width (--jp-widgets-inline-width, 300px) and cuts a longer
            # label off with an ellipsis; width "auto" lets each box be as wide as its option's text.
            return w.VBox([w.Checkbox(value=False, description=o.text, indent=False, layout=w.Layout(width="auto"))
                           for o in q.options])
        if isinstance(q, ChoiceQuestion):
            return w.RadioButtons(options=[o.text for o in q.options], value=None, layout=w.Layout(width="auto"))
        return w.Text(value="", placeholder="your answer", continuous_update=True,
                      layout=w.Layout(width="60%"))

    @property
    def answer(self) -> Any:
        """What the input holds now, in the form ``question.check()`` takes."""
        if self.input is None:
            return None
        if isinstance(self.question, MultiQuestion):
            picked = [box.description for box in self.input.children if box.value]
            return picked or None
        return self.input.value

    @property
    def last(self) -> Result | None:
        """The latest result, or ``None`` before the first check."""
        return self.results[-1] if self.results else None

    def _clicked(self, from_browser: bool) -> None:
        """The Check button: a click in the browser is graded once the answer's last updates are in."""
        try:
            loop = asyncio.get_running_loop() if from_browser else None
        except RuntimeError:
            loop = None
        if loop is None:  # .click() from Python, or no event loop: grade now
            self.check()
            return
        self.feedback.value = '<div class="labkit-checking">Checking…</div>'
        loop.call_later(SETTLE, self._check_reporting)

    def _check_reporting(self) -> None:
        try:
            self.check()
        except Exception as err:  # a callback's exception would only reach the kernel's log
            self.feedback.value = f'<div class="labkit-error">The check failed: {escape(str(err))}</div>'

    def check(self) -> Result:
        """Check the current answer (what the Check button does) and show the result.

        The attempt is saved (attempts log, submission) before it is shown.
        """
        result = self.question.check(self.answer, engine=self.engine, run_line=run_line)
        self.results.append(result)
        if self.attempts_log:
            append_attempt(result, None if self.attempts_log is True else self.attempts_log)
        if self.submissions:
            save_submission([result], self.submissions)
        self.feedback.value = result_html(result)
        if self.on_result is not None:
            self.on_result(result)
        for listener in self.listeners:
            listener(result)
        return result

    def show_hint(self) -> str:
        """Show the hint under the question (what the Hint button does)."""
        text = self.question.hint()
        self.feedback.value = f'<div class="labkit-hint"><b>Hint:</b> {escape(text)}</div>'
        return text

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class Quiz:
    """Several quiz cells shown together, with their results gathered in Python.

    Attributes:
        cells: One :class:`QuizCell` per question.
        widget: A ``VBox`` of the cells.
    """

    def __init__(self, questions: list[Question], **cell_options: Any) -> None:
        self.cells = [QuizCell(q, **cell_options) for q in questions]
        self.widget = w.VBox([c.widget for c in self.cells])

    def results(self) -> dict[str, Result | None]:
        """Each question's latest result (``None`` where nothing was checked yet)."""
        return {c.question.id: c.last for c in self.cells}

    @property
    def score(self) -> tuple[float, float]:
        """Points earned (latest attempts) and points possible."""
        earned = sum(c.last.points for c in self.cells if c.last is not None)
        return earned, sum(c.question.points for c in self.cells)

    def listen(self, callback: Callable[[Result], Any]) -> None:
        """Call ``callback(result)`` after every Check of any of its cells."""
        for c in self.cells:
            c.listeners.append(callback)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class Scoreboard:
    """The learner's score over several quizzes, redrawn after every Check (never a stale snapshot).

    Args:
        parts: Named quizzes (``Scoreboard(practice=p, quiz=q)``), shown in that order.

    Attributes:
        widget: An ``HTML`` widget with one line per part and the total.
    """

    def __init__(self, **parts: Quiz) -> None:
        self.parts = parts
        self.widget = w.HTML(value="")
        self.widget.add_class("labkit-score")
        for part in parts.values():
            part.listen(lambda _r: self.refresh())
        self.refresh()

    def text(self) -> str:
        """The score as lines of text: each part, then the total."""
        lines = []
        earned_all = possible_all = 0.0
        for name, part in self.parts.items():
            earned, possible = part.score
            earned_all, possible_all = earned_all + earned, possible_all + possible
            verdicts = ", ".join(f"{qid}: {r.verdict if r else 'not attempted'}" for qid, r in part.results().items())
            lines.append(f"{name}: {earned:g} of {possible:g} points ({verdicts})")
        lines.append(f"total: {earned_all:g} of {possible_all:g} points")
        return "\n".join(lines)

    def refresh(self) -> None:
        """Redraw from the quizzes' latest results."""
        *parts, total = self.text().splitlines()
        self.widget.value = ("<div>" + "".join(f"<div>{escape(line)}</div>" for line in parts)
                             + f"<div><b>{escape(total)}</b></div></div>")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def quiz(bank: Any, ids: list[str] | None = None, learner: str | None = None, **cell_options: Any) -> Quiz:
    """A :class:`Quiz` of a bank's questions (all, or those in ``ids``), drawn for ``learner``."""
    chosen = ids or bank.ids
    return Quiz([bank.question(qid, learner) for qid in chosen], **cell_options)
