"""Docker's seccomp profile as data, and how it is resolved for a container's capabilities and machine."""

from __future__ import annotations

import json

import pytest

from labkit.errors import InvalidArgument
from labkit.model import seccomp
from labkit.model.seccomp import CLONE_NAMESPACES, default_profile, parse_security_opts, resolve, seccomp_profile

#: Docker's default capabilities (moby's oci/caps/defaults.go).
DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17


def default_filter(*extra_caps: str, machine: str = "x86_64", kernel: tuple[int, int] = (6, 1)) -> seccomp.Filter:
    resolved = resolve(default_profile(), (*DEFAULT_CAPS, *extra_caps), machine, kernel)
    assert resolved is not None
    return resolved


def test_default_action_is_eperm_for_every_call_not_named():
    """A call in no rule (keyctl, add_key, request_key) fails with EPERM, on every architecture the filter checks."""
    f = default_filter()
    assert (f.default_action, f.default_errno) == ("SCMP_ACT_ERRNO", 1)
    assert f.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    for name in ("keyctl", "add_key", "request_key", "mount", "umount2", "unshare", "setns", "bpf",
                 "perf_event_open", "reboot", "init_module", "settimeofday", "syslog", "kcmp", "open_by_handle_at"):
        assert not f.allows(name), name
    for name in ("read", "write", "openat", "execve", "mkdir", "chroot", "fork", "ptrace", "capset", "seccomp"):
        assert f.allows(name), name


def test_clone_is_allowed_only_without_namespace_flags():
    """clone(SIGCHLD) passes; clone with any CLONE_NEW* flag fails; clone3 answers ENOSYS."""
    f = default_filter()
    assert f.allows("clone", (SIGCHLD,))
    for bit in range(32):
        flag = 1 << bit
        if flag & CLONE_NAMESPACES:
            assert not f.allows("clone", (flag | SIGCHLD,)), hex(flag)
    clone3 = [r for r in f.rules if "clone3" in r.names]
    assert [(r.action, r.errno) for r in clone3] == [("SCMP_ACT_ERRNO", 38)]


def test_socket_and_personality_filters():
    """socket(2) for every family but AF_ALG (38) and AF_VSOCK (40); personality(2) for Docker's five personas."""
    f = default_filter()
    assert [fam for fam in range(46) if not f.allows("socket", (fam,))] == [38, 40]
    assert [p for p in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF, 0x40000, 1) if f.allows("personality", (p,))] == [
        0, 8, 0x20000, 0x20008, 0xFFFFFFFF]


@pytest.mark.parametrize(("cap", "calls"), [
    ("SYS_ADMIN", ("mount", "umount2", "unshare", "setns", "sethostname", "bpf", "perf_event_open", "fsopen")),
    ("SYS_PTRACE", ("kcmp", "pidfd_getfd", "process_madvise")),
    ("SYS_MODULE", ("init_module", "finit_module", "delete_module")),
    ("SYS_TIME", ("settimeofday", "clock_settime")),
    ("SYS_BOOT", ("reboot",)),
    ("SYS_NICE", ("mbind", "set_mempolicy", "get_mempolicy")),
    ("SYSLOG", ("syslog",)),
    ("BPF", ("bpf",)),
    ("PERFMON", ("perf_event_open",)),
    ("SYS_RAWIO", ("iopl", "ioperm")),
    ("SYS_PACCT", ("acct",)),
    ("DAC_READ_SEARCH", ("open_by_handle_at",)),
])
def test_a_capability_unlocks_the_calls_docker_ties_to_it(cap, calls):
    """With the capability added, its calls are allowed; without it, refused."""
    without, with_cap = default_filter(), default_filter(cap)
    for name in calls:
        assert not without.allows(name) and with_cap.allows(name), name
    assert not with_cap.allows("keyctl")


def test_cap_sys_admin_lifts_the_clone_filters():
    """With CAP_SYS_ADMIN, clone takes namespace flags and clone3 is plainly allowed (no ENOSYS rule)."""
    f = default_filter("CAP_SYS_ADMIN")
    assert f.allows("clone", (CLONE_NEWUSER | SIGCHLD,)) and f.allows("clone3")
    assert not [r for r in f.rules if r.action != "SCMP_ACT_ALLOW"]


def test_architecture_and_kernel_conditions():
    """arch_prctl only on x86; s390's clone filters its second argument; ptrace only from Linux 4.8."""
    assert default_filter().allows("arch_prctl") and not default_filter(machine="aarch64").allows("arch_prctl")
    assert default_filter(machine="aarch64").architectures == ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")
    s390 = default_filter(machine="s390x")
    assert s390.allows("clone", (0, SIGCHLD)) and not s390.allows("clone", (0, CLONE_NEWUSER))
    assert not default_filter(kernel=(4, 4)).allows("ptrace") and default_filter(kernel=(4, 8)).allows("ptrace")


def test_the_default_profile_round_trips_through_json():
    """default_profile() is Docker's JSON format: dumped and read back it resolves to the same filter."""
    text = json.dumps(default_profile())
    assert resolve(json.loads(text), DEFAULT_CAPS, "x86_64") == resolve(default_profile(), DEFAULT_CAPS, "x86_64")
    assert default_profile() is not default_profile()


def test_security_opts_parse_as_docker_takes_them():
    """unconfined, builtin, a file read in as compact JSON, JSON given directly, the old colon form, no-new-privileges."""
    files = {"p.json": '{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n'}
    got = parse_security_opts(["seccomp=unconfined", "seccomp:builtin", "seccomp=p.json",
                               'seccomp={"defaultAction": "SCMP_ACT_LOG"}', "no-new-privileges"], files.__getitem__)
    assert got == ("seccomp=unconfined", "seccomp=builtin", 'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}',
                   'seccomp={"defaultAction":"SCMP_ACT_LOG"}', "no-new-privileges")
    assert seccomp_profile(()) == default_profile() == seccomp_profile(["seccomp=builtin"])
    assert seccomp_profile(["seccomp=unconfined"]) is None
    assert seccomp_profile(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']) == {"defaultAction": "SCMP_ACT_ALLOW"}


@pytest.mark.parametrize(("opts", "words"), [
    (["seccomp"], "invalid --security-opt"),
    (["seccomp="], "invalid --security-opt"),
    (["label=disable"], "invalid --security-opt 2"),
    (["no-new-privileges=maybe"], "invalid --security-opt"),
    (["seccomp=missing.json"], "opening seccomp profile (missing.json) failed"),
    (["seccomp={oops"], "compacting json for seccomp profile"),
])
def test_bad_security_opts_say_what_is_wrong(opts, words):
    """Each bad value is an InvalidArgument whose message names the problem."""
    def read(path: str) -> str:
        raise FileNotFoundError(2, "No such file or directory", path)

    with pytest.raises(InvalidArgument) as caught:
        parse_security_opts(opts, read)
    assert words in caught.value.message


@pytest.mark.parametrize(("profile", "words"), [
    ({"defaultAction": "SCMP_ACT_NOPE"}, "unknown action"),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/agent.sock"}, "listenerPath"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}, "flag"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}, "unknown architecture"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}, "names no system call"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]},
     "list of strings"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                        "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]},
     "value must be a whole number"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                        "includes": {"minKernel": "six"}}]}, "invalid kernel version"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "bogus": 1}, "unknown field"),
    ([], "JSON object"),
])
def test_profiles_docker_would_refuse_are_refused(profile, words):
    """A profile that is not Docker's format, or asks for what labkit cannot do, is refused in one sentence."""
    with pytest.raises(InvalidArgument) as caught:
        resolve(profile, DEFAULT_CAPS, "x86_64")
    assert words in caught.value.message and "\n" not in caught.value.one_line()


def test_an_empty_profile_means_no_filter_as_in_docker():
    """Neither defaultAction nor syscalls: Docker installs no filter, and neither does labkit."""
    assert resolve({}, DEFAULT_CAPS, "x86_64") is None


def test_a_filter_as_an_oci_runtime_spec():
    """Filter.oci() is the linux.seccomp a runtime such as runc takes: the same rules, errnoRet where an errno is returned."""
    oci = default_filter().oci()
    assert (oci["defaultAction"], oci["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    clone3 = [r for r in oci["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "args": []}]
    vsock = {"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_GT"}
    assert {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [vsock]} in oci["syscalls"]
    assert "keyctl" not in {n for r in oci["syscalls"] for n in r["names"]}
