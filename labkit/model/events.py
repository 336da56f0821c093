"""The trace: what the kernel did, one step at a time.

Every engine verb, on either backend, records :class:`Step` events: *create the
writable layer*, *mount overlay (lowerdir=…, upperdir=…, workdir=…)*, *clone
with NEWPID|NEWNS|…*, *pivot_root*, *write memory.limit_in_bytes*, *freeze*,
*copy-up /etc/passwd (1234 bytes, from layer 2)*, *whiteout /tmp/old*, *signal
SIGTERM → exit 143*. Each step says what happened in a sentence a learner
understands, names the kernel mechanism, and carries the state it changed, so
the stepper can walk a trace forward and back and the pictures can draw the
state after any step.

The functions below build the steps both backends share, so the real and the
simulated run of the same verb tell the same story in the same words.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Namespaces a container gets, in clone(2) flag order.
NAMESPACE_FLAGS = ("NEWPID", "NEWNS", "NEWUTS", "NEWIPC", "NEWNET", "NEWCGROUP")


@dataclass(frozen=True)
class Step:
    """One thing the kernel did.

    Attributes:
        seq: Position in the trace, from 0.
        verb: The engine verb it belongs to (``run``, ``start``, ``stop``, …).
        container: The container's id ("" for image steps).
        kind: A short machine name (``mount-overlay``, ``copy-up``, …).
        what: One sentence for a learner.
        mechanism: The kernel interface that did it (``mount(2)``, ``cgroups(7) memory.max``, …).
        change: The state it changed, as plain data (``{"status": "running"}``, ``{"path": …}``).
        t: Seconds since the trace began (real time, or the simulator's clock).
        name: The container's name, as a learner knows it ("" for image steps, or when not known).
        simulated: The simulator modelled this step; the host's kernel did not take it.
    """

    seq: int
    verb: str
    container: str
    kind: str
    what: str
    mechanism: str
    change: dict[str, Any] = field(default_factory=dict)
    t: float = 0.0
    name: str = ""
    simulated: bool = False

    def label(self) -> str:
        """How a learner knows the container this step is about: its name, else its short id."""
        return self.name or self.container[:12]

    def __str__(self) -> str:
        return f"{self.seq:>3} {self.kind:<14} {self.what}  [{self.mechanism}]"


#: One step as a backend reports it: (kind, what, mechanism, change), built by the functions below.
Event = tuple[str, str, str, dict[str, Any]]

#: Where a backend reports a step: ``emit(event, container_id)``. The engine's recorder returns the
#: step's place in its trace (:attr:`Step.seq`); an emitter that keeps nothing returns ``None``.
Emit = Callable[[Event, str], int | None]


def noop(_event: Event, _container: str = "") -> None:
    """An emitter that records nothing."""


# -- the shared vocabulary --------------------------------------------------------------------------
# Each function returns (kind, what, mechanism, change) for the engine's recorder.

def create_layer(upper: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("create-layer", "Create the container's empty writable layer (the upper dir).",
            "mkdir(2)", {"upper": upper})


def mount_overlay(lowers: list[str], upper: str, work: str, merged: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("mount-overlay",
            f"Stack {len(lowers)} read-only layers under the writable layer and mount the result as the container's /.",
            "mount(2) type overlay: lowerdir=…,upperdir=…,workdir=…",
            {"lowers": list(lowers), "upper": upper, "work": work, "merged": merged})


def cgroup_write(path: str, value: str, why: str) -> tuple[str, str, str, dict[str, Any]]:
    name = path.rsplit("/", 1)[-1]
    return ("cgroup-write", f"Write {value} to {name}: {why}", f"cgroups(7) {name}", {"file": path, "value": value})


def clone(flags: tuple[str, ...] = NAMESPACE_FLAGS, pid: int = 0) -> tuple[str, str, str, dict[str, Any]]:
    return ("clone",
            "Start the container's first process in new namespaces: it gets its own PID 1, mounts, hostname, "
            "IPC, network and cgroup view.",
            "clone(2)/unshare(2) with " + "|".join(f"CLONE_{f}" for f in flags),
            {"flags": list(flags), "pid": pid})


def user_namespace(uid: int, gid: int, uid_range: tuple[int, int] | None = None,
                   gid_range: tuple[int, int] | None = None) -> tuple[str, str, str, dict[str, Any]]:
    """Rootless: the user namespace the container's first process is made in, before every other namespace."""
    if uid_range and gid_range:
        ids = (f"and your {uid_range[1]} subordinate ids from {uid_range[0]} on are 1 to {uid_range[1]} inside "
               "(newuidmap and newgidmap write that map, as /etc/subuid and /etc/subgid allow)")
        how = "clone(2) with CLONE_NEWUSER; uid_map and gid_map written by newuidmap(1)/newgidmap(1)"
    else:
        ids = "and every other id shows as nobody (only your own id is mapped: no /etc/subuid range)"
        how = "clone(2) with CLONE_NEWUSER; the process writes its own one-line uid_map and gid_map"
    return ("userns",
            f"Make a user namespace first, where you are root: uid {uid} on the host is uid 0 inside, {ids}. "
            "The other namespaces and the mounts below are made by that root, which has no power outside.",
            f"{how} (user_namespaces(7))",
            {"uid": uid, "gid": gid, "uid_range": list(uid_range) if uid_range else None,
             "gid_range": list(gid_range) if gid_range else None})


def network_helper(driver: str, ip: str, pid: int = 0) -> tuple[str, str, str, dict[str, Any]]:
    """Rootless: the user-mode network stack that gives the container its address (no bridge, no veth)."""
    return ("network",
            f"Give the container a network without root: {driver}, a process of yours on the host, puts a tap0 "
            f"device with address {ip} in the container's network namespace and carries its packets through "
            "ordinary sockets of yours (no bridge, no veth: only root may make those).",
            f"{driver}(1): setns(2) into the container's network namespace, a TAP device (tun(4))",
            {"driver": driver, "ip": ip, "pid": pid})


def pivot_root(merged: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("pivot-root", "Make the overlay the process's / and detach the host's filesystem from its view.",
            "pivot_root(2) + umount2(MNT_DETACH)", {"root": merged})


def execve(argv: list[str], pid: int) -> tuple[str, str, str, dict[str, Any]]:
    return ("exec", f"Replace the set-up code with the command: {' '.join(argv)} (PID 1 inside, PID {pid} on the host).",
            "execve(2)", {"argv": list(argv), "pid": pid, "status": "running"})


def signal(signum: int, pid: int) -> tuple[str, str, str, dict[str, Any]]:
    name = _signal.Signals(signum).name
    return ("signal", f"Send {name} to the container's PID 1 (host PID {pid}).", "kill(2)",
            {"signal": name, "pid": pid})


def exited(code: int, oom: bool = False) -> tuple[str, str, str, dict[str, Any]]:
    if oom:
        why = "the kernel's OOM killer ended it for using more memory than its cgroup allows"
    elif 128 < code < 128 + _signal.NSIG and code - 128 in _signal.valid_signals():
        why = f"it was killed by {_signal.Signals(code - 128).name} (exit code 128+{code - 128})"
    else:
        why = f"it exited with code {code}"
    return ("exit", f"PID 1 ended: {why}. Its namespaces vanish with it; the writable layer stays.",
            "wait4(2)", {"exit_code": code, "oom_killed": oom, "status": "exited"})


def freeze(on: bool, by_signal: bool = False) -> tuple[str, str, str, dict[str, Any]]:
    """Pause (``on``) or unpause: through the cgroup freezer, or ``by_signal`` with SIGSTOP/SIGCONT
    to each process where no freezer may be used (rootless without a delegated cgroup)."""
    if by_signal:
        if on:
            return ("freeze", "Stop every process of the container with SIGSTOP: memory kept, and a parent "
                    "waiting for it can see it stopped.", "SIGSTOP to each process (kill(2); no cgroup freezer "
                    "this user may write)", {"status": "paused"})
        return ("thaw", "Continue the container's processes with SIGCONT: they run again where they stopped.",
                "SIGCONT to each process (kill(2))", {"status": "running"})
    if on:
        return ("freeze", "Freeze every process of the container: they stop being scheduled, memory kept.",
                "cgroup freezer (freezer.state=FROZEN / cgroup.freeze=1)", {"status": "paused"})
    return ("thaw", "Thaw the container's processes: they run again where they stopped.",
            "cgroup freezer (freezer.state=THAWED / cgroup.freeze=0)", {"status": "running"})


def copy_up(path: str, size: int, layer: int | str) -> tuple[str, str, str, dict[str, Any]]:
    return ("copy-up", f"Copy {path} ({size} bytes) up from image layer {layer} before changing it: its data, "
            "owner, mode, times and extended attributes go into a new file in the work dir, which rename(2) then "
            "moves into the writable layer. The image layer keeps the original.",
            "overlayfs copy-up (ovl_copy_up(): a temporary file in workdir, then rename(2) into upperdir)",
            {"path": path, "bytes": size, "from_layer": layer})


def lookup(path: str, layer: int | str) -> tuple[str, str, str, dict[str, Any]]:
    return ("lookup", f"Look {path} up, top layer first: the writable layer has no {path}; image layer {layer} is "
            "the highest layer that has it, so every read of it so far came from there.",
            "overlayfs lookup (ovl_lookup(): the upper dir, then each lower dir, top down)",
            {"path": path, "from_layer": layer})


def copy_up_dir(path: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("copy-up-dir", f"Copy the directory {path} up first: create it in the writable layer with the owner, "
            "mode and times it has below (the directory only, not what is in it); it stays merged with the one below.",
            "overlayfs copy-up of a parent directory (ovl_copy_up(): parents before the file)", {"path": path})


def write_upper(path: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("write-upper", f"Now the change itself: the write (or chmod, truncate…) acts on the copy of {path} in the "
            "writable layer. From here on the container reads and writes that copy; the image layer is never touched.",
            "the write-needing call (open(2) for writing, write(2), chmod(2)…) on the upper file",
            {"path": path})


def copy_up_steps(path: str, size: int, layer: int | str, parents: Sequence[str] = ()) -> list[Event]:
    """A file's copy-up as overlayfs does it (Documentation/filesystems/overlayfs.rst, "Non-directories"): the
    lookup that finds it in an image layer, the parent directories the writable layer lacks, the copy of data,
    owner, mode, times and xattrs, and then the write-needing call itself on the copy."""
    return [lookup(path, layer), *(copy_up_dir(p) for p in parents), copy_up(path, size, layer), write_upper(path)]


def whiteout(path: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("whiteout", f"Hide {path}: a whiteout (a 0/0 character device) in the writable layer covers the "
            "image's copy, which stays in its layer.", "overlayfs whiteout", {"path": path})


def opaque(path: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("opaque", f"Mark {path} opaque: nothing of the image's {path} shows through it any more.",
            "overlayfs opaque dir (trusted.overlay.opaque=y)", {"path": path})


def added(path: str, size: int) -> tuple[str, str, str, dict[str, Any]]:
    return ("add", f"Create {path} ({size} bytes) in the writable layer only.", "overlayfs create in upper",
            {"path": path, "bytes": size})


def network_attach(veth: str, bridge: str, ip: str, mac: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("network", f"Plug the container into bridge {bridge} with a veth pair: {veth} on the host, eth0 inside "
            f"with address {ip} and MAC {mac}, and a default route through the bridge.",
            "rtnetlink: veth(4) pair, bridge master, address, route", {"veth": veth, "bridge": bridge, "ip": ip,
                                                                      "mac": mac})


def network_plug(veth: str, bridge: str, ifname: str, ip: str, mac: str, network: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("network-connect", f"Plug the running container into network {network} too: a veth pair, {veth} on bridge "
            f"{bridge}, {ifname} inside its network namespace with address {ip} and MAC {mac}; its peers there learn "
            "its name.", "rtnetlink: veth(4) pair into the pinned namespace, setns(2) to address it",
            {"veth": veth, "bridge": bridge, "interface": ifname, "ip": ip, "mac": mac, "network": network})


def network_unplug(veth: str, bridge: str, ifname: str, ip: str, network: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("network-disconnect", f"Unplug the running container from network {network}: deleting {veth} deletes "
            f"its veth pair, so {ifname} and its address {ip} leave the container's namespace.",
            "rtnetlink: RTM_DELLINK of one end of a veth(4) pair", {"veth": veth, "bridge": bridge,
                                                                    "interface": ifname, "ip": ip, "network": network})


def exec_in(argv: list[str], pid: int, code: int) -> tuple[str, str, str, dict[str, Any]]:
    return ("exec-in", f"Run one more process in the running container: it joins the namespaces and the cgroup "
            f"of PID 1 (host PID {pid}), then executes {' '.join(argv)}; it exited with code {code}.",
            "setns(2) on /proc/PID/ns/* + cgroup.procs + execve(2)",
            {"argv": list(argv), "target_pid": pid, "exit_code": code})


def umount(merged: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("umount", "PID 1 is gone: unmount the container's overlay from its merged dir; the writable layer's "
            "files stay on disk.", "umount2(2) with MNT_DETACH", {"merged": merged, "mounted": False})


def network_detach(veth: str, bridge: str, ip: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("network-detach", f"Let the container's network namespace go: with PID 1 gone nothing holds it, so the "
            f"kernel destroys it with its veth pair; {veth} leaves bridge {bridge} and {ip} is free again.",
            "umount2(2) of the namespace's pin; network_namespaces(7) frees its veth(4) devices",
            {"veth": veth, "bridge": bridge, "ip": ip})


def cgroup_remove(dirs: list[str]) -> tuple[str, str, str, dict[str, Any]]:
    where = dirs[0].rsplit("/", 2)
    return ("cgroup-remove", f"Remove the container's cgroup {'/'.join(where[-2:])}: no process is left in it, so "
            "rmdir(2) deletes the directory and its limit files with it.", "rmdir(2) on cgroupfs (cgroups(7))",
            {"dirs": list(dirs)})


def volume_create(name: str, path: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("volume-create", f"Create volume {name}: a plain directory, {path}, under the state root; a container "
            "that mounts it sees it through a bind mount, and it outlives every container.", "mkdir(2)",
            {"volume": name, "path": path})


def volume_remove(name: str, path: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("volume-remove", f"Delete volume {name}: its directory {path} and every file in it.",
            "rename(2), then unlink(2)/rmdir(2)", {"volume": name, "path": path})


def network_create(name: str, bridge: str, subnet: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("network-create", f"Create network {name}: subnet {subnet}, carried by bridge {bridge}. Only a record "
            "for now: the bridge is made when the first container on it starts.",
            "a record under the state root; bridge(4) later, by rtnetlink",
            {"network": name, "bridge": bridge, "subnet": subnet})


def network_subnet_moved(name: str, old: str, holder: str, new: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("network-subnet", f"Network {name}'s subnet {old} is in use on this host by {holder}: its bridge comes "
            f"up on {new} instead, so the host's routes stay unambiguous; containers get addresses there.",
            "rtnetlink RTM_GETADDR/RTM_GETROUTE, then the next free address pool",
            {"network": name, "old": old, "clash": holder, "subnet": new})


def network_remove(name: str, bridge: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("network-remove", f"Remove network {name}: its record goes, and bridge {bridge} with it if it is up.",
            "rtnetlink RTM_DELLINK", {"network": name, "bridge": bridge})


def remove_layer(upper: str) -> tuple[str, str, str, dict[str, Any]]:
    return ("remove-layer", "Delete the writable layer: every file the container wrote is gone.", "unlink(2)/rmdir(2)",
            {"upper": upper, "status": "deleted"})
