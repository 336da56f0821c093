"""The simulated world saved: whole on disk, where every process finds it, and as snapshots to walk back to.

The world is plain data, so saving it is pickling it.

* On disk (:func:`read`, :func:`write`): :class:`labkit.sim.backend.SimBackend`
  keeps its world in ``<state root>/sim/world.pickle`` (gzip-packed, written
  whole and renamed into place) so that every process using the state root
  (the CLI, a notebook, the engine's daemon) sees one world. A file that is
  larger than :data:`MAX_WORLD` (on disk or unpacked), unreadable, or
  written by another format is :class:`Unusable`; the backend then sets it
  aside for a fresh world and says why.
* In memory (:class:`Snapshot`): one pickled copy of the world and the
  engine's records, what a stepper shows when it steps *back* through a run.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from labkit.sim import cgroups
from labkit.sim.kernel import World
from labkit.sim.overlay import DISK

FORMAT_VERSION = 2
#: The most a saved world may hold, packed or unpacked: the modelled memory and disk, and room for the rest.
MAX_WORLD = cgroups.HOST_MEMORY + DISK + 64 * 1024 * 1024


@dataclass(frozen=True)
class Snapshot:
    """The whole simulated world at one moment, and the engine's container records then.

    Attributes:
        world: The pickled :class:`~labkit.sim.kernel.World`.
        records: Each container's record as ``to_json()`` wrote it, by id.
        seq: The trace step it was taken after (-1 when taken by hand).
    """

    world: bytes
    records: dict[str, Any] = field(default_factory=dict)
    seq: int = -1

    def load(self) -> World:
        """A private copy of the world as it was (change it freely)."""
        return pickle.loads(self.world)

    def describe(self) -> dict[str, Any]:
        """What the pictures draw: per container its status, processes and writable layer."""
        w = self.load()
        out: dict[str, Any] = {"time": w.now, "containers": {}}
        for cid, ct in w.containers.items():
            rec = self.records.get(cid)
            out["containers"][cid] = {
                "status": rec["state"]["status"] if rec else "unknown",
                "processes": [
                    {"pid": p.pid, "host_pid": p.hpid, "ppid": p.ppid, "argv": list(p.argv), "state": p.state}
                    for p in w.procs_of(cid)
                ],
                "upper": {path: node.kind for path, node in sorted(ct.upper.items()) if path != "/"},
                "frozen": ct.frozen,
                "memory": cgroups.usage(w, ct),
            }
        return out


class Unusable(ValueError):
    """The saved world cannot be read back; ``str()`` says why, as a clause ("it was written by …")."""


def read(path: Path, size: int) -> World:
    """The world saved in ``path`` (``size`` bytes on disk).

    Raises:
        Unusable: It is too big, packed or not, unreadable, or of another format.
    """
    if size > MAX_WORLD:
        raise Unusable(f"it is {size // 2**20} MiB, more than a bounded world can be ({MAX_WORLD // 2**20} MiB)")
    if _head(path) == b"\x80":  # a bare pickle: what the simulator wrote before it packed its world
        raise Unusable("it was written by an older version of the simulator")
    try:
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as packed:
            data = pickle.load(_Bounded(packed, MAX_WORLD))  # type: ignore[arg-type]
    except _TooBig:
        raise Unusable(f"it unpacks to more than a bounded world can be ({MAX_WORLD // 2**20} MiB)") from None
    except (OSError, EOFError, MemoryError, pickle.UnpicklingError, AttributeError, ImportError,
            IndexError, KeyError, TypeError, ValueError) as err:
        raise Unusable(f"it cannot be read ({type(err).__name__}: {err})") from None
    if isinstance(data, dict) and data.get("version") == FORMAT_VERSION and isinstance(data.get("world"), World):
        return data["world"]
    raise Unusable("it was written by another version of the simulator")


def write(world: World, path: Path) -> None:
    """Save ``world`` in ``path``: packed as it is pickled into a temporary file beside it, then renamed."""
    fd, tmp = tempfile.mkstemp(prefix=".world-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as f:
            # Written as it is pickled: no second copy of the world in memory.
            pickle.dump({"version": FORMAT_VERSION, "world": world}, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)  # rename(2): readers see the old world or the new one
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _head(path: Path) -> bytes:
    """The first byte of a file (b"" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(1)
    except OSError:
        return b""


class _TooBig(Exception):
    """A saved world unpacks to more than :data:`MAX_WORLD`."""


class _Bounded:
    """A file-like reader that refuses to hand out more than ``limit`` bytes (a gzip bomb stays a reset)."""

    def __init__(self, f: IO[bytes], limit: int) -> None:
        self.f, self.left = f, limit

    def _take(self, data: bytes) -> bytes:
        self.left -= len(data)
        if self.left < 0:
            raise _TooBig()
        return data

    def read(self, n: int = -1) -> bytes:
        return self._take(self.f.read(self.left + 1 if n is None or n < 0 else min(n, self.left + 1)))

    def readline(self) -> bytes:
        return self._take(self.f.readline(self.left + 1))

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def peek(self, n: int = 1) -> bytes:
        return self.f.peek(n)  # type: ignore[attr-defined]
