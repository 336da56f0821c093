"""Each flag that relaxes the default confinement relaxes exactly what it names, on the real kernel, and
nothing is left relaxed for the next container.

``--cap-add`` gives one capability and not its neighbours; ``-u`` takes root's
powers away; ``--read-only`` refuses writes with EROFS where Docker does and
nowhere else; a tmpfs is noexec unless asked; ``--privileged`` lifts the
seccomp filter, the masked paths and the device rules, and only for its own
container.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root

DEFAULT_CAPS = 0xA80425FB


def _run(engine, argv: list[str], **kw) -> tuple[int, str]:
    c = engine.run("busybox", argv, **kw)
    return c.exit_code, c.logs()


def _cap_eff(text: str) -> int:
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("CapEff:")), 16)


def test_cap_add_net_admin_gives_that_power_and_no_other(engine):
    """NET_ADMIN lets the container change its own interfaces (SIOCSIFFLAGS); without it the kernel says EPERM.
    It does not give CAP_SYS_ADMIN: mount(2) is still refused."""
    script = "ip link set lo down && echo lo-down; mount -t tmpfs none /mnt && echo mounted; grep CapEff /proc/self/status"
    code, text = _run(engine, ["sh", "-c", script], cap_add=["NET_ADMIN"], network="none")
    assert "lo-down" in text and "mounted" not in text
    assert _cap_eff(text) == DEFAULT_CAPS | 1 << 12
    code, text = _run(engine, ["sh", "-c", script], network="none")
    assert "lo-down" not in text and "Operation not permitted" in text and "mounted" not in text
    assert _cap_eff(text) == DEFAULT_CAPS


def test_cap_drop_takes_a_default_power_away(engine):
    """--cap-drop CHOWN: root inside can no longer chown(2) (EPERM); others of the default set stay."""
    code, text = _run(engine, ["sh", "-c", "touch /f; chown 1000 /f && echo chowned; grep CapEff /proc/self/status"],
                      cap_drop=["CHOWN"])
    assert "chowned" not in text and "Operation not permitted" in text
    assert _cap_eff(text) == DEFAULT_CAPS & ~1


def test_a_user_has_no_powers_and_no_way_into_roots_files(engine):
    """-u 1000: a 0600 root file cannot be read, / cannot be written, no capability is effective, and a setuid
    root program would not lift it back (no_new_privs)."""
    # /secret appears already 0600 (renamed into place): an exec never finds it readable for a moment
    engine.run("busybox", ["sh", "-c", "echo x > /s.tmp; chmod 600 /s.tmp; mv /s.tmp /secret; exec sleep 300"],
               name="relax-user", detach=True)
    script = "cat /secret; touch /rootfile; grep -E 'CapEff|NoNewPrivs' /proc/self/status; id -u"
    for _ in range(100):
        code, text = engine.exec_output("relax-user", ["sh", "-c", script], user="1000")
        if "No such file" not in text:
            break
    assert "cat: can't open '/secret': Permission denied" in text
    assert "touch: /rootfile: Permission denied" in text
    assert _cap_eff(text) == 0 and "NoNewPrivs:\t1" in text and text.strip().endswith("1000")
    code, text = engine.exec_output("relax-user", ["cat", "/secret"])
    assert (code, text) == (0, "x\n")


def test_read_only_root_refuses_with_erofs_and_leaves_the_rest_writable(engine):
    """--read-only: writing / gives EROFS; /dev/shm, a --tmpfs, a volume and /etc/hosts stay writable; /proc/mounts
    shows / ro."""
    script = ("touch /x 2>&1; for d in /dev/shm /run /v; do touch $d/ok && echo $d ok; done; "
              "echo 1.1.1.1 a >> /etc/hosts && echo hosts ok; grep ' / ' /proc/mounts")
    c = engine.run("busybox", ["sh", "-c", script], read_only=True, tmpfs=["/run"], volumes=["relax-ro:/v"])
    text = c.logs()
    c.remove()
    assert "touch: /x: Read-only file system" in text
    assert all(f"{d} ok" in text for d in ("/dev/shm", "/run", "/v")) and "hosts ok" in text
    assert " / overlay ro," in text
    engine.volume_rm("relax-ro", force=True)


def test_a_tmpfs_is_noexec_unless_asked(engine):
    """A --tmpfs refuses to execute what is copied into it (noexec, Docker's default); ``exec`` allows it."""
    script = "cp /bin/busybox /t/busybox && /t/busybox true && echo ran; grep ' /t ' /proc/mounts"
    code, text = _run(engine, ["sh", "-c", script], tmpfs=["/t"])
    assert "Permission denied" in text and "ran" not in text and "noexec" in text
    code, text = _run(engine, ["sh", "-c", script], tmpfs=["/t:exec,size=8m"])
    assert "ran" in text and "size=8192k" in text


def test_privileged_unmasks_and_the_next_container_is_masked_again(engine):
    """--privileged: /proc/timer_list is readable, /sys writable, the host's devices present, no seccomp filter;
    a default container right after has all of that taken away again."""
    script = ("wc -l < /proc/timer_list; grep ' /sys ' /proc/mounts; ls /dev/kmsg; grep Seccomp: /proc/self/status;"
              "grep ' /proc/sys ' /proc/mounts || echo no-ro-proc-sys")
    code, text = _run(engine, ["sh", "-c", script], privileged=True)
    lines = text.splitlines()
    assert int(lines[0]) > 0, "timer_list is not masked"
    assert " rw," in lines[1] and "/dev/kmsg" in text and "Seccomp:\t0" in text and "no-ro-proc-sys" in text
    code, text = _run(engine, ["sh", "-c", script])
    lines = text.splitlines()
    assert lines[0] == "0", "timer_list is masked (/dev/null over it)"
    assert " ro," in lines[1] and "Seccomp:\t2" in text and "No such file" in text
    assert "no-ro-proc-sys" not in text


def test_exec_keeps_the_containers_confinement(engine):
    """An exec, even -u 0, has the container's capabilities: the default set, or NET_ADMIN too when added."""
    engine.run("busybox", ["sleep", "300"], name="relax-exec", detach=True, cap_add=["NET_ADMIN"])
    code, text = engine.exec_output("relax-exec", ["grep", "CapEff", "/proc/self/status"], user="0")
    assert _cap_eff(text) == DEFAULT_CAPS | 1 << 12
    code, text = engine.exec_output("relax-exec", ["grep", "CapEff", "/proc/self/status"], user="1000")
    assert _cap_eff(text) == 0


def test_ulimit_sets_the_limit_the_command_sees(engine):
    """--ulimit nofile=100:200 is what ulimit -n and -Hn show inside; exec gets the same."""
    code, text = _run(engine, ["sh", "-c", "ulimit -n; ulimit -Hn"], ulimits=["nofile=100:200"])
    assert text.split() == ["100", "200"]
