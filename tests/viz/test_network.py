"""The network picture draws the namespaces and interfaces that exist, as inspect and ip report them."""

from __future__ import annotations

import pytest

from labkit.viz import network
from labkit.viz import palette as P
from tests.viz.vizfigs import by_gid

HOST = """1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever
1: lo    inet6 ::1/128 scope host \\       valid_lft forever
2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever
"""
INSIDE = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n"


def info(mode, ip="", ports=None):
    return {"Name": "/web", "HostConfig": {"NetworkMode": mode},
            "NetworkSettings": {"IPAddress": ip, "Ports": ports or {}}}


def test_parse_ip_addr():
    """`ip -o addr` lines give interfaces with their addresses."""
    ifs = network.parse_ip_addr(HOST)
    assert [(i.name, i.addresses) for i in ifs] == [("lo", ("127.0.0.1/8", "::1/128")), ("eth0", ("192.0.2.2/24",))]


def test_none_mode_has_its_own_namespace_with_only_lo():
    """--network none: two namespaces, the container's holding only lo."""
    fig = network.draw(network.view(info("none"), HOST, INSIDE))
    assert by_gid(fig, "netns:host") and by_gid(fig, "netns:container")
    text = P.texts(fig)
    assert "eth0  192.0.2.2/24" in text and "web's own network namespace" in text
    assert "only loopback: nothing\nleaves this namespace" in text


def test_host_mode_shares_the_hosts_namespace():
    """--network host: one namespace; the container's processes use the host's interfaces."""
    fig = network.draw(network.view(info("host"), HOST, HOST))
    assert by_gid(fig, "netns:host") and not by_gid(fig, "netns:container")


def test_ports_and_address_from_inspect():
    """An address and published ports that inspect reports are written on the picture."""
    v = network.view(info("bridge", "172.17.0.2", {"3000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}),
                     HOST, INSIDE)
    text = P.texts(network.draw(v))
    assert "IP address 172.17.0.2" in text and "published: 0.0.0.0:8080 → 3000/tcp" in text


@pytest.mark.root
def test_real_none_container(engine):
    """A real --network none container shows lo only inside."""
    engine.run("busybox", ["sleep", "30"], detach=True, name="viz-net", network="none")
    v = network.gather(engine, "viz-net")
    assert [i.name for i in v.inside] == ["lo"] and v.mode == "none"
