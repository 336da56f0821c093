"""What ``run``'s security, filesystem and resource flags ask for, read and checked as Docker reads them.

Pure functions from the flags' text to plain values the record keeps and both
backends enforce: the capability set a container keeps (``--cap-add``,
``--cap-drop``, ``--privileged``; moby's ``oci/caps``), resource limits
(``--ulimit``; go-units' ``ParseUlimit``), extra mounts (``--mount``,
``--tmpfs``; docker/cli's ``opts/mount.go``), ``/etc/hosts`` and
``/etc/resolv.conf`` lines (``--add-host``, ``--dns``) and the platform
(``--platform``). Each refusal is an :class:`~labkit.errors.InvalidArgument`
worded as Docker words it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from labkit.errors import InvalidArgument, InvalidCapability, InvalidConfig
from labkit.model.humanize import parse_size as size_of

#: Every capability by number, from <linux/capability.h> (capabilities(7)).
CAPABILITIES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip

#: The capabilities Docker grants a container by default (moby's oci/caps/defaults.go).
DOCKER_DEFAULT: frozenset[str] = frozenset(
    {
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
        "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
    }
)  # fmt: skip

_HINT_CAP = "Name a capability of capabilities(7), e.g. NET_ADMIN or CAP_NET_ADMIN, or ALL"


def _normalized(names: Iterable[str], what: str, last_cap: int = len(CAPABILITIES) - 1) -> list[str]:
    """Capability names upper-cased without ``CAP_`` (``ALL`` kept); one refused in moby's words
    (oci/caps ``NormalizeLegacyCapabilities``) when it is no capability, or one above ``last_cap``
    (a capability newer than the kernel)."""
    out = []
    for name in names:
        text = name.strip().upper()
        if text == "ALL":
            out.append("ALL")
            continue
        bare = text[4:] if text.startswith("CAP_") else text
        if bare not in CAPABILITIES:
            raise InvalidCapability(f'invalid {what}: unknown capability: "CAP_{bare}"', _HINT_CAP)
        if CAPABILITIES.index(bare) > last_cap:
            raise InvalidCapability(
                f"invalid {what}: capability not supported by your kernel or not available in the current "
                f'environment: "CAP_{bare}"',
                f"this kernel's last capability is number {last_cap} (/proc/sys/kernel/cap_last_cap), "
                f"CAP_{bare} is number {CAPABILITIES.index(bare)}")
        out.append(bare)
    return out


def stored_capabilities(names: Sequence[str], what: str) -> tuple[str, ...]:
    """``--cap-add``/``--cap-drop`` as ``HostConfig`` keeps them: ``CAP_``-prefixed and upper-cased, ``ALL`` as is
    (moby's ``NormalizeLegacyCapabilities``); ``what`` is ``CapAdd`` or ``CapDrop``.

    Raises:
        InvalidCapability: A name that is no capability.
    """
    return tuple(name if name == "ALL" else f"CAP_{name}" for name in _normalized(names, what))


def capability_set(add: Sequence[str] = (), drop: Sequence[str] = (), privileged: bool = False,
                   last_cap: int = len(CAPABILITIES) - 1) -> frozenset[str]:
    """The capabilities a container's processes keep, as moby's ``TweakCapabilities`` computes them.

    ``--privileged`` gives every capability the kernel has (up to ``last_cap``,
    ``/proc/sys/kernel/cap_last_cap``); ``--cap-add ALL`` every one but those dropped;
    ``--cap-drop ALL`` only those added; otherwise Docker's default set, minus the
    dropped, plus the added.

    Raises:
        InvalidCapability: A name that is no capability, or one this kernel does not have.
    """
    every = frozenset(CAPABILITIES[: last_cap + 1])
    adds, drops = _normalized(add, "CapAdd", last_cap), _normalized(drop, "CapDrop", last_cap)
    if privileged:
        return every
    if "ALL" in adds:
        return every - set(drops)
    if "ALL" in drops:
        return frozenset(a for a in adds if a != "ALL")
    return (DOCKER_DEFAULT - set(drops)) | set(adds)


def capability_mask(names: Iterable[str]) -> int:
    """The bit mask of the named capabilities (``CHOWN`` is bit 0), as ``/proc/PID/status`` prints CapEff."""
    return sum(1 << CAPABILITIES.index(name) for name in set(names))


# -- ulimits --------------------------------------------------------------------------------------

#: ``--ulimit`` names and their resource numbers (setrlimit(2), <asm-generic/resource.h>).
RLIMITS = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7,
    "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14,
    "rttime": 15,
}  # fmt: skip


@dataclass(frozen=True)
class Ulimit:
    """One ``--ulimit NAME=SOFT[:HARD]`` (-1: unlimited), ``HostConfig.Ulimits``'s ``{Name, Hard, Soft}``."""

    name: str
    soft: int
    hard: int


def parse_ulimit(text: str) -> Ulimit:
    """``nofile=1024:2048``, ``nproc=64`` (hard = soft), as go-units' ``ParseUlimit`` reads it.

    Raises:
        InvalidArgument: Not NAME=SOFT[:HARD], an unknown name, or soft above hard.
    """
    name, sep, values = text.partition("=")
    hint = "Write it as NAME=SOFT[:HARD], e.g. nofile=1024:2048"
    if not sep:
        raise InvalidArgument(f"invalid ulimit argument: {text}", hint)
    if name not in RLIMITS:
        raise InvalidArgument(f"invalid ulimit type: {name}", "A name is one of " + ", ".join(RLIMITS))
    parts = values.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"too many limit value arguments - {values}, can only have up to two, `soft[:hard]`",
                              hint)
    numbers = []
    for part in parts:
        try:
            numbers.append(int(part))
        except ValueError:  # go-units' ParseUlimit returns strconv's error as it is
            raise InvalidArgument(f'strconv.ParseInt: parsing "{part}": invalid syntax', hint) from None
    soft, hard = numbers[0], numbers[-1]
    if hard != -1 and soft > hard:
        raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}", hint)
    return Ulimit(name, soft, hard)


# -- mounts ---------------------------------------------------------------------------------------

#: tmpfs options that are mount(2) flags, with the MS_* bit each sets (0: clears one, such as ``rw``).
MOUNT_FLAGS = {
    "ro": 0x1, "rw": 0, "nosuid": 0x2, "suid": 0, "nodev": 0x4, "dev": 0, "noexec": 0x8, "exec": 0,
    "sync": 0x10, "async": 0, "dirsync": 0x80, "noatime": 0x400, "atime": 0, "nodiratime": 0x800,
    "diratime": 0, "relatime": 0x200000, "norelatime": 0, "strictatime": 0x1000000, "nostrictatime": 0,
}  # fmt: skip
_CLEARS = {"rw": "ro", "suid": "nosuid", "dev": "nodev", "exec": "noexec", "async": "sync", "atime": "noatime",
           "diratime": "nodiratime", "norelatime": "relatime", "nostrictatime": "strictatime"}
#: What tmpfs(5) takes as data (mount(2)'s last argument).
TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "huge", "mpol")
#: Docker's tmpfs flags before the user's (moby's ``mount.MergeTmpfsOptions`` defaults).
TMPFS_DEFAULT = ("noexec", "nosuid", "nodev")


def tmpfs_options(text: str) -> tuple[int, str]:
    """A tmpfs's options (``rw,size=64m,mode=1770``) as mount(2)'s flags and data, Docker's defaults first.

    Raises:
        InvalidArgument: An option neither a mount flag nor one of tmpfs(5)'s.
    """
    words: dict[str, None] = dict.fromkeys(TMPFS_DEFAULT)
    data: list[str] = []
    for option in filter(None, (o.strip() for o in text.split(","))):
        key = option.partition("=")[0]
        if option in MOUNT_FLAGS:
            words.pop(_CLEARS.get(option, ""), None)
            words[option] = None
        elif key in TMPFS_DATA and "=" in option:
            data.append(option)
        else:
            raise InvalidArgument(f'invalid tmpfs option ["{option}"]',
                                  "tmpfs takes mount flags (ro, rw, noexec, exec, ...) and size=, mode=, uid=, gid=")
    flags = 0
    for word in words:
        flags |= MOUNT_FLAGS[word]
    return flags, ",".join(data)


def parse_tmpfs(text: str) -> tuple[str, str]:
    """``--tmpfs /run[:OPTIONS]`` as (destination, options), both checked.

    Raises:
        InvalidArgument: A relative destination, or an option tmpfs does not take.
    """
    destination, _, options = text.partition(":")
    if not destination.startswith("/"):
        raise InvalidArgument(f"invalid mount config for type \"tmpfs\": invalid mount path: '{destination}' mount "
                              "path must be absolute", "Write the container path from /, e.g. --tmpfs /run")
    tmpfs_options(options)
    return destination, options


@dataclass(frozen=True)
class MountRequest:
    """One ``--mount`` as docker/cli's ``opts/mount.go`` reads it (before the engine resolves volumes)."""

    type: str
    source: str
    target: str
    readonly: bool = False
    tmpfs: str = ""  # tmpfs(5) data from tmpfs-size and tmpfs-mode


def _bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise InvalidArgument(f"invalid value for {key}: {value}", f"Write {key}=true or {key}=false")


def parse_mount(text: str) -> MountRequest:
    """``type=bind,source=/srv,target=/data,readonly`` (also ``src``, ``dst``/``destination``, ``ro``,
    ``tmpfs-size``, ``tmpfs-mode``), as Docker's client reads it: the type is ``volume`` unless given.
    What the daemon checks (:func:`check_mount`) is not checked here.

    Raises:
        InvalidArgument: A field that is not ``key=value`` (but ``readonly``), an unknown key, or no target.
    """
    kind, source, target = "volume", "", ""
    readonly = False
    data: list[str] = []
    for field in text.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep:
            if key in ("readonly", "ro"):
                readonly = True
                continue
            raise InvalidArgument(f"invalid field '{field}' must be a key=value pair",
                                  "Write it like type=bind,source=/srv,target=/data")
        if key == "type":
            kind = value.lower()
        elif key in ("source", "src"):
            source = value
        elif key in ("target", "dst", "destination"):
            target = value
        elif key in ("readonly", "ro"):
            readonly = _bool(key, value)
        elif key == "tmpfs-size":
            data.append(f"size={size_of(value)}")
        elif key == "tmpfs-mode":
            if not re.fullmatch(r"[0-7]{1,4}", value):
                raise InvalidArgument(f"invalid value for {key}: {value}", "Give an octal mode, e.g. tmpfs-mode=1770")
            data.append(f"mode={value}")
        elif key in ("bind-propagation", "consistency", "volume-nocopy"):
            continue  # accepted, as Docker's client does; labkit's mounts are private and never copy in
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{field}'",
                                  "Keys are type, source, target, readonly, tmpfs-size and tmpfs-mode")
    if not target:
        raise InvalidArgument("target is required", "Add target=/path/inside")
    return MountRequest(kind, source, target, readonly, ",".join(data))


def check_mount(req: MountRequest) -> None:
    """What Docker's daemon checks of a ``--mount`` (moby's ``validateMountConfig``), in its order and words.

    Raises:
        InvalidConfig: A relative target, a bind without a source, a tmpfs with one, or a type other than
            bind, volume or tmpfs.
    """
    where = f'invalid mount config for type "{req.type}"'
    if not req.target.startswith("/"):
        raise InvalidConfig(f"{where}: invalid mount path: '{req.target}' mount path must be absolute",
                            "Write the container path from /")
    if req.type == "bind" and not req.source:
        raise InvalidConfig(f"{where}: field Source must not be empty", "Add source=/host/path")
    if req.type == "tmpfs" and req.source:
        raise InvalidConfig(f"{where}: field Source must not be specified",
                            "A tmpfs is made empty in memory: leave out source=")
    if req.type not in ("bind", "volume", "tmpfs"):
        raise InvalidConfig(f"{where}: mount type unknown", "labkit mounts type=bind, type=volume and type=tmpfs")


# -- /etc/hosts and /etc/resolv.conf ---------------------------------------------------------------

def _address(text: str) -> str:
    """An IPv4 or IPv6 address as written, or ValueError."""
    return str(ipaddress.ip_address(text))


def parse_add_host(text: str) -> str:
    """``--add-host name:ip`` (or ``name=ip``, ``name:[ipv6]``, ``name:host-gateway``) as ``name:ip``.

    Raises:
        InvalidArgument: No name, or no address.
    """
    name, sep, value = text.partition("=")
    if not sep:
        name, sep, value = text.partition(":")
    if not sep or not name:
        raise InvalidArgument(f'bad format for add-host: "{text}"', "Write it as NAME:IP, e.g. db:10.0.0.5")
    if value != "host-gateway":
        if len(value) > 2 and value[0] == "[" and value[-1] == "]":
            value = value[1:-1]
        try:
            _address(value)
        except ValueError:
            raise InvalidArgument(f'invalid IP address in add-host: "{value}"',
                                  "Write it as NAME:IP, e.g. db:10.0.0.5") from None
    return f"{name}:{value}"


def extra_hosts_lines(extra: Iterable[str], gateway: str) -> str:
    """``/etc/hosts`` lines for ``--add-host`` entries (``IP\\tNAME``); ``host-gateway`` is ``gateway``."""
    lines = []
    for entry in extra:
        name, _, ip = entry.partition(":")
        lines.append(f"{gateway if ip == 'host-gateway' else ip}\t{name}\n")
    return "".join(lines)


def parse_dns(text: str) -> str:
    """``--dns 1.1.1.1``: an IP address.

    Raises:
        InvalidArgument: Not one.
    """
    try:
        return _address(text)
    except ValueError:
        raise InvalidArgument(f"IP address is not correctly formatted: {text}",
                              "Give the name server's address, e.g. --dns 1.1.1.1") from None


def resolv_conf(host_text: str, dns: Sequence[str]) -> str:
    """``/etc/resolv.conf`` with ``--dns`` servers in place of the host's (its search and options lines kept)."""
    if not dns:
        return host_text
    kept = [line for line in host_text.splitlines() if line.strip() and not line.lstrip().startswith("nameserver")]
    return "".join(f"{line}\n" for line in kept) + "".join(f"nameserver {ip}\n" for ip in dns)


# -- the platform ---------------------------------------------------------------------------------

_ARCH = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "i386": "386", "i686": "386"}


def check_platform(text: str, machine: str, image: str) -> None:
    """``--platform``: the host's own (``linux``, ``linux/amd64``, ``amd64``) is accepted; any other refused,
    as labkit runs images of this machine only (no emulator, nothing pulled).

    Raises:
        InvalidArgument: Another operating system or architecture, or text that names neither.
    """
    host = _ARCH.get(machine, machine)
    parts = [p.strip().lower() for p in text.split("/")]
    if not text.strip() or len(parts) > 3 or not all(parts):
        raise InvalidArgument(f'"{text}": unknown operating system or architecture: invalid argument',
                              f"Give linux/{host}, this machine's platform")
    os_name, arch = ("linux", parts[0]) if len(parts) == 1 and parts[0] != "linux" else (parts[0], "")
    if len(parts) >= 2:
        arch = parts[1]
    arch = _ARCH.get(arch, arch)
    if os_name != "linux" or (arch and arch != host):
        wanted = f"{os_name}/{arch}" if arch else os_name
        raise InvalidArgument(f"image with reference {image} was found but does not match the specified platform: "
                              f"wanted {wanted}, actual: linux/{host}",
                              f"labkit runs images for this machine only (linux/{host}): nothing is emulated or pulled")


# -- the user -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class User:
    """Who ``-u`` makes the command: its ids, supplementary groups and home."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    name: str = ""


class UnknownUser(LookupError):
    """``-u`` names a user or group the container's files do not have (the message is Docker's)."""


def resolve_user(spec: str, passwd: str, group: str) -> User:
    """``-u USER[:GROUP]`` read in the container's ``/etc/passwd`` and ``/etc/group`` texts, as runc reads it
    (libcontainer/user) and ``pid1.c``'s resolve_user does for the real kernel: a name must be there, a number
    need not be (group 0, home ``/``); the supplementary groups are the primary one (as Docker gives it since
    CVE-2023-25173) and those that list the user's name.

    Raises:
        UnknownUser: A name that is not in the file.
    """
    user, _, grp = spec.partition(":")
    numeric = user.isdigit() or not user
    uid, gid, home, name, found = (int(user) if user.isdigit() else 0), 0, "/", "", False
    for line in passwd.splitlines():
        f = line.split(":")
        if len(f) >= 7 and f[2].isdigit() and (int(f[2]) == uid if numeric else f[0] == user):
            uid, gid, name, home, found = int(f[2]), int(f[3]) if f[3].isdigit() else 0, f[0], f[5] or "/", True
            break
    if not found and not numeric:
        raise UnknownUser(f"unable to find user {user}: no matching entries in passwd file")
    groups: list[int] = []
    group_found = not grp
    if grp.isdigit():
        gid, group_found = int(grp), True
    for line in group.splitlines():
        f = line.split(":")
        if len(f) < 3 or not f[2].isdigit():
            continue
        if not group_found and f[0] == grp:
            gid, group_found = int(f[2]), True
        if found and len(f) >= 4 and name in f[3].split(",") and int(f[2]) not in groups:
            groups.append(int(f[2]))
    if not group_found:
        raise UnknownUser(f"unable to find group {grp}: no matching entries in group file")
    if gid not in groups:
        groups.insert(0, gid)
    return User(uid, gid, tuple(groups), home, name)


def hosts_line(ip: str, names: Iterable[str]) -> str:
    """One line of ``/etc/hosts``: an address and the names it answers to."""
    return f"{ip}\t{' '.join(dict.fromkeys(names))}\n"


def hosts_with(text: str, lines: Iterable[str]) -> str:
    """``/etc/hosts`` with ``lines`` added at its end, those it has already left out."""
    have = set(text.splitlines(keepends=True))
    return text + "".join(line for line in lines if line not in have)


def hosts_without(text: str, ips: Iterable[str]) -> str:
    """``/etc/hosts`` without the lines of the addresses ``ips`` (a network a container left)."""
    gone = set(ips)
    return "".join(line for line in text.splitlines(keepends=True) if line.split("\t", 1)[0] not in gone)
