"""The command line's own errors, and every error's one line and exit code, in one place.

A ``labkit`` command never shows a traceback: :func:`report` turns any error
into one clear line on stderr and Docker's exit code — 125 when ``run``
fails (or ``create`` is given a flag it cannot use), 126/127 when the
container's command cannot be started, 1 for an error "from the daemon"
and for missing arguments, 125 for a flag that cannot be read, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import errno
import os
from typing import IO, Any

from labkit.cli.templates import TemplateError
from labkit.errors import (
    AmbiguousReference,
    BuildFailed,
    Conflict,
    HostUnsupported,
    InvalidConfig,
    InvalidName,
    InvalidOption,
    LabkitError,
    NoSuchContainer,
    NoSuchNetwork,
    NoSuchVolume,
    NotATerminal,
    StartFailed,
    UsageError,
)

#: The errors ``docker run`` shows as ``Error response from daemon: …``: the daemon's refusals.
_DAEMON_SAYS = (Conflict, StartFailed, InvalidName, InvalidConfig, AmbiguousReference, NoSuchContainer, NoSuchVolume,
                NoSuchNetwork)

PROG = "labkit"


class FlagValue(InvalidOption):
    """A flag's value that Docker's client refuses as it reads the flags (``invalid argument "X" for "--dns"
    flag: …``): Docker prints it as it is, then the command's usage synopsis and where its help is."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> Any:  # argparse calls this for every usage error
        # Docker: a missing argument or an unknown command exits 1, a flag it cannot read 125.
        counted = message.startswith(("the following arguments are required", "argument COMMAND:"))
        raise UsageError(self.prog, message, code=1 if counted else 125)


def _help_pointer(command: str | None) -> str:
    """Docker's last line after a ``run``/``create`` error: where the flags are explained."""
    return f"Run '{PROG} {command} --help' for more information"


def _sentence(text: str) -> str:
    """End ``text`` with exactly one full stop."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _os_error_text(error: OSError) -> str:
    """What went wrong in an OSError, and what to try (:func:`_permission_hint` for a refusal)."""
    what = error.strerror or str(error)
    if error.filename:
        what = f"{what}: {error.filename}"
    if error.errno in (errno.EPERM, errno.EACCES):
        euid = os.geteuid()
        if euid == 0:
            return f"{what}; {_permission_hint(euid, None)}"
        from labkit.backends import linux_problem  # the backends load only to word a refusal, never for --help

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


def _run_status(message: str) -> int:
    """``run``'s exit code when the container's command could not start, read from the message as Docker's
    client reads it (docker/cli's ``toStatusError``): 127 not found, 126 not allowed, 125 anything else."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def describe(error: BaseException, command: str | None) -> tuple[str, int]:
    """The stderr line and exit code for an error, the way Docker words and numbers them."""
    if isinstance(error, TemplateError):
        return error.one_line(), 1
    if isinstance(error, NotATerminal):
        return error.message, 1
    if isinstance(error, FlagValue):
        synopsis = f"Usage:  {PROG} {command} [OPTIONS] IMAGE [COMMAND] [ARG...]"
        return f"{_sentence(error.one_line())}\n\n{synopsis}\n\n{_help_pointer(command)}", 125
    if isinstance(error, LabkitError):
        # Docker's run reports every failure as its own (exit 125); create only what its client refused
        # (a flag), and the daemon's refusals as any other command does (exit 1).
        if command == "run" or (command == "create" and isinstance(error, InvalidOption)):
            code = 125
            if isinstance(error, StartFailed):  # the command's own 126/127; another failure read as Docker reads it
                code = error.exit_code if error.exit_code in (126, 127) else _run_status(error.one_line())
            # What the daemon refused (a name in use, a start that failed) Docker's run prints as the daemon's
            # answer; what its client refused (a flag, an image it could not pull) as its own.
            said = "Error response from daemon: " if isinstance(error, _DAEMON_SAYS) else ""
            return f"{PROG}: {said}{_sentence(error.one_line())}\n\n{_help_pointer(command)}", code
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


def report(error: BaseException, command: str | None, err: IO[str]) -> int:
    """Print one error and return the exit code (with LABKIT_DEBUG set, the traceback too)."""
    line, code = describe(error, command)
    if os.environ.get("LABKIT_DEBUG"):
        import traceback  # only with LABKIT_DEBUG: off the path of every error a learner sees

        traceback.print_exception(error, file=err)
    print(line, file=err)
    return code


def usage_line(error: UsageError) -> str:
    return f"{error.prog}: {_sentence(error.message)} See '{error.prog} --help'."
