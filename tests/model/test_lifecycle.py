"""The lifecycle table: every (status, verb) pair, and Docker's words for the refusals."""

from __future__ import annotations

import pytest

from labkit.errors import IllegalTransition
from labkit.model.lifecycle import (
    BY_ITSELF,
    LIVE_STATUSES,
    TRANSITIONS,
    USER_VERBS,
    Move,
    Refused,
    Status,
    Unchanged,
    Verb,
    guard,
    is_running,
)

CID = "a" * 64
S, V = Status, Verb

# What Docker does for each pair (SEMANTICS.md, section A), written out independently of the table.
EXPECTED = {
    (S.CREATED, V.START): S.RUNNING,
    (S.CREATED, V.STOP): None,
    (S.CREATED, V.RESTART): S.RUNNING,
    (S.CREATED, V.KILL): f"Cannot kill container: web: container {CID} is not running",
    (S.CREATED, V.PAUSE): f"container {CID} is not running",
    (S.CREATED, V.UNPAUSE): f"Container {CID} is not paused",
    (S.CREATED, V.RM): S.DELETED,
    (S.CREATED, V.RM_FORCE): S.DELETED,
    (S.CREATED, V.EXEC): f"container {CID} is not running",
    (S.RUNNING, V.START): None,
    (S.RUNNING, V.STOP): S.EXITED,
    (S.RUNNING, V.RESTART): S.RUNNING,
    (S.RUNNING, V.KILL): S.EXITED,
    (S.RUNNING, V.PAUSE): S.PAUSED,
    (S.RUNNING, V.UNPAUSE): f"Container {CID} is not paused",
    (S.RUNNING, V.RM): 'cannot remove container "web": container is running: stop the container before removing or force remove',
    (S.RUNNING, V.RM_FORCE): S.DELETED,
    (S.RUNNING, V.EXEC): None,
    (S.PAUSED, V.START): "cannot start a paused container, try unpause instead",
    (S.PAUSED, V.STOP): S.EXITED,
    (S.PAUSED, V.RESTART): S.RUNNING,
    (S.PAUSED, V.KILL): S.EXITED,
    (S.PAUSED, V.PAUSE): f"Container {CID} is already paused",
    (S.PAUSED, V.UNPAUSE): S.RUNNING,
    (S.PAUSED, V.RM): 'cannot remove container "web": container is paused and must be unpaused first',
    (S.PAUSED, V.RM_FORCE): S.DELETED,
    (S.PAUSED, V.EXEC): "Container web is paused, unpause the container before exec",
    (S.RESTARTING, V.START): None,
    (S.RESTARTING, V.STOP): S.EXITED,
    (S.RESTARTING, V.RESTART): S.RUNNING,
    (S.RESTARTING, V.KILL): f"Cannot kill container: web: container {CID} is not running",
    (S.RESTARTING, V.PAUSE): f"Container {CID} is restarting, wait until the container is running",
    (S.RESTARTING, V.UNPAUSE): f"Container {CID} is not paused",
    (S.RESTARTING, V.RM): 'cannot remove container "web": container is restarting: stop the container before removing or force remove',
    (S.RESTARTING, V.RM_FORCE): S.DELETED,
    (S.RESTARTING, V.EXEC): f"container {CID} is not running",
    (S.EXITED, V.START): S.RUNNING,
    (S.EXITED, V.STOP): None,
    (S.EXITED, V.RESTART): S.RUNNING,
    (S.EXITED, V.KILL): f"Cannot kill container: web: container {CID} is not running",
    (S.EXITED, V.PAUSE): f"container {CID} is not running",
    (S.EXITED, V.UNPAUSE): f"Container {CID} is not paused",
    (S.EXITED, V.RM): S.DELETED,
    (S.EXITED, V.RM_FORCE): S.DELETED,
    (S.EXITED, V.EXEC): f"container {CID} is not running",
    (S.DEAD, V.START): "container is marked for removal and cannot be started",
    (S.DEAD, V.STOP): None,
    (S.DEAD, V.RESTART): "container is marked for removal and cannot be started",
    (S.DEAD, V.KILL): f"Cannot kill container: web: container {CID} is not running",
    (S.DEAD, V.PAUSE): f"container {CID} is not running",
    (S.DEAD, V.UNPAUSE): f"Container {CID} is not paused",
    (S.DEAD, V.RM): S.DELETED,
    (S.DEAD, V.RM_FORCE): S.DELETED,
    (S.DEAD, V.EXEC): f"container {CID} is not running",
    (S.REMOVING, V.START): "container is marked for removal and cannot be started",
    (S.REMOVING, V.STOP): None,
    (S.REMOVING, V.RESTART): "container is marked for removal and cannot be started",
    (S.REMOVING, V.KILL): f"Cannot kill container: web: container {CID} is not running",
    (S.REMOVING, V.PAUSE): f"container {CID} is not running",
    (S.REMOVING, V.UNPAUSE): f"Container {CID} is not paused",
    (S.REMOVING, V.RM): "removal of container web is already in progress",
    (S.REMOVING, V.RM_FORCE): S.DELETED,
    (S.REMOVING, V.EXEC): f"container {CID} is not running",
}


def test_table_is_complete():
    """Every live status has an outcome for every verb (the process's own exit included)."""
    for status in LIVE_STATUSES:
        assert set(TRANSITIONS[status]) == set(Verb), status


@pytest.mark.parametrize("pair", sorted(EXPECTED, key=str), ids=lambda p: f"{p[0].value}-{p[1].value}")
def test_each_pair_matches_docker(pair):
    """Each (status, user verb) pair is legal, a no-op, or refused with Docker's exact message."""
    status, verb = pair
    want = EXPECTED[pair]
    if isinstance(want, Status):
        result = guard(status, verb, CID, "web")
        assert isinstance(result, Move) and result.to == want
    elif isinstance(want, str):
        with pytest.raises(IllegalTransition) as info:
            guard(status, verb, CID, "web")
        assert str(info.value) == want
        assert info.value.status_from == status.value and info.value.verb == verb.value
        assert info.value.hint, "every refusal says what to try"
    else:
        assert isinstance(guard(status, verb, CID, "web"), Unchanged)


def test_every_user_pair_is_covered():
    """The expectations above cover every (live status, user verb) pair."""
    assert {(s, v) for s in LIVE_STATUSES for v in USER_VERBS} == set(EXPECTED)
    assert set(USER_VERBS) | set(BY_ITSELF) == set(Verb) and not set(USER_VERBS) & set(BY_ITSELF)


def test_unpause_refusal_is_a_500():
    """Docker answers an unpause of a container that is not paused with HTTP 500, not 409."""
    with pytest.raises(IllegalTransition) as info:
        guard(S.RUNNING, V.UNPAUSE, CID, "web")
    assert info.value.status == 500


def test_process_exit_ends_running_states():
    """When PID 1 ends, running, paused and restarting containers become exited."""
    for status in (S.RUNNING, S.PAUSED, S.RESTARTING):
        assert TRANSITIONS[status][V.EXIT] == Move(S.EXITED)


def test_the_restart_policy_brings_back_only_an_exited_container():
    """The restart policy moves an exited container to restarting and changes nothing in any other status."""
    for status in LIVE_STATUSES:
        want = Move(S.RESTARTING) if status is S.EXITED else Unchanged()
        assert TRANSITIONS[status][V.RESTART_POLICY] == want, status


def test_a_removal_shows_removing_on_its_way():
    """Every rm and rm -f that may go ahead leads to deleted through removing (Docker's RemovalInProgress)."""
    for status in LIVE_STATUSES:
        for verb in (V.RM, V.RM_FORCE):
            outcome = TRANSITIONS[status][verb]
            if isinstance(outcome, Move):
                assert (outcome.to, outcome.through) == (S.DELETED, S.REMOVING), (status, verb)
    others = [o for row in TRANSITIONS.values() for v, o in row.items()
              if isinstance(o, Move) and o.through is not None and v not in (V.RM, V.RM_FORCE)]
    assert others == []


def test_running_flag_matches_docker():
    """State.Running is true for running, paused and restarting, and only those."""
    assert {s for s in LIVE_STATUSES if is_running(s)} == {S.RUNNING, S.PAUSED, S.RESTARTING}


def test_refusals_are_typed():
    """Each refused pair holds a Refused with a message (never a bare string)."""
    for status in LIVE_STATUSES:
        for outcome in TRANSITIONS[status].values():
            assert isinstance(outcome, (Move, Unchanged, Refused))
