"""labkit's errors: one root, Docker's words, and what to try next.

Every error labkit raises on purpose is a :class:`LabkitError`. Each subclass
also derives from the builtin whose meaning it shares, so ``except LookupError``
works as a Python programmer expects::

    LabkitError
    ├── NotFound (LookupError)
    │   ├── NoSuchContainer          No such container: web
    │   ├── NoSuchImage              No such image: nginx:latest
    │   ├── NoSuchVolume             get data: no such volume
    │   ├── NoSuchNetwork            network mynet not found
    │   ├── NoSuchBank               no question bank named … (labkit.grading.banks)
    │   └── Missing                  what a probe looks at is not there (labkit.grading.probes)
    ├── InvalidArgument (ValueError)
    │   ├── InvalidName              Invalid container name (x), only ...
    │   ├── AmbiguousReference       multiple IDs found with provided prefix: 3f
    │   ├── InvalidOption            conflicting options: cannot specify both ...
    │   │   └── FlagValue            invalid argument "x" for "--dns" flag: ... (labkit.cli.errors)
    │   ├── InvalidConfig            invalid mount config for type "bind": bind source path does not exist: /x
    │   │   └── InvalidCapability    invalid CapAdd: unknown capability: "CAP_FOO"
    │   ├── LabfileError             Labfile line 3: unknown instruction ...
    │   ├── Breakout                 '../x' points outside the destination (a tar stream, docker cp)
    │   ├── BadArchive               a tar that is not what load or import reads (labkit.images.extract)
    │   ├── TemplateError            template: ... (--format; labkit.cli.templates)
    │   └── BankError                a question bank that breaks its schema (labkit.grading.banks)
    ├── UsageError (ValueError)      labkit ps: invalid argument "x" for -f/--filter ... (the command
    │                                line could not be read: exit 125 for a flag, 1 for a count)
    ├── NotATerminal (OSError)       the input device is not a TTY (exit 1)
    ├── Conflict (RuntimeError)
    │   ├── NameInUse                Conflict. The container name "/web" is ...
    │   ├── IllegalTransition        container <id> is not running
    │   └── VolumeInUse              remove data: volume is in use - [<id>]
    ├── StartFailed (RuntimeError)   exec: "nope": executable file not found
    ├── BuildFailed (RuntimeError)   The command '/bin/sh -c false' returned ...
    ├── HostUnsupported (OSError)    the linux backend needs root ...
    └── ExperimentFailed             a line of a grading experiment failed (labkit.grading.experiments)

The classes a module name follows are defined there, beside the one thing
that raises them; ``tests/test_errors.py`` holds every subclass of
:class:`LabkitError` in labkit to this drawing. The CLI's exit code for
each is in :func:`labkit.cli.errors.describe`: 125 when ``run`` fails
(``docker run --network mynet`` of a missing network), 1 when any other
command is refused (``docker network rm mynet``), as Docker's client exits.

    LabkitWarning (UserWarning)
    ├── LimitDiscarded               memory limit discarded: no cgroup is ...
    └── NetworkReduced               network bridge: slirp4netns is not ...

Warnings are not errors: the container runs, without what this backend cannot
give it, as Docker's "Limitation discarded" warnings say; ``container.warnings``
keeps them and the CLI prints them as ``WARNING: …`` lines.

``str(error)`` is the message Docker would print (so tests and learners can
compare the two); :attr:`LabkitError.hint` says what to try. The CLI prints
both on one line and exits non-zero; it never shows a traceback.
"""

from __future__ import annotations


class LabkitError(Exception):
    """Root of every error labkit raises on purpose.

    Attributes:
        message: What happened, in Docker's words where Docker has words for it.
        hint: What to try next, for a learner; may be empty.
        status: The HTTP status Docker's API would answer with (404, 409, ...).
    """

    status = 500

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message and the hint as one sentence, for a terminal."""
        if not self.hint:
            return self.message
        return f"{self.message.rstrip('.')}. {self.hint}"


class NotFound(LabkitError, LookupError):
    """A container, image or volume that does not exist was named."""

    status = 404


class NoSuchContainer(NotFound):
    """No container has this id, id prefix or name."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"No such container: {ref}", "Run 'labkit ps -a' to see the containers there are.")
        self.ref = ref


class NoSuchImage(NotFound):
    """No image has this reference (labkit never pulls: images are built locally)."""

    def __init__(self, ref: str) -> None:
        super().__init__(
            f"No such image: {ref}",
            "labkit works offline and never pulls; run 'labkit images' to list images "
            "or 'labkit build -t NAME:TAG DIR' to build one",
        )
        self.ref = ref


class NoSuchVolume(NotFound):
    """No volume has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"get {name}: no such volume", "Run 'labkit volume ls' to list volumes.")
        self.name = name


class NoSuchNetwork(NotFound):
    """No network has this name, id or id prefix."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"network {ref} not found", "Run 'labkit network ls' to list networks")
        self.ref = ref


class InvalidArgument(LabkitError, ValueError):
    """An argument is malformed: a bad name, a bad port, a bad size."""

    status = 400


class InvalidName(InvalidArgument):
    """A container name breaks Docker's rule ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            "Use at least two characters, starting with a letter or digit",
        )
        self.name = name


class AmbiguousReference(InvalidArgument):
    """An id prefix matches more than one container."""

    def __init__(self, ref: str) -> None:
        super().__init__(
            f"multiple IDs found with provided prefix: {ref}", "Type more characters of the id, or use the name"
        )
        self.ref = ref


class InvalidConfig(InvalidArgument):
    """A container's configuration that Docker's daemon refuses when it is created (an unknown capability,
    a bind mount whose source is not there): ``docker run`` prints it as the daemon's answer."""


class InvalidCapability(InvalidConfig):
    """``--cap-add``/``--cap-drop`` names no capability this kernel has; Docker's daemon refuses it
    (``Error response from daemon: invalid CapAdd: …``), not its client."""


class InvalidOption(InvalidArgument):
    """A flag's value that Docker's own client refuses, before it asks the daemon.

    ``docker create -p 1:2:3:4`` exits 125 like ``docker run`` does, while a daemon's refusal
    (a bad name, an unknown network) makes ``create`` exit 1; the CLI tells the two apart by this class.
    """


class LabfileError(InvalidArgument):
    """A Labfile (or Dockerfile) could not be parsed."""


class Breakout(InvalidArgument):
    """An entry of a tar stream would land outside its destination (:mod:`labkit.tars`)."""


class Conflict(LabkitError, RuntimeError):
    """The request clashes with the current state of things."""

    status = 409


class NameInUse(Conflict):
    """Another container already has this name."""

    def __init__(self, name: str, owner: str) -> None:
        super().__init__(
            f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
            "You have to remove (or rename) that container to be able to reuse that name.",
            "",
        )
        self.name = name
        self.owner = owner


class IllegalTransition(Conflict):
    """A verb that the lifecycle table forbids from the container's status.

    Attributes:
        status_from: The container's status when the verb was refused.
        verb: The verb that was refused.
    """

    def __init__(self, message: str, status_from: str, verb: str, hint: str = "", http_status: int = 409) -> None:
        super().__init__(message, hint)
        self.status_from = status_from
        self.verb = verb
        self.status = http_status


class VolumeInUse(Conflict):
    """A volume that a container still mounts cannot be removed."""


class StartFailed(LabkitError, RuntimeError):
    """The container's process could not be started (bad command, bad workdir).

    Attributes:
        exit_code: 127 when the command was not found, 126 when it could not be run.
    """

    def __init__(self, message: str, exit_code: int, hint: str = "") -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


class BuildFailed(LabkitError, RuntimeError):
    """A build step failed."""


class HostUnsupported(LabkitError, OSError):
    """This host cannot do what was asked (no root, no overlayfs, ...)."""


class UsageError(LabkitError, ValueError):
    """A ``labkit`` command line could not be read (argparse's complaint, as one line), as Docker's client refuses one.

    Attributes:
        prog: The command it belongs to (``labkit ps``), which the usage line names.
        code: Docker's exit code for it: 125 for a flag it cannot read (an unknown flag, a
            value of the wrong kind), 1 for missing or extra arguments ("requires at least
            1 argument").
    """

    status = 400

    def __init__(self, prog: str, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.prog = prog
        self.code = code


class NotATerminal(LabkitError, OSError):
    """``-it`` with stdin that is no terminal: Docker's client refuses it in these words, and exits 1."""

    status = 400

    def __init__(self) -> None:
        super().__init__("the input device is not a TTY",
                         "Run it from a terminal, or leave out -t (a pipe feeds a container with -i alone)")


class LabkitWarning(UserWarning):
    """Root of labkit's warnings: something asked for that this backend cannot give; the container runs without it."""


class LimitDiscarded(LabkitWarning):
    """A container was given a limit this backend cannot enforce, and runs without it.

    Rootless without a delegated cgroup nothing enforces memory, pids or CPU
    limits; the simulator counts CPU time but does not ration it. ``inspect``'s
    ``HostConfig`` still shows what was asked; ``Engine.enforced_limits``
    says beforehand which limits hold.
    """


class NetworkReduced(LabkitWarning):
    """A rootless container on the default network gets only ``lo``: no user-mode network stack is installed."""
