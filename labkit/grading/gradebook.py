"""Scores: what a learner hands in, and the sheet a teacher uploads.

A learner's results are saved as one JSON file per learner in a submissions
directory (:func:`save_submission`)::

    submissions/ada.json    {"learner": "ada", "results": [Result, ...]}

Every attempt is appended, so the file is a history. Each learner also has an
append-only attempts log (:func:`append_attempt`, ``~/.labkit/attempts.jsonl``),
one JSON line per attempt, stamped with the time.

A teacher runs ``labkit grades collect submissions/ -o grades.csv``:
:func:`collect` reads every ``*.json`` (and ``*.jsonl`` attempt logs) in the
directory and below it, keeps each learner's best score per question, and
:meth:`Gradebook.write_csv` writes an LMS-ready sheet — one row per learner,
one column per question (``bank:qid``), and the total — that :func:`read_csv`
reads back. :func:`write_attempts_csv` writes the long form beside it: one row
per attempt. :func:`progress` is what ``labkit grades`` shows a learner.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labkit.errors import InvalidArgument
from labkit.grading.banks import BankError, NoSuchBank, load_bank
from labkit.grading.results import Result

#: The CSV's first and last columns; the question columns go between them.
LEARNER_COLUMN = "learner"
TOTAL_COLUMN = "total"
MAX_ROW = "(max points)"


def _safe_name(learner: str) -> str:
    """A learner's name as a file name (no path separators, no leading dot)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in learner).lstrip(".")
    return cleaned or "learner"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamped(result: Result) -> Result:
    """The result with its ``ts`` set to now, unless it already has one."""
    return result if result.ts else dataclasses.replace(result, ts=_now())


def attempts_log_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The learner's attempts log: ``path``, else ``$LABKIT_ATTEMPTS``, else ``~/.labkit/attempts.jsonl``."""
    return Path(path or os.environ.get("LABKIT_ATTEMPTS") or Path.home() / ".labkit" / "attempts.jsonl")


def save_submission(results: Iterable[Result], directory: str | os.PathLike[str], learner: str | None = None) -> Path:
    """Append results to ``DIR/<learner>.json`` (made if missing); return the file.

    The file is rewritten whole through a temporary file and ``rename(2)``, so a
    teacher collecting at the same moment reads the old or the new version.
    """
    results = [stamped(r) for r in results]
    who = learner or (results[0].learner if results else "") or "learner"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_safe_name(who)}.json"
    data: dict[str, Any] = {"learner": who, "results": []}
    if path.exists():
        data = _read_json(path)
    data["results"].extend(r.to_json() for r in results)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)
    return path


def append_attempt(result: Result, path: str | os.PathLike[str] | None = None) -> Path:
    """Append one attempt to the learner's log (``$LABKIT_ATTEMPTS`` or ``~/.labkit/attempts.jsonl``)."""
    target = attempts_log_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # One write(2) of one line on an O_APPEND file: concurrent kernels never interleave inside a line.
    with open(target, "a") as f:
        f.write(json.dumps(stamped(result).to_json(), default=str) + "\n")
    return target


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise InvalidArgument(f"{path} is not valid JSON ({err})", "Remove or repair that submission") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise InvalidArgument(f"{path} is not a labkit submission (no results list)",
                              "Submissions are written by labkit's save_submission")
    return data


def read_results(path: str | os.PathLike[str]) -> list[Result]:
    """The results in one submission (``.json``) or attempts log (``.jsonl``)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    out.append(Result.from_json(json.loads(line)))
                except (ValueError, TypeError) as err:
                    raise InvalidArgument(f"{path} line {n} is not an attempt ({err})",
                                          "Remove or repair that line") from None
        return out
    data = _read_json(path)
    who = data.get("learner", "")
    return [Result.from_json({**r, "learner": r.get("learner") or who}) for r in data["results"]]


@dataclass
class Gradebook:
    """Each learner's best score per question.

    Attributes:
        scores: ``scores[learner][column]`` is the best points earned on that question.
        max_points: What each question column is worth.
    """

    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    max_points: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def column(result: Result) -> str:
        """A question's column name: ``bank:qid``."""
        return f"{result.bank}:{result.qid}" if result.bank else result.qid

    def add(self, result: Result) -> None:
        """Count one attempt (the best attempt per question counts)."""
        col = self.column(result)
        row = self.scores.setdefault(result.learner or "learner", {})
        row[col] = max(row.get(col, 0.0), float(result.points))
        self.max_points[col] = max(self.max_points.get(col, 0.0), float(result.max_points))

    @property
    def columns(self) -> list[str]:
        """Question columns, sorted by bank and then question id."""
        return sorted(self.max_points)

    def total(self, learner: str) -> float:
        return sum(self.scores.get(learner, {}).values())

    def write_csv(self, path: str | os.PathLike[str], with_max_row: bool = True) -> Path:
        """Write the sheet: one row per learner, a column per question, and the total.

        Args:
            path: Where to write (``-`` is not special: give a file).
            with_max_row: Put a ``(max points)`` row first, as LMS gradebook imports expect.
        """
        path = Path(path)
        cols = self.columns
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([LEARNER_COLUMN, *cols, TOTAL_COLUMN])
            if with_max_row:
                w.writerow([MAX_ROW, *(_fmt(self.max_points[c]) for c in cols), _fmt(sum(self.max_points.values()))])
            for learner in sorted(self.scores):
                row = self.scores[learner]
                w.writerow([learner, *(_fmt(row[c]) if c in row else "" for c in cols), _fmt(self.total(learner))])
        return path


def result_files(directory: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """The submissions (``*.json``) and attempts logs (``*.jsonl``) in ``directory`` (and below it), sorted.

    Raises:
        InvalidArgument: If the directory does not exist.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidArgument(f"{directory} is not a directory", "Give the directory learners saved submissions in")
    found = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix in (".json", ".jsonl")
                  and not any(part.startswith(".") for part in p.relative_to(directory).parts))


def gather(sources: Iterable[str | os.PathLike[str]]) -> list[Result]:
    """Every attempt in the given files and directories, oldest first, each once.

    The same attempt handed in twice (in a submission and in a log, say) counts
    once: attempts are the same when learner, question, time, answer and points are.
    """
    seen: set[tuple[Any, ...]] = set()
    out: list[Result] = []
    for source in sources:
        path = Path(source)
        for file in result_files(path) if path.is_dir() else [path]:
            if not file.exists():
                raise InvalidArgument(f"{file} does not exist", "Give an attempts log, a submission or a directory")
            for r in read_results(file):
                key = (r.learner, r.bank, r.qid, r.ts, json.dumps(r.response, default=str), r.points)
                if r.ts and key in seen:
                    continue
                seen.add(key)
                out.append(r)
    out.sort(key=lambda r: r.ts)  # stable: attempts without a time keep their order, first
    return out


def book_of(results: Iterable[Result]) -> Gradebook:
    """The gradebook (best score per learner and question) of some attempts."""
    book = Gradebook()
    for result in results:
        book.add(result)
    return book


def collect(directory: str | os.PathLike[str]) -> Gradebook:
    """Merge every submission (``*.json``) and attempts log (``*.jsonl``) in ``directory`` and below it.

    Raises:
        InvalidArgument: If the directory does not exist or a file in it is damaged.
    """
    return book_of(gather(result_files(directory)))


#: The long CSV's columns, one row per attempt.
ATTEMPT_COLUMNS = ("ts", "learner", "bank", "qid", "verdict", "points", "max_points", "response", "variant",
                   "verified")


def write_attempts_csv(results: Iterable[Result], path: str | os.PathLike[str]) -> Path:
    """Write one row per attempt (the long form a teacher filters or pivots)."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ATTEMPT_COLUMNS)
        for r in results:
            response = r.response if isinstance(r.response, str) or r.response is None else json.dumps(r.response)
            w.writerow([r.ts, r.learner, r.bank, r.qid, r.verdict, _fmt(r.points), _fmt(r.max_points),
                        "" if response is None else response, r.variant, r.verified])
    return path


def sibling(path: str | os.PathLike[str], tag: str) -> Path:
    """``grades.csv`` → ``grades.<tag>.csv``: the second file written beside the first."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{tag}{path.suffix or '.csv'}")


@dataclass(frozen=True)
class BankProgress:
    """One bank's progress for one learner.

    Attributes:
        bank: The bank's name.
        questions: How many questions it has (0 when the bank is not found here).
        answered: Questions with at least one attempt.
        correct: Questions answered with full marks at least once.
        points: Best points per question, summed.
        max_points: What the attempted questions are worth (the whole bank when it is found).
        todo: Ids of the questions not yet at full marks, in bank order.
    """

    bank: str
    questions: int
    answered: int
    correct: int
    points: float
    max_points: float
    todo: tuple[str, ...]


def progress(results: Iterable[Result], learner: str | None = None) -> list[BankProgress]:
    """Each bank's progress for ``learner`` (every learner in the results when ``None``).

    The banks are looked up by name, so a question never attempted still counts
    as to do; a bank not found here is summarised from its attempts alone.
    """
    best: dict[str, dict[str, Result]] = {}
    for r in results:
        if learner is not None and r.learner != learner:
            continue
        per = best.setdefault(r.bank, {})
        old = per.get(r.qid)
        if old is None or r.points > old.points:
            per[r.qid] = r
    out = []
    for bank, per in sorted(best.items()):
        try:
            loaded = load_bank(bank, learner=learner)
            ids = loaded.ids
            worth = {q.id: q.points for q in loaded.questions()}
        except (NoSuchBank, BankError):
            ids = sorted(per)
            worth = {qid: r.max_points for qid, r in per.items()}
        correct = [qid for qid, r in per.items() if r.correct]
        out.append(BankProgress(bank, len(ids), len(per), len(correct), sum(r.points for r in per.values()),
                                sum(worth.values()), tuple(q for q in ids if q not in correct)))
    return out


def read_csv(path: str | os.PathLike[str]) -> Gradebook:
    """Read a sheet :meth:`Gradebook.write_csv` wrote (empty cells: not attempted)."""
    book = Gradebook()
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    cols = header[1:-1]
    for row in body:
        if row[0] == MAX_ROW:
            book.max_points = {c: float(v) for c, v in zip(cols, row[1:-1], strict=False)}
            continue
        book.scores[row[0]] = {c: float(v) for c, v in zip(cols, row[1:-1], strict=False) if v != ""}
    return book


def _fmt(x: float) -> str:
    return f"{x:g}"
