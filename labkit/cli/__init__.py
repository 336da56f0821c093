"""``labkit``: the command line, with Docker's verbs, flags and output shapes.

Each command parses its flags, calls one or two :class:`labkit.Engine`
methods and prints what Docker would print — nothing more. A learner can
type ``labkit run -d --name web busybox httpd -f`` and ``labkit ps`` and see
the columns, words and exit codes ``docker`` gives.

The rooms:

* :mod:`.parser` builds the command line from :mod:`.commands` (one module per
  kind of thing: containers, images, volumes, networks, services, the system).
* :mod:`.session` is what each command is handed; :mod:`.errors` turns every
  failure into one line and Docker's exit code (:func:`~labkit.cli.errors.report`).
* :mod:`.formatters` (the tabwriter, ids, ports, ``ps`` and ``images`` rows) and
  :mod:`.templates` (a Go text/template subset for ``--format``) shape the output.

The package imports only the standard library and labkit's errors and pure
model at the top, so that ``labkit --help`` starts fast; the engine is
imported when a command first needs it (:func:`~labkit.cli.session.default_engine_factory`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import IO

from labkit.cli.errors import PROG, UsageError, report, usage_line
from labkit.cli.parser import build_parser
from labkit.cli.session import EngineFactory, Session, default_engine_factory

__all__ = ["PROG", "build_parser", "main"]


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
        print(usage_line(error), file=err)
        return error.code
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    if not getattr(args, "handler", None):
        parser.print_help(out)
        return 0
    session = Session(args, engine_factory or default_engine_factory, out, err, main=main)
    try:
        return args.handler(session, args)
    except UsageError as error:
        print(usage_line(error), file=err)
        return error.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``labkit ps | head``): stop quietly, as a shell tool should.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:  # every failure ends here: one line, never a traceback
        return report(error, args.verb, err)
