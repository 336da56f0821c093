"""Judging typed answers: free text and commands.

Free text goes through one pipeline, in this order (a later step never
overrides an earlier one):

1. :func:`normalize` — NFKC, casefold, trim; backticks, quotes, a leading
   ``$`` prompt and trailing punctuation stripped; runs of whitespace, ``-``
   and ``_`` made one space. "Copy-on-Write." and "copy on write" are one answer.
2. Exact match against the accepted synonyms.
3. The reject list: known wrong answers (near-miss antonyms such as
   "mutable" for "immutable"), each with its own feedback.
4. An optional regular expression, matched against the whole normalized answer.
5. Typo tolerance, counted in *edits*, never as a similarity ratio (a ratio of
   0.8 lets "mutable" pass for "immutable"): only answers of 6 or more
   characters; at most 1 edit for an accepted word of up to 8 characters, 2
   beyond; only when the nearest accepted answer is strictly closer than every
   rejected one; never when the difference is a negating prefix or suffix
   ("im-", "un-", "-less"/"-ful"). A fuzzy match reports the canonical spelling.

Commands are never fuzzy: :func:`parse_command` splits them with :mod:`shlex`
and puts them in a canonical form — ``labkit`` and ``docker`` are one program,
management commands fold to their short forms (``docker container inspect`` =
``docker inspect``), long flags to short ones, ``--name=web`` to ``--name web``,
and flags are compared as a set — then compares token by token. "docker ps"
and "docker rm" differ in a token, so one never passes for the other.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Quote characters stripped from free text (typographic ones too).
_QUOTES = "\"'`\u2018\u2019\u201c\u201d\u00ab\u00bb"
_TRAILING = ".,;:!?\u3002"
_SEPARATORS = re.compile(r"[\s\-_\u2010-\u2015]+")

#: Prefixes and suffixes that turn a word into its opposite: adding or removing one is never a typo.
NEGATIONS = ("im", "in", "un", "non", "dis", "ir", "il", "de", "a")
SUFFIX_SWAPS = (("less", "ful"), ("able", "less"))


@dataclass(frozen=True)
class Match:
    """How one answer compared with a question's accepted and rejected answers.

    Attributes:
        accepted: The answer counts as right.
        how: ``exact``, ``alias``, ``regex``, ``fuzzy``, ``reject``, ``invalid`` or ``none``.
        canonical: The accepted answer it matched, as the bank spells it (for ``fuzzy`` and ``alias``).
        feedback: A reject's own feedback, or why the answer could not be read.
    """

    accepted: bool
    how: str
    canonical: str = ""
    feedback: str = ""


@dataclass(frozen=True)
class Reject:
    """A known wrong answer and what to tell the learner who gives it."""

    answer: str
    feedback: str


# ---------------------------------------------------------------------------------------------
# Free text


def normalize(text: str) -> str:
    """The form free-text answers are compared in.

    >>> normalize('  $ `Copy-On_Write`. ')
    'copy on write'
    """
    text = unicodedata.normalize("NFKC", str(text)).casefold().strip()
    if text.startswith("$ "):
        text = text[2:]
    text = text.strip().strip(_QUOTES).strip()
    text = text.rstrip(_TRAILING).strip().strip(_QUOTES).strip()
    text = "".join(ch for ch in text if ch not in _QUOTES)
    return _SEPARATORS.sub(" ", text).strip()


def edit_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn ``a`` into ``b``.

    The optimal-string-alignment distance: a swapped pair ("wirte") is one typo, not two.
    """
    if a == b:
        return 0
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def max_edits(canonical: str) -> int:
    """Typos tolerated for an accepted answer: 1 up to 8 characters, 2 beyond."""
    return 1 if len(canonical) <= 8 else 2


def is_negation(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ, in some word, by a negating prefix or an opposite suffix.

    >>> is_negation("mutable", "immutable"), is_negation("stateful", "stateless")
    (True, True)
    """
    wa, wb = a.split(), b.split()
    if len(wa) != len(wb):
        return False
    for x, y in zip(wa, wb, strict=True):
        if x == y:
            continue
        short, long_ = sorted((x, y), key=len)
        if any(long_ == p + short for p in NEGATIONS):
            return True
        for s1, s2 in SUFFIX_SWAPS:
            for p, q in ((s1, s2), (s2, s1)):
                if x.endswith(p) and y.endswith(q) and x[: -len(p)] == y[: -len(q)]:
                    return True
    return False


def match_text(
    answer: str,
    accept: Sequence[str],
    reject: Sequence[Reject] = (),
    regex: str | None = None,
    fuzzy: bool | int = False,
) -> Match:
    """Judge a free-text answer by the pipeline in this module's docstring.

    Args:
        answer: What the learner typed.
        accept: Accepted answers; the first is the canonical spelling.
        reject: Known wrong answers with their feedback.
        regex: A pattern the whole normalized answer may match instead.
        fuzzy: Allow typo tolerance (step 5); a number caps the edits below the usual 1 or 2.
    """
    given = normalize(answer)
    if not given:
        return Match(False, "invalid", feedback="The answer is empty.")
    accepted = [(normalize(a), a) for a in accept]
    for norm, original in accepted:
        if given == norm:
            return Match(True, "exact", canonical=original)
    for r in reject:
        if given == normalize(r.answer):
            return Match(False, "reject", feedback=r.feedback)
    if regex and re.fullmatch(regex, given):
        return Match(True, "regex", canonical=accepted[0][1] if accepted else "")
    if fuzzy and len(given) >= 6 and accepted:
        best_d, best = min(((edit_distance(given, n), o) for n, o in accepted), key=lambda t: t[0])
        best_norm = normalize(best)
        nearest_reject = min((edit_distance(given, normalize(r.answer)) for r in reject), default=None)
        closer = nearest_reject is None or best_d < nearest_reject
        limit = max_edits(best_norm) if fuzzy is True else min(max_edits(best_norm), int(fuzzy))
        if best_d <= limit and closer and not is_negation(given, best_norm):
            return Match(True, "fuzzy", canonical=best)
        if nearest_reject is not None and nearest_reject <= max_edits(given):
            r = min(reject, key=lambda r: edit_distance(given, normalize(r.answer)))
            if not is_negation(given, normalize(r.answer)):
                return Match(False, "reject", feedback=r.feedback)
    return Match(False, "none")


# ---------------------------------------------------------------------------------------------
# Commands

#: Programs that mean "the container CLI": labkit speaks Docker's verbs.
PROGRAMS = {"docker": "docker", "labkit": "docker", "docker.exe": "docker"}

#: Management commands folded to the verbs ``docker`` also has at top level (or to one spelling).
MANAGEMENT = {
    "container": {
        "ls": "ps", "list": "ps", "ps": "ps", "inspect": "inspect", "rm": "rm", "remove": "rm",
        "run": "run", "create": "create", "start": "start", "stop": "stop", "restart": "restart",
        "kill": "kill", "pause": "pause", "unpause": "unpause", "wait": "wait", "logs": "logs",
        "exec": "exec", "diff": "diff", "top": "top", "stats": "stats", "port": "port",
        "rename": "rename", "attach": "attach", "cp": "cp", "commit": "commit", "export": "export",
    },
    "image": {
        "ls": "images", "list": "images", "inspect": "inspect", "build": "build", "rm": "rmi",
        "remove": "rmi", "history": "history", "tag": "tag", "save": "save", "load": "load",
        "pull": "pull", "push": "push",
    },
    "volume": {"ls": "volume ls", "list": "volume ls", "rm": "volume rm", "remove": "volume rm",
               "create": "volume create", "inspect": "volume inspect", "prune": "volume prune"},
    "builder": {"build": "build"},
}

#: Long flags and their short spelling, per verb.
LONG_FLAGS: dict[str, dict[str, str]] = {
    "ps": {"--all": "-a", "--quiet": "-q", "--latest": "-l", "--last": "-n", "--filter": "-f"},
    "run": {"--detach": "-d", "--env": "-e", "--publish": "-p", "--volume": "-v", "--memory": "-m",
            "--interactive": "-i", "--tty": "-t", "--hostname": "-h", "--workdir": "-w", "--label": "-l",
            "--publish-all": "-P"},
    "rm": {"--force": "-f", "--volumes": "-v"},
    "stop": {"--time": "-t", "--timeout": "-t", "--signal": "-s"},
    "restart": {"--time": "-t", "--timeout": "-t"},
    "kill": {"--signal": "-s"},
    "inspect": {"--format": "-f", "--size": "-s"},
    "logs": {"--follow": "-f", "--tail": "-n", "--timestamps": "-t"},
    "exec": {"--detach": "-d", "--env": "-e", "--interactive": "-i", "--tty": "-t", "--workdir": "-w",
             "--user": "-u"},
    "build": {"--tag": "-t", "--file": "-f", "--quiet": "-q"},
    "images": {"--all": "-a", "--quiet": "-q", "--filter": "-f"},
    "start": {"--attach": "-a", "--interactive": "-i"},
}
LONG_FLAGS["create"] = LONG_FLAGS["run"]

#: Flags (in canonical spelling) that take a value, per verb.
VALUE_FLAGS: dict[str, set[str]] = {
    "run": {"--name", "-e", "-p", "-v", "-m", "-h", "-w", "-l", "--memory-swap", "--cpus", "--pids-limit",
            "--restart", "--network", "--entrypoint", "--stop-signal", "--stop-timeout", "--env-file",
            "--mount", "--user", "-u", "--cpu-shares", "--ulimit"},
    "ps": {"-f", "-n", "--format"},
    "inspect": {"-f", "--type"},
    "stop": {"-t", "-s"},
    "restart": {"-t"},
    "kill": {"-s"},
    "logs": {"-n", "--since", "--until"},
    "exec": {"-e", "-w", "-u"},
    "build": {"-t", "-f", "--build-arg", "--target"},
    "images": {"-f", "--format"},
    "volume ls": {"-f", "--format"},
    "volume inspect": {"-f", "--format"},
}
VALUE_FLAGS["create"] = VALUE_FLAGS["run"]

#: Verbs whose flags end at the first positional word (what follows belongs to the container's command).
FLAGS_END_AT_POSITIONAL = {"run", "create", "exec"}

#: In an accepted command, ``...`` allows any further words; ``<name>`` matches any one word.
ANY_REST = "..."
_PLACEHOLDER = re.compile(r"^<[^<>]+>$")


@dataclass(frozen=True)
class Command:
    """A command line in canonical form.

    Attributes:
        program: ``docker`` (``labkit`` is folded into it), or the program as typed.
        verb: The canonical verb (``inspect``, ``ps``, ``volume ls``), or empty.
        flags: ``(flag, value)`` pairs in canonical spelling, sorted; ``value`` is ``None`` for a switch.
        args: The positional words in order.
    """

    program: str
    verb: str
    flags: tuple[tuple[str, str | None], ...]
    args: tuple[str, ...]

    def text(self) -> str:
        """The canonical form as one line."""
        words = [self.program, *self.verb.split()]
        for flag, value in self.flags:
            words += [flag] if value is None else [flag, value]
        return shlex.join([*words, *self.args]) if words else ""


class CommandSyntaxError(ValueError):
    """A command line that :mod:`shlex` cannot split (an unclosed quote)."""


def _clean_command(text: str) -> str:
    text = unicodedata.normalize("NFKC", str(text)).strip().strip("`").strip()
    if text.startswith("$ ") or text.startswith("# "):
        text = text[2:].strip()
    return text.rstrip(";").strip()


def parse_command(text: str) -> Command:
    """Split and canonicalize a command line.

    >>> parse_command("labkit container inspect --format='{{.Id}}' web").text()
    "docker inspect -f '{{.Id}}' web"

    Raises:
        CommandSyntaxError: If the line has an unclosed quote.
    """
    try:
        words = shlex.split(_clean_command(text))
    except ValueError as err:
        raise CommandSyntaxError(f"the command could not be split into words ({err})") from None
    if words and words[0] == "sudo":
        words = words[1:]
    if not words:
        return Command("", "", (), ())
    program = PROGRAMS.get(words[0].casefold(), words[0])
    rest = words[1:]
    verb = ""
    if program == "docker" and rest:
        head = rest[0]
        if head in MANAGEMENT and len(rest) > 1 and rest[1] in MANAGEMENT[head]:
            verb, rest = MANAGEMENT[head][rest[1]], rest[2:]
        elif head in ("volume", "network", "image", "container", "system") and len(rest) > 1:
            verb, rest = f"{head} {rest[1]}", rest[2:]
        elif head == "rmi":
            verb, rest = "rmi", rest[1:]
        else:
            verb, rest = head, rest[1:]
    flags, args = _split_flags(verb, rest)
    return Command(program, verb, tuple(sorted(flags, key=lambda f: (f[0], f[1] or ""))), tuple(args))


def _split_flags(verb: str, words: list[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    longs = LONG_FLAGS.get(verb, {})
    takes = VALUE_FLAGS.get(verb, set())
    flags: list[tuple[str, str | None]] = []
    args: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        i += 1
        if args and verb in FLAGS_END_AT_POSITIONAL:
            args.append(w)
            continue
        if w == "--":
            args += words[i:]
            break
        if not w.startswith("-") or w == "-" or w == ANY_REST:
            args.append(w)
            continue
        name, eq, value = w.partition("=")
        if w.startswith("--"):
            name = longs.get(name, name)
        elif len(name) > 2 and not eq:
            # Combined short switches (-aq, -it): one flag per letter; a value flag may end the group.
            letters = name[1:]
            for k, ch in enumerate(letters):
                flag = "-" + ch
                if flag in takes:
                    tail = letters[k + 1:]
                    if tail:
                        flags.append((flag, tail))
                    elif i < len(words):
                        flags.append((flag, words[i]))
                        i += 1
                    else:
                        flags.append((flag, ""))
                    break
                flags.append((flag, None))
            continue
        if eq:
            flags.append((name, value))
        elif name in takes:
            flags.append((name, words[i] if i < len(words) else ""))
            i += 1
        else:
            flags.append((name, None))
    return flags, args


def command_matches(given: Command, pattern: Command) -> bool:
    """Whether ``given`` is the command ``pattern`` asks for (``...`` and ``<placeholder>`` honoured)."""
    if (given.program, given.verb) != (pattern.program, pattern.verb):
        return False
    open_ended = bool(pattern.args) and pattern.args[-1] == ANY_REST
    want_args = pattern.args[:-1] if open_ended else pattern.args
    if open_ended:
        if not set(pattern.flags) <= set(given.flags) or len(given.args) < len(want_args):
            return False
        got_args = given.args[: len(want_args)]
    else:
        if given.flags != pattern.flags or len(given.args) != len(want_args):
            return False
        got_args = given.args
    return all(_PLACEHOLDER.match(w) or w == g for w, g in zip(want_args, got_args, strict=True))


def match_command(answer: str, accept: Sequence[str], reject: Sequence[Reject] = ()) -> Match:
    """Judge a command answer token by token, through the alias table; never fuzzy.

    Args:
        answer: What the learner typed (``$ docker inspect web``).
        accept: Accepted commands; ``...`` at the end allows further words, ``<x>`` any one word.
        reject: Known wrong commands with their feedback.
    """
    try:
        given = parse_command(answer)
    except CommandSyntaxError as err:
        return Match(False, "invalid", feedback=f"{err}; close every quote you open.")
    if not given.program:
        return Match(False, "invalid", feedback="The answer is empty.")
    for original in accept:
        pattern = parse_command(original)
        if command_matches(given, pattern):
            shown = original[: -len(ANY_REST)].rstrip() if original.rstrip().endswith(ANY_REST) else original
            return Match(True, "exact" if _literal(answer, original) else "alias", canonical=shown)
    for r in reject:
        if command_matches(given, parse_command(r.answer)):
            return Match(False, "reject", feedback=r.feedback)
    return Match(False, "none")


def _literal(answer: str, pattern: str) -> bool:
    """Whether the learner typed the accepted words themselves (not an alias of them)."""
    got, want = shlex.split(_clean_command(answer)), shlex.split(_clean_command(pattern))
    if got[:1] == ["sudo"]:
        got = got[1:]
    if want and want[-1] == ANY_REST:
        want, got = want[:-1], got[: len(want) - 1]
    return len(got) == len(want) and all(_PLACEHOLDER.match(w) or w == g for w, g in zip(want, got, strict=True))


def rejects(items: Iterable[dict[str, str]] | None) -> tuple[Reject, ...]:
    """The reject list as a bank writes it (``{answer, feedback}`` mappings)."""
    return tuple(Reject(str(i["answer"]), str(i.get("feedback", ""))) for i in items or ())
