"""What every command is handed: the parsed flags, where to print, and the engine, built on first use.

Also the few steps several commands share: applying a verb to each name given
(:func:`each`), streaming a container's output (:func:`stream_logs`), the exit
code of a command attached to a container's terminal (:func:`detached`), and
showing a command group's help (:func:`usage_for`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any, Literal

import labkit
from labkit.cli.errors import describe
from labkit.cli.templates import Template, TemplateError, json_text
from labkit.errors import LabkitError, NotFound

#: Builds an engine from the global options; tests pass their own.
EngineFactory = Callable[..., Any]
#: ``command(name, handler, help, **kwargs)``: adds a command to the ``labkit`` parser and returns its parser
#: (each module of :mod:`labkit.cli.commands` registers its commands through it).
Command = Callable[..., argparse.ArgumentParser]


class Session:
    """What a command needs: where to print, and the engine (built on first use).

    ``main`` is :func:`labkit.cli.main`, for the one command that runs another (``labkit trace``).
    """

    def __init__(self, args: argparse.Namespace, factory: EngineFactory, out: IO[str], err: IO[str],
                 main: Callable[..., int]) -> None:
        self.args = args
        self.main = main
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


def default_engine_factory(backend: str = "auto", root: str | None = None) -> Any:
    """Connect to the real engine (``labkit.connect`` loads the engine on first use: ``--help`` never does)."""
    return labkit.connect(backend=backend, root=root)


def each(session: Session, refs: Sequence[str], action: Callable[[str], Any], echo: bool = True) -> int:
    """Apply ``action`` to each reference; echo it as typed, report failures, go on."""
    failed = []
    for ref in refs:
        try:
            result = action(ref)
        except (LabkitError, OSError) as error:
            line, _ = describe(error, session.args.verb)
            session.error(line)
            failed.append(ref)
            continue
        session.print(ref if echo else result)
    return 1 if failed else 0


def stream_logs(session: Session, entries: Iterable[tuple[str, Any, str]], timestamps: bool = False) -> None:
    """Write log entries to stdout or stderr as they arrive."""
    for stream, text, stamp in entries:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        target = session.err if stream == "stderr" else session.out
        target.write(f"{stamp} {text}" if timestamps else text)
        target.flush()


def detached(session: Session, code: int | None, said: bool = True, escaped: int = 1) -> int:
    """The exit code of an attached command: the container's, or when the caller typed the detach keys
    what Docker's client does then: ``attach`` and ``exec -it`` say ``read escape sequence`` and exit 1,
    ``start -ai`` ends silently with 0 (``said=False, escaped=0``), as tests/parity shows beside dockerd."""
    if code is None:
        if said:
            session.error("read escape sequence")
        return escaped
    return code


def fileno(stream: IO[str]) -> int:
    """The descriptor under a text stream (the caller's terminal, in-process or handed to the engine)."""
    stream.flush()
    return stream.fileno()


def usage_for(session: Session, parser: argparse.ArgumentParser) -> int:
    """A command group typed without its subcommand: show its help on stderr with exit 0, as ``docker volume``
    does (docker/cli's ShowHelp writes to the command's error stream)."""
    session.err.write(parser.format_help())
    return 0


def parsed_template(session: Session, text: str | None) -> Template | None | Literal[False]:
    """A ``--format``/``-f`` template parsed (None without one); False after printing why it does not
    parse, which Docker's inspect, version and info answer with exit 64 (sysexits' EX_USAGE)."""
    if not text:
        return None
    try:
        return Template(text)
    except TemplateError as error:
        session.error(error.one_line())
        return False


def print_inspected(session: Session, refs: Sequence[str], inspect: Callable[[str], Any], text: str | None) -> int:
    """``network inspect``/``volume inspect``: the objects as a JSON array, or each through ``-f``; a missing
    one is named on stderr after them (exit 1), and a template that does not parse exits 64."""
    template = parsed_template(session, text)
    if template is False:
        return 64  # Docker's inspect exits 64 (sysexits' EX_USAGE) when its template does not parse
    found, errors = [], []
    for ref in refs:
        try:
            found.append(inspect(ref))
        except NotFound as error:
            errors.append(f"Error response from daemon: {error.one_line()}")
    if template is not None:
        session.out.write("".join(template.render(item) + "\n" for item in found))
    else:
        session.print(json_text(found, indent=4))
    for line in errors:
        session.error(line)
    return 1 if errors else 0
