"""Looking after a container that exists: rename, update, top, stats, prune (``lab.containers``).

These are ``docker container``'s verbs beside the lifecycle: they change what a container
is called and how much it may use, or read what it is doing, without moving it along the
lifecycle table. :class:`~labkit.engine.containers.ContainerCollection` has them from
:class:`ContainerUpkeep`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
from collections.abc import Iterator
from typing import Any

from labkit.engine.collection import Collection, verb
from labkit.engine.options import restart_policy, size
from labkit.errors import Conflict, IllegalTransition, InvalidArgument, NameInUse, NoSuchContainer, NotFound
from labkit.model import limits
from labkit.model import names as _names
from labkit.model.lifecycle import Status, is_running


class ContainerUpkeep(Collection):
    """``rename``, ``update``, ``top``, ``stats`` and ``prune`` of ``lab.containers``."""

    @verb("rename")
    def rename(self, ref: str, new_name: str) -> None:
        """``docker rename``: the container is known by ``new_name`` from now on (its id, files and
        processes stay as they are; so does the hostname it was given at create, as in Docker).

        Raises:
            InvalidArgument: An empty or invalid name, or the name it has.
            NameInUse: Another container has the name.
        """
        engine = self.engine
        rec = engine._get(ref)
        if not new_name.strip("/"):
            raise InvalidArgument("Neither old nor new names may be empty",
                                  "Give the new name, e.g. labkit rename web web2")
        with engine.store.locked():
            taken = engine.store.names()
            if new_name.lstrip("/") == rec.name:
                raise InvalidArgument("Renaming a container with the same name as its current name",
                                      "Pick a name it does not have yet")
            try:
                name = _names.check_name(new_name)
                if name in taken and taken[name] != rec.id:
                    raise NameInUse(name, taken[name])
            except (InvalidArgument, NameInUse) as error:
                error.message = f"Error when allocating new name: {error.message}"
                raise
            rec = engine.store.load(rec.id) or rec
            renamed = dataclasses.replace(rec, config=dataclasses.replace(rec.config, name=name))
            engine.store.set_name(name, rec.id, {n: c for n, c in taken.items() if c != rec.id})
            engine._trace_names[rec.id] = name
            if not engine._save(renamed):
                raise NoSuchContainer(ref)
        engine._note(renamed, "rename", oldName="/" + rec.name)

    @verb("update")
    def update(self, ref: str, *, memory: int | str | None = None, memory_swap: int | str | None = None,
               cpus: float | None = None, pids_limit: int | None = None, restart: str | None = None) -> None:
        """``docker update``: new limits and restart policy; a running container's cgroup files are written
        at once (each write a step of the trace), and the record keeps them for its next starts.

        Raises:
            InvalidArgument: Nothing to change, or a value ``create`` would refuse too.
        """
        engine = self.engine
        rec = engine._get(ref)
        if memory is None and memory_swap is None and cpus is None and pids_limit is None and restart is None:
            raise InvalidArgument("you must provide one or more flags when using this command",
                                  "e.g. labkit update --memory 64m --cpus 0.5 --pids-limit 50 --restart always NAME")
        c = rec.config
        mem = size(memory) if memory is not None else c.memory
        if memory_swap is not None:
            swap = -1 if memory_swap in (-1, "-1") else size(memory_swap)
        elif memory is not None and c.memory_swap != -1:
            swap = min(2 * mem, limits.MAX_MEMORY) if mem else 0  # Docker's default: as much swap as memory
        else:
            swap = c.memory_swap
        limits.check_memory(mem, swap)
        nano = limits.check_cpus(float(cpus), os.cpu_count() or 1) if cpus is not None else c.nano_cpus
        if pids_limit and pids_limit > 0:
            limits.check_pids(pids_limit)
        policy, retries = restart_policy(restart) if restart is not None else (c.restart_policy, c.restart_max)
        if policy != "no" and c.auto_remove:
            raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the container",
                                  "A --rm container is removed when it exits; create it without --rm")
        pids = c.pids_limit if pids_limit is None else (pids_limit if pids_limit > 0 else None)
        rec = dataclasses.replace(rec, config=dataclasses.replace(
            c, memory=mem, memory_swap=swap, nano_cpus=nano, pids_limit=pids, restart_policy=policy,
            restart_max=retries))
        if is_running(rec.status) and rec.status is not Status.RESTARTING:
            engine.backend.update(rec)
        if not engine._save(rec):
            raise NoSuchContainer(ref)
        engine._note(rec, "update")

    def top(self, ref: str, ps_args: list[str] | None = None) -> dict[str, Any]:
        """``docker top``: the processes of the container's cgroup as ``ps`` shows them (``Titles`` and
        ``Processes``, Docker's shape). Refused unless the container runs (paused counts as running)."""
        rec = self.engine._get(ref)
        if rec.status is Status.RESTARTING:  # between two runs of its restart policy: no process to list
            raise IllegalTransition(f"Container {rec.id} is restarting, wait until the container is running",
                                    rec.status.value, "top", hint="Wait a moment and try again")
        if not is_running(rec.status):
            raise IllegalTransition(f"container {rec.id} is not running", rec.status.value, "top",
                                    hint=f"Start it first: labkit start {ref}")
        titles, rows = self.engine.backend.top(rec, list(ps_args or ["-ef"]))
        self.engine._note(rec, "top")
        return {"Titles": titles, "Processes": rows}

    def stats(self, ref: str) -> dict[str, Any]:
        """One reading of the container's cgroup counters for ``docker stats``: CPU time so far, memory
        (without inactive page cache) against its limit (or the host's memory), network and block
        bytes, processes. A container that is not running reads as zeros, as in Docker."""
        rec = self.engine._get(ref)
        meter = self.engine.backend.meter(rec) if is_running(rec.status) else None
        reading = meter.read() if meter is not None else None
        out = {"Id": rec.id, "Name": rec.name, "Running": reading is not None,
               "Read": meter.clock() if meter is not None else 0.0}
        if reading is None:
            return {**out, "CpuNs": 0, "Memory": 0, "MemoryLimit": 0, "Pids": 0, "NetRx": 0, "NetTx": 0,
                    "BlockRead": 0, "BlockWrite": 0}
        used = reading.memory or 0
        return {**out, "Read": reading.at, "CpuNs": reading.cpu_ns or 0,
                "Memory": max(used - (reading.cache or 0), 0),
                "MemoryLimit": reading.memory_limit or 0, "Pids": reading.pids or 0,
                "NetRx": reading.net_rx or 0, "NetTx": reading.net_tx or 0,
                "BlockRead": reading.block_read or 0, "BlockWrite": reading.block_write or 0}

    def stat_path(self, ref: str, path: str) -> dict[str, Any]:
        """What ``docker cp`` learns of ``path`` in the container before it copies (:meth:`labkit.backend.Backend.stat_path`).

        Raises:
            NotFound: Nothing is at ``path`` in the container (Docker's words).
        """
        rec = self.engine._get(ref)
        with _missing(path, ref):
            return self.engine.backend.stat_path(rec, self.engine.images.of(rec), _inside(path))

    @verb("cp")
    def copy_from(self, ref: str, path: str, out: int) -> dict[str, Any]:
        """``docker cp CONTAINER:PATH -``: ``path`` (a directory with all below it) as a tar stream written to
        descriptor ``out``, its entries named from its base name; returns what :meth:`stat_path` does."""
        rec = self.engine._get(ref)
        with _missing(path, ref):
            found = self.engine.backend.copy_out(rec, self.engine.images.of(rec), _inside(path), out)
        self.engine._note(rec, "archive-path")
        return found

    @verb("cp")
    def copy_to(self, ref: str, path: str, tar: int, keep_owners: bool = False) -> None:
        """``docker cp - CONTAINER:DIR``: unpack the tar stream read from descriptor ``tar`` into the directory
        ``path``, the container running or not; what a file of an image layer needed (a copy-up) is traced.

        Raises:
            NotFound: ``path`` is not in the container.
            InvalidArgument: ``path`` is not a directory.
        """
        rec = self.engine._get(ref)
        try:
            with _missing(path, ref):
                self.engine.backend.copy_in(rec, self.engine.images.of(rec), _inside(path), tar, keep_owners)
        except NotADirectoryError:
            raise InvalidArgument("extraction point is not a directory",
                                  f"Copy into a directory of the container, e.g. {ref}:/tmp") from None
        self.engine._observe_layer(rec)
        self.engine._note(rec, "extract-to-dir")

    def prune(self) -> list[str]:
        """``docker container prune``: remove every container that is not running; their ids."""
        removed = []
        for rec in self.engine._records():
            if rec.status in (Status.CREATED, Status.EXITED, Status.DEAD):
                with contextlib.suppress(NotFound, Conflict):
                    self.engine.rm(rec.id)
                    removed.append(rec.id)
        return removed


def _inside(path: str) -> str:
    """A path in the container: relative ones start at its ``/``, as ``docker cp`` reads them."""
    return posixpath.normpath("/" + path.lstrip("/"))


@contextlib.contextmanager
def _missing(path: str, ref: str) -> Iterator[None]:
    """ENOENT inside the container, in Docker's words."""
    try:
        yield
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {_inside(path)} in container {ref}",
                       f"List what is there: labkit exec {ref} ls -la {posixpath.dirname(_inside(path))}") from None
