"""The container lifecycle as one table.

Docker's daemon decides, for each (status, verb) pair, whether the verb is
legal and what status follows; this module holds those decisions as data.
The engine enforces them (:func:`guard`), the lifecycle picture draws them,
and the quizzes ask about them: nothing else in labkit restates a rule.

Two verbs are nobody's to type: the process's own exit, and its restart policy
bringing an exited container back (:data:`BY_ITSELF`). A move may pass through a
status on its way (``rm`` shows ``removing`` until the container is gone). The
engine writes a container's status only from this table (:meth:`Move.to`,
:attr:`Move.through`), never by hand.

Statuses follow ``docker inspect``'s ``State.Status``. ``deleted`` is not a
status Docker shows (a deleted container is simply gone); it is here so the
table and the picture can say where ``rm`` leads.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from labkit.errors import IllegalTransition


class Status(str, enum.Enum):
    """A container's status, as ``State.Status`` shows it."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"
    DELETED = "deleted"

    def __str__(self) -> str:
        return self.value


class Verb(str, enum.Enum):
    """What a user (or the process itself) can do to a container."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"
    KILL = "kill"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    RM = "rm"
    RM_FORCE = "rm -f"
    EXEC = "exec"
    EXIT = "exit"  # the main process ends on its own (or is killed)
    RESTART_POLICY = "restart-policy"  # its --restart policy brings an exited container back

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Move:
    """A legal verb: the container goes to ``to``.

    Attributes:
        to: Where the verb leaves the container.
        through: The status it shows while the verb is under way, if it shows one: ``rm``
            leaves a container ``deleted`` and shows it ``removing`` meanwhile (Docker's
            ``RemovalInProgress``), so a process killed half-way leaves a removal the next
            reader finishes.
    """

    to: Status
    through: Status | None = None


@dataclass(frozen=True)
class Unchanged:
    """A legal verb that changes nothing (Docker answers HTTP 304, the CLI succeeds)."""


@dataclass(frozen=True)
class Refused:
    """An illegal verb and Docker's message for it.

    ``message`` may name ``{id}`` (the full id) and ``{ref}`` (the reference as
    the user typed it).
    """

    message: str
    hint: str = ""
    http_status: int = 409


Outcome = Move | Unchanged | Refused

S, V = Status, Verb

_NOT_RUNNING = Refused("container {id} is not running", "Start it first with 'labkit start {ref}'")
# Docker's router wraps kill's refusal with the reference (moby api/server/router/container, postContainersKill).
_KILL_NOT_RUNNING = Refused("Cannot kill container: {ref}: container {id} is not running",
                            "Start it first with 'labkit start {ref}'")
_NOT_PAUSED = Refused("Container {id} is not paused", "Only a paused container can be unpaused", 500)
_MARKED = Refused("container is marked for removal and cannot be started", "Remove it with 'labkit rm -f {ref}'")
#: ``rm`` (or ``rm -f``) that may go ahead: the container shows ``removing`` until it is gone.
_GONE = Move(S.DELETED, through=S.REMOVING)
_BUSY_RM = Refused(
    'cannot remove container "{ref}": container is {status}: stop the container before removing or force remove',
    "Run 'labkit stop {ref}' first, or 'labkit rm -f {ref}'",
)

#: For every status, what each verb does. Every (status, verb) pair is present.
TRANSITIONS: Mapping[Status, Mapping[Verb, Outcome]] = {
    S.CREATED: {
        V.START: Move(S.RUNNING),
        V.STOP: Unchanged(),
        V.RESTART: Move(S.RUNNING),
        V.KILL: _KILL_NOT_RUNNING,
        V.PAUSE: _NOT_RUNNING,
        V.UNPAUSE: _NOT_PAUSED,
        V.RM: _GONE,
        V.RM_FORCE: _GONE,
        V.EXEC: _NOT_RUNNING,
        V.EXIT: Unchanged(),
        V.RESTART_POLICY: Unchanged(),
    },
    S.RUNNING: {
        V.START: Unchanged(),
        V.STOP: Move(S.EXITED),
        V.RESTART: Move(S.RUNNING),
        V.KILL: Move(S.EXITED),
        V.PAUSE: Move(S.PAUSED),
        V.UNPAUSE: _NOT_PAUSED,
        V.RM: _BUSY_RM,
        V.RM_FORCE: _GONE,
        V.EXEC: Unchanged(),
        V.EXIT: Move(S.EXITED),
        V.RESTART_POLICY: Unchanged(),
    },
    S.PAUSED: {
        V.START: Refused(
            "cannot start a paused container, try unpause instead", "Run 'labkit unpause {ref}'"
        ),
        V.STOP: Move(S.EXITED),
        V.RESTART: Move(S.RUNNING),
        V.KILL: Move(S.EXITED),
        V.PAUSE: Refused("Container {id} is already paused", "Run 'labkit unpause {ref}' to resume it"),
        V.UNPAUSE: Move(S.RUNNING),
        V.RM: Refused(
            'cannot remove container "{ref}": container is paused and must be unpaused first',
            "Run 'labkit unpause {ref}' first, or 'labkit rm -f {ref}'",
        ),
        V.RM_FORCE: _GONE,
        V.EXEC: Refused(
            "Container {ref} is paused, unpause the container before exec", "Run 'labkit unpause {ref}'"
        ),
        V.EXIT: Move(S.EXITED),
        V.RESTART_POLICY: Unchanged(),
    },
    S.RESTARTING: {
        V.START: Unchanged(),
        V.STOP: Move(S.EXITED),
        V.RESTART: Move(S.RUNNING),
        V.KILL: _KILL_NOT_RUNNING,
        V.PAUSE: Refused(
            "Container {id} is restarting, wait until the container is running", "Wait a moment and try again"
        ),
        V.UNPAUSE: _NOT_PAUSED,
        V.RM: _BUSY_RM,
        V.RM_FORCE: _GONE,
        V.EXEC: _NOT_RUNNING,
        V.EXIT: Move(S.EXITED),
        V.RESTART_POLICY: Unchanged(),
    },
    S.EXITED: {
        V.START: Move(S.RUNNING),
        V.STOP: Unchanged(),
        V.RESTART: Move(S.RUNNING),
        V.KILL: _KILL_NOT_RUNNING,
        V.PAUSE: _NOT_RUNNING,
        V.UNPAUSE: _NOT_PAUSED,
        V.RM: _GONE,
        V.RM_FORCE: _GONE,
        V.EXEC: _NOT_RUNNING,
        V.EXIT: Unchanged(),
        V.RESTART_POLICY: Move(S.RESTARTING),
    },
    S.DEAD: {
        V.START: _MARKED,
        V.STOP: Unchanged(),
        V.RESTART: _MARKED,
        V.KILL: _KILL_NOT_RUNNING,
        V.PAUSE: _NOT_RUNNING,
        V.UNPAUSE: _NOT_PAUSED,
        V.RM: _GONE,
        V.RM_FORCE: _GONE,
        V.EXEC: _NOT_RUNNING,
        V.EXIT: Unchanged(),
        V.RESTART_POLICY: Unchanged(),
    },
    S.REMOVING: {
        V.START: _MARKED,
        V.STOP: Unchanged(),
        V.RESTART: _MARKED,
        V.KILL: _KILL_NOT_RUNNING,
        V.PAUSE: _NOT_RUNNING,
        V.UNPAUSE: _NOT_PAUSED,
        V.RM: Refused("removal of container {ref} is already in progress", "Wait for it, or run 'labkit rm -f {ref}'"),
        V.RM_FORCE: _GONE,
        V.EXEC: _NOT_RUNNING,
        V.EXIT: Unchanged(),
        V.RESTART_POLICY: Unchanged(),
    },
}

#: Where ``create`` leaves a container.
INITIAL = S.CREATED

#: Statuses a container can be seen in (``deleted`` means gone).
LIVE_STATUSES = tuple(s for s in Status if s is not S.DELETED)

#: What happens to a container without anyone typing it: its process's exit, and its restart policy.
BY_ITSELF = (V.EXIT, V.RESTART_POLICY)

#: Verbs a user types (the process's own exit and the restart policy are not).
USER_VERBS = tuple(v for v in Verb if v not in BY_ITSELF)


def outcome(status: Status, verb: Verb) -> Outcome:
    """What ``verb`` does to a container in ``status``."""
    return TRANSITIONS[status][verb]


def guard(status: Status, verb: Verb, cid: str, ref: str) -> Outcome:
    """Return the outcome of ``verb`` from ``status``, raising if it is refused.

    Args:
        status: The container's current status.
        verb: What is being asked.
        cid: The container's full id (Docker's messages name it).
        ref: The reference as the user typed it.

    Raises:
        IllegalTransition: With Docker's message, when the table refuses.
    """
    result = outcome(status, verb)
    if isinstance(result, Refused):
        fields = {"id": cid, "ref": ref, "status": status.value}
        raise IllegalTransition(
            result.message.format(**fields),
            status_from=status.value,
            verb=verb.value,
            hint=result.hint.format(**fields),
            http_status=result.http_status,
        )
    return result


def is_running(status: Status) -> bool:
    """Docker's ``State.Running``: true for running, paused and restarting."""
    return status in (S.RUNNING, S.PAUSED, S.RESTARTING)
