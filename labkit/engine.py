"""The Engine: labkit's only door.

The CLI, the notebooks and the graders all call these methods. Each verb is one
short sequence — load, guard (the lifecycle table), side effect (the backend),
transition, save — so a reader can follow what ``docker stop`` really does::

    rec = self._get(ref)                          # load (and notice a PID 1 that has exited)
    guard(rec.status, Verb.STOP, rec.id, ref)     # Docker's error if the table refuses
    self.backend.signal(rec, SIGTERM)             # the kernel does the work
    ...wait, then SIGKILL...
    self._save(rec.with_state(status=EXITED...))  # the new state, atomically on disk

Names, ids, images, volumes and the lifecycle are the engine's; namespaces,
mounts, cgroups and processes are the backend's (:mod:`labkit.backend`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import ipaddress
import os
import platform
import posixpath
import re
import secrets
import signal as _signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from labkit import helpers
from labkit.backend import Backend, Meter
from labkit.backends import DEFAULT_ROOT, choose, default_root
from labkit.errors import (
    Conflict,
    IllegalTransition,
    InvalidArgument,
    LabkitError,
    LimitDiscarded,
    NameInUse,
    NetworkReduced,
    NoSuchContainer,
    NoSuchImage,
    NoSuchVolume,
    NotFound,
    StartFailed,
    VolumeInUse,
)
from labkit.model import events, limits
from labkit.model import names as _names
from labkit.model import seccomp as _seccomp
from labkit.model import terminal as _terminal
from labkit.model.container import (
    ZERO_TIME,
    ContainerConfig,
    ContainerRecord,
    MountSpec,
    PortSpec,
    inspect_json,
    now_rfc3339,
    parse_time,
    ps_item,
    published_ports,
    state_json,
)
from labkit.model.events import Event, Step
from labkit.model.lifecycle import Move, Status, Unchanged, Verb, guard, is_running
from labkit.model.overlay import MAX_STACK, LayerContents
from labkit.model.runtime import Exited
from labkit.model.views import NetworkView, ProcessView
from labkit.networks import PREDEFINED, Networks, rootless_refusal
from labkit.store import PRIVATE_DIR, Store, read_json, write_json

if TYPE_CHECKING:
    from labkit.images.store import Image, ImageStore

__all__ = ["DEFAULT_ROOT", "Container", "Engine", "PhasedRun", "connect", "default_root"]
F = TypeVar("F", bound=Callable[..., Any])
MIN_MEMORY = limits.MIN_MEMORY
#: The longest hostname sethostname(2) takes (HOST_NAME_MAX, limits.h).
HOST_NAME_MAX = 64
#: How a warning names each limit: ``--memory``, ``--pids-limit``, ``--cpus``.
_LIMIT_NAMES = {"memory": "memory limit", "pids": "pids limit", "cpu": "CPU quota"}
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


def _checked_mounts(mounts: tuple[MountSpec, ...]) -> tuple[MountSpec, ...]:
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


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Image env first, the user's values replacing same-named keys (as Docker merges them)."""
    merged: dict[str, str] = {}
    for item in [*base, *extra]:
        key = item.split("=", 1)[0]
        merged[key] = item
    return list(merged.values())


def _verb(name: str) -> Callable[[F], F]:
    """Mark an Engine method as a verb: the steps it takes are recorded under ``name``."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def inner(self: Engine, *args: Any, **kw: Any) -> Any:
            with self._doing(name):
                return method(self, *args, **kw)

        return inner  # type: ignore[return-value]

    return wrap


class Container:
    """A handle on one container, like docker-py's: one-line verbs over the engine.

    Attributes:
        id: The full 64-hex id.
        name: The name, without Docker's leading ``/``.
    """

    def __init__(self, engine: Engine, cid: str, name: str) -> None:
        self.engine = engine
        self.id = cid
        self.name = name
        self._final_code: int | None = None  # an attached run's exit code, kept for --rm
        self.warnings: list[str] = []  # limits discarded at create, as Docker's create answer lists them
        self._final_logs: list[tuple[str, str, str]] | None = None

    @property
    def short_id(self) -> str:
        return _names.short_id(self.id)

    @property
    def status(self) -> str:
        """The current ``State.Status`` (read fresh each time)."""
        return self.inspect()["State"]["Status"]

    @property
    def exit_code(self) -> int:
        try:
            return self.inspect()["State"]["ExitCode"]
        except NoSuchContainer:
            if self._final_code is None:
                raise
            return self._final_code

    @property
    def pid(self) -> int:
        """The host PID of the container's PID 1 (0 when not running)."""
        return self.inspect()["State"]["Pid"]

    def inspect(self) -> dict[str, Any]:
        return self.engine.inspect(self.id)

    def start(self) -> None:
        self.engine.start(self.id)

    def stop(self, timeout: float | None = None) -> None:
        self.engine.stop(self.id, timeout=timeout)

    def restart(self, timeout: float | None = None) -> None:
        self.engine.restart(self.id, timeout=timeout)

    def kill(self, signal: str | int = "KILL") -> None:
        self.engine.kill(self.id, signal=signal)

    def pause(self) -> None:
        self.engine.pause(self.id)

    def unpause(self) -> None:
        self.engine.unpause(self.id)

    def remove(self, force: bool = False, volumes: bool = False) -> None:
        self.engine.rm(self.id, force=force, volumes=volumes)

    def wait(self, timeout: float | None = None) -> int:
        return self.engine.wait(self.id, timeout=timeout)

    def diff(self) -> list[dict[str, Any]]:
        return self.engine.diff(self.id)

    def logs(self) -> str:
        """Everything the container wrote to stdout and stderr, as text."""
        try:
            lines = list(self.engine.logs(self.id))
        except NoSuchContainer:
            if self._final_logs is None:
                raise
            lines = self._final_logs
        return "".join(text for _stream, text, _t in lines)

    def exec(self, cmd: list[str] | str, **kw: Any) -> tuple[int, str]:
        """Run a command inside; return ``(exit_code, output)``."""
        return self.engine.exec_output(self.id, cmd, **kw)

    def show_layers(self, path: str | None = None) -> Any:
        """The picture of its layers, marking which one serves ``path`` (:func:`labkit.viz.layers.picture`)."""
        from labkit.viz import layers  # matplotlib is imported when a picture is drawn, not with labkit

        return layers.picture(self.engine, self.id, path=path)

    def show_walls(self) -> Any:
        """The picture of its walls, host view against container view (:func:`labkit.viz.walls.picture`)."""
        from labkit.viz import walls

        return walls.picture(self.engine, self.id)

    def __repr__(self) -> str:
        return f"<Container {self.short_id} {self.name}>"


class PhasedRun:
    """An iterator over the phases of one run: ``(name, steps)`` for create, start and exit."""

    def __init__(self, engine: Engine, image: str, command: Any, kw: dict[str, Any]) -> None:
        self.engine, self.image, self.command, self.kw = engine, image, command, kw
        self.container: Container | None = None
        self.steps: list[Step] = []
        self._phases = iter(("create", "start", "exit"))

    def __iter__(self) -> PhasedRun:
        return self

    def __next__(self) -> tuple[str, list[Step]]:
        phase = next(self._phases)
        with self.engine.tracing() as steps:
            if phase == "create":
                self.container = self.engine.create(self.image, self.command, **self.kw)
            elif phase == "start":
                self.engine.start(self.container.id)  # type: ignore[union-attr]
            else:
                self.engine.wait(self.container.id)  # type: ignore[union-attr]
        self.steps += steps
        return phase, steps


def bridge_idle_seconds() -> float:
    """How long a bridge nobody is plugged into stays up (``LABKIT_BRIDGE_IDLE``, default 5 s).

    Long enough that back-to-back containers share one bridge, as they share Docker's docker0
    (taking a bridge down holds the kernel's RTNL lock through an RCU grace period, which the
    next container would wait for), short enough that an idle lab leaves nothing on the host.
    """
    try:
        return max(0.0, float(os.environ.get("LABKIT_BRIDGE_IDLE", "5")))
    except ValueError:
        return 5.0


class _BridgeJanitor:
    """Takes idle bridges down a while after their last container left, and at the latest at exit.

    One timer per state root, re-armed whenever a container leaves a bridge. A
    process that exits with a timer still armed does the check then (atexit), so
    a ``labkit`` command run in-process does not leave a bridge behind. (A worker
    of the resident engine exits without it: the server sweeps for its workers,
    see :mod:`labkit.daemon.server`.)
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[str, tuple[threading.Timer, Engine]] = {}

    def arm(self, engine: Engine) -> None:
        key = str(engine.store.root)
        timer = threading.Timer(bridge_idle_seconds(), self.fire, args=(key,))
        timer.daemon = True
        with self.lock:
            old = self.pending.pop(key, None)
            self.pending[key] = (timer, engine)
        if old is not None:
            old[0].cancel()
        timer.start()

    def fire(self, key: str) -> None:
        with self.lock:
            item = self.pending.pop(key, None)
        if item is not None:
            _release_quietly(item[1])

    def flush(self) -> None:
        with self.lock:
            items = list(self.pending.values())
            self.pending.clear()
        for timer, engine in items:
            timer.cancel()
            _release_quietly(engine)


def _release_quietly(engine: Engine) -> None:
    try:
        engine.prune_networks()
    except Exception:  # a sweep that fails leaves the bridge for the next one (or `labkit network prune`)
        pass


_bridges = _BridgeJanitor()
atexit.register(_bridges.flush)


class Engine:
    """Docker-shaped verbs over a backend.

    Args:
        root: The state root (default ``$LABKIT_ROOT`` or ``/var/lib/labkit``).
        backend: ``"auto"``, ``"linux"``, ``"rootless"``, ``"sim"`` (chosen by :func:`labkit.backends.choose`),
            or a :class:`~labkit.backend.Backend` object.
    """

    def __init__(self, root: str | Path | None = None, backend: Backend | str = "auto") -> None:
        self.store = Store(root or default_root(backend))
        self.backend: Backend
        self.backend, self.backend_reason = choose(backend, self.store)
        self.backend_name = self.backend.name
        self._images: ImageStore | None = None
        #: Every step the kernel took for this engine's verbs (see :mod:`labkit.model.events`).
        self.trace: list[Step] = []
        self._verb = ""
        self.backend.emit = self._record

    # -- the trace -------------------------------------------------------------------------------
    def _record(self, event: Event, container: str = "") -> int:
        """Append one step to the trace, stamped with the backend's clock; return its place in the trace."""
        kind, what, mechanism, change = event
        seq = len(self.trace)
        self.trace.append(Step(seq, self._verb, container, kind, what, mechanism, change, self.backend.clock()))
        return seq

    @contextlib.contextmanager
    def tracing(self) -> Iterator[list[Step]]:
        """Collect the steps taken inside a ``with`` block::

            with lab.tracing() as steps:
                lab.run("busybox", ["true"])
            for s in steps: print(s)
        """
        start = len(self.trace)
        steps: list[Step] = []
        try:
            yield steps
        finally:
            steps.extend(self.trace[start:])

    @contextlib.contextmanager
    def _doing(self, verb: str) -> Iterator[None]:
        outer = self._verb
        self._verb = outer or verb
        try:
            yield
        finally:
            self._verb = outer

    # -- images ----------------------------------------------------------------------------------
    @property
    def image_store(self) -> ImageStore:
        """The state root's images and layers (:mod:`labkit.images.store`)."""
        if self._images is None:
            from labkit.images.store import ImageStore

            self._images = ImageStore(str(self.store.images_root), self.backend.ownership)
        return self._images

    def _image(self, ref: str) -> Image:
        """An image by reference; the base ``busybox`` image is built on first use, offline."""
        try:
            return self.image_store.get(ref)
        except NoSuchImage:
            from labkit.images.store import parse_ref

            if parse_ref(ref) == ("busybox", "latest"):
                return self.backend.ensure_base(self.image_store)
            from labkit.images.lessons import FRONTEND_TAG

            if parse_ref(ref) == parse_ref(FRONTEND_TAG):
                self.setup(on_step=lambda _line: None)
                return self.image_store.get(ref)
            raise

    def setup(self, on_step: Any = print) -> list[dict[str, Any]]:
        """Build the base image and the lesson's images (offline; idempotent).

        ``busybox:latest`` comes from the host's static busybox; ``frontend-app:v2.1.0``
        from the Labfile shipped with labkit, in three layers: base OS, runtime, app code.
        """
        from labkit.images.lessons import build_lesson_images

        self.backend.ensure_base(self.image_store)
        build_lesson_images(self.image_store, self.backend.build_runner, on_step=on_step)
        return self.images()

    def images(self) -> list[dict[str, Any]]:
        """``GET /images/json``: one item per image."""
        out = []
        for img in self.image_store.list():
            out.append({
                "Id": img.id,
                "ParentId": "",
                "RepoTags": list(img.repo_tags),
                "RepoDigests": [],
                "Created": int(parse_time(img.created).timestamp()),
                "Size": img.size,
                "SharedSize": -1,
                "Labels": img.config.get("Labels") or {},
                "Containers": -1,
            })
        return out

    def inspect_image(self, ref: str) -> dict[str, Any]:
        img = self._image(ref)
        return {
            "Id": img.id,
            "RepoTags": list(img.repo_tags),
            "Created": img.created,
            "Config": img.config,
            "Size": img.size,
            "RootFS": {"Type": "layers", "Layers": [layer.digest for layer in img.layers]},
            "GraphDriver": {"Name": "overlay2", "Data": {"LowerDir": ":".join(img.lowerdirs())}},
        }

    def build(self, path: str, tag: str, file: str | None = None, on_step: Any = print) -> str:
        """Build an image from a Labfile (or Dockerfile) in ``path``; return its id."""
        from labkit.images.build import build

        image = build(self.image_store, path, tag, self.backend.build_runner, file=file, on_step=on_step)
        return image.id

    # -- create / run ----------------------------------------------------------------------------
    @_verb("create")
    def create(
        self,
        image: str,
        command: list[str] | str | None = None,
        *,
        name: str | None = None,
        entrypoint: list[str] | str | None = None,
        env: Any = None,
        workdir: str | None = None,
        hostname: str | None = None,
        ports: list[str] | None = None,
        publish_all: bool = False,
        volumes: list[str] | None = None,
        memory: int | str | None = None,
        memory_swap: int | str | None = None,
        pids_limit: int | None = None,
        cpus: float | None = None,
        restart: str | None = None,
        network: str | None = None,
        auto_remove: bool = False,
        labels: dict[str, str] | None = None,
        stop_signal: str | None = None,
        stop_timeout: int | None = None,
        init: bool = False,
        security_opt: list[str] | None = None,
        tty: bool = False,
        open_stdin: bool = False,
        console_size: tuple[int, int] | None = None,
    ) -> Container:
        """Create a container (``docker create``): its config, name and writable layer; no process yet.

        ``tty`` gives PID 1 a terminal of the container's own (``-t``), whose first ``console_size``
        is ``(rows, columns)``; ``open_stdin`` (``-i``) lets an attached caller type into it
        (:meth:`attach`).

        ``security_opt`` takes Docker's ``--security-opt`` values: ``seccomp=unconfined`` runs without
        a seccomp filter, ``seccomp=PROFILE.json`` (a path, or the JSON itself) under that profile
        instead of Docker's default one (:func:`labkit.model.seccomp.default_profile`).
        """
        if isinstance(command, str):
            command = ["/bin/sh", "-c", command]
        if isinstance(entrypoint, str):
            entrypoint = [entrypoint] if entrypoint else []
        img = self._image(image)
        icfg = img.config
        if len(img.layers) >= MAX_STACK:  # the container's init layer goes on top of them
            raise InvalidArgument(
                f"image {image} has {len(img.layers)} layers; overlayfs stacks at most {MAX_STACK} lower layers "
                f"(OVL_MAX_STACK), one of them the container's own", "Rebuild it with fewer steps that make layers")
        mem = _size(memory)
        swap = -1 if memory_swap in (-1, "-1") else _size(memory_swap)
        limits.check_memory(mem, swap)
        if mem and not swap:
            swap = min(2 * mem, limits.MAX_MEMORY)  # Docker's default: as much swap as memory
        nano_cpus = limits.check_cpus(float(cpus), os.cpu_count() or 1) if cpus is not None else 0
        if pids_limit:
            limits.check_pids(pids_limit)
        if workdir and not workdir.startswith("/"):
            raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path",
                                  "Give a path that starts with /, e.g. -w /app")
        if hostname and len(hostname) > HOST_NAME_MAX:
            raise InvalidArgument(f"invalid hostname {hostname!r}: longer than {HOST_NAME_MAX} characters",
                                  "The kernel's sethostname(2) takes at most 64; pick a shorter one")
        for key in labels or {}:
            if not key.strip():
                raise InvalidArgument(f"invalid label '{key}={labels[key]}': empty name",  # type: ignore[index]
                                      "Write labels as KEY=VALUE")
        port_specs = tuple(parse_port(p) for p in (ports or []))
        exposed = list(icfg.get("ExposedPorts") or {})
        for p in port_specs:
            key = f"{p.container_port}/{p.protocol}"
            if key not in exposed:
                exposed.append(key)
        if publish_all:
            have = {f"{p.container_port}/{p.protocol}" for p in port_specs}
            port_specs += tuple(
                PortSpec(int(k.split("/")[0]), k.split("/")[1]) for k in exposed if k not in have
            )
        mounts = _checked_mounts(tuple(self._mount_spec(v) for v in (volumes or [])))
        if network == "":
            raise InvalidArgument("no name set for network", "Give --network a name: bridge, host, none or yours")
        network_name = network or "bridge"
        if network_name not in ("none", "host"):
            network_name = self.networks.get(network_name)["Name"]  # Docker: "network X not found"
        if self.backend.rootless and network_name not in PREDEFINED:  # a record made as root, or by an older labkit
            raise rootless_refusal(f"network {network_name}")
        policy, retries = restart_policy(restart or "no")
        if stop_signal:
            signal_number(stop_signal)
        if auto_remove and policy != "no":
            raise InvalidArgument("conflicting options: cannot specify both --restart and --rm",
                                  "Use one or the other: --rm removes the container when it exits, "
                                  "--restart starts it again")
        security = _seccomp.parse_security_opts(security_opt or (), _read_text)
        _seccomp.check_security_opts(security, platform.machine())  # refused now, not when it starts
        ep = tuple(entrypoint if entrypoint is not None else (icfg.get("Entrypoint") or ()))
        cmd = tuple(command if command else (() if entrypoint is not None and not command else icfg.get("Cmd") or ()))
        if not ep and not cmd:
            raise InvalidArgument("No command specified", "Give a command after the image name, e.g. sh -c 'echo hi'")
        with self.store.locked():
            taken = self.store.names()
            cid = _names.new_id()
            if name:
                name = _names.check_name(name)
                if name in taken:
                    raise NameInUse(name, taken[name])
            else:
                name = _names.pick_name(taken, cid)
            for m in mounts:
                if m.type == "volume" and not self.store.volume_dir(m.source).exists():
                    self._volume_make(m.source)
                elif m.type == "bind" and not os.path.exists(m.source):
                    os.makedirs(m.source, exist_ok=True)  # Docker creates a missing bind source as a directory
            config = ContainerConfig(
                id=cid,
                name=name,
                created=now_rfc3339(),
                image=image,
                image_id=img.id,
                entrypoint=ep,
                cmd=cmd,
                env=tuple(merge_env(list(icfg.get("Env") or []), parse_env(env))),
                workdir=workdir or icfg.get("WorkingDir") or "/",
                hostname=hostname or _names.short_id(cid),
                labels={**(icfg.get("Labels") or {}), **(labels or {})},
                exposed_ports=tuple(exposed),
                ports=port_specs,
                mounts=mounts,
                memory=mem,
                memory_swap=swap,
                nano_cpus=nano_cpus,
                pids_limit=pids_limit if pids_limit else None,
                restart_policy=policy,
                restart_max=retries,
                auto_remove=auto_remove,
                network=network_name,
                stop_signal=stop_signal or icfg.get("StopSignal") or "SIGTERM",
                stop_timeout=stop_timeout,
                init=init,
                security_opt=security,
                tty=tty,
                open_stdin=open_stdin,
                console_size=tuple(console_size or (0, 0)),  # type: ignore[arg-type]
            )
            record = ContainerRecord(config)
            self.store.set_name(name, cid, taken)  # claimed first: see Store.names
            self.backend.create(record, img)
            self.store.create(record)
        container = Container(self, cid, name)
        unenforced = self.backend.unenforced_limits() if (mem or pids_limit or cpus) else {}
        for kind, value in (("memory", mem), ("pids", pids_limit), ("cpu", cpus)):
            if value and kind in unenforced:
                text = f"{_LIMIT_NAMES[kind]} discarded: {unenforced[kind]}"
                container.warnings.append(text)
                warnings.warn(text, LimitDiscarded, stacklevel=2)
        reduced = self.backend.reduced_network(network_name)
        if reduced:
            container.warnings.append(reduced)
            warnings.warn(reduced, NetworkReduced, stacklevel=2)
        return container

    @property
    def enforced_limits(self) -> frozenset[str]:
        """Which limits hold for real here: some of ``memory``, ``pids`` and ``cpu``.

        As root on Linux, those whose cgroup controller the host offers; rootless, those of
        the cgroup subtree delegated to the user (none without one); on the simulator memory
        and pids, which it models, but not CPU time. A container given a limit outside this
        set runs without it, with a :class:`~labkit.errors.LimitDiscarded` warning (Docker's
        "Limitation discarded"), and ``inspect`` still shows what was asked.
        """
        return frozenset(_LIMIT_NAMES) - set(self.backend.unenforced_limits())

    def simulator(self) -> Engine:
        """The simulator, in a world of its own beside this engine's (``ROOT/sim``); this engine if it is one.

        For what this backend cannot show here: rootless without a delegated cgroup nothing
        enforces limits, and the simulator models the OOM kill and the fork that fails.
        """
        if self.backend.simulated:
            return self
        return Engine(root=self.store.root / "sim", backend="sim")

    @_verb("run")
    def run(self, image: str, command: list[str] | str | None = None, *, detach: bool = False, **kw: Any) -> Container:
        """``docker run``: create, then start; without ``detach`` wait for the exit.

        Returns the container. After an attached run, ``container.exit_code`` and
        ``container.logs()`` tell what happened (unless ``auto_remove`` removed it).
        """
        c = self.create(image, command, **kw)
        try:
            self.start(c.id)
        except BaseException:
            if kw.get("auto_remove"):  # Docker removes a --rm container whose start failed, whatever failed
                with contextlib.suppress(LabkitError, OSError):
                    self.rm(c.id, force=True)
            raise
        if not detach:
            if kw.get("auto_remove"):
                # Read the record without refreshing it: a refresh would remove it (--rm) before we kept
                # what it said and how it ended.
                rec = self.store.load(c.id)
                if rec is not None:
                    self.backend.wait(rec, None)
                    c._final_logs = list(self.backend.logs(rec))
                    c._final_code = self._reload(rec).state.exit_code
                return c
            c._final_code = self.wait(c.id)
        return c

    def run_phases(self, image: str, command: list[str] | str | None = None, **kw: Any) -> PhasedRun:
        """``run``, one phase at a time, for walking a real run as it happens.

        Each ``next()`` does one phase — create (the writable layer), start (network,
        overlay, limits, namespaces, pivot_root, exec), exit (PID 1 ends; what it left
        in its writable layer) — and returns that phase's steps; a notebook can show
        them before going on::

            phases = lab.run_phases("busybox", ["sh", "-c", "rm /etc/group"])
            for name, steps in phases:
                show(name, steps)
            phases.container.diff()
        """
        return PhasedRun(self, image, command, kw)

    # -- lifecycle verbs -------------------------------------------------------------------------
    @_verb("start")
    def start(self, ref: str) -> None:
        """``docker start``: run PID 1 again on the same writable layer (files survive)."""
        rec = self._get(ref)
        if isinstance(guard(rec.status, Verb.START, rec.id, ref), Unchanged):
            return
        self._launch(rec.with_state(manually_stopped=False))

    def _launch(self, rec: ContainerRecord, verb: Verb = Verb.START,
                console: socket.socket | None = None) -> ContainerRecord:
        """Run PID 1 of ``rec`` as ``verb`` does (``start``, or ``restart`` from a stop or a restart policy)."""
        with self.store.intent(rec.id, "start"):  # a start killed half-way is undone by the next reader
            return self._launch_held(rec, verb, console)

    def _launch_held(self, rec: ContainerRecord, verb: Verb, console: socket.socket | None) -> ContainerRecord:
        img = self._image_of(rec)
        running = self._moved(rec, verb)  # the table's status once PID 1 runs, refused before anything is made
        try:
            launched = self.backend.start(rec, img, console) if console is not None else self.backend.start(rec, img)
        except StartFailed as err:
            # PID 1 never ran: the table's exit leaves a container whose first start failed created, else exited.
            first = rec.state.started_at == ZERO_TIME
            self._save(self._moved(
                rec, Verb.EXIT,
                exit_code=err.exit_code,
                error=err.message,
                pid=0,
                finished_at=rec.state.finished_at if first else now_rfc3339(),
            ))
            raise
        rec = running.with_state(
            pid=launched.pid,
            pid_start_time=launched.pid_start_time,
            shim_pid=launched.shim_pid,
            exit_code=0,
            error="",
            oom_killed=False,
            started_at=launched.started_at,
            starts=rec.state.starts + 1,
        )
        if not self._save(rec):  # removed while it was starting (rm -f of a restarting container)
            self.backend.signal(rec, _signal.SIGKILL)
            self.backend.wait(rec, 10)
            self.backend.remove(rec)
            raise NoSuchContainer(rec.id)
        return rec

    @_verb("attach")
    def attach(self, ref: str, *, stdin: int | None = None, stdout: int = 1, stderr: int = 2,
               detach_keys: str | None = None, start: bool = False) -> int | None:
        """``docker attach``: the caller's descriptors to the running container's PID 1.

        With a terminal (``create(tty=True)``), what PID 1's terminal shows goes to ``stdout`` and
        what is typed on ``stdin`` (None: nothing; ``-i`` containers only) goes to it, the caller's
        terminal in raw mode meanwhile; typing the detach keys (``ctrl-p,ctrl-q``, or
        ``detach_keys``) lets go and leaves the container running. Its terminal belongs to its
        supervisor: the caller's descriptors never enter the container. Without a terminal, its
        output from now on goes to ``stdout`` and ``stderr`` until it ends.

        ``start``: start the container first (``run -it``, ``start -ai``), attached before PID 1
        runs, so that nothing it writes is missed.

        Returns:
            The container's exit code once it has ended; None if the caller detached.
        """
        keys = _terminal.detach_keys(detach_keys)
        rec = self._get(ref)
        if start and not isinstance(guard(rec.status, Verb.START, rec.id, ref), Unchanged):
            rec = rec.with_state(manually_stopped=False)
            if rec.config.tty:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    rec = self._launch(rec, Verb.START, console=theirs)
                except BaseException:
                    ours.close()
                    raise
                finally:
                    theirs.close()
                detached = self.backend.attach(rec, stdin if rec.config.open_stdin else None, stdout, keys, ours)
                return None if detached else self._final_code(rec)
            seen = sum(1 for _ in self.backend.logs(rec))
            rec = self._launch(rec)
        else:
            if rec.status is Status.PAUSED:
                raise IllegalTransition("You cannot attach to a paused container, unpause it first",
                                        rec.status.value, "attach", hint=f"Unpause it first: labkit unpause {ref}")
            if not is_running(rec.status):
                raise IllegalTransition("You cannot attach to a stopped container, start it first",
                                        rec.status.value, "attach",
                                        hint=f"Start it first, or see what it wrote: labkit logs {ref}")
            if rec.config.tty:
                detached = self.backend.attach(rec, stdin if rec.config.open_stdin else None, stdout, keys)
                return None if detached else self._final_code(rec)
            seen = sum(1 for _ in self.backend.logs(rec))
        entries = self.logs(rec.id, follow=True)
        for _ in range(seen):  # what it wrote before is not replayed
            next(entries, None)
        for stream, text, _ in entries:
            os.write(stderr if stream == "stderr" else stdout, text.encode() if isinstance(text, str) else text)
        return self.wait(rec.id)

    def _final_code(self, rec: ContainerRecord) -> int:
        """The exit code of a container whose PID 1 has ended, read before a ``--rm`` removes it."""
        self.backend.wait(rec, None)
        return self._reload(rec).state.exit_code

    @_verb("stop")
    def stop(self, ref: str, timeout: float | None = None, signal: str | int | None = None) -> None:
        """``docker stop``: the stop signal (SIGTERM), ``timeout`` seconds (10), then SIGKILL.

        PID 1 ignores signals it has no handler for, so a plain ``sleep`` takes
        the full timeout and ends with 137; one that handles SIGTERM ends with 143 (or its own code).
        """
        rec = self._get(ref)
        sig = signal_number(signal or rec.config.stop_signal)
        if isinstance(guard(rec.status, Verb.STOP, rec.id, ref), Unchanged):
            return
        rec = rec.with_state(manually_stopped=True)  # the restart policy must not bring it back
        self._save(rec)
        if rec.status is Status.RESTARTING:  # between two runs: nothing to signal
            self._save(self._moved(rec, Verb.STOP))
            return
        if timeout is None:
            timeout = rec.config.stop_timeout if rec.config.stop_timeout is not None else 10
        self.backend.signal(rec, sig)
        if rec.status is Status.PAUSED:
            self.backend.unpause(rec)  # Docker resumes a paused container right after the signal
        if not self.backend.wait(rec, None if timeout < 0 else timeout):
            self.backend.signal(rec, _signal.SIGKILL)
            self.backend.wait(rec, None)
        self._reload(rec)

    @_verb("kill")
    def kill(self, ref: str, signal: str | int = "KILL") -> None:
        """``docker kill``: deliver a signal (SIGKILL by default, then wait for the exit)."""
        rec = self._get(ref)
        sig = signal_number(signal)
        guard(rec.status, Verb.KILL, rec.id, ref)
        rec = rec.with_state(manually_stopped=True)
        self._save(rec)
        self.backend.signal(rec, sig)
        if sig == _signal.SIGKILL:
            if rec.status is Status.PAUSED:
                self.backend.unpause(rec)  # a frozen task dies only once thawed (v1 freezer)
            self.backend.wait(rec, 10)
        self._reload(rec)

    @_verb("restart")
    def restart(self, ref: str, timeout: float | None = None) -> None:
        """``docker restart``: stop (if running), then start."""
        rec = self._get(ref)
        guard(rec.status, Verb.RESTART, rec.id, ref)
        if is_running(rec.status):
            self.stop(rec.id, timeout=timeout)
        self._launch(self._get(rec.id).with_state(manually_stopped=False), Verb.RESTART)

    @_verb("pause")
    def pause(self, ref: str) -> None:
        """``docker pause``: freeze every process through the cgroup freezer."""
        rec = self._get(ref)
        guard(rec.status, Verb.PAUSE, rec.id, ref)
        with self.store.intent(rec.id, "pause"):  # killed between the freeze and the save: see _recover
            self.backend.pause(rec)
            self._save(self._moved(rec, Verb.PAUSE))

    @_verb("unpause")
    def unpause(self, ref: str) -> None:
        """``docker unpause``: thaw them."""
        rec = self._get(ref)
        guard(rec.status, Verb.UNPAUSE, rec.id, ref)
        with self.store.intent(rec.id, "unpause"):
            self.backend.unpause(rec)
            self._save(self._moved(rec, Verb.UNPAUSE))

    @_verb("rm")
    def rm(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """``docker rm``: delete the container and its writable layer (``force`` kills it first)."""
        rec = self._get(ref)
        guard(rec.status, Verb.RM_FORCE if force else Verb.RM, rec.id, ref)
        self._remove(rec, volumes)

    def _remove(self, rec: ContainerRecord, volumes: bool = False) -> None:
        with self.store.intent(rec.id, "rm"):  # a removal killed half-way is finished by the next reader
            if is_running(rec.status) or rec.status is Status.REMOVING:
                self._save(rec.with_state(status=Status.REMOVING))
                try:
                    self.backend.signal(rec, _signal.SIGKILL)
                    if rec.status is Status.PAUSED:
                        self.backend.unpause(rec)
                except ProcessLookupError:
                    pass
                self.backend.wait(rec, 10)
                ended = self.backend.observe(rec)
                if ended is not None and rec.status is not Status.REMOVING:
                    self._record_end(rec, ended)
            else:
                self._save(rec.with_state(status=Status.REMOVING))
            self.backend.remove(rec)
            with self.store.locked():
                self.store.delete(rec.id)  # its name is free from now on (Store.names)
        self._left_bridge(rec)
        if volumes:
            for m in rec.config.mounts:
                if m.type == "volume" and _anonymous(m.source):
                    self._volume_delete(m.source)

    @_verb("wait")
    def wait(self, ref: str, timeout: float | None = None) -> int:
        """``docker wait``: block until PID 1 ends; return its exit code."""
        rec = self._get(ref)
        if is_running(rec.status):
            self.backend.wait(rec, timeout)
            rec = self._reload(rec)
        return rec.state.exit_code

    # -- looking ---------------------------------------------------------------------------------
    def ps(self, all: bool = False) -> list[dict[str, Any]]:
        """``GET /containers/json``: running containers (``all``: every one), newest first."""
        from labkit.model.humanize import status_string

        now = datetime.now(timezone.utc)
        items = []
        for rec in self._records():
            if not all and not is_running(rec.status):
                continue
            settings = self._network_settings(rec) or {}
            items.append(ps_item(rec, rec.config.image_id, status_string(state_json(rec.state), now),
                                 published_ports(settings.get("Ports") or {}) if is_running(rec.status) else None,
                                 settings.get("Networks")))
        items.sort(key=lambda i: i["Created"], reverse=True)
        return items

    def inspect(self, ref: str) -> dict[str, Any]:
        """``docker inspect``: the container as Docker's JSON, with real host paths."""
        rec = self._get(ref)
        img = self._image_of(rec)
        cdir = self.store.container_dir(rec.id)
        return inspect_json(
            rec,
            storage=self.backend.storage(rec, img),
            log_path=str(cdir / "json.log"),
            etc_paths={
                "ResolvConfPath": str(cdir / "resolv.conf"),
                "HostnamePath": str(cdir / "hostname"),
                "HostsPath": str(cdir / "hosts"),
            },
            mounts=[self._mount_json(m) for m in rec.config.mounts],
            network=self._network_settings(rec),
        )

    def _network_settings(self, rec: ContainerRecord) -> dict[str, Any]:
        return self.backend.network_settings(rec)

    def diff(self, ref: str) -> list[dict[str, Any]]:
        """``docker diff``: what the container changed, read from its writable layer."""
        rec = self._get(ref)
        self._observe_layer(rec)
        return [{"Path": path, "Kind": KIND[kind]} for kind, path in self.backend.changes(rec, self._image_of(rec))]

    def logs(self, ref: str, follow: bool = False, tail: int | None = None,
             timestamps: bool = False) -> Iterator[tuple[str, str, str]]:
        """``docker logs``: (stream, text, time) for each line; ``follow`` keeps reading until PID 1 ends."""
        rec = self._get(ref)
        lines = list(self.backend.logs(rec))
        seen = len(lines)
        if tail is not None and tail >= 0:
            lines = lines[len(lines) - tail:] if tail else []
        yield from lines
        if not follow:
            return
        while True:
            running = is_running(self._get(rec.id).status)
            fresh = list(self.backend.logs(rec))
            yield from fresh[seen:]
            seen = len(fresh)
            if not running:
                return
            self.backend.wait(rec, 0.1)

    @_verb("exec")
    def exec(self, ref: str, cmd: list[str] | str, *, env: Any = None, workdir: str | None = None,
             detach: bool = False, stdout: IO[bytes] | int | None = None, stderr: IO[bytes] | int | None = None,
             stdin: IO[bytes] | int | None = None, tty: bool = False,
             detach_keys: str | None = None) -> int | None:
        """``docker exec``: one more process inside the running container; return its exit code.

        Its output goes to ``stdout`` and ``stderr`` and its input comes from ``stdin`` (``exec -i``; None:
        none); on the real backend each through a pipe labkit relays, so the container never gets the
        caller's descriptors (:mod:`labkit.linux.stdio`). With ``tty`` (``exec -t``) the process gets
        a terminal of the container's instead, relayed as :meth:`attach` relays PID 1's; None is
        returned if the caller typed the detach keys (the process goes on).
        """
        rec = self._get(ref)
        guard(rec.status, Verb.EXEC, rec.id, ref)
        keys = _terminal.detach_keys(detach_keys)
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        merged = merge_env(list(rec.config.env), parse_env(env))
        workdir = workdir or rec.config.workdir
        if tty:
            code = self.backend.exec(rec, argv, merged, workdir, stdout, stderr, stdin, tty=True, detach_keys=keys)
        else:
            code = self.backend.exec(rec, argv, merged, workdir, stdout, stderr, stdin)
        if code is not None:
            self._record(events.exec_in(argv, rec.state.pid, code), rec.id)
        self._observe_layer(rec)
        return code

    def exec_output(self, ref: str, cmd: list[str] | str, **kw: Any) -> tuple[int, str]:
        """Like :meth:`exec`, returning ``(exit_code, stdout+stderr as text)``."""
        r, w = os.pipe()
        chunks: list[bytes] = []

        def drain() -> None:
            while True:
                data = os.read(r, 65536)
                if not data:
                    return
                chunks.append(data)

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        try:
            code = self.exec(ref, cmd, stdout=w, stderr=w, **kw)
        finally:
            os.close(w)
            t.join()
            os.close(r)
        return cast(int, code), b"".join(chunks).decode(errors="replace")  # without a terminal: always a code

    def process_view(self, ref: str) -> ProcessView:
        """What a running container's PID 1 sees, and what the host sees of it (the walls picture draws this).

        The backend answers from its kernel: the linux backend reads ``/proc`` and the
        cgroup files and asks the container itself; the simulator reads its model.

        Raises:
            IllegalTransition: The container is not running, or paused (as for ``exec``).
        """
        return self.backend.process_view(self._seen_running(ref))

    def network_view(self, ref: str) -> NetworkView:
        """The interfaces of the host's network namespace and of a running container's (the network picture).

        Raises:
            IllegalTransition: The container is not running, or paused (as for ``exec``).
        """
        return self.backend.network_view(self._seen_running(ref))

    def _seen_running(self, ref: str) -> ContainerRecord:
        rec = self._get(ref)
        guard(rec.status, Verb.EXEC, rec.id, ref)  # the linux backend asks the container itself, as exec would
        return rec

    def container(self, ref: str) -> Container:
        """A handle on an existing container."""
        rec = self._get(ref)
        return Container(self, rec.id, rec.name)

    # -- what the pictures ask ---------------------------------------------------------------------
    def layer_contents(self, ref: str, path: str | None = None) -> LayerContents:
        """What the container's writable layer holds, what the image layers hold at the same paths, and
        which layer serves ``path`` (the layer picture draws it; read from disk or from the simulator's model)."""
        rec = self._get(ref)
        return self.backend.layer_contents(rec, self._image_of(rec), path)

    def files(self, ref: str, under: str = "/") -> list[str]:
        """Regular files the running container sees below ``under``, sorted (``/proc`` and ``/sys`` left out).

        Raises:
            InvalidArgument: They could not be listed.
        """
        rec = self._get(ref)
        guard(rec.status, Verb.EXEC, rec.id, ref)
        try:
            return self.backend.files(rec, under)
        except OSError as err:
            raise InvalidArgument(f"could not list the files under {under} ({err.strerror or err})",
                                  "Give an existing directory, such as /app or /etc") from err

    def meter(self, ref: str) -> Meter | None:
        """The running container's cgroup counters and the clock to read them against (``None`` when not running).

        On the real backend the clock is the host's; on the simulator it is simulated
        time, and :meth:`~labkit.backend.Meter.pause` lets the container run meanwhile.
        """
        rec = self._get(ref)
        return self.backend.meter(rec) if is_running(rec.status) else None

    # -- networks --------------------------------------------------------------------------------
    @property
    def networks(self) -> Networks:
        """The state root's networks (``bridge``, ``host``, ``none`` and user networks)."""
        return Networks(self.store)

    @_verb("network-create")
    def network_create(self, name: str, subnet: str | None = None) -> dict[str, Any]:
        """``docker network create``: a bridge network whose containers find each other by name.

        Raises:
            HostUnsupported: Rootless: containers there cannot share a network
                (:func:`~labkit.networks.rootless_refusal`); nothing is made.
        """
        if self.backend.rootless:
            raise rootless_refusal(f"network create {name}")
        rec = self.networks.create(name, subnet)
        self._record(events.network_create(name, rec["Options"]["com.docker.network.bridge.name"],
                                           rec["IPAM"]["Config"][0]["Subnet"]))
        return rec

    def network_ls(self) -> list[dict[str, Any]]:
        return self.networks.ls()

    def inspect_network(self, ref: str) -> dict[str, Any]:
        rec = dict(self.networks.get(ref))
        rec["Containers"] = {
            r.id: {"Name": r.name, **{k: v for k, v in
                                      (self._network_settings(r) or {}).get("Networks", {}).get(rec["Name"], {}).items()
                                      if k in ("IPAddress", "MacAddress")}}
            for r in self._records() if r.config.network == rec["Name"] and is_running(r.status)
        }
        return rec

    @_verb("network-rm")
    def network_rm(self, ref: str) -> str:
        """``docker network rm``: refused while any container (even a stopped one) is on it."""
        rec = self.networks.get(ref)
        users = [r.id for r in self._records() if r.config.network == rec["Name"]]
        name = self.networks.rm(ref, users)
        self.backend.drop_bridge(rec)
        self._record(events.network_remove(name, rec["Options"]["com.docker.network.bridge.name"]))
        return name

    def prune_networks(self) -> None:
        """``docker network prune``, as far as the host is concerned: take down the bridge of every
        network no container is plugged into, now. (An engine does this by itself a few seconds
        after a bridge's last container left, see :func:`bridge_idle_seconds`.) A network's record
        stays; its bridge comes back with the next container.

        Under the store's lock: a container starting meanwhile pins its network namespace
        under the same lock before it plugs into the bridge, so it is seen, and keeps it.
        """
        if not self.backend.host_bridges:
            return
        # Listed before the lock is taken: listing may make the default network's record, under it.
        bridges = [rec for rec in self.networks.ls() if rec["Driver"] == "bridge"]
        with self.store.locked():
            busy = {r.config.network for r in self._records() if is_running(r.status)}
            for rec in bridges:
                if rec["Name"] not in busy:
                    self.backend.drop_bridge(rec)

    def _left_bridge(self, rec: ContainerRecord) -> None:
        """A container left its network (it ended, or went): take the bridge down once it has been idle a while."""
        if rec.config.network not in ("none", "host") and self.backend.host_bridges:
            _bridges.arm(self)

    # -- services ---------------------------------------------------------------------------------
    def service_create(self, name: str, image: str, replicas: int = 1, ports: list[str] | None = None,
                       command: list[str] | str | None = None, env: Any = None,
                       network: str | None = None) -> dict[str, Any]:
        """``labkit service create``: ``replicas`` copies of a container behind one load-balanced port.

        A controller process keeps that many running (a replica that dies is replaced within
        a second) and hands each connection on the published port to the next replica.
        """
        problem = self.backend.service_problem()
        if problem is not None:
            raise problem
        _names.check_name(name)
        if replicas < 0:
            raise InvalidArgument(f"invalid replicas value {replicas}", "Use 0 or more")
        specs = [parse_port(p) for p in (ports or [])]
        if len(specs) > 1:
            raise InvalidArgument("a service publishes one port", "Give one -p HOSTPORT:CONTAINERPORT")
        self._image(image)
        sdir = self.store.root / "services"
        sdir.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        if (sdir / f"{name}.json").exists():
            raise Conflict(f"service {name} already exists", "Remove it first with 'labkit service rm'")
        if any((r.config.labels or {}).get(_names.SERVICE_LABEL) == name for r in self._records()):
            raise Conflict(f"containers of an old service {name} still exist", "Remove them with 'labkit rm -f'")
        listeners = [self.backend.listen(p.host_ip or "127.0.0.1", int(p.host_port or 0)) for p in specs]
        try:
            rec = {
                "Name": name, "Image": image, "Replicas": replicas, "Created": now_rfc3339(),
                "Command": ["/bin/sh", "-c", command] if isinstance(command, str) else command,
                "Env": parse_env(env), "Network": network,
                "ContainerPort": specs[0].container_port if specs else 0,
                "Ports": [{"HostIp": s.getsockname()[0], "HostPort": s.getsockname()[1],
                           "ContainerPort": p.container_port} for s, p in zip(listeners, specs, strict=True)],
            }
            write_json(sdir / f"{name}.json", rec)
            pid = helpers.spawn_detached(helpers.python("labkit.service", str(self.store.root), name,
                                                        self.backend_name, *[str(s.fileno()) for s in listeners]),
                                         [s.fileno() for s in listeners])
            rec["ControllerPid"] = pid
            write_json(sdir / f"{name}.json", rec)
        finally:
            for s in listeners:
                s.close()
        return rec

    def service_ls(self) -> list[dict[str, Any]]:
        """Every service with how many replicas run now out of how many are asked for."""

        sdir = self.store.root / "services"
        out = []
        running: dict[str, int] = {}
        for r in self._records():
            svc = (r.config.labels or {}).get(_names.SERVICE_LABEL)
            if svc and r.status is Status.RUNNING:
                running[svc] = running.get(svc, 0) + 1
        for entry in sorted(sdir.glob("*.json")) if sdir.exists() else []:
            rec = read_json(entry)
            if rec:
                rec["Running"] = running.get(rec["Name"], 0)
                out.append(rec)
        return out

    def service_scale(self, name: str, replicas: int) -> dict[str, Any]:
        """Ask for a new number of replicas; the controller starts or removes them."""
        path = self.store.root / "services" / f"{name}.json"
        rec = read_json(path)
        if rec is None:
            raise NotFound(f"service {name} not found", "Run 'labkit service ls'")
        if replicas < 0:
            raise InvalidArgument(f"invalid replicas value {replicas}", "Use 0 or more")
        rec["Replicas"] = replicas
        write_json(path, rec)
        return rec

    def service_rm(self, name: str) -> None:
        """Stop the controller (it removes its replicas), then forget the service."""

        path = self.store.root / "services" / f"{name}.json"
        rec = read_json(path)
        if rec is None:
            raise NotFound(f"service {name} not found", "Run 'labkit service ls'")
        pid = rec.get("ControllerPid", 0)
        path.unlink()
        if pid and _is_controller(pid):
            os.kill(pid, _signal.SIGTERM)
            deadline = time.monotonic() + 20
            while _is_controller(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        for r in self._records():
            if (r.config.labels or {}).get(_names.SERVICE_LABEL) == name:
                self.rm(r.id, force=True)
        (self.store.root / "services" / f"{name}.log").unlink(missing_ok=True)

    # -- volumes ---------------------------------------------------------------------------------
    @_verb("volume-create")
    def volume_create(self, name: str | None = None) -> dict[str, Any]:
        """``docker volume create``: a named directory that outlives containers."""
        name = name or secrets.token_hex(32)
        if not VOLUME_RE.match(name):
            raise InvalidArgument(
                f'create {name}: "{name}" includes invalid characters for a local volume name, '
                "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
                "Pick a name made of letters, digits, '_', '.' and '-'",
            )
        with self.store.locked():
            return self._volume_make(name)

    def _volume_make(self, name: str) -> dict[str, Any]:
        vdir = self.store.volume_dir(name)
        meta = read_json(vdir / "meta.json")
        if meta:
            return meta
        vdir.mkdir(mode=PRIVATE_DIR, exist_ok=True)  # its meta.json and the way to its data: the owner's alone
        (vdir / "_data").mkdir(exist_ok=True)  # what the container sees at the mount point: 0755, as Docker's
        meta = {
            "CreatedAt": now_rfc3339(),
            "Driver": "local",
            "Labels": None,
            "Mountpoint": str(vdir / "_data"),
            "Name": name,
            "Options": None,
            "Scope": "local",
        }
        write_json(vdir / "meta.json", meta)
        self._record(events.volume_create(name, meta["Mountpoint"]))
        return meta

    def volume_ls(self) -> list[dict[str, Any]]:
        base = self.store.root / "volumes"
        metas = [read_json(base / n / "meta.json") for n in sorted(os.listdir(base))]
        return [m for m in metas if m]

    def inspect_volume(self, name: str) -> dict[str, Any]:
        meta = read_json(self.store.volume_dir(name) / "meta.json")
        if not meta:
            raise NoSuchVolume(name)
        return meta

    @_verb("volume-rm")
    def volume_rm(self, name: str, force: bool = False) -> None:
        """``docker volume rm``: refused while a container (even a stopped one) uses it."""
        self.inspect_volume(name)
        users = [r.id for r in self._records() if any(m.type == "volume" and m.source == name for m in r.config.mounts)]
        if users:
            raise VolumeInUse(f"remove {name}: volume is in use - [{', '.join(users)}]",
                              "Remove the containers that use it first")
        self._volume_delete(name)

    def _volume_delete(self, name: str) -> None:
        vdir = self.store.volume_dir(name)
        if self.store.discard(vdir):
            self._record(events.volume_remove(name, str(vdir / "_data")))

    def _mount_spec(self, text: str) -> MountSpec:
        parts = text.split(":")
        ro = False
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            ro = parts[2] == "ro"
            parts = parts[:2]
        bad = InvalidArgument(f"invalid volume specification: '{text}'",
                              "Write NAME:/path or /host/path:/path, optionally with :ro")
        if len(parts) == 1:
            dest = parts[0]
            if not dest.startswith("/"):
                raise bad
            return MountSpec("volume", secrets.token_hex(32), dest, ro)
        if len(parts) != 2:
            raise bad
        src, dest = parts
        if not dest.startswith("/") or dest == "/":
            raise bad
        if src.startswith("/"):
            return MountSpec("bind", os.path.realpath(src), dest, ro)
        if not VOLUME_RE.match(src):
            raise bad
        return MountSpec("volume", src, dest, ro)

    def _mount_json(self, m: MountSpec) -> dict[str, Any]:
        if m.type == "volume":
            return {"Type": "volume", "Name": m.source, "Source": str(self.store.volume_dir(m.source) / "_data"),
                    "Destination": m.destination, "Driver": "local", "Mode": "ro" if m.readonly else "z",
                    "RW": not m.readonly, "Propagation": ""}
        return {"Type": "bind", "Source": m.source, "Destination": m.destination, "Mode": "ro" if m.readonly else "",
                "RW": not m.readonly, "Propagation": "rprivate"}

    def host_path(self, m: MountSpec) -> str:
        """Where a mount's data lives on the host."""
        return str(self.store.volume_dir(m.source) / "_data") if m.type == "volume" else m.source

    def version(self) -> dict[str, Any]:
        """``GET /version``."""
        import platform

        from labkit import __version__

        return {
            "Version": __version__,
            "ApiVersion": "1.51",
            "MinAPIVersion": "1.24",
            "Os": platform.system().lower(),
            "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
            "KernelVersion": platform.release(),
            "GoVersion": "python" + platform.python_version(),
            "GitCommit": "",
            "Components": [{"Name": "Engine", "Version": __version__, "Details": {"Backend": self.backend_name}}],
        }

    def info(self) -> dict[str, Any]:
        """``GET /info``: counts, the storage driver, cgroups, the host."""
        import platform

        recs = self._records()
        mem = 0
        try:
            with open("/proc/meminfo") as f:
                mem = int(f.readline().split()[1]) * 1024
        except OSError:
            pass
        return {
            "Containers": len(recs),
            "ContainersRunning": sum(r.status is Status.RUNNING for r in recs),
            "ContainersPaused": sum(r.status is Status.PAUSED for r in recs),
            "ContainersStopped": sum(not is_running(r.status) for r in recs),
            "Images": len(self.image_store.list()),
            "Driver": "overlay2",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": self.backend.cgroup_version(),
            "KernelVersion": platform.release(),
            "OperatingSystem": platform.platform(),
            "NCPU": os.cpu_count(),
            "MemTotal": mem,
            "ServerVersion": self.version()["Version"],
            "DockerRootDir": str(self.store.root),
            "Backend": self.backend_name,
            "SecurityOptions": self.backend.security_options(),
        }

    # -- doctor ----------------------------------------------------------------------------------
    def doctor(self) -> list[dict[str, Any]]:
        from labkit.doctor import checks

        # The saved subnets are checked against the host's routes where networks are bridges on this host;
        # a real backend's compiled supervisor is looked for in its state root.
        return checks(self.networks.ls() if self.backend.host_bridges else None,
                      None if self.backend.simulated else str(self.store.root / "bin"), rootless=self.backend.rootless)

    # -- internals -------------------------------------------------------------------------------
    def _records(self) -> list[ContainerRecord]:
        self._sweep_half_made()
        out = []
        for cid in self.store.container_ids():
            rec = self.store.load(cid)
            if rec is not None:
                rec = self._refresh(rec)
                if self.store.container_dir(rec.id).exists():
                    out.append(rec)
        return out

    def _sweep_half_made(self) -> None:
        """Take away what a ``create`` killed half-way left: a writable layer (``overlay/<id>``, ``<id>-init``)
        or a record being written (``tmp/c-<id>``) with no container, and intents never put in place.

        ``create`` makes these under the store's lock, so with the lock held any such thing is an orphan.
        Looked for without the lock first: nearly always there is nothing, and ``ps`` waits for no one.
        """
        if self._half_made():
            with self.store.locked():
                for path in self._half_made():
                    self.store.discard(path)

    def _half_made(self) -> list[Path]:
        root = self.store.root
        have = set(os.listdir(root / "containers"))
        found = [root / "overlay" / name for name in os.listdir(root / "overlay")
                 if _names.ID_RE.match(name.removesuffix("-init")) and name.removesuffix("-init") not in have]
        found += [root / "tmp" / name for name in os.listdir(root / "tmp") if name.startswith("c-")]
        return found + self.store.stray_intents()

    def _names(self) -> dict[str, str]:
        return self.store.names()

    def _get(self, ref: str) -> ContainerRecord:
        rec = self.store.load(ref) if _names.ID_RE.match(ref) else None  # a full id: no scan needed
        if rec is None:
            cid = _names.resolve(ref, self._names(), self.store.container_ids())
            rec = self.store.load(cid) if cid else None
        if rec is None:
            raise NoSuchContainer(ref)
        rec = self._refresh(rec)
        if rec.status is Status.DELETED:  # a removal a killed process had begun, finished just now
            raise NoSuchContainer(ref)
        return rec

    def _reload(self, rec: ContainerRecord) -> ContainerRecord:
        """:meth:`_refresh` for a record held across a wait: read it again from disk first."""
        return self._refresh(self.store.load(rec.id) or rec)

    def _refresh(self, rec: ContainerRecord) -> ContainerRecord:
        """Bring ``rec`` (just read) in line with what the kernel holds, and record it.

        Every command that names a container, and ``ps``, reads it through here, so what a
        killed process left half done is seen to before anything else happens:

        * a verb whose process died on the way (its intent is abandoned, see
          :meth:`labkit.store.Store.intent`): a removal is finished; a start is undone —
          what it started is killed, what it made (mounts, cgroup, network namespace,
          veth) goes — and the status stays what the record says, with the reason in
          ``State.Error``;
        * a running container whose PID 1 has ended (or whose supervisor died, which the
          backend answers by killing PID 1 and undoing the rest) moves to ``exited``.

        Status changes go through the lifecycle table (:meth:`_moved`). Returns the record as it
        is now; its status is ``deleted`` if a removal was finished here.
        """
        with self.store.abandoned(rec.id) as verb:
            if verb is not None:
                rec = self._recover(self.store.load(rec.id) or rec, verb)
                if rec.status is Status.DELETED:
                    return rec
        if not is_running(rec.status) or rec.status is Status.RESTARTING:
            return rec  # a restarting container belongs to its restart policy until it runs again
        ended = self.backend.observe(rec)
        if ended is None:
            return rec
        rec = self._moved(rec, Verb.EXIT, exit_code=ended.exit_code, finished_at=ended.finished_at,
                          oom_killed=ended.oom_killed, pid=0, error=ended.error)
        if not self._save(rec):
            return rec  # removed meanwhile by another process, which saw to the rest
        self._left_bridge(rec)
        self._record_end(rec, ended)
        if rec.config.auto_remove:  # --rm: the container goes as soon as anyone sees it has exited
            self._remove(rec)
        return rec

    def _recover(self, rec: ContainerRecord, verb: str) -> ContainerRecord:
        """Finish or undo ``verb``, which a process killed half-way left on ``rec`` (its intent held here)."""
        if rec.status is Status.REMOVING:  # rm had begun: finish it
            gone = self._moved(rec, Verb.RM_FORCE)
            self._remove(rec)
            return gone
        if verb in ("pause", "unpause") and rec.status in (Status.RUNNING, Status.PAUSED):
            # Frozen or thawed, not yet recorded: the record takes what the kernel holds, so that ps never
            # says Up of a frozen container (nor Paused of a thawed one).
            frozen = self.backend.paused(rec)
            if frozen != (rec.status is Status.PAUSED):
                rec = self._moved(rec, Verb.PAUSE if frozen else Verb.UNPAUSE)
                self._save(rec)
            return rec
        if is_running(rec.status) and rec.status is not Status.RESTARTING:
            return rec  # the start had been recorded whole: nothing is half done
        if verb not in ("start", "restart"):
            return rec  # nothing of the kernel's was touched yet (rm died before it began)
        # A start cut short: its PID 1 may run with nobody recording it. End it and undo what the start made.
        found = self.backend.recover(rec)
        why = (f"{verb} was interrupted: the process carrying it out was killed; "
               "what it had started was stopped and undone") if found else rec.state.error
        if rec.status is Status.RESTARTING:  # the restart policy died between two runs: the container has exited
            rec = self._moved(rec, Verb.EXIT, pid=0, error=why)
        elif found:
            rec = rec.with_state(pid=0, error=why)
        else:
            return rec  # it had failed and undone its work itself, or had made nothing yet
        self._save(rec)
        self._left_bridge(rec)
        return rec

    def _moved(self, rec: ContainerRecord, verb: Verb, **state: Any) -> ContainerRecord:
        """``rec`` after ``verb``, its status the lifecycle table's ``to`` (unchanged where the table says so)."""
        result = guard(rec.status, verb, rec.id, rec.name)
        status = result.to if isinstance(result, Move) else rec.status
        return rec.with_state(status=status, **state)

    def _record_end(self, rec: ContainerRecord, ended: Exited) -> None:
        """Trace how PID 1 ended: what it left in its writable layer (copy-ups, whiteouts, new files),
        its exit, then what went with it (the overlay mount, the network namespace, the cgroup)."""
        self._observe_layer(rec)
        self._record(events.exited(ended.exit_code, ended.oom_killed), rec.id)
        self.backend.trace_teardown(rec)

    def _save(self, rec: ContainerRecord) -> bool:
        """Write an updated record; False if another process removed the container meanwhile."""
        return self.store.save(rec)

    def apply_restart_policy(self, cid: str) -> bool:
        """Called when PID 1 has ended (by its supervisor): start it again if ``--restart`` says so.

        As Docker: ``always`` and ``unless-stopped`` restart after any exit, ``on-failure[:N]``
        after a non-zero one (at most N times); never after ``stop``/``kill``. The delay doubles
        from 100 ms on each restart in a row and starts over once a run has lasted 10 seconds.
        Returns whether it restarted the container.
        """
        with self._doing("restart-policy"), self.store.intent(cid, "restart"):
            rec = self.store.load(cid)
            if rec is None:
                return False
            rec = self._refresh(rec)
            c, st = rec.config, rec.state
            if rec.status is not Status.EXITED or st.manually_stopped or c.restart_policy == "no":
                return False
            if c.restart_policy == "on-failure" and (st.exit_code == 0 or
                                                     (c.restart_max and st.restart_count >= c.restart_max)):
                return False
            ran = (parse_time(st.finished_at) - parse_time(st.started_at)).total_seconds()
            delay = 0.1 if ran >= 10 else min(60.0, 0.1 * 2 ** min(st.restart_count, 10))
            if not self._save(rec.with_state(status=Status.RESTARTING)):
                return False  # removed between the read and now
            time.sleep(delay)
            now = self.store.load(cid)
            if now is None or now.status is not Status.RESTARTING:
                return False  # stopped or removed meanwhile
            self._launch(now.with_state(restart_count=st.restart_count + 1), Verb.RESTART)
            return True

    def _observe_layer(self, rec: ContainerRecord) -> None:
        """Turn what appeared in the writable layer into copy-up / whiteout steps of the trace."""
        if self.store.container_dir(rec.id).exists():
            self.backend.observe_layer(rec, self._image_of(rec))

    def _image_of(self, rec: ContainerRecord) -> Image:
        return self.image_store.get(rec.config.image_id)


def _is_controller(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"labkit.service" in f.read()
    except OSError:
        return False


#: docker diff's kinds as the API numbers them.
KIND = {"C": 0, "A": 1, "D": 2}


def _anonymous(name: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{64}", name))


def _read_text(path: str) -> str:
    """A file's text (a seccomp profile given by path), read as the caller's process sees it."""
    with open(path, encoding="utf-8", errors="replace") as f:  # not UTF-8: not JSON, said as such
        return f.read()


def _size(value: int | str | None) -> int:
    if value in (None, "", 0):
        return 0
    if isinstance(value, int):
        return value
    from labkit.model.humanize import parse_size

    return parse_size(value)


def connect(backend: Backend | str | None = None, root: str | Path | None = None) -> Engine:
    """Open labkit: ``backend="auto"`` picks the real Linux backend when the host allows it.

    Without ``backend``, ``$LABKIT_BACKEND`` decides (as it does for the CLI), else ``auto``.
    ``engine.backend_name`` says which was chosen and ``engine.backend_reason`` why.
    """
    return Engine(root=root, backend=backend or os.environ.get("LABKIT_BACKEND") or "auto")

