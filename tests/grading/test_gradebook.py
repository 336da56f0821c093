"""Submissions per learner, collected into an LMS-ready CSV that reads back the same."""

from __future__ import annotations

import csv
import json

import pytest

from labkit.errors import InvalidArgument
from labkit.grading import collect, load_bank, read_csv, save_submission
from labkit.grading.gradebook import append_attempt, read_results


def answer(learner, qid, text):
    return load_bank("lesson8", learner=learner)[qid].check(text)


def test_csv_round_trip(tmp_path):
    """Results saved per learner become one row each, a column per question plus the total, and read back equal."""
    subs = tmp_path / "submissions"
    save_submission([answer("ada", "p1", "cow"), answer("ada", "p3", "stateful")], subs)
    save_submission([answer("ada", "p3", "stateless")], subs)  # a later, better attempt
    save_submission([answer("bob", "p1", "union mount")], subs)
    book = collect(subs)
    out = book.write_csv(tmp_path / "grades.csv")
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["learner", "lesson8:p1", "lesson8:p3", "total"]
    assert rows[1] == ["(max points)", "1", "1", "2"]
    assert rows[2] == ["ada", "1", "1", "2"]
    assert rows[3] == ["bob", "0", "", "0"]
    back = read_csv(out)
    assert back.scores == book.scores and back.max_points == book.max_points


def test_submission_file_is_per_learner_and_safe_named(tmp_path):
    """A learner's name cannot climb out of the submissions directory."""
    r = load_bank("lesson8", learner="../evil")["p1"].check("cow")
    path = save_submission([r], tmp_path)
    assert path.parent == tmp_path and json.loads(path.read_text())["learner"] == "../evil"


def test_attempts_log_is_collected_too(tmp_path):
    """An append-only attempts log (.jsonl) merges with the submissions."""
    log = tmp_path / "carol.jsonl"
    append_attempt(answer("carol", "q1", "A chroot directory and nothing more"), log)
    append_attempt(answer("carol", "p1", "copy-on-write"), log)
    assert [r.qid for r in read_results(log)] == ["q1", "p1"]
    assert collect(tmp_path).scores["carol"] == {"lesson8:q1": 0.0, "lesson8:p1": 1.0}


def test_collect_refuses_a_missing_dir_and_a_damaged_file(tmp_path):
    """Bad input is one clear sentence, not a traceback."""
    with pytest.raises(InvalidArgument, match="not a directory"):
        collect(tmp_path / "nope")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        collect(tmp_path)
