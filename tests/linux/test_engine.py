"""The spine on the real kernel: what a learner is told about containers holds, as root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.errors import IllegalTransition, NameInUse, NoSuchContainer, NoSuchImage, StartFailed
from tests.util import scaled, tree_digest, wait_for

pytestmark = pytest.mark.root


def ns_links(pid: int | str) -> dict[str, str]:
    return {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in ("pid", "mnt", "uts", "ipc", "net", "cgroup")}



def test_container_is_an_isolated_process(engine):
    """PID 1 is a real host process whose namespaces all differ from the host's; inside it is PID 1 with its own hostname."""
    c = engine.run("busybox", ["sleep", "30"], detach=True, name="iso")
    pid = c.inspect()["State"]["Pid"]
    assert pid > 1 and os.path.exists(f"/proc/{pid}")
    host, mine = ns_links("self"), ns_links(pid)
    for kind in host:
        assert host[kind] != mine[kind], kind
    code, out = c.exec(["sh", "-c", "echo $$; hostname; cat /proc/1/cmdline | tr '\\0' ' '"])
    lines = out.split("\n")
    assert code == 0
    assert lines[0] == "1" or lines[0].isdigit()  # the exec'd shell has its own PID in the container's namespace
    assert lines[1] == c.id[:12]
    assert lines[2].strip() == "sleep 30"
    code, out = c.exec(["cat", "/proc/net/dev"])
    ifaces = {ln.split(":")[0].strip() for ln in out.splitlines()[2:]}
    assert ifaces == {"lo", "eth0"}, "its own interfaces: loopback and its end of a veth pair"
    alone = engine.run("busybox", ["cat", "/proc/net/dev"], network="none")
    assert {ln.split(":")[0].strip() for ln in alone.logs().splitlines()[2:]} == {"lo"}


def test_echo_dollar_dollar_is_one(engine):
    """The command a container runs sees itself as PID 1."""
    c = engine.run("busybox", ["sh", "-c", "echo $$"])
    assert c.logs() == "1\n"
    assert c.exit_code == 0


def test_copy_up_leaves_image_layers_untouched(engine):
    """A write to an image file lands in the upper dir by copy-up; the image layer's bytes are unchanged."""
    img = engine.images.get("busybox")
    before = [tree_digest(p) for p in img.lowerdirs()]
    c = engine.run("busybox", ["sh", "-c", "echo changed >> /etc/passwd; rm /etc/group; mkdir /data; echo x > /data/new"])
    assert c.exit_code == 0
    gd = c.inspect()["GraphDriver"]["Data"]
    upper = Path(gd["UpperDir"])
    assert (upper / "etc/passwd").read_text().endswith("changed\n")
    st = os.lstat(upper / "etc/group")
    assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0, "a delete leaves a whiteout (char device 0/0)"
    assert [tree_digest(p) for p in img.lowerdirs()] == before
    assert all(os.path.isdir(p) for p in gd["LowerDir"].split(":"))
    assert {(d["Kind"], d["Path"]) for d in c.diff()} >= {(0, "/etc"), (0, "/etc/passwd"), (2, "/etc/group"),
                                                        (1, "/data"), (1, "/data/new")}


def test_diff_lists_like_docker(engine):
    """diff prints C for a changed directory before its children, and deletions last; /etc/hostname never shows."""
    c = engine.run("busybox", ["sh", "-c", "touch /etc/zz; rm /etc/group; echo 1 > /tmp/a"])
    kinds = [(d["Kind"], d["Path"]) for d in c.diff()]
    assert kinds.index((0, "/etc")) < kinds.index((1, "/etc/zz")) < kinds.index((2, "/etc/group"))
    assert not any(p in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf") for _, p in kinds)


def test_diff_sees_a_file_rewritten_to_the_same_size_and_time(engine):
    """A file deleted and written again with its old size and mtime (cp -p) is C, its directory too, as Docker's
    overlay2 diff says: a copy in the upper dir over an image file is a change whatever its stat says."""
    c = engine.run("busybox", ["sh", "-c", "cp -p /etc/group /g; rm /etc/group; cp -p /g /etc/group; rm /g"])
    upper = c.inspect()["GraphDriver"]["Data"]["UpperDir"]
    assert os.path.isfile(os.path.join(upper, "etc/group"))
    assert [(d["Kind"], d["Path"]) for d in c.diff()] == [(0, "/etc"), (0, "/etc/group")]


def test_two_containers_share_layers_not_writes(engine):
    """Two containers of one image share the lower dirs and never see each other's writes."""
    a = engine.run("busybox", ["sleep", "30"], detach=True)
    b = engine.run("busybox", ["sleep", "30"], detach=True)
    la = a.inspect()["GraphDriver"]["Data"]
    lb = b.inspect()["GraphDriver"]["Data"]
    assert la["LowerDir"].split(":")[1:] == lb["LowerDir"].split(":")[1:]
    assert la["UpperDir"] != lb["UpperDir"]
    assert a.exec(["sh", "-c", "echo from-a > /tmp/note"])[0] == 0
    assert b.exec(["cat", "/tmp/note"])[0] != 0
    assert a.exec(["cat", "/tmp/note"]) == (0, "from-a\n")


def test_stop_start_keeps_files_and_rm_removes_them(engine):
    """A stopped container keeps its writable layer; start picks up where it left off; rm deletes it."""
    c = engine.run("busybox", ["sh", "-c", "echo run >> /count; cat /count; sleep 30"], detach=True)
    assert wait_for(lambda: "run" in c.logs())
    upper = Path(c.inspect()["GraphDriver"]["Data"]["UpperDir"])
    c.stop(timeout=0)
    assert c.status == "exited" and c.exit_code == 137
    assert (upper / "count").read_text() == "run\n"
    c.start()
    assert wait_for(lambda: c.logs().count("run") >= 3)
    assert (upper / "count").read_text() == "run\nrun\n"
    c.remove(force=True)
    assert not upper.exists()
    with pytest.raises(NoSuchContainer):
        engine.inspect(c.id)


def test_volume_outlives_the_container(engine):
    """Data written to a volume survives rm and is seen by a new container."""
    engine.volume_create("kept")
    try:
        c = engine.run("busybox", ["sh", "-c", "echo precious > /data/f"], volumes=["kept:/data"])
        assert c.exit_code == 0
        c.remove()
        d = engine.run("busybox", ["cat", "/data/f"], volumes=["kept:/data"])
        assert d.logs() == "precious\n"
        assert d.inspect()["Mounts"][0]["Name"] == "kept"
        d.remove()
    finally:
        engine.volume_rm("kept")


def test_pause_freezes_and_unpause_resumes(engine):
    """pause freezes PID 1 (the host sees it frozen and its counter stops); unpause resumes it."""
    c = engine.run("busybox", ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done"],
                   detach=True)
    upper = Path(c.inspect()["GraphDriver"]["Data"]["UpperDir"])
    assert wait_for(lambda: (upper / "tmp/n").exists())
    c.pause()
    assert c.status == "paused"
    frozen_at = (upper / "tmp/n").read_text()
    time.sleep(0.3)
    assert (upper / "tmp/n").read_text() == frozen_at
    with pytest.raises(IllegalTransition, match="is paused, unpause the container before exec"):
        c.exec(["true"])
    c.unpause()
    assert wait_for(lambda: (upper / "tmp/n").read_text() != frozen_at)
    assert c.status == "running"


def test_sigterm_and_sigkill_exit_codes(engine):
    """stop ends a process that handles SIGTERM with 143; one that ignores it is killed after the timeout: 137."""
    t = engine.run("busybox", ["sh", "-c", "trap 'exit 143' TERM; echo ready; while true; do sleep 0.1; done"],
                   detach=True)
    assert wait_for(lambda: "ready" in t.logs()), "the trap is set before the signal is sent"
    t.stop(timeout=5)
    assert t.exit_code == 143
    k = engine.run("busybox", ["sleep", "30"], detach=True)
    k.stop(timeout=0.2)
    assert k.exit_code == 137


def test_memory_limit_oom_kill(engine):
    """A process that allocates past --memory is killed by the kernel and State.OOMKilled says so."""
    c = engine.run("busybox", ["sh", "-c", "x=a; while true; do x=$x$x; done"], memory="16m")
    st = c.inspect()["State"]
    assert st["OOMKilled"] is True
    assert st["ExitCode"] == 137


def test_pids_limit_stops_a_fork_bomb(engine):
    """--pids-limit makes fork fail inside the container: the shell says so and the count stays at the limit."""
    c = engine.run("busybox", ["sleep", "60"], pids_limit=5, detach=True)
    code, out = c.exec(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do sleep 30 & done; wait"])
    assert code != 0 and "can't fork: Resource temporarily unavailable" in out
    from labkit.linux import cgroups

    group = cgroups.Cgroup.open(engine.backend.layout, c.id)
    assert group.pids_current() <= 5
    assert c.status == "running", "the container itself is unharmed"
    c.remove(force=True)


def test_errors_speak_dockers_words(engine):
    """Unknown image, name in use and illegal transitions raise with Docker's messages; nothing half-made remains."""
    n = len(engine.ps(all=True))
    with pytest.raises(NoSuchImage):
        engine.run("nosuchimage:1.0", ["true"])
    engine.create("busybox", ["true"], name="taken")
    with pytest.raises(NameInUse, match='The container name "/taken" is already in use'):
        engine.create("busybox", ["true"], name="taken")
    with pytest.raises(IllegalTransition, match="is not running"):
        engine.pause("taken")
    assert len(engine.ps(all=True)) == n + 1


def test_missing_command_is_127_and_leaves_nothing(engine):
    """A command that does not exist fails the start with 127; the container stays created and holds no mount."""
    c = engine.create("busybox", ["nope-not-here"])
    with pytest.raises(StartFailed) as info:
        c.start()
    assert info.value.exit_code == 127
    st = c.inspect()["State"]
    assert st["Status"] == "created" and st["ExitCode"] == 127 and "nope-not-here" in st["Error"]
    merged = c.inspect()["GraphDriver"]["Data"]["MergedDir"]
    assert not os.path.ismount(merged)


def test_another_process_sees_the_same_world(engine):
    """A container made here is seen by the CLI in another process, and the CLI's changes are seen here."""
    c = engine.run("busybox", ["sleep", "30"], detach=True, name="shared-world")
    env = {**os.environ, "LABKIT_ROOT": str(engine.store.root)}
    out = subprocess.run([sys.executable, "-m", "labkit", "ps"], capture_output=True, text=True, env=env)
    assert "shared-world" in out.stdout, out.stderr
    subprocess.run([sys.executable, "-m", "labkit", "stop", "-t", "0", "shared-world"], check=True, env=env,
                   capture_output=True)
    assert c.status == "exited"


def test_supervisor_outlives_its_starter(engine):
    """A container started by a process that then exits keeps running, and its exit is still recorded."""
    env = {**os.environ, "LABKIT_ROOT": str(engine.store.root)}
    out = subprocess.run([sys.executable, "-m", "labkit", "run", "-d", "--name", "orphan", "busybox",
                          "sh", "-c", "sleep 3; exit 7"], capture_output=True, text=True, env=env)
    cid = out.stdout.strip()
    assert len(cid) == 64, out.stderr
    assert engine.inspect("orphan")["State"]["Running"]  # 3 s: long enough for a starter slowed by a loaded host
    assert engine.wait("orphan", timeout=30) == 7
    assert engine.inspect("orphan")["State"]["Status"] == "exited"


def test_interrupted_rm_is_finished_by_rm_force(engine):
    """A removal cut short (record says removing) shows in ps -a and rm -f finishes it."""
    c = engine.run("busybox", ["sleep", "30"], detach=True)
    rec = engine.store.load(c.id)
    from labkit.model.lifecycle import Status

    engine.store.save(rec.with_state(status=Status.REMOVING))
    row = [r for r in engine.ps(all=True) if r["Id"] == c.id][0]
    assert row["Status"] == "Removal In Progress"
    with pytest.raises(IllegalTransition, match="already in progress"):
        engine.rm(c.id)
    engine.rm(c.id, force=True)
    assert c.id not in engine.store.container_ids()


def test_inspect_paths_are_real(engine):
    """inspect's GraphDriver, LogPath and HostnamePath point at real files on the host."""
    c = engine.run("busybox", ["sh", "-c", "echo out; echo err >&2"], name="paths", env={"NODE_ENV": "production"})
    info = c.inspect()
    for key in ("UpperDir", "WorkDir"):
        assert os.path.isdir(info["GraphDriver"]["Data"][key])
    assert "NODE_ENV=production" in info["Config"]["Env"]
    log = [json.loads(x) for x in Path(info["LogPath"]).read_text().splitlines()]
    assert {(x["stream"], x["log"]) for x in log} == {("stdout", "out\n"), ("stderr", "err\n")}
    assert Path(info["HostnamePath"]).read_text().strip() == c.id[:12]


_CUT_START = """
import os, sys, labkit
from labkit.model.lifecycle import Status
lab = labkit.connect(backend="linux", root=sys.argv[1])
real_save = lab._save
def save(rec):
    if rec.status is Status.RUNNING:
        os._exit(9)  # killed after the process started, before its record said so
    real_save(rec)
lab._save = save
lab.run("busybox", ["sleep", "60"], detach=True, name="cut")
"""


def test_killed_mid_run_is_undone_by_the_next_ps(engine):
    """A run killed between launching PID 1 and saving its record: the next ps -a kills that unrecorded PID 1, undoes
    its mounts and cgroup and says Created with the reason; start then runs it, and rm -f cleans it all up."""
    proc = subprocess.run([sys.executable, "-c", _CUT_START, str(engine.store.root)], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    cid = engine.store.names()["cut"]
    from labkit.linux import procfs

    shims = procfs.supervisors_of(str(engine.store.container_dir(cid) / "exit.json"))
    assert shims, "the killed run had started a supervisor"
    row = [r for r in engine.ps(all=True) if r["Names"] == ["/cut"]][0]
    assert row["State"] == "created"
    state = engine.inspect("cut")["State"]
    assert "interrupted" in state["Error"] and state["Pid"] == 0
    merged = engine.inspect("cut")["GraphDriver"]["Data"]["MergedDir"]
    assert not os.path.ismount(merged)
    assert not any(procfs.alive(pid, 0) for pid in shims)
    assert not os.path.exists(f"/sys/fs/cgroup/labkit/{cid}")
    engine.start("cut")
    assert engine.inspect("cut")["State"]["Status"] == "running"
    engine.rm("cut", force=True)
    assert not os.path.ismount(merged)
    assert not os.path.exists(merged)


_CUT_PAUSE = """
import os, sys, labkit
lab = labkit.connect(backend="linux", root=sys.argv[1])
lab._save = lambda rec: os._exit(9)  # killed once the kernel froze (or thawed) it, before its record said so
getattr(lab, sys.argv[2])(sys.argv[3])
"""


def test_pause_or_unpause_killed_before_its_record_shows_what_the_kernel_holds(engine):
    """pause killed between the freeze and saving the record: the next ps says Paused (not Up) of the frozen
    container; unpause killed between the thaw and the save: Up again. unpause and rm -f then work."""
    c = engine.run("busybox", ["sleep", "60"], detach=True, name="cut-pause")
    group = engine.backend._group(engine.store.load(c.id))

    def cut(verb: str) -> None:
        proc = subprocess.run([sys.executable, "-c", _CUT_PAUSE, str(engine.store.root), verb, c.id],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 9, proc.stderr

    cut("pause")
    assert group.frozen()
    row = [r for r in engine.ps(all=True) if r["Names"] == ["/cut-pause"]][0]
    assert (row["State"], row["Status"].endswith("(Paused)")) == ("paused", True), row
    cut("unpause")
    assert not group.freeze_requested()
    row = [r for r in engine.ps(all=True) if r["Names"] == ["/cut-pause"]][0]
    assert (row["State"], row["Status"].startswith("Up"), "Paused" in row["Status"]) == ("running", True, False), row
    engine.pause(c.id)
    engine.unpause(c.id)
    assert c.status == "running" and not group.freeze_requested()
    engine.rm(c.id, force=True)


def test_an_exited_containers_overlay_is_gone_when_wait_returns_and_mounts_again_on_start(engine):
    """When an attached run returns, the overlay is out of the mount table; the layer mounts again on the next
    start, with what the first run wrote."""
    c = engine.run("busybox", ["sh", "-c", "echo kept > /f"])
    merged = c.inspect()["GraphDriver"]["Data"]["MergedDir"]
    with open("/proc/self/mountinfo") as f:
        assert merged not in f.read()
    engine.start(c.id)
    assert engine.wait(c.id, timeout=10) == 0
    assert (Path(c.inspect()["GraphDriver"]["Data"]["UpperDir"]) / "f").read_text() == "kept\n"
    c.remove()


def test_run_rm_removes_after_exit(engine):
    """--rm removes the container once it exits; an attached run still reports its output and exit code."""
    c = engine.run("busybox", ["sh", "-c", "echo bye; exit 4"], auto_remove=True)
    assert c.exit_code == 4 and c.logs() == "bye\n"
    assert c.id not in engine.store.container_ids()
    d = engine.run("busybox", ["sh", "-c", "sleep 0.3"], auto_remove=True, detach=True)
    assert engine.wait(d.id, timeout=10) == 0
    assert all(r["Id"] != d.id for r in engine.ps(all=True))


def _state_listing(root: Path) -> dict[str, list[str]]:
    """What the state root holds of containers: records, layers, volumes, and what ``tmp`` holds but the trash
    (``tmp/trash-*``: trees a removal took away at once, deleted in the background)."""
    got = {d: sorted(os.listdir(root / d)) for d in ("containers", "overlay", "volumes")}
    got["tmp"] = sorted(n for n in os.listdir(root / "tmp") if not n.startswith("trash-"))
    return got


def test_run_rm_leaves_nothing_in_the_state_root_when_it_returns(engine):
    """When an attached --rm run returns, its record, writable layer and init layer are gone from the state root,
    as after Docker's `run --rm`: run twenty times, so a removal that finishes later would be seen."""
    root = engine.store.root
    engine.run("busybox", ["true"], auto_remove=True)  # the image is pulled before the count
    before = _state_listing(root)
    for _ in range(20):
        c = engine.run("busybox", ["true"], auto_remove=True)
        assert c.exit_code == 0
        assert _state_listing(root) == before, f"{c.id[:12]} left something behind"


def test_init_makes_stop_quick_and_reaps(engine):
    """With --init a plain sleep stops on SIGTERM (143) at once, because the init forwards it; without it waits for SIGKILL."""
    c = engine.run("busybox", ["sleep", "30"], detach=True, init=True)
    code, out = c.exec(["cat", "/proc/1/cmdline"])
    assert out.split("\0")[0] == "/sbin/labkit-init"
    c.stop(timeout=20)
    assert c.exit_code == 143, "SIGTERM reached sleep through the init (SIGKILL would give 137)"
    assert not any(d["Path"].startswith("/sbin") for d in c.diff())


def test_restart_policies(engine):
    """on-failure restarts a failing container up to N times; always restarts after exit 0; stop ends it for good."""
    flaky = engine.run("busybox", ["sh", "-c", "echo run; exit 3"], detach=True, restart="on-failure:2")
    # Each restart is the restarter's program starting a container: a slower host stretches the wait (scaled).
    assert wait_for(lambda: engine.inspect(flaky.id)["RestartCount"] == 2
                    and engine.inspect(flaky.id)["State"]["Status"] == "exited", timeout=scaled(20))
    assert flaky.logs().count("run") == 3 and flaky.exit_code == 3
    steady = engine.run("busybox", ["sh", "-c", "sleep 0.2"], detach=True, restart="always")
    assert wait_for(lambda: engine.inspect(steady.id)["RestartCount"] >= 2, timeout=scaled(20))
    steady.stop(timeout=1)
    count = engine.inspect(steady.id)["RestartCount"]
    time.sleep(0.6)
    assert engine.inspect(steady.id)["State"]["Status"] == "exited"
    assert engine.inspect(steady.id)["RestartCount"] == count, "a stopped container is not restarted"
    with pytest.raises(Exception, match="conflicting options: cannot specify both --restart and --rm"):
        engine.create("busybox", ["true"], restart="always", auto_remove=True)


def test_a_stale_start_cannot_bring_a_removed_container_back(engine):
    """A restart policy that read the record before rm -f starts nothing and leaves no directory."""
    c = engine.create("busybox", ["true"])
    stale = engine.store.load(c.id)
    engine.rm(c.id, force=True)
    with pytest.raises(NoSuchContainer):
        engine.containers._launch(stale)
    assert not engine.store.container_dir(c.id).exists()
    assert not engine.store.layer_dir(c.id).exists()


def test_rm_during_restarts_leaves_nothing(engine):
    """rm -f of a container its restart policy keeps bringing back removes it for good, at any moment."""
    import random

    for delay in [0.0, 0.05, 0.1, 0.15, 0.25, 0.4]:
        c = engine.run("busybox", ["true"], detach=True, restart="always")
        time.sleep(delay + random.uniform(0, 0.05))
        engine.rm(c.id, force=True)
        time.sleep(1.0)  # longer than the restart delay at that point: a restarter still running has acted
        assert not engine.store.container_dir(c.id).exists(), f"removed {delay}s after run, it came back"
        assert not engine.store.layer_dir(c.id).exists()
        with open("/proc/self/mounts") as f:
            assert c.id not in f.read()
        ps = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
        assert c.id not in ps, "no supervisor or restarter of it is left"
