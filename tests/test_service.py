"""The service load balancer, on plain sockets: round robin, and a replica's failure hidden while it can be."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from labkit.service import Balancer
from tests.util import wait_for


class Replica:
    """A tiny TCP server on 127.0.0.1 that runs ``handle(conn, replica)`` for each connection it accepts."""

    def __init__(self, name: str, handle: Callable[[socket.socket, Replica], None], backlog: int = 16) -> None:
        self.name = name
        self.handle = handle
        self.seen: list[bytes] = []  # what each connection sent, as far as the handler read it
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.target = self.sock.getsockname()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.handle(conn, self)

    def line(self, conn: socket.socket) -> bytes:
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        self.seen.append(data)
        return data

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept(2) in loop()
        self.sock.close()
        for conn in self.held:
            conn.close()


def answers(conn: socket.socket, me: Replica) -> None:
    """Reads a line, answers with its name and the line, closes."""
    line = me.line(conn)
    conn.sendall(me.name.encode() + b":" + line)
    conn.close()


def resets(conn: socket.socket, me: Replica) -> None:
    """Like a replica killed with the connection in its accept queue: a reset, no answer."""
    me.seen.append(b"")
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close(2) sends RST, socket(7)
    conn.close()


def drops(conn: socket.socket, me: Replica) -> None:
    """Like a replica killed mid-request: it read the request and closed without a byte back."""
    me.line(conn)
    conn.close()


def cuts_short(conn: socket.socket, me: Replica) -> None:
    """Answers part of a reply, then dies."""
    me.line(conn)
    conn.sendall(b"part")
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def holds(conn: socket.socket, me: Replica) -> None:
    """Reads a line, answers it, and keeps the connection open."""
    me.line(conn)
    conn.sendall(b"first\n")
    me.held.append(conn)


def stalls(conn: socket.socket, me: Replica) -> None:
    """Reads a line and never answers."""
    me.line(conn)
    me.held.append(conn)


def upper_at_end(conn: socket.socket, me: Replica) -> None:
    """Reads until the client's end of sending, then answers all of it in capitals."""
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    me.seen.append(data)
    conn.sendall(data.upper())
    conn.close()


@pytest.fixture
def replicas() -> Iterator[Callable[..., Replica]]:
    made: list[Replica] = []

    def make(name: str, handle: Callable[[socket.socket, Replica], None], backlog: int = 16) -> Replica:
        made.append(Replica(name, handle, backlog))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def balancer() -> Iterator[Balancer]:
    listener = socket.create_server(("127.0.0.1", 0))
    lb = Balancer([listener], keep=64)
    stop = threading.Event()
    thread = threading.Thread(target=lb.serve, args=(stop,), daemon=True)
    thread.start()
    lb.port = listener.getsockname()[1]  # type: ignore[attr-defined]
    yield lb
    stop.set()
    thread.join(5)
    listener.close()
    assert not thread.is_alive(), "the balancer stops when asked"
    assert not lb.links, "stopping closes every link"


def ask(lb: Balancer, data: bytes = b"hello\n", half_close: bool = False) -> bytes:
    """One connection through the balancer: send ``data``, read until the end."""
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as s:  # type: ignore[attr-defined]
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(4096):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def test_connections_go_to_the_replicas_in_turn(balancer, replicas):
    """Each new connection goes to the next replica: six connections over three replicas, two each, in order."""
    rs = [replicas(f"r{i}", answers) for i in range(3)]
    balancer.set_targets([r.target for r in rs])
    got = [ask(balancer).split(b":")[0].decode() for _ in range(6)]
    order = [r.name for r in sorted(rs, key=lambda r: r.target)]
    assert got == order + order


def test_with_no_replica_the_client_is_closed_at_once(balancer):
    """No target: the client reads the end, not a hang."""
    assert ask(balancer) == b""


def test_a_refusing_replica_is_skipped_and_forgotten(balancer, replicas):
    """A replica's address that refuses connections is skipped, and left out until it is named again."""
    good = replicas("good", answers)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()
    balancer.set_targets([dead, good.target])
    assert [ask(balancer) for _ in range(4)] == [b"good:hello\n"] * 4
    assert balancer.targets == [good.target]


def test_a_replica_that_never_answers_the_handshake_is_given_up(replicas):
    """A SYN that is dropped (a full accept queue, as a dead replica's silent address) costs one connect deadline."""
    good = replicas("good", answers)
    full = socket.create_server(("127.0.0.1", 0), backlog=0)  # nobody accepts; listen(2) queues one connection
    plug = socket.create_connection(full.getsockname())
    listener = socket.create_server(("127.0.0.1", 0))
    lb = Balancer([listener], connect_timeout=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=lb.serve, args=(stop,), daemon=True)
    thread.start()
    lb.port = listener.getsockname()[1]  # type: ignore[attr-defined]
    try:
        with pytest.raises(TimeoutError):  # the scenario holds: this address does not answer a handshake
            socket.create_connection(full.getsockname(), timeout=0.3).close()
        lb.set_targets([full.getsockname(), good.target])
        assert [ask(lb) for _ in range(3)] == [b"good:hello\n"] * 3
        assert lb.targets == [good.target]
    finally:
        stop.set()
        thread.join(5)
        for s in (listener, plug, full):
            s.close()


@pytest.mark.parametrize("failure", [resets, drops], ids=["reset", "closed"])
def test_a_replica_failing_before_its_answer_is_replaced_and_the_request_replayed(balancer, replicas, failure):
    """A replica that resets or closes before a byte back: the client's request goes, whole, to the next one."""
    bad, good = replicas("bad", failure), replicas("good", answers)
    balancer.set_targets([bad.target, good.target])
    assert [ask(balancer) for _ in range(4)] == [b"good:hello\n"] * 4
    assert len(bad.seen) == 2, "every other connection reached the failing replica first"
    assert good.seen == [b"hello\n"] * 4


def test_an_answer_cut_short_reaches_the_client_as_it_is(balancer, replicas):
    """Once a replica has sent a byte, its failure is the client's: a replay could answer twice."""
    bad, good = replicas("bad", cuts_short), replicas("good", answers)
    balancer.set_targets([bad.target, good.target])
    got = sorted(ask(balancer) for _ in range(2))
    assert got == [b"good:hello\n", b"part"]
    assert len(good.seen) == 1


def test_a_request_too_big_to_keep_is_not_replayed(balancer, replicas):
    """Past ``keep`` bytes the request is not kept, so a failed replica's client sees the end."""
    bad, good = replicas("bad", drops), replicas("good", answers)
    balancer.set_targets([bad.target, good.target])
    big = b"x" * 100 + b"\n"
    got = sorted(ask(balancer, big) for _ in range(2))
    assert got == [b"", b"good:" + big]
    assert good.seen == [big]


def test_a_half_close_reaches_the_replica_and_its_answer_comes_back(balancer, replicas):
    """The client's end of sending is passed on; the replica's answer after it still arrives."""
    r = replicas("r", upper_at_end)
    balancer.set_targets([r.target])
    assert ask(balancer, b"abc", half_close=True) == b"ABC"
    assert r.seen == [b"abc"]


def test_links_to_a_replica_that_went_are_cut_or_replayed(balancer, replicas):
    """When a replica leaves the targets, a client it answered sees the end; one it had not answered is replayed."""
    held, stalled, good = replicas("held", holds), replicas("stalled", stalls), replicas("good", answers)
    balancer.set_targets([held.target])
    answered = socket.create_connection(("127.0.0.1", balancer.port), timeout=5)
    answered.sendall(b"hello\n")
    assert answered.recv(100) == b"first\n"
    balancer.set_targets([stalled.target])
    assert answered.recv(100) == b"", "the answered client reads the end"
    answered.close()
    waiting = socket.create_connection(("127.0.0.1", balancer.port), timeout=5)
    waiting.sendall(b"again\n")
    assert wait_for(lambda: stalled.seen == [b"again\n"])
    balancer.set_targets([good.target])
    assert waiting.recv(100) == b"good:again\n"
    waiting.close()


class Recorder:
    """An engine with just what a controller uses: replicas as records, and every verb written down."""

    def __init__(self, root, balancer_of):
        self.store = type("Store", (), {"root": root})()
        self.replicas: dict[str, dict] = {}
        self.calls: list[tuple] = []
        self.balancer_of = balancer_of

    def ps(self, all=False):
        return list(self.replicas.values())

    def inspect(self, cid):
        raise AssertionError("a controller reads its replicas' addresses from ps, not one inspect each per tick")

    def rm(self, cid, force=False):
        self.calls.append(("rm", cid, list(self.balancer_of().targets)))
        del self.replicas[cid]

    def run(self, image, command, *, detach, name, env, network, ports, labels):
        self.calls.append(("run", name, list(self.balancer_of().targets)))
        slot = labels["labkit.service.slot"]
        published = ports == ["127.0.0.1::3000"]  # rootless: a free port of 127.0.0.1
        self.replicas[name] = {
            "Id": name, "Names": [f"/{name}"], "State": "running", "Labels": labels,
            "Ports": [{"IP": "127.0.0.1", "PrivatePort": 3000, "PublicPort": 40000 + int(slot), "Type": "tcp"}]
            if published else [],
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "" if published else f"10.0.0.{10 + int(slot)}"}}},
        }


def _controller(tmp_path, name: str, image: str, port: int, backend: str = "linux"):
    """A controller of a two-replica service over a :class:`Recorder` engine, on a state root of its own."""
    from labkit.service import Controller
    from labkit.store import write_json

    (tmp_path / "services").mkdir()
    write_json(tmp_path / "services" / f"{name}.json", {"Name": name, "Image": image, "Replicas": 2,
                                                        "ContainerPort": port})
    controller = None
    engine = Recorder(tmp_path, lambda: controller.balancer)
    controller = Controller(str(tmp_path), name, [], engine=engine, backend=backend)
    return controller, engine


def test_a_dead_replica_leaves_the_rotation_before_its_replacement_starts(tmp_path):
    """The balancer stops using a replica that died (and replays what it held) before anything is started."""
    controller, engine = _controller(tmp_path, "web", "app", 3000)
    controller.reconcile()
    assert [c[:2] for c in engine.calls] == [("run", "web.1"), ("run", "web.2")]
    assert controller.balancer.targets == [("10.0.0.11", 3000), ("10.0.0.12", 3000)]
    engine.calls.clear()
    engine.replicas["web.2"]["State"] = "exited"
    controller.reconcile()
    assert engine.calls == [("rm", "web.2", [("10.0.0.11", 3000)]), ("run", "web.2", [("10.0.0.11", 3000)])]
    assert ("10.0.0.12", 3000) in controller.balancer.gone, "links the dead replica held are cut or replayed"
    assert controller.balancer.targets == [("10.0.0.11", 3000), ("10.0.0.12", 3000)]


def test_rootless_replicas_are_reached_through_their_published_ports(tmp_path):
    """Rootless there is no bridge to reach: each replica publishes its port on 127.0.0.1 and is reached there."""
    controller, engine = _controller(tmp_path, "web", "app", 3000, backend="rootless")
    controller.reconcile()
    assert controller.balancer.targets == [("127.0.0.1", 40001), ("127.0.0.1", 40002)]


def test_a_rootless_service_without_a_port_publishes_nothing(tmp_path):
    """A service with no -p (replicas that only run) publishes nothing rootless, and balances nothing."""
    controller, engine = _controller(tmp_path, "jobs", "busybox", 0, backend="rootless")
    controller.reconcile()
    assert sorted(engine.replicas) == ["jobs.1", "jobs.2"]
    assert all(c["Ports"] == [] for c in engine.replicas.values())
    assert controller.balancer.targets == []
