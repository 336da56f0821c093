"""A learner without root gets a simulator that models the rootless network, as the real rootless backend gives it."""

from __future__ import annotations

import pytest


def test_rootless_model_has_no_bridge_and_publishes_on_loopback(fresh_root):
    """The rootless model in-process: tap0 with 10.0.2.100, no bridge or veth on the host, DNS 10.0.2.3, user networks
    refused; every container has the same address (each has a network stack of its own)."""
    from labkit.engine import Engine
    from labkit.errors import HostUnsupported
    from labkit.sim.backend import SimBackend
    from labkit.store import Store

    root = fresh_root()
    lab = Engine(root=root, backend=SimBackend(Store(root), realtime=False, rootless=True))
    a = lab.run("busybox", ["sleep", "600"], detach=True, ports=["8080:80"])
    b = lab.run("busybox", ["sleep", "600"], detach=True)
    try:
        ns = a.inspect()["NetworkSettings"]
        assert (ns["IPAddress"], ns["Gateway"], ns["IPPrefixLen"], ns["Bridge"]) == ("10.0.2.100", "10.0.2.2", 24, "")
        assert ns["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "8080"}]
        assert b.inspect()["NetworkSettings"]["IPAddress"] == "10.0.2.100"
        view = lab.backend.network_view(lab.store.load(a.id))
        assert [i.name for i in view.host] == ["lo"] and view.veth == ""
        assert [(i.name, i.addresses) for i in view.inside] == [("lo", ("127.0.0.1/8",)),
                                                                     ("tap0", ("10.0.2.100/24",))]
        assert a.exec(["head", "-n", "1", "/etc/resolv.conf"]) == (0, "nameserver 10.0.2.3\n")
        lab.network_create("mynet")
        with pytest.raises(HostUnsupported):
            lab.run("busybox", ["true"], network="mynet")
    finally:
        for cid in lab.store.container_ids():
            lab.rm(cid, force=True)
        if any(n["Name"] == "mynet" for n in lab.network_ls()):
            lab.network_rm("mynet")
