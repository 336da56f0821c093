"""Questions: ``q.check(answer) -> Result``, ``q.hint()``, ``q.solution()``.

Six types, one class each, built from a bank's YAML by :func:`make_question`:

==========  ==================================================================
short       free text: synonyms, a reject list with feedback, regex, typo tolerance
command     a command line, token by token through an alias table; never fuzzy
choice      one option; each option explains itself when picked; partial scores
multi       several options; ± per option, floored at 0
numeric     a number within a tolerance, optionally with a unit
lab         probes of the real engine state (:mod:`labkit.grading.probes`)
==========  ==================================================================

**Per-learner variants.** ``params: {token: hex8}`` draws a value per learner
from ``HMAC(course_key, learner ‖ question ‖ param)``: the same learner always
gets the same value, a neighbour a different one, so a copied answer fails.
``{token}`` in the prompt, the accepted answers and the probes' arguments is
replaced by the drawn value. Kinds: ``hexN`` (N hex digits), ``int:LO-HI``,
and a list (one item is picked). Choice options are shuffled per learner too.

**Predict, then observe.** A question with ``observe: {probe: NAME, args: …}``
has no answer written in the bank: its right answer is what the engine then
really does, read by the observer ``NAME`` when the answer is checked. A
choice option matches through its ``value``.
"""

from __future__ import annotations

import ast
import dataclasses
import getpass
import hashlib
import hmac
import math
import os
import random
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import labkit
from labkit.errors import InvalidArgument, LabkitError
from labkit.grading import answers, commands, experiments, probes
from labkit.grading.render import question_html
from labkit.grading.results import CORRECT, INCORRECT, NOT_ATTEMPTED, CheckResult, Result, verdict_for

if TYPE_CHECKING:
    from labkit.engine import Engine
    from labkit.grading.experiments import LineRunner

#: The course key variants are drawn with when neither the bank nor ``$LABKIT_COURSE_KEY`` gives one.
DEFAULT_COURSE_KEY = "labkit"
_PARAM = re.compile(r"\{(\w+)\}")


def current_learner() -> str:
    """Who is answering: ``$LABKIT_LEARNER``, else the login name."""
    name = os.environ.get("LABKIT_LEARNER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "learner"


# ---------------------------------------------------------------------------------------------
# Variants


def _digest(key: str, *parts: str) -> bytes:
    return hmac.new(key.encode(), "\0".join(parts).encode(), hashlib.sha256).digest()


def draw_params(spec: dict[str, Any] | None, *, key: str, learner: str, qid: str) -> dict[str, str]:
    """Draw each parameter of ``spec`` for one learner; deterministic for (key, learner, question).

    Raises:
        InvalidArgument: For a parameter kind that is not ``hexN``, ``int:LO-HI`` or a list.
    """
    out: dict[str, str] = {}
    for name, kind in (spec or {}).items():
        d = _digest(key, learner, qid, name)
        n = int.from_bytes(d, "big")
        if isinstance(kind, list):
            out[name] = str(kind[n % len(kind)])
        elif m := re.fullmatch(r"hex(\d+)", str(kind)):
            out[name] = d.hex()[: int(m.group(1))]
        elif m := re.fullmatch(r"int:(-?\d+)-(-?\d+)", str(kind)):
            lo, hi = int(m.group(1)), int(m.group(2))
            out[name] = str(lo + n % (hi - lo + 1))
        else:
            raise InvalidArgument(f"parameter {name} of question {qid} has the unknown kind {kind!r}",
                                  "Use hexN (e.g. hex8), int:LO-HI, or a list of values")
    return out


def fill(value: Any, params: dict[str, str]) -> Any:
    """Replace ``{name}`` by the drawn parameter in strings, lists and dicts (other braces are left alone)."""
    if isinstance(value, str):
        return _PARAM.sub(lambda m: params.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [fill(v, params) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, params) for k, v in value.items()}
    return value


def hash_answer(text: str, salt: str) -> str:
    """The salted SHA-256 a graded bank stores instead of an accepted answer (of the normalized text)."""
    return hashlib.sha256((salt + answers.normalize(text)).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# The question types


@dataclass(frozen=True)
class Context:
    """Where a question comes from and who answers it.

    Attributes:
        bank: The bank's name.
        key: The course key variants are drawn with.
        salt: The salt of hashed answers.
        learner: Who answers.
        shared: The bank's own ``params`` (drawn once per learner for the whole bank, so that
            questions about one experiment name the same container).
        near_miss: The bank's ``near_miss`` words: never read as a typo in any of its questions.
    """

    bank: str = ""
    key: str = DEFAULT_COURSE_KEY
    salt: str = ""
    learner: str = ""
    shared: dict[str, Any] | None = None
    near_miss: tuple[str, ...] = ()


class Question:
    """One question of a bank, drawn for one learner.

    Attributes:
        id: Unique within its bank.
        type: ``short``, ``command``, ``choice``, ``multi``, ``numeric`` or ``lab``.
        prompt: The task, with this learner's parameters filled in.
        points: What full marks are worth.
        explanation: Why the right answer is right; shown after every attempt.
        params: This learner's drawn parameters.
        spec: The question as the bank wrote it, parameters filled in.
    """

    type = ""

    def __init__(self, spec: dict[str, Any], context: Context | None = None) -> None:
        self.context = context or Context()
        learner = self.context.learner or current_learner()
        self.context = dataclasses.replace(self.context, learner=learner)
        self._raw_spec = spec
        self.id: str = spec["id"]
        bank_wide = draw_params(self.context.shared, key=self.context.key, learner=learner, qid=f"{self.context.bank}:")
        self.params = {**bank_wide,
                       **draw_params(spec.get("params"), key=self.context.key, learner=learner, qid=self.id)}
        self.spec: dict[str, Any] = fill({k: v for k, v in spec.items() if k != "params"}, self.params)
        self.prompt: str = self.spec.get("prompt", "")
        self.points: float = float(self.spec.get("points", 1))
        self.explanation: str = self.spec.get("explain", "")
        self._observed_args: dict[str, Any] = {}
        self._observed_note = ""

    @property
    def learner(self) -> str:
        return self.context.learner

    def for_learner(self, learner: str) -> Question:
        """The same question drawn for another learner."""
        return type(self)(self._raw_spec, dataclasses.replace(self.context, learner=learner))

    # -- the learner's API -------------------------------------------------------------------
    def check(self, answer: Any = None, *, engine: Engine | None = None,
              run_line: LineRunner | None = None) -> Result:
        """Judge ``answer`` and return the :class:`Result` (verdict, points, feedback, explanation).

        Args:
            answer: What the learner answered (text, an option, a list of options, a number).
            engine: The engine a "predict, then observe" question or a lab reads the truth from.
            run_line: How a ``labkit …`` line of a question's experiment runs: :func:`labkit.cli.main`
                (:data:`labkit.grading.experiments.LineRunner`). Without it, a question with an
                experiment is not graded.
        """
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            return self._result(NOT_ATTEMPTED, 0.0, "No answer yet.", response=answer)
        observed = None
        if "observe" in self.spec:
            spec = self.spec["observe"]
            if engine is None:
                return self._result(
                    NOT_ATTEMPTED, 0.0,
                    "This question is graded against what the engine really does in its experiment: "
                    "check your prediction with engine=<your engine>.", response=answer)
            try:
                observed = self.observe(engine, run_line)
            except probes.Missing as err:
                lead = "Not graded" if "experiment" in spec else "Nothing to observe yet"
                return self._result(NOT_ATTEMPTED, 0.0, f"{lead}: {err.one_line()}", response=answer)
            except LabkitError as err:
                return self._result(NOT_ATTEMPTED, 0.0, f"The experiment cannot run here: {err.one_line()}",
                                    response=answer)
        result = self._judge(answer, observed)
        if observed is not None:
            how, args = "The engine really did", spec.get("args") or {}
            if "experiment" in spec:
                how, args = "Run afresh under new names, the experiment really gave", self._observed_args
            seen = f"{how}{self._observed_note}: {probes.describe(spec['probe'], args, probes.OBSERVERS)}" \
                   f" is {_show(observed)}."
            result = _replace(result, observed=observed, feedback=" ".join(x for x in (result.feedback, seen) if x))
        return result

    def observe(self, engine: Engine, run_line: LineRunner | None = None) -> Any:
        """What the engine does in this question's experiment (or, without one, what it shows now).

        With an ``experiment`` the lines are run afresh under new names, each through ``run_line``
        (:func:`labkit.cli.main`), and cleaned up after (:mod:`labkit.grading.experiments`), so
        the grade never depends on the state the learner's own containers were left in.

        Raises:
            probes.Missing: When there is nothing to observe, or an experiment and no ``run_line``.
        """
        spec = self.spec["observe"]
        if "experiment" not in spec:
            return probes.observe(engine, spec["probe"], spec.get("args") or {})
        if run_line is None:
            raise probes.Missing("this question runs an experiment of labkit lines, and nothing was given to run them",
                                 "Check it with run_line=labkit.cli.main, or with 'labkit quiz check'")
        raw = self._raw_spec["observe"]
        kinds = {**(self.context.shared or {}), **(self._raw_spec.get("params") or {})}
        fresh = experiments.fresh_values(sorted(kinds), kinds)
        key = (self.context.bank, spec["probe"], repr(raw.get("args")), *map(str, raw["experiment"]))
        needs = set(raw.get("needs") or ())
        self._observed_note = ""
        if needs and needs - engine.enforced_limits:
            # A limit this engine would discard (rootless without a delegated cgroup): the experiment
            # would run unlimited — a memory hog would take the host's memory. The simulator models it.
            missing = ", ".join(sorted(needs - set(engine.enforced_limits)))
            engine = engine.simulator()
            self._observed_note = f" (on the simulator: this engine does not enforce a {missing} limit here)"
        value, self._observed_args = experiments.observe_fresh(engine, raw, fresh, fill, key, run_line)
        return value

    def hint(self) -> str:
        """A nudge that does not give the answer away."""
        return self.spec.get("hint", "") or "Read the question again, slowly; the explanation after a try helps too."

    def solution(self) -> str:
        """The right answer, in words, with the explanation."""
        answer = self.spec.get("solution") or self._solution_text()
        return f"{answer} — {self.explanation}" if self.explanation else answer

    def reference_answer(self) -> Any:
        """An answer that scores full marks (``None`` for labs and for predictions, which depend on the engine)."""
        return None

    # -- for subclasses ----------------------------------------------------------------------
    def _judge(self, answer: Any, observed: Any) -> Result:
        raise NotImplementedError

    def _solution_text(self) -> str:
        return ""

    def _result(self, verdict: str, points: float, feedback: str = "", **kw: Any) -> Result:
        return Result(
            qid=self.id,
            verdict=verdict,
            points=round(points, 6),
            max_points=self.points,
            feedback=feedback,
            explanation=self.explanation,
            bank=self.context.bank,
            learner=self.context.learner,
            variant=",".join(f"{k}={v}" for k, v in sorted(self.params.items())),
            **kw,
        )

    def _repr_html_(self) -> str:
        return question_html(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.context.bank}:{self.id}>"


class ShortQuestion(Question):
    """Free text, judged by :func:`labkit.grading.answers.match_text`."""

    type = "short"

    def _accept(self, observed: Any) -> list[str]:
        if observed is not None:
            mapped = (self.spec["observe"].get("map") or {}).get(_key(observed))
            seen = [str(x) for x in (mapped if isinstance(mapped, list) else [mapped or _show(observed)])]
            forms = self.spec["observe"].get("forms") or []
            return seen + [str(f).replace("{value}", v) for f in forms for v in seen]
        return [str(a) for a in self.spec.get("accept") or []]

    def _judge(self, answer: Any, observed: Any) -> Result:
        hashed = self.spec.get("accept_sha256")
        if hashed and observed is None:
            ok = hash_answer(str(answer), self.context.salt) in hashed
            if ok:
                return self._result(CORRECT, self.points, "Correct.", matched_by="exact", response=answer)
        m = answers.match_text(str(answer), self._accept(observed), answers.rejects(self.spec.get("reject")),
                               self.spec.get("regex"), fuzzy=_fuzzy(self.spec.get("fuzzy", True)),
                               near_miss=[*self.context.near_miss, *(self.spec.get("near_miss") or [])])
        return self._verdict(m, answer)

    def _verdict(self, m: answers.Match, answer: Any) -> Result:
        if m.accepted:
            note = "Correct."
            if m.how == "fuzzy":
                note = f"Correct (allowing a typo): it is spelled “{m.canonical}”."
            elif m.how == "alias":
                note = f"Correct: that is the same command as “{m.canonical}”."
            return self._result(CORRECT, self.points, note, canonical=m.canonical if m.how in ("fuzzy", "alias") else "",
                                matched_by=m.how, response=answer)
        feedback = m.feedback or self.spec.get("wrong", "") or "Not quite."
        return self._result(INCORRECT, 0.0, feedback, matched_by=m.how if m.how != "none" else "", response=answer)

    def _solution_text(self) -> str:
        if self.spec.get("accept_sha256") and not self.spec.get("accept"):
            return "(the accepted answers of this graded question are hidden)"
        if "observe" in self.spec:
            return "whatever the engine really does — run it and look"
        return str((self.spec.get("accept") or [""])[0])

    def reference_answer(self) -> Any:
        return None if "observe" in self.spec else (self.spec.get("accept") or [None])[0]


class CommandQuestion(ShortQuestion):
    """A command line, judged token by token through the alias table; never fuzzy."""

    type = "command"

    def _judge(self, answer: Any, observed: Any) -> Result:
        m = commands.match_command(str(answer), self._accept(observed), answers.rejects(self.spec.get("reject")))
        return self._verdict(m, answer)

    def _solution_text(self) -> str:
        return _drop_rest(super()._solution_text())

    def reference_answer(self) -> Any:
        ref = super().reference_answer()
        return None if ref is None else _drop_rest(ref)


def _drop_rest(command: str) -> str:
    """An accepted command without its trailing ``...`` (what a learner would type)."""
    text = command.rstrip()
    return text[: -len(commands.ANY_REST)].rstrip() if text.endswith(commands.ANY_REST) else text


@dataclass(frozen=True)
class Option:
    """One option of a choice question.

    Attributes:
        id: A stable name (``opt1``, ``opt2`` … in bank order unless the bank names it); letters name the shown order.
        text: What the learner reads.
        correct: Whether picking it is right.
        explain: Shown when it is picked: why it is right, or why it is wrong.
        score: Partial credit, 0..1 of the question's points (overrides ``correct``).
        value: For "predict, then observe": the observed value that makes it the right option.
    """

    id: str
    text: str
    correct: bool = False
    explain: str = ""
    score: float | None = None
    value: Any = None


class ChoiceQuestion(Question):
    """One option out of several; options are shuffled per learner when the bank says ``shuffle``."""

    type = "choice"

    def __init__(self, spec: dict[str, Any], context: Context | None = None) -> None:
        super().__init__(spec, context)
        pool = [Option(str(o.get("id", f"opt{i + 1}")), str(o["text"]), bool(o.get("correct", False)),
                       str(o.get("explain", "")), o.get("score"), o.get("value"))
                for i, o in enumerate(self.spec["options"])]
        rng = random.Random(_digest(self.context.key, self.learner, self.id, "options"))
        if self.spec.get("pick"):
            right = [o for o in pool if o.correct]
            wrong = [o for o in pool if not o.correct]
            n = int(self.spec["pick"])
            pool = right[:1] + rng.sample(wrong, min(len(wrong), n - 1)) if right else rng.sample(pool, n)
        if self.spec.get("shuffle") or self.spec.get("pick"):
            rng.shuffle(pool)
        #: The options in the order this learner sees them.
        self.options: list[Option] = pool

    def _correct_ids(self, observed: Any) -> set[str]:
        if observed is not None:
            return {o.id for o in self.options if _key(o.value) == _key(observed)}
        return {o.id for o in self.options if o.correct}

    def _score(self, o: Option, correct: set[str]) -> float:
        if o.score is not None and o.value is None:
            return float(o.score)
        return 1.0 if o.id in correct else 0.0

    def option(self, answer: Any) -> Option | None:
        """The option an answer names, in this learner's order; ``None`` when it names none.

        An option is named by its text, by the words before its colon or dash ("Yes",
        "exited", "C" for "C — changed: …"), by its letter as the notebook and ``labkit quiz
        show`` print it (``c``, ``C``, ``c)``, ``(c)``, ``option c``), or by its index from
        Python. Where a bare letter is also the code an option starts with (``A`` in a question
        about ``docker diff``, whose options read "C — changed", "A — added"), it means the code;
        ``a)`` and ``(a)`` still mean the letter. Option ids (``opt1``) are the bank's own names
        and never name an option: a learner does not see them. Last, an answer that restates one
        option's text in other words names it (:func:`labkit.grading.answers.paraphrase`: "a normal
        process isolated with namespaces"), never when it says what another option alone says.
        """
        if isinstance(answer, Option):
            return answer
        if isinstance(answer, bool):
            return None
        if isinstance(answer, int):
            return self.options[answer] if 0 <= answer < len(self.options) else None
        raw = unicodedata.normalize("NFKC", str(answer)).strip()
        norm = answers.normalize(raw)
        if not norm:
            return None
        by_text = [o for o in self.options if norm == answers.normalize(o.text)]
        if by_text:
            return by_text[0]
        plain = raw.casefold().rstrip(".:;!?").strip()
        letter = _LETTER.fullmatch(plain)
        bare = len(plain) == 1
        heads = [o for o in self.options if norm in _heads(o)]
        if len(heads) == 1 and (letter is None or bare):
            return heads[0]
        if bare and self.coded():  # "A" here is a code the options start with, not a letter
            return None
        if letter is not None:
            i = ord(letter.group(1)) - ord("a")
            return self.options[i] if i < len(self.options) else None
        # "c) Namespaces", "C. Namespaces": the letter decides, and a text that names another option contradicts it.
        lead = _LETTERED.match(raw.casefold())
        if lead is not None:
            i = ord(lead.group(1)) - ord("a")
            if i >= len(self.options):
                return None
            rest = self.option(raw[lead.end():])
            return self.options[i] if rest is None or rest is self.options[i] else None
        ordinal = _ORDINAL.fullmatch(norm)
        if ordinal is not None:  # "the third one"
            i = _ORDINALS.index(ordinal.group(1))
            return self.options[i if i < 6 else -1] if i < len(self.options) or i == 6 else None
        for form in answers.readings(norm)[1:]:  # "I'd say c", "c, I think", "definitely c"
            bare_letter = _LETTER.fullmatch(form.rstrip(".,;:!? "))
            if bare_letter is not None and len(form.rstrip(".,;:!? ")) == 1 and not self.coded():
                i = ord(bare_letter.group(1)) - ord("a")
                return self.options[i] if i < len(self.options) else None
        if "(" in raw and ")" in raw:  # "C (changed)": the part outside and each part inside name one option
            outside = self.option(_PARENS.sub(" ", raw).strip())
            inside = [self.option(p) for p in re.findall(r"\(([^()]*)\)", raw) if p.strip()]
            if outside is not None and all(o is None or o is outside for o in inside):
                return outside
        for form in answers.readings(norm)[1:]:  # "It is namespaces." — a sentence around the text
            found = [o for o in self.options if form == answers.normalize(o.text) or form in _heads(o)]
            if len(found) == 1:
                return found[0]
        said = answers.paraphrase(raw, [o.text for o in self.options], self.prompt)  # the option's text in other words
        return self.options[said] if said is not None else None

    def coded(self) -> bool:
        """Whether an option starts with a one-letter code ("C — changed"): a bare letter then means the code."""
        return any(len(h) == 1 for o in self.options for h in _heads(o))

    def _judge(self, answer: Any, observed: Any) -> Result:
        o = self.option(answer)
        if o is None:
            note = ""
            if self.coded() and len(str(answer).strip().rstrip(".")) == 1:
                note = " Here a bare letter is read as the code an option starts with; for the first option " \
                       "as a letter, write a)."
            return self._result(INCORRECT, 0.0, f"“{answer}” is none of the options.{note}", response=answer)
        score = self._score(o, self._correct_ids(observed))
        return self._result(verdict_for(score, 1.0), score * self.points, o.explain, matched_by="option",
                            response=o.text)

    def _solution_text(self) -> str:
        if "observe" in self.spec:
            return "the option matching what the engine really does — run it and look"
        return "; ".join(o.text for o in self.options if o.correct)

    def reference_answer(self) -> Any:
        if "observe" in self.spec:
            return None
        return next((o.text for o in self.options if o.correct), None)


class MultiQuestion(ChoiceQuestion):
    """Several options: each right pick earns its share, each wrong pick costs one; never below 0."""

    type = "multi"

    def _judge(self, answer: Any, observed: Any) -> Result:
        items = list(answer) if isinstance(answer, (list, tuple, set)) else self.split(str(answer))
        chosen: list[Option] = []
        for item in items:
            o = self.option(item.strip() if isinstance(item, str) else item)
            if o is None:
                return self._result(INCORRECT, 0.0, f"“{item}” is none of the options.", response=list(items))
            if o not in chosen:
                chosen.append(o)
        if not chosen:
            return self._result(INCORRECT, 0.0, "Name the options you choose by letter or text.", response=items)
        correct = self._correct_ids(observed)
        share = 1.0 / max(1, len(correct))
        score = 0.0
        for o in chosen:
            score += (o.score if o.score is not None else share) if o.id in correct else -share
        score = max(0.0, min(1.0, score))
        missed = len(correct - {o.id for o in chosen})
        notes = [o.explain for o in chosen if o.explain]
        if missed:
            notes.append(f"You missed {missed} right option{'s' if missed > 1 else ''}.")
        return self._result(verdict_for(score, 1.0), score * self.points, " ".join(notes), matched_by="option",
                            response=[o.text for o in chosen])

    def split(self, answer: str) -> list[str]:
        """The options one line names: letters (``a, c``, ``a and c``, ``(a)(c)``, ``ac``) or texts
        separated by commas, semicolons, "and" or new lines (a text holding a comma stays whole)."""
        plain = answer.casefold().strip().rstrip(".")
        tokens = [t for t in re.split(r"\s*(?:,|;|&|\band\b|\s)\s*", plain.replace(")(", ") (")) if t]
        if tokens and all(_ONE_LETTER.fullmatch(t) for t in tokens):
            return [re.sub(r"[^a-z]", "", t) for t in tokens]
        pieces = [p.strip() for p in re.split(r",|;|\n|\s+and\s+|\s*&\s*", answer) if p.strip()]
        items: list[str] = []
        i = 0
        while i < len(pieces):
            for j in range(len(pieces), i, -1):  # the longest run of pieces that names one option
                joined = ", ".join(pieces[i:j])
                if self.option(joined) is not None:
                    items.append(joined)
                    i = j
                    break
            else:
                items.append(pieces[i])
                i += 1
        return items

    def reference_answer(self) -> Any:
        return None if "observe" in self.spec else [o.text for o in self.options if o.correct]


class NumericQuestion(Question):
    """A number within ``tolerance`` (absolute) or ``rel_tolerance`` (relative); ``units`` may follow it."""

    type = "numeric"

    def parse(self, answer: Any) -> float | None:
        """The number an answer gives, or ``None`` when it gives none (or several, or denies one).

        Read as a learner writes it: ``137``, ``1,024``, ``64 * 1024 * 1024``, ``2^26``,
        ``exit code 137``, ``137 (128 + 9)``, ``ten``, ``10/10`` (running of asked, as
        ``labkit service ls`` prints it). A unit is read only where the question declares
        it: ``units: [bytes]`` lets "67108864 bytes" through, and ``units: {bytes: 1, MiB:
        1048576}`` also converts "64 MiB". "not 137" gives no number.
        """
        if isinstance(answer, (int, float)) and not isinstance(answer, bool):
            return float(answer)
        text = _PARENS.sub(" ", unicodedata.normalize("NFKC", str(answer))).casefold().strip().rstrip(".!?;:")
        if set(re.findall(r"[a-z']+", text.replace("'", ""))) & answers.NEGATING_WORDS:
            return None
        text = re.sub(r"(?<=\d)[,_ \u202f\u00a0](?=\d{3}(?!\d))", "", text).strip()  # 67,108,864 · 67 108 864
        if "=" in text:  # "64 MiB = 67108864 bytes", "PID = 1": every side with digits gives one number
            sides = {self.parse(side) for side in text.split("=") if re.search(r"\d", side)}
            return sides.pop() if len(sides) == 1 else None
        factor = 1.0
        for unit, scale in sorted(self.units().items(), key=lambda kv: len(kv[0]), reverse=True):
            u = unit.casefold()
            if text.endswith(u) and (len(text) == len(u) or not text[-len(u) - 1].isalpha()):
                text, factor = text[: -len(u)].strip(), scale
                break
        text = re.sub(r"^(?:[a-z']+\s+)+(?:(?:is|of|=|:)\s*)?", "", text).strip()  # "exit code 137", "it is 1"
        text = _NUMBER_WORDS.get(text, text).replace("×", "*").replace("^", "**")
        text = re.sub(r"^(\d+)\s*/\s*\d+$", r"\1", text)  # "10/10", as labkit service ls prints running/asked
        text = re.sub(r"(?<=\d)\s*x\s*(?=\d)", "*", text)
        value = _arithmetic(text)
        if value is None:
            return None
        value *= factor
        return value if math.isfinite(value) else None

    def units(self) -> dict[str, float]:
        """The units the question declares, each with the factor to the answer's unit."""
        spec = self.spec.get("units") or {}
        if isinstance(spec, dict):
            return {str(k): float(v) for k, v in spec.items()}
        return {str(u): 1.0 for u in spec}

    def _judge(self, answer: Any, observed: Any) -> Result:
        value = self.parse(answer)
        if value is None:
            return self._result(INCORRECT, 0.0, f"“{answer}” is not a number.", response=answer)
        want = float(observed if observed is not None else self.spec["answer"])
        tol = max(float(self.spec.get("tolerance", 0)), abs(want) * float(self.spec.get("rel_tolerance", 0)))
        if abs(value - want) <= tol + 1e-12:
            return self._result(CORRECT, self.points, "Correct.", matched_by="numeric", response=value)
        for r in self.spec.get("reject") or []:
            if self.parse(r["answer"]) == value:
                return self._result(INCORRECT, 0.0, r.get("feedback", ""), matched_by="reject", response=value)
        return self._result(INCORRECT, 0.0, self.spec.get("wrong", "") or "Not quite.", response=value)

    def _solution_text(self) -> str:
        if "observe" in self.spec:
            return "the number the engine really reports — run it and look"
        return _show(self.spec["answer"])

    def reference_answer(self) -> Any:
        return None if "observe" in self.spec else self.spec["answer"]


class LabQuestion(Question):
    """A task done with real containers, graded by probes of the engine's state.

    ``check()`` takes no answer: it reads the engine (``engine=``, or the
    answer itself when it is an engine). Hidden checks count and show
    pass/fail, but never their probe, arguments or message.
    """

    type = "lab"

    def check(self, answer: Any = None, *, engine: Engine | None = None,
              run_line: LineRunner | None = None) -> Result:  # a lab runs no experiment: run_line is not used
        engine = engine if engine is not None else (answer if hasattr(answer, "inspect") else None)
        if engine is None:
            engine = labkit.connect()
        results: list[CheckResult] = []
        hidden_n = 0
        for spec in self.spec.get("checks") or []:
            args = spec.get("args") or {}
            pts = float(spec.get("points", 1))
            hidden = bool(spec.get("hidden", False))
            hidden_n += hidden
            title = f"hidden check {hidden_n}" if hidden else spec.get("name") or probes.describe(spec["probe"], args)
            try:
                out = probes.run_probe(engine, spec["probe"], args)
                missing = False
            except probes.Missing as err:
                out, missing = probes.Outcome(False, err.message), True
            if hidden:
                results.append(CheckResult(title, pts if out.passed else 0.0, pts, out.passed,
                                           "passed" if out.passed else "failed", hidden=True, missing=missing))
            else:
                results.append(CheckResult(title, pts if out.passed else 0.0, pts, out.passed, out.message,
                                           "" if out.passed else spec.get("hint", ""), False, missing, out.output))
        earned = sum(c.points for c in results)
        total = sum(c.max_points for c in results)
        if results and all(c.missing for c in results):
            verdict = NOT_ATTEMPTED
        else:
            verdict = verdict_for(earned, total)
        scaled = earned / total * self.points if total else 0.0
        r = self._result(verdict, scaled, "", matched_by="probe", checks=tuple(results))
        return _replace(r, feedback=r.summary())

    def hint(self) -> str:
        own = self.spec.get("hint", "")
        hints = [c.get("hint", "") for c in self.spec.get("checks") or [] if c.get("hint") and not c.get("hidden")]
        return " ".join(x for x in [own, *hints] if x) or super().hint()

    def _solution_text(self) -> str:
        public = [c.get("name") or probes.describe(c["probe"], c.get("args") or {})
                  for c in self.spec.get("checks") or [] if not c.get("hidden")]
        return "Make these hold: " + "; ".join(public)


TYPES: dict[str, type[Question]] = {
    "short": ShortQuestion,
    "command": CommandQuestion,
    "choice": ChoiceQuestion,
    "multi": MultiQuestion,
    "numeric": NumericQuestion,
    "lab": LabQuestion,
}


def make_question(spec: dict[str, Any], context: Context | None = None) -> Question:
    """The question a bank entry describes, drawn for ``context.learner``.

    Raises:
        InvalidArgument: For an unknown ``type``.
    """
    cls = TYPES.get(spec.get("type", ""))
    if cls is None:
        raise InvalidArgument(f"question {spec.get('id')} has the unknown type {spec.get('type')!r}",
                              "Use one of: " + ", ".join(TYPES))
    return cls(spec, context)


#: A letter as a learner writes it: ``c``, ``c)``, ``(c)``, ``[c]``, ``option c``, ``the answer is c``.
_LETTER = re.compile(r"(?:(?:the\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*)?[(\[]?\s*([a-z])\s*[)\]]?")
_ONE_LETTER = re.compile(r"[(\[]?[a-z][)\]]?")
_LETTERED = re.compile(r"^[(\[]?\s*([a-z])\s*(?:[)\].:]|\s-|\s\u2014)\s+")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "last")
_ORDINAL = re.compile(r"(?:the\s+)?(" + "|".join(_ORDINALS) + r")(?:\s+(?:one|option|answer|choice))?")
_HEAD = re.compile(r"\s*(?::|;|\u2014|\u2013|\s-\s)\s*")


_PARENS = re.compile(r"\([^()]*\)")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def _arithmetic(text: str) -> float | None:
    """A number, or a small product, sum or power of numbers (``64 * 1024 * 1024``, ``2 ** 26``)."""
    if not text or len(text) > 60 or not re.fullmatch(r"[\d\s.+\-*()eE]+", text):
        return None
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.BinOp):
            a, b = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if isinstance(node.op, ast.Pow) and abs(b) <= 64:
                return float(a ** b)
        raise ValueError("not arithmetic")

    try:
        return value(tree)
    except (ValueError, OverflowError):
        return None


def _heads(option: Option) -> set[str]:
    """How an option may be named short: each part between its colons and dashes ("C", "changed"),
    its first part without a parenthesis, and its code value."""
    pieces = _HEAD.split(option.text)
    out = {answers.normalize(p) for p in pieces} | {answers.normalize(_PARENS.sub(" ", p)) for p in pieces}
    out |= {answers.normalize(p.split("(")[0]) for p in pieces}
    if isinstance(option.value, str) and option.value:
        out.add(answers.normalize(option.value))
    return {h for h in out if h}


def _replace(result: Result, **changes: Any) -> Result:
    return dataclasses.replace(result, **changes)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _key(value: Any) -> str:
    """Compare observed and written values as text (YAML's 137 and the engine's 137 agree; True is "yes")."""
    return answers.normalize(_show(value)) if value is not None else "\0"



def _fuzzy(spec: Any) -> bool | int:
    """A bank's ``fuzzy``: ``true``/``false``, or ``{max_edits: N}`` to cap the typos tolerated."""
    if isinstance(spec, dict):
        return int(spec.get("max_edits", 2))
    return bool(spec)
