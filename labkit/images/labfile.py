"""The Labfile: the part of the Dockerfile language labkit builds.

A Labfile is a Dockerfile restricted to what the lessons need: ``FROM``,
``COPY``, ``RUN``, ``ENV``, ``CMD``, ``ENTRYPOINT``, ``WORKDIR``, ``EXPOSE``
and ``LABEL``, with ``#`` comments and ``\\`` line continuations. Any
Dockerfile that uses only these builds the same way under Docker.

One addition, invisible to Docker because it is a comment: ``# layer: <role>``
just before an instruction names the role of the layer it makes ("base OS",
"runtime", "app code"); the lesson's pictures label layers with it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from labkit.errors import LabfileError

SUPPORTED = ("FROM", "COPY", "RUN", "ENV", "CMD", "ENTRYPOINT", "WORKDIR", "EXPOSE", "LABEL")
DOCKER_ONLY = ("ADD", "ARG", "USER", "VOLUME", "ONBUILD", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "MAINTAINER")
SUPPORTED_TEXT = ", ".join(SUPPORTED)
_ROLE_RE = re.compile(r"^#\s*layer\s*:\s*(.*?)\s*$", re.IGNORECASE)
_PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    """One instruction of a Labfile.

    Attributes:
        keyword: The instruction, upper case: ``"COPY"``.
        args: Its arguments. ``RUN``/``CMD``/``ENTRYPOINT``: the exec list,
            or one shell string when ``exec_form`` is false. ``ENV``/``LABEL``:
            ``"KEY=VALUE"`` strings with quotes removed. ``COPY``: sources
            then destination. ``FROM``/``WORKDIR``: one string.
            ``EXPOSE``: ``"3000/tcp"`` strings.
        line: The line number where the instruction starts (1-based).
        text: The instruction as written, continuations joined (what a build step prints).
        exec_form: Whether ``RUN``/``CMD``/``ENTRYPOINT`` used the JSON form.
        flags: ``(("chown", "1000:1000"),)`` for ``COPY --chown=1000:1000``.
        role: The ``# layer: <role>`` comment just before it, or ``""``.
    """

    keyword: str
    args: tuple[str, ...]
    line: int
    text: str
    exec_form: bool = False
    flags: tuple[tuple[str, str], ...] = ()
    role: str = ""

    def argv(self) -> list[str]:
        """The command to execute: the exec list, or ``["/bin/sh", "-c", shell string]``."""
        if self.exec_form:
            return list(self.args)
        return ["/bin/sh", "-c", self.args[0]]

    def flag(self, name: str, default: str | None = None) -> str | None:
        """The value of ``--name=value``, if given."""
        return dict(self.flags).get(name, default)

    def pairs(self) -> list[tuple[str, str]]:
        """``ENV``/``LABEL`` arguments as ``(key, value)``."""
        return [tuple(a.split("=", 1)) for a in self.args]  # type: ignore[misc]


def _logical_lines(text: str) -> list[tuple[int, str, str]]:
    """Join ``\\`` continuations: ``(first line number, joined text, role comment)``.

    Comment lines inside a continued instruction are dropped, as Docker
    drops them; a ``# layer:`` comment sets the role of the next instruction.
    """
    out: list[tuple[int, str, str]] = []
    role = ""
    start = 0
    parts: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            m = _ROLE_RE.match(stripped)
            if m and not parts:
                role = m.group(1)
            continue
        if not parts and not stripped:
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        out.append((start, " ".join(p for p in parts if p), role))
        parts, role = [], ""
    if parts:
        out.append((start, " ".join(p for p in parts if p), role))
    return out


def parse(text: str, filename: str = "Labfile") -> list[Instruction]:
    """Parse a Labfile into instructions.

    Args:
        text: The Labfile's content.
        filename: Its name, used in error messages (``Labfile`` or ``Dockerfile``).

    Returns:
        The instructions in order; the first is ``FROM``.

    Raises:
        LabfileError: ``"<filename> line N: …"`` for an unknown or unsupported
            instruction, a malformed argument, a missing ``FROM``, or a second
            ``FROM`` (multi-stage builds are not supported).
    """
    result: list[Instruction] = []
    for line, logical, role in _logical_lines(text):
        word, *tail = logical.split(None, 1)
        keyword = word.upper()
        rest = tail[0].strip() if tail else ""

        fail = _failer(filename, line)

        if keyword in DOCKER_ONLY:
            raise fail(f"{keyword} is not supported in a Labfile (it supports {SUPPORTED_TEXT})")
        if keyword not in SUPPORTED:
            raise fail(f"unknown instruction: {word} (a Labfile supports {SUPPORTED_TEXT})")
        if not result and keyword != "FROM":
            raise fail(f"{keyword} before FROM; a Labfile starts with FROM <image> (or FROM scratch)")
        if keyword == "FROM" and result:
            raise fail("a second FROM; multi-stage builds are not supported, use one FROM")
        if not rest:
            raise fail(f"{keyword} requires at least one argument")
        inst = _PARSERS[keyword](keyword, rest, fail)
        result.append(Instruction(line=line, text=logical, role=role, **inst))
    if not result:
        raise LabfileError(f"{filename} is empty", "A Labfile starts with FROM <image>, e.g. FROM busybox")
    return result


def _failer(filename: str, line: int) -> Callable[..., LabfileError]:
    """An error maker for one line: ``fail("what")`` -> ``LabfileError("<file> line N: what")``."""

    def fail(what: str, hint: str = "") -> LabfileError:
        return LabfileError(f"{filename} line {line}: {what}", hint or f"A Labfile supports {SUPPORTED_TEXT}")

    return fail


def _json_list(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None  # Docker runs malformed JSON as a shell command too
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _words(rest: str, fail) -> list[str]:
    try:
        return shlex.split(rest, posix=True)
    except ValueError as e:
        raise fail(f"unbalanced quotes in {rest!r} ({e})") from None


def _from(keyword, rest, fail) -> dict:
    words = rest.split()
    if words[0].startswith("--"):
        raise fail(f"FROM {words[0]} is not supported; write FROM <image>")
    if len(words) != 1:
        raise fail("FROM takes one image (FROM image AS name is a multi-stage build, which is not supported)")
    return {"keyword": keyword, "args": (words[0],)}


def _command(keyword, rest, fail) -> dict:
    argv = _json_list(rest)
    if argv is not None:
        if not argv and keyword == "RUN":
            raise fail("RUN [] has no command")
        return {"keyword": keyword, "args": tuple(argv), "exec_form": True}
    return {"keyword": keyword, "args": (rest,), "exec_form": False}


def _copy(keyword, rest, fail) -> dict:
    flags = []
    words = rest.split()
    while words and words[0].startswith("--"):
        name, eq, value = words.pop(0)[2:].partition("=")
        if name != "chown" or not eq or not value:
            raise fail(f"COPY --{name} is not supported; only --chown=USER[:GROUP] is")
        flags.append((name, value))
    body = " ".join(words)
    paths = _json_list(body)
    if paths is None:
        paths = _words(body, fail)
    if len(paths) < 2:
        raise fail("COPY requires at least two arguments: COPY <src>... <dest>")
    return {"keyword": keyword, "args": tuple(paths), "flags": tuple(flags)}


def _pairs(keyword, rest, fail) -> dict:
    words = _words(rest, fail)
    if keyword == "ENV" and "=" not in words[0]:
        # Legacy form: ENV KEY value with spaces
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise fail(f"ENV {key} needs a value: ENV {key}=value")
        return {"keyword": keyword, "args": (f"{key}={value.strip()}",)}
    for w in words:
        key, eq, _ = w.partition("=")
        if not eq or not key:
            raise fail(f"{keyword} wants KEY=VALUE pairs; {w!r} has no '='")
    return {"keyword": keyword, "args": tuple(words)}


def _workdir(keyword, rest, fail) -> dict:
    words = _words(rest, fail)
    return {"keyword": keyword, "args": (" ".join(words),)}


def _expose(keyword, rest, fail) -> dict:
    ports: list[str] = []
    for w in rest.split():
        m = _PORT_RE.match(w)
        if not m:
            raise fail(f"invalid containerPort: {w} (write EXPOSE 3000 or EXPOSE 3000/tcp)")
        low = int(m.group(1))
        high = int(m.group(2) or low)
        proto = (m.group(3) or "tcp").lower()
        if not 1 <= low <= high <= 65535:
            raise fail(f"invalid containerPort: {w} (ports are 1-65535)")
        ports.extend(f"{p}/{proto}" for p in range(low, high + 1))
    return {"keyword": keyword, "args": tuple(ports)}


_PARSERS = {
    "FROM": _from,
    "RUN": _command,
    "CMD": _command,
    "ENTRYPOINT": _command,
    "COPY": _copy,
    "ENV": _pairs,
    "LABEL": _pairs,
    "WORKDIR": _workdir,
    "EXPOSE": _expose,
}
