"""Scores: what a learner hands in, and the sheet a teacher uploads.

A learner's results are saved as one JSON file per learner in a submissions
directory (:func:`save_submission`)::

    submissions/ada.json    {"learner": "ada", "results": [Result, ...]}

Every attempt is appended, so the file is a history. A teacher runs
``labkit grade collect submissions/ -o grades.csv``: :func:`collect` reads every
``*.json`` (and ``*.jsonl`` attempt logs) in the directory, keeps each learner's
best score per question, and :meth:`Gradebook.write_csv` writes an LMS-ready
sheet — one row per learner, one column per question (``bank:qid``), and the
total — that :func:`read_csv` reads back.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import InvalidArgument
from labkit.grading.results import Result

#: The CSV's first and last columns; the question columns go between them.
LEARNER_COLUMN = "learner"
TOTAL_COLUMN = "total"
MAX_ROW = "(max points)"


def _safe_name(learner: str) -> str:
    """A learner's name as a file name (no path separators, no leading dot)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in learner).lstrip(".")
    return cleaned or "learner"


def save_submission(results: Iterable[Result], directory: str | os.PathLike[str], learner: str | None = None) -> Path:
    """Append results to ``DIR/<learner>.json`` (made if missing); return the file.

    The file is rewritten whole through a temporary file and ``rename(2)``, so a
    teacher collecting at the same moment reads the old or the new version.
    """
    results = list(results)
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
    target = Path(path or os.environ.get("LABKIT_ATTEMPTS") or Path.home() / ".labkit" / "attempts.jsonl")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a") as f:
        f.write(json.dumps(result.to_json(), default=str) + "\n")
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


def collect(directory: str | os.PathLike[str]) -> Gradebook:
    """Merge every submission (``*.json``) and attempts log (``*.jsonl``) in ``directory``.

    Raises:
        InvalidArgument: If the directory does not exist or a file in it is damaged.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidArgument(f"{directory} is not a directory", "Give the directory learners saved submissions in")
    book = Gradebook()
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix not in (".json", ".jsonl"):
            continue
        for result in read_results(path):
            book.add(result)
    return book


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
