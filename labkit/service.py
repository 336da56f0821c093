"""Services: N identical replicas behind one port, replaced when they die.

The lesson's argument for stateless containers, made real: ``labkit service
create --name web --replicas 3 -p 8080:3000 IMAGE`` starts three ordinary
containers (``web.1``, ``web.2``, ``web.3``, labelled with the service) and a
small controller process that

* holds the published port and hands each new connection to the next replica
  (round-robin load balancing; a replica that does not answer is skipped), and
* every quarter of a second compares the replicas that run with the number
  asked for: a replica that exited is removed and a fresh one started in its
  slot; a scale change starts or removes replicas.

Because the replicas keep nothing that matters inside them, killing one loses
nothing: the endpoint keeps answering from the others while its replacement
starts. The controller is a plain process (no daemon); ``service rm`` stops it,
and it removes its replicas on the way out.

Run as ``python -m labkit.service ROOT NAME FD...`` (the engine does this).
"""

from __future__ import annotations

import selectors
import signal
import socket
import sys
import threading
import time
from typing import Any

LABEL = "labkit.service"
SLOT_LABEL = "labkit.service.slot"
TICK = 0.25
CONNECT_TIMEOUT = 0.2


def replica_name(service: str, slot: int) -> str:
    """Replica names as Docker's swarm numbers tasks: ``web.1``, ``web.2``…"""
    return f"{service}.{slot}"


class Controller:
    """Keeps a service's replicas running and balances its port across them."""

    def __init__(self, root: str, name: str, listeners: list[socket.socket]) -> None:
        from labkit.engine import Engine

        self.engine = Engine(root=root, backend="linux")
        self.name = name
        self.listeners = listeners
        self.stopping = threading.Event()
        self.targets: list[tuple[str, int]] = []
        self.gone: set[tuple[str, int]] = set()  # replicas that went: their open connections are cut
        self.next = 0
        self.lock = threading.Lock()

    # -- replicas ------------------------------------------------------------------------------
    def record(self) -> dict[str, Any] | None:
        from labkit.store import read_json

        return read_json(self.engine.store.root / "services" / f"{self.name}.json")

    def replicas(self) -> list[dict[str, Any]]:
        return [c for c in self.engine.ps(all=True) if (c.get("Labels") or {}).get(LABEL) == self.name]

    def reconcile(self) -> None:
        """Make the running replicas match the record: replace the dead, add or remove for scale."""
        spec = self.record()
        if spec is None:
            self.stopping.set()
            return
        present = {int(c["Labels"][SLOT_LABEL]): c for c in self.replicas()}
        for slot, c in list(present.items()):
            if c["State"] != "running" or slot > spec["Replicas"]:
                self.engine.rm(c["Id"], force=True)
                del present[slot]
        for slot in range(1, spec["Replicas"] + 1):
            if slot not in present:
                self.engine.run(spec["Image"], spec.get("Command") or None, detach=True,
                                name=replica_name(self.name, slot), env=spec.get("Env") or None,
                                network=spec.get("Network") or None,
                                labels={LABEL: self.name, SLOT_LABEL: str(slot)})
        targets = []
        for c in self.replicas():
            if c["State"] == "running":
                ip = self.engine.inspect(c["Id"])["NetworkSettings"]["IPAddress"]
                if ip:
                    targets.append((ip, spec["ContainerPort"]))
        with self.lock:
            self.gone |= set(self.targets) - set(targets)
            self.targets = sorted(targets)

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
                f.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        except OSError:
            pass

    # -- load balancing ------------------------------------------------------------------------
    def pick(self) -> list[tuple[str, int]]:
        """The targets in round-robin order, starting after the one used last."""
        with self.lock:
            if not self.targets:
                return []
            i = self.next % len(self.targets)
            self.next += 1
            return self.targets[i:] + self.targets[:i]

    def forget(self, target: tuple[str, int]) -> None:
        """Stop sending connections to a replica that did not answer (until the next reconcile says otherwise)."""
        with self.lock:
            if target in self.targets:
                self.targets.remove(target)
            self.gone.add(target)

    def serve(self) -> None:
        sel = selectors.DefaultSelector()
        for sock in self.listeners:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, None)
        while not self.stopping.is_set():
            for key, _ in sel.select(timeout=TICK):
                if key.data is None:
                    self.accept(key.fileobj, sel)  # type: ignore[arg-type]
                elif key.fd in sel.get_map():  # not closed earlier in this batch with its pair
                    self.relay(key.fileobj, key.data[0], sel)  # type: ignore[arg-type]
            self.cut_gone(sel)
        sel.close()

    def accept(self, listener: socket.socket, sel: selectors.BaseSelector) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        for target in self.pick():
            up = socket.socket()
            # On a local bridge a live replica answers in microseconds; a dead one's address
            # stops answering ARP, so waiting long only delays the client.
            up.settimeout(CONNECT_TIMEOUT)
            try:
                up.connect(target)
            except OSError:
                up.close()
                self.forget(target)
                continue
            client.setblocking(False)
            up.setblocking(False)
            sel.register(client, selectors.EVENT_READ, (up, target))
            sel.register(up, selectors.EVENT_READ, (client, target))
            return
        client.close()

    def cut_gone(self, sel: selectors.BaseSelector) -> None:
        """Close connections to replicas that went: a killed replica's address stops answering
        without a reset, and its clients would otherwise wait for their own timeouts."""
        with self.lock:
            gone, self.gone = self.gone, set()
        if not gone:
            return
        for key in list(sel.get_map().values()):
            if key.data is not None and key.data[1] in gone and key.fd in sel.get_map():
                self.relay_close(key.fileobj, key.data[0], sel)  # type: ignore[arg-type]

    def relay(self, src: socket.socket, dst: socket.socket, sel: selectors.BaseSelector) -> None:
        try:
            data = src.recv(65536)
            if data:
                dst.setblocking(True)
                dst.sendall(data)
                dst.setblocking(False)
                return
        except OSError:
            pass
        self.relay_close(src, dst, sel)

    @staticmethod
    def relay_close(src: socket.socket, dst: socket.socket, sel: selectors.BaseSelector) -> None:
        for s in (src, dst):
            try:
                sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

    # -- life ----------------------------------------------------------------------------------
    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        watcher = threading.Thread(target=self.watch, daemon=True)
        watcher.start()
        try:
            self.serve()
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
    root, name, *fds = argv
    listeners = [socket.socket(fileno=int(fd)) for fd in fds]
    Controller(root, name, listeners).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
