"""`labkit grade`: check an answer, collect grades, validate banks — exit codes a script can trust."""

from __future__ import annotations

import io

from labkit import cli
from labkit.grading import load_bank, save_submission


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_check_prints_verdict_feedback_explanation_and_exits_0_only_when_accepted():
    """An accepted answer exits 0; a rejected one exits 1 with its feedback."""
    code, out, _ = run("grade", "check", "lesson8", "p1", "copy", "on", "wirte")
    assert code == 0 and "correct" in out and "copy-on-write" in out and "Why:" in out
    code, out, _ = run("grade", "check", "lesson8", "p3", "stateful")
    assert code == 1 and "opposite" in out
    code, out, _ = run("grade", "check", "lesson8", "p2", "labkit", "container", "inspect", "web")
    assert code == 0


def test_check_errors_are_one_sentence():
    """An unknown bank or question is one line on stderr, exit 125 (the command failed; 1 is a wrong answer)."""
    code, _, err = run("grade", "check", "nope", "p1", "x")
    assert code == 125 and err.count("\n") == 1 and "no question bank named nope" in err
    code, _, err = run("grade", "check", "lesson8", "p9", "x")
    assert code == 125 and "has no question p9" in err


def test_collect_writes_the_csv(tmp_path):
    """collect DIR -o FILE writes the sheet and says what went in."""
    save_submission([load_bank("lesson8", learner="ada")["p1"].check("cow")], tmp_path / "subs")
    code, out, _ = run("grade", "collect", str(tmp_path / "subs"), "-o", str(tmp_path / "g.csv"))
    assert code == 0 and "1 learners, 1 questions" in out
    assert (tmp_path / "g.csv").read_text().splitlines()[2] == "ada,1,1"


def test_validate_and_submit(tmp_path):
    """validate passes on the shipped banks; --submit appends the result for the teacher."""
    assert run("grade", "validate")[0] == 0
    code, _, _ = run("grade", "check", "lesson8", "p1", "cow", "--learner", "dan", "--submit", str(tmp_path))
    assert code == 0 and (tmp_path / "dan.json").exists()
