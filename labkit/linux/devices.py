"""Device rules: which device files a container may create and open.

A root container keeps CAP_MKNOD (Docker's default capabilities hold it), so
without rules it could ``mknod /tmp/sda b 8 0`` and read and write the host's
disk, or ``mknod /tmp/kmsg c 1 11`` and write into the host's kernel log. The
kernel asks the *device controller* of the opener's cgroup before it lets a
device node be made (``m``), read (``r``) or written (``w``)
(security/device_cgroup.c, ``devcgroup_check_permission``), and refuses with
EPERM what the rules do not allow. labkit sets Docker's rules: every device is
denied except :data:`DOCKER_DEFAULT` — ``mknod`` of any device (a node that
cannot be opened is harmless), and the few devices every container's ``/dev``
holds (runc's default allowed devices, ``libcontainer/specconv``).

The rules are set in two ways, and the kernel applies both wherever both exist:

- **cgroup v1**: the container's group in the ``devices`` hierarchy. ``a``
  written to ``devices.deny`` removes every exception and denies all; each
  allowed rule is then written to ``devices.allow``, one per write(2)
  (Documentation/admin-guide/cgroup-v1/devices.rst). :func:`v1_lines`.
- **cgroup v2**: there are no device files; access is decided by a
  ``BPF_PROG_TYPE_CGROUP_DEVICE`` program attached to the group
  (Documentation/admin-guide/cgroup-v2.rst, "Device controller"). The program
  reads a ``struct bpf_cgroup_dev_ctx`` (include/uapi/linux/bpf.h) and returns 1
  to allow, 0 to deny. :func:`program` assembles it from the same rules, in the
  shape runc's ``devicefilter.go`` gives it, and :func:`attach` loads it with
  bpf(2) ``BPF_PROG_LOAD`` and attaches it to the group with ``BPF_PROG_ATTACH``.
  The attachment lives as long as the group: removing the group frees it. A
  process loads each set of rules once and attaches that one program to every
  group it makes (the kernel counts the references, kernel/bpf/cgroup.c): the
  verifier runs once per engine, not once per container.

Rootless containers need neither: mknod(2) of a device requires CAP_MKNOD in the
*initial* user namespace (mknod(2), user_namespaces(7)), which a user namespace
never holds.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import threading
from dataclasses import dataclass

__all__ = ["ALLOW_ALL", "DOCKER_DEFAULT", "MECHANISMS", "Rule", "attach", "attached", "program", "v1_lines"]

#: The two ways rules are set (see the module docstring).
MECHANISMS = ("v1", "v2")


@dataclass(frozen=True)
class Rule:
    """One allowed device rule, in the v1 ``devices.allow`` syntax's terms.

    Attributes:
        kind: ``"c"`` (character device), ``"b"`` (block device) or ``"a"`` (both).
        major: The major number, or None for any (``*``).
        minor: The minor number, or None for any (``*``).
        access: Some of ``r`` (open for reading), ``w`` (open for writing), ``m`` (mknod).
    """

    kind: str
    major: int | None
    minor: int | None
    access: str

    def line(self) -> str:
        """The rule as ``devices.allow`` reads it, e.g. ``c 1:3 rwm`` or ``b *:* m``."""
        def number(n: int | None) -> str:
            return "*" if n is None else str(n)

        return f"{self.kind} {number(self.major)}:{number(self.minor)} {self.access}"


#: Docker's default allowed devices (runc's ``AllowedDevices``); everything else is denied.
DOCKER_DEFAULT: tuple[Rule, ...] = (
    Rule("c", None, None, "m"),  # mknod of any character device, no use
    Rule("b", None, None, "m"),  # mknod of any block device, no use
    Rule("c", 1, 3, "rwm"),  # /dev/null
    Rule("c", 1, 5, "rwm"),  # /dev/zero
    Rule("c", 1, 7, "rwm"),  # /dev/full
    Rule("c", 1, 8, "rwm"),  # /dev/random
    Rule("c", 1, 9, "rwm"),  # /dev/urandom
    Rule("c", 5, 0, "rwm"),  # /dev/tty
    Rule("c", 5, 1, "rwm"),  # /dev/console
    Rule("c", 5, 2, "rwm"),  # /dev/ptmx
    Rule("c", 136, None, "rwm"),  # /dev/pts/* (Unix98 pty slaves)
    Rule("c", 10, 200, "rwm"),  # /dev/net/tun: runc 1.2.0 dropped it, 1.2.4 put it back (runc#4555)
)


#: ``--privileged``: every device may be made, read and written (Docker's ``a *:* rwm``).
ALLOW_ALL: tuple[Rule, ...] = (Rule("a", None, None, "rwm"),)


def v1_lines(rules: tuple[Rule, ...] = DOCKER_DEFAULT) -> list[tuple[str, str]]:
    """The cgroup v1 writes, in order: ``("devices.deny", "a")`` then one ``("devices.allow", rule)`` per rule.

    ``a`` in devices.deny switches the group to deny-by-default and drops the
    exceptions it inherited (cgroup-v1/devices.rst, section 2); the kernel
    accepts it only in a group without children, so it is written right after
    the group is made.
    """
    return [("devices.deny", "a"), *(("devices.allow", rule.line()) for rule in rules)]


# -- the cgroup v2 program ---------------------------------------------------------------------------
#
# An eBPF instruction is 8 bytes (include/uapi/linux/bpf.h, struct bpf_insn): the opcode, the
# destination register in the low nibble and the source register in the high nibble of one byte,
# a signed 16-bit offset and a signed 32-bit immediate. Opcodes are built from the class, the
# operation and the source (Documentation/bpf/standardization/instruction-set.rst).

_BPF_LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
_BPF_ALU_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K: dst32 &= imm
_BPF_ALU_RSH_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K: dst32 >>= imm
_BPF_ALU_MOV_K = 0xB4  # BPF_ALU | BPF_MOV | BPF_K: dst32 = imm
_BPF_ALU_MOV_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X: dst32 = src32
_BPF_JMP_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K: if dst != imm goto pc + off
_BPF_JMP_JNE_X = 0x5D  # BPF_JMP | BPF_JNE | BPF_X: if dst != src goto pc + off
_BPF_JMP_EXIT = 0x95  # BPF_JMP | BPF_EXIT: return r0

# struct bpf_cgroup_dev_ctx { __u32 access_type; __u32 major; __u32 minor; }: access_type holds
# the device type in its low 16 bits (BPF_DEVCG_DEV_*) and the access in its high 16 (BPF_DEVCG_ACC_*).
_DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE

# Registers: r1 holds the context on entry; the prologue leaves the type in r2, the access in r3,
# the major in r4 and the minor in r5, and each rule uses r1 as scratch (as runc's program does).
_R0, _R1, _R2, _R3, _R4, _R5 = range(6)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def _rule_block(rule: Rule) -> list[bytes]:
    """Instructions that return 1 (allow) when the request matches ``rule``, and fall through otherwise.

    Each test jumps past the rest of the block when it fails: the offsets are
    counted back from the block's end, known once the block is complete.
    """
    tests: list[tuple[int, int, int, int]] = []  # (code, dst, src, imm): jump to the end unless equal
    body: list[tuple[int, int, int, int]] = []
    if rule.kind != "a":
        tests.append((_BPF_JMP_JNE_K, _R2, 0, _DEV_TYPE[rule.kind]))
    bits = sum(_ACCESS[a] for a in set(rule.access))
    if bits != 7:
        # The request's access must be a subset of the rule's: (access & allowed) == access.
        tests.append((_BPF_ALU_MOV_X, _R1, _R3, 0))
        tests.append((_BPF_ALU_AND_K, _R1, 0, bits))
        tests.append((_BPF_JMP_JNE_X, _R1, _R3, 0))
    if rule.major is not None:
        tests.append((_BPF_JMP_JNE_K, _R4, 0, rule.major))
    if rule.minor is not None:
        tests.append((_BPF_JMP_JNE_K, _R5, 0, rule.minor))
    body = [(_BPF_ALU_MOV_K, _R0, 0, 1), (_BPF_JMP_EXIT, 0, 0, 0)]
    out = []
    total = len(tests) + len(body)
    for i, (code, dst, src, imm) in enumerate(tests):
        jumps = code in (_BPF_JMP_JNE_K, _BPF_JMP_JNE_X)
        out.append(_insn(code, dst, src, total - i - 1 if jumps else 0, imm))
    out += [_insn(code, dst, src, 0, imm) for code, dst, src, imm in body]
    return out


def program(rules: tuple[Rule, ...] = DOCKER_DEFAULT) -> bytes:
    """The ``BPF_PROG_TYPE_CGROUP_DEVICE`` program allowing ``rules`` and denying everything else."""
    insns = [
        _insn(_BPF_LDX_MEM_W, _R2, _R1, 0),  # r2 = ctx->access_type
        _insn(_BPF_ALU_AND_K, _R2, 0, 0, 0xFFFF),  # r2 &= 0xffff: the device type
        _insn(_BPF_LDX_MEM_W, _R3, _R1, 0),  # r3 = ctx->access_type
        _insn(_BPF_ALU_RSH_K, _R3, 0, 0, 16),  # r3 >>= 16: the access
        _insn(_BPF_LDX_MEM_W, _R4, _R1, 4),  # r4 = ctx->major
        _insn(_BPF_LDX_MEM_W, _R5, _R1, 8),  # r5 = ctx->minor
    ]
    for rule in rules:
        block = _rule_block(rule)
        insns += block
        if len(block) == 2:
            # A rule that matches every request (--privileged's "a *:* rwm") ends the program: the verifier refuses
            # an instruction no path reaches ("unreachable insn", check_cfg() in kernel/bpf/verifier.c).
            return b"".join(insns)
    insns += [_insn(_BPF_ALU_MOV_K, _R0, 0, 0, 0), _insn(_BPF_JMP_EXIT)]  # no rule matched: deny
    return b"".join(insns)


# -- bpf(2) ------------------------------------------------------------------------------------------

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_QUERY = 16
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6  # enum bpf_attach_type
_BPF_F_ALLOW_MULTI = 2  # other programs (a parent's) keep running: all must allow
_ATTR_SIZE = 128  # the part of union bpf_attr used here; the kernel takes a shorter one (bpf(2))

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    number = _SYS_BPF.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"bpf(2) has no known number on {platform.machine()}")
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), attr, ctypes.c_uint(_ATTR_SIZE))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(result)


def _load(code: bytes) -> int:
    """BPF_PROG_LOAD: the program's fd. On refusal the verifier's log is put in the error."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"MIT")
    log = ctypes.create_string_buffer(65536)
    for log_level in (0, 1):
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf (union bpf_attr, BPF_PROG_LOAD)
        struct.pack_into("<IIQQIIQ", attr, 0, _BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                         ctypes.addressof(insns), ctypes.addressof(license_),
                         log_level, len(log) if log_level else 0, ctypes.addressof(log) if log_level else 0)
        struct.pack_into("16s", attr, 48, b"labkit_devices")  # prog_name
        try:
            return _bpf(_BPF_PROG_LOAD, attr)
        except OSError as error:
            if log_level or error.errno not in (errno.EACCES, errno.EINVAL):  # a verifier refusal: see its log
                verifier = log.value.decode(errors="replace").strip()
                raise OSError(error.errno, f"{error.strerror}{': ' + verifier if verifier else ''}") from None
    raise AssertionError("unreachable")


_loaded: dict[tuple[Rule, ...], int] = {}  # rules -> the fd of their program, loaded by this process
_loading = threading.Lock()


def _program_fd(rules: tuple[Rule, ...]) -> int:
    """The fd of :func:`program` for ``rules``, loaded (and verified) on first use and kept open.

    The fd is close-on-exec (bpf(2) makes every fd it returns so): a forked worker shares it,
    an exec'd helper never holds it.
    """
    with _loading:
        fd = _loaded.get(rules)
        if fd is None:
            fd = _loaded[rules] = _load(program(rules))
        return fd


def warm(rules: tuple[Rule, ...] = DOCKER_DEFAULT) -> None:
    """Load :func:`program` for ``rules`` now (the resident engine does, so that its workers inherit it).

    Raises:
        OSError: The kernel refused it (see :func:`attach`).
    """
    _program_fd(rules)


def attach(group_dir: str, rules: tuple[Rule, ...] = DOCKER_DEFAULT) -> None:
    """Attach :func:`program` for ``rules`` to the cgroup v2 group ``group_dir`` (BPF_CGROUP_DEVICE).

    The group holds a reference to the program from then on; the program is loaded once per
    process (:func:`_program_fd`).

    Raises:
        OSError: The kernel refused: EPERM without CAP_SYS_ADMIN/CAP_BPF, EINVAL
            or ENOSYS on a kernel without cgroup BPF (CONFIG_CGROUP_BPF).
    """
    group = os.open(group_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            _attach(group, _program_fd(rules))
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            # A group left by a crash and made again may hold this very program already, and the
            # kernel refuses the same program twice on one group (EINVAL, kernel/bpf/cgroup.c,
            # find_attach_entry): attach a copy of its own, as a process that never loaded it would.
            prog = _load(program(rules))
            try:
                _attach(group, prog)
            finally:
                os.close(prog)
    finally:
        os.close(group)


def _attach(group: int, prog: int) -> None:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    # target_fd, attach_bpf_fd, attach_type, attach_flags (union bpf_attr, BPF_PROG_ATTACH)
    struct.pack_into("<IIII", attr, 0, group, prog, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI)
    _bpf(_BPF_PROG_ATTACH, attr)


def attached(group_dir: str) -> int:
    """How many device programs are attached to the cgroup v2 group ``group_dir`` itself (BPF_PROG_QUERY).

    Programs of its ancestors are not counted; they apply too (BPF_F_ALLOW_MULTI), and all must allow.
    """
    group = os.open(group_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        # target_fd, attach_type, query_flags, attach_flags, prog_ids (none: count only), prog_cnt
        struct.pack_into("<IIIIQI", attr, 0, group, _BPF_CGROUP_DEVICE, 0, 0, 0, 0)
        _bpf(_BPF_PROG_QUERY, attr)
        return int(struct.unpack_from("<I", attr, 24)[0])
    finally:
        os.close(group)
