"""What the simulated restart policy did, told to the engine.

The world applies ``--restart`` itself, on its own clock: when PID 1 ends, a
restarter process of the simulated host sleeps the policy's delay
(:func:`labkit.sim.process.cancel_restart` ends it early) and starts PID 1 again
(:func:`labkit.sim.programs.relaunch`), as the real backend's supervisor execs
its restarter. The engine's record learns of it when it next looks:
:func:`observed` compares the run the record holds with the world's.
"""

from __future__ import annotations

from labkit.model.container import ContainerRecord
from labkit.model.lifecycle import Status
from labkit.model.runtime import Exited, Launched, Restarted
from labkit.sim.kernel import SimContainer, World


def launched(world: World, ct: SimContainer) -> Launched | None:
    """The run under way, as the start that made it reported it (None: PID 1 is not running)."""
    pid1 = world.procs.get(ct.pid1) if ct.pid1 else None
    if pid1 is None:
        return None
    return Launched(pid1.hpid, int(pid1.started * 100), 0, world.rfc3339(pid1.started))


def observed(world: World, ct: SimContainer, record: ContainerRecord) -> Exited | Restarted | None:
    """:meth:`labkit.backend.Backend.observe` of a container the world holds.

    ``None`` while the record's run goes on (or, for a ``restarting`` record, while the same delay
    is waited out); :class:`Exited` when its run ended and the policy did nothing; otherwise
    :class:`Restarted`, with the policy's state now.
    """
    run = launched(world, ct)
    policy_moved = ct.restart_count != record.state.restart_count
    if record.status is Status.RESTARTING:
        if ct.restarter and not policy_moved:
            return None
    elif run is not None and run.pid == record.state.pid and not policy_moved:
        return None
    code, finished, oom = ct.ended if ct.ended is not None else (255, world.rfc3339(), False)
    ended = Exited(code, finished, oom)
    if record.status is not Status.RESTARTING and run is None and not ct.restarter and not policy_moved:
        return ended
    return Restarted(ended, world.rfc3339(ct.run_started), ct.restart_count, run,
                     waiting=bool(ct.restarter) and run is None)
