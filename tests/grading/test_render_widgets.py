"""HTML and text rendering escape what they show; hidden checks leak nothing; the quiz widget works in-process."""

from __future__ import annotations

import subprocess
import sys

from labkit.grading import load_bank, make_question
from labkit.grading.questions import Context
from labkit.grading.render import result_html, result_text
from labkit.grading.results import CheckResult, Result


def lab_result():
    return Result(qid="lab", verdict="partial", points=2, max_points=3, bank="b", checks=(
        CheckResult("container web is running", 1, 1, True, "web is running", output="running"),
        CheckResult("<b>web</b> has NODE_ENV=production", 1, 1, True, "NODE_ENV=<script>"),
        CheckResult("hidden check 1", 0, 1, False, "failed", hidden=True),
    ))


def test_public_checks_passed_is_not_all_checks_passed():
    """When a hidden check fails the summary says only the public checks passed."""
    s = lab_result().summary()
    assert "public checks passed" in s and "all checks passed" not in s


def test_html_escapes_and_result_repr_delegates():
    """Bank and learner text is escaped; _repr_html_ is render.result_html."""
    r = lab_result()
    html = r._repr_html_()
    assert html == result_html(r)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;web" in html
    assert "hidden check 1" in html and "✗" in result_text(r)


def test_widget_check_button_records_results_in_python(tmp_path):
    """Typing, clicking Check and reading the feedback all happen in the kernel; results land in Python and on disk."""
    from labkit.grading.widgets import QuizCell, quiz

    seen = []
    cell = QuizCell(load_bank("lesson8", learner="ada")["p1"], on_result=seen.append, submissions=tmp_path)
    cell.input.value = "copy on wirte"
    cell.check_button.click()
    assert cell.last.correct and seen == [cell.last]
    assert "copy-on-write" in cell.feedback.value and "correct" in cell.feedback.value
    assert (tmp_path / "ada.json").exists()
    cell.hint_button.click()
    assert "Hint" in cell.feedback.value

    q = quiz(load_bank("lesson8", learner="ada"), ids=["q2", "p2"])
    choice, command = q.cells
    right = next(o.text for o in choice.question.options if o.correct)
    choice.input.value = right
    choice.check_button.click()
    command.input.value = "docker ps"
    command.check_button.click()
    assert q.score == (1.0, 2.0)
    assert q.results()["p2"].verdict == "incorrect"


def test_cells_submit_where_the_teacher_says(tmp_path, monkeypatch):
    """With ``$LABKIT_SUBMIT`` set (as a teacher sets it for every learner) each Check lands in the learner's
    submission there, which ``labkit grades collect`` reads; unset, nothing is submitted."""
    from labkit.grading.gradebook import collect
    from labkit.grading.widgets import QuizCell

    monkeypatch.delenv("LABKIT_SUBMIT", raising=False)
    assert QuizCell(load_bank("lesson8", learner="bo")["p1"]).submissions is None
    monkeypatch.setenv("LABKIT_SUBMIT", str(tmp_path / "class"))
    cell = QuizCell(load_bank("lesson8", learner="bo")["p1"])
    cell.input.value = "copy-on-write"
    cell.check_button.click()
    assert (tmp_path / "class" / "bo.json").exists()
    assert collect(tmp_path / "class").scores == {"bo": {"lesson8:p1": 1.0}}


def test_multi_widget_collects_the_ticked_boxes():
    """A multi question's checkboxes become the answer list."""
    from labkit.grading.widgets import QuizCell

    cell = QuizCell(load_bank("isolation", learner="ada")["iso.kinds"])
    for box in cell.input.children:
        box.value = box.description.split()[0] in ("pid", "uts", "mnt", "net")
    assert cell.check().correct


def test_hidden_check_code_never_reaches_the_learner():
    """A hidden check's probe, arguments and message appear in no result, text or HTML."""

    class Engine:
        def inspect(self, ref):
            return {"State": {"Status": "running", "Running": True}, "Config": {"Env": ["SECRET_KEY=wrong"],
                    "Labels": {}}}

    question = make_question({
        "id": "l", "type": "lab", "prompt": "p", "explain": "e",
        "task": {"goal": "g", "do": ["d"], "checked": "c"},
        "checks": [
            {"probe": "container_running", "args": {"name": "web"}},
            {"probe": "env_equals", "args": {"container": "web", "key": "SECRET_KEY", "value": "hunter2"},
             "hidden": True, "hint": "secret hint"},
        ]}, Context(bank="t", learner="ada"))
    r = question.check(engine=Engine())
    shown = result_text(r) + result_html(r) + repr(r.to_json()) + question.hint() + question.solution()
    for leak in ("SECRET_KEY", "hunter2", "env_equals", "secret hint", "wrong"):
        assert leak not in shown, leak
    assert r.checks[1].name == "hidden check 1" and not r.checks[1].passed
    assert "public checks passed" in r.feedback


def test_grading_imports_stay_light():
    """Importing labkit.grading (and loading a bank) pulls in neither matplotlib nor ipywidgets."""
    code = ("import sys, labkit.grading as g; g.load_bank('lesson8')['p1'].check('cow'); "
            "import labkit.grading.probes, labkit.grading.render; "
            "print(sorted(m for m in ('matplotlib', 'ipywidgets', 'pyroute2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_choice_widget_shows_its_options_once():
    """The quiz cell lists a choice question's options only as its radio buttons; the static HTML still letters them."""
    from labkit.grading.render import question_html
    from labkit.grading.widgets import QuizCell

    q = load_bank("lesson8", learner="ada")["q2"]
    cell = QuizCell(q)
    shown = cell.widget.children[0].value
    assert all(o.text not in shown for o in q.options)
    assert list(cell.input.options) == [o.text for o in q.options]
    assert all(o.text in question_html(q) for o in q.options) and '<ol type="a">' in q._repr_html_()


def test_a_browser_click_grades_the_answer_that_arrives_after_it():
    """A click from the browser can overtake the answer's last update (ipywidgets throttles state,
    not clicks): the cell grades after the update is in, so a corrected answer is graded as corrected."""
    import asyncio

    from labkit.grading import load_bank
    from labkit.grading.widgets import QuizCell

    cell = QuizCell(load_bank("lesson8", learner="ada")["p1"])
    assert cell.input.continuous_update is True

    async def learner():
        cell.input.value = "union mount"
        cell.check_button._handle_button_msg(None, {"event": "click"}, None)
        await asyncio.sleep(0.05)
        cell.input.value = "copy-on-write"  # the held-back update lands after the click
        await asyncio.sleep(0.6)

    asyncio.run(learner())
    assert [r.response for r in cell.results] == ["copy-on-write"]
    assert cell.last.verdict == "correct" and "Correct" in cell.feedback.value


def test_the_scoreboard_is_redrawn_after_every_check():
    """'Your score' is never the snapshot of Run All: each Check redraws it."""
    from labkit.grading import load_bank
    from labkit.grading.widgets import Scoreboard, quiz

    bank = load_bank("lesson8", learner="ada")
    practice, questions = quiz(bank, ids=["p1", "p3"]), quiz(bank, ids=["q1"])
    board = Scoreboard(practice=practice, quiz=questions)
    assert "total: 0 of 3 points" in board.widget.value
    practice.cells[0].input.value = "copy on write"
    practice.cells[0].check_button.click()
    assert "total: 1 of 3 points" in board.widget.value and "p1: correct" in board.widget.value
    right = next(o.text for o in questions.cells[0].question.options if o.correct)
    questions.cells[0].input.value = right
    questions.cells[0].check_button.click()
    assert "total: 2 of 3 points" in board.widget.value
