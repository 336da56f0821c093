"""``--restart``: whether a container whose PID 1 ended starts again, and after how long.

Docker's restart manager (moby ``restartmanager/restartmanager.go``) decides when PID 1 ends:

* ``always`` and ``unless-stopped`` restart after any exit, ``on-failure[:N]`` after a non-zero
  one and at most N times (0: no maximum), ``no`` never; none restarts a container that ``stop``
  or ``kill`` ended (the daemon cancels the manager then).
* The delay before the next run starts at 100 ms and doubles on each restart in a row, up to a
  minute; a run that lasted 10 seconds or more starts it over at 100 ms.

Both backends hold to this: the real one's restarter (:mod:`labkit.restarter`, through
:meth:`labkit.engine.Engine.apply_restart_policy`) sleeps the delay on the host's clock, the
simulator (:mod:`labkit.sim.kernel`) waits it on its own.
"""

from __future__ import annotations

#: The first delay (seconds), the factor it grows by, and its ceiling (moby's defaultTimeout,
#: backoffMultiplier and maxRestartTimeout).
FIRST_DELAY = 0.1
BACKOFF = 2
MAX_DELAY = 60.0
#: A run at least this long (seconds) starts the delay over.
RESET_AFTER = 10.0


def should_restart(policy: str, max_retries: int, exit_code: int, restart_count: int,
                   manually_stopped: bool) -> bool:
    """Whether PID 1's end with ``exit_code`` starts it again, ``restart_count`` restarts in.

    Args:
        policy: ``no``, ``always``, ``unless-stopped`` or ``on-failure``.
        max_retries: ``on-failure:N``'s N (0: as many as it takes).
        exit_code: How this run ended.
        restart_count: Restarts the policy made so far (``RestartCount``).
        manually_stopped: ``stop`` or ``kill`` ended it.
    """
    if manually_stopped or policy == "no":
        return False
    if policy == "on-failure":
        return exit_code != 0 and (not max_retries or restart_count < max_retries)
    return policy in ("always", "unless-stopped")


def next_delay(previous: float, ran: float) -> float:
    """The delay before the next run, given the last one (0: none yet) and how long this run lasted (seconds)."""
    if ran >= RESET_AFTER:
        previous = 0.0
    if previous <= 0:
        return FIRST_DELAY
    return min(previous * BACKOFF, MAX_DELAY)
