"""``labkit``: the command line, with Docker's verbs, flags and output shapes.

Each command parses its flags, calls one or two :class:`labkit.Engine`
methods and prints what Docker would print — nothing more. A learner can
type ``labkit run -d --name web busybox httpd -f`` and ``labkit ps`` and see
the columns, words and exit codes ``docker`` gives.

Errors are reported in one place (:func:`_report`): one clear line on
stderr, never a traceback, and Docker's exit codes — 125 when ``run``
fails (or ``create`` is given a flag it cannot use), 126/127 when the
container's command cannot be started, 1 for an error "from the daemon"
and for missing arguments, 125 for a flag that cannot be read, 130 on Ctrl-C.

This module imports only the standard library at the top so that
``labkit --help`` starts fast; the engine is imported when a command needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

from labkit.errors import (
    BuildFailed,
    HostUnsupported,
    InvalidArgument,
    InvalidOption,
    LabkitError,
    LabkitWarning,
    NoSuchImage,
    NotFound,
    StartFailed,
)
from labkit.model import humanize
from labkit.model.terminal import detach_keys

PROG = "labkit"

#: Builds an engine from the global options; tests pass their own.
EngineFactory = Callable[..., Any]


# --------------------------------------------------------------------------
# Errors the command line itself raises


class UsageError(Exception):
    """The command line could not be parsed (argparse's complaint, as one line).

    Attributes:
        code: Docker's exit code for it: 125 for a flag it cannot read (an unknown flag, a
            value of the wrong kind), 1 for missing or extra arguments ("requires at least
            1 argument").
    """

    def __init__(self, prog: str, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.prog = prog
        self.message = message
        self.code = code


class TemplateError(InvalidArgument):
    """A ``--format`` / ``-f`` template could not be parsed or run."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> Any:  # argparse calls this for every usage error
        # Docker: a missing argument or an unknown command exits 1, a flag it cannot read 125.
        counted = message.startswith(("the following arguments are required", "argument COMMAND:"))
        raise UsageError(self.prog, message, code=1 if counted else 125)


# --------------------------------------------------------------------------
# Small formatters shared by several commands


def _short(identifier: str) -> str:
    """The 12 hex characters Docker shows of an id (without ``sha256:``)."""
    return identifier.split(":", 1)[-1][:12]


def _cell_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: East Asian wide characters take two."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def tabwrite(lines: Iterable[str], minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells into columns as Docker's tabwriter does.

    Every cell but the last of a line belongs to a column whose width is the
    widest cell plus ``padding``, and at least ``minwidth``; the last cell is
    written as it is, so lines carry no trailing spaces.

    Args:
        lines: Lines whose cells are separated by ``\\t``.
        minwidth: The narrowest a column may be (padding included).
        padding: Spaces added to the widest cell of a column.

    Returns:
        The aligned text, one ``\\n`` after each line.
    """
    rows = [line.split("\t") for line in lines]
    widths: list[int] = []
    for row in rows:
        for index, cell in enumerate(row[:-1]):
            width = max(minwidth, _cell_width(cell) + padding)
            if index == len(widths):
                widths.append(width)
            else:
                widths[index] = max(widths[index], width)
    out = []
    for row in rows:
        cells = [cell + " " * (widths[i] - _cell_width(cell)) for i, cell in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1] + "\n")
    return "".join(out)


def ellipsis(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` columns, ending in ``…`` when something was cut."""
    if _cell_width(text) <= width:
        return text
    kept, used = [], 0
    for ch in text:
        used += _cell_width(ch)
        if used > width - 1:
            break
        kept.append(ch)
    return "".join(kept) + "…"


def _join_host_port(host: str, port: Any) -> str:
    """``host:port``, with an IPv6 host in brackets (``[::]:8080``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ip_order(ip: str) -> tuple[int, int]:
    """Sort key for an address: none first, then IPv4, then IPv6."""
    if not ip:
        return (0, 0)
    import ipaddress

    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return (9, 0)
    return (address.version, int(address))


def display_ports(ports: Sequence[Mapping[str, Any]] | None) -> str:
    """The PORTS column: ``0.0.0.0:8080->80/tcp, [::]:8080->80/tcp`` or ``80/tcp``.

    Ports published on the same address and number inside and out, and
    consecutive, are grouped into ranges (``0.0.0.0:8000-8001->8000-8001/tcp``);
    ports published under a different number are listed after them.
    """
    ordered = sorted(
        ports or [],
        key=lambda p: (p.get("PrivatePort", 0), _ip_order(p.get("IP", "")), p.get("PublicPort", 0), p.get("Type", "")),
    )
    groups: dict[str, list[int]] = {}
    result: list[str] = []
    mappings: list[str] = []

    def form(key: str, first: int, last: int) -> str:
        ip, _, kind = key.rpartition("/")
        span = str(first) if first == last else f"{first}-{last}"
        return f"{_join_host_port(ip, span)}->{span}/{kind}" if ip else f"{span}/{kind}"

    for port in ordered:
        current = port.get("PrivatePort", 0)
        kind = port.get("Type", "tcp")
        key = kind
        if port.get("IP"):
            if port.get("PublicPort") != current:
                where = _join_host_port(port["IP"], port.get("PublicPort"))
                mappings.append(f"{where}->{current}/{kind}")
                continue
            key = f"{port['IP']}/{kind}"
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
        elif current == group[1] + 1:
            group[1] = current
        else:
            result.append(form(key, *group))
            groups[key] = [current, current]
    result.extend(form(key, *group) for key, group in groups.items())
    return ", ".join(result + mappings)


def _full_image_ref(image: str) -> str:
    """``busybox`` → ``busybox:latest``; a reference with a tag or digest is kept."""
    last = image.rsplit("/", 1)[-1]
    return image if (":" in last or "@" in image) else f"{image}:latest"


def _split_repo_tag(ref: str) -> tuple[str, str]:
    """``registry:5000/app:1.0`` → (``registry:5000/app``, ``1.0``)."""
    head, _, last = ref.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (f"{head}/{name}" if head else name), tag
    return ref, "<none>"


def _json_text(value: Any, indent: int | None = None) -> str:
    """JSON as Go's encoder writes it: HTML characters and U+2028/2029 escaped."""
    if indent is None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(value, ensure_ascii=False, indent=indent)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def _cid(container: Any) -> str:
    """The id of whatever ``create`` returned: an object with ``id``, a dict, or a string."""
    if isinstance(container, str):
        return container
    if isinstance(container, Mapping):
        return str(container.get("Id") or container.get("id"))
    return str(getattr(container, "id", None) or container.Id)


# --------------------------------------------------------------------------
# A Go text/template subset for --format and inspect -f


def _go_float(value: float) -> str:
    """A float as Go's ``%v`` writes it: shortest digits, exponent from 1e+06."""
    from decimal import Decimal

    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)  # position of the decimal point
    minus = "-" if sign else ""
    e = point - 1
    if e < -4 or e >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{minus}{text}{'0' * (point - len(text))}"
    return f"{minus}{text[:point]}.{text[point:]}"


def go_string(value: Any) -> str:
    """A value as Go's template engine prints it (``true``, ``<nil>``, ``[a b]``, ``map[k:v]``)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_string(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_string(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _truthy(value: Any) -> bool:
    """Go template truth: false, 0, nil and empty things are false."""
    return bool(value)


class Fields(dict):  # type: ignore[type-arg]
    """The dot of a ``ps``/``images`` template: named fields, not a JSON map."""

    kind = "container"


_MISSING = object()
_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.S)
_WORD = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|[^\s]+')

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": lambda v: _json_text(v),
    "println": lambda *a: " ".join(go_string(v) for v in a) + "\n",
    "print": lambda *a: "".join(go_string(v) for v in a),
    "join": lambda items, sep: sep.join(go_string(v) for v in (items or [])),
    "split": lambda text, sep: str(text).split(sep),
    "upper": lambda v: go_string(v).upper(),
    "lower": lambda v: go_string(v).lower(),
    "title": lambda v: go_string(v).title(),
    "len": lambda v: len(v or []),
    "index": lambda v, *keys: _index(v, keys),
    "truncate": lambda v, n: go_string(v)[: int(n)],
    "pad": lambda v, before, after: " " * int(before) + go_string(v) + " " * int(after),
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda v: not _truthy(v),
    "and": lambda *a: next((v for v in a if not _truthy(v)), a[-1]),
    "or": lambda *a: next((v for v in a if _truthy(v)), a[-1]),
}


def _index(value: Any, keys: Sequence[Any]) -> Any:
    """Go's ``index``: look up map keys or list positions in turn."""
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError) as error:
            raise TemplateError(f"template: error calling index: {error}") from error
    return value


class Template:
    """A small Go text/template: fields, functions, pipes, ``range``/``if``/``with``/``else``/``end``.

    It covers what people type after ``--format`` and ``-f``:
    ``{{.State.Status}}``, ``{{json .Config.Env}}``,
    ``{{range .Config.Env}}{{println .}}{{end}}``, ``table {{.ID}}\\t{{.Names}}``.
    A missing map key is an error, as in Docker's inspect.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.tree = self._parse(source)

    # -- parsing ------------------------------------------------------------

    def _parse(self, source: str) -> list[Any]:
        root: list[Any] = []
        stack: list[tuple[dict[str, Any] | None, list[Any]]] = [(None, root)]
        position, trim_next = 0, False
        for match in _ACTION.finditer(source):
            text = source[position : match.start()]
            if trim_next:
                text = text.lstrip()
            if match.group(1):
                text = text.rstrip()
            if text:
                stack[-1][1].append(text)
            position, trim_next = match.end(), bool(match.group(3))
            action = match.group(2)
            word, _, rest = action.partition(" ")
            if action.startswith("/*"):
                continue
            if word in ("range", "if", "with"):
                node: dict[str, Any] = {"kind": word, "pipe": self._pipe(rest), "body": [], "else": []}
                stack[-1][1].append(node)
                stack.append((node, node["body"]))
            elif word == "else":
                open_node = stack[-1][0]
                if open_node is None:
                    raise TemplateError("template parsing error: unexpected {{else}}")
                stack[-1] = (open_node, open_node["else"])
            elif word == "end":
                if len(stack) == 1:
                    raise TemplateError("template parsing error: unexpected {{end}}")
                stack.pop()
            else:
                stack[-1][1].append(self._pipe(action))
        tail = source[position:]
        if trim_next:
            tail = tail.lstrip()
        if "{{" in tail:
            raise TemplateError(f"template parsing error: unclosed action in {tail!r}")
        if tail:
            stack[-1][1].append(tail)
        if len(stack) > 1:
            raise TemplateError("template parsing error: unexpected EOF (a {{range}} or {{if}} lacks its {{end}})")
        return root

    def _pipe(self, text: str) -> list[list[str]]:
        if not text.strip():
            raise TemplateError("template parsing error: missing value for command")
        commands: list[list[str]] = [[]]
        for word in _WORD.findall(text):
            if word == "|":
                commands.append([])
                continue
            commands[-1].append(word)
        for command in commands:
            if not command:
                raise TemplateError(f"template parsing error: missing command in {text!r}")
            head = command[0]
            if head[0].isalpha() and head not in _FUNCTIONS and head not in ("true", "false", "nil"):
                raise TemplateError(f'template parsing error: function "{head}" not defined')
        return commands

    # -- running ------------------------------------------------------------

    def render(self, data: Any) -> str:
        """Run the template with ``data`` as the dot.

        Raises:
            TemplateError: When a field is missing or a function fails.
        """
        out: list[str] = []
        self._run(self.tree, data, data, out)
        return "".join(out)

    def _run(self, nodes: list[Any], dot: Any, root: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, list):
                out.append(go_string(self._eval(node, dot, root)))
            else:
                value = self._eval(node["pipe"], dot, root)
                if node["kind"] == "if":
                    self._run(node["body"] if _truthy(value) else node["else"], dot, root, out)
                elif node["kind"] == "with":
                    if _truthy(value):
                        self._run(node["body"], value, root, out)
                    else:
                        self._run(node["else"], dot, root, out)
                else:
                    items = [value[k] for k in sorted(value)] if isinstance(value, Mapping) else value or []
                    if not isinstance(items, (list, tuple)):
                        raise TemplateError(f"template: range can't iterate over {go_string(value)}")
                    for item in items:
                        self._run(node["body"], item, root, out)
                    if not items:
                        self._run(node["else"], dot, root, out)

    def _eval(self, commands: list[list[str]], dot: Any, root: Any) -> Any:
        value: Any = _MISSING
        for command in commands:
            head, args = command[0], [self._operand(word, dot, root) for word in command[1:]]
            if head in _FUNCTIONS:
                if value is not _MISSING:
                    args.append(value)
                try:
                    value = _FUNCTIONS[head](*args)
                except TemplateError:
                    raise
                except (TypeError, ValueError, AttributeError) as error:
                    raise TemplateError(f"template: error calling {head}: {error}") from error
            elif args or value is not _MISSING:
                raise TemplateError(f"template: can't give argument to non-function {head}")
            else:
                value = self._operand(head, dot, root)
        return value

    def _operand(self, word: str, dot: Any, root: Any) -> Any:
        if word.startswith('"'):
            return json.loads(word)
        if word.startswith("`"):
            return word[1:-1]
        if word in ("true", "false"):
            return word == "true"
        if word == "nil":
            return None
        if word.startswith("$"):
            return self._field(root, word[1:])
        if word.startswith("."):
            return self._field(dot, word)
        if re.fullmatch(r"-?\d+", word):
            return int(word)
        if re.fullmatch(r"-?\d*\.\d+", word):
            return float(word)
        raise TemplateError(f'template: function "{word}" not defined')

    def _field(self, value: Any, path: str) -> Any:
        for name in [part for part in path.split(".") if part]:
            if isinstance(value, Fields):
                if name not in value:
                    raise TemplateError(
                        f'template: executing "{self.source}" at <{path}>: '
                        f"can't evaluate field {name} in type {value.kind}"
                    )
                value = value[name]
            elif isinstance(value, Mapping):
                if name not in value:
                    raise TemplateError(
                        f'template: executing "{self.source}" at <{path}>: map has no entry for key "{name}"'
                    )
                value = value[name]
            elif value is None:
                raise TemplateError(f'template: executing "{self.source}" at <{path}>: nil pointer evaluating {name}')
            else:
                raise TemplateError(
                    f'template: executing "{self.source}" at <{path}>: '
                    f"can't evaluate field {name} in type {type(value).__name__}"
                )
        return value


def _table_format(fmt: str) -> tuple[bool, str]:
    """Split Docker's ``table`` prefix off a format and turn ``\\t``/``\\n`` into real ones."""
    table = fmt.startswith("table")
    body = fmt[len("table") :] if table else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return table, body


def _render_rows(fmt: str, rows: list[Fields], headers: Mapping[str, str], kind: str) -> str:
    """Render a ``--format`` over rows: a header and aligned columns if it starts with ``table``."""
    table, body = _table_format(fmt)
    template = Template(body)
    lines = [template.render(row) for row in rows]
    if not table:
        return "".join(line + "\n" for line in lines)
    header = Fields(headers)
    header.kind = kind
    return tabwrite([template.render(header)] + lines)


# --------------------------------------------------------------------------
# ps


PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Names": "NAMES",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
}
PS_TABLE = "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}"
_PS_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _unix_time_text(seconds: float) -> str:
    """Go's ``time.Time.String()`` in local time: ``2024-05-01 12:00:00 +0000 UTC``."""
    from datetime import datetime

    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def _ps_fields(item: Mapping[str, Any], trunc: bool, now: float) -> Fields:
    """The fields a ``ps`` row offers to its template, computed as ``docker ps`` does."""
    names = [n[1:] if n.startswith("/") else n for n in item.get("Names") or []]
    if trunc:
        name = next((n for n in names if "/" not in n), "")
    else:
        name = ",".join(names)
    image = item.get("Image") or "<no image>"
    if trunc and image.startswith("sha256:"):
        image = _short(image)
    command = item.get("Command", "")
    labels = item.get("Labels") or {}
    mounts = [m.get("Name") or m.get("Source", "") for m in item.get("Mounts") or []]
    networks = ((item.get("NetworkSettings") or {}).get("Networks")) or {}
    created = item.get("Created", 0)
    return Fields(
        ID=_short(item.get("Id", "")) if trunc else item.get("Id", ""),
        Names=name,
        Image=image,
        Command=_json_text(ellipsis(command, 20) if trunc else command),
        CreatedAt=_unix_time_text(created),
        RunningFor=humanize.human_duration(now - created) + " ago",
        Ports=display_ports(item.get("Ports")),
        State=item.get("State", ""),
        Status=item.get("Status", ""),
        Size=humanize.human_size(item.get("SizeRw", 0), 3),
        Labels=",".join(sorted(f"{k}={v}" for k, v in labels.items())),
        Mounts=",".join(ellipsis(m, 15) if trunc else m for m in mounts),
        Networks=",".join(networks),
    )


def _parse_filters(filters: Sequence[str]) -> dict[str, list[str]]:
    """``-f name=web -f status=exited`` → ``{"name": ["web"], "status": ["exited"]}``."""
    parsed: dict[str, list[str]] = {}
    for text in filters:
        key, sep, value = text.partition("=")
        key = key.strip().lower()
        if not sep:  # Docker's client refuses it as a flag it cannot read: 125
            raise UsageError(f"{PROG} ps", f"invalid argument \"{text}\" for -f/--filter: bad format of filter "
                             "(expected name=value); write it like -f name=web")
        if key not in ("name", "status", "id", "label", "ancestor"):
            raise InvalidArgument(f"invalid filter '{key}'", "Filter on name, status, id, label or ancestor")
        if key == "status" and value not in _PS_STATUSES:
            raise InvalidArgument(f"invalid filter 'status={value}'", "A status is one of " + ", ".join(_PS_STATUSES))
        if key == "name":
            try:
                re.compile(value)
            except re.error as error:
                raise InvalidArgument(f"invalid filter 'name={value}': {error}", "A name filter is a regexp") from None
        parsed.setdefault(key, []).append(value)
    return parsed


def _matches(item: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    """Docker's rule: values of one key are alternatives; different keys must all hold."""
    names = [n.lstrip("/") for n in item.get("Names") or []]
    labels = item.get("Labels") or {}
    for key, values in filters.items():
        if key == "name":
            ok = any(re.search(v, n) or re.search(v, "/" + n) for v in values for n in names)
        elif key == "status":
            ok = item.get("State") in values
        elif key == "id":
            ok = any(item.get("Id", "").startswith(v) for v in values)
        elif key == "ancestor":
            ok = any(
                item.get("Image") in (v, _full_image_ref(v)) or item.get("ImageID", "").startswith(v) for v in values
            )
        else:
            ok = all(
                (k in labels and (not sep or labels[k] == v))
                for k, sep, v in (value.partition("=") for value in values)
            )
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------
# The session: streams and a lazily built engine


class _Session:
    """What a command needs: where to print, and the engine (built on first use)."""

    def __init__(self, args: argparse.Namespace, factory: EngineFactory, out: IO[str], err: IO[str]) -> None:
        self.args = args
        self.factory = factory
        self.out = out
        self.err = err
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            self._engine = self.factory(backend=self.args.backend, root=self.args.root)
        return self._engine

    def print(self, *values: Any, end: str = "\n") -> None:
        print(*values, end=end, file=self.out)

    def error(self, line: str) -> None:
        print(line, file=self.err)


def _default_engine_factory(backend: str = "auto", root: str | None = None) -> Any:
    """Connect to the real engine; imported here so ``--help`` stays fast."""
    import labkit

    return labkit.connect(backend=backend, root=root)


# --------------------------------------------------------------------------
# Parsing helpers for run/create flags


def _size_arg(text: str) -> int:
    try:
        return humanize.parse_size(text)
    except InvalidArgument as error:
        raise argparse.ArgumentTypeError(error.one_line()) from error


def _swap_arg(text: str) -> int:
    return -1 if text.strip() == "-1" else _size_arg(text)


def _tag_arg(text: str) -> str:
    """``build -t``: a reference Docker's grammar accepts (lower case, one tag)."""
    from labkit.images.store import parse_ref

    try:
        parse_ref(text)
    except InvalidArgument as error:
        raise argparse.ArgumentTypeError(error.one_line()) from None
    return text


def _cpus_arg(text: str) -> float:
    """``--cpus``: a finite number (``nan``, ``inf`` and ``1e400`` are not numbers of CPUs)."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid value '{text}': it is not a number of CPUs. Give one such as 0.5")
    return value


def _int64_arg(text: str) -> int:
    """A whole number that fits Docker's 64-bit field (``--pids-limit``, ``--stop-timeout``, ``-t``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value '{text}': give a whole number") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"invalid value '{text}': out of range for a 64-bit number")
    return value


def _env_arg(text: str) -> str:
    """``-e``: ``NAME=value`` or ``NAME``; a name is never empty and never holds a space."""
    name = text.partition("=")[0]
    if not name or name != name.strip() or " " in name:
        raise argparse.ArgumentTypeError(f"invalid environment variable: {text}. Write it as NAME=value")
    return text


def _label_arg(text: str) -> str:
    """``-l``: ``KEY=value`` or ``KEY``, with a key that is not empty."""
    if not text.partition("=")[0].strip():
        raise argparse.ArgumentTypeError(f"invalid label '{text}': empty name. Write it as KEY=value")
    return text


def _tail_arg(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid --tail value {text!r}: give a number of lines or 'all'") from None


def _env_from(entries: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """``K=V`` kept as is; a bare ``K`` takes its value from this shell, or is dropped if unset."""
    env = []
    for entry in entries:
        name, sep, _ = entry.partition("=")
        if not name or name != name.strip() or " " in name:
            raise InvalidArgument(f"invalid environment variable: {entry}", "Write it as NAME=value")
        if sep:
            env.append(entry)
        elif name in environ:
            env.append(f"{name}={environ[name]}")
    return env


def _read_env_file(path: str) -> list[str]:
    """The lines of an ``--env-file``: ``K=V`` or ``K``; blank lines and ``#`` comments skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise InvalidArgument(f"open {path}: no such file or directory", "Check the path given to --env-file") from None
    except OSError as error:
        raise InvalidArgument(f"open {path}: {error.strerror}", "Check the path given to --env-file") from error
    return [line.lstrip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _labels(entries: Iterable[str]) -> dict[str, str]:
    labels = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        labels[key] = value
    return labels


def _create_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The engine's ``create`` keywords from run/create flags, checked as Docker's command line checks them.

    What Docker's client refuses before it asks the daemon (an env file, a port, a restart count
    that is not a number, ``--rm`` with ``--restart``) is refused here as :class:`InvalidOption`:
    exit 125 for ``create`` as for ``run``.
    """
    from labkit.engine import parse_port

    try:
        env = _env_from(_read_env_file(args.env_file) if args.env_file else [], os.environ)
        env += _env_from(args.env, os.environ)
        for spec in args.publish:
            parse_port(spec)
    except InvalidArgument as error:
        raise InvalidOption(error.message, error.hint) from error
    _, colon, count = (args.restart or "").partition(":")
    if colon and not count.lstrip("-").isdigit():
        raise InvalidOption("invalid restart policy format: maximum retry count must be an integer",
                            "Write it like on-failure:3")
    if args.rm and (args.restart or "no").partition(":")[0] != "no":
        raise InvalidOption("conflicting options: cannot specify both --restart and --rm",
                            "Use one or the other: --rm removes the container when it exits, --restart starts it again")
    if args.network == "":
        raise InvalidOption("no name set for network", "Give --network a name: bridge, host, none or one you created")
    return dict(
        name=args.name,
        entrypoint=args.entrypoint,
        env=env or None,
        workdir=args.workdir,
        hostname=args.hostname,
        ports=args.publish or None,
        publish_all=args.publish_all,
        volumes=args.volume or None,
        memory=args.memory,
        memory_swap=args.memory_swap,
        pids_limit=args.pids_limit,
        cpus=args.cpus,
        restart=args.restart,
        network=args.network,
        auto_remove=args.rm,
        labels=_labels(args.label) or None,
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        init=args.init,
        security_opt=args.security_opt or None,
        **({"tty": True, "console_size": _console_size()} if args.tty else {}),
        **({"open_stdin": True} if args.interactive else {}),
    )


def _console_size() -> tuple[int, int] | None:
    """``(rows, columns)`` of the caller's terminal, for a ``-t`` container's first size (Docker's ConsoleSize)."""
    for fd in (1, 0):
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        return size.lines, size.columns
    return None


# --------------------------------------------------------------------------
# Commands


def _stream_logs(session: _Session, entries: Iterable[tuple[str, Any, str]], timestamps: bool = False) -> None:
    """Write log entries to stdout or stderr as they arrive."""
    for stream, text, stamp in entries:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        target = session.err if stream == "stderr" else session.out
        target.write(f"{stamp} {text}" if timestamps else text)
        target.flush()


def _check_terminal(args: argparse.Namespace, verb: str, attached: bool) -> None:
    """``-i`` without ``-t`` for a container's PID 1 is not supported (its stdin is /dev/null: use a
    terminal, or ``exec -i``); and ``-it`` attached needs a terminal to read from, as Docker's does."""
    if args.interactive and not args.tty and verb != "exec":
        raise UsageError(
            f"{PROG} {verb}",
            f"-i without -t is not supported: PID 1's stdin is /dev/null here; give it a terminal with -it, "
            f"or pipe into one more process: '{PROG} exec -i web cat'",
        )
    if attached and args.tty and args.interactive and not os.isatty(0):
        raise _NotATerminal()
    if getattr(args, "detach_keys", None):
        detach_keys(args.detach_keys)  # refused before anything is made, as Docker's client refuses it


class _NotATerminal(Exception):
    """``-it`` with stdin that is no terminal: Docker's client refuses it in these words, exit 1."""

    message = "the input device is not a TTY"


def _detached(session: _Session, code: int | None) -> int:
    """The exit code of an attached command: the container's, or 0 when the caller typed the detach keys
    (Docker's client says so in these words)."""
    if code is None:
        session.error("read escape sequence")
        return 0
    return code


def cmd_run(session: _Session, args: argparse.Namespace) -> int:
    """Create and start a container; attached, stream its output and exit with its code."""
    detach = getattr(args, "detach", False)
    _check_terminal(args, args.verb, attached=not detach)
    engine = session.engine
    kwargs = _create_kwargs(args)
    if not detach and not args.tty:
        # Attached: this process reads the exit code, then removes the container itself. With a terminal,
        # the caller may detach: --rm stays the container's, to remove it whenever it ends.
        kwargs["auto_remove"] = False
    container = _create(session, args, kwargs)
    cid = _cid(container)
    if detach:
        # Docker prints the id before it starts the container.
        session.print(cid)
        session.out.flush()
    elif args.tty:
        session.out.flush()
        session.err.flush()
        try:
            code = engine.attach(cid, stdin=0 if args.interactive else None, stdout=_fileno(session.out),
                                 detach_keys=args.detach_keys, start=True)
        except KeyboardInterrupt:
            # Without -i the terminal is not raw, so Ctrl-C reaches this process: proxy it as Docker's CLI does.
            # With -i, Ctrl-C is a byte for the container's terminal; an interrupt here means the caller went
            # (its terminal closed), and the container goes on, as it would after the detach keys.
            if not args.interactive:
                with contextlib.suppress(LabkitError, OSError):
                    engine.kill(cid, signal="INT")
                session.error(f"{PROG}: sent SIGINT to {cid[:12]}; it may still be running (see '{PROG} ps')")
            raise
        except BaseException:
            if args.rm:
                with contextlib.suppress(LabkitError, OSError):
                    engine.rm(cid, force=True)
            raise
        return _detached(session, code)
    try:
        engine.start(cid)
    except BaseException:
        if args.rm:  # Docker removes a --rm container whose start failed, whatever failed (a taken port too)
            with contextlib.suppress(LabkitError, OSError):
                engine.rm(cid, force=True)
        raise
    if detach:
        return 0
    try:
        _stream_logs(session, engine.logs(cid, follow=True))
        code = int(engine.wait(cid))
    except KeyboardInterrupt:
        # Docker's CLI proxies Ctrl-C to the container as SIGINT; do the same, then let go.
        with contextlib.suppress(LabkitError, OSError):
            engine.kill(cid, signal="INT")
        session.error(f"{PROG}: sent SIGINT to {cid[:12]}; it may still be running (see '{PROG} ps')")
        raise
    if args.rm:
        engine.rm(cid, force=True)
    return code


def cmd_create(session: _Session, args: argparse.Namespace) -> int:
    """Create a container and print its full id."""
    _check_terminal(args, "create", attached=False)
    session.print(_cid(_create(session, args, _create_kwargs(args))))
    return 0


def _create(session: _Session, args: argparse.Namespace, kwargs: dict[str, Any]) -> Any:
    """``engine.create`` for run and create, its warnings printed as Docker prints them (``WARNING: …``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LabkitWarning)
            container = session.engine.create(args.image, args.command or None, **kwargs)
    except NoSuchImage:
        session.error(f"Unable to find image '{_full_image_ref(args.image)}' locally")
        raise
    for text in container.warnings:
        session.error(f"WARNING: {text}")
    return container


def _each(session: _Session, refs: Sequence[str], action: Callable[[str], Any], echo: bool = True) -> int:
    """Apply ``action`` to each reference; echo it as typed, report failures, go on."""
    failed = []
    for ref in refs:
        try:
            result = action(ref)
        except (LabkitError, OSError) as error:
            line, _ = _describe(error, session.args.verb)
            session.error(line)
            failed.append(ref)
            continue
        session.print(ref if echo else result)
    return 1 if failed else 0


def cmd_start(session: _Session, args: argparse.Namespace) -> int:
    """Start containers; with ``-a``, stream the output and exit with the container's code."""
    engine = session.engine
    if args.attach:
        if len(args.containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once", "Name one container")
        ref = args.containers[0]
        if (engine.inspect(ref).get("Config") or {}).get("Tty"):
            session.out.flush()
            code = engine.attach(ref, stdin=0 if args.interactive else None, stdout=_fileno(session.out),
                                 detach_keys=args.detach_keys, start=True)
            return _detached(session, code)
        seen = sum(1 for _ in engine.logs(ref))  # output of earlier runs is not replayed
        engine.start(ref)
        entries = engine.logs(ref, follow=True)
        for _ in range(seen):
            next(entries, None)
        _stream_logs(session, entries)
        return int(engine.wait(ref))
    failed = []
    for ref in args.containers:
        try:
            engine.start(ref)
        except (LabkitError, OSError) as error:
            session.error(_describe(error, "start")[0])
            failed.append(ref)
            continue
        session.print(ref)
    if failed:
        session.error("Error: failed to start containers: " + ", ".join(failed))
        return 1
    return 0


def cmd_stop(session: _Session, args: argparse.Namespace) -> int:
    """Stop containers: the stop signal, then SIGKILL after the timeout."""
    return _each(session, args.containers, lambda r: session.engine.stop(r, timeout=args.time, signal=args.signal))


def cmd_restart(session: _Session, args: argparse.Namespace) -> int:
    """Stop, then start, each container."""
    return _each(session, args.containers, lambda r: session.engine.restart(r, timeout=args.time))


def cmd_kill(session: _Session, args: argparse.Namespace) -> int:
    """Send a signal (SIGKILL by default) to each container's main process."""
    return _each(session, args.containers, lambda r: session.engine.kill(r, signal=args.signal or "KILL"))


def cmd_pause(session: _Session, args: argparse.Namespace) -> int:
    """Freeze every process of each container (the cgroup freezer)."""
    return _each(session, args.containers, session.engine.pause)


def cmd_unpause(session: _Session, args: argparse.Namespace) -> int:
    """Thaw each paused container."""
    return _each(session, args.containers, session.engine.unpause)


def cmd_rm(session: _Session, args: argparse.Namespace) -> int:
    """Remove containers (and with ``-v`` their anonymous volumes)."""
    return _each(session, args.containers, lambda r: session.engine.rm(r, force=args.force, volumes=args.volumes))


def cmd_wait(session: _Session, args: argparse.Namespace) -> int:
    """Block until each container stops, then print its exit code."""
    return _each(session, args.containers, session.engine.wait, echo=False)


def cmd_ps(session: _Session, args: argparse.Namespace) -> int:
    """List containers as ``docker ps`` does."""
    filters = _parse_filters(args.filter)
    last = 1 if args.latest else args.last
    items = list(session.engine.ps(all=args.all or last is not None))
    items.sort(key=lambda item: item.get("Created", 0), reverse=True)
    items = [item for item in items if _matches(item, filters)]
    if last is not None and last >= 0:
        items = items[:last]
    now = time.time()
    rows = [_ps_fields(item, not args.no_trunc, now) for item in items]
    if args.quiet:
        session.out.write("".join(row["ID"] + "\n" for row in rows))
        return 0
    session.out.write(_render_rows(args.format or PS_TABLE, rows, PS_HEADERS, "container"))
    return 0


def cmd_inspect(session: _Session, args: argparse.Namespace) -> int:
    """Print objects as a JSON array (or through ``-f``), looking in containers, images, volumes."""
    engine = session.engine
    lookups = {"container": engine.inspect, "image": engine.inspect_image, "volume": engine.inspect_volume,
               "network": engine.inspect_network}
    kinds = [args.type] if args.type else list(lookups)
    try:
        template = Template(args.format) if args.format else None
    except TemplateError as error:
        session.error(error.one_line())
        return 64  # Docker's inspect exits 64 (sysexits' EX_USAGE) when its template does not parse
    found, errors = [], []
    for name in args.names:
        for kind in kinds:
            try:
                found.append(lookups[kind](name))
                break
            except NotFound as error:
                last_error = error
        else:
            if args.type:
                errors.append(f"Error response from daemon: {last_error.one_line()}")
            else:
                errors.append(f"Error: No such object: {name}")
    if template is not None:
        session.out.write("".join(template.render(obj) + "\n" for obj in found))
    else:
        session.print(_json_text(found, indent=4))
    for line in errors:
        session.error(line)
    return 1 if errors else 0


_DIFF_KIND = {0: "C", 1: "A", 2: "D"}


def cmd_diff(session: _Session, args: argparse.Namespace) -> int:
    """List what changed in the container's writable layer: ``C /app``, ``A /x``, ``D /y``."""
    for change in session.engine.diff(args.container):
        session.print(f"{_DIFF_KIND.get(change.get('Kind'), '?')} {change.get('Path')}")
    return 0


def cmd_logs(session: _Session, args: argparse.Namespace) -> int:
    """Print what the container wrote, to stdout and stderr as it wrote it."""
    entries = session.engine.logs(args.container, follow=args.follow, tail=args.tail, timestamps=args.timestamps)
    _stream_logs(session, entries, timestamps=args.timestamps)
    return 0


def cmd_attach(session: _Session, args: argparse.Namespace) -> int:
    """Attach this terminal to a running container's PID 1; exit with its code, or 0 after the detach keys."""
    session.out.flush()
    detach_keys(args.detach_keys or None)
    stdin = None if args.no_stdin else 0
    if stdin is not None and (session.engine.inspect(args.container).get("Config") or {}).get("Tty") \
            and not os.isatty(0):
        raise _NotATerminal()
    code = session.engine.attach(args.container, stdin=stdin, stdout=_fileno(session.out),
                                 stderr=_fileno(session.err), detach_keys=args.detach_keys)
    return _detached(session, code)


def _fileno(stream: IO[str]) -> int:
    """The descriptor under a text stream (the caller's terminal, in-process or handed to the engine)."""
    stream.flush()
    return stream.fileno()


def cmd_exec(session: _Session, args: argparse.Namespace) -> int:
    """Run another process in a running container; exit with its code."""
    if not args.command:
        raise UsageError(f"{PROG} exec", "requires at least 2 arguments: CONTAINER COMMAND [ARG...]", code=1)
    _check_terminal(args, "exec", attached=not args.detach)
    if args.tty and not args.detach:
        code = session.engine.exec(args.container, list(args.command), env=_env_from(args.env, os.environ) or None,
                                   workdir=args.workdir, stdin=0 if args.interactive else None,
                                   stdout=_fileno(session.out), tty=True, detach_keys=args.detach_keys)
        return _detached(session, code)
    env = _env_from(args.env, os.environ)
    with _byte_sink(session.out) as out, _byte_sink(session.err) as err:
        code = session.engine.exec(
            args.container,
            list(args.command),
            env=env or None,
            workdir=args.workdir,
            detach=args.detach,
            stdout=out,
            stderr=err,
            stdin=0 if args.interactive else None,  # the caller's fd 0, in-process or handed to the engine
        )
    return int(code or 0)


@contextlib.contextmanager
def _byte_sink(stream: IO[str]) -> Any:
    """A file descriptor whose bytes end up in ``stream``, for the engine to relay a container's output to.

    A real terminal or file is given as its own descriptor (the container
    itself only ever gets a pipe, see :mod:`labkit.linux.stdio`); a Python
    text stream (a notebook, a test) gets a pipe whose bytes are copied in.
    """
    try:
        stream.flush()
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd >= 0:
        yield fd
        return
    import threading

    read_end, write_end = os.pipe()

    def copy() -> None:
        with open(read_end, "rb", closefd=True) as pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                stream.write(chunk.decode("utf-8", "replace"))

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    try:
        yield write_end
    finally:
        os.close(write_end)
        thread.join()


IMAGE_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
}
IMAGE_TABLE = "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}"


def cmd_images(session: _Session, args: argparse.Namespace) -> int:
    """List images: one row per tag, newest first."""
    images = sorted(session.engine.images(), key=lambda i: i.get("Created", 0), reverse=True)
    now = time.time()
    rows = []
    for image in images:
        created = image.get("Created", 0)
        ident = image.get("Id", "")
        for ref in image.get("RepoTags") or ["<none>:<none>"]:
            repo, tag = ("<none>", "<none>") if ref == "<none>:<none>" else _split_repo_tag(ref)
            rows.append(
                Fields(
                    Repository=repo,
                    Tag=tag,
                    ID=ident if args.no_trunc else _short(ident),
                    CreatedSince=humanize.human_duration(now - created) + " ago" if created else "N/A",
                    CreatedAt=_unix_time_text(created),
                    Size=humanize.human_size(image.get("Size", 0), 3),
                )
            )
            rows[-1].kind = "image"
    if args.quiet:
        session.out.write("".join(row["ID"] + "\n" for row in rows))
        return 0
    session.out.write(_render_rows(args.format or IMAGE_TABLE, rows, IMAGE_HEADERS, "image"))
    return 0


def cmd_build(session: _Session, args: argparse.Namespace) -> int:
    """Build an image from a Labfile (or Dockerfile) in DIR."""

    def step(event: Any) -> None:
        session.print(event)
        session.out.flush()

    image_id = session.engine.build(args.path, args.tag, file=args.file, on_step=step)
    session.print(f"Successfully built {_short(str(image_id))}")
    session.print(f"Successfully tagged {_full_image_ref(args.tag)}")
    return 0


def cmd_trace(session: _Session, args: argparse.Namespace) -> int:
    """``labkit trace run busybox true``: the command's own output, then its steps, one per line."""
    if not args.inner or args.inner[0] == "trace":
        raise UsageError(f"{PROG} trace", "trace needs a command to run, e.g. 'labkit trace run busybox true'",
                         code=1)
    engine = session.engine
    with engine.tracing() as steps:
        code = main(["--backend", args.backend, *(["--root", args.root] if args.root else []), *args.inner],
                    engine_factory=lambda **_kw: engine, stdout=session.out, stderr=session.err)
    for step in steps:
        session.print(step)
    return code


def cmd_setup(session: _Session, args: argparse.Namespace) -> int:
    """Build busybox:latest and the lesson's images, then list the images."""
    def step(line: str) -> None:
        session.print(line)
        session.out.flush()

    session.engine.setup(on_step=step)
    return cmd_images(session, argparse.Namespace(quiet=False, all=False, no_trunc=False, format=None))


def cmd_volume_create(session: _Session, args: argparse.Namespace) -> int:
    """Create a named (or anonymous) volume and print its name."""
    volume = session.engine.volume_create(args.name)
    session.print(volume.get("Name", args.name) if isinstance(volume, Mapping) else volume)
    return 0


def cmd_service_create(session: _Session, args: argparse.Namespace) -> int:
    """Create a service and print its name."""
    rec = session.engine.service_create(args.name, args.image, replicas=args.replicas, ports=args.publish,
                                        command=args.command or None, env=args.env or None, network=args.network)
    session.print(rec["Name"])
    return 0


def cmd_service_ls(session: _Session, args: argparse.Namespace) -> int:
    """List services: NAME, REPLICAS (running/asked), IMAGE, PORTS."""
    lines = ["NAME\tREPLICAS\tIMAGE\tPORTS"]
    for rec in session.engine.service_ls():
        ports = ", ".join(f"{p['HostIp']}:{p['HostPort']}->{p['ContainerPort']}/tcp" for p in rec["Ports"])
        lines.append(f"{rec['Name']}\t{rec['Running']}/{rec['Replicas']}\t{rec['Image']}\t{ports}")
    session.out.write(tabwrite(lines))
    return 0


def cmd_service_scale(session: _Session, args: argparse.Namespace) -> int:
    """Scale services: ``web=5``."""
    for pair in args.pairs:
        name, _, count = pair.partition("=")
        if not count.isdigit():
            raise UsageError(f"{PROG} service scale", f"invalid scale specifier '{pair}': write NAME=REPLICAS",
                             code=1)
        session.engine.service_scale(name, int(count))
        session.print(f"{name} scaled to {count}")
    return 0


def cmd_service_rm(session: _Session, args: argparse.Namespace) -> int:
    """Remove services, echoing each name."""
    return _each(session, args.services, session.engine.service_rm)


def cmd_network_create(session: _Session, args: argparse.Namespace) -> int:
    """Create a network and print its id."""
    session.print(session.engine.network_create(args.name, subnet=args.subnet)["Id"])
    return 0


def cmd_network_ls(session: _Session, args: argparse.Namespace) -> int:
    """List networks: NETWORK ID, NAME, DRIVER, SCOPE."""
    nets = session.engine.network_ls()
    if args.quiet:
        session.out.write("".join(_short(n["Id"]) + "\n" for n in nets))
        return 0
    lines = ["NETWORK ID\tNAME\tDRIVER\tSCOPE"] + [
        f"{_short(n['Id'])}\t{n['Name']}\t{n['Driver']}\t{n.get('Scope', 'local')}" for n in nets]
    session.out.write(tabwrite(lines))
    return 0


def cmd_network_rm(session: _Session, args: argparse.Namespace) -> int:
    """Remove networks, echoing each name as typed."""
    return _each(session, args.networks, session.engine.network_rm)


def cmd_network_prune(session: _Session, args: argparse.Namespace) -> int:
    """Delete idle bridges (they come back when a container needs them)."""
    session.engine.prune_networks()
    return 0


def cmd_network_inspect(session: _Session, args: argparse.Namespace) -> int:
    """Print networks as a JSON array."""
    session.out.write(_json_text([session.engine.inspect_network(n) for n in args.networks], indent=4) + "\n")
    return 0


def cmd_volume_ls(session: _Session, args: argparse.Namespace) -> int:
    """List volumes: DRIVER and VOLUME NAME."""
    volumes = session.engine.volume_ls()
    if args.quiet:
        session.out.write("".join(v.get("Name", "") + "\n" for v in volumes))
        return 0
    lines = ["DRIVER\tVOLUME NAME"] + [f"{v.get('Driver', 'local')}\t{v.get('Name', '')}" for v in volumes]
    session.out.write(tabwrite(lines))
    return 0


def cmd_volume_rm(session: _Session, args: argparse.Namespace) -> int:
    """Remove volumes; echo each name."""
    return _each(session, args.volumes, lambda n: session.engine.volume_rm(n, force=args.force))


def cmd_volume_inspect(session: _Session, args: argparse.Namespace) -> int:
    """Print volumes as a JSON array."""
    found, errors = [], []
    for name in args.volumes:
        try:
            found.append(session.engine.inspect_volume(name))
        except NotFound as error:
            errors.append(f"Error response from daemon: {error.one_line()}")
    if args.format:
        template = Template(args.format)
        session.out.write("".join(template.render(v) + "\n" for v in found))
    else:
        session.print(_json_text(found, indent=4))
    for line in errors:
        session.error(line)
    return 1 if errors else 0


def cmd_show(session: _Session, args: argparse.Namespace) -> int:
    """Draw a picture of the real state and save it as PNG or SVG; print the file's name."""
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".png", ".svg"):
        raise UsageError(f"{PROG} show", f"cannot save a picture as {args.output}: name the file .png or .svg")
    if args.kind != "layers" and len(args.names) != 1:
        raise UsageError(f"{PROG} show {args.kind}", f"'{args.kind}' draws exactly one container")
    from labkit.viz import layers, lifecycle, network, palette, resources, walls  # matplotlib loads only here

    engine = session.engine
    name = args.names[0]
    if args.kind == "layers":
        fig = layers.picture(engine, *args.names, path=args.path)
    elif args.kind == "lifecycle":
        fig = lifecycle.picture(engine, name, all_statuses=args.all)
    elif args.kind == "walls":
        fig = walls.picture(engine, name)
    elif args.kind == "network":
        fig = network.picture(engine, name)
    else:
        fig = resources.picture(engine, name, seconds=args.seconds)
    palette.save(fig, args.output)
    session.print(args.output)
    return 0


def cmd_server(session: _Session, args: argparse.Namespace) -> int:
    """``labkit server status|stop``: the resident engine the ``labkit`` command hands its work to."""
    from labkit.daemon import client

    directory = client.socket_dir()
    pid = client.running(directory)
    if args.action == "stop":
        client.stop(directory)
        session.print(f"stopped the engine server (pid {pid})" if pid else "no engine server was running")
        return 0
    if pid:
        session.print(f"running (pid {pid}), listening on {os.path.join(directory, client.SOCKET)}")
    else:
        session.print("not running: the next labkit command starts it (LABKIT_NO_SERVER=1 keeps every "
                      "command in its own process)")
    return 0


def cmd_doctor(session: _Session, args: argparse.Namespace) -> int:
    """Say in plain words what this host allows and which backend labkit uses.

    It works even where no backend can run (that is when it is needed most):
    then it says why, runs the host checks directly and exits 1.
    """
    try:
        engine = session.engine
    except HostUnsupported as error:
        from labkit.doctor import checks as host_checks

        session.print(f"backend: none. {error.one_line()}")
        checks, code = list(host_checks()), 1
    else:
        session.print(f"backend: {engine.backend_name} ({engine.backend_reason})")
        checks, code = list(engine.doctor()), 0
    width = max((len(c.get("check", "")) for c in checks), default=0)
    for check in checks:
        mark = "ok " if check.get("ok") else "NO "
        session.print(f"  [{mark}] {check.get('check', ''):<{width}}  {check.get('detail', '')}")
        if check.get("meaning"):
            import textwrap

            indent = " " * (width + 10)
            session.print(textwrap.fill(check["meaning"], 100, initial_indent=indent, subsequent_indent=indent))
    return code


def _label_lines(pairs: Iterable[tuple[str, Any]], indent: str, width: int) -> list[str]:
    return [f"{indent}{label + ':':<{width}}{value}" for label, value in pairs if value not in (None, "")]


def _arch() -> str:
    import platform

    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _labkit_version() -> str:
    try:
        from importlib.metadata import version

        return version("labkit")
    except Exception:  # not installed as a distribution: a source checkout
        import labkit

        return str(getattr(labkit, "__version__", "dev"))


def cmd_version(session: _Session, args: argparse.Namespace) -> int:
    """Print the client's and the engine's versions, laid out like ``docker version``."""
    client = ["Client:"] + _label_lines(
        [
            ("Version", _labkit_version()),
            ("Python version", sys.version.split()[0]),
            ("OS/Arch", f"{sys.platform}/{_arch()}"),
        ],
        " ",
        19,
    )
    # Like Docker, the client half is printed even when the engine cannot answer.
    session.print("\n".join(client))
    session.out.flush()
    server = session.engine.version()
    api = server.get("ApiVersion")
    if api and server.get("MinAPIVersion"):
        api = f"{api} (minimum version {server['MinAPIVersion']})"
    os_arch = f"{server.get('Os', '')}/{server.get('Arch', '')}" if server.get("Os") else ""
    lines = ["", f"Server: {(server.get('Platform') or {}).get('Name') or 'labkit'}", " Engine:"]
    lines += _label_lines(
        [
            ("Version", server.get("Version")),
            ("API version", api),
            ("Backend", f"{session.engine.backend_name} ({session.engine.backend_reason})"),
            ("Kernel version", server.get("KernelVersion")),
            ("OS/Arch", os_arch),
        ],
        "  ",
        18,
    )
    session.print("\n".join(lines))
    return 0


_INFO_LABELS = (
    ("Images", "Images"),
    ("ServerVersion", "Server Version"),
    ("Driver", "Storage Driver"),
    ("CgroupDriver", "Cgroup Driver"),
    ("CgroupVersion", "Cgroup Version"),
    ("KernelVersion", "Kernel Version"),
    ("OperatingSystem", "Operating System"),
    ("OSType", "OSType"),
    ("Architecture", "Architecture"),
    ("NCPU", "CPUs"),
    ("MemTotal", "Total Memory"),
    ("Name", "Name"),
    ("DockerRootDir", "Root Dir"),
)


def cmd_info(session: _Session, args: argparse.Namespace) -> int:
    """Print what the engine knows about itself and the host, like ``docker info``."""
    info = session.engine.info()
    lines = ["Client:", f" Version:    {_labkit_version()}", "", "Server:"]
    lines.append(f" Containers: {info.get('Containers', 0)}")
    for key, label in (
        ("ContainersRunning", "Running"),
        ("ContainersPaused", "Paused"),
        ("ContainersStopped", "Stopped"),
    ):
        lines.append(f"  {label}: {info.get(key, 0)}")
    lines.append(f" Backend: {session.engine.backend_name} ({session.engine.backend_reason})")
    for key, label in _INFO_LABELS:
        if key in info:
            value = humanize.bytes_size(info[key]) if key == "MemTotal" else info[key]
            lines.append(f" {label}: {value}")
    if info.get("SecurityOptions"):  # as docker info prints "name=seccomp,profile=builtin"
        lines.append(" Security Options:")
        for option in info["SecurityOptions"]:
            fields = dict(part.partition("=")[::2] for part in option.split(","))
            lines.append(f"  {fields.pop('name', option)}")
            lines += [f"   {key.capitalize()}: {value}" for key, value in fields.items()]
    session.print("\n".join(lines))
    return 0


# --------------------------------------------------------------------------
# The parser


def _add_create_options(parser: argparse.ArgumentParser, run: bool) -> None:
    """The flags ``run`` and ``create`` share (and ``-d`` for run)."""
    parser.add_argument("--help", action="help", help="show this help and exit")
    if run:
        parser.add_argument("-d", "--detach", action="store_true", help="run in the background and print the id")
    parser.add_argument("-i", "--interactive", action="store_true", help="keep stdin open (with -t)")
    parser.add_argument("-t", "--tty", action="store_true", help="give the container a terminal of its own")
    parser.add_argument("--detach-keys", metavar="KEYS", help="keys that detach from the container (ctrl-p,ctrl-q)")
    parser.add_argument("--name", help="name the container")
    parser.add_argument("--rm", action="store_true", help="remove the container when it exits")
    parser.add_argument("-e", "--env", action="append", default=[], type=_env_arg, metavar="K=V",
                        help="set an environment variable")
    parser.add_argument("--env-file", metavar="FILE", help="read environment variables from a file")
    parser.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[IP:]HOST:CTR[/PROTO]",
        help="publish a container port on the host",
    )
    parser.add_argument("-P", "--publish-all", action="store_true", help="publish every exposed port")
    parser.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]", help="mount a volume")
    parser.add_argument("-w", "--workdir", help="working directory inside the container")
    parser.add_argument("-h", "--hostname", help="the container's hostname")
    parser.add_argument("--entrypoint", help="override the image's ENTRYPOINT")
    parser.add_argument("-m", "--memory", type=_size_arg, metavar="SIZE", help="memory limit, e.g. 64m")
    parser.add_argument("--memory-swap", type=_swap_arg, metavar="SIZE", help="memory plus swap limit (-1: unlimited)")
    parser.add_argument("--pids-limit", type=_int64_arg, metavar="N", help="most processes at once")
    parser.add_argument("--cpus", type=_cpus_arg, metavar="N", help="CPUs the container may use, e.g. 0.5")
    parser.add_argument("--restart", metavar="POLICY", help="no, on-failure[:N], always, unless-stopped")
    parser.add_argument("--network", metavar="NET", help="bridge (default), host, none, or a network you created")
    parser.add_argument("--init", action="store_true", help="run a tiny init as PID 1 that forwards signals")
    parser.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                        help="seccomp=unconfined (no seccomp filter) or seccomp=PROFILE.json")
    parser.add_argument("--stop-signal", metavar="SIG", help="signal that stops the container (default SIGTERM)")
    parser.add_argument("--stop-timeout", type=_int64_arg, metavar="SECONDS", help="seconds to wait before SIGKILL")
    parser.add_argument("-l", "--label", action="append", default=[], type=_label_arg, metavar="K=V",
                        help="set a label")
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")


def build_parser() -> _Parser:
    """The whole ``labkit`` command line."""
    parser = _Parser(
        prog=PROG,
        description="Run real containers and see what the kernel does (Docker's commands, offline).",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "linux", "rootless", "sim"),
        help="which backend runs containers (env LABKIT_BACKEND; default auto)",
    )
    parser.add_argument(
        "--root", metavar="DIR", help="state directory (env LABKIT_ROOT)"
    )
    commands = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, handler: Callable[..., int], help: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, **kwargs)
        sub.set_defaults(handler=handler)
        return sub

    _add_create_options(command("run", cmd_run, "Create and start a container", add_help=False), run=True)
    _add_create_options(command("create", cmd_create, "Create a container", add_help=False), run=False)

    sub = command("start", cmd_start, "Start one or more stopped containers")
    sub.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr and wait")
    sub.add_argument("-i", "--interactive", action="store_true", help="attach stdin (a -t container's terminal)")
    sub.add_argument("--detach-keys", metavar="KEYS", help="keys that detach from the container (ctrl-p,ctrl-q)")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")

    sub = command("attach", cmd_attach, "Attach local standard input, output, and error streams to a running container")
    sub.add_argument("--detach-keys", metavar="KEYS", help="keys that detach from the container (ctrl-p,ctrl-q)")
    sub.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    sub.add_argument("container", metavar="CONTAINER")

    sub = command("stop", cmd_stop, "Stop one or more running containers")
    sub.add_argument("-t", "--time", "--timeout", type=_int64_arg, metavar="SECONDS", help="seconds before SIGKILL")
    sub.add_argument("-s", "--signal", metavar="SIG", help="signal to send first")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")

    sub = command("restart", cmd_restart, "Restart one or more containers")
    sub.add_argument("-t", "--time", "--timeout", type=_int64_arg, metavar="SECONDS", help="seconds before SIGKILL")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")

    sub = command("kill", cmd_kill, "Kill one or more running containers")
    sub.add_argument("-s", "--signal", default="KILL", metavar="SIG", help="signal to send (default KILL)")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")

    for name, handler, text in (
        ("pause", cmd_pause, "Pause all processes within one or more containers"),
        ("unpause", cmd_unpause, "Unpause all processes within one or more containers"),
        ("wait", cmd_wait, "Block until one or more containers stop, then print their exit codes"),
    ):
        command(name, handler, text).add_argument("containers", nargs="+", metavar="CONTAINER")

    sub = command("rm", cmd_rm, "Remove one or more containers")
    sub.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    sub.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too")
    sub.add_argument("containers", nargs="+", metavar="CONTAINER")

    sub = command("ps", cmd_ps, "List containers")
    sub.add_argument("-a", "--all", action="store_true", help="show all containers (default: running only)")
    sub.add_argument("-q", "--quiet", action="store_true", help="only ids")
    sub.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    sub.add_argument("-n", "--last", type=int, metavar="N", help="the N most recently created containers")
    sub.add_argument("-l", "--latest", action="store_true", help="the most recently created container")
    sub.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="name=, status=, id=, label=, ancestor=",
    )
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, e.g. '{{.Names}}' or 'table {{.ID}}'")

    sub = command("inspect", cmd_inspect, "Return low-level information on containers, images or volumes")
    sub.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template, e.g. '{{.State.Status}}'")
    sub.add_argument("--type", choices=("container", "image", "volume", "network"), help="only this kind of object")
    sub.add_argument("names", nargs="+", metavar="NAME")

    command("diff", cmd_diff, "Inspect changes to files on a container's filesystem").add_argument(
        "container", metavar="CONTAINER"
    )

    sub = command("logs", cmd_logs, "Fetch the logs of a container")
    sub.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    sub.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    sub.add_argument("-n", "--tail", type=_tail_arg, default=None, metavar="N", help="only the last N lines")
    sub.add_argument("container", metavar="CONTAINER")

    sub = command("exec", cmd_exec, "Execute a command in a running container")
    sub.add_argument("-e", "--env", action="append", default=[], type=_env_arg, metavar="K=V",
                     help="set an environment variable")
    sub.add_argument("-w", "--workdir", help="working directory inside the container")
    sub.add_argument("-d", "--detach", action="store_true", help="run the command in the background")
    sub.add_argument("-i", "--interactive", action="store_true", help="pass stdin to the command (through a pipe)")
    sub.add_argument("-t", "--tty", action="store_true", help="give the command a terminal of the container's")
    sub.add_argument("--detach-keys", metavar="KEYS", help="keys that detach from the command (ctrl-p,ctrl-q)")
    sub.add_argument("container", metavar="CONTAINER")
    sub.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")

    sub = command("images", cmd_images, "List images")
    sub.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    sub.add_argument("--no-trunc", action="store_true", help="full image ids")
    sub.add_argument("--format", metavar="TEMPLATE", help="Go template, e.g. '{{.Repository}}:{{.Tag}}'")

    sub = command("build", cmd_build, "Build an image from a Labfile")
    sub.add_argument("-t", "--tag", required=True, type=_tag_arg, metavar="NAME:TAG", help="name and tag of the image")
    sub.add_argument("-f", "--file", metavar="FILE", help="the Labfile (default DIR/Labfile or DIR/Dockerfile)")
    sub.add_argument("path", metavar="DIR")

    volume = command("volume", lambda s, a: _usage_for(s, volume), "Manage volumes")
    volumes = volume.add_subparsers(dest="volume_command", metavar="COMMAND", parser_class=_Parser)
    sub = volumes.add_parser("create", help="Create a volume")
    sub.set_defaults(handler=cmd_volume_create)
    sub.add_argument("name", nargs="?", metavar="NAME")
    sub = volumes.add_parser("ls", help="List volumes")
    sub.set_defaults(handler=cmd_volume_ls)
    sub.add_argument("-q", "--quiet", action="store_true", help="only names")
    sub = volumes.add_parser("rm", help="Remove one or more volumes")
    sub.set_defaults(handler=cmd_volume_rm)
    sub.add_argument("-f", "--force", action="store_true", help="remove even if in use")
    sub.add_argument("volumes", nargs="+", metavar="VOLUME")
    sub = volumes.add_parser("inspect", help="Display detailed information on one or more volumes")
    sub.set_defaults(handler=cmd_volume_inspect)
    sub.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template")
    sub.add_argument("volumes", nargs="+", metavar="VOLUME")

    network = command("network", lambda s, a: _usage_for(s, network), "Manage networks")
    networks = network.add_subparsers(dest="network_command", metavar="COMMAND", parser_class=_Parser)
    sub = networks.add_parser("create", help="Create a bridge network (its containers find each other by name)")
    sub.set_defaults(handler=cmd_network_create)
    sub.add_argument("--subnet", metavar="CIDR", help="e.g. 172.30.0.0/16 (default: the next free private /16)")
    sub.add_argument("name", metavar="NAME")
    sub = networks.add_parser("ls", help="List networks")
    sub.set_defaults(handler=cmd_network_ls)
    sub.add_argument("-q", "--quiet", action="store_true", help="only ids")
    sub = networks.add_parser("rm", help="Remove one or more networks")
    sub.set_defaults(handler=cmd_network_rm)
    sub.add_argument("networks", nargs="+", metavar="NETWORK")
    sub = networks.add_parser("prune", help="Take down the bridges no running container uses")
    sub.set_defaults(handler=cmd_network_prune)
    sub = networks.add_parser("inspect", help="Display detailed information on one or more networks")
    sub.set_defaults(handler=cmd_network_inspect)
    sub.add_argument("networks", nargs="+", metavar="NETWORK")

    service = command("service", lambda s, a: _usage_for(s, service), "Manage services (replicas behind one port)")
    services = service.add_subparsers(dest="service_command", metavar="COMMAND", parser_class=_Parser)
    sub = services.add_parser("create", help="Start N replicas of an image behind one load-balanced port")
    sub.set_defaults(handler=cmd_service_create)
    sub.add_argument("--name", required=True, metavar="NAME")
    sub.add_argument("--replicas", type=int, default=1, metavar="N")
    sub.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:]HOSTPORT:CONTAINERPORT",
                     help="published on 127.0.0.1 unless an address is given, so it is not reachable from "
                          "other machines by default")
    sub.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    sub.add_argument("--network", metavar="NET")
    sub.add_argument("image", metavar="IMAGE")
    sub.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    sub = services.add_parser("ls", help="List services")
    sub.set_defaults(handler=cmd_service_ls)
    sub = services.add_parser("scale", help="Change a service's number of replicas: NAME=N")
    sub.set_defaults(handler=cmd_service_scale)
    sub.add_argument("pairs", nargs="+", metavar="NAME=N")
    sub = services.add_parser("rm", help="Remove services and their replicas")
    sub.set_defaults(handler=cmd_service_rm)
    sub.add_argument("services", nargs="+", metavar="SERVICE")

    sub = command("trace", cmd_trace, "Run another labkit command and print each step the kernel took")
    sub.add_argument("inner", nargs=argparse.REMAINDER, metavar="COMMAND", help="e.g. run busybox true")

    command("setup", cmd_setup, "Build the base image and the lesson's images (offline)")
    sub = command("show", cmd_show, "Draw a picture of a container or image and save it (PNG or SVG)")
    sub.add_argument("kind", choices=("layers", "lifecycle", "walls", "resources", "network"), metavar="KIND",
                     help="layers, lifecycle, walls, resources or network")
    sub.add_argument("names", nargs="+", metavar="NAME", help="container(s); for layers also an image")
    sub.add_argument("-o", "--output", required=True, metavar="FILE", help="where to save: FILE.png or FILE.svg")
    sub.add_argument("--path", metavar="PATH", help="layers: mark the layer that serves this path")
    sub.add_argument("--all", action="store_true", help="lifecycle: draw every status, not only the lesson's five")
    sub.add_argument("--seconds", type=float, default=5.0, metavar="S", help="resources: how long to sample")

    command("doctor", cmd_doctor, "Explain what this host allows and which backend labkit will use")
    command("version", cmd_version, "Show the labkit version information")
    sub = command("server", cmd_server, "Show or stop the resident engine that runs labkit commands")
    sub.add_argument("action", choices=("status", "stop"), help="status: is it running; stop: end it")
    command("info", cmd_info, "Display system-wide information")

    from labkit.grading.cli import add_grade_command  # stdlib-only at import: --help stays fast

    add_grade_command(command, _Parser)
    return parser


def _usage_for(session: _Session, parser: argparse.ArgumentParser) -> int:
    """A command group typed without its subcommand: show its help, as ``docker volume`` does (exit 0)."""
    session.print(parser.format_help(), end="")
    return 0


# --------------------------------------------------------------------------
# Errors, in one place


def _help_pointer(command: str | None) -> str:
    """Docker's last line after a ``run``/``create`` error: where the flags are explained."""
    return f"Run '{PROG} {command} --help' for more information"


def _sentence(text: str) -> str:
    """End ``text`` with exactly one full stop."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _os_error_text(error: OSError) -> str:
    """What went wrong in an OSError, and what to try (:func:`_permission_hint` for a refusal)."""
    import errno

    what = error.strerror or str(error)
    if error.filename:
        what = f"{what}: {error.filename}"
    if error.errno in (errno.EPERM, errno.EACCES):
        euid = os.geteuid()
        if euid == 0:
            return f"{what}; {_permission_hint(euid, None)}"
        from labkit.backends import linux_problem

        return f"{what}; {_permission_hint(euid, linux_problem(rootless=True))}"
    return what


def _permission_hint(euid: int, rootless_problem: str | None) -> str:
    """What to try after the kernel refused something, true for who runs labkit and for this host.

    Root was refused by something sudo cannot lift; a user is told of sudo, and of rootless
    containers where this host runs them (``rootless_problem`` is None), else of the simulator alone.
    """
    if euid == 0:
        return "labkit runs as root already, so sudo will not help: 'labkit doctor' shows what this host allows"
    if rootless_problem is None:
        return ("the linux backend needs root: run with sudo; without root this host runs real containers "
                "rootless (labkit --backend rootless), or use --backend sim")
    return "the linux backend needs root: run with sudo, or use --backend sim"


def _describe(error: BaseException, command: str | None) -> tuple[str, int]:
    """The stderr line and exit code for an error, the way Docker words and numbers them."""
    if isinstance(error, TemplateError):
        return error.one_line(), 1
    if isinstance(error, _NotATerminal):
        return error.message, 1
    if isinstance(error, LabkitError):
        # Docker's run reports every failure as its own (exit 125); create only what its client refused
        # (a flag), and the daemon's refusals as any other command does (exit 1).
        if command == "run" or (command == "create" and isinstance(error, InvalidOption)):
            code = error.exit_code if isinstance(error, StartFailed) else 125
            return f"{PROG}: {_sentence(error.one_line())}\n\n{_help_pointer(command)}", code
        if isinstance(error, HostUnsupported):
            return f"{PROG}: {error.one_line()}", 1
        if isinstance(error, BuildFailed):
            return error.one_line(), 1
        code = error.exit_code if (isinstance(error, StartFailed) and command == "exec") else 1
        return f"Error response from daemon: {error.one_line()}", code
    if isinstance(error, OSError):
        line = f"{PROG}: {_os_error_text(error)}"
        return (f"{line}\n\n{_help_pointer(command)}", 125) if command == "run" else (line, 1)
    return f"{PROG}: unexpected error: {type(error).__name__}: {error} (set LABKIT_DEBUG=1 to see where)", 1


def _report(error: BaseException, command: str | None, err: IO[str]) -> int:
    """Print one error and return the exit code (with LABKIT_DEBUG set, the traceback too)."""
    line, code = _describe(error, command)
    if os.environ.get("LABKIT_DEBUG"):
        import traceback

        traceback.print_exception(error, file=err)
    print(line, file=err)
    return code


def _usage_line(error: UsageError) -> str:
    return f"{error.prog}: {_sentence(error.message)} See '{error.prog} --help'."


def main(
    argv: Sequence[str] | None = None,
    engine_factory: EngineFactory | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """Run one ``labkit`` command and return its exit code.

    Args:
        argv: The arguments after ``labkit`` (default: ``sys.argv[1:]``).
        engine_factory: Called as ``engine_factory(backend=..., root=...)`` the
            first time a command needs the engine; default :func:`labkit.connect`.
        stdout: Where output goes (default ``sys.stdout``).
        stderr: Where errors go (default ``sys.stderr``).
        parser: A parser from :func:`build_parser` to reuse (the resident
            server builds it once, see :mod:`labkit.daemon.server`).

    Returns:
        The exit code: 0, the container's code, or Docker's error codes.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = parser or build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args, extra = parser.parse_known_args(argv)
        if extra:
            # Docker names the command whose flag was unknown (125); a stray argument is a count error (1).
            flag = any(word.startswith("-") for word in extra)
            raise UsageError(" ".join(filter(None, (PROG, getattr(args, "verb", None)))),
                             f"{'unknown flag' if flag else 'unexpected argument'}: {' '.join(extra)}",
                             code=125 if flag else 1)
        # From the environment at run time, not when the parser was built (the server reuses one).
        if args.backend is None:
            args.backend = os.environ.get("LABKIT_BACKEND") or "auto"
        if args.root is None:
            args.root = os.environ.get("LABKIT_ROOT") or None
    except UsageError as error:
        print(_usage_line(error), file=err)
        return error.code
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    if not getattr(args, "handler", None):
        parser.print_help(out)
        return 0
    session = _Session(args, engine_factory or _default_engine_factory, out, err)
    try:
        return args.handler(session, args)
    except UsageError as error:
        print(_usage_line(error), file=err)
        return error.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``labkit ps | head``): stop quietly, as a shell tool should.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:  # every failure ends here: one line, never a traceback
        return _report(error, args.verb, err)
