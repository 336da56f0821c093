"""Lab checks: small read-only probes of the state a learner really made.

A lab is graded by what exists, not by what the learner says: each probe asks
the engine (``inspect``, ``diff``, the volume's metadata, the image store) and
reads the files the engine points at — the container's overlay upper dir
(Documentation/filesystems/overlayfs.rst: every write of a container lands
there), a volume's ``_data`` directory, the container's cgroup files. Paths
always come from the engine, never from the learner, and no probe follows a
symbolic link: a file written somewhere else on the host, or a link in the
upper dir pointing out of it, does not count.

A simulated container (``inspect()["GraphDriver"]["Data"]["Simulated"]``) has
no upper dir on the host disk: its writable layer lives in the simulator's
model. The writable-layer probes then read that model through the backend
(:meth:`labkit.backend.Backend.layer_model`) and never the directory
``UpperDir`` names, so a file a learner drops there by hand does not count
either. On the real backend there is no model, and the directories are read.
What the kernel holds of a process (its namespaces, its host PID, its cgroup's
memory limit) is asked of the backend too, which reads ``/proc`` and the
cgroup files, or the simulator's model of them.

Two registries:

* :data:`PROBES` — ``probe(engine, **args) -> Outcome``: pass/fail, a message
  and the evidence read. A probe raises :class:`Missing` when the object it
  looks at does not exist yet, so a lab can tell "not attempted" from "wrong".
* :data:`OBSERVERS` — ``observer(engine, **args) -> value``: what the engine
  really did, for "predict, then observe" questions (an exit code, a status).

Probes never change anything: no start, no exec that writes, no cleanup.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.errors import LabkitError, NotFound
from labkit.model.container import ContainerRecord
from labkit.model.humanize import parse_size
from labkit.model.overlay import File, Overlay

if TYPE_CHECKING:
    from labkit.engine import Engine

#: Bytes of a file a probe reads at most (enough for a token or a config line).
READ_LIMIT = 1 << 20


class Missing(LabkitError, LookupError):
    """The container, volume, image or file a probe looks at does not exist (yet)."""


@dataclass(frozen=True)
class Outcome:
    """What one probe found.

    Attributes:
        passed: The state the check asks for is there.
        message: What was found, in one sentence for the learner.
        output: The evidence read (a status, a file's first bytes).
    """

    passed: bool
    message: str
    output: str = ""


@dataclass(frozen=True)
class Probe:
    """A registered probe: its function, its arguments and how it describes itself.

    Attributes:
        name: The name banks use (``container_running``).
        func: ``func(engine, **args) -> Outcome``.
        describe: A template for the check's title, filled with the arguments.
        required: Argument names a bank must give.
    """

    name: str
    func: Callable[..., Outcome]
    describe: str
    required: tuple[str, ...]


PROBES: dict[str, Probe] = {}
OBSERVERS: dict[str, Probe] = {}


def probe(name: str, describe: str, *required: str) -> Callable[[Callable[..., Outcome]], Callable[..., Outcome]]:
    """Register a lab probe under ``name``."""

    def wrap(func: Callable[..., Outcome]) -> Callable[..., Outcome]:
        PROBES[name] = Probe(name, func, describe, required)
        return func

    return wrap


def observer(name: str, describe: str, *required: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an observer (a value read from the engine) under ``name``."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        OBSERVERS[name] = Probe(name, func, describe, required)
        return func

    return wrap


def describe(name: str, args: dict[str, Any], registry: dict[str, Probe] | None = None) -> str:
    """A check's title from its probe's template (``container web is running``)."""
    template = (registry or PROBES)[name].describe
    return re.sub(r"\{(\w+)\}", lambda m: str(args.get(m.group(1), m.group(0))), template)


def run_probe(engine: Engine, name: str, args: dict[str, Any]) -> Outcome:
    """Run one probe; an engine error about a missing object becomes :class:`Missing`."""
    try:
        return PROBES[name].func(engine, **args)
    except Missing:
        raise
    except NotFound as err:
        raise Missing(err.message) from err


def observe(engine: Engine, name: str, args: dict[str, Any]) -> Any:
    """What the engine really did, read by the observer ``name``."""
    try:
        return OBSERVERS[name].func(engine, **args)
    except Missing:
        raise
    except NotFound as err:
        raise Missing(err.message) from err


# ---------------------------------------------------------------------------------------------
# Reading the engine's state safely


def _inspect(engine: Engine, container: str) -> dict[str, Any]:
    try:
        return engine.inspect(container)
    except NotFound:
        raise Missing(f"there is no container named {container} yet") from None


def _relative(path: str) -> list[str]:
    """``/data/hello`` as path components; ``..`` is refused (it could climb out of a layer)."""
    parts = [p for p in str(path).split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LabkitError(f"the path {path} climbs with '..'", "Write the path as the container sees it, from /")
    return parts


def lstat_below(root: str, path: str) -> os.stat_result | None:
    """``lstat`` of ``path`` under ``root`` without following any symbolic link; ``None`` if absent.

    Every directory on the way must be a real directory: a symbolic link in a
    layer pointing at ``/tmp`` would otherwise let a file elsewhere on the host pass.
    """
    parts = _relative(path)
    here = root
    for i, part in enumerate(parts):
        here = os.path.join(here, part)
        try:
            st = os.lstat(here)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return None
    return os.lstat(root) if not parts else st


def read_below(root: str, path: str) -> str | None:
    """The text of a regular file under ``root`` (no symbolic links on the way), or ``None``."""
    st = lstat_below(root, path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return None
    fd = os.open(os.path.join(root, *_relative(path)), os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read(READ_LIMIT).decode(errors="replace")


def upper_dir(engine: Engine, container: str) -> str:
    """The container's writable layer on the host, as the engine reports it (``GraphDriver.Data.UpperDir``)."""
    return _inspect(engine, container)["GraphDriver"]["Data"]["UpperDir"]


def simulated(info: dict[str, Any]) -> bool:
    """Whether ``inspect`` describes a container of the simulator (its layers are a model, not directories)."""
    return bool((info.get("GraphDriver") or {}).get("Data", {}).get("Simulated"))


def _model(engine: Engine, info: dict[str, Any]) -> Overlay | None:
    """The model of a simulated container's filesystem, or ``None`` where its layers are directories on the host."""
    return engine.backend.layer_model(_record(engine, info)) if simulated(info) else None


def _record(engine: Engine, info: dict[str, Any]) -> ContainerRecord:
    record = engine.store.load(info["Id"])
    if record is None:
        raise Missing(f"the container {info['Name'].lstrip('/')} is gone")
    return record


@dataclass(frozen=True)
class Entry:
    """One name in a writable layer, whatever keeps the layer (a directory on disk or the simulator's model).

    Attributes:
        kind: ``file``, ``dir``, ``symlink``, ``whiteout`` or ``other``.
        text: A regular file's first :data:`READ_LIMIT` bytes, decoded; empty for the rest.
    """

    kind: str
    text: str = ""


class WritableLayer:
    """A container's writable layer, read through the engine and nothing else.

    On the real backend it is the directory ``GraphDriver.Data.UpperDir``, read
    without following a symbolic link (:func:`lstat_below`). On the simulator
    it is the model's upper layer (:meth:`labkit.sim.backend.SimBackend.overlay`).
    """

    def __init__(self, engine: Engine, container: str) -> None:
        info = _inspect(engine, container)
        self.engine, self.id = engine, info["Id"]
        self.container = container
        self.data: dict[str, Any] = info["GraphDriver"]["Data"]
        #: The simulator's overlay model of the container's filesystem, or ``None`` on the real backend.
        self.model = _model(engine, info)

    def entry(self, path: str) -> Entry | None:
        """What the writable layer holds at ``path`` (``None``: nothing)."""
        if self.model is not None:
            node = self.model.upper.get("/" + "/".join(_relative(path)))
            if node is None:
                return None
            text = node.data[:READ_LIMIT].decode(errors="replace") if isinstance(node, File) else ""
            return Entry(node.kind, text)
        st = lstat_below(self.data["UpperDir"], path)
        if st is None:
            return None
        if stat.S_ISREG(st.st_mode):
            return Entry("file", read_below(self.data["UpperDir"], path) or "")
        # overlayfs.rst, "whiteouts": a character device with device number 0/0.
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return Entry("whiteout")
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "other"
        return Entry(kind)

    def made_anew(self, path: str) -> bool:
        """Whether the non-directory at ``path`` was made in the writable layer over an image file (removed and
        made again, or moved there) rather than copied up from it.

        overlayfs records the lower file a copy-up came from in the upper file's ``overlay.origin`` xattr
        (fs/overlayfs/copy_up.c); a file made in the upper dir has none. On the real backend that mark is read
        in the upper dir (:func:`labkit.linux.overlay.copied_up`), on the simulator the backend says it of its
        model (:attr:`labkit.model.overlay.UpperEntry.made_anew`).
        """
        rel = "/".join(_relative(path))
        if self.model is not None:
            return any(e.path == "/" + rel and e.made_anew for e in self.engine.layer_contents(self.id).entries)
        below = next((st for st in (lstat_below(lower, path) for lower in self.data.get("LowerDir", "").split(":")
                                    if lower) if st is not None), None)
        if below is None or lstat_below(self.data["UpperDir"], path) is None:
            return False
        # A real container's layers are directories on Linux alone, where labkit.linux loads.
        from labkit.linux import overlay

        return not overlay.copied_up(self.data["UpperDir"], rel, below)

    def in_image(self, path: str) -> str | None:
        """What the image layers hold at ``path``, whatever the writable layer holds there: ``"present"``,
        ``"deleted"`` (a whiteout in an image layer) or ``None`` when no image layer has it."""
        if self.model is not None:
            for layer in self.model.lowers:
                node = layer.get("/" + "/".join(_relative(path)))
                if node is not None:
                    return "deleted" if node.kind == "whiteout" else "present"
            return None
        for lower in (self.data.get("LowerDir") or "").split(":"):
            if not lower:
                continue
            low = lstat_below(lower, path)
            if low is not None:
                return "deleted" if stat.S_ISCHR(low.st_mode) and low.st_rdev == 0 else "present"
        return None


def _contains_ok(text: str, contains: str | None) -> bool:
    return contains is None or str(contains) in text


def _snippet(text: str, limit: int = 120) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "…"


# ---------------------------------------------------------------------------------------------
# Containers


@probe("container_exists", "a container named {name} exists", "name")
def container_exists(engine: Engine, name: str) -> Outcome:
    info = _inspect(engine, name)
    return Outcome(True, f"{name} exists ({info['State']['Status']})", info["State"]["Status"])


@probe("container_absent", "no container named {name} exists", "name")
def container_absent(engine: Engine, name: str) -> Outcome:
    try:
        info = engine.inspect(name)
    except NotFound:
        return Outcome(True, f"there is no container named {name}")
    return Outcome(False, f"{name} still exists ({info['State']['Status']})", info["State"]["Status"])


@probe("container_running", "container {name} is running", "name")
def container_running(engine: Engine, name: str) -> Outcome:
    status = _inspect(engine, name)["State"]["Status"]
    return Outcome(status == "running", f"{name} is {status}", status)


@probe("container_status", "container {name} is {status}", "name", "status")
def container_status(engine: Engine, name: str, status: str) -> Outcome:
    now = _inspect(engine, name)["State"]["Status"]
    return Outcome(now == status, f"{name} is {now}" + ("" if now == status else f", not {status}"), now)


@probe("env_equals", "{container} has {key}={value}", "container", "key", "value")
def env_equals(engine: Engine, container: str, key: str, value: str) -> Outcome:
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in _inspect(engine, container)["Config"]["Env"])
    if key not in env:
        return Outcome(False, f"{container} has no {key} in its environment")
    have = env[key]
    return Outcome(have == str(value), f"{container} has {key}={have}", f"{key}={have}")


@probe("label_equals", "{container} has the label {key}={value}", "container", "key", "value")
def label_equals(engine: Engine, container: str, key: str, value: str) -> Outcome:
    labels = _inspect(engine, container)["Config"].get("Labels") or {}
    if key not in labels:
        return Outcome(False, f"{container} has no label {key}")
    return Outcome(labels[key] == str(value), f"{container} has {key}={labels[key]}", f"{key}={labels[key]}")


@probe("exit_code_is", "{container} exited with code {code}", "container", "code")
def exit_code_is(engine: Engine, container: str, code: int) -> Outcome:
    state = _inspect(engine, container)["State"]
    if state["Status"] in ("running", "paused", "created"):
        return Outcome(False, f"{container} has not exited (it is {state['Status']})", state["Status"])
    return Outcome(state["ExitCode"] == int(code), f"{container} exited with {state['ExitCode']}", str(state["ExitCode"]))


@probe("oom_killed", "the kernel's OOM killer ended {container}", "container")
def oom_killed(engine: Engine, container: str, expected: bool = True) -> Outcome:
    state = _inspect(engine, container)["State"]
    killed = bool(state["OOMKilled"])
    words = "was OOM-killed" if killed else "was not OOM-killed"
    return Outcome(killed == bool(expected), f"{container} {words} (exit code {state['ExitCode']})", str(killed))


@probe("memory_limit", "{container} is limited to {bytes} bytes of memory", "container", "bytes")
def memory_limit(engine: Engine, container: str, bytes: int | str) -> Outcome:

    want = bytes if isinstance(bytes, int) else parse_size(str(bytes))
    info = _inspect(engine, container)
    have = info["HostConfig"]["Memory"]
    kernel = _kernel_memory_limit(engine, info)
    msg = f"{container} has --memory {have}" + (f"; its cgroup says {kernel}" if kernel is not None else "")
    ok = have == want and (kernel is None or kernel == want)
    return Outcome(ok, msg, str(kernel if kernel is not None else have))


def _kernel_memory_limit(engine: Engine, info: dict[str, Any]) -> int | None:
    """The limit the kernel enforces (``memory.max`` / ``memory.limit_in_bytes``) while the container runs
    (``None`` on the simulator, which has no cgroup files: its record is all there is)."""
    if not info["State"]["Running"]:
        return None
    record = engine.store.load(info["Id"])
    return engine.backend.kernel_memory_limit(record) if record is not None else None


@probe("pids_limit", "{container} may run at most {limit} processes", "container", "limit")
def pids_limit(engine: Engine, container: str, limit: int) -> Outcome:
    have = _inspect(engine, container)["HostConfig"]["PidsLimit"]
    return Outcome(have == int(limit), f"{container} has --pids-limit {have}", str(have))


@probe("port_published", "{container} publishes {container_port} on host port {host_port}",
       "container", "container_port", "host_port")
def port_published(engine: Engine, container: str, container_port: int | str, host_port: int | str) -> Outcome:
    bindings = _inspect(engine, container)["HostConfig"]["PortBindings"] or {}
    key = str(container_port) if "/" in str(container_port) else f"{container_port}/tcp"
    hosts = [b.get("HostPort", "") for b in bindings.get(key, [])]
    return Outcome(str(host_port) in hosts, f"{key} is published on {hosts or 'no host port'}", ",".join(hosts))


@probe("mounts_volume", "{container} mounts volume {volume} at {destination}", "container", "volume", "destination")
def mounts_volume(engine: Engine, container: str, volume: str, destination: str) -> Outcome:
    mounts = _inspect(engine, container)["Mounts"]
    for m in mounts:
        if m.get("Destination") == destination:
            ok = m.get("Type") == "volume" and m.get("Name") == volume
            what = m.get("Name") or m.get("Source")
            return Outcome(ok, f"{destination} is a {m.get('Type')} mount of {what}", f"{m.get('Type')}:{what}")
    return Outcome(False, f"nothing is mounted at {destination} in {container}")


@probe("own_namespaces", "{container}'s PID 1 has its own namespaces", "container")
def own_namespaces(engine: Engine, container: str, kinds: tuple[str, ...] = ("pid", "mnt", "uts", "ipc")) -> Outcome:
    info = _inspect(engine, container)
    state = info["State"]
    if not state["Running"]:
        return Outcome(False, f"{container} is {state['Status']}: only a running process has namespaces")
    try:
        shared = engine.backend.shared_namespaces(_record(engine, info), tuple(kinds))
    except OSError:
        return Outcome(False, f"PID {state['Pid']} could not be read in /proc")
    if simulated(info):  # the simulator keeps no /proc: its process table says whether the host PID is PID 1 inside
        if shared:
            return Outcome(False, f"host PID {state['Pid']} is not PID 1 of a namespace of its own")
        return Outcome(True, f"PID {state['Pid']} is PID 1 inside its own {', '.join(kinds)} namespaces "
                             "(simulated)", str(state["Pid"]))
    if shared:
        return Outcome(False, f"PID {state['Pid']} shares the host's {', '.join(shared)} namespace")
    return Outcome(True, f"PID {state['Pid']} has its own {', '.join(kinds)} namespaces", str(state["Pid"]))


@probe("hostname_is", "{container}'s hostname is {hostname}", "container", "hostname")
def hostname_is(engine: Engine, container: str, hostname: str) -> Outcome:
    have = _inspect(engine, container)["Config"]["Hostname"]
    return Outcome(have == hostname, f"{container}'s hostname is {have}", have)


# ---------------------------------------------------------------------------------------------
# The writable layer


@probe("file_in_upperdir", "{path} is in {container}'s writable layer", "container", "path")
def file_in_upperdir(engine: Engine, container: str, path: str, contains: str | None = None) -> Outcome:
    entry = WritableLayer(engine, container).entry(path)
    if entry is None:
        return Outcome(False, f"{path} is not in {container}'s writable layer (write it inside the container)")
    if entry.kind != "file":
        return Outcome(False, f"{path} in the writable layer is not a regular file (it is a {entry.kind})")
    if not _contains_ok(entry.text, contains):
        return Outcome(False, f"{path} is in the writable layer but does not contain {contains!r}",
                       _snippet(entry.text))
    return Outcome(True, f"{path} is in {container}'s writable layer", _snippet(entry.text))


@probe("copied_up", "{path} was copied up from an image layer into {container}'s writable layer", "container", "path")
def copied_up(engine: Engine, container: str, path: str, contains: str | None = None) -> Outcome:
    # overlayfs.rst, "Non-directories": the first open for writing of a lower file copies it up into the
    # upper dir, where the change lands; the lower layer keeps the original. A copy-up is therefore a
    # regular file in the upper dir whose path an image layer also has (a new file has no lower twin), and
    # that carries the origin overlayfs records on a copy-up: a file removed and made again has none.
    layer = WritableLayer(engine, container)
    entry = layer.entry(path)
    if entry is None:
        if layer.in_image(path) == "present":
            return Outcome(False, f"{path} is still served unchanged by an image layer: nothing copied it up "
                                  "(change the file inside the container)")
        return Outcome(False, f"{path} is neither in {container}'s writable layer nor in its image")
    if entry.kind != "file":
        return Outcome(False, f"{path} in the writable layer is not a copied-up file (it is a {entry.kind})")
    if layer.in_image(path) != "present":
        return Outcome(False, f"{path} is in the writable layer but no image layer has it: "
                              "it is a new file, not a copy-up of an image file", _snippet(entry.text))
    if layer.made_anew(path):
        return Outcome(False, f"{path} was removed and made again: the writable layer holds a new file in place of "
                              "the whiteout, not a copy of the image's file (change the image's file where it is, "
                              "e.g. append to it)", _snippet(entry.text))
    if not _contains_ok(entry.text, contains):
        return Outcome(False, f"{path} was copied up but does not contain {contains!r}", _snippet(entry.text))
    return Outcome(True, f"{path} was copied up: {container}'s writable layer holds the changed copy, "
                         "the image layer still holds the original", _snippet(entry.text))


@probe("whiteout_exists", "deleting {path} left a whiteout in {container}'s writable layer", "container", "path")
def whiteout_exists(engine: Engine, container: str, path: str) -> Outcome:
    entry = WritableLayer(engine, container).entry(path)
    if entry is not None and entry.kind == "whiteout":
        return Outcome(True, f"{path} is a whiteout (a 0/0 character device) in the upper dir")
    return Outcome(False, f"there is no whiteout for {path} in {container}'s upper dir")


@probe("file_absent", "{path} is gone from {container}'s view", "container", "path")
def file_absent(engine: Engine, container: str, path: str) -> Outcome:
    layer = WritableLayer(engine, container)
    entry = layer.entry(path)
    if entry is not None:
        if entry.kind == "whiteout":
            return Outcome(True, f"{path} is hidden by a whiteout")
        return Outcome(False, f"{path} is in the writable layer")
    # Not in the upper dir: the lower layers decide (top first; a whiteout hides what is below).
    below = layer.in_image(path)
    if below == "deleted":
        return Outcome(True, f"{path} is deleted in an image layer")
    if below == "present":
        return Outcome(False, f"{path} is still there, served by an image layer")
    return Outcome(True, f"{path} does not exist in {container}")


@probe("image_layers_unchanged", "{image}'s layers are unchanged", "image")
def image_layers_unchanged(engine: Engine, image: str) -> Outcome:
    img = engine.image_store.get(image)
    changed = [layer.digest[:19] for layer in img.layers if not engine.image_store.intact(layer)]
    if changed:
        return Outcome(False, f"{len(changed)} layer(s) of {image} no longer match their digest", ", ".join(changed))
    return Outcome(True, f"all {len(img.layers)} layers of {image} still hash to their digests")


# ---------------------------------------------------------------------------------------------
# Volumes


def _volume(engine: Engine, name: str) -> dict[str, Any]:
    try:
        return engine.volume_inspect(name)
    except NotFound:
        raise Missing(f"there is no volume named {name} yet") from None


@probe("volume_exists", "a volume named {name} exists", "name")
def volume_exists(engine: Engine, name: str) -> Outcome:
    meta = _volume(engine, name)
    return Outcome(True, f"volume {name} exists", meta["Mountpoint"])


@probe("volume_has_file", "volume {volume} holds {path}", "volume", "path")
def volume_has_file(engine: Engine, volume: str, path: str, contains: str | None = None) -> Outcome:
    root = _volume(engine, volume)["Mountpoint"]
    text = read_below(root, path)
    if text is None:
        return Outcome(False, f"volume {volume} has no file {path}")
    if not _contains_ok(text, contains):
        return Outcome(False, f"{path} in volume {volume} does not contain {contains!r}", _snippet(text))
    return Outcome(True, f"volume {volume} holds {path}", _snippet(text))


# ---------------------------------------------------------------------------------------------
# Services


def _service(engine: Engine, name: str) -> dict[str, Any]:
    for rec in engine.service_ls():
        if rec.get("Name") == name:
            return rec
    raise Missing(f"there is no service named {name} yet")


@probe("service_replicas", "service {name} has {running} replicas running", "name", "running")
def service_replicas(engine: Engine, name: str, running: int) -> Outcome:
    """``labkit service ls``'s count of running replicas (the engine counts containers, not the request)."""
    rec = _service(engine, name)
    have, asked = int(rec.get("Running", 0)), int(rec.get("Replicas", 0))
    ok = have == int(running) and asked == int(running)
    msg = f"{name} has {have} of {asked} replicas running" + ("" if asked == int(running) else
                                                                f" (it asks for {asked}, not {running})")
    return Outcome(ok, msg, f"{have}/{asked}")


# ---------------------------------------------------------------------------------------------
# Observers: what really happened, for "predict, then observe"


@observer("status", "the status of {container}", "container")
def observe_status(engine: Engine, container: str) -> str:
    return _inspect(engine, container)["State"]["Status"]


@observer("exit_code", "the exit code of {container}", "container")
def observe_exit_code(engine: Engine, container: str) -> int:
    return int(_inspect(engine, container)["State"]["ExitCode"])


@observer("oom_killed", "whether {container} was OOM-killed", "container")
def observe_oom_killed(engine: Engine, container: str) -> bool:
    return bool(_inspect(engine, container)["State"]["OOMKilled"])


@observer("env", "{key} in {container}'s environment", "container", "key")
def observe_env(engine: Engine, container: str, key: str) -> str:
    for item in _inspect(engine, container)["Config"]["Env"]:
        k, _, v = item.partition("=")
        if k == key:
            return v
    return ""


@observer("diff_kind", "what docker diff says of {path} in {container}", "container", "path")
def observe_diff_kind(engine: Engine, container: str, path: str) -> str:
    """``A``, ``C`` or ``D`` as ``docker diff`` prints it, or ``""`` when the path is unchanged."""
    _inspect(engine, container)
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in engine.diff(container):
        if change["Path"] == path:
            return kinds.get(change["Kind"], "")
    return ""


@observer("in_upperdir", "whether {path} is in {container}'s writable layer", "container", "path")
def observe_in_upperdir(engine: Engine, container: str, path: str) -> bool:
    return WritableLayer(engine, container).entry(path) is not None


@observer("exists", "whether a container named {name} exists", "name")
def observe_exists(engine: Engine, name: str) -> bool:
    try:
        engine.inspect(name)
    except NotFound:
        return False
    return True


@observer("listed_by_ps", "whether ps lists {name}", "name")
def observe_listed_by_ps(engine: Engine, name: str, all: bool = False) -> bool:
    return any(("/" + name) in item["Names"] for item in engine.ps(all=all))


@observer("volume_file", "the text of {path} in volume {volume}", "volume", "path")
def observe_volume_file(engine: Engine, volume: str, path: str) -> str:
    return (read_below(_volume(engine, volume)["Mountpoint"], path) or "").strip()


@observer("layer_count", "how many layers {image} has", "image")
def observe_layer_count(engine: Engine, image: str) -> int:
    return len(engine.image_store.get(image).layers)


@observer("host_sees_pid", "whether the host's /proc has {container}'s PID 1", "container")
def observe_host_sees_pid(engine: Engine, container: str) -> bool:
    """A container's PID 1 is an ordinary host process: ``/proc/<State.Pid>`` exists while it runs."""
    info = _inspect(engine, container)
    state = info["State"]
    if not state["Running"] or state["Pid"] <= 0:
        return False
    return engine.backend.host_has_pid1(_record(engine, info))  # on the simulator, its model of the host's table


@observer("replicas_running", "how many replicas of {service} run", "service")
def observe_replicas_running(engine: Engine, service: str) -> int:
    return int(_service(engine, service).get("Running", 0))


@observer("hostname", "the hostname of {container}", "container")
def observe_hostname(engine: Engine, container: str) -> str:
    return _inspect(engine, container)["Config"]["Hostname"]
