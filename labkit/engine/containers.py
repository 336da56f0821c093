"""Containers: create and run, talking to a running one, and what a container shows (``lab.containers``).

:class:`ContainerCollection` makes a container (``create``: every option checked in
Docker's words before anything is made, then the name claimed and the writable layer
made), runs one, attaches to it, execs in it and reads it (``ls``, ``inspect``, ``logs``,
``diff``, the pictures' views). Its lifecycle verbs (``start``, ``stop``, ``kill``,
``restart``, ``pause``, ``unpause``, ``rm``, ``wait``) are
:class:`~labkit.engine.lifecycle.ContainerLifecycle`'s, and its upkeep (``rename``,
``update``, ``top``, ``stats``, ``prune``) is :class:`~labkit.engine.upkeep.ContainerUpkeep`'s.

Names, ids and the lifecycle are the engine's; namespaces, mounts, cgroups and processes
are the backend's (:mod:`labkit.backend`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any, cast

from labkit.backend import Meter
from labkit.engine.collection import verb
from labkit.engine.handles import Container, PhasedRun
from labkit.engine.lifecycle import ContainerLifecycle
from labkit.engine.options import (
    HOST_NAME_MAX,
    KIND,
    LIMIT_NAMES,
    checked_mounts,
    create_env,
    host_config,
    merge_env,
    moment,
    parse_env,
    parse_port,
    read_text,
    restart_policy,
    signal_number,
    size,
)
from labkit.engine.upkeep import ContainerUpkeep
from labkit.errors import (
    AmbiguousReference,
    IllegalTransition,
    InvalidArgument,
    LabkitError,
    LimitDiscarded,
    NameInUse,
    NetworkReduced,
    NoSuchImage,
)
from labkit.model import events, limits
from labkit.model import names as _names
from labkit.model import seccomp as _seccomp
from labkit.model import terminal as _terminal
from labkit.model.container import (
    ContainerConfig,
    ContainerRecord,
    CreateOptions,
    PortSpec,
    inspect_json,
    now_rfc3339,
    parse_time,
    ps_item,
    published_ports,
    state_json,
)
from labkit.model.humanize import status_string
from labkit.model.lifecycle import Status, Unchanged, Verb, guard, is_running
from labkit.model.overlay import MAX_STACK, LayerContents
from labkit.model.views import NetworkView, ProcessView
from labkit.networks import PREDEFINED, rootless_refusal

if TYPE_CHECKING:
    from labkit.images.store import Image


def _feed(source: int, sink: int, ended: threading.Event) -> None:
    """Copy ``source`` into ``sink`` until ``source`` ends (then set ``ended``) or ``sink``'s reader is gone;
    then close ``sink``."""
    try:
        while True:
            data = os.read(source, 65536)
            if not data:
                ended.set()
                break
            view = memoryview(data)
            while view:
                view = view[os.write(sink, view):]
    except OSError:
        pass  # EPIPE: the container ended
    finally:
        os.close(sink)


class ContainerCollection(ContainerLifecycle, ContainerUpkeep):
    """The state root's containers (``lab.containers``); the engine's flat verbs (``lab.run``) call these."""

    @verb("create")
    def create(self, options: CreateOptions) -> Container:
        """Create a container (``docker create``): its config, name and writable layer; no process yet.

        Every option is checked, in Docker's words, before anything is made; then, under the
        store's lock, the name is claimed, missing volumes and bind sources are made, and the
        backend makes the writable layer. A limit this host cannot enforce, or a network it
        reduces, is a warning (:class:`~labkit.errors.LimitDiscarded`,
        :class:`~labkit.errors.NetworkReduced`) listed in ``container.warnings``.

        ``tty`` gives PID 1 a terminal of the container's own (``-t``), whose first ``console_size``
        is ``(rows, columns)``; ``open_stdin`` (``-i``) lets an attached caller type into it
        (:meth:`attach`), or without a terminal keeps PID 1's stdin open (:meth:`start`'s ``stdin``).
        ``attach`` names the streams an attached ``run``/``create`` takes (``stdin``, ``stdout``, ``stderr``:
        inspect's ``AttachStdin``…; ``StdinOnce`` when stdin is one of them).

        ``security_opt`` takes Docker's ``--security-opt`` values: ``seccomp=unconfined`` runs without
        a seccomp filter, ``seccomp=PROFILE.json`` (a path, or the JSON itself) under that profile
        instead of Docker's default one (:func:`labkit.model.seccomp.default_profile`).

        ``user`` (``-u``) runs the command as ``uid[:gid]`` or a name of the image's ``/etc/passwd``;
        ``read_only`` mounts ``/`` read-only; ``tmpfs`` (``--tmpfs /run[:opts]``) and ``mounts``
        (``--mount type=bind|volume|tmpfs,…``) add mounts; ``add_host`` and ``dns`` add ``/etc/hosts``
        and ``/etc/resolv.conf`` lines; ``cap_add``, ``cap_drop`` and ``privileged`` change the
        capabilities the container keeps (``privileged`` also lifts the seccomp filter, the masked paths
        and the device rules); ``ulimits`` (``nofile=1024:2048``) set resource limits (setrlimit(2));
        ``platform`` must be this machine's. See :func:`labkit.engine.options.host_config`.
        """
        img = self.engine.images.get(options.image)
        config = self._config(options, img)
        with self.engine.store.locked():
            taken = self.engine.store.names()
            cid = _names.new_id()
            if options.name:
                name = _names.check_name(options.name)
                if name in taken:
                    raise NameInUse(name, taken[name])
            else:
                name = _names.pick_name(taken, cid)
            for m in config.mounts:
                if m.type == "volume" and not self.engine.store.volume_dir(m.source).exists():
                    self.engine.volumes.make(m.source)
                elif m.type == "bind" and not os.path.exists(m.source):
                    os.makedirs(m.source, exist_ok=True)  # Docker creates a missing bind source as a directory
            record = ContainerRecord(replace(config, id=cid, name=name, created=now_rfc3339(),
                                             hostname=config.hostname or _names.short_id(cid)))
            self.engine.store.set_name(name, cid, taken)  # claimed first: see Store.names
            self.engine._trace_names[cid] = name
            self.engine.backend.create(record, img)
            self.engine.store.create(record)
        self.engine._note(record, "create")
        container = Container(self.engine, cid, name)
        asked = {"memory": config.memory, "pids": options.pids_limit, "cpu": options.cpus}
        unenforced = self.engine.backend.unenforced_limits() if any(asked.values()) else {}
        for kind, value in asked.items():
            if value and kind in unenforced:
                text = f"{LIMIT_NAMES[kind]} discarded: {unenforced[kind]}"
                container.warnings.append(text)
                warnings.warn(text, LimitDiscarded, stacklevel=2)
        reduced = self.engine.backend.reduced_network(config.network)
        if reduced:
            container.warnings.append(reduced)
            warnings.warn(reduced, NetworkReduced, stacklevel=2)
        return container

    def _config(self, o: CreateOptions, img: Image) -> ContainerConfig:
        """The configuration ``o`` asks for over the image's defaults, every option checked in Docker's words.

        Who the container is (its id, name, creation time, and a hostname left to its id) is
        filled in once its name is claimed.
        """
        extra = host_config(o.image, user=o.user, read_only=o.read_only, tmpfs=o.tmpfs, mounts=o.mounts,
                            add_host=o.add_host, dns=o.dns, cap_add=o.cap_add, cap_drop=o.cap_drop,
                            privileged=o.privileged, ulimits=o.ulimits, platform=o.platform)
        command = ["/bin/sh", "-c", o.command] if isinstance(o.command, str) else o.command
        entrypoint = ([o.entrypoint] if o.entrypoint else []) if isinstance(o.entrypoint, str) else o.entrypoint
        icfg = img.config
        if len(img.layers) >= MAX_STACK:  # the container's init layer goes on top of them
            raise InvalidArgument(
                f"image {o.image} has {len(img.layers)} layers; overlayfs stacks at most {MAX_STACK} lower layers "
                f"(OVL_MAX_STACK), one of them the container's own", "Rebuild it with fewer steps that make layers")
        mem = size(o.memory)
        swap = -1 if o.memory_swap in (-1, "-1") else size(o.memory_swap)
        limits.check_memory(mem, swap)
        if mem and not swap:
            swap = min(2 * mem, limits.MAX_MEMORY)  # Docker's default: as much swap as memory
        nano_cpus = limits.check_cpus(float(o.cpus), os.cpu_count() or 1) if o.cpus is not None else 0
        if o.pids_limit:
            limits.check_pids(o.pids_limit)
        if o.workdir and not o.workdir.startswith("/"):
            raise InvalidArgument(f"the working directory '{o.workdir}' is invalid, it needs to be an absolute path",
                                  "Give a path that starts with /, e.g. -w /app")
        if o.hostname and len(o.hostname) > HOST_NAME_MAX:
            raise InvalidArgument(f"invalid hostname {o.hostname!r}: longer than {HOST_NAME_MAX} characters",
                                  "The kernel's sethostname(2) takes at most 64; pick a shorter one")
        for key, value in (o.labels or {}).items():
            if not key.strip():
                raise InvalidArgument(f"invalid label '{key}={value}': empty name", "Write labels as KEY=VALUE")
        port_specs = tuple(parse_port(p) for p in (o.ports or []))
        exposed = list(icfg.get("ExposedPorts") or {})
        for p in port_specs:
            key = f"{p.container_port}/{p.protocol}"
            if key not in exposed:
                exposed.append(key)
        if o.publish_all:
            have = {f"{p.container_port}/{p.protocol}" for p in port_specs}
            port_specs += tuple(
                PortSpec(int(k.split("/")[0]), k.split("/")[1]) for k in exposed if k not in have
            )
        mounts = checked_mounts(tuple(self.engine.volumes.mount_spec(v) for v in (o.volumes or [])) + extra.pop("mounts"))
        if o.network == "":
            raise InvalidArgument("no name set for network", "Give --network a name: bridge, host, none or yours")
        network_name = o.network or "bridge"
        if network_name not in ("none", "host"):
            network_name = self.engine.networks.get(network_name)["Name"]  # Docker: "network X not found"
        if self.engine.backend.rootless and network_name not in PREDEFINED:  # made as root, or by an older labkit
            raise rootless_refusal(f"network {network_name}")
        policy, retries = restart_policy(o.restart or "no")
        if o.stop_signal:
            signal_number(o.stop_signal)
        if o.auto_remove and policy != "no":
            raise InvalidArgument("conflicting options: cannot specify both --restart and --rm",
                                  "Use one or the other: --rm removes the container when it exits, "
                                  "--restart starts it again")
        security = _seccomp.parse_security_opts(o.security_opt or (), read_text)
        _seccomp.check_security_opts(security, platform.machine())  # refused now, not when it starts
        ep = tuple(entrypoint if entrypoint is not None else (icfg.get("Entrypoint") or ()))
        cmd = tuple(command if command else (() if entrypoint is not None and not command else icfg.get("Cmd") or ()))
        if not ep and not cmd:
            raise InvalidArgument("No command specified", "Give a command after the image name, e.g. sh -c 'echo hi'")
        return ContainerConfig(
            id="",
            name="",
            created="",
            image=o.image,
            image_id=img.id,
            entrypoint=ep,
            cmd=cmd,
            env=tuple(create_env(list(icfg.get("Env") or []), parse_env(o.env))),
            workdir=o.workdir or icfg.get("WorkingDir") or "/",
            hostname=o.hostname or "",
            labels={**(icfg.get("Labels") or {}), **(o.labels or {})},
            exposed_ports=tuple(exposed),
            ports=port_specs,
            mounts=mounts,
            memory=mem,
            memory_swap=swap,
            nano_cpus=nano_cpus,
            pids_limit=o.pids_limit if o.pids_limit else None,
            restart_policy=policy,
            restart_max=retries,
            auto_remove=o.auto_remove,
            network=network_name,
            network_mode="default" if o.network is None else network_name,
            stop_signal=o.stop_signal or icfg.get("StopSignal") or "SIGTERM",
            stop_timeout=o.stop_timeout,
            init=o.init,
            security_opt=security,
            tty=o.tty,
            open_stdin=o.open_stdin,
            console_size=(o.console_size[0], o.console_size[1]) if o.console_size else (0, 0),
            attach=tuple(a for a in ("stdin", "stdout", "stderr") if a in o.attach),
            **extra,
        )

    @verb("run")
    def run(self, options: CreateOptions, *, detach: bool = False) -> Container:
        """``docker run``: create, then start; without ``detach`` wait for the exit.

        Returns the container. After an attached run, ``container.exit_code`` and
        ``container.logs()`` tell what happened (unless ``auto_remove`` removed it).
        """
        c = self.create(options)
        try:
            self.start(c.id)
        except BaseException:
            if options.auto_remove:  # Docker removes a --rm container whose start failed, whatever failed
                with contextlib.suppress(LabkitError, OSError):
                    self.rm(c.id, force=True)
            raise
        if not detach:
            if options.auto_remove:
                # Read the record without refreshing it: a refresh would remove it (--rm) before we kept
                # what it said and how it ended.
                rec = self.engine.store.load(c.id)
                if rec is not None:
                    self.engine.backend.wait(rec, None)
                    c._final_logs = list(self.engine.backend.logs(rec))
                    c._final_code = self.engine._reload(rec).state.exit_code
                return c
            c._final_code = self.wait(c.id)
        return c

    def run_phases(self, options: CreateOptions) -> PhasedRun:
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
        return PhasedRun(self.engine, options)

    # -- talking to a running container ----------------------------------------------------------
    @verb("attach")
    def attach(self, ref: str, *, stdin: int | None = None, stdout: int = 1, stderr: int = 2,
               detach_keys: str | None = None, start: bool = False) -> int | None:
        """``docker attach``: the caller's descriptors to the running container's PID 1.

        With a terminal (``create(tty=True)``), what PID 1's terminal shows goes to ``stdout`` and
        what is typed on ``stdin`` (None: nothing; ``-i`` containers only) goes to it, the caller's
        terminal in raw mode meanwhile; typing the detach keys (``ctrl-p,ctrl-q``, or
        ``detach_keys``) lets go and leaves the container running. Its terminal belongs to its
        supervisor: the caller's descriptors never enter the container. Without a terminal, its
        output from now on goes to ``stdout`` and ``stderr`` until it ends; for a ``-i`` container
        (``run -di``), what ``stdin`` holds is written to PID 1's stdin as it comes; at its end PID 1's
        stdin stays open (Docker's ``StdinOnce`` is false there) and, as Docker's daemon closes the
        attach's output then (moby container/stream/attach.go), nothing more is relayed, but the
        attach lasts until the container ends and returns its exit code.

        ``start``: start the container first (``run -it``, ``start -ai``), attached before PID 1
        runs, so that nothing it writes is missed.

        Returns:
            The container's exit code once it has ended; None if the caller detached.
        """
        keys = _terminal.detach_keys(detach_keys)
        rec = self.engine._get(ref)
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
                detached = self.engine.backend.attach(rec, stdin if rec.config.open_stdin else None, stdout, keys, ours)
                return None if detached else self._final_code(rec)
            seen = sum(1 for _ in self.engine.backend.logs(rec))
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
                detached = self.engine.backend.attach(rec, stdin if rec.config.open_stdin else None, stdout, keys)
                return None if detached else self._final_code(rec)
            seen = sum(1 for _ in self.engine.backend.logs(rec))
        sink = self.engine.backend.stdin_sink(rec) if stdin is not None else None
        ended = threading.Event()  # the caller's input ended: Docker's daemon then closes the attach's output too
        if sink is not None:
            threading.Thread(target=_feed, args=(stdin, sink, ended), name="labkit-attach-stdin", daemon=True).start()
        entries = self.logs(rec.id, follow=True)
        for _ in range(seen):  # what it wrote before is not replayed
            next(entries, None)
        for stream, text, _ in entries:
            if not ended.is_set():
                os.write(stderr if stream == "stderr" else stdout, text.encode() if isinstance(text, str) else text)
        return self.wait(rec.id)

    def _final_code(self, rec: ContainerRecord) -> int:
        """The exit code of a container whose PID 1 has ended, read before a ``--rm`` removes it."""
        self.engine.backend.wait(rec, None)
        return self.engine._reload(rec).state.exit_code

    # -- looking ---------------------------------------------------------------------------------
    def ls(self, all: bool = False, size: bool = False) -> list[dict[str, Any]]:
        """``GET /containers/json`` (``docker ps``): running containers (``all``: every one), newest first;
        with ``size`` each item's ``SizeRw`` and ``SizeRootFs`` (``ps -s``, :meth:`_sizes`)."""
        now = datetime.now(timezone.utc)
        items = []
        # Newest first by the creation time to the nanosecond: two made within one second keep their order.
        for rec in sorted(self.engine._records(), key=lambda r: parse_time(r.config.created), reverse=True):
            if not all and not is_running(rec.status):
                continue
            settings = self.engine.networks.settings(rec) or {}
            items.append(ps_item(rec, rec.config.image_id, status_string(state_json(rec.state), now),
                                 published_ports(settings.get("Ports") or {}) if is_running(rec.status) else None,
                                 settings.get("Networks")))
            if not self._image_still_named(rec):
                items[-1]["Image"] = rec.config.image_id
            if size:
                items[-1].update(self._sizes(rec))
        return items

    def _image_still_named(self, rec: ContainerRecord) -> bool:
        """Whether the image name the container was made with still names its image: once the tag moved to
        another image or went with ``rmi -f``, ``ps`` shows the image id instead (moby's daemon/list.go)."""
        c = rec.config
        try:
            return c.image == c.image_id or self.engine.images.store.resolve(c.image) == c.image_id
        except (NoSuchImage, AmbiguousReference, InvalidArgument):
            return False

    def _sizes(self, rec: ContainerRecord) -> dict[str, int]:
        """``SizeRw``: bytes of what the writable layer holds (files and symlinks, as Docker's
        ``directory.Size`` counts its upper dir); ``SizeRootFs``: that plus the image's layers."""
        img = self.engine.images.of(rec)
        contents = self.engine.backend.layer_contents(rec, img)
        rw = sum(e.size for e in contents.entries if e.kind in ("file", "symlink"))
        return {"SizeRw": rw, "SizeRootFs": rw + img.size}

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        """``docker inspect``: the container as Docker's JSON, with real host paths; ``size`` adds ``SizeRw``
        and ``SizeRootFs`` after ``GraphDriver`` (``inspect --size``)."""
        rec = self.engine._get(ref)
        if size:
            shown = self.inspect(ref)
            keys = list(shown)
            at = keys.index("GraphDriver") + 1
            return {**{k: shown[k] for k in keys[:at]}, **self._sizes(rec), **{k: shown[k] for k in keys[at:]}}
        img = self.engine.images.of(rec)
        cdir = self.engine.store.container_dir(rec.id)
        return inspect_json(
            rec,
            storage=self.engine.backend.storage(rec, img),
            log_path=str(cdir / "json.log"),
            etc_paths={
                "ResolvConfPath": str(cdir / "resolv.conf"),
                "HostnamePath": str(cdir / "hostname"),
                "HostsPath": str(cdir / "hosts"),
            },
            mounts=[self.engine.volumes.mount_json(m) for m in rec.config.mounts],
            network=self.engine.networks.settings(rec),
        )

    def diff(self, ref: str) -> list[dict[str, Any]]:
        """``docker diff``: what the container changed, read from its writable layer."""
        rec = self.engine._get(ref)
        self.engine._observe_layer(rec)
        return [{"Path": path, "Kind": KIND[kind]} for kind, path in self.engine.backend.changes(rec, self.engine.images.of(rec))]

    def logs(self, ref: str, follow: bool = False, tail: int | None = None,
             timestamps: bool = False, since: float | str | None = None,
             until: float | str | None = None) -> Iterator[tuple[str, str, str]]:
        """``docker logs``: (stream, text, time) for each line; ``follow`` keeps reading until PID 1 ends.

        ``since`` and ``until`` (unix seconds, or what ``docker logs --since`` takes: ``10m``, an RFC 3339
        time) keep the lines written from ``since`` on and up to ``until``; following stops at ``until``.
        """
        rec = self.engine._get(ref)
        now = datetime.now(timezone.utc)
        start, end = moment(since, now), moment(until, now)

        def window(entries: list[tuple[str, str, str]]) -> tuple[list[tuple[str, str, str]], bool]:
            kept, past = [], False
            for entry in entries:
                at = parse_time(entry[2]).timestamp()
                if end is not None and at > end:
                    past = True
                    break
                if start is None or at >= start:
                    kept.append(entry)
            return kept, past

        lines = list(self.engine.backend.logs(rec))
        seen = len(lines)
        lines, past = window(lines)
        if tail is not None and tail >= 0:
            lines = lines[len(lines) - tail:] if tail else []
        yield from lines
        if not follow or past:
            return
        # Each turn reads the status before the log, so no line written before an end it sees is missed;
        # the first turn's status is the one read above, a moment ago (``run`` follows right after start).
        running = is_running(rec.status)
        while True:
            fresh = list(self.engine.backend.logs(rec))
            kept, past = window(fresh[seen:])
            yield from kept
            seen = len(fresh)
            if not running or past or (end is not None and time.time() > end):
                return
            self.engine.backend.wait(rec, 0.1)
            running = is_running(self.engine._get(rec.id).status)

    @verb("exec")
    def exec(self, ref: str, cmd: list[str] | str, *, env: Any = None, workdir: str | None = None,
             detach: bool = False, stdout: IO[bytes] | int | None = None, stderr: IO[bytes] | int | None = None,
             stdin: IO[bytes] | int | None = None, tty: bool = False,
             detach_keys: str | None = None, user: str | None = None) -> int | None:
        """``docker exec``: one more process inside the running container; return its exit code.

        Its output goes to ``stdout`` and ``stderr`` and its input comes from ``stdin`` (``exec -i``; None:
        none); on the real backend each through a pipe labkit relays, so the container never gets the
        caller's descriptors (:mod:`labkit.linux.stdio`). With ``tty`` (``exec -t``) the process gets
        a terminal of the container's instead, relayed as :meth:`attach` relays PID 1's; None is
        returned if the caller typed the detach keys (the process goes on). ``user`` (``exec -u``) runs it
        as that ``USER[:GROUP]``; ``detach`` (``exec -d``) returns None as soon as it runs.
        """
        rec = self.engine._get(ref)
        guard(rec.status, Verb.EXEC, rec.id, ref)
        keys = _terminal.detach_keys(detach_keys)
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        merged = merge_env(list(rec.config.env), parse_env(env))
        workdir = workdir or rec.config.workdir
        command = " ".join(argv)
        self.engine._note(rec, f"exec_create: {command}")
        self.engine._note(rec, f"exec_start: {command}")
        backend = self.engine.backend
        if detach:
            code = backend.exec(rec, argv, merged, workdir, None, None, None, detach=True, user=user or "")
        elif tty:
            code = backend.exec(rec, argv, merged, workdir, stdout, stderr, stdin, tty=True, detach_keys=keys,
                                user=user or "")
        elif user:
            code = backend.exec(rec, argv, merged, workdir, stdout, stderr, stdin, user=user)
        else:
            code = backend.exec(rec, argv, merged, workdir, stdout, stderr, stdin)
        if code is not None:
            self.engine._record(events.exec_in(argv, rec.state.pid, code), rec.id)
            self.engine._note(rec, "exec_die", exitCode=str(code))
        self.engine._observe_layer(rec)
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
        return self.engine.backend.process_view(self._seen_running(ref))

    def network_view(self, ref: str) -> NetworkView:
        """The interfaces of the host's network namespace and of a running container's (the network picture).

        Raises:
            IllegalTransition: The container is not running, or paused (as for ``exec``).
        """
        return self.engine.backend.network_view(self._seen_running(ref))

    def http_get(self, ref: str, port: int, path: str = "/") -> tuple[int, str]:
        """``(HTTP status, body)`` of a GET of ``path`` from the running container's TCP ``port``, as a client on
        this host reaches it: the real backend through the port published for it (``-p``), the simulator from
        its model of the server. The same call on either backend, so a lesson never asks which it has.

        Raises:
            IllegalTransition: The container is not running, or paused (as for ``exec``).
            OSError: Nothing answered (refused, timed out, reset).
        """
        return self.engine.backend.http_get(self._seen_running(ref), port, path)

    def _seen_running(self, ref: str) -> ContainerRecord:
        rec = self.engine._get(ref)
        guard(rec.status, Verb.EXEC, rec.id, ref)  # the linux backend asks the container itself, as exec would
        return rec

    def get(self, ref: str) -> Container:
        """A handle on an existing container."""
        rec = self.engine._get(ref)
        return Container(self.engine, rec.id, rec.name)

    # -- what the pictures ask ---------------------------------------------------------------------
    def layer_contents(self, ref: str, path: str | None = None) -> LayerContents:
        """What the container's writable layer holds, what the image layers hold at the same paths, and
        which layer serves ``path`` (the layer picture draws it; read from disk or from the simulator's model)."""
        rec = self.engine._get(ref)
        return self.engine.backend.layer_contents(rec, self.engine.images.of(rec), path)

    def files(self, ref: str, under: str = "/") -> list[str]:
        """Regular files the running container sees below ``under``, sorted (``/proc`` and ``/sys`` left out).

        Raises:
            InvalidArgument: They could not be listed.
        """
        rec = self.engine._get(ref)
        guard(rec.status, Verb.EXEC, rec.id, ref)
        try:
            return self.engine.backend.files(rec, under)
        except OSError as err:
            raise InvalidArgument(f"could not list the files under {under} ({err.strerror or err})",
                                  "Give an existing directory, such as /app or /etc") from err

    def meter(self, ref: str) -> Meter | None:
        """The running container's cgroup counters and the clock to read them against (``None`` when not running).

        On the real backend the clock is the host's; on the simulator it is simulated
        time, and :meth:`~labkit.backend.Meter.pause` lets the container run meanwhile.
        """
        rec = self.engine._get(ref)
        return self.engine.backend.meter(rec) if is_running(rec.status) else None
