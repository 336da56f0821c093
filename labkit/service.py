"""Services: N identical replicas behind one port, replaced when they die.

The lesson's argument for stateless containers, made real: ``labkit service
create --name web --replicas 3 -p 8080:3000 IMAGE`` starts three ordinary
containers (``web.1``, ``web.2``, ``web.3``, labelled with the service) and a
small controller process with two parts:

* a :class:`Balancer` holds the published port and hands each new connection
  to the next replica (round robin). A replica that does not take the
  connection is skipped, and so is one that fails before it answers a single
  byte: the balancer kept what the client sent, and replays it to the next
  replica (what nginx's ``proxy_next_upstream`` does for HTTP);
* a :class:`Controller` every quarter of a second compares the replicas that
  run with the number asked for: a replica that exited is removed and a fresh
  one started in its slot; a scale change starts or removes replicas.

As root the balancer reaches each replica at its address on the bridge.
Rootless there is no bridge a user can reach (each replica's network is its
own slirp4netns), so each replica publishes its port on a free port of
127.0.0.1 and the balancer connects there.

Because the replicas keep nothing that matters inside them, killing one loses
nothing: the endpoint keeps answering from the others while its replacement
starts. The controller is a plain process (no daemon); ``service rm`` stops it,
and it removes its replicas on the way out.

Run as ``python -m labkit.service ROOT NAME BACKEND FD...`` (the engine does this).
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labkit.engine import Engine

from labkit.engine import Engine
from labkit.model.names import SERVICE_LABEL, SERVICE_SLOT_LABEL
from labkit.store import read_json

TICK = 0.25
CONNECT_TIMEOUT = 0.2
#: How long request bytes may stay unacknowledged by a replica's kernel before its connection counts as
#: failed (TCP_USER_TIMEOUT, tcp(7)). A live replica's kernel acknowledges within microseconds on a
#: local bridge, however busy the program is; a replica that died just after taking the connection
#: may take its network namespace with it before a reset goes out, and would leave the client waiting.
UNACKED_TIMEOUT = 0.5
SEND_TIMEOUT = 2.0
KEEP = 64 * 1024  # a request up to this size is kept, so a replica that fails before answering can be replaced

Target = tuple[str, int]


def replica_name(service: str, slot: int) -> str:
    """Replica names as Docker's swarm numbers tasks: ``web.1``, ``web.2``…"""
    return f"{service}.{slot}"


@dataclass(eq=False)
class _Link:
    """One client connection and the replica it is relayed to."""

    client: socket.socket
    order: list[Target]  # the targets in the turn this link was given, first choice first
    tried: set[Target] = field(default_factory=set)
    up: socket.socket | None = None
    target: Target | None = None
    epoch: int = 0  # the balancer's target epoch when this link chose its replica
    deadline: float = 0.0  # while connecting: when to give up on this replica
    connected: bool = False
    kept: bytearray | None = field(default_factory=bytearray)  # the client's bytes, for a replay; None: no replay
    unsent: bytearray = field(default_factory=bytearray)  # client bytes the current replica has not had yet
    answered: bool = False  # the replica sent a byte back: from here on the client sees its failures
    client_done: bool = False  # the client shut down its sending side
    up_done: bool = False  # the replica shut down its sending side


class Balancer:
    """A round-robin TCP load balancer over a set of targets that may change at any moment.

    Each connection accepted on a listener goes to the next target. Connects
    are non-blocking, with a short deadline: on a local bridge a live replica
    answers in microseconds, and a dead one's address stops answering ARP, so
    waiting long only delays the client. A target that refuses or times out is
    forgotten until the next :meth:`set_targets` names it again.

    A replica that resets or closes the connection before its first byte back
    (it was killed with the connection in its accept queue, or mid-request) is
    not the client's problem: the bytes the client sent so far (up to
    :data:`KEEP`) are replayed to the next target it has not tried. Once a
    replica has answered, its failure is passed on to the client, since a
    replay could send the client a second answer.
    """

    def __init__(self, listeners: list[socket.socket], connect_timeout: float = CONNECT_TIMEOUT,
                 keep: int = KEEP, note: Callable[[str], None] = lambda _text: None) -> None:
        self.listeners = listeners
        self.connect_timeout = connect_timeout
        self.keep = keep
        self.note = note  # told of every replica that failed a connection, for the service's log
        self.lock = threading.Lock()
        self.targets: list[Target] = []
        self.epoch = 0  # counts set_targets calls
        self.gone: dict[Target, int] = {}  # targets that went, with the epoch they went in
        self.next = 0
        self.links: set[_Link] = set()

    # -- targets (any thread) --------------------------------------------------------------------
    def set_targets(self, targets: list[Target]) -> None:
        """The replicas that run now; links to any that went are cut at the next turn of the loop.

        A replacement may come back at the address of the replica it replaces: links are cut
        by the epoch they chose their replica in, so only those made before it went are cut.
        """
        with self.lock:
            self.epoch += 1
            for target in set(self.targets) - set(targets):
                self.gone[target] = self.epoch
            self.targets = sorted(targets)

    def pick(self) -> list[Target]:
        """The targets in round-robin order, starting after the one the last connection was given."""
        with self.lock:
            if not self.targets:
                return []
            i = self.next % len(self.targets)
            self.next += 1
            return self.targets[i:] + self.targets[:i]

    def candidates(self, link: _Link) -> list[Target]:
        """Where a link may go next: its turn's order, then targets named since, all untried and still named."""
        with self.lock:
            now = set(self.targets)
            later = [t for t in self.targets if t not in link.order]
            link.epoch = self.epoch
        return [t for t in link.order + later if t in now and t not in link.tried]

    def forget(self, target: Target, why: str) -> None:
        """Stop sending connections to a replica that did not take one (until :meth:`set_targets` names it)."""
        with self.lock:
            if target in self.targets:
                self.targets.remove(target)
        self.note(f"{target[0]}:{target[1]} did not take a connection ({why}): left out until it is named again")

    # -- the loop --------------------------------------------------------------------------------
    def serve(self, stopping: threading.Event) -> None:
        """Relay connections until ``stopping`` is set, then close every link."""
        sel = selectors.DefaultSelector()
        for sock in self.listeners:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, None)
        try:
            while not stopping.is_set():
                for key, _ in sel.select(timeout=self._timeout()):
                    if key.data is None:
                        self._accept(key.fileobj, sel)  # type: ignore[arg-type]
                        continue
                    link, side = key.data
                    if link not in self.links or key.fileobj not in (link.client, link.up):
                        continue  # closed or redialled earlier in this batch
                    try:
                        if side == "client":
                            self._from_client(link, sel)
                        elif not link.connected:
                            self._connected(link, sel)
                        else:
                            self._from_up(link, sel)
                    except Exception as err:  # one broken link must not stop the port for every client
                        self.note(f"balancer: {type(err).__name__}: {err}; that connection is closed")
                        self._abandon(link, sel)
                self._expire(sel)
                self._cut_gone(sel)
        finally:
            for link in list(self.links):
                self._close(link, sel)
            sel.close()

    def _timeout(self) -> float:
        now = time.monotonic()
        waits = [link.deadline - now for link in self.links if link.up is not None and not link.connected]
        return max(0.0, min([TICK, *waits]))

    def _accept(self, listener: socket.socket, sel: selectors.BaseSelector) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        client.setblocking(False)
        link = _Link(client, self.pick())
        self.links.add(link)
        sel.register(client, selectors.EVENT_READ, (link, "client"))
        self._dial(link, sel)

    def _dial(self, link: _Link, sel: selectors.BaseSelector) -> None:
        """Connect the link to the next target it has not tried; with none left, the client is closed."""
        self._drop_up(link, sel)
        if link.tried and link.kept is None:
            self._close(link, sel)  # what the client sent is no longer whole: it cannot be replayed
            return
        for target in self.candidates(link):
            link.tried.add(target)
            up = socket.socket()
            up.setblocking(False)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(UNACKED_TIMEOUT * 1000))
            err = up.connect_ex(target)  # connect(2): EINPROGRESS on a non-blocking socket
            if err not in (0, errno.EINPROGRESS):
                up.close()
                self.forget(target, os.strerror(err))
                continue
            link.up, link.target, link.connected = up, target, False
            link.deadline = time.monotonic() + self.connect_timeout
            link.unsent = bytearray(link.kept) if link.kept is not None else link.unsent
            sel.register(up, selectors.EVENT_WRITE, (link, "up"))
            return
        self._close(link, sel)

    def _connected(self, link: _Link, sel: selectors.BaseSelector) -> None:
        assert link.up is not None and link.target is not None
        err = link.up.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # the connect(2) outcome, see socket(7)
        if err:
            if err not in (errno.ECONNRESET, errno.EPIPE):  # a reset came after the handshake: the replica is there
                self.forget(link.target, os.strerror(err))
            self._dial(link, sel)
            return
        link.connected = True
        sel.modify(link.up, selectors.EVENT_READ, (link, "up"))
        if link.unsent:
            data, link.unsent = bytes(link.unsent), bytearray()
            if not self._send(link.up, data):
                self._up_failed(link, sel)
                return
        if link.client_done:
            self._shutdown(link.up)

    def _from_client(self, link: _Link, sel: selectors.BaseSelector) -> None:
        try:
            data = link.client.recv(65536)
        except OSError:
            self._close(link, sel)
            return
        if not data:
            link.client_done = True
            sel.unregister(link.client)
            if link.up_done:
                self._close(link, sel)
            elif link.connected:
                self._shutdown(link.up)
            return
        if link.kept is not None and not link.answered:
            link.kept += data
            if len(link.kept) > self.keep:
                link.kept = None
        if link.up is None or not link.connected:
            link.unsent += data
        elif not self._send(link.up, data):
            self._up_failed(link, sel)

    def _from_up(self, link: _Link, sel: selectors.BaseSelector) -> None:
        assert link.up is not None
        why = "it closed the connection"
        try:
            data = link.up.recv(65536)
        except OSError as err:
            data, why = None, err.strerror or str(err)
        if not data:
            if not link.answered:
                self._up_failed(link, sel, why)
            elif data is None:
                self._close(link, sel)
            else:  # the replica finished its answer: pass the end on, and close when both ends are done
                link.up_done = True
                sel.unregister(link.up)
                self._shutdown(link.client)
                if link.client_done:
                    self._close(link, sel)
            return
        link.answered, link.kept = True, None
        if not self._send(link.client, data):
            self._close(link, sel)

    def _up_failed(self, link: _Link, sel: selectors.BaseSelector, why: str = "it closed the connection") -> None:
        """The replica failed: before its answer, replay to the next one; after it, the client sees the end."""
        where = f"{link.target[0]}:{link.target[1]}" if link.target else "a replica"
        if link.answered:
            self.note(f"{where} failed after it began to answer ({why}): the client sees the end")
            self._close(link, sel)
        else:
            self.note(f"{where} failed before answering ({why}): the request goes to the next replica")
            self._dial(link, sel)

    def _expire(self, sel: selectors.BaseSelector) -> None:
        now = time.monotonic()
        for link in [k for k in self.links if k.up is not None and not k.connected and k.deadline <= now]:
            assert link.target is not None
            self.forget(link.target, f"no answer to its handshake within {self.connect_timeout:g} s")
            self._dial(link, sel)

    def _cut_gone(self, sel: selectors.BaseSelector) -> None:
        """Links to replicas that went: a killed replica's address stops answering without a reset,
        and its clients would otherwise wait for their own timeouts."""
        with self.lock:
            gone, self.gone = self.gone, {}
        for link in [k for k in self.links if k.target in gone and k.epoch < gone[k.target]]:
            self._up_failed(link, sel, "it is no longer running")

    # -- sockets ---------------------------------------------------------------------------------
    @staticmethod
    def _send(sock: socket.socket, data: bytes) -> bool:
        """All of ``data``, waiting at most :data:`SEND_TIMEOUT` for a slow reader."""
        try:
            sock.settimeout(SEND_TIMEOUT)
            sock.sendall(data)
            sock.setblocking(False)
            return True
        except OSError:
            return False

    @staticmethod
    def _shutdown(sock: socket.socket | None) -> None:
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_WR)  # a half-close: the peer reads the end, the other way stays open
        except OSError:
            pass

    def _drop_up(self, link: _Link, sel: selectors.BaseSelector) -> None:
        if link.up is not None:
            if not link.up_done:
                sel.unregister(link.up)
            link.up.close()
        link.up, link.target, link.connected, link.up_done = None, None, False, False

    def _abandon(self, link: _Link, sel: selectors.BaseSelector) -> None:
        """Close a link whatever state it is in (after an unexpected error)."""
        for sock in (link.up, link.client):
            if sock is None:
                continue
            try:
                sel.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        self.links.discard(link)

    def _close(self, link: _Link, sel: selectors.BaseSelector) -> None:
        self._drop_up(link, sel)
        if not link.client_done:
            sel.unregister(link.client)
        link.client.close()
        self.links.discard(link)


class Controller:
    """Keeps a service's replicas running and hands their addresses to its :class:`Balancer`."""

    def __init__(self, root: str, name: str, listeners: list[socket.socket], engine: Engine | None = None,
                 backend: str = "linux") -> None:
        self.engine = engine if engine is not None else Engine(root=root, backend=backend)
        self.rootless = backend == "rootless"
        self.name = name
        self.listeners = listeners
        self.balancer = Balancer(listeners, note=self.note)
        self.stopping = threading.Event()

    def record(self) -> dict[str, Any] | None:
        return read_json(self.engine.store.root / "services" / f"{self.name}.json")

    def replicas(self) -> list[dict[str, Any]]:
        return [c for c in self.engine.ps(all=True) if (c.get("Labels") or {}).get(SERVICE_LABEL) == self.name]

    def reconcile(self) -> None:
        """Make the running replicas match the record: replace the dead, add or remove for scale.

        A replica that died leaves the balancer's rotation before anything else happens: a
        connection it took while dying may never hear from it again (its network namespace
        can be gone before a reset goes out), and it is replayed to a live replica only once
        the balancer knows. Starting the replacement takes longer than that should.
        """
        spec = self.record()
        if spec is None:
            self.stopping.set()
            return
        present = {int(c["Labels"][SERVICE_SLOT_LABEL]): c for c in self.replicas()}
        self.balancer.set_targets(self.addresses(present.values(), spec["ContainerPort"]))
        changed = False
        for slot, c in list(present.items()):
            if c["State"] != "running" or slot > spec["Replicas"]:
                self.engine.rm(c["Id"], force=True)
                why = c["State"] if c["State"] != "running" else "scaled down"
                self.note(f"removed {c['Names'][0].lstrip('/')} ({why})")
                del present[slot]
                changed = True
        for slot in range(1, spec["Replicas"] + 1):
            if slot not in present:
                began = time.monotonic()
                self.engine.run(spec["Image"], spec.get("Command") or None, detach=True,
                                name=replica_name(self.name, slot), env=spec.get("Env") or None,
                                network=spec.get("Network") or None,
                                ports=[f"127.0.0.1::{spec['ContainerPort']}"]
                                if self.rootless and spec["ContainerPort"] else None,
                                labels={SERVICE_LABEL: self.name, SERVICE_SLOT_LABEL: str(slot)})
                self.note(f"started {replica_name(self.name, slot)} in {time.monotonic() - began:.2f} s")
                changed = True
        if changed:
            self.balancer.set_targets(self.addresses(self.replicas(), spec["ContainerPort"]))

    def addresses(self, replicas: Iterable[dict[str, Any]], port: int) -> list[Target]:
        """Where the running ones among ``replicas`` (``ps`` items) listen: their address on the bridge
        and ``port``, or rootless the host port of 127.0.0.1 their ``port`` is published on."""
        targets: list[Target] = []
        for c in replicas:
            if c["State"] != "running":
                continue
            if self.rootless:
                bound = [p for p in c.get("Ports") or [] if p.get("PrivatePort") == port and p.get("PublicPort")]
                targets += [(p["IP"], int(p["PublicPort"])) for p in bound[:1]]
                continue
            networks = (c.get("NetworkSettings") or {}).get("Networks") or {}
            address = next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), "")
            if address:
                targets.append((address, port))
        return targets

    def watch(self) -> None:
        while not self.stopping.is_set():
            try:
                self.reconcile()
            except Exception as err:  # a replica that fails to start is retried on the next tick
                self.note(f"reconcile: {err}")
            self.stopping.wait(TICK)

    def note(self, text: str) -> None:
        try:
            with open(self.engine.store.root / "services" / f"{self.name}.log", "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {text}\n")
        except OSError:
            pass

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        watcher = threading.Thread(target=self.watch, daemon=True)
        watcher.start()
        try:
            self.balancer.serve(self.stopping)
        except BaseException as err:
            self.note(f"balancer stopped: {type(err).__name__}: {err}")
            raise
        finally:
            self.stopping.set()
            watcher.join()
            for c in self.replicas():
                try:
                    self.engine.rm(c["Id"], force=True)
                except Exception as err:
                    self.note(f"remove {c['Names'][0]}: {err}")
            for sock in self.listeners:
                sock.close()


def main(argv: list[str]) -> int:
    root, name, backend, *fds = argv
    listeners = [socket.socket(fileno=int(fd)) for fd in fds]
    Controller(root, name, listeners, backend=backend).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
