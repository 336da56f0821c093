"""The ``run`` flags that change what a container may do and sees, and ``exec -u``, beside a real dockerd:
``-u``, ``--read-only``, ``--tmpfs``, ``--add-host``, ``--cap-add``/``--cap-drop``, ``--ulimit``, ``--dns``,
``--platform`` and ``--mount``. Each scenario compares, step by step, the exit codes, the outputs
(normalised, tests/parity/compare.py) and the refusals' words, and inspect's fields for the flag.

The differences these scenarios may show are named in ``RUN_FLAG_DIFFERENCES`` (added to the suite's table,
tests/parity/test_parity.py's ``DIFFERENCES``).
"""

from __future__ import annotations

import pytest

from tests.parity.test_parity import DIFFERENCES, assert_parity, run, runtime_wrapping

pytestmark = pytest.mark.root

#: Where these flags' answers differ from Docker's on purpose: name -> one-line justification.
RUN_FLAG_DIFFERENCES: dict[str, str] = {}
DIFFERENCES.update(RUN_FLAG_DIFFERENCES)

#: inspect's fields the flags below fill in.
FLAG_FIELDS = ("{{json .Config.User}} {{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.Tmpfs}} "
               "{{json .HostConfig.ExtraHosts}} {{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}} "
               "{{json .HostConfig.Ulimits}} {{json .HostConfig.Dns}} {{json .HostConfig.Mounts}}")


def test_user(both):
    """``run -u`` by name, uid and uid:gid, a user the image lacks, and what a non-root user may not write;
    ``exec -u`` the same ways into a running container."""
    sc = both()
    for args in (["run", "--rm", "-u", "nobody", "busybox", "id"],
                 ["run", "--rm", "-u", "1000", "busybox", "sh", "-c", "id; echo $HOME"],
                 ["run", "--rm", "-u", "1000:1000", "busybox", "id"],
                 ["run", "--rm", "--user", "nobody:nogroup", "busybox", "id"],
                 ["run", "--rm", "-u", "0:100", "busybox", "id"],
                 ["run", "--rm", "-u", "nobody", "busybox", "touch", "/etc/x"],
                 ["run", "--rm", "-u", "nobody", "busybox", "sh", "-c", "touch /tmp/x && ls -n /tmp/x | cut -c1-24"],
                 ["run", "--rm", "-u", "nosuchuser", "busybox", "id"],
                 ["run", "--rm", "-u", "nobody:nosuchgroup", "busybox", "id"],
                 ["run", "-d", "--name", "ubox", "-u", "nobody", "busybox", "sleep", "300"],
                 ["inspect", "-f", "{{json .Config.User}}", "ubox"],
                 ["exec", "ubox", "id"],
                 ["exec", "-u", "root", "ubox", "id"],
                 ["exec", "-u", "1000:1000", "ubox", "id"],
                 ["exec", "-u", "daemon", "ubox", "sh", "-c", "id -un; echo $HOME"],
                 ["exec", "-u", "nosuchuser", "ubox", "id"],
                 ["exec", "-u", "nobody:nosuchgroup", "ubox", "id"],
                 ["exec", "ubox", "nosuchcommand"],
                 ["exec", "--user", "nobody", "ubox", "touch", "/etc/y"],
                 ["rm", "-f", "ubox"]):
        run(sc, args, allow={"runtime wrapping": runtime_wrapping})
    assert_parity(sc)


def test_read_only_and_tmpfs(both):
    """``--read-only`` refuses writes to the root filesystem but not to volumes and tmpfs mounts;
    ``--tmpfs`` mounts an empty tmpfs with Docker's options, mode and size."""
    sc = both()
    for args in (["run", "--rm", "--read-only", "busybox", "touch", "/x"],
                 ["run", "--rm", "--read-only", "busybox", "sh", "-c", "echo hi > /tmp/x"],
                 ["run", "--rm", "--read-only", "--tmpfs", "/tmp", "busybox", "sh", "-c",
                  "echo hi > /tmp/x && cat /tmp/x"],
                 ["run", "--rm", "--read-only", "-v", "rovol:/data", "busybox", "sh", "-c",
                  "echo hi > /data/x && cat /data/x"],
                 ["run", "--rm", "--tmpfs", "/scratch", "busybox", "sh", "-c",
                  "grep ' /scratch ' /proc/mounts | cut -d' ' -f1-3; stat -c %a /scratch; ls -A /scratch"],
                 ["run", "--rm", "--tmpfs", "/scratch:ro", "busybox", "touch", "/scratch/x"],
                 ["run", "--rm", "--tmpfs", "/scratch:mode=0700", "busybox", "stat", "-c", "%a", "/scratch"],
                 ["run", "--rm", "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c",
                  "dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>&1 | tail -1"],
                 ["run", "--rm", "--tmpfs", "/etc", "busybox", "ls", "/etc"],
                 ["create", "--name", "rofs", "--read-only", "--tmpfs", "/run:rw,size=64k", "busybox"],
                 ["inspect", "-f", "{{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.Tmpfs}}", "rofs"],
                 ["rm", "rofs"],
                 ["volume", "rm", "rovol"]):
        run(sc, args)
    assert_parity(sc)


def test_add_host_and_dns(both):
    """``--add-host`` lines in /etc/hosts (host-gateway too) and ``--dns`` in /etc/resolv.conf; the values
    Docker refuses, refused in its words."""
    sc = both()
    for args in (["run", "--rm", "--add-host", "db:10.1.2.3", "--add-host", "cache=10.1.2.4", "busybox", "sh", "-c",
                  "grep -E 'db|cache' /etc/hosts"],
                 ["run", "--rm", "--add-host", "v6:fd00::1", "busybox", "grep", "v6", "/etc/hosts"],
                 ["run", "--rm", "--add-host", "gw:host-gateway", "busybox", "sh", "-c",
                  "grep -c gw /etc/hosts"],
                 ["run", "--rm", "--dns", "192.0.2.53", "busybox", "grep", "nameserver", "/etc/resolv.conf"],
                 ["run", "--rm", "--dns", "192.0.2.53", "--dns", "192.0.2.54", "busybox", "grep", "-c",
                  "nameserver", "/etc/resolv.conf"],
                 ["create", "--name", "named", "--add-host", "db:10.1.2.3", "--dns", "192.0.2.53", "busybox"],
                 ["inspect", "-f", "{{json .HostConfig.ExtraHosts}} {{json .HostConfig.Dns}}", "named"],
                 ["rm", "named"]):
        run(sc, args)
    for args in (["run", "--rm", "--add-host", "nocolon", "busybox", "true"],
                 ["run", "--rm", "--add-host", "db:notanip", "busybox", "true"],
                 ["run", "--rm", "--dns", "notanip", "busybox", "true"]):
        run(sc, args)
    assert_parity(sc)


def test_capabilities(both):
    """``--cap-drop``/``--cap-add`` change the sets PID 1 has, and what it may then do; an unknown
    capability is refused in Docker's words."""
    sc = both()
    status = "grep -E '^Cap(Eff|Bnd)' /proc/self/status"
    for args in (["run", "--rm", "busybox", "sh", "-c", status],
                 ["run", "--rm", "--cap-drop", "ALL", "busybox", "sh", "-c", status],
                 ["run", "--rm", "--cap-drop", "all", "--cap-add", "NET_BIND_SERVICE", "busybox", "sh", "-c", status],
                 ["run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", status],
                 ["run", "--rm", "--cap-add", "cap_net_admin", "--cap-drop", "MKNOD", "busybox", "sh", "-c", status],
                 ["run", "--rm", "--cap-drop", "CHOWN", "busybox", "chown", "nobody", "/tmp"],
                 ["run", "--rm", "--cap-drop", "NET_RAW", "busybox", "sh", "-c", status],
                 ["run", "--rm", "-u", "nobody", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", status],
                 ["create", "--name", "capped", "--cap-add", "net_admin", "--cap-drop", "chown", "busybox"],
                 ["inspect", "-f", "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}}", "capped"],
                 ["rm", "capped"],
                 ["run", "--rm", "--cap-add", "BOGUS", "busybox", "true"],
                 ["run", "--rm", "--cap-drop", "NOPE", "busybox", "true"]):
        run(sc, args)
    assert_parity(sc)


def test_ulimit(both):
    """``--ulimit`` sets the soft and hard limits PID 1 starts with; a bad one is refused in Docker's words."""
    sc = both()
    for args in (["run", "--rm", "--ulimit", "nofile=1024:2048", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"],
                 ["run", "--rm", "--ulimit", "nofile=512", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"],
                 ["run", "--rm", "--ulimit", "nproc=64:64", "--ulimit", "core=0", "busybox", "sh", "-c",
                  "ulimit -u; ulimit -c"],
                 ["run", "--rm", "--ulimit", "stack=8388608:16777216", "busybox", "sh", "-c", "ulimit -s"],
                 ["create", "--name", "limited", "--ulimit", "nofile=1024:2048", "busybox"],
                 ["inspect", "-f", "{{json .HostConfig.Ulimits}}", "limited"],
                 ["rm", "limited"]):
        run(sc, args)
    for args in (["run", "--rm", "--ulimit", "bogus=1", "busybox", "true"],
                 ["run", "--rm", "--ulimit", "nofile", "busybox", "true"],
                 ["run", "--rm", "--ulimit", "nofile=2048:1024", "busybox", "true"],
                 ["run", "--rm", "--ulimit", "nofile=abc", "busybox", "true"]):
        run(sc, args)
    assert_parity(sc)


def test_platform(both):
    """``--platform`` of the host's runs; another is refused (each engine holds busybox for the host only)."""
    sc = both()
    import platform

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    for args in (["run", "--rm", "--platform", f"linux/{arch}", "busybox", "echo", "ok"],
                 ["run", "--rm", "--platform", "linux", "busybox", "echo", "ok"],
                 ["create", "--name", "plat", "--platform", f"linux/{arch}", "busybox"],
                 ["inspect", "-f", "{{.Platform}}", "plat"],
                 ["rm", "plat"]):
        run(sc, args)
    assert_parity(sc)


#: ``.Mounts`` one per line: dockerd lists a container's mounts in the order of a Go map (its MountPoints),
#: which differs from run to run, so they are compared as a set of lines.
MOUNTS_BY_LINE = "{{range .Mounts}}{{println .Type .Name .Destination .RW}}{{end}}"


def test_mount(both, tmp_path):
    """``--mount`` of a volume, a bind (read-only too) and a tmpfs: what the container sees, inspect's
    ``Mounts`` and ``HostConfig.Mounts``, and the refusals of a missing bind source and a bad key."""
    sc = both()
    (tmp_path / "bound.txt").write_text("from the host\n")
    src = str(tmp_path)
    for args in (["run", "--rm", "--mount", "type=volume,source=mvol,target=/data", "busybox", "sh", "-c",
                  "echo kept > /data/f; cat /data/f"],
                 ["run", "--rm", "--mount", "source=mvol,target=/data,readonly", "busybox", "sh", "-c",
                  "cat /data/f; touch /data/g"],
                 ["run", "--rm", "--mount", f"type=bind,source={src},target=/host", "busybox", "cat",
                  "/host/bound.txt"],
                 ["run", "--rm", "--mount", f"type=bind,src={src},dst=/host,ro", "busybox", "touch", "/host/x"],
                 ["run", "--rm", "--mount", "type=tmpfs,destination=/t", "busybox", "sh", "-c",
                  "grep ' /t ' /proc/mounts | cut -d' ' -f1-3"],
                 ["run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-mode=1770", "busybox", "stat", "-c", "%a",
                  "/t"],
                 ["create", "--name", "mounted", "--mount", "type=volume,source=mvol,target=/data",
                  "--mount", "type=tmpfs,target=/t", "busybox"],
                 ["inspect", "-f", "{{json .HostConfig.Mounts}}", "mounted"],
                 ["inspect", "-f", MOUNTS_BY_LINE, "mounted"],
                 ["rm", "mounted"],
                 ["create", "--name", "intmpfs", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
                  "busybox"],
                 ["inspect", "-f", "{{json .Mounts}} {{json .HostConfig.Mounts}}", "intmpfs"],
                 ["rm", "intmpfs"],
                 ["run", "--rm", "--mount", "type=bind,source=/nonexistent-labkit,target=/x", "busybox", "true"],
                 ["run", "--rm", "--mount", "type=volume,target=/x,bogus=1", "busybox", "true"],
                 ["run", "--rm", "--mount", "type=bind,target=/x", "busybox", "true"],
                 ["run", "--rm", "--mount", "type=nfs,target=/x", "busybox", "true"],
                 ["volume", "rm", "mvol"]):
        run(sc, args, out="lines" if MOUNTS_BY_LINE in args else "exact")
    assert_parity(sc)
