"""A container as labkit records it, and the JSON Docker would show for it.

A :class:`ContainerRecord` is what the engine keeps on disk: the configuration
fixed at ``create`` (:class:`ContainerConfig`) and the state that the lifecycle
moves (:class:`ContainerState`). Everything a user reads — ``inspect``'s JSON,
``ps``'s rows — is derived from a record here, by pure functions, so both
backends show exactly the same shapes.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from labkit.model.lifecycle import INITIAL, Status, is_running

ZERO_TIME = "0001-01-01T00:00:00Z"


def now_rfc3339(moment: datetime | None = None) -> str:
    """The time as Docker writes it: RFC 3339 in UTC with nanoseconds."""
    m = moment or datetime.now(timezone.utc)
    # Field by field rather than strftime(3), whose first call in a process costs more than all the rest.
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
            f".{m.microsecond:06d}000Z")


def parse_time(text: str) -> datetime:
    """Read a time written by :func:`now_rfc3339` (or Docker's zero time)."""
    if not text or text.startswith("0001-"):
        return datetime(1, 1, 1, tzinfo=timezone.utc)
    base, _, frac = text.rstrip("Z").partition(".")
    micro = int((frac + "000000")[:6]) if frac else 0
    # The fixed layout read field by field: strptime(3)'s Python twin compiles a regular expression
    # in every new process that calls it (a few milliseconds of each labkit command).
    try:
        day, _, clock = base.partition("T")
        year, month, mday = (int(part) for part in day.split("-"))
        hour, minute, second = (int(part) for part in clock.split(":"))
        return datetime(year, month, mday, hour, minute, second, micro, tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"time data {text!r} does not match format '%Y-%m-%dT%H:%M:%S'") from None


@dataclass(frozen=True)
class MountSpec:
    """A volume or bind mount, as ``-v`` asked for it.

    Attributes:
        type: ``"volume"`` (a named volume labkit manages), ``"bind"`` (a host path) or ``"tmpfs"``
            (an empty one in memory, ``--mount type=tmpfs``).
        source: The volume's name, or the host path ("" for a tmpfs).
        destination: Where it appears inside the container.
        readonly: Mounted read-only (``:ro``).
        options: A tmpfs's tmpfs(5) data (``size=…,mode=…``).
        explicit: Asked for with ``--mount`` (``HostConfig.Mounts``), not ``-v`` (``HostConfig.Binds``).
    """

    type: str
    source: str
    destination: str
    readonly: bool = False
    options: str = ""
    explicit: bool = False


@dataclass(frozen=True)
class PortSpec:
    """One ``-p`` binding: host address and port to a container port."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: str = ""


@dataclass(frozen=True)
class EndpointSpec:
    """What ``network connect`` asked of one network a container is on: its ``--alias`` names and ``--ip``.

    Attributes:
        network: The network's name.
        aliases: ``--alias``: further names the container's peers on that network find it by.
        ip: ``--ip``: the address it asked for there ("" : the next free one).
    """

    network: str
    aliases: tuple[str, ...] = ()
    ip: str = ""


@dataclass(frozen=True)
class CreateOptions:
    """What ``docker create`` (and ``run``) is asked, as given: the engine checks it and fills in the image's defaults.

    Each field is the ``docker run`` option named beside it; None or empty means "not given".

    Attributes:
        image: The image reference, as the user typed it.
        command: The command (``CMD``); a string runs under ``/bin/sh -c``; None: the image's.
        name: ``--name``; None: a name picked as Docker picks one.
        entrypoint: ``--entrypoint``; a string is one program, ``""`` none; None: the image's.
        env: ``-e``: a mapping, or ``K=V`` / ``K`` items (``K`` alone is taken from the caller's environment).
        workdir: ``-w``, an absolute path; None: the image's.
        hostname: ``-h``; None: the short id.
        ports: ``-p`` values, ``[hostip:][hostport:]containerport[/proto]``.
        publish_all: ``-P``: every exposed port on a port the host picks.
        volumes: ``-v`` values, ``NAME:/path``, ``/host/path:/path`` or ``/path``, optionally ``:ro``.
        memory: ``--memory``, bytes or text such as ``64m``.
        memory_swap: ``--memory-swap``: memory plus swap, ``-1`` unlimited.
        pids_limit: ``--pids-limit``.
        cpus: ``--cpus``, a number of CPUs (``0.5``).
        restart: ``--restart``: ``no``, ``always``, ``unless-stopped``, ``on-failure[:N]``.
        network: ``--network``: ``bridge`` (None), ``host``, ``none`` or a user network.
        auto_remove: ``--rm``: the container goes once it has exited.
        labels: ``--label`` pairs, over the image's.
        stop_signal: ``--stop-signal``; None: the image's, else SIGTERM.
        stop_timeout: ``--stop-timeout`` in seconds; None: 10.
        init: ``--init``: a tiny init as PID 1 that reaps and forwards signals.
        security_opt: ``--security-opt`` values (``seccomp=unconfined``, ``seccomp=PROFILE.json``).
        tty: ``-t``: PID 1 gets a terminal of the container's own.
        open_stdin: ``-i``: an attached caller may type into it, or without ``-t`` PID 1's stdin stays open.
        console_size: The terminal's first ``(rows, columns)``.
        attach: The streams an attached ``run``/``create`` takes (``stdin``, ``stdout``, ``stderr``).
        user: ``-u``: ``uid[:gid]`` or a name of the image's ``/etc/passwd``.
        read_only: ``--read-only``: ``/`` mounted read-only.
        tmpfs: ``--tmpfs`` values, ``/path[:options]``.
        mounts: ``--mount`` values, ``type=bind|volume|tmpfs,source=…,target=…[,readonly]``.
        add_host: ``--add-host`` values, ``name:ip``.
        dns: ``--dns`` servers.
        cap_add / cap_drop: ``--cap-add`` / ``--cap-drop`` capability names (or ``ALL``).
        privileged: ``--privileged``: every capability, no seccomp filter, no masked paths, the host's devices.
        ulimits: ``--ulimit`` values, ``name=soft[:hard]``.
        platform: ``--platform``: only this machine's is accepted.
    """

    image: str
    command: list[str] | tuple[str, ...] | str | None = None
    name: str | None = None
    entrypoint: list[str] | tuple[str, ...] | str | None = None
    env: Any = None
    workdir: str | None = None
    hostname: str | None = None
    ports: list[str] | tuple[str, ...] | None = None
    publish_all: bool = False
    volumes: list[str] | tuple[str, ...] | None = None
    memory: int | str | None = None
    memory_swap: int | str | None = None
    pids_limit: int | None = None
    cpus: float | None = None
    restart: str | None = None
    network: str | None = None
    auto_remove: bool = False
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    init: bool = False
    security_opt: list[str] | tuple[str, ...] | None = None
    tty: bool = False
    open_stdin: bool = False
    console_size: tuple[int, int] | None = None
    attach: tuple[str, ...] = ()
    user: str | None = None
    read_only: bool = False
    tmpfs: list[str] | tuple[str, ...] | None = None
    mounts: list[str] | tuple[str, ...] | None = None
    add_host: list[str] | tuple[str, ...] | None = None
    dns: list[str] | tuple[str, ...] | None = None
    cap_add: list[str] | tuple[str, ...] | None = None
    cap_drop: list[str] | tuple[str, ...] | None = None
    privileged: bool = False
    ulimits: list[str] | tuple[str, ...] | None = None
    platform: str | None = None


@dataclass(frozen=True)
class ContainerConfig:
    """What ``create`` fixed, and ``start`` reuses every time."""

    id: str
    name: str
    created: str
    image: str  # as the user typed it
    image_id: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    workdir: str
    hostname: str
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    ports: tuple[PortSpec, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    memory: int = 0
    memory_swap: int = 0
    nano_cpus: int = 0
    pids_limit: int | None = None
    restart_policy: str = "no"
    restart_max: int = 0
    auto_remove: bool = False
    network: str = "none"
    network_mode: str = ""  # HostConfig.NetworkMode: "default" when --network was not given (Docker's word)
    stop_signal: str = "SIGTERM"
    stop_timeout: int | None = None
    init: bool = False
    security_opt: tuple[str, ...] = ()  # as parse_security_opts keeps them: a profile file as its JSON
    tty: bool = False  # -t: PID 1's 0-2 are a terminal of the container's, which its supervisor relays
    open_stdin: bool = False  # -i: what an attached caller types reaches that terminal
    console_size: tuple[int, int] = (0, 0)  # the terminal's first (rows, columns); (0, 0): none given
    attach: tuple[str, ...] = ()  # the streams an attached run/create takes: AttachStdin…, StdinOnce with stdin
    user: str = ""  # -u: uid[:gid] or a name of the image's /etc/passwd ("" : the image's, else root)
    readonly_rootfs: bool = False  # --read-only: / is mounted read-only (its mounts keep their own mode)
    tmpfs: dict[str, str] = field(default_factory=dict)  # --tmpfs: destination -> tmpfs options
    extra_hosts: tuple[str, ...] = ()  # --add-host, as name:ip
    dns: tuple[str, ...] = ()  # --dns servers
    cap_add: tuple[str, ...] = ()  # --cap-add, as typed
    cap_drop: tuple[str, ...] = ()  # --cap-drop, as typed
    privileged: bool = False  # every capability, no seccomp filter, no masked paths, the host's devices
    ulimits: tuple[tuple[str, int, int], ...] = ()  # --ulimit: (name, soft, hard)
    endpoints: tuple[EndpointSpec, ...] = ()  # network connect: the networks joined after --network's, in order

    @property
    def networks(self) -> tuple[str, ...]:
        """Every network the container is on, ``network`` first (none for ``none`` and ``host``)."""
        first = () if self.network in ("none", "host") else (self.network,)
        return first + tuple(e.network for e in self.endpoints if e.network not in first)

    def endpoint(self, network: str) -> EndpointSpec | None:
        """What ``network connect`` asked of ``network``; None for the network the container was created on."""
        return next((e for e in self.endpoints if e.network == network), None)

    @property
    def argv(self) -> tuple[str, ...]:
        """The command PID 1 runs: entrypoint followed by cmd."""
        return self.entrypoint + self.cmd


@dataclass(frozen=True)
class ContainerState:
    """What the lifecycle moves; ``inspect``'s ``State``."""

    status: Status = INITIAL
    pid: int = 0
    pid_start_time: int = 0
    shim_pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    restart_count: int = 0
    manually_stopped: bool = False  # stop/kill: the restart policy leaves it alone (as Docker does)
    starts: int = 0  # how many times it was started: `wait condition=next-exit` counts these


@dataclass(frozen=True)
class ContainerRecord:
    """One container: its fixed configuration and its current state."""

    config: ContainerConfig
    state: ContainerState = field(default_factory=ContainerState)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def status(self) -> Status:
        return self.state.status

    def with_state(self, **changes: Any) -> ContainerRecord:
        """A copy with some state fields changed."""
        return replace(self, state=replace(self.state, **changes))

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the state file (what ``dataclasses.asdict`` gives, without its deep copies)."""
        cfg = _fields(self.config)
        cfg["labels"] = dict(self.config.labels)
        cfg["tmpfs"] = dict(self.config.tmpfs)
        cfg["ports"] = [_fields(p) for p in self.config.ports]
        cfg["mounts"] = [_fields(m) for m in self.config.mounts]
        cfg["endpoints"] = [_fields(e) for e in self.config.endpoints]
        return {"config": cfg, "state": _fields(self.state)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRecord:
        """Read what :meth:`to_json` wrote."""
        cfg = dict(data["config"])
        cfg["mounts"] = tuple(MountSpec(**m) for m in cfg.get("mounts", ()))
        cfg["ports"] = tuple(PortSpec(**p) for p in cfg.get("ports", ()))
        cfg["endpoints"] = tuple(EndpointSpec(e["network"], tuple(e.get("aliases", ())), e.get("ip", ""))
                                 for e in cfg.get("endpoints", ()))
        for key in ("entrypoint", "cmd", "env", "exposed_ports", "security_opt", "extra_hosts", "dns", "cap_add",
                    "cap_drop", "attach"):
            cfg[key] = tuple(cfg.get(key, ()))
        cfg["ulimits"] = tuple(tuple(u) for u in cfg.get("ulimits", ()))
        cfg["console_size"] = tuple(cfg.get("console_size", (0, 0)))
        state = dict(data["state"])
        state["status"] = Status(state["status"])
        return cls(ContainerConfig(**cfg), ContainerState(**state))


def _fields(obj: Any) -> dict[str, Any]:
    """One dataclass's fields as a dict, one level deep (its values are plain or handled by the caller)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def command_string(argv: tuple[str, ...]) -> str:
    """``ps``'s COMMAND: the words joined, those with spaces single-quoted."""
    return " ".join(shlex.quote(a) if (" " in a or not a) else a for a in argv)


#: A container's /etc/hosts before its own address line: Docker's (libnetwork's etchosts defaults).
HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
         "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")

#: The PATH a process gets when neither the image nor ``-e`` names one (moby's oci.DefaultPathEnv).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def process_env(env: list[str] | tuple[str, ...], hostname: str, tty: bool = False,
                home: str | None = "/root") -> list[str]:
    """The environment a container's process starts with, beyond ``Config.Env``: Docker's
    ``PATH``, ``HOSTNAME`` and with a terminal ``TERM=xterm`` first, the container's values
    replacing them or following (moby's ``CreateDaemonEnvironment``), then ``HOME`` from the
    user's passwd entry when nothing set it (runc's ``setupUser``). None of these show in inspect.
    ``home`` None leaves ``HOME`` to whoever reads ``-u``'s passwd entry (``pid1.c``'s become).
    """
    out = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}", *(["TERM=xterm"] if tty else [])]
    where = {item.split("=", 1)[0]: i for i, item in enumerate(out)}
    for item in env:
        key = item.split("=", 1)[0]
        if key in where:
            out[where[key]] = item
        else:
            where[key] = len(out)
            out.append(item)
    if "HOME" not in where and home is not None:
        out.append(f"HOME={home}")
    return out


def port_bindings(ports: tuple[PortSpec, ...]) -> dict[str, list[dict[str, str]]]:
    """``HostConfig.PortBindings``: what ``-p`` asked for, keyed ``"3000/tcp"``."""
    out: dict[str, list[dict[str, str]]] = {}
    for p in ports:
        out.setdefault(f"{p.container_port}/{p.protocol}", []).append({"HostIp": p.host_ip, "HostPort": p.host_port})
    return out


def state_json(state: ContainerState) -> dict[str, Any]:
    """``inspect``'s ``State`` block."""
    running = is_running(state.status)
    return {
        "Status": state.status.value,
        "Running": running,
        "Paused": state.status is Status.PAUSED,
        "Restarting": state.status is Status.RESTARTING,
        "OOMKilled": state.oom_killed,
        "Dead": state.status is Status.DEAD,
        "Pid": state.pid if running else 0,
        "ExitCode": state.exit_code,
        "Error": state.error,
        "StartedAt": state.started_at,
        "FinishedAt": state.finished_at,
    }



def _tmpfs_options(m: MountSpec) -> dict[str, Any]:
    """``HostConfig.Mounts``' ``TmpfsOptions`` of a ``--mount type=tmpfs`` with a size or mode (Docker's
    ``SizeBytes`` and the mode bits as a number), none otherwise."""
    opts = dict(part.partition("=")[::2] for part in m.options.split(",") if "=" in part) if m.type == "tmpfs" else {}
    found = {**({"SizeBytes": int(opts["size"])} if opts.get("size", "").isdigit() else {}),
             **({"Mode": int(opts["mode"], 8)} if "mode" in opts else {})}
    return {"TmpfsOptions": found} if found else {}

def inspect_json(
    record: ContainerRecord,
    *,
    storage: dict[str, str],
    log_path: str,
    etc_paths: dict[str, str],
    mounts: list[dict[str, Any]],
    network: dict[str, Any] | None = None,
    driver: str = "overlay2",
) -> dict[str, Any]:
    """The object ``docker inspect`` prints for this container, keys in Docker's order.

    Args:
        record: The container.
        storage: ``GraphDriver.Data``: LowerDir, MergedDir, UpperDir, WorkDir.
        log_path: Where its json-file log lives.
        etc_paths: ResolvConfPath, HostnamePath, HostsPath.
        mounts: The ``Mounts`` list, with host sources resolved.
        network: ``NetworkSettings`` (defaults to an empty one).
        driver: The storage driver's name.
    """
    c, s = record.config, record.state
    argv = c.argv
    bindings = port_bindings(c.ports)
    binds = [f"{m.source}:{m.destination}{':ro' if m.readonly else ''}" for m in c.mounts if not m.explicit] or None
    explicit = [{"Type": m.type, **({"Source": m.source} if m.source else {}), "Target": m.destination,
                 **({"ReadOnly": True} if m.readonly else {}), **_tmpfs_options(m)} for m in c.mounts if m.explicit]
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": argv[0] if argv else "",
        "Args": list(argv[1:]),
        "State": state_json(s),
        "Image": c.image_id,
        "ResolvConfPath": etc_paths.get("ResolvConfPath", ""),
        "HostnamePath": etc_paths.get("HostnamePath", ""),
        "HostsPath": etc_paths.get("HostsPath", ""),
        "LogPath": log_path,
        "Name": "/" + c.name,
        "RestartCount": s.restart_count,
        "Driver": driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        # Every key of Docker's HostConfig, in its order, with the values a container labkit cannot change
        # them for has in Docker (one IPC namespace per container, 64 MB /dev/shm, runc's place taken by
        # labkit's own runtime, a cgroup namespace of its own as on cgroup v2).
        "HostConfig": {
            "Binds": binds,
            "ContainerIDFile": "",
            "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": c.network_mode or c.network,
            "PortBindings": bindings,
            "RestartPolicy": {"Name": c.restart_policy, "MaximumRetryCount": c.restart_max},
            "AutoRemove": c.auto_remove,
            "VolumeDriver": "",
            "VolumesFrom": None,
            "CapAdd": list(c.cap_add) or None,
            "CapDrop": list(c.cap_drop) or None,
            "CgroupnsMode": "private",
            "Dns": list(c.dns),
            "DnsOptions": [],
            "DnsSearch": [],
            "ExtraHosts": list(c.extra_hosts) or None,
            "GroupAdd": None,
            "IpcMode": "private",
            "Cgroup": "",
            "Links": None,
            "OomScoreAdj": 0,
            "PidMode": "",
            "Privileged": c.privileged,
            "PublishAllPorts": False,
            "ReadonlyRootfs": c.readonly_rootfs,
            "SecurityOpt": list(c.security_opt) or None,
            **({"Tmpfs": dict(c.tmpfs)} if c.tmpfs else {}),
            "UTSMode": "",
            "UsernsMode": "",
            "ShmSize": 67108864,
            "Runtime": "runc",
            "ConsoleSize": list(c.console_size),
            "Isolation": "",
            "CpuShares": 0,
            "Memory": c.memory,
            "NanoCpus": c.nano_cpus,
            "CgroupParent": "",
            "BlkioWeight": 0,
            "BlkioWeightDevice": [],
            "BlkioDeviceReadBps": [],
            "BlkioDeviceWriteBps": [],
            "BlkioDeviceReadIOps": [],
            "BlkioDeviceWriteIOps": [],
            "CpuPeriod": 0,
            "CpuQuota": 0,
            "CpuRealtimePeriod": 0,
            "CpuRealtimeRuntime": 0,
            "CpusetCpus": "",
            "CpusetMems": "",
            # No --device or --device-cgroup-rule: Docker's default device rules (labkit.linux.devices).
            "Devices": [],
            "DeviceCgroupRules": None,
            "DeviceRequests": None,
            "MemoryReservation": 0,
            "MemorySwap": c.memory_swap,
            "MemorySwappiness": None,
            "OomKillDisable": False,
            "PidsLimit": c.pids_limit,
            "Ulimits": [{"Name": n, "Hard": hard, "Soft": soft} for n, soft, hard in c.ulimits],
            "CpuCount": 0,
            "CpuPercent": 0,
            "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0,
            **({"Mounts": explicit} if explicit else {}),
            # --privileged takes them away, as Docker's inspect shows (null).
            "MaskedPaths": None if c.privileged else list(MASKED_PATHS),
            "ReadonlyPaths": None if c.privileged else list(READONLY_PATHS),
            **({"Init": True} if c.init else {}),  # Docker leaves Init out unless --init was given
        },
        "GraphDriver": {"Data": storage, "Name": driver},
        "Mounts": mounts,
        "Config": {
            "Hostname": c.hostname,
            "Domainname": "",
            "User": c.user,
            "AttachStdin": "stdin" in c.attach,
            "AttachStdout": "stdout" in c.attach,
            "AttachStderr": "stderr" in c.attach,
            "ExposedPorts": {p: {} for p in c.exposed_ports} or None,
            "Tty": c.tty,
            "OpenStdin": c.open_stdin,
            "StdinOnce": "stdin" in c.attach,
            "Env": list(c.env),
            "Cmd": list(c.cmd) or None,
            "Image": c.image,
            "Volumes": None,
            "WorkingDir": c.workdir,
            "Entrypoint": list(c.entrypoint) or None,
            "OnBuild": None,
            "Labels": dict(c.labels),
            # Docker shows StopSignal only when the image or --stop-signal set one (SIGTERM is the default).
            **({"StopSignal": c.stop_signal} if c.stop_signal != "SIGTERM" else {}),
            **({"StopTimeout": c.stop_timeout} if c.stop_timeout is not None else {}),
        },
        "NetworkSettings": network or empty_network_settings(),
    }


def endpoint_json(network_id: str = "", endpoint_id: str = "", gateway: str = "", ip: str = "",
                  prefixlen: int = 0, mac: str = "", spec: EndpointSpec | None = None) -> dict[str, Any]:
    """One entry of ``NetworkSettings.Networks``, keys in Docker's order (an unplugged one: ids and
    addresses empty). ``spec`` is what ``network connect`` asked (the docker CLI sends an ``IPAMConfig``,
    holding ``--ip``, its ``--alias`` list, even empty, and empty ``DriverOpts``, which the daemon keeps);
    None for ``--network``'s own."""
    ipam = None if spec is None else ({"IPv4Address": spec.ip} if spec.ip else {})
    return {"IPAMConfig": ipam, "Links": None, "Aliases": None if spec is None else list(spec.aliases),
            "NetworkID": network_id, "EndpointID": endpoint_id,
            "Gateway": gateway, "IPAddress": ip, "IPPrefixLen": prefixlen, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": mac,
            "DriverOpts": None if spec is None else {}, "DNSNames": None}


def unplugged_networks(config: ContainerConfig, network_ids: dict[str, str]) -> dict[str, Any]:
    """``NetworkSettings.Networks`` of a container that holds no address: one empty entry per network it is on
    (``network_ids``: name -> id, as known), by name, as Docker's JSON orders a map."""
    return {name: endpoint_json(network_ids.get(name, ""), spec=config.endpoint(name))
            for name in sorted(config.networks)}


def network_settings_json(ports: dict[str, Any] | None = None, networks: dict[str, Any] | None = None,
                          bridge: str = "", sandbox_id: str = "", sandbox_key: str = "",
                          primary: dict[str, Any] | None = None) -> dict[str, Any]:
    """``inspect``'s ``NetworkSettings`` with every key Docker's has, in its order. The top-level
    ``EndpointID``, addresses and MAC repeat the ``primary`` endpoint's (API 1.51 keeps these copies).
    ``Ports`` is ``{}`` unless the container runs: Docker shows a stopped one's exposed ports nowhere."""
    top = primary or endpoint_json()
    return {"Bridge": bridge, "SandboxID": sandbox_id, "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": ports or {}, "SandboxKey": sandbox_key,
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": top["EndpointID"],
            "Gateway": top["Gateway"], "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": top["IPAddress"], "IPPrefixLen": top["IPPrefixLen"], "IPv6Gateway": "",
            "MacAddress": top["MacAddress"], "Networks": networks or {}}


def empty_network_settings() -> dict[str, Any]:
    """``NetworkSettings`` for a container without a bridge address (``--network none``)."""
    return network_settings_json()


def published_ports(ports: dict[str, Any]) -> list[dict[str, Any]]:
    """``ps``'s Ports entries for inspect's ``NetworkSettings.Ports`` (``{"3000/tcp": [{"HostIp", "HostPort"}]}``):
    one per host binding; an exposed port with no binding (None) has none."""
    return [{"IP": b["HostIp"], "PrivatePort": int(key.split("/")[0]), "PublicPort": int(b["HostPort"]),
             "Type": key.split("/")[1]} for key, binds in ports.items() for b in binds or ()]


def ps_item(record: ContainerRecord, image_id: str, status_text: str,
            published: list[dict[str, Any]] | None = None,
            networks: dict[str, Any] | None = None) -> dict[str, Any]:
    """One item of ``GET /containers/json`` (what ``ps`` prints from).

    ``published`` lists the ports really published now (with ``IP`` and
    ``PublicPort``); exposed ports that are not published show as ``3000/tcp``.
    ``networks`` is inspect's ``NetworkSettings.Networks`` (each network's
    ``IPAddress``…), which Docker's list carries too.
    """
    c = record.config
    return {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.image,
        "ImageID": image_id,
        "Command": command_string(c.argv),
        "Created": int(parse_time(c.created).timestamp()),
        "Ports": (published or []) + [
            {"PrivatePort": int(k.split("/")[0]), "Type": k.split("/")[1]} for k in c.exposed_ports
            if not any(f"{p['PrivatePort']}/{p['Type']}" == k for p in (published or []))
        ],
        "Labels": dict(c.labels),
        "State": record.status.value,
        "Status": status_text,
        "HostConfig": {"NetworkMode": c.network_mode or c.network},
        "NetworkSettings": {"Networks": networks or {}},
        "Mounts": [{"Type": m.type, "Source": m.source, "Destination": m.destination} for m in c.mounts],
    }


#: Paths Docker masks in every container (bind /dev/null or an empty read-only tmpfs over them).
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

#: Paths Docker makes read-only in every container.
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
