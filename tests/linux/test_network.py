"""Container networking on the real kernel: own interfaces, an address, published ports, names on user networks."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from labkit import helpers
from labkit.errors import Conflict
from labkit.linux import network as net
from labkit.networks import pick_subnet
from labkit.store import write_json
from tests.conftest import state_root
from tests.util import scaled, wait_for

pytestmark = pytest.mark.root

SERVE = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"


def http(url: str, timeout: float = 20.0) -> str:
    end = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def test_bridge_gives_an_address_like_docker(engine):
    """A container on the default bridge gets the next address, the gateway route and Docker's MAC."""
    c = engine.run("busybox", ["sleep", "30"], detach=True)
    ns = c.inspect()["NetworkSettings"]
    ip, gw = ns["IPAddress"], ns["Gateway"]
    assert ip and gw and ns["IPPrefixLen"] >= 16
    assert ns["MacAddress"] == "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    assert ns["Networks"]["bridge"]["IPAddress"] == ip
    code, out = c.exec(["ip", "-o", "-4", "addr", "show", "eth0"])
    assert f"inet {ip}/{ns['IPPrefixLen']}" in out
    code, out = c.exec(["ip", "route"])
    assert f"default via {gw}" in out
    code, out = c.exec(["cat", "/etc/hosts", "/etc/hostname"])
    assert f"{ip}\t{c.id[:12]}" in out and out.rstrip().endswith(c.id[:12])
    assert not [d for d in c.diff() if d["Path"].startswith("/etc")], "per-container /etc files stay out of diff"
    c.stop(timeout=0)
    assert c.inspect()["NetworkSettings"]["IPAddress"] == "", "a stopped container holds no address"


def test_network_modes(engine):
    """--network none gives only lo; host shares the host's interfaces and namespace."""
    none = engine.run("busybox", ["sleep", "30"], detach=True, network="none")
    host = engine.run("busybox", ["sleep", "30"], detach=True, network="host")
    assert none.exec(["ls", "/sys/class/net"])[1].split() == ["lo"]
    assert os.readlink(f"/proc/{host.pid}/ns/net") == os.readlink("/proc/self/ns/net")
    assert none.inspect()["HostConfig"]["NetworkMode"] == "none"


def test_published_port_reaches_the_container(engine):
    """-p publishes on 127.0.0.1 by default: the host reaches it on loopback, other containers via the gateway."""
    web = engine.run("busybox", ["sh", "-c", SERVE], detach=True, ports=["18080:8080"])
    assert http("http://127.0.0.1:18080/").strip() == f"hello from {web.id[:12]}"
    ns = web.inspect()["NetworkSettings"]
    assert ns["Ports"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]}
    row = [r for r in engine.ps() if r["Id"] == web.id][0]
    assert row["Ports"] == [{"IP": "127.0.0.1", "PrivatePort": 8080, "PublicPort": 18080, "Type": "tcp"}]
    client = engine.run("busybox", ["sh", "-c", f"wget -qO- http://{ns['Gateway']}:18080/; "
                                                f"wget -qO- http://{ns['IPAddress']}:8080/"])
    assert client.logs().count(f"hello from {web.id[:12]}") == 2
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 18080)) == 0


def test_random_host_port(engine):
    """-p CONTAINERPORT picks a free host port and inspect says which."""
    web = engine.run("busybox", ["sh", "-c", SERVE], detach=True, ports=["8080"])
    port = web.inspect()["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    assert int(port) > 1024
    assert "hello from" in http(f"http://127.0.0.1:{port}/")


def test_port_in_use_is_refused_cleanly(engine):
    """A host port already in use fails the start with a clear error and leaves no namespace or mount behind."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        c = engine.create("busybox", ["sleep", "30"], ports=[f"{port}:80"])
        with pytest.raises(Conflict, match=f"Bind for 127.0.0.1:{port} failed: address already in use"):
            c.start()
    info = c.inspect()
    assert info["State"]["Status"] == "created"
    assert not os.path.ismount(info["GraphDriver"]["Data"]["MergedDir"])
    assert not os.path.ismount(os.path.join(os.path.dirname(info["LogPath"]), "netns"))


def test_user_network_resolves_names(engine):
    """On a user-defined network containers reach each other by name, as Docker's embedded DNS allows."""
    engine.network_create("labnet")
    try:
        db = engine.run("busybox", ["sh", "-c", SERVE], detach=True, name="db", network="labnet")
        app = engine.run("busybox", ["sh", "-c", "sleep 30"], detach=True, name="app", network="labnet")
        code, out = app.exec(["wget", "-qO-", "http://db:8080/"])
        assert code == 0 and out.strip() == f"hello from {db.id[:12]}"
        code, out = db.exec(["cat", "/etc/hosts"])
        assert "\tapp" in out, "the earlier container learned the newcomer's name"
        subnet = engine.network_inspect("labnet")["IPAM"]["Config"][0]["Subnet"]
        assert subnet != engine.network_inspect("bridge")["IPAM"]["Config"][0]["Subnet"]
        with pytest.raises(Conflict, match="has active endpoints"):
            engine.network_rm("labnet")
        db.remove(force=True)
        app.remove(force=True)
    finally:
        bridge = engine.network_inspect("labnet")["Options"]["com.docker.network.bridge.name"]
        engine.network_rm("labnet")
    assert not os.path.exists(f"/sys/class/net/{bridge}"), "network rm takes its bridge down"


def _links(cid: str) -> set[str]:
    """The host's links of container ``cid`` (the host is shared: other runs' links come and go meanwhile)."""
    return {n for n in os.listdir("/sys/class/net") if n.startswith(f"lk{cid[:10]}")}


def test_network_connect_hot_plugs_a_running_container(engine):
    """network connect gives a running container one more interface at once (the next ethN, its address on the
    network, the MAC from it), reached by name and alias from its peers there over the new bridge; the default
    route goes through the gateway of the network whose name sorts first, as libnetwork's does; disconnect
    deletes the veth pair at once (the host end is gone), and stop and rm leave no veth of the container."""
    engine.network_create("lk-hot-a")
    engine.network_create("lk-hot-b")
    try:
        db = engine.run("busybox", ["sh", "-c", SERVE], detach=True, name="hot-db", network="lk-hot-a")
        app = engine.run("busybox", ["sleep", "300"], detach=True, name="hot-app", network="lk-hot-b")
        before = _links(app.id)
        engine.network_connect("lk-hot-a", "hot-app", aliases=["front"])
        live = app.inspect()["NetworkSettings"]["Networks"]["lk-hot-a"]
        veths = _links(app.id) - before
        assert veths == {net.veth_name(app.id, 1)}, veths
        code, out = app.exec(["ip", "-o", "-4", "addr", "show", "eth1"])
        assert code == 0 and f"inet {live['IPAddress']}/{live['IPPrefixLen']}" in out
        assert app.exec(["cat", "/sys/class/net/eth1/address"])[1].strip() == live["MacAddress"]
        code, out = app.exec(["wget", "-qO-", "http://hot-db:8080/"])
        assert code == 0 and out.strip() == f"hello from {db.id[:12]}", "it reaches a peer by name"
        assert db.exec(["ping", "-c", "1", "-W", "5", "front"])[0] == 0, "the peer reaches it by its alias"
        gateway = live["Gateway"]
        assert app.exec(["ip", "route", "show", "default"])[1].split()[2] == gateway, "lk-hot-a sorts first"
        engine.network_disconnect("lk-hot-a", "hot-app")
        assert wait_for(lambda: _links(app.id) == before), "the veth pair went with disconnect"
        assert app.exec(["ls", "/sys/class/net"])[1].split() == ["eth0", "lo"]
        other = app.inspect()["NetworkSettings"]["Networks"]["lk-hot-b"]["Gateway"]
        assert app.exec(["ip", "route", "show", "default"])[1].split()[2] == other, "the route moved back"
        assert app.exec(["wget", "-T", "2", "-qO-", "http://hot-db:8080/"])[0] != 0, "the name is gone"
        engine.network_connect("lk-hot-a", "hot-app")
        assert app.exec(["ls", "/sys/class/net"])[1].split() == ["eth0", "eth2", "lo"], "numbers are not reused"
        app.stop(timeout=0)
        # The kernel frees a namespace (and its veth pairs) from a workqueue, a moment after its last pin goes.
        assert wait_for(lambda: not _links(app.id)), "stop leaves no veth behind"
        app.start()
        code, out = app.exec(["ls", "/sys/class/net"])
        assert out.split() == ["eth0", "eth1", "lo"], "a start plugs every network it is on, in order"
        assert app.exec(["wget", "-qO-", "http://hot-db:8080/"])[0] == 0
        db.remove(force=True)
        app.remove(force=True)
        assert wait_for(lambda: not _links(app.id)), "rm leaves no veth behind"
    finally:
        for rec in engine.ps(all=True):
            engine.rm(rec["Id"], force=True)
        engine.network_rm("lk-hot-a")
        engine.network_rm("lk-hot-b")


def test_bridge_network_is_listed(engine):
    """network ls lists bridge, host and none first; bridge cannot be removed."""
    names = [n["Name"] for n in engine.network_ls()]
    assert names[:3] == ["bridge", "host", "none"]
    with pytest.raises(Conflict, match="pre-defined network"):
        engine.network_rm("bridge")
    assert json.dumps(engine.network_inspect("bridge"))


def test_second_container_cannot_take_a_used_port(engine):
    """A host port published by one container is refused to a second one, which is left created and unmounted."""
    engine.run("busybox", ["sh", "-c", SERVE], detach=True, ports=["18085:8080"])
    second = engine.create("busybox", ["sh", "-c", SERVE], ports=["18085:8080"])
    with pytest.raises(Conflict, match="Bind for 127.0.0.1:18085 failed: address already in use"):
        second.start()
    assert second.status == "created"
    assert not os.path.ismount(second.inspect()["GraphDriver"]["Data"]["MergedDir"])


@pytest.mark.parametrize("kwargs, words", [
    ({"ports": ["3000:"]}, "invalid port specification"),
    ({"ports": ["70000:80"]}, "invalid port specification"),
    ({"ports": ["80/icmp"]}, "invalid port specification"),
    ({"network": "nowhere"}, "network nowhere not found"),
])
def test_bad_network_input_creates_nothing(engine, kwargs, words):
    """Malformed -p, a port out of range and an unknown network: one clear error each, no container made."""
    before = len(engine.ps(all=True))
    with pytest.raises(Exception, match=words) as info:
        engine.create("busybox", ["true"], **kwargs)
    assert info.value.hint
    assert len(engine.ps(all=True)) == before


def _bridge(engine, network: str = "bridge") -> str:
    return engine.networks.get(network)["Options"]["com.docker.network.bridge.name"]


def _ifindex(name: str) -> int | None:
    try:
        with open(f"/sys/class/net/{name}/ifindex") as f:
            return int(f.read())
    except FileNotFoundError:
        return None


def test_the_bridge_keeps_its_address_when_its_lowest_port_goes(engine):
    """A bridge's MAC is set when it is made, so it does not follow its lowest port's: when that container goes,
    the others' cached gateway MAC stays right and they still reach the host."""
    engine.network_create("lowest-port")  # a bridge of its own: no other test's container is plugged in
    cs = [engine.run("busybox", ["sleep", "30"], detach=True, network="lowest-port") for _ in range(3)]
    try:
        name = _bridge(engine, "lowest-port")

        def mac(ifname: str) -> str:
            with open(f"/sys/class/net/{ifname}/address") as f:
                return f.read().strip()

        before = mac(name)
        with open(f"/sys/class/net/{name}/addr_assign_type") as f:
            assert f.read().strip() == "3", "NET_ADDR_SET: the address was given, not taken from a port"
        ports = {p: mac(p) for p in os.listdir(f"/sys/class/net/{name}/brif")}
        lowest = min(ports, key=lambda p: ports[p])
        victim = next(c for c in cs if json.loads((engine.store.container_dir(c.id) / "network.json").read_text())
                      ["Veth"] == lowest)
        engine.rm(victim.id, force=True)
        assert mac(name) == before
        survivor = next(c for c in cs if c is not victim)
        gateway = engine.inspect(survivor.id)["NetworkSettings"]["Gateway"]
        code, out = survivor.exec(["ping", "-c", "1", "-W", "2", gateway])
        assert code == 0, out
    finally:
        for c in cs:
            try:
                engine.rm(c.id, force=True)
            except Exception:
                pass
        engine.network_rm("lowest-port")


def test_a_bridge_goes_when_its_last_container_has_been_gone_a_while(engine, monkeypatch):
    """Back-to-back containers share one bridge; once none is plugged in for LABKIT_BRIDGE_IDLE, it goes."""
    monkeypatch.setenv("LABKIT_BRIDGE_IDLE", "1")
    engine.rm(engine.run("busybox", ["true"]).id)
    name = _bridge(engine)
    first = _ifindex(name)
    assert first is not None, "the bridge is up right after its container went"
    c = engine.run("busybox", ["sleep", "30"], detach=True)
    assert _ifindex(name) == first, "the next container plugged into the same bridge"
    time.sleep(1.5)
    assert _ifindex(name) == first, "a bridge in use stays, however long"
    engine.rm(c.id, force=True)
    assert wait_for(lambda: _ifindex(name) is None, timeout=10), "the idle bridge went"
    again = engine.run("busybox", ["ip", "-o", "-4", "addr", "show", "eth0"])
    address = again.logs().split("inet ", 1)[-1].split("/", 1)[0]
    assert "inet " in again.logs() and ipaddress.IPv4Address(address) in _subnet(engine), \
        "the next container brings it back, on the subnet the network now shows"
    engine.rm(again.id)


def test_a_process_that_ends_takes_its_idle_bridges_with_it(engine):
    """A labkit command run in-process exits without waiting out the idle time, and leaves no bridge."""
    root = str(engine.store.root)
    script = f"import labkit; e = labkit.connect(backend='linux', root={root!r}); e.rm(e.run('busybox', ['true']).id)"

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LABKIT_BRIDGE_IDLE": "600"})
    assert done.returncode == 0, done.stderr
    assert _ifindex(_bridge(engine)) is None


def test_prune_on_a_root_that_never_made_a_bridge_returns(tmp_path):
    """Listing networks makes the default network's record under the store's lock: prune must not hold it then."""
    script = ("import labkit; labkit.connect(backend='linux', root=%r).network_prune(); print('pruned')"
              .replace("%r", repr(str(tmp_path / "labkit-test-fresh"))))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "pruned\n"), done.stderr


# -------------------------------------------------------------- subnets that never clash


@contextlib.contextmanager
def _dummy_bridge(name: str, cidr: str):
    """A bridge that is not labkit's (Docker's docker0, say) holding ``cidr``, up for the block, then gone."""
    subprocess.run(["ip", "link", "del", name], capture_output=True)  # a crashed run's leftover
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", cidr, "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def _root_engine():
    return _engine_at(state_root())


def _engine_at(root):
    import labkit

    return labkit.connect(backend="linux", root=root)


def _save_subnet(engine, network: str, subnet: str) -> None:
    """Make ``network``'s saved subnet ``subnet``, as an earlier labkit saved it when the host had it free."""
    path = engine.store.root / "networks" / f"{network}.json"
    rec = json.loads(path.read_text())
    net = ipaddress.IPv4Network(subnet)
    rec["IPAM"]["Config"] = [{"Subnet": str(net), "Gateway": str(next(net.hosts()))}]
    write_json(path, rec)


def _subnet(engine, network: str = "bridge") -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(engine.network_inspect(network)["IPAM"]["Config"][0]["Subnet"])


def test_two_state_roots_beside_a_docker0_get_three_subnets():
    """A docker0-like bridge holds 172.17.0.0/16, and two state roots saved 172.17.0.0/16 for their default network
    while the host had it free: as each root's bridge comes up it checks the host and takes a free pool, so three
    bridges hold three distinct subnets; network inspect shows the subnet in use, the host fetches a page from each
    root's container, and a container of each root reaches its own published port through its gateway."""
    roots = [_root_engine(), _root_engine()]
    webs = []
    try:
        with _dummy_bridge("lkdocker0", "172.17.0.1/16"):
            for lab in roots:
                lab.networks.get("bridge")
                _save_subnet(lab, "bridge", "172.17.0.0/16")
            for lab in roots:
                with lab.tracing() as steps:
                    webs.append(lab.run("busybox", ["sh", "-c", SERVE], detach=True, ports=["8080"]))
                moved = [s for s in steps if s.kind == "network-subnet"]
                assert moved and moved[0].change["old"] == "172.17.0.0/16", "the trace says the subnet moved"
            subnets = [ipaddress.IPv4Network("172.17.0.0/16")] + [_subnet(lab) for lab in roots]
            assert all(not a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1:]), subnets
            for lab, web, subnet in zip(roots, webs, subnets[1:], strict=True):
                bridge = _bridge(lab)
                assert not [n for n, name in net.subnets_in_use(exclude=bridge) if n.overlaps(subnet)], \
                    f"nothing else on the host holds {subnet}"
                ns = web.inspect()["NetworkSettings"]
                assert ipaddress.IPv4Address(ns["IPAddress"]) in subnet
                assert ipaddress.IPv4Address(ns["Gateway"]) in subnet
                saved = json.loads((lab.store.root / "networks" / "bridge.json").read_text())
                assert saved["IPAM"]["Config"][0]["Subnet"] == str(subnet), "the new subnet is saved"
                hello = f"hello from {web.id[:12]}"
                assert http(f"http://{ns['IPAddress']}:8080/").strip() == hello, "the host reaches the container"
                port = ns["Ports"]["8080/tcp"][0]["HostPort"]
                client = lab.run("busybox", ["wget", "-qO-", f"http://{ns['Gateway']}:{port}/"])
                assert client.logs().strip() == hello, "a container of the root reaches its own published port"
                lab.rm(client.id)
    finally:
        for lab in roots:
            for c in lab.ps(all=True):
                lab.rm(c["Id"], force=True)
            lab.network_prune()


def test_a_stopped_container_gets_an_address_in_the_new_subnet():
    """A container that ran on a subnet, stopped, and whose bridge went while something else took that subnet, gets
    an address in the subnet its network moved to when it starts again; network inspect shows the move."""
    lab = _root_engine()
    try:
        c = lab.run("busybox", ["sleep", "30"], detach=True)
        ns = c.inspect()["NetworkSettings"]
        first = ipaddress.IPv4Network(f"{ns['IPAddress']}/{ns['IPPrefixLen']}", strict=False)
        assert first == _subnet(lab)
        c.stop(timeout=0)
        lab.network_prune()
        assert not net.bridge_exists(_bridge(lab))
        with _dummy_bridge("lkclash0", f"{next(first.hosts())}/{first.prefixlen}"):
            c.start()
            now = _subnet(lab)
            ip = ipaddress.IPv4Address(c.inspect()["NetworkSettings"]["IPAddress"])
            assert now != first and not now.overlaps(first) and ip in now
            code, out = c.exec(["ip", "-o", "-4", "addr", "show", "eth0"])
            assert f"inet {ip}/{now.prefixlen}" in out
    finally:
        for rec in lab.ps(all=True):
            lab.rm(rec["Id"], force=True)
        lab.network_prune()


def test_a_given_subnet_that_is_taken_is_refused(engine):
    """A subnet given with --subnet is not moved behind the user's back: if something else holds it when the bridge
    comes up, the start is refused in one sentence naming what holds it, and leaves no namespace mounted."""
    engine.network_create("given", subnet="10.213.0.0/16")
    try:
        with _dummy_bridge("lkclash1", "10.213.7.1/24"):
            c = engine.create("busybox", ["true"], network="given")
            with pytest.raises(Conflict, match=r"subnet 10\.213\.0\.0/16 is in use on this host by lkclash1") as err:
                c.start()
            assert "--subnet" in err.value.hint
            assert not os.path.ismount(os.path.join(os.path.dirname(c.inspect()["LogPath"]), "netns"))
            assert "SubnetGiven" not in engine.network_inspect("given")
            engine.rm(c.id)
    finally:
        engine.network_rm("given")


def test_doctor_names_the_clashes_it_sees():
    """doctor names a docker0-like bridge whose subnet overlaps another interface's, and a network whose saved
    subnet another interface now holds."""
    from labkit.doctor import _whose, network_checks

    lab = _root_engine()
    lab.networks.get("bridge")
    _save_subnet(lab, "bridge", "10.214.0.0/16")
    with _dummy_bridge("lkdocker0", "10.214.0.1/16"), _dummy_bridge("lkclash2", "10.214.9.1/24"):
        check = next(c for c in network_checks(lab.network_ls(), True) if c["check"] == "subnets")
    assert not check["ok"]
    assert "lkdocker0 on 10.214.0.0/16 overlaps lkclash2 on 10.214.9.0/24" in check["detail"]
    assert "network bridge's saved subnet 10.214.0.0/16 is in use by" in check["detail"]
    assert "when it next comes up" in check["detail"]
    assert _whose("docker0", {}) == "docker0 (Docker's)" and _whose("br-0123456789ab", {}) == "br-0123456789ab (Docker's)"


def test_without_nft_no_bridge_is_made(engine, monkeypatch, tmp_path):
    """Where nft cannot be found, a bridge is not made unguarded: the start is refused in one sentence naming the
    package, before the bridge exists, and leaves no namespace mounted."""
    from labkit.errors import HostUnsupported

    monkeypatch.setattr(helpers, "SAFE_PATH", str(tmp_path))  # the PATH a helper is looked for in, as root
    engine.network_create("unguarded")
    try:
        bridge = _bridge(engine, "unguarded")
        c = engine.create("busybox", ["true"], network="unguarded")
        with pytest.raises(HostUnsupported, match="nft is not installed") as err:
            c.start()
        assert "nftables" in err.value.hint
        assert not net.bridge_exists(bridge)
        assert not os.path.ismount(os.path.join(os.path.dirname(c.inspect()["LogPath"]), "netns"))
        engine.rm(c.id)
    finally:
        engine.network_rm("unguarded")


def test_a_vpns_routes_are_heeded_in_any_table():
    """Routes in a table of their own count (a VPN's policy routing): its 172.16.0.0/12 pushes a new bridge to
    Docker's next pools, 192.168.x.0/20; its 0.0.0.0/1 and 128.0.0.0/1, stand-ins for a default route, do not
    count, or no pool would ever be free."""
    lab = _root_engine()
    table = str(4200 + secrets.randbelow(500))  # no ip rule points at it: the host's routing is untouched
    subprocess.run(["ip", "link", "del", "lkvpn0"], capture_output=True)
    subprocess.run(["ip", "link", "add", "lkvpn0", "type", "bridge"], check=True)  # a tunnel stand-in
    try:
        subprocess.run(["ip", "link", "set", "lkvpn0", "up"], check=True)
        for prefix in ("172.16.0.0/12", "0.0.0.0/1", "128.0.0.0/1"):
            subprocess.run(["ip", "route", "add", prefix, "dev", "lkvpn0", "table", table], check=True)
        c = lab.run("busybox", ["sleep", "30"], detach=True)
        subnet = _subnet(lab)
        assert subnet.subnet_of(ipaddress.IPv4Network("192.168.0.0/16")) and subnet.prefixlen == 20, subnet
        assert ipaddress.IPv4Address(c.inspect()["NetworkSettings"]["IPAddress"]) in subnet
    finally:
        subprocess.run(["ip", "link", "del", "lkvpn0"], capture_output=True)  # its routes go with it
        for rec in lab.ps(all=True):
            lab.rm(rec["Id"], force=True)
        lab.network_prune()


def test_two_roots_bringing_bridges_up_at_once_take_two_subnets():
    """Two state roots whose bridges come up at the same moment, in two processes, each saved the same free subnet:
    the host-wide lock lets one check and take it while the other waits, then takes another."""
    roots = [state_root(), state_root()]
    go = roots[0] / "go"
    script = ("import os, sys, time, labkit\n"
              "lab = labkit.connect(backend='linux', root=sys.argv[1])\n"
              "lab.networks.get('bridge'); lab.rm(lab.run('busybox', ['true'], network='none').id)\n"
              "open(sys.argv[1] + '/ready', 'w').close()\n"
              "while not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
              "print(lab.run('busybox', ['sleep', '30'], detach=True).inspect()['NetworkSettings']['IPAddress'])\n")
    labs = [_engine_at(r) for r in roots]
    free = pick_subnet([n for n, _ in net.subnets_in_use()])
    for lab in labs:
        lab.networks.get("bridge")
        _save_subnet(lab, "bridge", str(free))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(r), str(go)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True) for r in roots]
    try:  # each fresh root's first run compiles its helpers: a whole program's time
        assert wait_for(lambda: all((r / "ready").exists() for r in roots), timeout=scaled(60))
        go.touch()
        ips = [ipaddress.IPv4Address(p.communicate(timeout=scaled(60))[0].strip()) for p in procs]
        subnets = [_subnet(lab) for lab in labs]
        assert subnets[0] != subnets[1] and not subnets[0].overlaps(subnets[1]), subnets
        assert all(ip in subnet for ip, subnet in zip(ips, subnets, strict=True))
    finally:
        for p in procs:  # with what they started (a compiler cut short leaves nothing running)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for lab in labs:
            for rec in lab.ps(all=True):
                lab.rm(rec["Id"], force=True)
            lab.network_prune()


def test_a_stale_veth_the_kernel_already_took_is_not_an_error():
    """The last run's veth may be gone by the time attach asks it to go (the kernel frees it with its
    namespace, a moment after): deleting a link that is no longer there says FileNotFoundError, which
    attach passes by, and nothing else."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        gone = max(link["index"] for link in ipr.get_links()) + 1000
        with pytest.raises(FileNotFoundError):
            net._delete_link(ipr, gone)
