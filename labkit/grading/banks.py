"""Question banks: YAML files, validated by a JSON Schema and then by meaning.

A bank is one YAML file per lesson or concept (``exercises/lesson8.yaml``)::

    bank: lesson8
    version: 1
    questions:
      - id: p1
        type: short
        prompt: "The mechanism that copies a file up before modifying it is called what?"
        accept: ["copy-on-write", "cow"]
        explain: "Writes land in the container's upper dir; the image layers stay shared."

:func:`validate` checks the shape against ``schema.json`` (the file CI runs
over every bank) and then what a schema cannot say: ids are unique, every
probe and observer exists and gets its required arguments, every ``{param}``
used is defined, regular expressions compile, accepted commands split, and a
choice question has a right option. Errors name the file, the question and the
field, and say what to write instead.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import InvalidArgument, NotFound
from labkit.grading import commands, probes
from labkit.grading.experiments import check_line
from labkit.grading.questions import Context, Question, draw_params, make_question

SCHEMA_PATH = Path(__file__).with_name("schema.json")
_PARAM = re.compile(r"\{(\w+)\}")


class BankError(InvalidArgument):
    """A question bank that is not valid YAML, breaks the schema, or means something impossible."""


class NoSuchBank(NotFound):
    """No bank file has this name or path."""


def exercises_dirs() -> list[Path]:
    """Where banks are looked up by name: ``$LABKIT_EXERCISES`` (``:``-separated), then the project's ``exercises/``."""
    dirs = [Path(p) for p in os.environ.get("LABKIT_EXERCISES", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "exercises")
    return dirs


def find_bank(name: str | os.PathLike[str]) -> Path:
    """The file of a bank given by path or by name (``lesson8`` → ``exercises/lesson8.yaml``).

    Raises:
        NoSuchBank: If neither a file nor a bank of that name exists.
    """
    path = Path(name)
    if path.is_file():
        return path
    for d in exercises_dirs():
        for candidate in (d / f"{name}.yaml", d / f"{name}.yml", d / str(name)):
            if candidate.is_file():
                return candidate
    raise NoSuchBank(f"no question bank named {name}",
                     "Give a path to a .yaml bank, or a name from: " + (", ".join(available_banks()) or "(none found)"))


def available_banks() -> list[str]:
    """The names of the banks in the exercises directories."""
    names: set[str] = set()
    for d in exercises_dirs():
        if d.is_dir():
            names |= {p.stem for p in d.glob("*.yaml")}
    return sorted(names)


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema every bank follows."""
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a bank file (``yaml.safe_load``: no tags, no code).

    Errors name the file and the line, never quote it: a file that is not a bank
    (``/etc/passwd``) must not be echoed to whoever typed its name.

    Raises:
        BankError: If the file cannot be read, is not UTF-8 text, or is not valid YAML.
    """
    # PyYAML loads when a bank is read, not with every import of labkit.grading
    import yaml

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BANK_BYTES + 1)
    except OSError as err:
        raise BankError(f"{path} cannot be read ({err.strerror})", "Give a readable .yaml bank") from None
    if len(raw) > MAX_BANK_BYTES:
        raise BankError(f"{path} is larger than {MAX_BANK_BYTES // 1024} KiB, so it is not a question bank",
                        "Give a .yaml bank from exercises/") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BankError(f"{path} is not UTF-8 text (byte {err.start} cannot be read), so it is not a question bank",
                        "Give a .yaml bank saved as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "it cannot be parsed"
        raise BankError(f"{path} is not valid YAML{where}: {problem}",
                        "Check the indentation and quoting near that line") from None


#: A bank larger than this is refused unread (the largest shipped bank is about 8 KiB).
MAX_BANK_BYTES = 1 << 20


def _schema_message(err: Any) -> str:
    """One short sentence for a schema error (jsonschema's own messages can quote a whole question)."""
    v = err.validator
    if v == "required":
        return err.message
    if v == "anyOf" and all(isinstance(s, dict) and set(s) == {"required"} for s in err.validator_value):
        names = [s["required"][0] for s in err.validator_value]
        return f"has no {names[0]}; add {names[0]} (or one of {', '.join(names[1:])})"
    if v == "not" and isinstance(err.validator_value, dict) and "anyOf" in err.validator_value:
        names = [s["required"][0] for s in err.validator_value["anyOf"] if "required" in s]
        return f"may not have: {', '.join(names)}"
    if v == "additionalProperties":
        return err.message
    if v in ("type", "enum", "pattern", "minItems", "minLength", "minimum", "maximum", "exclusiveMinimum", "oneOf"):
        shown = repr(err.instance)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        what = {"type": f"should be of type {err.validator_value}", "enum": f"should be one of {err.validator_value}",
                "pattern": f"should match {err.validator_value}", "minItems": "has too few items",
                "minLength": "is empty", "oneOf": "has none of the allowed forms"}.get(v, f"breaks {v} {err.validator_value}")
        return f"{shown} {what}"
    return err.message if len(err.message) <= 120 else f"breaks the schema's {v} rule"


def validate(data: Any, where: str = "bank") -> list[str]:
    """Every problem with a bank's data, as sentences (empty when it is valid).

    Args:
        data: The parsed YAML.
        where: How to name the bank in messages (its path).
    """
    # jsonschema (tens of ms) loads when a bank is validated, not when one is read
    import jsonschema

    if not isinstance(data, dict) or "questions" not in data:
        return [f"{where} is not a question bank (a YAML mapping with bank, version and questions)"]
    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        path = list(err.absolute_path)
        at = "/".join(str(p) for p in path[2:] if len(path) > 2) if _at(data, path) else "/".join(map(str, path))
        problems.append(f"{where}: {_at(data, path)}{at + ': ' if at else ''}{_schema_message(err)}")
    if problems:
        return problems
    return [f"{where}: {p}" for p in _meaning(data)]


def _at(data: Any, path: Any) -> str:
    """Name the question an error is in by its id."""
    parts = list(path)
    if len(parts) >= 2 and parts[0] == "questions" and isinstance(parts[1], int):
        try:
            return f"question {data['questions'][parts[1]]['id']}: "
        except (KeyError, IndexError, TypeError):
            return ""
    return ""


def _meaning(data: dict[str, Any]) -> Iterator[str]:
    """What the schema cannot check."""
    seen: set[str] = set()
    try:
        draw_params(data.get("params"), key="check", learner="check", qid="bank")
    except InvalidArgument as err:
        yield err.one_line()
    for q in data["questions"]:
        qid = q["id"]
        if qid in seen:
            yield f"question id {qid} is used twice; ids must be unique in a bank"
        seen.add(qid)
        params = set(q.get("params") or {}) | set(data.get("params") or {})
        try:
            draw_params(q.get("params"), key="check", learner="check", qid=qid)
        except InvalidArgument as err:
            yield err.one_line()
        for name in _used_params(q):
            if name not in params:
                yield f"question {qid} uses {{{name}}} but neither it nor the bank has a parameter {name}; add it under params"
        if "regex" in q:
            try:
                re.compile(q["regex"])
            except re.error as err:
                yield f"question {qid}: the regex does not compile ({err})"
        if q["type"] == "command":
            for text in [*(q.get("accept") or []), *(r["answer"] for r in q.get("reject") or [])]:
                try:
                    commands.parse_command(str(text))
                except commands.CommandSyntaxError as err:
                    yield f"question {qid}: the command {text!r}: {err}"
        if q["type"] in ("choice", "multi"):
            opts = q["options"]
            if "observe" in q:
                if not all("value" in o for o in opts):
                    yield f"question {qid} observes the engine, so every option needs a value to match"
            elif not any(o.get("correct") or o.get("score") for o in opts):
                yield f"question {qid} has no right option; mark one with correct: true"
            ids = [o.get("id") for o in opts if o.get("id")]
            if len(ids) != len(set(ids)):
                yield f"question {qid} has two options with the same id"
            if q.get("pick") and q["pick"] > len(opts):
                yield f"question {qid} picks {q['pick']} of only {len(opts)} options"
        if "observe" in q:
            yield from _probe_problems(qid, q["observe"], probes.OBSERVERS, "observer")

            for line in q["observe"].get("experiment") or []:
                why = check_line(str(line))
                if why:
                    yield f"question {qid}: {why}"
        for check in q.get("checks") or []:
            yield from _probe_problems(qid, check, probes.PROBES, "probe")


def _probe_problems(qid: str, spec: dict[str, Any], registry: dict[str, probes.Probe], kind: str) -> Iterator[str]:
    name = spec["probe"]
    if name not in registry:
        yield f"question {qid} names the unknown {kind} {name}; known: {', '.join(sorted(registry))}"
        return
    missing = [a for a in registry[name].required if a not in (spec.get("args") or {})]
    if missing:
        yield f"question {qid}: {kind} {name} needs the argument(s) {', '.join(missing)}"


def _used_params(q: dict[str, Any]) -> set[str]:
    """``{name}`` placeholders in the parts that are filled per learner (prompts may show Go templates)."""
    texts: list[str] = [q["prompt"], *(str(a) for a in q.get("accept") or [])]
    for check in q.get("checks") or []:
        texts += [str(v) for v in (check.get("args") or {}).values()]
    for part in ("observe",):
        if part in q:
            texts += [str(v) for v in (q[part].get("args") or {}).values()]
            texts += [str(v) for v in q[part].get("experiment") or []]
    return {m.group(1) for t in texts for m in _PARAM.finditer(t)}


@dataclass
class Bank:
    """A loaded, validated bank.

    Attributes:
        name: The bank's name.
        version: Its version (recorded with every attempt).
        title: A heading for notebooks.
        path: The file it came from.
        data: The parsed YAML.
        learner: Who the questions are drawn for (``None``: the current learner).
    """

    name: str
    version: Any
    title: str
    path: Path | None
    data: dict[str, Any] = field(repr=False)
    learner: str | None = None

    @property
    def context(self) -> Context:
        key = os.environ.get("LABKIT_COURSE_KEY") or self.data.get("course_key") or "labkit"
        return Context(self.name, key, self.data.get("salt", ""), self.learner or "", self.data.get("params"),
                       tuple(str(w) for w in self.data.get("near_miss") or ()))

    @property
    def ids(self) -> list[str]:
        """The question ids in bank order."""
        return [q["id"] for q in self.data["questions"]]

    def question(self, qid: str, learner: str | None = None) -> Question:
        """One question, drawn for ``learner`` (default: the bank's learner, else the current one).

        Raises:
            NotFound: If the bank has no question ``qid``.
        """
        for spec in self.data["questions"]:
            if spec["id"] == qid:
                ctx = self.context
                if learner:
                    ctx = dataclasses.replace(ctx, learner=learner)
                return make_question(spec, ctx)
        raise NotFound(f"bank {self.name} has no question {qid}", "Its questions are: " + ", ".join(self.ids))

    def questions(self, learner: str | None = None) -> list[Question]:
        """Every question, in bank order."""
        return [self.question(qid, learner) for qid in self.ids]

    def for_learner(self, learner: str) -> Bank:
        """The same bank, drawn for another learner."""
        return Bank(self.name, self.version, self.title, self.path, self.data, learner)

    def __getitem__(self, qid: str) -> Question:
        return self.question(qid)

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions())

    def __len__(self) -> int:
        return len(self.data["questions"])


def load_bank(name: str | os.PathLike[str], learner: str | None = None) -> Bank:
    """Read, validate and return a bank.

    Args:
        name: A path to a YAML file, or a bank's name in the exercises directories.
        learner: Who the questions are drawn for (default: ``$LABKIT_LEARNER`` or the login name).

    Raises:
        NoSuchBank: If the bank cannot be found.
        BankError: If it is invalid; the message lists every problem.
    """
    path = find_bank(name)
    data = read_yaml(path)
    problems = validate(data, str(path))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        hint = "Run 'labkit grade validate' on the file to see every problem"
        if not isinstance(data, dict) or "questions" not in data:
            hint = "Give a bank name from 'labkit quiz ls', or a path to a .yaml bank"
        err = BankError(problems[0] + more, hint)
        err.problems = problems  # type: ignore[attr-defined]
        raise err
    return Bank(str(data["bank"]), data["version"], data.get("title", data["bank"]), path, data, learner)
