"""`labkit quiz`: a terminal learner lists banks, reads a question, answers it — and bad input is one sentence."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import cli
from labkit.grading import load_bank

LABKIT = Path(__file__).resolve().parents[2] / "bin" / "labkit"


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_ls_lists_every_bank_and_a_banks_questions_with_their_kinds():
    """`quiz ls` names each bank with its size; `quiz ls BANK` each question id and kind."""
    code, out, _ = run("quiz", "ls")
    assert code == 0
    for name in ("cgroups", "lesson8", "layers", "states"):
        assert any(line.split()[:1] == [name] for line in out.splitlines())
    code, out, _ = run("quiz", "ls", "layers")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if not line.startswith("*")}
    assert rows["lay.where"] == "short" and rows["lay.props"] == "multi" and rows["lay.predict.change"] == "choice*"


def test_show_prints_the_options_with_their_letters_and_never_the_answer():
    """What `quiz show` prints is what a learner may see: prompt, options lettered in their order, how to answer."""
    q = load_bank("lesson8", learner="ada")["q1"]
    code, out, _ = run("quiz", "show", "lesson8", "q1", "--learner", "ada")
    assert code == 0 and q.prompt in out
    for i, o in enumerate(q.options):
        assert f"  {'abcd'[i]}) {o.text}" in out
    assert "labkit quiz check lesson8 q1" in out
    for qid in ("p1", "p2", "p3"):
        spec = load_bank("lesson8").question(qid).spec
        _, shown, _ = run("quiz", "show", "lesson8", qid)
        assert not any(str(a).casefold() in shown.casefold() for a in spec["accept"] if len(str(a)) > 3), qid
    code, everything, _ = run("quiz", "show", "cgroups")
    assert code == 0 and everything.count("[cg.") == 7 and "67108864" not in everything


def test_a_letter_shown_by_quiz_show_is_accepted_by_quiz_check():
    """The letter printed beside the right option, in any of its written forms, passes; option ids never do."""
    q = load_bank("lesson8", learner="ada")["q1"]
    letter = "abcd"[[o.correct for o in q.options].index(True)]
    for form in (letter, letter.upper(), f"{letter})", f"({letter})"):
        assert run("quiz", "check", "lesson8", "q1", form, "--learner", "ada")[0] == 0, form
    for form in ("opt1", "opt1,opt2"):
        assert run("quiz", "check", "lesson8", "q1", form, "--learner", "ada")[0] == 1, form


@pytest.mark.parametrize("content, says", [
    (b"bank: b\nversion: 1\nquestions:\n  - id: x\n    type: short\n    prompt: What?\n    explain: Why.\n",
     "question x: has no accept"),
    (b"\xff\xfe\x00binary\x00\x9c" * 20, "is not UTF-8 text"),
    (b"root:x:0:0:root:/root:/bin/bash\nhunter2:x:1:1::/:/usr/sbin/nologin\n", "is not a question bank"),
    (b"root:x:0:0:root:/root:/bin/bash\nsecret-line: hunter2\n", "is not valid YAML at line 2"),
    (b"bank: [unclosed\n", "is not valid YAML at line"),
])
def test_a_bad_bank_is_one_sentence_that_never_echoes_the_file(tmp_path, content, says):
    """No accept, not UTF-8, not a bank, not YAML: one line naming the file and what to do, exit 125."""
    bank = tmp_path / "bank.yaml"
    bank.write_bytes(content)
    for argv in (("quiz", "check", str(bank), "x", "y"), ("quiz", "show", str(bank)), ("quiz", "ls", str(bank))):
        code, out, err = run(*argv)
        assert code == 125 and out == "" and err.count("\n") == 1 and says in err, (argv, err)
        assert "hunter2" not in err and "root:x" not in err and len(err) < 300


def test_a_reader_that_goes_away_loses_no_attempt(tmp_path):
    """`quiz check … --submit D | head -1`: the attempt is saved before anything is printed, and the exit is quiet."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte
    env = {**os.environ, "LABKIT_NO_SERVER": "1", "PYTHONPATH": str(LABKIT.parents[1])}
    done = subprocess.run([sys.executable, str(LABKIT), "quiz", "check", "lesson8", "p1", "copy", "on", "write",
                           "--learner", "pia", "--submit", str(tmp_path)], stdout=write, stderr=subprocess.PIPE,
                          env=env, timeout=60)
    os.close(write)
    assert done.stderr == b"" and done.returncode == 0
    assert '"verdict": "correct"' in (tmp_path / "pia.json").read_text()


def test_an_attempt_that_cannot_be_saved_says_so_in_one_sentence(tmp_path):
    """--submit to a place that is not a writable directory: the verdict is shown, one line says the
    attempt was not saved and where, exit 125."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    code, out, err = run("quiz", "check", "lesson8", "p1", "cow", "--submit", str(not_a_dir / "sub"))
    assert code == 125 and "correct" in out
    assert err.count("\n") == 1 and "the attempt was not saved to the submission in" in err
