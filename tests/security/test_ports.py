"""Published ports and container addresses, tried from a neighbour: a host that forwards must not carry them.

The neighbour is a network namespace joined to the host by a veth pair, with a
route to the bridge's subnet through the host — a machine on the classroom
network whose owner added that route. The host forwards what it receives, as a
host with Docker installed does (``net.ipv4.ip_forward=1``, FORWARD accepting).

Forwarding is switched on where the kernel reads it — the receiving interface's
``net.ipv4.conf.<if>.forwarding``, which ``ip_forward=1`` sets on every interface
(ip-sysctl.rst) — for the test's own interfaces only, and an iptables FORWARD
chain, if there is one, gets ACCEPT rules for them alone: tests of other sessions
on a shared host, which may set and restore the same switches at the same time,
never leave the whole host forwarding.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.linux import network as net
from tests.rootless.test_rootless import (  # noqa: F401  (pasta_only_path is a fixture)
    PRELUDE,
    SERVE_AND_FETCH,
    _need_slirp4netns,
    as_learner,
    pasta_only_path,
)

pytestmark = pytest.mark.root

SERVE = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"

#: Run in the neighbour's namespace: connect to argv[1]:argv[2] and say how it went.
PROBE = """
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    print("answered" if s.recv(100) else "connected")
except ConnectionRefusedError:
    print("refused")
except OSError as err:
    print("timeout" if isinstance(err, TimeoutError) else f"error {err.errno}")
"""


@dataclass
class Neighbour:
    """A network namespace with a veth pair to the host: ``host_ip`` on the host's end, ``ip`` on its own."""

    netns: str
    link: str
    host_ip: str
    ip: str

    def route(self, subnet: str) -> None:
        """Route ``subnet`` through the host, as a neighbour that knows where the bridge is would."""
        subprocess.run(["ip", "-n", self.netns, "route", "replace", subnet, "via", self.host_ip], check=True)

    def connect(self, ip: str, port: int, timeout: float = 2.0) -> str:
        """``answered``, ``connected``, ``refused`` or ``timeout``: a TCP connection to ``ip:port`` from here."""
        done = subprocess.run(["ip", "netns", "exec", self.netns, sys.executable, "-c", PROBE, ip, str(port),
                               str(timeout)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@contextlib.contextmanager
def forwarding(*links: str):
    """The host forwards what arrives on ``links`` for the block: each one's conf/<if>/forwarding set to 1, and
    ACCEPT rules for them at the head of an iptables FORWARD chain if one exists (iptables' own or, without the
    iptables command, iptables-nft's ``ip filter FORWARD`` through nft); all put back after."""
    saved = {link: Path(f"/proc/sys/net/ipv4/conf/{link}/forwarding").read_text().strip() for link in links}
    rules = [arg for link in links for arg in (["-i", link], ["-o", link])]
    tag = f"labkit-test-{secrets.token_hex(3)}"
    iptables = shutil.which("iptables")
    nft_chain = not iptables and subprocess.run(["nft", "list", "chain", "ip", "filter", "FORWARD"],
                                                capture_output=True).returncode == 0
    try:
        for link in links:
            Path(f"/proc/sys/net/ipv4/conf/{link}/forwarding").write_text("1")
        for rule in rules:
            if iptables:
                subprocess.run([iptables, "-I", "FORWARD", *rule, "-j", "ACCEPT"], check=True)
            elif nft_chain:
                match = {"-i": "iifname", "-o": "oifname"}[rule[0]]
                subprocess.run(["nft", "insert", "rule", "ip", "filter", "FORWARD", match, rule[1], "accept",
                                "comment", f'"{tag}"'], check=True)
        yield
    finally:
        for link, value in saved.items():
            if os.path.exists(f"/proc/sys/net/ipv4/conf/{link}"):
                Path(f"/proc/sys/net/ipv4/conf/{link}/forwarding").write_text(value)
        for rule in rules:
            if iptables:
                subprocess.run([iptables, "-D", "FORWARD", *rule, "-j", "ACCEPT"], capture_output=True)
        if nft_chain:
            listing = subprocess.run(["nft", "-a", "list", "chain", "ip", "filter", "FORWARD"], capture_output=True,
                                     text=True).stdout
            for line in listing.splitlines():
                if tag in line and "# handle" in line:
                    subprocess.run(["nft", "delete", "rule", "ip", "filter", "FORWARD", "handle",
                                    line.rsplit("# handle", 1)[1].strip()], check=True)


@pytest.fixture
def neighbour():
    """A neighbour on a /30 of 198.18.0.0/15 (RFC 2544's benchmarking range)."""
    suffix = secrets.token_hex(3)
    taken = [n for n, _ in net.subnets_in_use()]
    link_net = next(n for n in (ipaddress.IPv4Network(f"198.18.{secrets.randbelow(256)}.{4 * secrets.randbelow(64)}/30")
                                for _ in range(100)) if not any(n.overlaps(t) for t in taken))
    host_ip, ip = (str(h) for h in link_net.hosts())
    nb = Neighbour(f"labkit-nb-{suffix}", f"lknb{suffix}", host_ip, ip)
    subprocess.run(["ip", "netns", "add", nb.netns], check=True)
    try:
        for argv in (["ip", "link", "add", nb.link, "type", "veth", "peer", "name", "eth0", "netns", nb.netns],
                     ["ip", "addr", "add", f"{host_ip}/30", "dev", nb.link],
                     ["ip", "link", "set", nb.link, "up"],
                     ["ip", "-n", nb.netns, "addr", "add", f"{ip}/30", "dev", "eth0"],
                     ["ip", "-n", nb.netns, "link", "set", "eth0", "up"],
                     ["ip", "-n", nb.netns, "link", "set", "lo", "up"]):
            subprocess.run(argv, check=True, capture_output=True)
        yield nb
    finally:
        subprocess.run(["ip", "netns", "del", nb.netns], capture_output=True)  # its veth end, and so ours, go too
        subprocess.run(["ip", "link", "del", nb.link], capture_output=True)


def _page(url: str, timeout: float = 20.0) -> str:
    end = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def _guarded(bridge: str) -> bool:
    return bridge in net.guarded_bridges()


def test_a_neighbour_reaches_neither_the_gateway_port_nor_a_container_address(engine, neighbour):
    """With the host forwarding and a route to the bridge through it, a neighbour gets nothing from the gateway's
    published port or the container's own address; the host's 127.0.0.1 port answers, and containers on the bridge
    still reach the port through the gateway and each other directly. Without labkit's nftables table the neighbour
    would reach the container (the control), and the gateway's port still refuses it (bound to the bridge)."""
    web = engine.run("busybox", ["sh", "-c", SERVE], detach=True, ports=["8080"])
    ns = web.inspect()["NetworkSettings"]
    gateway, ip, port = ns["Gateway"], ns["IPAddress"], int(ns["Ports"]["8080/tcp"][0]["HostPort"])
    rec = engine.network_inspect("bridge")
    subnet, bridge = rec["IPAM"]["Config"][0]["Subnet"], rec["Options"]["com.docker.network.bridge.name"]
    hello = f"hello from {web.id[:12]}"
    assert _page(f"http://127.0.0.1:{port}/").strip() == hello, "the host's 127.0.0.1 port answers"
    assert _page(f"http://{ip}:8080/").strip() == hello, "the host reaches the container's address"
    with forwarding(neighbour.link, bridge):
        neighbour.route(subnet)
        assert neighbour.connect(neighbour.host_ip, 1) == "refused", "the neighbour's link to the host works"
        assert neighbour.connect(gateway, port) in ("timeout", "refused")
        assert neighbour.connect(ip, 8080) in ("timeout", "refused")
        client = engine.run("busybox", ["sh", "-c", f"wget -qO- http://{gateway}:{port}/; wget -qO- http://{ip}:8080/"])
        assert client.logs().count(hello) == 2, "containers still reach the published port and each other"

        assert _guarded(bridge), f"bridge {bridge} has its nftables table"
        net.unguard_bridge(bridge)
        try:
            assert neighbour.connect(ip, 8080) == "answered", "control: without the table the host forwards to it"
            assert neighbour.connect(gateway, port) == "refused", "the gateway's port is bound to the bridge alone"
        finally:
            net.guard_bridge(bridge, ipaddress.IPv4Network(subnet), gateway)
        assert neighbour.connect(ip, 8080) in ("timeout", "refused")


def test_networks_do_not_reach_each_other_through_the_host(engine):
    """With the host forwarding, a container on one network cannot reach a container on another network (its
    packets arrive on the wrong bridge, and so would the answers), as Docker isolates its networks; without the
    two tables it could."""
    engine.network_create("left")
    engine.network_create("right")
    made = []
    try:
        web = engine.run("busybox", ["sh", "-c", SERVE], detach=True, network="right")
        client = engine.run("busybox", ["sleep", "60"], detach=True, network="left")
        made += [web, client]
        guards = [(rec["Options"]["com.docker.network.bridge.name"], rec["IPAM"]["Config"][0])
                  for rec in (engine.network_inspect(n) for n in ("left", "right"))]
        with forwarding(*(bridge for bridge, _ in guards)):
            # busybox 1.35's wget -T crashes (SIGSEGV, on the host too): timeout(1) bounds the wait instead
            probe = ["timeout", "3", "wget", "-q", "-O-", f"http://{web.inspect()['NetworkSettings']['IPAddress']}:8080/"]
            assert client.exec(probe)[0] != 0, "left's container reaches right's across the host"
            for bridge, _ in guards:
                net.unguard_bridge(bridge)
            try:
                code, out = client.exec(probe)
                assert code == 0 and out.strip() == f"hello from {web.id[:12]}", "control: without the tables it could"
            finally:
                for bridge, cfg in guards:
                    net.guard_bridge(bridge, ipaddress.IPv4Network(cfg["Subnet"]), cfg["Gateway"])
            assert client.exec(probe)[0] != 0
    finally:
        for c in made:
            c.remove(force=True)
        engine.network_rm("left")
        engine.network_rm("right")


def test_the_gateway_port_is_not_the_hosts_either(engine):
    """A port published on 127.0.0.1 answers there and nowhere else on the host: the gateway's copy is for the
    bridge's containers only, so the host connecting to the gateway address is refused."""
    web = engine.run("busybox", ["sh", "-c", SERVE], detach=True, ports=["8080"])
    ns = web.inspect()["NetworkSettings"]
    port = int(ns["Ports"]["8080/tcp"][0]["HostPort"])
    assert "hello from" in _page(f"http://127.0.0.1:{port}/")
    import socket

    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((ns["Gateway"], port)) == errno.ECONNREFUSED


def test_the_table_goes_with_its_bridge(engine):
    """Each bridge comes up with an nftables table named after it, and the table goes when the bridge goes."""
    engine.network_create("guarded")
    try:
        c = engine.run("busybox", ["sleep", "30"], detach=True, network="guarded")
        bridge = engine.network_inspect("guarded")["Options"]["com.docker.network.bridge.name"]
        assert _guarded(bridge)
        subnet = engine.network_inspect("guarded")["IPAM"]["Config"][0]["Subnet"]
        rules = subprocess.run(["nft", "list", "table", "ip", net.guard_table(bridge)], capture_output=True,
                               text=True).stdout
        assert f"ip daddr {subnet}" in rules and "hook prerouting priority raw" in rules and "drop" in rules
        engine.rm(c.id, force=True)
    finally:
        engine.network_rm("guarded")
    assert not os.path.exists(f"/sys/class/net/{bridge}") and not _guarded(bridge)


@pytest.mark.parametrize("helper", ["slirp4netns", "pasta"])
def test_rootless_ports_listen_on_loopback_only(learner, neighbour, helper, request):
    """Rootless, -p is published by the user-mode network helper (slirp4netns, or pasta where slirp4netns is
    missing) on 127.0.0.1 only — its one listening socket, per /proc/net/tcp and tcp6 — and the container's
    10.0.2.100 exists only inside its own namespace: the neighbour reaches neither."""
    path = request.getfixturevalue("pasta_only_path") if helper == "pasta" else None
    if helper == "slirp4netns":
        _need_slirp4netns()
    # What the host carried before: a host in a VM behind NAT may itself be on 10.0.2.0/24 (QEMU's and VirtualBox's
    # user network), the very subnet the helpers give the container inside its own namespace.
    before = set(net.subnets_in_use())
    got = as_learner(learner, PRELUDE + SERVE_AND_FETCH + """
    with open(f"{lab.store.container_dir(c.id)}/network.json") as f:
        driver = json.load(f)["Driver"]
    print(json.dumps({"page": page, "port": port, "ip": ns["IPAddress"], "driver": driver}))
    """, path=path)
    try:
        assert got["page"] == "hello-rootless\n"
        assert helper in got["driver"]
        port = int(got["port"])
        listeners = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.split(":")[1], 16) == port:
                    listeners.add(local.split(":")[0])
        assert listeners == {"0100007F"}, f"listening on {listeners}: only 127.0.0.1 (0100007F) expected"
        assert neighbour.connect(neighbour.host_ip, port) == "refused"
        inside = ipaddress.IPv4Network(f"{got['ip']}/24", strict=False)
        added = set(net.subnets_in_use()) - before
        assert not [n for n, _ in added if n.overlaps(inside)], "no host interface carries it"
    finally:
        done = as_learner(learner, PRELUDE + """
        lab.rm("web", force=True)
        print(json.dumps({"left": len(lab.ps(all=True))}))
        """, path=path)
        assert done["left"] == 0
