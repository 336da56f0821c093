"""``labkit quiz``, ``labkit grades`` and ``labkit grade``: questions, labs and scores from a terminal.

    labkit quiz ls                                     # the banks; labkit quiz ls lesson8: its questions
    labkit quiz show lesson8 q1                        # the question and its lettered options, never the answer
    labkit quiz check lesson8 p1 "copy on write"       # verdict, feedback, explanation; exit 0 only if accepted
    labkit grades                                      # my progress, from my attempts log
    labkit grades export -o grades.csv                 # grades.csv (per learner) + grades.attempts.csv (per attempt)
    labkit grades collect handed-in/ -o grades.csv     # many learners' logs and submissions merged the same way
    labkit grades verify handed-in/                    # teacher: grade again here; verified / self-reported

``labkit grade`` keeps the older names (``check``, ``lab``, ``collect``,
``validate``). Each command parses, calls :mod:`labkit.grading` and prints —
nothing more. Exit codes a script can trust: 0 accepted, 1 not accepted,
125 when the command itself failed (no such bank or question, a file that is
not a bank); ``grade`` or ``quiz`` alone shows its help and exits 0, as every
command group does (``docker network``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from labkit.errors import LabkitError


def add_grade_command(command: Callable[..., argparse.ArgumentParser], parser_class: type) -> None:
    """Register ``grade`` and its subcommands with the ``labkit`` parser's ``command()`` helper."""
    grade: argparse.ArgumentParser = command("grade", lambda s, a: _usage(grade)(s, a), "Check answers and labs, and collect grades")
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

    quiz: argparse.ArgumentParser = command("quiz", lambda s, a: _usage(quiz)(s, a), "List, show and check the questions of a bank")
    qsubs: Any = quiz.add_subparsers(dest="quiz_command", metavar="COMMAND", parser_class=parser_class)
    sub = qsubs.add_parser("ls", help="List the banks, or one bank's questions with their kinds")
    sub.set_defaults(handler=cmd_ls)
    sub.add_argument("bank", nargs="?", metavar="BANK", help="a bank name (lesson8) or a path to a .yaml bank")
    sub = qsubs.add_parser("show", help="Print a question (or every question of a bank) with its lettered options")
    sub.set_defaults(handler=cmd_show)
    sub.add_argument("bank", metavar="BANK", help="a bank name (lesson8) or a path to a .yaml bank")
    sub.add_argument("qid", nargs="?", metavar="QUESTION", help="one question (default: all of them)")
    sub.add_argument("--learner", metavar="NAME", help="whose variant (default $LABKIT_LEARNER or the login name)")
    sub = qsubs.add_parser("check", help="Print the verdict, the feedback and the explanation; exit 0 only if accepted")
    sub.set_defaults(handler=cmd_check)
    sub.add_argument("bank", metavar="BANK", help="a bank name (lesson8) or a path to a .yaml bank")
    sub.add_argument("qid", metavar="QUESTION")
    sub.add_argument("answer", nargs="+", metavar="ANSWER", help="the answer; several words are joined")
    _learner_options(sub)
    sub.add_argument("--record", action="store_true", help="also append the attempt to the attempts log")

    grades = command("grades", cmd_progress, "Show your progress; export, collect and verify grades")
    grades.add_argument("--log", metavar="FILE", help="the attempts log (default $LABKIT_ATTEMPTS or "
                                                      "~/.labkit/attempts.jsonl)")
    grades.add_argument("--learner", metavar="NAME", help="whose progress (default $LABKIT_LEARNER or the login name)")
    gsubs: Any = grades.add_subparsers(dest="grades_command", metavar="COMMAND", parser_class=parser_class)

    sub = gsubs.add_parser("export", help="Write CSV: one row per learner, and one row per attempt beside it")
    sub.set_defaults(handler=cmd_export)
    sub.add_argument("sources", nargs="*", metavar="SOURCE", help="logs, submissions or directories "
                                                                  "(default: the attempts log)")
    sub.add_argument("-o", "--output", required=True, metavar="FILE", help="the per-learner CSV; the per-attempt "
                                                                           "one goes beside it as FILE.attempts.csv")

    sub = gsubs.add_parser("collect", help="Merge many learners' logs and submissions into the two CSVs")
    sub.set_defaults(handler=cmd_grades_collect)
    sub.add_argument("directory", metavar="DIR", help="where learners' logs and submissions are (searched below too)")
    sub.add_argument("-o", "--output", required=True, metavar="FILE", help="the per-learner CSV; the per-attempt "
                                                                           "one goes beside it as FILE.attempts.csv")

    sub = gsubs.add_parser("verify", help="Grade handed-in attempts again here: verified or self-reported")
    sub.set_defaults(handler=cmd_verify)
    sub.add_argument("directory", metavar="DIR", help="where learners' logs and submissions are")
    sub.add_argument("--labs-only", action="store_true", help="verify the labs alone")
    sub.add_argument("-o", "--output", metavar="FILE", help="also write one row per verified attempt as CSV")


def _learner_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--learner", metavar="NAME", help="whose variant (default $LABKIT_LEARNER or the login name)")
    sub.add_argument("--submit", metavar="DIR", help="also append the result to DIR/<learner>.json")


def _usage(parser: argparse.ArgumentParser) -> Callable[[Any, argparse.Namespace], int]:
    """``grade`` or ``quiz`` typed without its subcommand: its help, as every command group shows it (exit 0)."""

    def show(session: Any, args: argparse.Namespace) -> int:
        from labkit.cli.session import usage_for  # the CLI's session loads only when a group's help is shown

        return usage_for(session, parser)

    return show


#: The exit code when the command itself failed (Docker's: no such bank or question, not a bank).
FAILED = 125


def _fail(session: Any, error: LabkitError) -> int:
    session.error(f"labkit {getattr(session.args, 'verb', None) or 'grade'}: {error.one_line()}")
    return FAILED


def _print_quietly(session: Any, text: str) -> bool:
    """Print; when the reader has gone (``| head -1``) say nothing more. Whether it was all printed."""
    try:
        session.print(text)
        session.out.flush()
    except BrokenPipeError:
        try:  # the interpreter flushes stdout again at exit: point it at /dev/null first
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return False
    return True


def _finish(session: Any, args: argparse.Namespace, result: Any) -> int:
    """Save the attempt first (a reader that goes away early must not lose it), then print it."""
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    from labkit.grading.gradebook import append_attempt, attempts_log_path, save_submission
    from labkit.grading.render import result_text

    where = ""
    try:
        if args.submit:
            where = f"the submission in {args.submit}"
            save_submission([result], args.submit)
        if getattr(args, "record", False):
            where = f"the attempts log {attempts_log_path(None)}"
            append_attempt(result)
    except OSError as err:
        _print_quietly(session, result_text(result))
        session.error(f"labkit {getattr(session.args, 'verb', None) or 'grade'}: the attempt was not saved to {where} "
                      f"({err.strerror or err}). Give a directory you may write to.")
        return FAILED
    _print_quietly(session, result_text(result))
    return 0 if result.correct else 1


def cmd_check(session: Any, args: argparse.Namespace) -> int:
    """Print the verdict, the feedback and the explanation; exit 0 only when the answer is accepted."""
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    from labkit.grading.banks import load_bank

    try:
        question = load_bank(args.bank).question(args.qid, args.learner)
        answer: Any = " ".join(args.answer)
        if question.type == "multi" and len(args.answer) > 1:
            answer = list(args.answer)
        needs_engine = "observe" in question.spec or question.type == "lab"
        result = question.check(answer, engine=session.engine if needs_engine else None, run_line=session.main)
    except LabkitError as error:
        return _fail(session, error)
    return _finish(session, args, result)


def cmd_ls(session: Any, args: argparse.Namespace) -> int:
    """Without a bank: every bank, its question count and title. With one: its questions and kinds."""
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    from labkit.grading.banks import available_banks, load_bank

    lines: list[str] = []
    try:
        if args.bank:
            bank = load_bank(args.bank)
            lines.append(f"{'QUESTION':<22} {'KIND':<8} PROMPT")
            for spec in bank.data["questions"]:
                kind = spec["type"] + ("*" if "observe" in spec else "")
                lines.append(f"{spec['id']:<22} {kind:<8} {_clip(' '.join(str(spec['prompt']).split()), 70)}")
            if any("observe" in spec for spec in bank.data["questions"]):
                lines.append("* predict, then observe: graded by what the engine really does")
        else:
            lines.append(f"{'BANK':<12} {'QUESTIONS':>9}  TITLE")
            for name in available_banks():
                bank = load_bank(name)
                lines.append(f"{bank.name:<12} {len(bank):>9}  {bank.title}")
    except LabkitError as error:
        return _fail(session, error)
    _print_quietly(session, "\n".join(lines))
    return 0


def cmd_show(session: Any, args: argparse.Namespace) -> int:
    """Print questions as a learner reads them: prompt, lettered options, how to answer; never the answer."""
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    from labkit.grading.banks import load_bank
    from labkit.grading.questions import ChoiceQuestion, NumericQuestion
    from labkit.grading.render import question_text

    try:
        bank = load_bank(args.bank)
        questions = [bank.question(args.qid, args.learner)] if args.qid else bank.questions(args.learner)
    except LabkitError as error:
        return _fail(session, error)
    blocks = []
    for q in questions:
        how = {
            "choice": "answer with a letter — c, c) or (c) — or the option's text",
            "multi": "answer with every letter that applies — a, c — or the options' texts",
            "numeric": "answer with a number" + (f" (units: {', '.join(q.units())})"
                                                 if isinstance(q, NumericQuestion) and q.units() else ""),
            "command": "answer with one command line, quoted",
            "short": "answer in a word or a few",
        }.get(q.type)
        if isinstance(q, ChoiceQuestion) and q.coded():
            how = "answer with the code an option starts with, a letter written a) or (a), or the option's text"
        text = question_text(q)
        if "observe" in q.spec:
            text += "\n(predict, then observe: graded by what the engine really does)"
        if how:
            text += f"\n-> labkit quiz check {bank.name} {q.id} ANSWER   ({how})"
        else:
            text += f"\n-> labkit grade lab {bank.name} {q.id}   (runs the checks against what you made)"
        blocks.append(text)
    _print_quietly(session, "\n\n".join(blocks))
    return 0


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_lab(session: Any, args: argparse.Namespace) -> int:
    """Run a lab's probes against the engine; exit 0 only at full marks."""
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    from labkit.grading.banks import load_bank

    try:
        question = load_bank(args.bank).question(args.qid, args.learner)
        if question.type != "lab":
            session.error(f"labkit grade: {args.qid} is a {question.type} question, not a lab; "
                          f"use 'labkit grade check {args.bank} {args.qid} ANSWER'.")
            return FAILED
        result = question.check(engine=session.engine)
    except LabkitError as error:
        return _fail(session, error)
    return _finish(session, args, result)


def cmd_collect(session: Any, args: argparse.Namespace) -> int:
    """Write the CSV and say what went into it."""
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
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
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
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


# ---------------------------------------------------------------------------------------------
# labkit grades


def cmd_progress(session: Any, args: argparse.Namespace) -> int:
    """Per bank: questions answered and right, points, and what is left to do."""
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    from labkit.grading.gradebook import attempts_log_path, gather, progress
    from labkit.grading.questions import current_learner

    log = attempts_log_path(args.log)
    learner = args.learner or current_learner()
    if not log.exists():
        session.print(f"no attempts yet ({log} does not exist): answer a question in a notebook, "
                      "or 'labkit quiz check BANK QUESTION ANSWER --record'")
        return 0
    try:
        rows = progress(gather([log]), learner)
    except LabkitError as error:
        return _fail(session, error)
    if not rows:
        session.print(f"no attempts by {learner} in {log}")
        return 0
    session.print(f"progress of {learner} (from {log})")
    session.print(f"{'BANK':<12} {'ANSWERED':>9} {'CORRECT':>8} {'POINTS':>9}  TO DO")
    for p in rows:
        todo = ", ".join(p.todo[:6]) + (f" (+{len(p.todo) - 6})" if len(p.todo) > 6 else "")
        session.print(f"{p.bank:<12} {p.answered:>4}/{p.questions:<4} {p.correct:>3}/{p.questions:<4} "
                      f"{p.points:>4g}/{p.max_points:<4g}  {todo or '-'}")
    earned, worth = sum(p.points for p in rows), sum(p.max_points for p in rows)
    session.print(f"{'total':<12} {'':>9} {'':>8} {earned:>4g}/{worth:<4g}")
    return 0


def _write_both(session: Any, results: list[Any], output: str) -> int:
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    from labkit.grading.gradebook import book_of, sibling, write_attempts_csv

    book = book_of(results)
    book.write_csv(output)
    long = write_attempts_csv(results, sibling(output, "attempts"))
    session.print(f"{len(book.scores)} learners, {len(book.columns)} questions -> {output}")
    session.print(f"{len(results)} attempts -> {long}")
    return 0


def cmd_export(session: Any, args: argparse.Namespace) -> int:
    """The per-learner sheet and the per-attempt rows of the attempts log (or the sources given)."""
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    from labkit.grading.gradebook import attempts_log_path, gather

    sources = args.sources or [str(attempts_log_path(args.log))]
    try:
        results = gather(sources)
    except LabkitError as error:
        return _fail(session, error)
    return _write_both(session, results, args.output)


def cmd_grades_collect(session: Any, args: argparse.Namespace) -> int:
    """Merge every log and submission under DIR into the two CSVs."""
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    from labkit.grading.gradebook import gather, result_files

    try:
        results = gather(result_files(args.directory))
    except LabkitError as error:
        return _fail(session, error)
    return _write_both(session, results, args.output)


def cmd_verify(session: Any, args: argparse.Namespace) -> int:
    """One line per learner and question: the status, the claimed and the re-graded points, and why.

    Exits 0 when nothing is self-reported (an unverifiable score is not an accusation), else 1.
    """
    # grading's modules load when a grading command runs: labkit's parser imports this module on every start
    from labkit.grading.gradebook import gather, result_files, write_attempts_csv
    from labkit.grading.verify import SELF_REPORTED, verify

    try:
        checked = verify(gather(result_files(args.directory)), session.engine, labs_only=args.labs_only,
                         run_line=session.main)
    except LabkitError as error:
        return _fail(session, error)
    session.print(f"{'LEARNER':<12} {'QUESTION':<22} {'CLAIMED':>8} {'HERE':>6}  STATUS")
    for v in checked:
        c = v.claimed
        here = "-" if v.points is None else f"{v.points:g}"
        session.print(f"{c.learner:<12} {c.bank + ':' + c.qid:<22} {c.points:>4g}/{c.max_points:<3g} {here:>6}  "
                      f"{v.status}: {v.why}")
    counts = {s: sum(v.status == s for v in checked) for s in ("verified", "self-reported", "not verifiable")}
    session.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    if args.output:
        write_attempts_csv([v.claimed for v in checked], args.output)
        session.print(f"{len(checked)} rows -> {args.output}")
    return 1 if counts[SELF_REPORTED] else 0
