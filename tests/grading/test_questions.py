"""Every question type: check(), hint(), solution(); variants per learner; hidden answers."""

from __future__ import annotations

import copy

import pytest

from labkit.grading import load_bank, make_question
from labkit.grading.questions import Context, draw_params, hash_answer
from labkit.grading.results import CORRECT, INCORRECT, NOT_ATTEMPTED, PARTIAL, Result


def q(learner="ada", **spec):
    base = {"id": "x", "prompt": "?", "explain": "because"}
    base.update(spec)
    return make_question(base, Context(bank="t", learner=learner))


def test_short_question_result_carries_points_feedback_and_explanation():
    """A short answer's result says what matched and why the answer is right."""
    lesson = load_bank("lesson8", learner="ada")
    r = lesson["p1"].check("copy on wirte")
    assert (r.verdict, r.points, r.max_points, r.canonical, r.matched_by) == (CORRECT, 1, 1, "copy-on-write", "fuzzy")
    assert "copy-on-write" in r.feedback and r.explanation
    wrong = lesson["p3"].check("mutable")
    assert (wrong.verdict, wrong.points, wrong.matched_by) == (INCORRECT, 0, "reject")
    assert "keeping state" in wrong.feedback


def test_empty_answer_is_not_attempted_rather_than_wrong():
    """No answer yet is distinct from a wrong answer."""
    assert load_bank("lesson8")["p1"].check("  ").verdict == NOT_ATTEMPTED
    assert load_bank("lesson8")["p1"].check(None).verdict == NOT_ATTEMPTED


def test_command_question_accepts_aliases_and_names_the_canonical_form():
    """labkit/docker and management forms are one command; the canonical form is reported."""
    p2 = load_bank("lesson8")["p2"]
    r = p2.check("labkit container inspect frontend-app")
    assert r.correct and r.matched_by == "alias" and r.canonical == "docker inspect"
    assert not p2.check("docker ps -a").correct
    assert p2.solution().startswith("docker inspect —")


def test_choice_question_by_text_letter_index_and_option_feedback():
    """A choice is named by text, by its letter in the learner's order, or by index; the pick explains itself."""
    q2 = load_bank("lesson8", learner="ada")["q2"]
    right = next(o for o in q2.options if o.correct)
    i = q2.options.index(right)
    for answer in (right.text, chr(ord("a") + i), i, right.text.upper()):
        assert q2.check(answer).correct
    wrong = next(o for o in q2.options if not o.correct)
    r = q2.check(wrong.text)
    assert r.verdict == INCORRECT and r.feedback == wrong.explain
    assert q2.check("z").verdict == INCORRECT and "none of the options" in q2.check("z").feedback


def test_choice_partial_score():
    """An option with score earns that share of the points."""
    question = q(type="choice", points=2, options=[{"text": "best", "correct": True},
                                                   {"text": "close", "score": 0.5, "explain": "almost"}])
    r = question.check("close")
    assert (r.verdict, r.points, r.feedback) == (PARTIAL, 1.0, "almost")


def test_multi_scores_plus_minus_per_option_floored_at_zero():
    """Each right pick earns its share, each wrong pick costs one, never below zero."""
    question = q(type="multi", points=4, options=[
        {"text": "a", "correct": True}, {"text": "b", "correct": True},
        {"text": "c", "explain": "c is wrong"}, {"text": "d"}])
    assert question.check(["a", "b"]).points == 4
    assert question.check(["a"]).points == 2 and "missed 1" in question.check(["a"]).feedback
    assert question.check(["a", "c"]).points == 0
    assert question.check(["c", "d"]).points == 0
    assert question.check("a, b").correct
    assert question.check(["a", "c"]).verdict == INCORRECT


def test_numeric_tolerance_units_and_not_a_number():
    """Numbers match within the tolerance, with an optional unit; text that is no number is wrong, not an error."""
    question = q(type="numeric", answer=64, tolerance=0.5, units=["MiB", "m"])
    assert question.check("64").correct and question.check("64.4 MiB").correct and question.check(64).correct
    assert not question.check("65").correct
    r = question.check("sixty-four")
    assert r.verdict == INCORRECT and "not a number" in r.feedback
    rel = q(type="numeric", answer=1000, rel_tolerance=0.01)
    assert rel.check("1,009").correct and not rel.check("1011").correct


def test_variants_are_deterministic_per_learner_and_differ_between_learners():
    """The same learner always draws the same token; another learner draws another."""
    a1 = load_bank("inspect", learner="ada")["ins.lab"]
    a2 = load_bank("inspect", learner="ada")["ins.lab"]
    b = load_bank("inspect", learner="bob")["ins.lab"]
    assert a1.params == a2.params and a1.params["token"] != b.params["token"]
    assert len(a1.params["token"]) == 8 and int(a1.params["token"], 16) >= 0
    assert a1.params["token"] in str(a1.spec["checks"]) and a1.params["token"] in a1.spec["task"]["goal"]
    assert a1.for_learner("bob").params == b.params


def test_param_kinds_and_course_key():
    """hexN, int:LO-HI and lists are drawn; a different course key draws differently."""
    spec = {"h": "hex4", "n": "int:3-5", "c": ["x", "y", "z"]}
    drawn = draw_params(spec, key="k", learner="ada", qid="q")
    assert len(drawn["h"]) == 4 and 3 <= int(drawn["n"]) <= 5 and drawn["c"] in "xyz"
    others = [draw_params({"h": "hex8"}, key=k, learner="ada", qid="q")["h"] for k in ("k1", "k2")]
    assert others[0] != others[1]


def test_choice_shuffle_is_seeded_per_learner():
    """Options are shuffled the same way for one learner every time, and differently across learners."""
    orders = {tuple(o.text for o in load_bank("lesson8", learner=f"l{i}")["q1"].options) for i in range(12)}
    assert len(orders) > 1
    again = [tuple(o.text for o in load_bank("lesson8", learner="ada")["q1"].options) for _ in range(3)]
    assert len(set(again)) == 1


def test_hint_and_solution():
    """hint() nudges; solution() gives the answer and the explanation."""
    p1 = load_bank("lesson8")["p1"]
    assert "first write" in p1.hint() and "copy-on-write" not in p1.hint().lower()
    assert p1.solution().startswith("copy-on-write — ")
    q1 = load_bank("lesson8")["q1"]
    assert "regular Linux process" in q1.solution()


def test_hashed_answers_match_exactly_and_hide_the_solution():
    """A graded question may store salted hashes: normalized exact matches pass, the solution stays hidden."""
    question = make_question({"id": "h", "type": "short", "prompt": "?", "explain": "e",
                              "accept_sha256": [hash_answer("Copy-on-write", "s4lt")]},
                             Context(bank="t", salt="s4lt", learner="ada"))
    assert question.check("copy on write").correct
    assert not question.check("copy on wirte").correct
    assert "hidden" in question.solution()


def test_predict_then_observe_needs_the_engine_and_uses_what_it_reports():
    """Without an engine a prediction is not attempted; with one, the observed value decides."""

    class FakeState:
        """Only the inspect() an observer reads; the real engine is exercised in test_probes_real."""

        def __init__(self, code):
            self.code = code

        def inspect(self, ref):
            return {"State": {"ExitCode": self.code, "Status": "exited", "Running": False, "Pid": 0,
                              "OOMKilled": False}}

    def without_experiment(qid):
        """The question as a bank without an experiment would have it: the engine's state is read as it is."""
        bank = load_bank("states", learner="ada")
        spec = copy.deepcopy(next(q for q in bank.data["questions"] if q["id"] == qid))
        del spec["observe"]["experiment"]
        return make_question(spec, bank.context)

    question = without_experiment("st.predict.code")
    assert question.check("137").verdict == NOT_ATTEMPTED
    r = question.check("137", engine=FakeState(137))
    assert r.correct and r.observed == 137 and "137" in r.feedback
    wrong = question.check("143", engine=FakeState(137))
    assert wrong.verdict == INCORRECT and "SIGTERM" in wrong.feedback
    status = without_experiment("st.predict.status")
    assert status.check("exited", engine=FakeState(0)).correct
    assert not status.check("paused", engine=FakeState(0)).correct


def test_an_experiment_runs_only_through_the_line_runner_it_is_handed():
    """A prediction with an experiment is not graded without a line runner, and runs each line through the one
    it is given: the graders never import the command line that registers them."""
    class Empty:
        """An engine with nothing on it, for the clean-up after the experiment."""

        def ps(self, all=False):
            return []

    question = load_bank("states", learner="ada")["st.predict.code"]
    r = question.check("137", engine=Empty())
    assert r.verdict == NOT_ATTEMPTED and "run_line=labkit.cli.main" in r.feedback
    seen = []

    def run_line(words, engine_factory, stdout, stderr):
        seen.append(words)
        stdout.write("refused\n")
        return 125  # the first line fails: nothing is left to observe, and the grade says which line

    r = question.check("137", engine=Empty(), run_line=run_line)
    assert r.verdict == NOT_ATTEMPTED and "refused" in r.feedback
    assert seen and seen[0][0] in ("run", "create")

    def slow_service(words, engine_factory, stdout, stderr):
        stdout.write(f"{words[3]}\noverall progress: 7 out of 10 tasks\n")
        stderr.write(f"service {words[3]}: 7 of 10 replicas running after 120 s\n")
        return 1  # a service that did not converge: the grade quotes why, not the name printed first

    replaced = load_bank("stateless", learner="ada")["sl.predict.replaced"]
    r = replaced.check("10", engine=Empty(), run_line=slow_service)
    assert r.verdict == NOT_ATTEMPTED and "7 of 10 replicas running after 120 s" in r.feedback, r.feedback


def test_result_round_trips_through_json():
    """A result written as JSON reads back equal."""
    r = load_bank("lesson8", learner="ada")["p1"].check("cow")
    assert Result.from_json(r.to_json()) == r


@pytest.mark.parametrize("qtype", ["short", "command", "choice", "multi", "numeric", "lab"])
def test_every_type_is_built_from_a_bank(qtype):
    """Each of the six types appears in the shipped banks and builds."""
    from labkit.grading.banks import available_banks

    found = [q for name in available_banks() for q in load_bank(name, learner="ada") if q.type == qtype]
    assert found


def test_bank_wide_params_name_one_experiment_across_questions():
    """Questions about one experiment share the bank's drawn value, so they name the same container."""
    bank = load_bank("states", learner="ada")
    a, b = bank["st.predict.status"], bank["st.predict.code"]
    assert a.params["run"] == b.params["run"] and f"walkp-{a.params['run']}" in b.prompt
    assert load_bank("states", learner="bob")["st.predict.code"].params["run"] != b.params["run"]
