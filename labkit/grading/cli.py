"""``labkit grade``: check answers, run lab checks and collect grades from a terminal.

    labkit grade check lesson8 p1 "copy on write"     # verdict, feedback, explanation; exit 0 only if accepted
    labkit grade lab inspect ins.lab --learner ada     # probes the real state; exit 0 only at full marks
    labkit grade collect submissions/ -o grades.csv    # one row per learner, a column per question, the total
    labkit grade validate                              # every bank in exercises/ against the schema

Each command parses, calls :mod:`labkit.grading` and prints — nothing more.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from labkit.errors import LabkitError


def add_grade_command(command: Callable[..., argparse.ArgumentParser], parser_class: type) -> None:
    """Register ``grade`` and its subcommands with the ``labkit`` parser's ``command()`` helper."""
    grade = command("grade", _usage, "Check answers and labs, and collect grades")
    subs: Any = grade.add_subparsers(dest="grade_command", metavar="COMMAND", parser_class=parser_class)

    sub = subs.add_parser("check", help="Check an answer to a question of a bank")
    sub.set_defaults(handler=cmd_check)
    sub.add_argument("bank", metavar="BANK", help="a bank name (lesson8) or a path to a .yaml bank")
    sub.add_argument("qid", metavar="QID")
    sub.add_argument("answer", nargs="+", metavar="ANSWER", help="the answer; several words are joined")
    _learner_options(sub)

    sub = subs.add_parser("lab", help="Run a lab's checks against the real state")
    sub.set_defaults(handler=cmd_lab)
    sub.add_argument("bank", metavar="BANK")
    sub.add_argument("qid", metavar="QID")
    _learner_options(sub)

    sub = subs.add_parser("collect", help="Merge submissions into one CSV for an LMS")
    sub.set_defaults(handler=cmd_collect)
    sub.add_argument("directory", metavar="DIR", help="the directory learners saved submissions in")
    sub.add_argument("-o", "--output", required=True, metavar="FILE", help="the CSV to write")

    sub = subs.add_parser("validate", help="Validate banks against the schema")
    sub.set_defaults(handler=cmd_validate)
    sub.add_argument("banks", nargs="*", metavar="BANK", help="banks to check (default: every bank)")


def _learner_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--learner", metavar="NAME", help="whose variant (default $LABKIT_LEARNER or the login name)")
    sub.add_argument("--submit", metavar="DIR", help="also append the result to DIR/<learner>.json")


def _usage(session: Any, args: argparse.Namespace) -> int:
    session.error("labkit grade: a subcommand is required (check, lab, collect, validate). See 'labkit grade --help'.")
    return 2


def _fail(session: Any, error: LabkitError) -> int:
    session.error(f"labkit grade: {error.one_line()}")
    return 1


def _finish(session: Any, args: argparse.Namespace, result: Any) -> int:
    from labkit.grading.gradebook import save_submission
    from labkit.grading.render import result_text

    session.print(result_text(result))
    if args.submit:
        save_submission([result], args.submit)
    return 0 if result.correct else 1


def cmd_check(session: Any, args: argparse.Namespace) -> int:
    """Print the verdict, the feedback and the explanation; exit 0 only when the answer is accepted."""
    from labkit.grading.banks import load_bank

    try:
        question = load_bank(args.bank).question(args.qid, args.learner)
        answer: Any = " ".join(args.answer)
        if question.type == "multi" and len(args.answer) > 1:
            answer = list(args.answer)
        needs_engine = "observe" in question.spec or question.type == "lab"
        result = question.check(answer, engine=session.engine if needs_engine else None)
    except LabkitError as error:
        return _fail(session, error)
    return _finish(session, args, result)


def cmd_lab(session: Any, args: argparse.Namespace) -> int:
    """Run a lab's probes against the engine; exit 0 only at full marks."""
    from labkit.grading.banks import load_bank

    try:
        question = load_bank(args.bank).question(args.qid, args.learner)
        if question.type != "lab":
            session.error(f"labkit grade: {args.qid} is a {question.type} question, not a lab; "
                          f"use 'labkit grade check {args.bank} {args.qid} ANSWER'.")
            return 2
        result = question.check(engine=session.engine)
    except LabkitError as error:
        return _fail(session, error)
    return _finish(session, args, result)


def cmd_collect(session: Any, args: argparse.Namespace) -> int:
    """Write the CSV and say what went into it."""
    from labkit.grading.gradebook import collect

    try:
        book = collect(args.directory)
    except LabkitError as error:
        return _fail(session, error)
    book.write_csv(args.output)
    session.print(f"{len(book.scores)} learners, {len(book.columns)} questions -> {args.output}")
    return 0


def cmd_validate(session: Any, args: argparse.Namespace) -> int:
    """Print every problem of every bank; exit 1 if there is one."""
    from labkit.grading.banks import available_banks, find_bank, read_yaml, validate

    problems: list[str] = []
    names = args.banks or available_banks()
    try:
        for name in names:
            path = find_bank(name)
            problems += validate(read_yaml(path), str(path))
    except LabkitError as error:
        return _fail(session, error)
    for line in problems:
        session.error(line)
    if not problems:
        session.print(f"{len(names)} bank(s) valid")
    return 1 if problems else 0
