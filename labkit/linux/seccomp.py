"""Seccomp filters: a container's profile compiled to BPF with libseccomp, cached, installed by the shim.

A profile (:mod:`labkit.model.seccomp`) says which system calls a container
may make; the kernel wants a BPF program (seccomp(2), SECCOMP_SET_MODE_FILTER:
an array of ``struct sock_filter``). libseccomp, the library runc and crun
use, turns rules into that program: it resolves each call's name to its
number on every architecture the filter covers, and lays the comparisons of
64-bit arguments out as 32-bit BPF loads (seccomp_rule_add(3)). labkit calls
it through ctypes here, with the same choices runc makes:

* a name libseccomp does not know (a call newer than the library) is left out;
* a rule whose action is the default one is left out (libseccomp refuses it);
* several conditions on one argument become one rule each (OR), several on
  different arguments one rule (AND);
* no_new_privs is not libseccomp's to set (SCMP_FLTATR_CTL_NNP off): the shim
  sets it itself.

The program is written to ``<state root>/seccomp/<sha256>.bpf``, named by a
hash of what it was made from (the resolved rules and the library's version),
so a container's start reads a file made once instead of running libseccomp
again. The shim (``--seccomp FILE``) reads it before it forks PID 1 and
installs it as PID 1's (and every ``exec``'s) very last step before
execve(2) (``pid1.c``, become): after the capabilities are dropped and
no_new_privs is set, which lets any process install a filter
(Documentation/userspace-api/seccomp_filter.rst). Between the install and the
program's first instruction only execve(2) itself runs, so a profile that
allows execve allows everything the shim still needs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
import platform
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

from labkit.errors import HostUnsupported, InvalidArgument
from labkit.model import seccomp as profiles

_ACTION_BITS = {
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
}  # fmt: skip
_OPERATORS = {name: number for number, name in enumerate(profiles.OPERATORS, start=1)}  # enum scmp_compare
_SCMP_FLTATR_CTL_NNP = 3
_SCMP_FLTATR_CTL_OPTIMIZE = 8
_NR_SCMP_ERROR = -1
#: Part of a program file's name: how :func:`compile_bpf` lays a program out (a file made before the
#: binary tree, in a line, is not taken for one made now).
_LAYOUT = "tree-over-32-calls"


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp: compare argument ``arg`` by ``op`` with datum_a (and datum_b for MASKED_EQ)."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_lib: list[ctypes.CDLL] = []


def _libseccomp() -> ctypes.CDLL:
    """libseccomp.so.2, loaded once (Debian's libseccomp2)."""
    if _lib:
        return _lib[0]
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        raise HostUnsupported("labkit applies Docker's seccomp profile with libseccomp, which is not installed",
                              "Install it (apt-get install libseccomp2), or run with --security-opt "
                              "seccomp=unconfined") from None
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    _lib.append(lib)
    return lib


def library_version() -> str:
    """libseccomp's version, e.g. ``2.5.4``."""
    v = _libseccomp().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def _action(name: str, errno: int) -> int:
    bits = _ACTION_BITS[name]
    return bits | (errno & 0xFFFF) if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE") else bits


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise OSError(-rc, f"libseccomp: {what}: {os.strerror(-rc)}")


def compile_bpf(resolved: profiles.Filter) -> bytes:
    """The BPF program libseccomp makes of ``resolved``: an array of 8-byte ``struct sock_filter``."""
    lib = _libseccomp()
    default = _action(resolved.default_action, resolved.default_errno)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(0, "libseccomp: seccomp_init failed")
    try:
        for arch in resolved.architectures:
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                continue  # an architecture this libseccomp does not know cannot run here either
            rc = lib.seccomp_arch_add(ctx, token)
            if rc != -17:  # EEXIST: the native one, there from the start
                _check(rc, f"seccomp_arch_add({arch})")
        _check(lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 0), "no_new_privs off")
        if _calls(resolved) > 32:
            # A binary tree of call numbers, as runc asks for over 32 calls (it counts names: one entry
            # each). In a line, Docker's ~370 calls make the filter's install take twice as long: loading
            # a filter, the kernel runs it for every call number of every architecture to find the calls
            # it allows whatever their arguments (seccomp_cache_prepare, kernel/seccomp.c), and walks a
            # line of comparisons to its end each time. A libseccomp before 2.5 has no tree: a line then.
            lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)
        for rule in resolved.rules:
            action = _action(rule.action, rule.errno)
            if action == default:
                continue
            by_index: dict[int, int] = {}
            for arg in rule.args:
                by_index[arg.index] = by_index.get(arg.index, 0) + 1
            groups = [[a] for a in rule.args] if any(n > 1 for n in by_index.values()) else [list(rule.args)]
            for name in rule.names:
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number == _NR_SCMP_ERROR:
                    continue
                for group in groups:
                    array = (_ArgCmp * max(len(group), 1))(
                        *[_ArgCmp(a.index, _OPERATORS[a.op], a.value, a.value_two) for a in group])
                    _check(lib.seccomp_rule_add_array(ctx, action, number, len(group), array),
                           f"a rule for {name}")
        with tempfile.TemporaryFile() as out:
            _check(lib.seccomp_export_bpf(ctx, out.fileno()), "seccomp_export_bpf")
            out.seek(0)
            return out.read()
    finally:
        lib.seccomp_release(ctx)


def _calls(resolved: profiles.Filter) -> int:
    """How many system calls ``resolved``'s rules name."""
    return sum(len(rule.names) for rule in resolved.rules)


def unknown_names(resolved: profiles.Filter) -> list[str]:
    """The calls of ``resolved``'s rules that this libseccomp cannot name (left out of the filter)."""
    lib = _libseccomp()
    names = {name for rule in resolved.rules for name in rule.names}
    return sorted(n for n in names if lib.seccomp_syscall_resolve_name(n.encode()) == _NR_SCMP_ERROR)


def for_container(security_opts: Sequence[str], caps: Collection[str]) -> profiles.Filter | None:
    """The filter a container with these ``--security-opt`` values and capabilities runs under here."""
    profile = profiles.seccomp_profile(security_opts)
    if profile is None:
        return None
    return profiles.resolve(profile, caps, platform.machine(), profiles.kernel_version(os.uname().release))


_made: dict[tuple[tuple[str, ...], frozenset[str], str], str | None] = {}
_names: dict[tuple[tuple[str, ...], frozenset[str]], tuple[str, profiles.Filter] | None] = {}


def _named(security_opts: Sequence[str], caps: Collection[str]) -> tuple[str, profiles.Filter] | None:
    """The resolved filter and the hash that names its program file (``None``: unconfined), worked out once
    per process for each ``--security-opt`` values and capabilities, as :func:`program` remembers its files."""
    key = (tuple(security_opts), frozenset(caps))
    if key not in _names:
        resolved = for_container(security_opts, caps)
        _names[key] = None if resolved is None else (
            hashlib.sha256(f"{library_version()}\n{_LAYOUT}\n{resolved.key()}".encode()).hexdigest(), resolved)
    return _names[key]


def warm(caps: Collection[str]) -> None:
    """Load libseccomp and resolve Docker's default profile for ``caps`` now, in the resident engine
    (:mod:`labkit.daemon.server`), so that no worker it forks does either again; a host without libseccomp
    is told so by the command that needs it."""
    with contextlib.suppress(HostUnsupported, OSError, InvalidArgument):
        _named((), caps)


def program(security_opts: Sequence[str], caps: Collection[str], cache_dir: str | os.PathLike[str]) -> str | None:
    """The file holding the BPF program for a container (``None``: unconfined), made once and kept.

    The file's name is a hash of the resolved filter and the libseccomp version, so two containers
    with the same profile and capabilities share one file, and a changed profile never meets a stale
    program. This process remembers the answer too: a start then costs one stat(2).
    """
    memo = (tuple(security_opts), frozenset(caps), str(cache_dir))
    path = _made.get(memo)
    if memo in _made and (path is None or os.path.exists(path)):
        return path
    named = _named(security_opts, caps)
    if named is None:
        _made[memo] = None
        return None
    digest, resolved = named
    target = Path(cache_dir) / f"{digest}.bpf"
    if not target.exists():
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        data = compile_bpf(resolved)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".bpf-")
        try:
            os.write(fd, data)
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.replace(tmp, target)  # atomic: a reader sees the whole program or none
    _made[memo] = str(target)
    return str(target)
