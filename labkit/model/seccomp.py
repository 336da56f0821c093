"""Seccomp profiles: which system calls a container's processes may make.

seccomp(2) lets a process install a filter, a small BPF program the kernel
runs on every system call it (and every child it forks or execs) makes
afterwards. The filter looks at the call's number and its first six
arguments and answers: let it through, fail it with an errno, kill the
caller. A filter can never be removed, only stacked on
(Documentation/userspace-api/seccomp_filter.rst).

Docker gives every container a filter made from one *profile* (moby's
``profiles/seccomp``): about 370 calls are allowed, everything else fails
with EPERM. Some calls are allowed only with certain arguments (``clone``
without namespace flags, ``socket`` for every address family but AF_ALG and
AF_VSOCK, ``personality`` for five personas), and some only if the container
holds the capability that makes them safe: ``mount``, ``unshare``, ``setns``
and ``clone`` with namespace flags need CAP_SYS_ADMIN, ``ptrace`` needs
CAP_SYS_PTRACE, ``reboot`` CAP_SYS_BOOT, ``bpf`` CAP_BPF. ``keyctl``,
``add_key`` and ``request_key`` are in no rule at all: the kernel's keyrings
are not namespaced, so a container could read or change the host's keys.

This module holds that profile as data (:func:`default_profile`, in Docker's
JSON format, so a lesson can print it, change it and run with the change),
reads profiles in that format (``--security-opt seccomp=FILE``), and
resolves one for a container: the rules whose ``includes``/``excludes``
conditions (capabilities, architecture, kernel version) hold, as Docker's
daemon does before it hands the result to runc (:func:`resolve`). Turning
the result into BPF is the linux backend's job (``labkit.linux.seccomp``,
with libseccomp, the library runc and crun use).

It does no I/O: a profile file is read by whoever calls
:func:`parse_security_opts`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from labkit.errors import InvalidArgument

#: errno values the profile refers to (asm-generic/errno-base.h, errno.h): the same on every architecture
#: labkit runs on.
EPERM = 1
ENOSYS = 38

#: ``clone(2)`` flags that make new namespaces (linux/sched.h): NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
#: NEWPID, NEWNET.
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

#: Address families (linux/socket.h): AF_ALG is the kernel's crypto API, AF_VSOCK talks to the hypervisor.
AF_ALG = 38
AF_VSOCK = 40

#: What the kernel does with a call a rule matches (seccomp(2), "Filter return values"), by the names
#: Docker's profiles use.
ACTIONS = (
    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP", "SCMP_ACT_TRACE", "SCMP_ACT_LOG",
)  # fmt: skip

#: How a rule compares an argument: ``arg OP value``; MASKED_EQ is ``arg & value == valueTwo``.
OPERATORS = (
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
)  # fmt: skip

#: Architectures a profile may name, and the names libseccomp gives them.
ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
)  # fmt: skip

#: ``uname -m`` → the architecture name a profile's ``arches`` conditions use (Go's, as Docker's daemon
#: compares them), and the architectures a filter for it covers: a 64-bit process may still make 32-bit
#: calls (int 0x80 on x86-64), so those are filtered too.
MACHINES: dict[str, tuple[str, tuple[str, ...]]] = {
    "x86_64": ("amd64", ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    "aarch64": ("arm64", ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")),
    "armv7l": ("arm", ("SCMP_ARCH_ARM",)),
    "i686": ("x86", ("SCMP_ARCH_X86",)),
    "ppc64le": ("ppc64le", ("SCMP_ARCH_PPC64LE",)),
    "s390x": ("s390x", ("SCMP_ARCH_S390X", "SCMP_ARCH_S390")),
    "riscv64": ("riscv64", ("SCMP_ARCH_RISCV64",)),
    "loongarch64": ("loong64", ("SCMP_ARCH_LOONGARCH64",)),
}

# ------------------------------------------------------------------------------------------------------
# Docker's default profile, as data. Every call not named below fails with EPERM.

#: Allowed to every container: files, memory, signals, time, sockets' traffic, ids, IPC, scheduling hints.
#: Several exist only on some architectures (``chown32``, ``_llseek``) or on newer kernels; a name the
#: kernel or libseccomp does not know is left out of the filter, as runc leaves it out.
_ALWAYS = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group
faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2
fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr
fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64
futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32
getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area
gettid gettimeofday getuid getuid32 getxattr getxattrat
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set
io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self
lchown lchown32 lgetxattr link linkat listen listmount listxattr listxattrat llistxattr _llseek
lremovexattr lseek lsetxattr lstat lstat64
madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal
msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal
pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2
read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto
setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid
setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr
setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
""".split()

#: Calls only for a container holding a capability: each is what that capability exists to guard
#: (capabilities(7)). CAP_SYS_ADMIN's list is the long one: mounts, namespaces, eBPF, perf, quotas,
#: the hostname. With it, ``clone`` and ``clone3`` are allowed whatever their flags.
_WITH_CAPABILITY: tuple[tuple[str, str], ...] = (
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_ADMIN", "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie "
                      "lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount "
                      "open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog "
                      "umount umount2 unshare"),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
)  # fmt: skip

#: Calls that exist on one family of architectures only (its own cache flushes, TLS, I/O ports).
_ON_ARCHITECTURE: tuple[tuple[tuple[str, ...], str], ...] = (
    (("ppc64le",), "sync_file_range2 swapcontext"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (("riscv64",), "riscv_flush_icache"),
)

#: personality(2) personas a container may switch to: Linux, UNAME26 (0x0020000: report a 2.6 kernel),
#: PER_LINUX32 (0x0008) and their combination, and 0xffffffff, which only asks for the current one.
_PERSONAS = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)


def _rule(names: str | list[str], action: str = "SCMP_ACT_ALLOW", **fields: Any) -> dict[str, Any]:
    return {"names": names.split() if isinstance(names, str) else names, "action": action, "args": [], **fields}


def _arg(index: int, op: str, value: int, value_two: int = 0) -> dict[str, Any]:
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


def default_profile() -> dict[str, Any]:
    """Docker's default seccomp profile, in Docker's JSON format (a fresh copy each call).

    ``json.dump`` it to a file, change it, and ``run --security-opt seccomp=FILE`` runs with the change.
    """
    syscalls = [
        _rule(_ALWAYS),
        # ptrace is safe since Linux 4.8, which stopped it from getting around seccomp.
        _rule("process_vm_readv process_vm_writev ptrace", includes={"minKernel": "4.8"}),
        # socket(2) for every address family but AF_ALG (38) and AF_VSOCK (40): below 38, 39, above 40.
        _rule("socket", args=[_arg(0, "SCMP_CMP_LT", AF_ALG)]),
        _rule("socket", args=[_arg(0, "SCMP_CMP_EQ", AF_ALG + 1)]),
        _rule("socket", args=[_arg(0, "SCMP_CMP_GT", AF_VSOCK)]),
        *[_rule("personality", args=[_arg(0, "SCMP_CMP_EQ", persona)]) for persona in _PERSONAS],
        *[_rule(names, includes={"arches": list(arches)}) for arches, names in _ON_ARCHITECTURE],
        *[_rule(names, includes={"caps": [cap]}) for cap, names in _WITH_CAPABILITY],
        # Without CAP_SYS_ADMIN, clone(2) only if no namespace flag is set (the flags are its first
        # argument, its second on s390), and clone3(2), whose flags sit in memory a filter cannot read,
        # answers ENOSYS, so that a C library falls back to clone.
        _rule("clone", args=[_arg(0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACES, 0)],
              excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}),
        _rule("clone", args=[_arg(1, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACES, 0)],
              includes={"arches": ["s390", "s390x"]}, excludes={"caps": ["CAP_SYS_ADMIN"]}),
        _rule("clone3", "SCMP_ACT_ERRNO", errnoRet=ENOSYS, excludes={"caps": ["CAP_SYS_ADMIN"]}),
    ]  # fmt: skip
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "archMap": [{"architecture": archs[0], "subArchitectures": list(archs[1:])} for _, archs in MACHINES.values()],
        "syscalls": syscalls,
    }


# ------------------------------------------------------------------------------------------------------
# A profile resolved for one container


@dataclass(frozen=True)
class Arg:
    """One comparison of a call's argument: ``args[index] OP value`` (MASKED_EQ: ``& value == value_two``)."""

    index: int
    op: str
    value: int
    value_two: int = 0


@dataclass(frozen=True)
class Rule:
    """Calls that get ``action`` when every one of ``args`` holds (no args: always).

    Attributes:
        names: The system calls' names.
        action: One of :data:`ACTIONS`.
        errno: The error returned for SCMP_ACT_ERRNO (and SCMP_ACT_TRACE's message).
        args: Conditions on the arguments, all of which must hold.
    """

    names: tuple[str, ...]
    action: str
    errno: int = EPERM
    args: tuple[Arg, ...] = ()


@dataclass(frozen=True)
class Filter:
    """A profile resolved for one container on one machine: what libseccomp compiles.

    Attributes:
        default_action: What a call no rule matches gets.
        default_errno: Its errno when that is SCMP_ACT_ERRNO.
        architectures: The architectures whose calls the filter checks (others are killed).
        rules: The rules that apply, in the profile's order.
    """

    default_action: str
    default_errno: int
    architectures: tuple[str, ...]
    rules: tuple[Rule, ...]

    def key(self) -> str:
        """A canonical text of the filter, for caching what it compiles to."""
        return json.dumps([self.default_action, self.default_errno, self.architectures,
                           [[r.names, r.action, r.errno, [list(vars(a).values()) for a in r.args]]
                            for r in self.rules]], separators=(",", ":"))

    def oci(self) -> dict[str, Any]:
        """The filter as an OCI runtime spec's ``linux.seccomp`` (what Docker's daemon hands runc)."""
        errno_actions = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
        return {
            "defaultAction": self.default_action,
            **({"defaultErrnoRet": self.default_errno} if self.default_action in errno_actions else {}),
            "architectures": list(self.architectures),
            "syscalls": [{"names": list(r.names), "action": r.action,
                          **({"errnoRet": r.errno} if r.action in errno_actions else {}),
                          "args": [{"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}
                                   for a in r.args]} for r in self.rules],
        }

    def allows(self, name: str, args: tuple[int, ...] = ()) -> bool:
        """Whether the call ``name`` with arguments ``args`` is let through, read from the rules.

        It is when a rule that allows it matches (a rule with a condition on an argument not given
        does not), or no rule matches and the default action allows. This answers the question a
        lesson asks ("may a default container call unshare?") without a kernel.
        """
        passes = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
        matched = [rule.action for rule in self.rules
                   if name in rule.names and all(a.index < len(args) and _holds(a, args[a.index]) for a in rule.args)]
        return any(action in passes for action in matched) if matched else self.default_action in passes


def _holds(arg: Arg, value: int) -> bool:
    return {
        "SCMP_CMP_NE": value != arg.value, "SCMP_CMP_LT": value < arg.value, "SCMP_CMP_LE": value <= arg.value,
        "SCMP_CMP_EQ": value == arg.value, "SCMP_CMP_GE": value >= arg.value, "SCMP_CMP_GT": value > arg.value,
        "SCMP_CMP_MASKED_EQ": value & arg.value == arg.value_two,
    }[arg.op]  # fmt: skip


class _Bad(Exception):
    """A profile that cannot be read, with what is wrong in it."""


def resolve(profile: Mapping[str, Any], caps: Collection[str], machine: str,
            kernel: tuple[int, int] = (99, 0)) -> Filter | None:
    """The filter ``profile`` gives a container holding ``caps`` on ``machine``, as Docker's daemon builds it.

    A rule stays when its ``includes`` all hold (every capability in its ``caps`` held, the machine among
    its ``arches``, the kernel at least its ``minKernel``) and none of its ``excludes`` does (any one
    capability held, the machine among its arches, the kernel at least that version). Docker checks the
    capabilities against the container's bounding set, which for labkit's containers is also their
    effective set.

    Args:
        profile: A profile in Docker's JSON format (see :func:`default_profile`).
        caps: The container's capabilities, named with or without ``CAP_``.
        machine: ``uname -m`` of the host (``x86_64``).
        kernel: The running kernel's version, as (major, minor).

    Returns:
        The filter, or ``None`` for a profile with neither a defaultAction nor syscalls, which Docker
        reads as "no filter".

    Raises:
        InvalidArgument: The profile is not one Docker would accept, or asks for what labkit cannot do.
    """
    try:
        return _resolve(profile, {c if c.startswith("CAP_") else f"CAP_{c}" for c in caps}, machine, kernel)
    except _Bad as bad:
        raise InvalidArgument(f"Decoding seccomp profile failed: {bad}",
                              "Fix the profile (Docker's format: defaultAction, syscalls[names, action, args])") from None


def _resolve(profile: Mapping[str, Any], caps: set[str], machine: str, kernel: tuple[int, int]) -> Filter | None:
    if not isinstance(profile, Mapping):
        raise _Bad("a profile is a JSON object")
    unknown = set(profile) - {"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags",
                              "listenerPath", "listenerMetadata"}
    if unknown:
        raise _Bad(f"unknown field {sorted(unknown)[0]!r}")
    if profile.get("listenerPath"):
        raise _Bad("listenerPath (SCMP_ACT_NOTIFY's agent) is not supported by labkit")
    for flag in profile.get("flags") or ():
        if flag != "SECCOMP_FILTER_FLAG_TSYNC":  # one thread installs the filter: TSYNC changes nothing
            raise _Bad(f"flag {flag!r} is not supported by labkit (only SECCOMP_FILTER_FLAG_TSYNC)")
    default = profile.get("defaultAction", "")
    if not default and not profile.get("syscalls"):
        return None  # Docker's reading of an empty profile: no filter at all
    _action(default, "defaultAction")
    go_arch, native = MACHINES.get(machine, (machine, ()))
    if profile.get("architectures") and profile.get("archMap"):
        raise _Bad("both 'architectures' and 'archMap' are given: use one")
    arches: list[str] = list(_strings(profile.get("architectures") or [], "architectures"))
    for entry in profile.get("archMap") or []:
        if not isinstance(entry, Mapping):
            raise _Bad("archMap holds objects {architecture, subArchitectures}")
        if native and entry.get("architecture") == native[0]:
            arches = [native[0], *_strings(entry.get("subArchitectures") or [], "subArchitectures")]
    for arch in arches:
        if arch not in ARCHITECTURES:
            raise _Bad(f"unknown architecture {arch!r}")
    rules = []
    for index, call in enumerate(_list(profile.get("syscalls") or [], "syscalls")):
        if not isinstance(call, Mapping):
            raise _Bad(f"syscalls[{index}] is not an object")
        if call.get("name") and call.get("names"):
            raise _Bad(f"syscalls[{index}] has both 'name' and 'names': use 'names'")
        names = [call["name"]] if call.get("name") else list(_strings(call.get("names") or [], "names"))
        if not names:
            raise _Bad(f"syscalls[{index}] names no system call")
        action = _action(call.get("action", ""), f"syscalls[{index}].action")
        errno = _number(call.get("errnoRet", EPERM), "errnoRet", 0xFFFF)
        args = tuple(_argument(a, index) for a in _list(call.get("args") or [], "args"))
        if _applies(call, caps, go_arch, kernel):
            rules.append(Rule(tuple(names), action, errno, args))
    return Filter(default, _number(profile.get("defaultErrnoRet", EPERM), "defaultErrnoRet", 0xFFFF),
                  tuple(arches), tuple(rules))


def _applies(call: Mapping[str, Any], caps: set[str], arch: str, kernel: tuple[int, int]) -> bool:
    includes, excludes = call.get("includes") or {}, call.get("excludes") or {}
    for which in (includes, excludes):
        if not isinstance(which, Mapping) or set(which) - {"caps", "arches", "minKernel"}:
            raise _Bad("includes and excludes hold caps, arches and minKernel")
    if excludes.get("arches") and arch in _strings(excludes["arches"], "arches"):
        return False
    if any(c in caps for c in _strings(excludes.get("caps") or [], "caps")):
        return False
    if excludes.get("minKernel") and kernel >= _version(excludes["minKernel"]):
        return False
    if includes.get("arches") and arch not in _strings(includes["arches"], "arches"):
        return False
    if not all(c in caps for c in _strings(includes.get("caps") or [], "caps")):
        return False
    return not (includes.get("minKernel") and kernel < _version(includes["minKernel"]))


def _action(name: Any, where: str) -> str:
    if name == "SCMP_ACT_NOTIFY":
        raise _Bad(f"{where}: SCMP_ACT_NOTIFY needs a listener agent, which labkit does not run")
    if name not in ACTIONS:
        raise _Bad(f"{where}: unknown action {name!r} (one of {', '.join(ACTIONS)})")
    return str(name)


def _argument(arg: Any, index: int) -> Arg:
    if not isinstance(arg, Mapping):
        raise _Bad(f"syscalls[{index}].args holds objects {{index, value, valueTwo, op}}")
    op = arg.get("op")
    if op not in OPERATORS:
        raise _Bad(f"syscalls[{index}]: unknown operator {op!r} (one of {', '.join(OPERATORS)})")
    return Arg(_number(arg.get("index", 0), "index", 5), str(op), _number(arg.get("value", 0), "value", 2**64 - 1),
               _number(arg.get("valueTwo", 0), "valueTwo", 2**64 - 1))


def _number(value: Any, what: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise _Bad(f"{what} must be a whole number from 0 to {most}, not {value!r}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Bad(f"{what} must be a list")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(f"{what} must be a list of strings")
    return value


def _version(text: Any) -> tuple[int, int]:
    major, dot, minor = str(text).partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        raise _Bad(f'invalid kernel version: {text!r}, expected "<kernel>.<major>"')
    return int(major), int(minor)


def kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) of a kernel release string such as ``6.1.0-18-amd64``."""
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1].split("-")[0] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


# ------------------------------------------------------------------------------------------------------
# --security-opt


def parse_security_opts(values: Iterable[str], read: Callable[[str], str]) -> tuple[str, ...]:
    """``--security-opt`` values as Docker's CLI and daemon take them, a profile file read in.

    ``seccomp=unconfined`` (no filter), ``seccomp=builtin`` (Docker's profile, named) and
    ``seccomp=FILE`` are understood; a FILE is read with ``read`` and kept as its compact JSON
    (``seccomp={...}``), as the docker CLI sends it, so the container keeps its profile even if the
    file changes. A value that is JSON already (the Engine API's form) is kept as such. Docker's
    older ``key:value`` spelling is read as ``key=value``. ``no-new-privileges`` is accepted: labkit
    sets no_new_privs for every container already.

    Raises:
        InvalidArgument: Anything else (Docker's "invalid --security-opt" cases, a profile that cannot
            be read or is not JSON); nothing has been created yet.
    """
    kept = []
    for opt in values:
        key, sep, value = opt.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, value = opt.partition(":")
        if key == "no-new-privileges" and (not sep or value in ("true", "1")):
            kept.append(opt)
            continue
        if key == "no-new-privileges" and value in ("false", "0"):
            raise InvalidArgument(f"invalid --security-opt: {opt!r}: labkit sets no_new_privs for every container",
                                  "Leave the option out")
        if not sep or not value:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}",
                                  "Use seccomp=unconfined, seccomp=builtin or seccomp=PROFILE.json")
        if key != "seccomp":
            raise InvalidArgument(f"invalid --security-opt 2: {opt!r}",
                                  "labkit understands seccomp=… and no-new-privileges (it has no AppArmor "
                                  "or SELinux)")
        if value in ("unconfined", "builtin"):
            kept.append(f"seccomp={value}")
            continue
        text = value if value.lstrip().startswith("{") else None
        if text is None:
            try:
                text = read(value)
            except OSError as err:
                raise InvalidArgument(f"opening seccomp profile ({value}) failed: {err.strerror or err}",
                                      "Give the path of a JSON profile, or seccomp=unconfined") from None
        try:
            compact = json.dumps(json.loads(text), separators=(",", ":"))
        except ValueError as err:
            raise InvalidArgument(f"compacting json for seccomp profile ({value[:40]}) failed: {err}",
                                  "The profile must be JSON in Docker's format") from None
        kept.append(f"seccomp={compact}")
    return tuple(kept)


@functools.lru_cache(maxsize=64)
def check_security_opts(security_opts: tuple[str, ...], machine: str) -> None:
    """Refuse (parsed) options whose profile Docker would refuse on ``machine``; quiet otherwise.

    A profile that cannot work is refused when the container is made, not when it starts. The
    options are a container's whole seccomp choice and this module does no I/O, so a choice seen
    once is known good: the next container with it (nearly always Docker's default profile) costs
    a dictionary lookup instead of resolving some 400 rules again. Refusals are not remembered.

    Raises:
        InvalidArgument: As :func:`resolve`.
    """
    profile = seccomp_profile(security_opts)
    if profile is not None:
        resolve(profile, (), machine)


def seccomp_profile(security_opts: Iterable[str]) -> dict[str, Any] | None:
    """The profile a container with these (parsed) options runs under; ``None`` for unconfined."""
    chosen = None
    for opt in security_opts:
        if opt.startswith("seccomp="):
            chosen = opt.removeprefix("seccomp=")
    if chosen == "unconfined":
        return None
    if chosen is None or chosen == "builtin":
        return default_profile()
    loaded: dict[str, Any] = json.loads(chosen)
    return loaded
