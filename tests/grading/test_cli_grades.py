"""`labkit quiz check` and `labkit grades [export|collect|verify]`: what learners and teachers run in a terminal."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from labkit import cli
from labkit.grading import load_bank, save_submission
from labkit.grading.gradebook import append_attempt, read_results


def run(*argv, engine=None, env=None, monkeypatch=None):
    out, err = io.StringIO(), io.StringIO()
    factory = (lambda **_kw: engine) if engine is not None else None
    code = cli.main(list(argv), engine_factory=factory, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def answer(learner, bank, qid, text):
    return load_bank(bank, learner=learner)[qid].check(text)


@pytest.fixture
def sim():
    """A simulator engine on a fresh state root of its own."""
    import labkit

    root = Path(tempfile.mkdtemp(prefix="labkit-test-sim-grades-"))
    try:
        yield labkit.connect(backend="sim", root=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_quiz_check_is_grade_check(tmp_path, monkeypatch):
    """quiz check prints verdict, feedback and explanation, exits 0 only when accepted, and --record logs it."""
    monkeypatch.setenv("LABKIT_ATTEMPTS", str(tmp_path / "log.jsonl"))
    code, out, _ = run("quiz", "check", "lesson8", "p1", "copy", "on", "wirte")
    assert code == 0 and "correct: 1/1" in out and "copy-on-write" in out and "Why:" in out
    code, out, _ = run("quiz", "check", "lesson8", "p3", "stateful", "--record")
    assert code == 1 and "opposite" in out and "Why:" in out
    code, _, err = run("quiz", "check", "lesson8", "nope", "x")
    assert code == 125 and err.count("\n") == 1 and "has no question nope" in err
    [logged] = read_results(tmp_path / "log.jsonl")
    assert logged.qid == "p3" and logged.points == 0 and logged.ts.endswith("Z")


def test_grade_and_quiz_alone_show_their_help_as_a_command_group_does():
    """``quiz`` or ``grade`` without a subcommand prints its help on stderr, each subcommand named, and exits 0,
    as ``labkit network`` (and ``docker network``) does."""
    for group, subs in (("quiz", ("ls", "show", "check")), ("grade", ("check", "lab", "collect", "validate"))):
        code, out, err = run(group)
        assert (code, out) == (0, ""), (group, code, out)
        assert err.startswith(f"usage: labkit {group} ") and all(f"    {s} " in err for s in subs), err
    code, out, err = run("network")
    assert (code, out) == (0, "") and err.startswith("usage: labkit network ")


def test_grades_shows_progress_from_the_attempts_log(tmp_path, monkeypatch):
    """grades counts each bank's questions answered and right, best points, and names what is left."""
    log = tmp_path / "attempts.jsonl"
    monkeypatch.setenv("LABKIT_ATTEMPTS", str(log))
    monkeypatch.setenv("LABKIT_LEARNER", "ada")
    code, out, _ = run("grades")
    assert code == 0 and "no attempts yet" in out
    for qid, text in (("p1", "union mount"), ("p1", "cow"), ("p3", "stateful")):
        append_attempt(answer("ada", "lesson8", qid, text), log)
    append_attempt(answer("bob", "lesson8", "p2", "docker inspect web"), log)
    code, out, _ = run("grades")
    line = next(ln for ln in out.splitlines() if ln.startswith("lesson8"))
    assert code == 0 and "progress of ada" in out
    assert line.split()[1:4] == ["2/6", "1/6", "1/6"], line
    assert "p2, p3, q1" in line and "p1" not in line.split("  ")[-1]
    code, out, _ = run("grades", "--learner", "bob")
    assert "1/6" in out and "p1, p3" in out


def test_export_writes_per_learner_and_per_attempt_csv(tmp_path, monkeypatch):
    """export -o FILE writes one row per learner (a column per question) and FILE.attempts.csv, one row per attempt."""
    log = tmp_path / "attempts.jsonl"
    monkeypatch.setenv("LABKIT_ATTEMPTS", str(log))
    for text in ("union mount", "cow"):
        append_attempt(answer("ada", "lesson8", "p1", text), log)
    append_attempt(answer("ada", "states", "st.psa", "docker ps -a"), log)
    code, out, _ = run("grades", "export", "-o", str(tmp_path / "g.csv"))
    assert code == 0 and "3 attempts" in out
    wide = list(csv.reader(open(tmp_path / "g.csv")))
    assert wide[0] == ["learner", "lesson8:p1", "states:st.psa", "total"]
    assert wide[2] == ["ada", "1", "1", "2"]
    long = list(csv.DictReader(open(tmp_path / "g.attempts.csv")))
    assert [(r["qid"], r["verdict"], r["response"]) for r in long] == [
        ("p1", "incorrect", "union mount"), ("p1", "correct", "cow"), ("st.psa", "correct", "docker ps -a")]
    assert all(r["ts"] and r["learner"] == "ada" for r in long)


def test_collect_merges_many_learners_logs_without_counting_twice(tmp_path):
    """collect DIR merges logs and submissions (also in subdirectories); an attempt handed in twice counts once."""
    hand_in = tmp_path / "in"
    (hand_in / "carol").mkdir(parents=True)
    r = answer("ada", "lesson8", "p1", "cow")
    append_attempt(r, hand_in / "ada.jsonl")
    stamped = read_results(hand_in / "ada.jsonl")[0]
    save_submission([stamped], hand_in)  # the same attempt in ada.json too
    append_attempt(answer("carol", "lesson8", "p3", "stateless"), hand_in / "carol" / "attempts.jsonl")
    code, out, _ = run("grades", "collect", str(hand_in), "-o", str(tmp_path / "all.csv"))
    assert code == 0 and "2 learners, 2 questions" in out and "2 attempts" in out
    rows = list(csv.reader(open(tmp_path / "all.csv")))
    assert rows[2] == ["ada", "1", "", "1"] and rows[3] == ["carol", "", "1", "1"]
    code, _, err = run("grades", "collect", str(tmp_path / "missing"), "-o", str(tmp_path / "x.csv"))
    assert code == 125 and "is not a directory" in err


def test_verify_marks_lab_scores_verified_self_reported_or_not_verifiable(tmp_path, sim):
    """verify re-runs each handed-in lab here: state that is there verifies it, a score edited up or state that is gone does not."""
    hand_in = tmp_path / "in"
    ada_lab = load_bank("states", learner="ada")["st.lab"]
    token = ada_lab.params["token"]
    name = f"walk-{token}"
    sim.run("busybox", ["sleep", "600"], name=name, detach=True)
    sim.exec_output(name, ["sh", "-c", f"echo {token} > /walk"])
    sim.pause(name)
    done = ada_lab.check(engine=sim)
    assert done.correct
    save_submission([done], hand_in)
    # bob claims full marks for a lab whose containers do not exist here
    bob = dataclasses.replace(done, learner="bob")
    save_submission([bob], hand_in)
    # carol edited her file: a wrong answer reported as right
    wrong = answer("carol", "lesson8", "p3", "stateful")
    save_submission([dataclasses.replace(wrong, points=1.0, verdict="correct")], hand_in)
    # dan's honest right answer
    save_submission([answer("dan", "lesson8", "p1", "cow")], hand_in)
    code, out, _ = run("grades", "verify", str(hand_in), "-o", str(tmp_path / "v.csv"), engine=sim)
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:-2]}
    assert "verified" in lines["ada"] and "states:st.lab" in lines["ada"]
    assert "not verifiable" in lines["bob"]
    assert "self-reported" in lines["carol"]
    assert "verified" in lines["dan"]
    assert code == 1  # something was self-reported
    rows = {r["learner"]: r["verified"] for r in csv.DictReader(open(tmp_path / "v.csv"))}
    assert rows == {"ada": "verified", "bob": "not verifiable", "carol": "self-reported", "dan": "verified"}
    sim.unpause(name)
    sim.stop(name, timeout=1)  # the state changed since: ada's lab no longer holds
    code, out, _ = run("grades", "verify", str(hand_in), "--labs-only", engine=sim)
    assert "self-reported" in next(ln for ln in out.splitlines() if ln.startswith("ada"))
    assert not any(ln.startswith(("carol", "dan")) for ln in out.splitlines())
    sim.rm(name, force=True)


def test_grade_names_still_work(tmp_path):
    """The older `labkit grade check|collect|validate` keep working beside the new names."""
    assert run("grade", "check", "lesson8", "p1", "cow")[0] == 0
    save_submission([answer("ada", "lesson8", "p1", "cow")], tmp_path / "subs")
    assert run("grade", "collect", str(tmp_path / "subs"), "-o", str(tmp_path / "g.csv"))[0] == 0
    assert run("grade", "validate")[0] == 0
    assert json.loads((tmp_path / "subs" / "ada.json").read_text())["results"][0]["ts"]
