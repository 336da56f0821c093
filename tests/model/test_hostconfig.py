"""run's security, filesystem and limit flags are read and refused as Docker reads and refuses them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from labkit.errors import InvalidArgument
from labkit.model import hostconfig as hc
from labkit.model.humanize import parse_timestamp

DEFAULT_MASK = 0xA80425FB  # what `grep CapEff /proc/self/status` shows in a default Docker container


def test_the_default_set_is_dockers_mask():
    """No flag leaves Docker's fourteen capabilities, whose mask is a80425fb."""
    assert hc.capability_mask(hc.capability_set()) == DEFAULT_MASK


@pytest.mark.parametrize("add, drop, want", [
    (["NET_ADMIN"], [], DEFAULT_MASK | 1 << 12),
    (["cap_net_admin"], [], DEFAULT_MASK | 1 << 12),
    ([], ["NET_RAW"], DEFAULT_MASK & ~(1 << 13)),
    (["CHOWN"], ["ALL"], 1),
    ([], ["ALL"], 0),
    (["ALL"], ["SYS_ADMIN"], (1 << 41) - 1 & ~(1 << 21)),
])
def test_cap_add_and_drop_follow_mobys_rules(add, drop, want):
    """--cap-add/--cap-drop: names with or without CAP_, any case; ALL on either side as moby's TweakCapabilities."""
    assert hc.capability_mask(hc.capability_set(add, drop)) == want


def test_privileged_is_every_capability_the_kernel_has():
    """--privileged gives every capability up to cap_last_cap, whatever is added or dropped."""
    assert hc.capability_set(["NET_ADMIN"], ["ALL"], privileged=True, last_cap=37) == frozenset(hc.CAPABILITIES[:38])


def test_an_unknown_capability_is_refused_in_dockers_words():
    with pytest.raises(InvalidArgument, match='invalid CapAdd: unknown capability: "CAP_FLY"'):
        hc.capability_set(["fly"])


def test_a_capability_newer_than_the_kernel_is_refused_in_docker_28s_words():
    """--cap-add of a capability above cap_last_cap: moby's "not supported by your kernel" sentence, daemon-side."""
    from labkit.errors import InvalidCapability

    with pytest.raises(InvalidCapability, match='invalid CapAdd: capability not supported by your kernel or not '
                                                'available in the current environment: "CAP_BPF"'):
        hc.capability_set(["BPF"], last_cap=37)
    with pytest.raises(InvalidCapability, match='invalid CapDrop: capability not supported'):
        hc.capability_set([], ["CAP_CHECKPOINT_RESTORE"], last_cap=39)
    assert "PERFMON" in hc.capability_set(["PERFMON"], last_cap=38)


@pytest.mark.parametrize("text, want", [
    ("nofile=1024:2048", hc.Ulimit("nofile", 1024, 2048)),
    ("nproc=64", hc.Ulimit("nproc", 64, 64)),
    ("core=-1", hc.Ulimit("core", -1, -1)),
])
def test_ulimits_read(text, want):
    assert hc.parse_ulimit(text) == want


@pytest.mark.parametrize("text, words", [
    ("nofile", "invalid ulimit argument: nofile"),
    ("files=1", "invalid ulimit type: files"),
    ("nofile=3:2", "ulimit soft limit must be less than or equal to hard limit: 3 > 2"),
    ("nofile=a", "strconv.ParseInt: parsing \"a\": invalid syntax"),
    ("nofile=1:b", "strconv.ParseInt: parsing \"b\": invalid syntax"),
    ("nofile=1:2:3", "too many limit value arguments"),
])
def test_bad_ulimits_are_refused(text, words):
    with pytest.raises(InvalidArgument, match=words):
        hc.parse_ulimit(text)


def test_mount_fields_and_their_aliases():
    """--mount reads type, source/src, target/dst/destination, readonly/ro and tmpfs-size/-mode."""
    assert hc.parse_mount("type=bind,src=/srv,dst=/data,ro") == hc.MountRequest("bind", "/srv", "/data", True)
    assert hc.parse_mount("type=volume,source=v,destination=/v,readonly=false") == hc.MountRequest("volume", "v", "/v")
    got = hc.parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770")
    assert got == hc.MountRequest("tmpfs", "", "/t", False, "size=1048576,mode=1770")


def test_a_mount_without_a_type_is_a_volume():
    """Docker's client makes a --mount without type= a volume mount."""
    assert hc.parse_mount("source=v,target=/b,readonly") == hc.MountRequest("volume", "v", "/b", True)
    assert hc.parse_mount("type=BIND,source=/a,target=/b").type == "bind"


@pytest.mark.parametrize("text, words", [
    ("type=bind,source=/a,target", "invalid field 'target' must be a key=value pair"),
    ("type=bind,source=/a,target=/b,colour=red", "unexpected key 'colour' in 'colour=red'"),
    ("type=bind,source=/a", "target is required"),
])
def test_bad_mounts_are_refused_by_the_client(text, words):
    """What Docker's client refuses as it reads --mount."""
    with pytest.raises(InvalidArgument, match=words):
        hc.parse_mount(text)


@pytest.mark.parametrize("text, words", [
    ("type=nfs,target=/b", 'invalid mount config for type "nfs": mount type unknown'),
    ("type=tmpfs,source=/a,target=/b", 'invalid mount config for type "tmpfs": field Source must not be specified'),
    ("type=bind,target=/b", 'invalid mount config for type "bind": field Source must not be empty'),
    ("type=bind,source=/a,target=b", "invalid mount path: 'b' mount path must be absolute"),
])
def test_bad_mounts_are_refused_by_the_daemon(text, words):
    """What Docker's client passes on and its daemon refuses (moby's validateMountConfig), in its words."""
    from labkit.errors import InvalidConfig

    req = hc.parse_mount(text)
    with pytest.raises(InvalidConfig, match=words):
        hc.check_mount(req)


def test_tmpfs_options_keep_dockers_defaults_unless_overridden():
    """A tmpfs is noexec,nosuid,nodev unless the user says exec, suid or dev; size and mode are data."""
    flags, data = hc.tmpfs_options("size=64m,mode=1777")
    assert flags == 0x2 | 0x4 | 0x8 and data == "size=64m,mode=1777"
    flags, _ = hc.tmpfs_options("exec,ro")
    assert flags == 0x2 | 0x4 | 0x1
    with pytest.raises(InvalidArgument, match=r'invalid tmpfs option \["colour=red"\]'):
        hc.tmpfs_options("colour=red")
    with pytest.raises(InvalidArgument, match="mount path must be absolute"):
        hc.parse_tmpfs("run:size=1m")


def test_add_host_and_dns():
    """--add-host takes name:ip, name=ip, name:[v6] and host-gateway; --dns an address; both refuse the rest."""
    assert hc.parse_add_host("db:10.0.0.5") == "db:10.0.0.5"
    assert hc.parse_add_host("db=10.0.0.5") == "db:10.0.0.5"
    assert hc.parse_add_host("v6:[::1]") == "v6:::1"
    assert hc.parse_add_host("gw:host-gateway") == "gw:host-gateway"
    with pytest.raises(InvalidArgument, match='bad format for add-host: "db"'):
        hc.parse_add_host("db")
    with pytest.raises(InvalidArgument, match='invalid IP address in add-host: "10.0.0"'):
        hc.parse_add_host("db:10.0.0")
    assert hc.extra_hosts_lines(["db:10.0.0.5", "gw:host-gateway"], "172.17.0.1") == \
        "10.0.0.5\tdb\n172.17.0.1\tgw\n"
    assert hc.parse_dns("1.1.1.1") == "1.1.1.1"
    with pytest.raises(InvalidArgument, match="IP address is not correctly formatted: one"):
        hc.parse_dns("one")
    host = "search lab\nnameserver 10.0.0.1\noptions ndots:1\n"
    assert hc.resolv_conf(host, ["9.9.9.9"]) == "search lab\noptions ndots:1\nnameserver 9.9.9.9\n"
    assert hc.resolv_conf(host, []) == host


@pytest.mark.parametrize("text", ["linux", "linux/amd64", "amd64", "linux/x86_64", "LINUX/AMD64"])
def test_the_hosts_platform_is_accepted(text):
    hc.check_platform(text, "x86_64", "busybox")


@pytest.mark.parametrize("text, words", [
    ("linux/arm64", "wanted linux/arm64, actual: linux/amd64"),
    ("windows/amd64", "wanted windows/amd64, actual: linux/amd64"),
    ("a/b/c/d", "unknown operating system or architecture"),
])
def test_other_platforms_are_refused_in_one_sentence(text, words):
    with pytest.raises(InvalidArgument, match=words):
        hc.check_platform(text, "x86_64", "busybox")


PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nann:x:1000:1000::/home/ann:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:ann,bob\nann:x:1000:\nnogroup:x:65534:\n"


@pytest.mark.parametrize("spec, want", [
    ("ann", hc.User(1000, 1000, (1000, 10), "/home/ann", "ann")),
    ("1000", hc.User(1000, 1000, (1000, 10), "/home/ann", "ann")),
    ("4242", hc.User(4242, 0, (0,), "/", "")),
    ("ann:wheel", hc.User(1000, 10, (10,), "/home/ann", "ann")),
    ("nobody:4", hc.User(65534, 4, (4,), "/home", "nobody")),
])
def test_users_are_read_as_runc_reads_them(spec, want):
    """A name must be in passwd; a number need not be (group 0, home /); the primary group is a supplementary one."""
    assert hc.resolve_user(spec, PASSWD, GROUP) == want


def test_unknown_users_and_groups_are_refused():
    with pytest.raises(hc.UnknownUser, match="unable to find user zed: no matching entries in passwd file"):
        hc.resolve_user("zed", PASSWD, GROUP)
    with pytest.raises(hc.UnknownUser, match="unable to find group staff: no matching entries in group file"):
        hc.resolve_user("ann:staff", PASSWD, GROUP)


NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, want", [
    ("10m", NOW.timestamp() - 600),
    ("1h30m", NOW.timestamp() - 5400),
    ("2024-05-01T11:00:00Z", NOW.timestamp() - 3600),
    ("2024-05-01T13:00:00+02:00", NOW.timestamp() - 3600),
    ("2024-05-01T11:00", NOW.timestamp() - 3600),
    ("2024-05-01", NOW.timestamp() - 12 * 3600),
    ("1714561200", NOW.timestamp() - 3600),
    ("1714561200.5", NOW.timestamp() - 3599.5),
])
def test_log_times_read_as_dockers_client_reads_them(text, want):
    """logs --since/--until: Go durations back from now, RFC 3339 with or without a zone, unix seconds."""
    assert parse_timestamp(text, NOW) == pytest.approx(want)


@pytest.mark.parametrize("text, words", [
    ("yesterday", 'failed to parse value as time or duration: "yesterday"'),
    ("2024-13-01", 'parsing time "2024-13-01"'),
])
def test_bad_log_times_are_refused(text, words):
    with pytest.raises(InvalidArgument, match=words):
        parse_timestamp(text, NOW)
