"""Services: ``replicas`` copies of a container behind one load-balanced port (``lab.services``).

A service is a record (``services/<name>.json``) and a controller process
(:mod:`labkit.service`) that keeps its replicas running; the replicas are ordinary
containers labelled with the service's name (:data:`labkit.model.names.SERVICE_LABEL`).
"""

from __future__ import annotations

import os
import signal as _signal
import time
from collections.abc import Callable
from typing import Any

from labkit import helpers
from labkit.engine.collection import Collection
from labkit.engine.options import parse_env, parse_port
from labkit.errors import Conflict, InvalidArgument, LabkitError, NotFound
from labkit.model import names as _names
from labkit.model.container import now_rfc3339
from labkit.model.lifecycle import Status
from labkit.store import PRIVATE_DIR, read_json, write_json

#: How long a wait for a service to converge lasts unless ``LABKIT_SERVICE_WAIT`` (seconds) says otherwise:
#: ``service create``/``scale`` and the lessons' cells wait this long, then say how far the service got.
CONVERGE_SECONDS = 120.0


def converge_seconds() -> float:
    """The deadline of a wait for convergence: ``LABKIT_SERVICE_WAIT`` where it is a number of seconds
    below a day (a slow host can give more), else :data:`CONVERGE_SECONDS`. Every wait has a deadline,
    so ``nan``, ``inf`` and garbage fall back to the default."""
    try:
        timeout = float(os.environ.get("LABKIT_SERVICE_WAIT") or CONVERGE_SECONDS)
    except ValueError:
        return CONVERGE_SECONDS
    return timeout if 0 <= timeout < 86400 else CONVERGE_SECONDS


class ServiceCollection(Collection):
    """The state root's services (``lab.services``)."""

    converge_seconds = staticmethod(converge_seconds)

    def create(self, name: str, image: str, replicas: int = 1, ports: list[str] | None = None,
               command: list[str] | str | None = None, env: Any = None,
               network: str | None = None) -> dict[str, Any]:
        """``labkit service create``: ``replicas`` copies of a container behind one load-balanced port.

        A controller process keeps that many running (a replica that dies is replaced within
        a second) and hands each connection on the published port to the next replica.
        """
        problem = self.engine.backend.service_problem()
        if problem is not None:
            raise problem
        _names.check_name(name)
        if replicas < 0:
            raise InvalidArgument(f"invalid replicas value {replicas}", "Use 0 or more")
        specs = [parse_port(p) for p in (ports or [])]
        if len(specs) > 1:
            raise InvalidArgument("a service publishes one port", "Give one -p HOSTPORT:CONTAINERPORT")
        self.engine.images.get(image)
        sdir = self.engine.store.root / "services"
        sdir.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        if (sdir / f"{name}.json").exists():
            raise Conflict(f"service {name} already exists", "Remove it first with 'labkit service rm'")
        if any((r.config.labels or {}).get(_names.SERVICE_LABEL) == name for r in self.engine._records()):
            raise Conflict(f"containers of an old service {name} still exist", "Remove them with 'labkit rm -f'")
        listeners = [self.engine.backend.listen(p.host_ip or "127.0.0.1", int(p.host_port or 0)) for p in specs]
        try:
            rec = {
                "Name": name, "Image": image, "Replicas": replicas, "Created": now_rfc3339(),
                "Command": ["/bin/sh", "-c", command] if isinstance(command, str) else command,
                "Env": parse_env(env), "Network": network,
                "ContainerPort": specs[0].container_port if specs else 0,
                "Ports": [{"HostIp": s.getsockname()[0], "HostPort": s.getsockname()[1],
                           "ContainerPort": p.container_port} for s, p in zip(listeners, specs, strict=True)],
            }
            write_json(sdir / f"{name}.json", rec)
            pid = helpers.spawn_detached(helpers.python("labkit.service", str(self.engine.store.root), name,
                                                        self.engine.backend_name, *[str(s.fileno()) for s in listeners]),
                                         [s.fileno() for s in listeners])
            rec["ControllerPid"] = pid
            write_json(sdir / f"{name}.json", rec)
        finally:
            for s in listeners:
                s.close()
        return rec

    def ls(self) -> list[dict[str, Any]]:
        """Every service with how many replicas run now out of how many are asked for."""

        sdir = self.engine.store.root / "services"
        out = []
        running: dict[str, int] = {}
        for r in self.engine._records():
            svc = (r.config.labels or {}).get(_names.SERVICE_LABEL)
            if svc and r.status is Status.RUNNING:
                running[svc] = running.get(svc, 0) + 1
        for entry in sorted(sdir.glob("*.json")) if sdir.exists() else []:
            rec = read_json(entry)
            if rec:
                rec["Running"] = running.get(rec["Name"], 0)
                out.append(rec)
        return out

    def scale(self, name: str, replicas: int) -> dict[str, Any]:
        """Ask for a new number of replicas; the controller starts or removes them."""
        path = self.engine.store.root / "services" / f"{name}.json"
        rec = read_json(path)
        if rec is None:
            raise NotFound(f"service {name} not found", "Run 'labkit service ls'")
        if replicas < 0:
            raise InvalidArgument(f"invalid replicas value {replicas}", "Use 0 or more")
        rec["Replicas"] = replicas
        write_json(path, rec)
        return rec

    def converge(self, name: str, timeout: float | None = None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Wait, at most ``timeout`` seconds (:func:`converge_seconds` if None), until as many
        replicas run as the service asks for.

        What ``docker service create`` and ``docker service scale`` do unless ``--detach``: they
        return once the service has converged. ``progress(running, asked)`` is told each time the
        count changes, the first count included. Returns the last ``(running, asked)``; the caller
        tells whether the deadline passed by comparing them. A service removed meanwhile is
        :class:`NotFound`; a controller that stopped (its replicas then stop too) is a
        :class:`LabkitError` quoting its last note (:meth:`last_note`).
        """
        deadline = time.monotonic() + (converge_seconds() if timeout is None else timeout)
        shown: tuple[int, int] | None = None
        while True:
            rec = next((r for r in self.ls() if r["Name"] == name), None)
            if rec is None:
                raise NotFound(f"service {name} not found", "Run 'labkit service ls'")
            now = (int(rec["Running"]), int(rec["Replicas"]))
            if progress is not None and now != shown:
                progress(*now)
            shown = now
            if now[0] == now[1] or time.monotonic() >= deadline:
                return now
            pid = rec.get("ControllerPid", 0)
            if pid and _ended(pid):
                raise LabkitError(f"the controller of service {name} stopped: {self.last_note(name) or 'no log'}",
                                  f"Remove it with 'labkit service rm {name}' and create it again")
            time.sleep(0.1)

    def last_note(self, name: str) -> str:
        """Why the service's replicas are not all running, from its controller's log, or ``""``.

        The last failure the controller noted (``reconcile: …``, a replica that could not start),
        else its last line: the replica it removed after a failure is noted after the failure, and a
        learner wants the failure.
        """
        try:
            lines = (self.engine.store.root / "services" / f"{name}.log").read_text().splitlines()
        except OSError:
            return ""
        notes = [line.partition(" ")[2] for line in lines]  # past the time each line begins with
        failures = [n.removeprefix("reconcile: ") for n in notes if n.startswith("reconcile: ")]
        return (failures or notes or [""])[-1]

    def rm(self, name: str) -> None:
        """Stop the controller (it removes its replicas), then forget the service."""

        path = self.engine.store.root / "services" / f"{name}.json"
        rec = read_json(path)
        if rec is None:
            raise NotFound(f"service {name} not found", "Run 'labkit service ls'")
        pid = rec.get("ControllerPid", 0)
        path.unlink()
        if pid and _is_controller(pid):
            os.kill(pid, _signal.SIGTERM)
            deadline = time.monotonic() + 20
            while _is_controller(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        for r in self.engine._records():
            if (r.config.labels or {}).get(_names.SERVICE_LABEL) == name:
                self.engine.containers.rm(r.id, force=True)
        (self.engine.store.root / "services" / f"{name}.log").unlink(missing_ok=True)


def _ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie). Not :func:`_is_controller`: just after ``create``
    the controller may still be the forked copy of its caller, before its exec."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def _is_controller(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"labkit.service" in f.read()
    except OSError:
        return False


