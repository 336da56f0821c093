"""run's flags hold the same on every backend: who the command runs as, what it may do, what it sees."""

from __future__ import annotations

import os
import time

import pytest

from labkit.errors import StartFailed
from tests.util import wait_for

DEFAULT_CAPS = 0xA80425FB
NET_ADMIN = 1 << 12


def _out(lab, *args, **kw) -> tuple[int, str]:
    """Run a container to its end; (exit code, what it wrote)."""
    c = lab.run("busybox", list(args), **kw)
    return c.exit_code, c.logs()


def _status(text: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if k}


def test_capabilities_are_dockers_and_change_only_as_asked(lab):
    """Default CapEff is Docker's mask; --cap-add NET_ADMIN adds exactly that bit; --cap-drop ALL --cap-add CHOWN
    leaves only CHOWN; a user other than root has none effective and the container's bounding set."""
    status = "grep -E 'Cap(Eff|Bnd)|Seccomp' /proc/self/status"
    plain = _status(_out(lab, "sh", "-c", status)[1])
    assert int(plain["CapEff"], 16) == int(plain["CapBnd"], 16) == DEFAULT_CAPS and plain["Seccomp"] == "2"
    added = _status(_out(lab, "sh", "-c", status, cap_add=["NET_ADMIN"])[1])
    assert int(added["CapEff"], 16) == DEFAULT_CAPS | NET_ADMIN
    only = _status(_out(lab, "sh", "-c", status, cap_drop=["ALL"], cap_add=["CAP_CHOWN"])[1])
    assert int(only["CapEff"], 16) == 1 and int(only["CapBnd"], 16) == 1
    user = _status(_out(lab, "sh", "-c", status, user="1000", cap_add=["NET_ADMIN"])[1])
    assert int(user["CapEff"], 16) == 0 and int(user["CapBnd"], 16) == DEFAULT_CAPS | NET_ADMIN


def test_privileged_lifts_the_filter_and_the_default_comes_back(lab):
    """--privileged: every default capability and more, no seccomp filter, no masked paths in inspect; the next
    container is confined again."""
    c = lab.run("busybox", ["grep", "-E", "CapEff|Seccomp", "/proc/self/status"], privileged=True)
    got = _status(c.logs())
    assert c.exit_code == 0 and int(got["CapEff"], 16) & DEFAULT_CAPS == DEFAULT_CAPS
    assert int(got["CapEff"], 16) & (1 << 21), "CAP_SYS_ADMIN"
    assert got["Seccomp"] == "0"
    info = lab.inspect(c.id)
    assert info["HostConfig"]["Privileged"] is True and info["HostConfig"]["MaskedPaths"] is None
    got = _status(_out(lab, "grep", "-E", "CapEff|Seccomp", "/proc/self/status")[1])
    assert int(got["CapEff"], 16) == DEFAULT_CAPS and got["Seccomp"] == "2"


def test_a_user_runs_as_itself_and_cannot_read_roots_private_file(lab):
    """-u 1000 is uid 1000, gid 0, HOME /; a 0600 file of root's is refused to it (EACCES); root reads it."""
    lab.run("busybox", ["sleep", "300"], name="uu", detach=True)
    assert lab.exec_output("uu", ["sh", "-c", "echo secret > /secret; chmod 600 /secret"]) == (0, "")
    code, text = lab.exec_output("uu", ["cat", "/secret"], user="1000")
    assert code == 1 and "Permission denied" in text
    assert lab.exec_output("uu", ["cat", "/secret"]) == (0, "secret\n")
    assert lab.exec_output("uu", ["id"], user="1000") == (0, "uid=1000 gid=0(root) groups=0(root)\n")
    assert lab.exec_output("uu", ["sh", "-c", "id -u; echo $HOME"], user="nobody") == (0, "65534\n/home\n")
    c = lab.run("busybox", ["sh", "-c", "id -u; echo $HOME"], user="nobody")
    assert (c.exit_code, c.logs()) == (0, "65534\n/home\n")
    assert lab.inspect(c.id)["Config"]["User"] == "nobody"


def test_root_has_dockers_supplementary_groups_read_from_the_images_group_file(lab):
    """Without -u the command is root with its primary group and each group /etc/group lists root in, as Docker
    gives them (moby's getUser): busybox's file lists root nowhere, so ``groups=0(root)``; a group that lists
    root joins, in PID 1 and in exec alike."""
    assert _out(lab, "id") == (0, "uid=0(root) gid=0(root) groups=0(root)\n")
    lab.run("busybox", ["sleep", "300"], name="grp", detach=True)
    assert lab.exec_output("grp", ["sh", "-c", "echo 'wheel:x:10:root,nobody' >> /etc/group"]) == (0, "")
    assert lab.exec_output("grp", ["id"]) == (0, "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n")
    assert lab.exec_output("grp", ["grep", "Groups", "/proc/self/status"]) == (0, "Groups:\t0 10 \n")
    assert lab.exec_output("grp", ["id"], user="nobody") == (0, "uid=65534(nobody) gid=65534(nobody) groups=10(wheel),65534(nobody)\n")


def test_an_unknown_user_fails_the_start_in_dockers_words(lab):
    with pytest.raises(StartFailed, match="unable to find user nosuch: no matching entries in passwd file"):
        lab.run("busybox", ["true"], user="nosuch", name="nouser")
    assert lab.inspect("nouser")["State"]["Status"] == "created"


def test_read_only_refuses_writes_to_root_but_not_to_mounts(lab, tmp_path):
    """--read-only: a write to / fails with EROFS; --tmpfs, a volume and /etc/hosts stay writable."""
    code, text = _out(lab, "sh", "-c", "touch /x; touch /tmp/t && echo tmp; touch /v/f && echo vol;"
                      "echo 1.2.3.4 x >> /etc/hosts && echo hosts", read_only=True, tmpfs=["/tmp"],
                      volumes=["rovol:/v"])
    lines = text.splitlines()  # stdout and stderr are two pipes: their lines may interleave either way
    assert "touch: /x: Read-only file system" in lines
    assert [line for line in lines if not line.startswith("touch")] == ["tmp", "vol", "hosts"]
    info = lab.inspect(lab.ps(all=True)[0]["Id"])
    assert info["HostConfig"]["ReadonlyRootfs"] is True and info["HostConfig"]["Tmpfs"] == {"/tmp": ""}


def test_mount_flag_binds_volumes_and_tmpfs(lab, tmp_path):
    """--mount: a read-only bind refuses writes, a volume keeps them, a tmpfs starts empty each time."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("from the host\n")
    code, text = _out(lab, "sh", "-c", "cat /b/f; touch /b/g; touch /t/x && ls /t; touch /v/y && ls /v",
                      mounts=[f"type=bind,source={src},target=/b,readonly", "type=tmpfs,target=/t",
                              "type=volume,source=mvol,target=/v"])
    lines = text.splitlines()
    assert lines[0] == "from the host" and "touch: /b/g: Read-only file system" in lines
    assert lines.count("x") == 1 and lines.count("y") == 1
    assert not (src / "g").exists()
    info = lab.inspect(lab.ps(all=True)[0]["Id"])
    assert {"Type": "bind", "Source": str(src), "Target": "/b", "ReadOnly": True} in info["HostConfig"]["Mounts"]
    assert {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": True, "Propagation": ""} \
        in info["Mounts"]
    with pytest.raises(Exception, match="bind source path does not exist"):
        lab.create("busybox", ["true"], mounts=[f"type=bind,source={tmp_path}/missing,target=/b"])


def test_add_host_and_dns_write_the_containers_files(lab):
    code, text = _out(lab, "cat", "/etc/hosts", "/etc/resolv.conf", add_host=["db:10.0.0.5"], dns=["9.9.9.9"])
    assert "10.0.0.5\tdb\n" in text and "nameserver 9.9.9.9\n" in text
    assert [line for line in text.splitlines() if line.startswith("nameserver")] == ["nameserver 9.9.9.9"]


def test_nproc_limits_a_users_forks_and_a_raised_hard_limit_is_refused(lab):
    """--ulimit nproc=2 for a user: its third process cannot be forked (EAGAIN); a hard limit above what labkit
    holds is refused at start (setrlimit(2) needs CAP_SYS_RESOURCE to raise it)."""
    code, text = _out(lab, "sh", "-c", "sleep 1 & sleep 1 & sleep 1 & wait", user="4242", ulimits=["nproc=2"])
    assert "can't fork" in text
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or os.geteuid() == 0 and _has_sys_resource():
        pytest.skip("this process may raise its hard limits")
    with pytest.raises(StartFailed, match="error setting rlimit type 7: operation not permitted"):
        lab.run("busybox", ["true"], ulimits=[f"nofile=10:{hard + 1}"])


def _has_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(eff & (1 << 24))


def test_exec_detached_returns_at_once_and_the_command_runs(lab):
    """exec -d returns while its command still runs; the command's work shows later."""
    lab.run("busybox", ["sleep", "300"], name="dd", detach=True)
    began = time.monotonic()
    assert lab.exec("dd", ["sh", "-c", "sleep 2; touch /done"], detach=True) is None
    assert time.monotonic() - began < 2
    assert wait_for(lambda: lab.exec_output("dd", ["ls", "/done"])[0] == 0, timeout=20)


def test_run_i_relays_stdin_to_pid_1(lab):
    """-i without -t: what is written to the descriptor start is given reaches PID 1, whose end of file ends it."""
    r, w = os.pipe()
    os.write(w, b"one\ntwo\n")
    os.close(w)
    c = lab.create("busybox", ["wc", "-l"], open_stdin=True, attach=("stdin", "stdout", "stderr"))
    try:
        lab.start(c.id, stdin=r)
    finally:
        os.close(r)
    assert lab.wait(c.id, timeout=30) == 0
    assert c.logs().strip() == "2"
    config = lab.inspect(c.id)["Config"]
    assert (config["OpenStdin"], config["AttachStdin"], config["StdinOnce"]) == (True, True, True)


def test_sizes_count_the_writable_layer(lab):
    """ps and inspect with size: SizeRw is what the writable layer holds, SizeRootFs that plus the image."""
    lab.run("busybox", ["sh", "-c", "echo 123456789 > /f; sleep 300"], name="ss", detach=True)
    assert wait_for(lambda: lab.exec_output("ss", ["cat", "/f"])[1] == "123456789\n")
    item = next(i for i in lab.ps(size=True) if i["Names"] == ["/ss"])
    info = lab.inspect("ss", size=True)
    assert item["SizeRw"] == info["SizeRw"] >= 10
    assert info["SizeRootFs"] == info["SizeRw"] + lab.images.get("busybox").size
    keys = list(info)
    assert keys[keys.index("GraphDriver") + 1:keys.index("GraphDriver") + 3] == ["SizeRw", "SizeRootFs"]


def test_logs_since_and_until_cut_the_window(lab):
    c = lab.run("busybox", ["sh", "-c", "echo early; sleep 2; echo late"])
    stamps = [t for _, _, t in lab.logs(c.id)]
    from labkit.model.container import parse_time

    middle = (parse_time(stamps[0]).timestamp() + parse_time(stamps[1]).timestamp()) / 2
    assert [text for _, text, _ in lab.logs(c.id, since=middle)] == ["late\n"]
    assert [text for _, text, _ in lab.logs(c.id, until=middle)] == ["early\n"]
