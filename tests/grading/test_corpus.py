"""A held-out-style answer corpus: what learners write, right and wrong, for every question of every bank.

``corpus/BANK.yaml`` holds, per non-lab question, at least 10 right and 10 wrong answers written
from the question as ``labkit quiz show BANK --learner L`` prints it — sentences, articles,
letters with parentheses, units, near-miss words, negations, option ids, equivalent commands —
and each one is asserted. Predictions (``observe: true``) are graded against a fresh run of
their experiment on the real engine, so their right answers are what the engine really does.

``python -m tests.grading.test_corpus`` prints the accept and refuse rates per bank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from labkit.cli import main as run_line
from labkit.grading import load_bank
from labkit.grading.banks import available_banks

CORPUS = Path(__file__).with_name("corpus")
MIN_ANSWERS = 10


def corpus(bank: str) -> dict[str, Any]:
    """A bank's answers: its own file, with the later rounds (``round*.yaml``) merged in."""
    with open(CORPUS / f"{bank}.yaml", encoding="utf-8") as f:
        data = yaml.safe_load(f)
    for extra in sorted(CORPUS.glob("round*.yaml")):
        with open(extra, encoding="utf-8") as f:
            more = yaml.safe_load(f)
        assert more["learner"] == data["learner"], extra
        for qid, entry in (more["banks"].get(bank) or {}).items():
            for kind in ("right", "wrong"):
                data["questions"][qid][kind] = [*data["questions"][qid][kind], *entry.get(kind, [])]
    return data


def cases(observed: bool) -> list[tuple[str, str]]:
    out = []
    for bank in available_banks():
        data = corpus(bank)
        for qid, entry in data["questions"].items():
            if bool(entry.get("observe")) == observed:
                out.append((bank, qid))
    return out


def misgraded(bank: str, qid: str, engine: Any = None) -> tuple[list[str], int, int]:
    """The answers graded against the corpus, and how many right ones were accepted, wrong ones refused."""
    data = corpus(bank)
    q = load_bank(bank, learner=data["learner"])[qid]
    entry = data["questions"][qid]
    bad, accepted, refused = [], 0, 0
    for answer in entry["right"]:
        r = q.check(str(answer), engine=engine, run_line=run_line)
        accepted += r.correct
        if not r.correct:
            bad.append(f"right answer refused: {answer!r} ({r.verdict}: {r.feedback[:80]})")
    for answer in entry["wrong"]:
        r = q.check(str(answer), engine=engine, run_line=run_line)
        refused += not r.correct
        if r.correct:
            bad.append(f"wrong answer accepted: {answer!r}")
    return bad, accepted, refused


def test_every_question_of_every_bank_has_its_answers():
    """Each non-lab question has at least 10 right and 10 wrong answers; predictions are marked as such."""
    for bank in available_banks():
        data = corpus(bank)
        b = load_bank(bank, learner=data["learner"])
        asked = {q.id for q in b if q.type != "lab"}
        assert set(data["questions"]) == asked, bank
        for qid, entry in data["questions"].items():
            assert len(entry["right"]) >= MIN_ANSWERS and len(entry["wrong"]) >= MIN_ANSWERS, (bank, qid)
            assert bool(entry.get("observe")) == ("observe" in b[qid].spec), (bank, qid)
            assert not set(map(str, entry["right"])) & set(map(str, entry["wrong"])), (bank, qid)


@pytest.mark.parametrize("bank, qid", cases(observed=False))
def test_the_corpus_is_graded_as_a_teacher_would(bank, qid):
    """Every right answer is accepted and every wrong one refused."""
    bad, _, _ = misgraded(bank, qid)
    assert bad == []


@pytest.fixture(scope="module")
def lesson_engine(shared_engine):
    """The real engine with the lesson's images (ins.predict.* runs frontend-app:v2.1.0)."""
    shared_engine.setup(on_step=lambda *_a: None)
    return shared_engine


@pytest.mark.root
@pytest.mark.parametrize("bank, qid", cases(observed=True))
def test_predictions_in_the_corpus_are_graded_by_a_fresh_experiment(bank, qid, lesson_engine):
    """Every right prediction is accepted, every wrong one refused, by what the engine really does;
    the experiment leaves nothing behind."""
    before = {c["Id"] for c in lesson_engine.ps(all=True)}
    bad, _, _ = misgraded(bank, qid, lesson_engine)
    assert bad == []
    assert {c["Id"] for c in lesson_engine.ps(all=True)} == before
    assert not [s for s in lesson_engine.service_ls() if s["Name"].startswith("web-")]


@pytest.fixture(scope="module")
def sim_engine():
    """The simulator on a state root of its own, with the lesson's images."""
    import labkit
    from tests.conftest import state_root

    engine = labkit.connect(backend="sim", root=state_root())
    engine.setup(on_step=lambda *_a: None)
    return engine


@pytest.mark.parametrize("bank, qid", cases(observed=True))
def test_predictions_in_the_corpus_are_graded_the_same_on_the_simulator(bank, qid, sim_engine):
    """The simulator does what the kernel does, so it grades every prediction the same way — except a
    service's, which needs the real backend: that prediction is not graded, and says why."""
    before = {c["Id"] for c in sim_engine.ps(all=True)}
    if qid == "sl.predict.replaced":
        data = corpus(bank)
        r = load_bank(bank, learner=data["learner"])[qid].check("10", engine=sim_engine, run_line=run_line)
        assert r.verdict == "not attempted" and "services need the real backend" in r.feedback
        return
    bad, _, _ = misgraded(bank, qid, sim_engine)
    assert bad == []
    assert {c["Id"] for c in sim_engine.ps(all=True)} == before


def rates(engine: Any = None) -> list[tuple[str, int, int, int, int]]:
    """Per bank: right answers accepted / right answers, wrong answers refused / wrong answers."""
    rows = []
    for bank in available_banks():
        data = corpus(bank)
        acc = n_right = ref = n_wrong = 0
        for qid, entry in data["questions"].items():
            if entry.get("observe") and engine is None:
                continue
            _, a, r = misgraded(bank, qid, engine)
            acc, ref = acc + a, ref + r
            n_right, n_wrong = n_right + len(entry["right"]), n_wrong + len(entry["wrong"])
        rows.append((bank, acc, n_right, ref, n_wrong))
    return rows


def main() -> None:
    import os
    import tempfile

    engine = None
    if os.geteuid() == 0:
        import labkit

        engine = labkit.connect(backend="linux", root=tempfile.mkdtemp(prefix="labkit-test-corpus-"))
        engine.setup(on_step=lambda *_a: None)
    print(f"{'BANK':<10} {'RIGHT ACCEPTED':>16} {'WRONG REFUSED':>16}")
    total = [0, 0, 0, 0]
    for bank, a, n, r, m in rates(engine):
        print(f"{bank:<10} {a:>5}/{n:<4} {a / n:6.1%} {r:>5}/{m:<4} {r / m:6.1%}")
        total = [total[0] + a, total[1] + n, total[2] + r, total[3] + m]
    a, n, r, m = total
    print(f"{'all':<10} {a:>5}/{n:<4} {a / n:6.1%} {r:>5}/{m:<4} {r / m:6.1%}")
    if engine is not None:
        engine.network_prune()


if __name__ == "__main__":
    main()
