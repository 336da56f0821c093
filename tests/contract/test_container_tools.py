"""``rename``, ``top``, ``stats``, ``update``, ``container prune`` and ``system df`` hold on every backend."""

from __future__ import annotations

import pytest

from labkit.errors import IllegalTransition, InvalidArgument, NameInUse, NoSuchContainer


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
    removed = lab.prune_containers()
    assert {done.id, made.id} <= set(removed) and up.id not in removed
    assert [item["Id"] for item in lab.ps(all=True)] == [up.id]
