"""A container's lifecycle verbs: start, stop, kill, restart, pause, unpause, rm, wait, and the restart policy.

Each verb moves a container along the lifecycle table (:mod:`labkit.model.lifecycle`)
in one short sequence — load, guard, the backend's side effect, transition, save —
so a reader can follow what ``docker stop`` really does::

    rec = self.engine._get(ref)                   # load (and notice a PID 1 that has exited)
    guard(rec.status, Verb.STOP, rec.id, ref)     # Docker's error if the table refuses
    self.engine.backend.signal(rec, SIGTERM)      # the kernel does the work
    ...wait, then SIGKILL...
    self.engine._save(...)                        # the new state, atomically on disk

:class:`~labkit.engine.containers.ContainerCollection` has them from
:class:`ContainerLifecycle`; making a container, and talking to and looking at one,
are its own.
"""

from __future__ import annotations

import signal as _signal
import socket
import time

from labkit.engine.collection import Collection, verb
from labkit.engine.options import anonymous, signal_number
from labkit.errors import NoSuchContainer, StartFailed
from labkit.model import restarts
from labkit.model.container import ZERO_TIME, ContainerRecord, now_rfc3339, parse_time
from labkit.model.lifecycle import Status, Unchanged, Verb, guard, is_running
from labkit.model.runtime import Restarted


class ContainerLifecycle(Collection):
    """``start``, ``stop``, ``kill``, ``restart``, ``pause``, ``unpause``, ``rm`` and ``wait`` of
    ``lab.containers``, and the restart policy their supervisor applies."""

    @verb("start")
    def start(self, ref: str, stdin: int | None = None) -> None:
        """``docker start``: run PID 1 again on the same writable layer (files survive).

        ``stdin``: for a container made with ``open_stdin`` (``-i``) and no terminal, a descriptor whose bytes
        become PID 1's input until its end (``run -i``, ``start -ai``); without one, PID 1's stdin is a pipe
        nobody writes and labkit keeps open, as Docker keeps an ``-i`` container's.
        """
        rec = self.engine._get(ref)
        if isinstance(guard(rec.status, Verb.START, rec.id, ref), Unchanged):
            return
        self._launch(rec.with_state(manually_stopped=False), stdin=stdin)

    def _launch(self, rec: ContainerRecord, verb: Verb = Verb.START,
                console: socket.socket | None = None, stdin: int | None = None) -> ContainerRecord:
        """Run PID 1 of ``rec`` as ``verb`` does (``start``, or ``restart`` from a stop or a restart policy)."""
        with self.engine.store.intent(rec.id, "start"):  # a start killed half-way is undone by the next reader
            return self._launch_held(rec, verb, console, stdin)

    def _launch_held(self, rec: ContainerRecord, verb: Verb, console: socket.socket | None,
                     stdin: int | None = None) -> ContainerRecord:
        img = self.engine.images.of(rec)
        running = self.engine._moved(rec, verb)  # the table's status once PID 1 runs, refused before anything is made
        backend = self.engine.backend
        try:
            if stdin is not None and rec.config.open_stdin and not rec.config.tty:
                launched = backend.start(rec, img, stdin=stdin)
            else:
                launched = backend.start(rec, img, console) if console is not None else backend.start(rec, img)
        except StartFailed as err:
            # PID 1 never ran: the table's exit leaves a container whose first start failed created, else exited.
            first = rec.state.started_at == ZERO_TIME
            self.engine._save(self.engine._moved(
                rec, Verb.EXIT,
                exit_code=err.exit_code,
                error=err.message,
                pid=0,
                finished_at=rec.state.finished_at if first else now_rfc3339(),
            ))
            raise
        rec = running.with_state(
            pid=launched.pid,
            pid_start_time=launched.pid_start_time,
            shim_pid=launched.shim_pid,
            exit_code=0,
            error="",
            oom_killed=False,
            started_at=launched.started_at,
            starts=rec.state.starts + 1,
        )
        if not self.engine._save(rec):  # removed while it was starting (rm -f of a restarting container)
            self.engine.backend.signal(rec, _signal.SIGKILL)
            self.engine.backend.wait(rec, 10)
            self.engine.backend.remove(rec)
            raise NoSuchContainer(rec.id)
        self.engine._note(rec, "start")
        if verb is Verb.RESTART:
            self.engine._note(rec, "restart")
        return rec

    @verb("stop")
    def stop(self, ref: str, timeout: float | None = None, signal: str | int | None = None) -> None:
        """``docker stop``: the stop signal (SIGTERM), ``timeout`` seconds (10), then SIGKILL.

        PID 1 ignores signals it has no handler for, so a plain ``sleep`` takes
        the full timeout and ends with 137; one that handles SIGTERM ends with 143 (or its own code).
        """
        rec = self.engine._get(ref)
        sig = signal_number(signal or rec.config.stop_signal)
        if isinstance(guard(rec.status, Verb.STOP, rec.id, ref), Unchanged):
            return
        rec = rec.with_state(manually_stopped=True)  # the restart policy must not bring it back
        self.engine._save(rec)
        if rec.status is Status.RESTARTING:  # between two runs: nothing to signal, no run to start
            self.engine.backend.cancel_restart(rec)
            self.engine._save(self.engine._moved(rec, Verb.STOP))
            return
        if timeout is None:
            timeout = rec.config.stop_timeout if rec.config.stop_timeout is not None else 10
        self.engine._note(rec, "kill", signal=str(sig))
        self.engine.backend.signal(rec, sig)
        if rec.status is Status.PAUSED:
            self.engine.backend.unpause(rec)  # Docker resumes a paused container right after the signal
        if not self.engine.backend.wait(rec, None if timeout < 0 else timeout):
            self.engine._note(rec, "kill", signal=str(int(_signal.SIGKILL)))
            self.engine.backend.signal(rec, _signal.SIGKILL)
            self.engine.backend.wait(rec, None)
        self.engine._reload(rec)
        self.engine._note(rec, "stop")

    @verb("kill")
    def kill(self, ref: str, signal: str | int = "KILL") -> None:
        """``docker kill``: deliver a signal (SIGKILL by default, then wait for the exit)."""
        rec = self.engine._get(ref)
        sig = signal_number(signal)
        guard(rec.status, Verb.KILL, rec.id, ref)
        rec = rec.with_state(manually_stopped=True)
        self.engine._save(rec)
        self.engine._note(rec, "kill", signal=str(sig))
        self.engine.backend.signal(rec, sig)
        if sig == _signal.SIGKILL:
            if rec.status is Status.PAUSED:
                self.engine.backend.unpause(rec)  # a frozen task dies only once thawed (v1 freezer)
            self.engine.backend.wait(rec, 10)
        self.engine._reload(rec)

    @verb("restart")
    def restart(self, ref: str, timeout: float | None = None) -> None:
        """``docker restart``: stop (if running), then start."""
        rec = self.engine._get(ref)
        guard(rec.status, Verb.RESTART, rec.id, ref)
        if is_running(rec.status):
            self.stop(rec.id, timeout=timeout)
        self._launch(self.engine._get(rec.id).with_state(manually_stopped=False), Verb.RESTART)

    @verb("pause")
    def pause(self, ref: str) -> None:
        """``docker pause``: freeze every process through the cgroup freezer."""
        rec = self.engine._get(ref)
        guard(rec.status, Verb.PAUSE, rec.id, ref)
        with self.engine.store.intent(rec.id, "pause"):  # killed between the freeze and the save: see _recover
            self.engine.backend.pause(rec)
            self.engine._save(self.engine._moved(rec, Verb.PAUSE))
        self.engine._note(rec, "pause")

    @verb("unpause")
    def unpause(self, ref: str) -> None:
        """``docker unpause``: thaw them."""
        rec = self.engine._get(ref)
        guard(rec.status, Verb.UNPAUSE, rec.id, ref)
        with self.engine.store.intent(rec.id, "unpause"):
            self.engine.backend.unpause(rec)
            self.engine._save(self.engine._moved(rec, Verb.UNPAUSE))
        self.engine._note(rec, "unpause")

    @verb("rm")
    def rm(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """``docker rm``: delete the container and its writable layer (``force`` kills it first)."""
        rec = self.engine._get(ref)
        verb = Verb.RM_FORCE if force else Verb.RM
        guard(rec.status, verb, rec.id, ref)
        self._remove(rec, verb, volumes)

    def _remove(self, rec: ContainerRecord, verb: Verb, volumes: bool = False) -> None:
        """Remove ``rec`` as ``verb`` (``rm`` or ``rm -f``) does, the table allowing it; marked ``removing`` first
        if it runs."""
        with self.engine.store.intent(rec.id, "rm"):  # a removal killed half-way is finished by the next reader
            if is_running(rec.status):
                # Shown as removing while its processes are killed. A container that has ended goes in a
                # moment, and its held ``rm`` intent already says a removal is under way (Engine._recover
                # finishes one a killed process left): its record is not rewritten only to be deleted.
                self.engine._save(self.engine._moved(rec, verb, under_way=True))
            if is_running(rec.status) or rec.status is Status.REMOVING:
                try:  # marked stopped by hand, so that no restart policy brings it back meanwhile
                    self.engine.backend.signal(rec.with_state(manually_stopped=True), _signal.SIGKILL)
                    if rec.status is Status.PAUSED:
                        self.engine.backend.unpause(rec)
                except ProcessLookupError:
                    pass
                self.engine.backend.wait(rec, 10)
                ended = self.engine.backend.observe(rec)
                if isinstance(ended, Restarted):
                    ended = ended.ended
                if ended is not None and rec.status is not Status.REMOVING:
                    self.engine._record_end(rec, ended)
            self.engine.backend.remove(rec)
            with self.engine.store.locked():
                self.engine.store.delete(rec.id)  # its name is free from now on (Store.names)
            self.engine._note(rec, "destroy")
        self.engine.networks.left_bridge(rec)
        self.engine.images.release_held()
        if volumes:
            for m in rec.config.mounts:
                if m.type == "volume" and anonymous(m.source):
                    self.engine.volumes.delete(m.source)

    @verb("wait")
    def wait(self, ref: str, timeout: float | None = None) -> int:
        """``docker wait``: block until PID 1 ends; return its exit code."""
        rec = self.engine._get(ref)
        if is_running(rec.status):
            backend, began = self.engine.backend, time.monotonic()
            # The exit is recorded as soon as the backend can tell it, while PID 1's supervisor still undoes the
            # run (mounts, groups); then that is waited for too, so that what the caller looks at next is undone.
            backend.wait_recorded(rec, timeout)
            ended = self.engine._reload(rec)
            if not is_running(ended.status) and rec.config.restart_policy == "no":
                backend.wait(rec, None if timeout is None else max(0.0, timeout - (time.monotonic() - began)))
            rec = ended
        return rec.state.exit_code

    def apply_restart_policy(self, cid: str) -> bool:
        """Called when PID 1 has ended (by its supervisor): start it again if ``--restart`` says so.

        As Docker: ``always`` and ``unless-stopped`` restart after any exit, ``on-failure[:N]``
        after a non-zero one (at most N times); never after ``stop``/``kill``. The delay doubles
        from 100 ms on each restart in a row and starts over once a run has lasted 10 seconds.
        Returns whether it restarted the container.
        """
        with self.engine._doing("restart-policy"), self.engine.store.intent(cid, "restart"):
            rec = self.engine.store.load(cid)
            if rec is None:
                return False
            rec = self.engine._refresh(rec)
            c, st = rec.config, rec.state
            if rec.status is not Status.EXITED or not restarts.should_restart(
                    c.restart_policy, c.restart_max, st.exit_code, st.restart_count, st.manually_stopped):
                return False
            ran = (parse_time(st.finished_at) - parse_time(st.started_at)).total_seconds()
            # The record keeps no delay: the last one was the first doubled once per restart in a row.
            previous = 0.0 if not st.restart_count else \
                min(restarts.MAX_DELAY, restarts.FIRST_DELAY * restarts.BACKOFF ** min(st.restart_count - 1, 10))
            delay = restarts.next_delay(previous, ran)
            if not self.engine._save(self.engine._moved(rec, Verb.RESTART_POLICY)):
                return False  # removed between the read and now
            time.sleep(delay)
            now = self.engine.store.load(cid)
            if now is None or now.status is not Status.RESTARTING:
                return False  # stopped or removed meanwhile
            self._launch(now.with_state(restart_count=st.restart_count + 1), Verb.RESTART)
            return True
