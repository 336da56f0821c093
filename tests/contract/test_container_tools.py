"""``rename``, ``top``, ``stats``, ``update``, ``container prune`` and ``system df`` hold on every backend."""

from __future__ import annotations

import pytest

from labkit.errors import IllegalTransition, InvalidArgument, NameInUse, NoSuchContainer, NotFound


def test_rename_moves_the_name_and_keeps_the_container(lab):
    """After a rename the new name finds the same container, the old one finds none, and a taken name is refused."""
    c = lab.run("busybox", ["sleep", "30"], name="ren-a", detach=True)
    lab.create("busybox", ["true"], name="ren-b")
    lab.rename("ren-a", "ren-c")
    assert lab.inspect("ren-c")["Id"] == c.id and lab.inspect("ren-c")["Name"] == "/ren-c"
    assert lab.inspect("ren-c")["State"]["Running"]
    with pytest.raises(NoSuchContainer):
        lab.inspect("ren-a")
    with pytest.raises(NameInUse, match='Error when allocating new name: Conflict. The container name "/ren-b"'):
        lab.rename("ren-c", "ren-b")
    with pytest.raises(InvalidArgument, match="same name as its current name"):
        lab.rename("ren-c", "ren-c")
    lab.create("busybox", ["true"], name="ren-a")  # the old name is free again


def test_top_lists_the_cgroups_processes(lab):
    """``top`` shows PID 1 and a child it forked, by their host PIDs, under ps -ef's titles; a stopped
    container is refused as Docker refuses it."""
    c = lab.run("busybox", ["sh", "-c", "sleep 30 & wait"], name="topper", detach=True)
    lab.wait(c.id, timeout=0.3)
    table = lab.top("topper")
    assert table["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    pids = {int(row[1]) for row in table["Processes"]}
    assert c.pid in pids and len(pids) == 2, table
    assert [row[-1] for row in table["Processes"] if int(row[1]) == c.pid] == ["sh -c sleep 30 & wait"], table
    lab.kill("topper")
    with pytest.raises(IllegalTransition, match=f"container {c.id} is not running"):
        lab.top("topper")


def test_stats_reads_the_cgroup_and_update_changes_its_limits(lab):
    """``stats`` gives the memory and pids of a running container and its limit; ``update`` writes a new
    memory and pids limit into the running container and keeps them for inspect."""
    c = lab.run("busybox", ["sleep", "30"], name="statsy", detach=True, memory="64m")
    reading = lab.stats("statsy")
    assert reading["Running"] and reading["Pids"] == 1 and reading["MemoryLimit"] == 64 * 2**20
    assert 0 < reading["Memory"] < 64 * 2**20
    lab.update("statsy", memory="32m", pids_limit=5, restart="on-failure:2")
    info = lab.inspect("statsy")
    assert info["HostConfig"]["Memory"] == 32 * 2**20 and info["HostConfig"]["PidsLimit"] == 5
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert lab.stats("statsy")["MemoryLimit"] == 32 * 2**20
    if "memory" in lab.enforced_limits and not lab.backend.simulated:
        assert lab.backend.kernel_memory_limit(lab.store.load(c.id)) == 32 * 2**20
    if "pids" in lab.enforced_limits:
        code, out = lab.exec_output("statsy", ["sh", "-c", "for i in 1 2 3 4 5 6; do sleep 5 & done; echo done"])
        assert "can't fork" in out or "Resource temporarily unavailable" in out or code != 0, out
    with pytest.raises(InvalidArgument, match="one or more flags"):
        lab.update("statsy")
    lab.kill("statsy")
    assert lab.stats("statsy") | {"Read": 0} == {"Id": c.id, "Name": "statsy", "Running": False, "Read": 0,
                                                 "CpuNs": 0, "Memory": 0, "MemoryLimit": 0, "Pids": 0, "NetRx": 0,
                                                 "NetTx": 0, "BlockRead": 0, "BlockWrite": 0}


def test_container_prune_and_disk_usage(lab):
    """``container prune`` removes the stopped containers and leaves the running one; ``system df`` counts them."""
    up = lab.run("busybox", ["sleep", "30"], name="prune-up", detach=True)
    done = lab.run("busybox", ["true"], name="prune-done")
    made = lab.create("busybox", ["true"], name="prune-made")
    usage = lab.disk_usage()
    assert usage["Containers"]["Total"] >= 3 and usage["Containers"]["Active"] >= 1
    assert usage["Images"]["Total"] >= 1 and usage["Images"]["Active"] >= 1
    removed = lab.container_prune()
    assert {done.id, made.id} <= set(removed) and up.id not in removed
    assert [item["Id"] for item in lab.ps(all=True)] == [up.id]


def _tar(**files: bytes) -> bytes:
    """A tar stream holding ``files`` (name → bytes)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o640
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _copy_to(lab, ref: str, path: str, data: bytes) -> None:
    """``copy_to`` from a pipe a thread fills with ``data``."""
    import os
    import threading

    r, w = os.pipe()
    feeder = threading.Thread(target=lambda: (os.write(w, data), os.close(w)))
    feeder.start()
    try:
        lab.copy_to(ref, path, r)
    finally:
        feeder.join()
        os.close(r)


def _copy_from(lab, ref: str, path: str) -> dict[str, bytes]:
    """``copy_from`` into a temporary file; the tar's regular files (name → bytes)."""
    import tarfile
    import tempfile

    with tempfile.TemporaryFile() as f:
        lab.copy_from(ref, path, f.fileno())
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def test_cp_into_and_out_of_a_running_and_a_stopped_container(lab):
    """A tar goes into a running container (PID 1 sees it at once) and into a stopped one through its writable
    layer: a file of the image is copied up first, as the trace shows, and the next start sees it; copies out
    read the same files; a missing path is Docker's "Could not find the file"."""
    lab.run("busybox", ["sleep", "30"], name="cp-up", detach=True)
    _copy_to(lab, "cp-up", "/tmp", _tar(**{"note.txt": b"hello\n"}))
    assert lab.exec_output("cp-up", ["cat", "/tmp/note.txt"]) == (0, "hello\n")
    assert lab.exec_output("cp-up", ["stat", "-c", "%a %u", "/tmp/note.txt"])[1] == "640 0\n"
    assert _copy_from(lab, "cp-up", "/tmp/note.txt") == {"note.txt": b"hello\n"}
    assert lab.stat_path("cp-up", "/tmp")["isDir"] and not lab.stat_path("cp-up", "tmp/note.txt")["isDir"]
    lab.kill("cp-up")
    with lab.tracing() as steps:
        _copy_to(lab, "cp-up", "/etc", _tar(group=b"root:x:0:\n"))
    copy_ups = [s for s in steps if s.kind == "copy-up"]
    assert [s.change.get("path") for s in copy_ups] == ["/etc/group"], [str(s) for s in steps]
    assert {"Kind": 0, "Path": "/etc/group"} in lab.diff("cp-up")
    assert _copy_from(lab, "cp-up", "/etc/group") == {"group": b"root:x:0:\n"}
    assert _copy_from(lab, "cp-up", "/tmp") == {"tmp/note.txt": b"hello\n"}
    lab.start("cp-up")
    assert lab.exec_output("cp-up", ["cat", "/etc/group"]) == (0, "root:x:0:\n")
    with pytest.raises(NotFound, match="Could not find the file /nope in container cp-up"):
        lab.stat_path("cp-up", "/nope")
    with pytest.raises(InvalidArgument, match="extraction point is not a directory"):
        _copy_to(lab, "cp-up", "/etc/group", _tar(x=b""))


def test_cp_resolves_symlinks_inside_the_container(lab):
    """A symlink the container made to ``/`` leads into the container's own root, running or stopped: nothing
    is read from or written to the host's files through it."""
    import os

    lab.run("busybox", ["sh", "-c", "ln -s / /hostroot; echo inside > /marker; sleep 30"], name="cp-link",
            detach=True)
    lab.wait("cp-link", timeout=0.5)
    assert _copy_from(lab, "cp-link", "/hostroot/marker") == {"marker": b"inside\n"}
    _copy_to(lab, "cp-link", "/hostroot/tmp", _tar(**{"cp-link-escape": b"x"}))
    assert not os.path.exists("/tmp/cp-link-escape")
    assert lab.exec_output("cp-link", ["cat", "/tmp/cp-link-escape"]) == (0, "x")
    lab.kill("cp-link")
    assert _copy_from(lab, "cp-link", "/hostroot/marker") == {"marker": b"inside\n"}


def test_events_record_the_lifecycle_in_dockers_words(lab):
    """``events`` between two times gives the container's create, start, kill, die (its exit code), stop,
    rename and destroy in order, in the Engine API's shape, and a volume's create and destroy."""
    import time

    since = time.time()
    c = lab.run("busybox", ["sleep", "30"], name="ev-a", detach=True)
    lab.stop("ev-a", timeout=0)
    lab.rename("ev-a", "ev-b")
    lab.rm("ev-b")
    lab.volume_create("ev-vol")
    lab.volume_rm("ev-vol")
    seen = list(lab.events(since=since, until=time.time()))
    mine = [e for e in seen if e["Actor"]["ID"] in (c.id, "ev-vol")]
    assert [(e["Type"], e["Action"]) for e in mine] == [
        ("container", "create"), ("container", "start"), ("container", "kill"), ("container", "kill"),
        ("container", "die"), ("container", "stop"), ("container", "rename"), ("container", "destroy"),
        ("volume", "create"), ("volume", "destroy")], mine
    die = mine[4]
    assert die["Actor"]["Attributes"] == {"exitCode": "137", "image": "busybox", "name": "ev-a"}
    assert die["status"] == "die" and die["id"] == c.id and die["from"] == "busybox"
    assert mine[6]["Actor"]["Attributes"]["oldName"] == "/ev-a"
    assert all(a["timeNano"] <= b["timeNano"] for a, b in zip(mine, mine[1:], strict=False))
    assert list(lab.events(since=time.time() + 60, until=time.time() + 0.3)) == []


def test_network_connect_and_disconnect_move_a_stopped_container(lab):
    """A container that is not running leaves its network (on none then, Networks empty, NetworkMode as created)
    and joins others, which its next start plugs it into, each with an address, in the order joined."""
    from labkit.errors import Conflict

    if lab.backend.rootless:
        pytest.skip("rootless: no user networks")
    lab.network_create("lk-cn-net")
    lab.network_create("lk-cn-two")
    try:
        lab.create("busybox", ["sleep", "30"], name="cn")
        lab.network_disconnect("bridge", "cn")
        info = lab.inspect("cn")
        assert info["NetworkSettings"]["Networks"] == {} and info["HostConfig"]["NetworkMode"] == "default"
        with pytest.raises(Conflict, match="is not connected to network bridge"):
            lab.network_disconnect("bridge", "cn")
        lab.network_connect("lk-cn-net", "cn")
        lab.network_connect("lk-cn-two", "cn", aliases=["two"])
        lab.network_connect("lk-cn-two", "cn", aliases=["deux"])  # a stopped container's second connect replaces
        nets = lab.inspect("cn")["NetworkSettings"]["Networks"]
        assert list(nets) == ["lk-cn-net", "lk-cn-two"] and nets["lk-cn-two"]["Aliases"] == ["deux"]
        assert nets["lk-cn-two"]["IPAMConfig"] == {} and nets["lk-cn-two"]["IPAddress"] == ""
        lab.start("cn")
        nets = lab.inspect("cn")["NetworkSettings"]["Networks"]
        assert list(nets) == ["lk-cn-net", "lk-cn-two"] and all(n["IPAddress"] for n in nets.values())
        assert nets["lk-cn-two"]["Aliases"] == ["deux"] and nets["lk-cn-net"]["Aliases"] == []
        with pytest.raises(Conflict, match="has active endpoints"):
            lab.network_rm("lk-cn-two")
    finally:
        lab.rm("cn", force=True)
        lab.network_rm("lk-cn-net")
        lab.network_rm("lk-cn-two")


def test_network_connect_plugs_a_running_container_in_and_disconnect_unplugs_it(lab):
    """A running container joins a second network at once: an entry of its own in NetworkSettings.Networks
    (address in that subnet, gateway, MAC from the address, an EndpointID, the aliases asked), its peers there
    find it by name and alias in /etc/hosts and it finds them; disconnect takes all that away at once. The
    refusals are Docker's."""
    from labkit.errors import Conflict, InvalidArgument
    from labkit.networks import NoSuchNetwork

    if lab.backend.rootless:
        pytest.skip("rootless: no user networks")
    net_id = lab.network_create("lk-live-net", subnet="10.231.0.0/16")["Id"]
    try:
        peer = lab.run("busybox", ["sleep", "300"], name="peer", network="lk-live-net", detach=True)
        c = lab.run("busybox", ["sleep", "300"], name="joiner", detach=True)
        lab.network_connect("lk-live-net", "joiner", aliases=["web"], ip="10.231.0.77")
        nets = c.inspect()["NetworkSettings"]["Networks"]
        assert list(nets) == ["bridge", "lk-live-net"]
        live = nets["lk-live-net"]
        assert (live["IPAddress"], live["Gateway"], live["IPPrefixLen"], live["NetworkID"]) == \
            ("10.231.0.77", "10.231.0.1", 16, net_id)
        assert live["MacAddress"] == "02:42:0a:e7:00:4d" and live["Aliases"] == ["web"]
        assert live["IPAMConfig"] == {"IPv4Address": "10.231.0.77"} and len(live["EndpointID"]) == 64
        assert live["EndpointID"] != nets["bridge"]["EndpointID"]
        assert c.inspect()["NetworkSettings"]["IPAddress"] == nets["bridge"]["IPAddress"], "the top copies: bridge's"
        assert lab.network_inspect("lk-live-net")["Containers"][c.id]["IPAddress"] == "10.231.0.77"
        code, hosts = c.exec(["cat", "/etc/hosts"])
        peer_ip = peer.inspect()["NetworkSettings"]["Networks"]["lk-live-net"]["IPAddress"]
        assert f"10.231.0.77\t{c.id[:12]}\n" in hosts and f"{peer_ip}\tpeer\n" in hosts
        assert "10.231.0.77\tjoiner web\n" in peer.exec(["cat", "/etc/hosts"])[1]
        with pytest.raises(Conflict, match="endpoint with name joiner already exists in network lk-live-net"):
            lab.network_connect("lk-live-net", "joiner")
        other = lab.run("busybox", ["sleep", "300"], detach=True)
        with pytest.raises(Conflict, match="Address already in use"):
            lab.network_connect("lk-live-net", other.id, ip=peer_ip)
        assert list(other.inspect()["NetworkSettings"]["Networks"]) == ["bridge"], "a refused connect changes nothing"
        with pytest.raises(InvalidArgument, match="private \\(none\\) mode"):
            lab.network_connect("none", "joiner")
        with pytest.raises(InvalidArgument, match="connected to host network"):
            lab.network_connect("host", "joiner")
        with pytest.raises(InvalidArgument, match="only for containers in user defined networks"):
            lab.network_connect("bridge", "peer", aliases=["x"])
        with pytest.raises(NoSuchNetwork, match="network nosuch not found"):
            lab.network_connect("nosuch", "joiner")
        lab.network_disconnect("lk-live-net", "joiner")
        assert list(c.inspect()["NetworkSettings"]["Networks"]) == ["bridge"]
        assert "10.231.0.77" not in c.exec(["cat", "/etc/hosts"])[1] and "\tpeer" not in c.exec(["cat", "/etc/hosts"])[1]
        assert "joiner" not in peer.exec(["cat", "/etc/hosts"])[1]
        assert c.id not in lab.network_inspect("lk-live-net")["Containers"]
        with pytest.raises(Conflict, match=f"container {c.id} is not connected to network lk-live-net"):
            lab.network_disconnect("lk-live-net", "joiner")
        lab.network_connect("lk-live-net", "joiner")
        again = c.inspect()["NetworkSettings"]["Networks"]["lk-live-net"]
        assert again["IPAddress"] == "10.231.0.3" and again["Aliases"] == [], "the next free address"
        assert c.inspect()["NetworkSettings"]["Networks"]["bridge"]["Aliases"] is None, "run's network: none sent"
    finally:
        for rec in lab.ps(all=True):
            lab.rm(rec["Id"], force=True)
        lab.network_rm("lk-live-net")


def test_update_restart_applies_to_the_run_under_way(lab):
    """A restart policy given by ``update`` to a running container started without one restarts it when this run
    fails, as ``docker update --restart`` does (the real backend's supervisor had no restarter to run)."""
    import time

    lab.run("busybox", ["sh", "-c", "sleep 1; exit 3"], name="upd-restart", detach=True)
    lab.update("upd-restart", restart="on-failure:1")
    deadline = time.monotonic() + 30
    while lab.inspect("upd-restart")["RestartCount"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lab.inspect("upd-restart")["RestartCount"] == 1
    lab.wait("upd-restart", timeout=30)
    deadline = time.monotonic() + 10  # the second failure is the last: on-failure:1 restarts once
    while lab.inspect("upd-restart")["State"]["Status"] != "exited" and time.monotonic() < deadline:
        time.sleep(0.2)
    info = lab.inspect("upd-restart")
    assert (info["State"]["Status"], info["State"]["ExitCode"], info["RestartCount"]) == ("exited", 3, 1)


def _poll(lab, name, until, seconds=30.0):
    """inspect ``name`` until ``until(info)`` holds (at most ``seconds``); the last reading."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        info = lab.inspect(name)
        if until(info) or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


def test_restart_on_failure_gives_up_after_its_count(lab):
    """``--restart on-failure:3`` starts a failing PID 1 three more times, each after a delay that doubles
    from 100 ms (0.7 s in all, on the backend's clock), then leaves it exited with its code."""
    from labkit.model.container import parse_time

    lab.run("busybox", ["sh", "-c", "echo ran; exit 1"], name="onfail", detach=True, restart="on-failure:3")
    info = _poll(lab, "onfail", lambda i: i["State"]["Status"] == "exited" and i["RestartCount"] == 3)
    assert (info["State"]["Status"], info["State"]["ExitCode"], info["RestartCount"]) == ("exited", 1, 3), info
    assert [text for _, text, _ in lab.logs("onfail")] == ["ran\n"] * 4
    waited = (parse_time(info["State"]["StartedAt"]) - parse_time(info["Created"])).total_seconds()
    assert waited >= 0.1 + 0.2 + 0.4, waited


def test_restart_always_runs_again_until_stopped(lab):
    """``--restart always`` brings back a PID 1 that ended well or not, counting the restarts, and shows
    ``restarting`` between two runs; ``stop`` ends it for good, and ``unless-stopped`` restarts a clean exit too."""
    import time

    lab.run("busybox", ["sh", "-c", "sleep 0.2; exit 2"], name="again", detach=True, restart="always")
    info = _poll(lab, "again", lambda i: i["RestartCount"] >= 2)
    assert info["RestartCount"] >= 2 and info["State"]["Status"] in ("running", "restarting"), info
    seen = info["State"]
    assert seen["Running"] and seen["Restarting"] == (seen["Status"] == "restarting")
    lab.stop("again", timeout=1)
    info = lab.inspect("again")
    count = info["RestartCount"]
    assert info["State"]["Status"] == "exited" and not info["State"]["Restarting"], info
    time.sleep(1.0)
    info = lab.inspect("again")
    assert (info["State"]["Status"], info["RestartCount"]) == ("exited", count), info
    lab.run("busybox", ["true"], name="clean", detach=True, restart="unless-stopped")
    info = _poll(lab, "clean", lambda i: i["RestartCount"] >= 1)
    assert info["RestartCount"] >= 1 and info["State"]["ExitCode"] == 0, info
    lab.rm("clean", force=True)
