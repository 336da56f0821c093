"""Docker's option values, read and refused in Docker's words: signals, ``-p``, ``--restart``, ``-v``, ``-e``.

Pure functions of their text (and, for ``-e NAME``, this process's environment); every
resource of the engine uses them, and the command line reads a ``-p`` with :func:`parse_port`
before it asks the engine anything.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import signal as _signal
from collections.abc import Sequence
from typing import Any

from labkit.errors import InvalidArgument, InvalidConfig
from labkit.model import limits
from labkit.model.container import MountSpec, PortSpec
from labkit.model.humanize import parse_size, parse_timestamp

MIN_MEMORY = limits.MIN_MEMORY
#: The longest hostname sethostname(2) takes (HOST_NAME_MAX, limits.h).
HOST_NAME_MAX = 64
#: How a warning names each limit: ``--memory``, ``--pids-limit``, ``--cpus``.
LIMIT_NAMES = {"memory": "memory limit", "pids": "pids limit", "cpu": "CPU quota"}
#: A volume's name, as Docker's local driver takes it.
VOLUME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def signal_number(sig: str | int) -> int:
    """``"TERM"``, ``"SIGTERM"``, ``"15"`` or ``15`` → 15; anything else is refused in Docker's words.

    A number must name a signal the kernel has: 1 to ``SIGRTMAX`` (64 on Linux, signal(7));
    ``kill(2)`` with 0 only checks that the process exists, and Docker refuses it as well.
    """
    text = str(sig).strip().upper()
    if isinstance(sig, int) or text.isdigit():
        number = int(sig) if isinstance(sig, int) else int(text)
        if number == 0:
            raise InvalidArgument(f"Invalid signal: {sig}",
                                  "Signal 0 only tests that a process exists; use a name such as SIGTERM or KILL")
        if not 0 < number <= _signal.SIGRTMAX:
            raise InvalidArgument(f"The linux daemon does not support signal {sig}",
                                  f"Use a number from 1 to {int(_signal.SIGRTMAX)}, or a name such as SIGTERM")
        return number
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(getattr(_signal.Signals, text))
    except AttributeError:
        raise InvalidArgument(f"Invalid signal: {sig}", "Use a name such as SIGTERM or KILL, or a number") from None


def parse_port(spec: str) -> PortSpec:
    """One ``-p`` value: ``[hostip:][hostport:]containerport[/proto]``."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    parts = body.rsplit(":", 2)
    host_ip = host_port = ""
    if len(parts) == 3:
        host_ip, host_port, cport = parts
    elif len(parts) == 2:
        host_port, cport = parts
    else:
        (cport,) = parts
    bad = InvalidArgument(
        f"invalid port specification: \"{spec}\"", "Write it as HOSTPORT:CONTAINERPORT, e.g. -p 3000:3000"
    )
    if host_ip:
        bracketed = host_ip.startswith("[") and host_ip.endswith("]")
        try:
            ipaddress.ip_address(host_ip[1:-1] if bracketed else host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}",
                                  "Publish on an address of this host, e.g. -p 127.0.0.1:3000:3000") from None
    if proto not in ("tcp", "udp", "sctp") or not cport.isdigit() or (host_port and not host_port.isdigit()):
        raise bad
    if not 0 < int(cport) < 65536 or (host_port and not 0 < int(host_port) < 65536):
        raise bad
    return PortSpec(int(cport), proto, host_ip, host_port)


def restart_policy(text: str) -> tuple[str, int]:
    """``--restart``: ``no``, ``always``, ``unless-stopped`` or ``on-failure[:N]`` → (policy, N).

    Raises:
        InvalidArgument: In Docker's words: an unknown policy, a count that is not a whole
            number, a negative count, or a count with a policy other than ``on-failure``.
    """
    policy, colon, count = text.partition(":")
    hint = "Use no, on-failure[:N], always or unless-stopped"
    if policy not in ("no", "on-failure", "always", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy '{text}'", hint)
    if not colon:
        return policy, 0
    try:
        retries = int(count)
    except ValueError:
        raise InvalidArgument("invalid restart policy format: maximum retry count must be an integer",
                              "Write it like on-failure:3") from None
    if policy != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{policy}'",
                              "Only on-failure takes a count, e.g. on-failure:3")
    if retries < 0:
        raise InvalidArgument("maximum retry count cannot be negative", "Give 0 or more, e.g. on-failure:3")
    return policy, retries


def checked_mounts(mounts: tuple[MountSpec, ...]) -> tuple[MountSpec, ...]:
    """Refuse two mounts on one target, and targets on /proc (or under it) or /dev.

    runc refuses to mount anything over ``/proc`` ("… cannot be mounted because it is inside /proc");
    the kernel's files there (``/proc/sys``, ``/proc/sysrq-trigger``) are what a container must not
    reach, and labkit mounts its own ``/dev``. Targets are compared after ``..`` is resolved.
    """
    seen: set[str] = set()
    for m in mounts:
        target = posixpath.normpath(m.destination)
        if target == "/proc" or target.startswith("/proc/"):
            raise InvalidArgument(f"invalid mount config: destination {m.destination} is on /proc, the kernel's "
                                  "own view of the container, which runc and labkit never mount over",
                                  "Mount it somewhere else, e.g. -v SRC:/data")
        if target == "/dev":
            raise InvalidArgument(f"invalid mount config: destination {m.destination} would hide the /dev that "
                                  "labkit makes for the container", "Mount it somewhere else, e.g. -v SRC:/data")
        if target in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.destination}", "Give each -v its own target path")
        seen.add(target)
    return mounts


def parse_env(env: Any) -> list[str]:
    """Accept a dict, or a list of ``K=V`` / ``K`` (taken from this process's environment)."""
    if env is None:
        return []
    if isinstance(env, dict):
        return [f"{k}={v}" for k, v in env.items()]
    out = []
    for item in env:
        if "=" in item:
            out.append(item)
        elif item in os.environ:
            out.append(f"{item}={os.environ[item]}")
    return out


def create_env(image: list[str], user: list[str]) -> list[str]:
    """A new container's ``Config.Env``: the user's ``-e`` variables first, then the image's that they do
    not name (moby's ``merge`` of the user's config with the image's, daemon/commit.go)."""
    mine: dict[str, str] = {}
    for item in user:
        mine[item.split("=", 1)[0]] = item
    return [*mine.values(), *(item for item in image if item.split("=", 1)[0] not in mine)]


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """The container's env with ``exec -e`` values replacing same-named keys in place, new ones after
    (moby's ``ReplaceOrAppendEnvValues``)."""
    merged: dict[str, str] = {}
    for item in [*base, *extra]:
        key = item.split("=", 1)[0]
        merged[key] = item
    return list(merged.values())


#: docker diff's kinds as the API numbers them.
KIND = {"C": 0, "A": 1, "D": 2}


def anonymous(name: str) -> bool:
    """Whether a volume's name is one ``-v /path`` made up (64 hex digits, removed with ``rm -v``)."""
    return bool(re.fullmatch(r"[0-9a-f]{64}", name))


def read_text(path: str) -> str:
    """A file's text (a seccomp profile given by path), read as the caller's process sees it."""
    with open(path, encoding="utf-8", errors="replace") as f:  # not UTF-8: not JSON, said as such
        return f.read()


def size(value: int | str | None) -> int:
    """``--memory``'s value in bytes: a number, or text such as ``64m`` (0 for none)."""
    if value in (None, "", 0):
        return 0
    if isinstance(value, int):
        return value
    return parse_size(value)



def host_config(image: str, *, user: str | None, read_only: bool, tmpfs: Sequence[str] | None,
                mounts: Sequence[str] | None, add_host: Sequence[str] | None, dns: Sequence[str] | None,
                cap_add: Sequence[str] | None, cap_drop: Sequence[str] | None, privileged: bool,
                ulimits: Sequence[str] | None, platform: str | None) -> dict[str, Any]:
    """The record's fields for ``run``'s security, filesystem and limit flags, each checked as Docker checks
    it (:mod:`labkit.model.hostconfig`), and the ``--mount`` mounts (key ``mounts``); nothing is made."""
    import platform as host  # the argument is --platform's text
    import secrets

    from labkit.model import hostconfig

    if platform:
        hostconfig.check_platform(platform, host.machine(), image)
    hostconfig.capability_set(cap_add or (), cap_drop or (), privileged)  # an unknown name is refused now
    tmpfs_map: dict[str, str] = {}
    for text in tmpfs or ():
        dest, options = hostconfig.parse_tmpfs(text)
        tmpfs_map[dest] = options
    specs = []
    for text in mounts or ():
        req = hostconfig.parse_mount(text)
        hostconfig.check_mount(req)
        if req.type == "volume" and not req.source:
            source = secrets.token_hex(32)
        elif req.type == "volume" and not VOLUME_RE.match(req.source):
            raise InvalidConfig(f'invalid mount config for type "volume": invalid volume name: "{req.source}"',
                                "A volume's name is letters, digits, _ . -")
        else:
            source = os.path.realpath(req.source) if req.type == "bind" else req.source
        if req.type == "bind" and not os.path.exists(source):  # --mount never makes its source, -v does
            raise InvalidConfig(f'invalid mount config for type "bind": bind source path does not exist: {source}',
                                "Create the host path first, or use -v")
        specs.append(MountSpec(req.type, source, req.target, req.readonly, req.tmpfs, explicit=True))
    for dest in tmpfs_map:
        if any(posixpath.normpath(m.destination) == posixpath.normpath(dest) for m in specs):
            raise InvalidArgument(f"Duplicate mount point: {dest}", "Give each mount its own target path")
    return {
        "user": user or "",
        "readonly_rootfs": bool(read_only),
        "tmpfs": tmpfs_map,
        "extra_hosts": tuple(hostconfig.parse_add_host(h) for h in add_host or ()),
        "dns": tuple(hostconfig.parse_dns(d) for d in dns or ()),
        "cap_add": hostconfig.stored_capabilities(cap_add or (), "CapAdd"),
        "cap_drop": hostconfig.stored_capabilities(cap_drop or (), "CapDrop"),
        "privileged": bool(privileged),
        "ulimits": tuple((u.name, u.soft, u.hard) for u in map(hostconfig.parse_ulimit, ulimits or ())),
        "mounts": tuple(specs),
    }


def moment(value: float | str | None, now: Any) -> float | None:
    """``logs``' ``since``/``until`` as unix seconds (None, 0 and "" mean no bound, as in Docker)."""
    if value in (None, "", 0, "0"):
        return None
    if isinstance(value, (int, float)):
        return float(value)

    return parse_timestamp(value, now)
