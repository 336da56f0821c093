"""The engine's own record of what happened, for ``docker events``: one JSON line per event in ``ROOT/events.log``.

Docker's daemon keeps its events in memory; labkit has no daemon that lives as long as
the containers do (the CLI, a notebook, a supervisor's restarter each run an engine), so
each engine appends the events of its verbs to one file of the state root, and ``events``
reads it back — ``--since``/``--until`` over what is there, then what is appended while it
watches. Each event has the Engine API's shape (``Type``, ``Action``, ``Actor.ID``,
``Actor.Attributes``, ``time``, ``timeNano``; a container's also ``status``, ``id`` and
``from``). A line is one write(2) with ``O_APPEND``, so lines of several processes never
interleave; the file keeps about the last :data:`KEEP` bytes, as Docker keeps the last
events it saw.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

#: Past this size the file is cut to its newer half (a few thousand events are kept).
KEEP = 1 << 20


class Journal:
    """Events appended to, and read from, one file.

    Args:
        path: The file (``ROOT/events.log``); made on the first event, private to the state root's owner.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def add(self, kind: str, action: str, actor: str, attributes: Mapping[str, str],
            when_ns: int | None = None, image: str = "") -> dict[str, Any]:
        """Append one event: ``kind`` (``container``, ``volume``, ``network``, ``image``), what happened, to whom."""
        when_ns = time.time_ns() if when_ns is None else when_ns
        event: dict[str, Any] = {}
        if kind == "container":
            event = {"status": action, "id": actor, "from": image}
        event.update({"Type": kind, "Action": action, "Actor": {"ID": actor, "Attributes": dict(attributes)},
                      "scope": "local", "time": when_ns // 10**9, "timeNano": when_ns})
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return event  # a state root this process may not write: the verb itself went through
        try:
            os.write(fd, line)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > KEEP:
            self._trim()
        return event

    def _trim(self) -> None:
        """Keep the newer half of the file (replaced whole: a reader sees the old file or the new one)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return
        tail = data[len(data) // 2:]
        tail = tail[tail.find(b"\n") + 1:]
        scratch = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            scratch.write_bytes(tail)
            os.chmod(scratch, 0o600)
            os.replace(scratch, self.path)
        except OSError:
            scratch.unlink(missing_ok=True)

    def read(self, since_ns: int | None = None, until_ns: int | None = None, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The events from byte ``offset`` on, between ``since_ns`` and ``until_ns`` (inclusive), in the order
        they were written; and the offset to read from next time."""
        try:
            with open(self.path, "rb") as f:
                if offset > os.fstat(f.fileno()).st_size:
                    offset = 0  # trimmed meanwhile: read it again from its start
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], 0
        end = data.rfind(b"\n") + 1  # a line being written now is read next time
        events = []
        for raw in data[:end].splitlines():
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            at = event.get("timeNano", 0)
            if (since_ns is None or at >= since_ns) and (until_ns is None or at <= until_ns):
                events.append(event)
        return events, offset + end

    def follow(self, since_ns: int | None, until_ns: int | None, poll: float = 0.2,
               between: Callable[[], object] | None = None) -> Iterator[dict[str, Any]]:
        """The events since ``since_ns`` (None: from now on), then each new one as it is written, until
        ``until_ns`` has passed (None: until the caller stops reading). ``between`` is called before each
        look at the file (the engine notices exits there, whose ``die`` it records)."""
        if since_ns is None:
            _, offset = self.read(offset=0)
            start: int | None = time.time_ns()
        else:
            offset, start = 0, since_ns
        while True:
            done = until_ns is not None and time.time_ns() > until_ns
            if between is not None:
                between()
            events, offset = self.read(start, until_ns, offset)
            yield from events
            if done:
                return
            time.sleep(poll if until_ns is None else max(0.0, min(poll, (until_ns - time.time_ns()) / 1e9)))
