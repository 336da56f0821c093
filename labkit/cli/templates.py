"""A Go text/template subset for ``--format`` and ``inspect -f``, and Go's way of printing values.

What people type after ``--format`` and ``-f`` works as in Docker:
``{{.State.Status}}``, ``{{json .Config.Env}}``,
``{{range .Config.Env}}{{println .}}{{end}}``, ``table {{.ID}}\\t{{.Names}}``.
Values print as Go prints them (:func:`go_string`: ``true``, ``<nil>``,
``[a b]``, ``map[k:v]``) and JSON as Go's encoder writes it (:func:`json_text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labkit.errors import InvalidArgument


class TemplateError(InvalidArgument):
    """A ``--format`` / ``-f`` template could not be parsed or run."""


def json_text(value: Any, indent: int | None = None, escape_html: bool = True) -> str:
    """JSON as Go's encoder writes it: U+2028/2029 escaped, and HTML characters too unless
    ``escape_html`` is false (the docker CLI's ``json`` template function calls
    ``SetEscapeHTML(false)``: ``{{json .Config.Cmd}}`` shows ``>>`` and ``&&`` as they are)."""
    if indent is None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(value, ensure_ascii=False, indent=indent)
    pairs = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")) if escape_html else ()
    for raw, escaped in (*pairs, ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: double quotes, with ``"`` and ``\\`` and control characters escaped,
    everything printable as it is (``ps``'s COMMAND: ``"sh -c 'a >> b && c'"``)."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable() and code < 0x10000:
            out.append(f"\\u{code:04x}")
        elif not ch.isprintable():
            out.append(f"\\U{code:08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _go_float(value: float) -> str:
    """A float as Go's ``%v`` writes it: shortest digits, exponent from 1e+06."""
    from decimal import Decimal  # decimal is heavy and only a float in a template needs it

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
        return "map[" + " ".join(f"{k}:{_member(k, value[k], value)}" for k in sorted(value)) + "]"
    return str(value)


#: Maps whose values are Go's ``struct{}`` in Docker's types (``map[nat.Port]struct{}``): a value prints ``{}``.
_SETS = ("ExposedPorts", "Volumes")


def _member(key: Any, item: Any, owner: Mapping[str, Any]) -> str:
    return "{}" if isinstance(owner, _Set) and item == {} else go_string(_as_set(key, item))


class _Set(dict):  # type: ignore[type-arg]
    """A JSON object that is a set in Docker's Go types (``ExposedPorts``, ``Volumes``)."""


class _MountPoint(dict):  # type: ignore[type-arg]
    """An entry of inspect's ``Mounts``: Docker's Go type (``MountPoint``) has every field, so a template reads
    one its JSON leaves out when empty (``Name`` and ``Driver`` of a bind or tmpfs mount) as the zero value."""

    ZERO = {"Type": "", "Name": "", "Source": "", "Destination": "", "Driver": "", "Mode": "", "RW": False,
            "Propagation": ""}


def _as_set(key: Any, value: Any) -> Any:
    if key == "Mounts" and isinstance(value, list):  # inspect's MountPoints; HostConfig.Mounts' have a Target
        return [_MountPoint(v) if isinstance(v, Mapping) and "Destination" in v else v for v in value]
    return _Set(value) if key in _SETS and isinstance(value, Mapping) and not isinstance(value, _Set) else value


def _truthy(value: Any) -> bool:
    """Go template truth: false, 0, nil and empty things are false."""
    return bool(value)


#: How docker's client words a field a ps or images template lacks: its prefix, and the Go type of the dot.
_CONTEXTS = {"container": ("failed to execute template", "*formatter.ContainerContext"),
             "image": ("template parsing error", "*formatter.imageContext")}


class Fields(dict):  # type: ignore[type-arg]
    """The dot of a ``ps``/``images`` template: named fields, not a JSON map."""

    kind = "container"


_MISSING = object()

_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.S)


_WORD = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|[^\s]+')

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": lambda v: json_text(v, escape_html=False),
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

    def _where(self, path: str) -> str:
        """``line:column`` of ``path`` in the template, as Go's ErrorContext counts (column from 0)."""
        at = max(self.source.find(path), 0)
        return f"{self.source.count(chr(10), 0, at) + 1}:{at - (self.source.rfind(chr(10), 0, at) + 1)}"

    def _field(self, value: Any, path: str) -> Any:
        for name in [part for part in path.split(".") if part]:
            if isinstance(value, Fields):
                if name not in value:
                    context = _CONTEXTS.get(value.kind)
                    if context is None:
                        raise TemplateError(
                            f'template: executing "{self.source}" at <{path}>: '
                            f"can't evaluate field {name} in type {value.kind}"
                        )
                    # docker's formatter, in Go's words: where the field stands (line:column) and its type
                    raise TemplateError(f"{context[0]}: template: :{self._where(path)}: executing "
                                        f'"" at <{path}>: can\'t evaluate field {name} in type {context[1]}')
                value = value[name]
            elif isinstance(value, _MountPoint) and name not in value and name in _MountPoint.ZERO:
                value = _MountPoint.ZERO[name]
            elif isinstance(value, Mapping):
                if name not in value:
                    raise TemplateError(
                        f'template: executing "{self.source}" at <{path}>: map has no entry for key "{name}"'
                    )
                value = _as_set(name, value[name])
            elif value is None:
                raise TemplateError(f'template: executing "{self.source}" at <{path}>: nil pointer evaluating {name}')
            else:
                raise TemplateError(
                    f'template: executing "{self.source}" at <{path}>: '
                    f"can't evaluate field {name} in type {type(value).__name__}"
                )
        return value
