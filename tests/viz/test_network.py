"""The network picture draws the namespaces, the bridge, the veth pair and the published ports that exist."""

from __future__ import annotations

import pytest

from labkit.model.views import Interface, NetworkView, parse_net_dev
from labkit.viz import network
from labkit.viz import palette as P
from tests.viz.vizfigs import by_gid

LINKS = """1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN \\    link/loopback 00:00:00:00:00:00
5: lkbr12ab34cd: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state UP \\    link/ether 6e:1c:aa:bb:cc:dd
7: lk0123456789a@if2: <BROADCAST,UP> mtu 1500 qdisc noqueue master lkbr12ab34cd state UP \\    link/ether 9a:00:11:22:33:44
"""
ADDRS = """1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever
1: lo    inet6 ::1/128 scope host \\       valid_lft forever
2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever
5: lkbr12ab34cd    inet 172.17.0.1/16 brd 172.17.255.255 scope global lkbr12ab34cd\\       valid_lft forever
"""
LO = Interface("lo", ("127.0.0.1/8",))
ETH0 = Interface("eth0", ("172.17.0.2/16",), "02:42:ac:11:00:02")
BRIDGE = Interface("lkbr12ab34cd", ("172.17.0.1/16",))
VETH = Interface("lk0123456789a", (), "", "lkbr12ab34cd")


def words(fig):
    """Every text on the figure, one after another (a box's lines stay together)."""
    return "\n".join(P.texts(fig))


def info(mode, ports=None, bridged=False):
    settings = {"Ports": ports or {}, "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "", "Gateway": "",
                "Bridge": ""}
    if bridged:
        settings.update(IPAddress="172.17.0.2", IPPrefixLen=16, MacAddress="02:42:ac:11:00:02",
                        Gateway="172.17.0.1", Bridge="lkbr12ab34cd")
    return {"Name": "/web", "HostConfig": {"NetworkMode": mode}, "NetworkSettings": settings}


def bridged_view(host=(LO, BRIDGE, VETH), ports=None):
    seen = NetworkView(tuple(host), (LO, ETH0), "lk0123456789a")
    return network.view(info("bridge", ports, bridged=True), seen, "172.17.0.0/16")


def test_parse_ip_reads_link_and_address_lines():
    """`ip -o link` gives MACs and the bridge a veth is plugged into; `ip -o addr` the addresses; eth0@if7 is eth0."""
    found = {i.name: i for i in network.parse_ip(LINKS + ADDRS)}
    assert found["lo"].addresses == ("127.0.0.1/8", "::1/128")
    assert found["lk0123456789a"].master == "lkbr12ab34cd" and found["lk0123456789a"].mac == "9a:00:11:22:33:44"
    assert found["lkbr12ab34cd"].addresses == ("172.17.0.1/16",)
    assert network.parse_ip("2: eth0@if7    inet 172.17.0.2/16 scope global eth0\n")[0].name == "eth0"


def test_bridged_container_has_a_bridge_a_veth_pair_and_eth0():
    """On a bridge: the bridge with its gateway and subnet, the veth's host end plugged into it, the link across,
    and eth0 with its address and MAC inside; lo stays inside too."""
    fig = network.draw(bridged_view())
    for gid in ("netns:host", "netns:container", "bridge", "veth:host", "veth:plug", "veth", "veth:container"):
        assert by_gid(fig, gid), gid
    text = words(fig)
    for s in ("bridge lkbr12ab34cd", "gateway 172.17.0.1/16", "subnet 172.17.0.0/16", "lk0123456789a", "veth pair",
              "eth0\n172.17.0.2/16\nMAC 02:42:ac:11:00:02", "lo  127.0.0.1/8", "default route via 172.17.0.1"):
        assert s in text, s


def test_published_ports_are_arrows_from_the_host_to_the_container():
    """Each published port is an arrow labelled host ip:port → container port."""
    fig = network.draw(bridged_view(ports={"3000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}))
    assert by_gid(fig, "port:8080")
    text = words(fig)
    assert "127.0.0.1:8080 → 3000/tcp" in text and "127.0.0.1:8080" in text and ":3000/tcp" in text


def test_a_busy_host_never_hides_the_bridge_or_the_veth():
    """With many other interfaces on the host, the bridge and the veth are still drawn; only the rest is cut."""
    crowd = [Interface(f"docker{n}", (f"10.{n}.0.1/24",)) for n in range(20)]
    v = bridged_view(host=(LO, *crowd, BRIDGE, VETH))
    fig = network.draw(v)
    assert by_gid(fig, "bridge") and by_gid(fig, "veth:host") and by_gid(fig, "veth")
    shown, hidden = network.host_shown(v)
    assert hidden == 20 - network.OTHERS_SHOWN and shown[0].name == "lo"
    assert f"… and {hidden} more interfaces" in words(fig)


def test_the_hosts_interface_list_stays_clear_of_the_bridge():
    """Every line of the host's list, "… and N more interfaces" the last, is drawn above the bridge's box."""
    crowd = [Interface(f"docker{n}", (f"10.{n}.0.1/24",)) for n in range(5)]
    fig = network.draw(bridged_view(host=(LO, *crowd, BRIDGE, VETH)))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    bridge = by_gid(fig, "bridge")[0].get_window_extent(renderer)
    lines = [t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("host-line:")]
    assert "more interface" in lines[-1].get_text()
    for t in lines:
        assert not t.get_window_extent(renderer).overlaps(bridge), t.get_text()


def test_none_mode_has_its_own_namespace_with_only_lo_and_no_link():
    """--network none: two namespaces, the container's holding only lo; no bridge, no veth, no arrow."""
    seen = NetworkView((LO, Interface("eth0", ("192.0.2.2/24",))), (LO,))
    fig = network.draw(network.view(info("none"), seen))
    assert by_gid(fig, "netns:host") and by_gid(fig, "netns:container")
    assert not any(by_gid(fig, g) for g in ("bridge", "veth", "veth:host", "veth:container"))
    text = words(fig)
    assert "eth0  192.0.2.2/24" in text and "web's own network namespace" in text
    assert "only loopback: nothing\nleaves this namespace" in text


def test_host_mode_shares_the_hosts_namespace():
    """--network host: one namespace; the container's processes use the host's interfaces."""
    seen = NetworkView((LO, BRIDGE), (LO, BRIDGE))
    fig = network.draw(network.view(info("host"), seen))
    assert by_gid(fig, "netns:host") and by_gid(fig, "process:container") and not by_gid(fig, "netns:container")
    assert "shared by web" in words(fig)


# -- on the simulator -------------------------------------------------------------------------------

def test_sim_bridged_container_with_a_published_port(sim):
    """A simulated container with -p 8080:3000: its bridge, its veth pair, eth0 with its address and MAC, the arrow."""
    sim.run("busybox", ["sleep", "300"], detach=True, name="net-web", ports=["8080:3000"])
    settings = sim.inspect("net-web")["NetworkSettings"]
    v = network.gather(sim, "net-web")
    assert v.bridge == settings["Bridge"] and v.veth and v.veth in {i.name for i in v.host}
    assert next(i for i in v.host if i.name == v.veth).master == v.bridge
    fig = network.draw(v)
    for gid in ("bridge", "veth:host", "veth", "veth:container", "port:8080"):
        assert by_gid(fig, gid), gid
    text = words(fig)
    assert f"bridge {settings['Bridge']}" in text and f"gateway {settings['Gateway']}/{settings['IPPrefixLen']}" in text
    assert f"eth0\n{settings['IPAddress']}/{settings['IPPrefixLen']}\nMAC {settings['MacAddress']}" in text
    assert "127.0.0.1:8080 → 3000/tcp" in text


def test_sim_none_container_shows_only_lo(sim):
    """A simulated --network none container: lo only inside, no link to the host."""
    sim.run("busybox", ["sleep", "300"], detach=True, name="net-none", network="none")
    v = network.gather(sim, "net-none")
    assert [i.name for i in v.inside] == ["lo"] and v.mode == "none" and not v.veth
    fig = network.draw(v)
    assert not by_gid(fig, "veth") and "only loopback: nothing\nleaves this namespace" in words(fig)


def test_sim_host_container_sees_the_hosts_interfaces(sim):
    """A simulated --network host container sees the simulated host's interfaces, the same as the host."""
    sim.run("busybox", ["sleep", "300"], detach=True, name="net-br")
    sim.run("busybox", ["sleep", "300"], detach=True, name="net-host", network="host")
    v = network.gather(sim, "net-host")
    assert v.inside == v.host and len(v.host) > 1
    assert by_gid(network.draw(v), "process:container")
    names = parse_net_dev(sim.exec_output("net-host", ["cat", "/proc/net/dev"])[1])
    assert names == tuple(i.name for i in v.host)


@pytest.mark.root
def test_real_none_container(engine):
    """A real --network none container shows lo only inside."""
    engine.run("busybox", ["sleep", "30"], detach=True, name="viz-net", network="none")
    v = network.gather(engine, "viz-net")
    assert [i.name for i in v.inside] == ["lo"] and v.mode == "none"


@pytest.mark.root
def test_real_bridged_container_with_a_published_port(engine):
    """A real bridged container with -p: the host has labkit's bridge and the veth plugged into it; eth0 inside has
    the address and MAC inspect reports; the picture draws the bridge, the veth pair and the port's arrow."""
    engine.run("busybox", ["sleep", "30"], detach=True, name="viz-net-br", ports=["18080:3000"])
    settings = engine.inspect("viz-net-br")["NetworkSettings"]
    v = network.gather(engine, "viz-net-br")
    host = {i.name: i for i in v.host}
    assert v.bridge == settings["Bridge"] and v.bridge in host
    assert v.veth in host and host[v.veth].master == v.bridge
    eth0 = next(i for i in v.inside if i.name == "eth0")
    assert f"{settings['IPAddress']}/{settings['IPPrefixLen']}" in eth0.addresses
    fig = network.draw(v)
    for gid in ("bridge", "veth:host", "veth", "veth:container", "port:18080"):
        assert by_gid(fig, gid), gid
    assert "127.0.0.1:18080 → 3000/tcp" in words(fig)
