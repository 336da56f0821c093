"""A learner without root gets a simulator that models the rootless network, as the real rootless backend gives it."""

from __future__ import annotations

import textwrap

import pytest

from tests.learner import run_as

#: One container with a published port on each backend; what the learner can see of its network.
SCENARIO = textwrap.dedent("""
    import json
    import labkit
    from labkit.errors import LabkitError

    def look(lab):
        c = lab.run("busybox", ["sleep", "600"], detach=True, ports=["80"], name="web")
        try:
            ns = c.inspect()["NetworkSettings"]
            code, dev = c.exec(["cat", "/proc/net/dev"])
            names = sorted(ln.split(":")[0].strip() for ln in dev.splitlines()[2:])
            code, resolv = c.exec(["head", "-n", "1", "/etc/resolv.conf"])
            code, hosts = c.exec(["tail", "-n", "1", "/etc/hosts"])
            port = ns["Ports"]["80/tcp"][0]
            seen = {"ip": ns["IPAddress"], "gateway": ns["Gateway"], "prefix": ns["IPPrefixLen"],
                    "mac": ns["MacAddress"], "bridge": ns["Bridge"], "net": ns["Networks"]["bridge"]["IPAddress"],
                    "host_ip": port["HostIp"], "interfaces": names, "resolv": resolv, "hosts": hosts.split()[0],
                    "ps": [(p["IP"], p["PrivatePort"]) for p in lab.ps()[0]["Ports"]]}
        finally:
            c.remove(force=True)
        try:
            lab.network_create("mynet")
            lab.run("busybox", ["true"], network="mynet", auto_remove=True)
            seen["user network"] = "ran"
        except LabkitError as e:
            seen["user network"] = type(e).__name__
        finally:
            try:
                lab.network_rm("mynet")
            except LabkitError:
                pass
        return seen

    sim = labkit.connect(backend="sim")
    real = labkit.connect(backend="rootless")
    print(json.dumps({"sim_rootless": sim.backend.rootless, "sim": look(sim), "real": look(real)}))
""")


@pytest.mark.root
def test_a_learners_simulator_models_the_rootless_network(learner):
    """Run by a user, the simulator models slirp4netns: 10.0.2.100 on tap0, no bridge, ports on 127.0.0.1.

    The real rootless backend is run beside it by the same user and the two
    must show the same addresses, interfaces, resolver, published ports and
    refusal of a user network.
    """
    got = run_as(learner, SCENARIO)
    assert got["sim_rootless"] is True
    assert got["sim"] == got["real"]
    assert got["sim"]["ip"] == "10.0.2.100" and got["sim"]["bridge"] == "" and got["sim"]["host_ip"] == "127.0.0.1"
    assert got["sim"]["interfaces"] == ["lo", "tap0"]


def test_rootless_model_has_no_bridge_and_publishes_on_loopback(fresh_root):
    """The rootless model in-process: tap0 with 10.0.2.100, no bridge or veth on the host, DNS 10.0.2.3, user networks
    refused at ``network create`` with nothing made; every container has the same address (each has a network stack
    of its own)."""
    from labkit.engine import Engine
    from labkit.errors import HostUnsupported, NotFound
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
        with pytest.raises(HostUnsupported, match="network create mynet: a user-defined network needs root"):
            lab.network_create("mynet")
        assert [n["Name"] for n in lab.network_ls()] == ["bridge", "host", "none"]
        with pytest.raises(NotFound):
            lab.run("busybox", ["true"], network="mynet")
        assert sorted(lab.store.container_ids()) == sorted([a.id, b.id])  # the refused run left no container
    finally:
        for cid in lab.store.container_ids():
            lab.rm(cid, force=True)
        if any(n["Name"] == "mynet" for n in lab.network_ls()):
            lab.network_rm("mynet")


def test_rootless_network_connect_refuses_in_one_sentence(fresh_root):
    """Rootless, a running container cannot join or leave a network (its user-mode network stack is made once,
    at its start), and no container can join a user network: each refusal is one sentence that says why and
    what to do; a stopped container leaves the default network and joins it again for its next start."""
    from labkit.engine import Engine
    from labkit.errors import HostUnsupported
    from labkit.sim.backend import SimBackend
    from labkit.store import Store

    root = fresh_root()
    lab = Engine(root=root, backend=SimBackend(Store(root), realtime=False, rootless=True))
    a = lab.run("busybox", ["sleep", "600"], detach=True)
    try:
        with pytest.raises(HostUnsupported, match="keeps the network stack"):
            lab.network_disconnect("bridge", a.id)
        a.stop(timeout=0)
        lab.network_disconnect("bridge", a.id)
        assert a.inspect()["NetworkSettings"]["Networks"] == {}
        a.start()
        with pytest.raises(HostUnsupported, match="a running rootless container cannot join a network") as e:
            lab.network_connect("bridge", a.id)
        assert "labkit stop" in e.value.hint
        a.stop(timeout=0)
        lab.network_connect("bridge", a.id)
        a.start()
        assert a.inspect()["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == "10.0.2.100"
    finally:
        for cid in lab.store.container_ids():
            lab.rm(cid, force=True)
