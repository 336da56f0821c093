"""Judging typed commands: parsed into Docker's canonical form and compared by token, never fuzzily.

Commands are never fuzzy: :func:`parse_command` splits them with :mod:`shlex`
and puts them in a canonical form — ``labkit`` and ``docker`` are one program,
management commands fold to their short forms (``docker container inspect`` =
``docker inspect``), long flags to short ones, ``--name=web`` to ``--name web``,
and flags are compared as a set — then compares token by token. "docker ps"
and "docker rm" differ in a token, so one never passes for the other.

Commands are compared by meaning, with the equivalences Docker itself has and
no others: the kind of object (``docker image inspect`` and ``--type image``
are not ``docker inspect`` of a container; ``--type container`` is), an image
with or without its default tag (``busybox`` = ``busybox:latest`` =
``docker.io/library/busybox``), a Go template with or without spaces inside
its braces (``{{ .State.Pid }}``). A ``...`` in an accepted command allows
further *words*, never further flags that change what is printed (``-f`` turns
"the full JSON" into one field). A line with a shell operator (``&&``, ``;``,
``|``, ``>``) is more than one command, and is never accepted.

A command's verdict is a :class:`labkit.grading.answers.Match`, as a free-text
answer's is, and its known wrong answers are the same
:class:`~labkit.grading.answers.Reject` values.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from labkit.grading.answers import Match, Reject

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
        "ls": "images", "list": "images", "inspect": "image inspect", "build": "build", "rm": "rmi",
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
LONG_FLAGS["image inspect"] = LONG_FLAGS["volume inspect"] = {"--format": "-f"}

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
    "image inspect": {"-f"},
    "volume create": {"--name", "-d", "--driver", "-o", "--opt", "--label"},
    "service create": {"--name", "--replicas", "-p", "--publish", "-e", "--env"},
    "service update": {"--replicas", "--image", "-e", "--env-add"},
}
VALUE_FLAGS["create"] = VALUE_FLAGS["run"]

#: Flags that change nothing a question asks about, per verb: they may be added to any accepted command.
#: (``--rm`` removes the container after it ends; ``-i``/``-t`` attach a terminal; ``-s`` adds sizes to the JSON.)
HARMLESS_FLAGS: dict[str, set[str]] = {
    "run": {"--rm", "-i", "-t"},
    "inspect": {"-s"},
}

#: Flags whose value is a Go template (compared without the spaces inside ``{{ }}``).
TEMPLATE_FLAGS = {"-f", "--format"}

#: Verbs whose first positional word is an image reference (``busybox`` = ``busybox:latest``).
IMAGE_VERBS = {"run", "create", "pull", "push", "history", "image inspect", "rmi"}

#: Shell operators: a line holding one is more than one command (or a redirection).
SHELL_OPERATORS = ("&&", "||", ";", "|", ">", ">>", "<", "&", "2>", "&>", "$(", "`")

#: Verbs whose flags end at the first positional word (what follows belongs to the container's command).
FLAGS_END_AT_POSITIONAL = {"run", "create", "exec"}

#: In an accepted command, ``...`` allows any further words; ``<name>`` matches any one word.
ANY_REST = "..."
_PLACEHOLDER = re.compile(r"^<[^<>]+>$")
_PLACEHOLDER_WORD = re.compile(r"(?<![^\s])<[\w.-]+>(?![^\s])")


@dataclass(frozen=True)
class Command:
    """A command line in canonical form.

    Attributes:
        program: ``docker`` (``labkit`` is folded into it), or the program as typed.
        verb: The canonical verb (``inspect``, ``ps``, ``volume ls``), or empty.
        flags: ``(flag, value)`` pairs in canonical spelling, sorted; ``value`` is ``None`` for a switch.
        args: The positional words in order.
        operators: Shell operators found outside quotes (``&&``, ``|``, ``>``): the line is not one command.
    """

    program: str
    verb: str
    flags: tuple[tuple[str, str | None], ...]
    args: tuple[str, ...]
    operators: tuple[str, ...] = ()

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
    cleaned = _clean_command(text)
    try:
        words = shlex.split(cleaned)
        operators = tuple(t for t in _operator_tokens(cleaned) if t)
    except ValueError as err:
        raise CommandSyntaxError(f"the command could not be split into words ({err})") from None
    if words and words[0] == "sudo":
        words = words[1:]
    if not words:
        return Command("", "", (), (), operators)
    program = PROGRAMS.get(words[0].casefold(), words[0])
    rest = words[1:]
    verb = ""
    if program == "docker" and rest:
        head = rest[0]
        if head in MANAGEMENT and len(rest) > 1 and rest[1] in MANAGEMENT[head]:
            verb, rest = MANAGEMENT[head][rest[1]], rest[2:]
        elif head in ("volume", "network", "image", "container", "system", "service") and len(rest) > 1:
            verb, rest = f"{head} {rest[1]}", rest[2:]
        elif head == "rmi":
            verb, rest = "rmi", rest[1:]
        else:
            verb, rest = head, rest[1:]
    flags, args = _split_flags(verb, rest)
    verb, flags, args = _equivalent(verb, flags, args)
    return Command(program, verb, tuple(sorted(flags, key=lambda f: (f[0], f[1] or ""))), tuple(args), operators)


def _operator_tokens(line: str) -> list[str]:
    """The shell operators of a line, outside quotes (``shlex`` with ``punctuation_chars``).

    A placeholder such as ``<container>`` is a word, not two redirections.
    """
    line = _PLACEHOLDER_WORD.sub("placeholder", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    found = []
    for token in lexer:
        if token and all(ch in "();<>|&" for ch in token):
            found.append(token)
    if "$(" in line or "`" in line:
        found.append("$(")
    return found


def image_ref(ref: str) -> str:
    """An image reference with Docker's defaults made explicit: ``busybox`` → ``busybox:latest``.

    >>> image_ref("docker.io/library/busybox"), image_ref("frontend-app:v2.1.0")
    ('busybox:latest', 'frontend-app:v2.1.0')
    """
    if ref.startswith("<") or ref == ANY_REST:
        return ref
    for prefix in ("docker.io/library/", "index.docker.io/library/", "library/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    name = ref.rsplit("/", 1)[-1]
    if "@" not in name and ":" not in name:
        ref += ":latest"
    return ref


def template(value: str) -> str:
    """A Go template without the spaces inside its actions: ``{{ .State.Pid }}`` → ``{{.State.Pid}}``."""
    return re.sub(r"\{\{-?\s*(.*?)\s*-?\}\}", lambda m: "{{" + re.sub(r"\s+", " ", m.group(1)) + "}}", value)


def _equivalent(verb: str, flags: list[tuple[str, str | None]],
                args: list[str]) -> tuple[str, list[tuple[str, str | None]], list[str]]:
    """Docker's own equivalences: ``--type`` names the object kind, ``volume create --name X`` is ``X``, …"""
    if verb == "inspect":
        kinds = [v for f, v in flags if f == "--type"]
        flags = [(f, v) for f, v in flags if f != "--type"]
        if kinds and kinds[-1] and kinds[-1] != "container":
            verb = f"{kinds[-1]} inspect"
    if verb == "volume create":
        names = [v for f, v in flags if f == "--name" and v]
        flags = [(f, v) for f, v in flags if f != "--name"]
        args = names + args
    flags = [(f, template(v) if f in TEMPLATE_FLAGS and v is not None else v) for f, v in flags]
    if verb in IMAGE_VERBS and args:
        args = [image_ref(args[0]), *args[1:]]
    return verb, flags, args


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


def command_matches(given: Command, pattern: Command, loose: bool = False) -> bool:
    """Whether ``given`` is the command ``pattern`` asks for (``...`` and ``<placeholder>`` honoured).

    ``...`` allows further words, never further flags: an added flag may change what the command
    prints (``docker inspect -f '{{.State.Pid}}'`` is not "the full JSON"). Only the verb's
    :data:`HARMLESS_FLAGS` may be added anywhere. ``loose`` lets ``...`` take further flags too
    (for known *wrong* commands: ``docker ps ...`` is wrong whatever its flags).
    """
    if given.operators or (given.program, given.verb) != (pattern.program, pattern.verb):
        return False
    open_ended = bool(pattern.args) and pattern.args[-1] == ANY_REST
    want_args = pattern.args[:-1] if open_ended else pattern.args
    harmless = HARMLESS_FLAGS.get("run" if given.verb == "create" else given.verb, set())
    extra = [f for f in given.flags if f not in pattern.flags]
    if not (loose and open_ended) and any(name not in harmless for name, _v in extra):
        return False
    if not set(pattern.flags) <= set(given.flags):
        return False
    if open_ended:
        if len(given.args) < len(want_args):
            return False
        got_args = given.args[: len(want_args)]
    else:
        if len(given.args) != len(want_args):
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
    if given.operators:
        ops = " ".join(dict.fromkeys(given.operators))
        return Match(False, "invalid", feedback=f"That line holds the shell operator(s) {ops}: it is more than one "
                                                "command. Write the one command the question asks for.")
    for original in accept:
        pattern = parse_command(original)
        if command_matches(given, pattern):
            shown = original[: -len(ANY_REST)].rstrip() if original.rstrip().endswith(ANY_REST) else original
            return Match(True, "exact" if _literal(answer, original) else "alias", canonical=shown)
    for r in reject:
        if command_matches(given, parse_command(r.answer), loose=True):
            return Match(False, "reject", feedback=r.feedback)
    for original in accept:
        pattern = parse_command(original)
        if (given.program, given.verb) == (pattern.program, pattern.verb):
            added = [f for f, _v in given.flags if f not in {p for p, _w in pattern.flags}]
            if added:
                return Match(False, "none", feedback=f"Right command, but {' '.join(dict.fromkeys(added))} changes "
                                                     "what it does or prints; the question asks for it without.")
            break
    return Match(False, "none")


def _literal(answer: str, pattern: str) -> bool:
    """Whether the learner typed the accepted words themselves (not an alias of them)."""
    got, want = shlex.split(_clean_command(answer)), shlex.split(_clean_command(pattern))
    if got[:1] == ["sudo"]:
        got = got[1:]
    if want and want[-1] == ANY_REST:
        want, got = want[:-1], got[: len(want) - 1]
    return len(got) == len(want) and all(_PLACEHOLDER.match(w) or w == g for w, g in zip(want, got, strict=True))

