"""Every bank in exercises/ is valid (CI runs this), and invalid banks are refused with clear sentences."""

from __future__ import annotations

import copy

import pytest
import yaml

from labkit.grading import BankError, load_bank, validate
from labkit.grading.banks import available_banks, find_bank, read_yaml
from labkit.grading.probes import OBSERVERS, PROBES

BANKS = available_banks()
CONCEPTS = ["isolation", "cgroups", "layers", "ephemeral", "states", "stateless", "inspect"]


def test_the_expected_banks_exist():
    """The lesson's bank and one bank per concept are in exercises/."""
    assert set(BANKS) >= {"lesson8", *CONCEPTS}


@pytest.mark.parametrize("name", BANKS)
def test_bank_matches_the_schema_and_its_meaning(name):
    """Each bank validates against schema.json and the checks the schema cannot express."""
    assert validate(read_yaml(find_bank(name)), name) == []


@pytest.mark.parametrize("name", CONCEPTS)
def test_concept_banks_have_predictions_labs_and_variants(name):
    """5+ questions, at least one predict-then-observe, one lab with probes, and per-learner params."""
    bank = load_bank(name, learner="ada")
    specs = bank.data["questions"]
    assert len(specs) >= 5
    assert any("observe" in q for q in specs)
    labs = [q for q in specs if q["type"] == "lab"]
    assert labs and all(q["checks"] and q.get("params") for q in labs)


def test_lesson8_has_the_three_practice_and_three_quiz_questions():
    """The lesson's own questions are all there, each with an explanation."""
    bank = load_bank("lesson8")
    assert bank.ids == ["p1", "p2", "p3", "q1", "q2", "q3"]
    assert all(q.explanation for q in bank)


@pytest.mark.parametrize("name", BANKS)
def test_reference_answers_score_full_marks(name):
    """Every question with a written answer accepts its own reference answer."""
    for q in load_bank(name, learner="ada"):
        ref = q.reference_answer()
        if ref is not None:
            assert q.check(ref).correct, (name, q.id, ref)


@pytest.mark.parametrize("name", BANKS)
def test_known_wrong_answers_score_zero_with_their_feedback(name):
    """Every reject entry scores 0 and shows its own feedback."""
    for q in load_bank(name, learner="ada"):
        if "observe" in q.spec:
            continue
        for r in q.spec.get("reject") or []:
            res = q.check(r["answer"])
            assert res.points == 0 and r["feedback"] in res.feedback, (q.id, r)


def _bank(**question):
    base = {"id": "x", "type": "short", "prompt": "?", "explain": "because", "accept": ["a"]}
    base.update(question)
    return {"bank": "t", "version": 1, "questions": [{k: v for k, v in base.items() if v is not None or k == "explain"}]}


@pytest.mark.parametrize("data, words", [
    ({"bank": "t", "version": 1, "questions": []}, "has too few items"),
    (_bank(type="essay"), "'essay' should be one of"),
    (_bank(explain=None), "None should be of type string"),
    (_bank(type="command", accept=["docker ps"], fuzzy=True), "may not have: fuzzy"),
    (_bank(type="choice", accept=None), "'options' is a required property"),
    (_bank(type="lab", accept=None, task={"goal": "g", "do": ["x"], "checked": "c"},
           checks=[{"probe": "no_such_probe"}]), "unknown probe no_such_probe"),
    (_bank(type="lab", accept=None, task={"goal": "g", "do": ["x"], "checked": "c"},
           checks=[{"probe": "container_running"}]), "needs the argument(s) name"),
    (_bank(accept=["{token}"]), "has a parameter token"),
    (_bank(params={"token": "hexagon"}), "'hexagon' has none of the allowed forms"),
    (_bank(regex="("), "does not compile"),
    (_bank(accept=None), "has no accept; add accept"),
    (_bank(type="choice", accept=None, options=[{"text": "a", "correct": True}, {"text": "b"}],
           observe={"probe": "status", "args": {"container": "c"}, "experiment": ["docker run busybox"]}),
     "must start with labkit"),
    ("root:x:0:0:root:/root:/bin/bash", "is not a question bank"),
    (_bank(type="choice", accept=None, options=[{"text": "a"}, {"text": "b"}]), "no right option"),
    (_bank(type="command", accept=["docker 'unclosed"]), "could not be split"),
    ({"bank": "t", "version": 1, "questions": [_bank()["questions"][0], _bank()["questions"][0]]}, "used twice"),
])
def test_invalid_banks_are_refused_in_words(data, words):
    """A broken bank yields a sentence naming the problem."""
    problems = validate(data, "t.yaml")
    assert problems and any(words in p for p in problems), problems


def test_load_bank_raises_bank_error_for_a_broken_file(tmp_path):
    """Loading an invalid bank raises BankError (an InvalidArgument) naming the file."""
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(_bank(type="essay")))
    with pytest.raises(BankError) as err:
        load_bank(path)
    assert "broken.yaml" in str(err.value) and isinstance(err.value, ValueError)
    path.write_text("bank: [unclosed")
    with pytest.raises(BankError, match="not valid YAML"):
        load_bank(path)


def test_every_probe_used_is_registered():
    """The probes and observers the banks name all exist (and the registry has the documented ones)."""
    assert {"container_running", "container_status", "container_exists", "env_equals", "file_in_upperdir",
            "file_absent", "whiteout_exists", "volume_exists", "volume_has_file", "image_layers_unchanged",
            "exit_code_is", "oom_killed", "label_equals", "memory_limit", "pids_limit", "copied_up"} <= set(PROBES)
    for name in BANKS:
        for q in copy.deepcopy(read_yaml(find_bank(name)))["questions"]:
            for c in q.get("checks") or []:
                assert c["probe"] in PROBES
            if "observe" in q:
                assert q["observe"]["probe"] in OBSERVERS
