"""``labkit doctor``: what this host lets labkit do, in plain words.

Each check says what was found and what it means for a learner. Nothing here
changes the host, but for one thing a container start would do too: as root, the
overlay module is loaded if it is not yet (``modprobe overlay``, as Docker does).
Every other probe reads a file under /proc or /sys, looks on PATH, asks a library
its version (libseccomp), or tries a user namespace in a child that leaves nothing.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import shutil
from typing import Any

from labkit import helpers
from labkit.backends import default_root
from labkit.daemon import client
from labkit.errors import LabkitError
from labkit.model import endpoints
from labkit.networks import clash


def _check(name: str, ok: bool, detail: str, meaning: str) -> dict[str, Any]:
    return {"check": name, "ok": ok, "detail": detail, "meaning": meaning}


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def checks(networks: list[dict[str, Any]] | None = None, shim_dir: str | None = None,
           rootless: bool | None = None) -> list[dict[str, Any]]:
    """Every check, in the order a learner should read them.

    Args:
        networks: The state root's network records (``network ls``), when a root
            backend runs: their saved subnets are checked against the host's too.
        shim_dir: Where the real backend keeps its compiled supervisor (``ROOT/bin``);
            by default the one of the state root the real backend would use here.
        rootless: Whether the backend that runs is a user's (default: when not root). Then
            the host's cgroups and bridges are root's: the lines on limits, pause and
            networks are the ``rootless ...`` ones, and no other line speaks for them.
    """
    out = []
    root = os.geteuid() == 0
    if rootless is None:
        rootless = not root
    out.append(_check(
        "root", root, f"running as uid {os.geteuid()}",
        "labkit can create namespaces, mount overlayfs and write cgroups: real containers."
        if root else "Not root: labkit makes real containers rootless, in a user namespace (see below), "
                     "or runs the simulator; sudo gives the full set.",
    ))
    release = platform.release()
    try:
        major, minor = (int(x) for x in release.split(".")[:2])
    except ValueError:
        major, minor = 0, 0
    out.append(_check(
        "kernel", platform.system() == "Linux", f"{platform.system()} {release}",
        "Containers are made by the Linux kernel; "
        + ("unprivileged overlayfs needs 5.11 or newer, and this kernel has it." if (major, minor) >= (5, 11)
           else "this kernel is older than 5.11, so overlayfs needs root."),
    ))
    # The rootless probe mounts overlayfs in a user namespace, which has the kernel load its module;
    # as root, overlay.load() runs modprobe as labkit's start does: either way the line below and the
    # backend auto picks say the same thing.
    user_lines = rootless_checks() if platform.system() == "Linux" else []
    loaded = False
    if platform.system() == "Linux":
        # Each check loads the room it asks about: labkit.linux imports on Linux alone (syscalls.py binds unshare(2))
        from labkit.linux import overlay

        loaded = overlay.load()
    out.append(_check(
        "overlayfs", loaded, "overlay listed in /proc/filesystems" if loaded else "not found",
        "Image layers are stacked read-only under a writable container layer by overlayfs."
        if loaded else "Without overlayfs there is no copy-on-write layer; try 'sudo modprobe overlay'.",
    ))
    userns = _read("/proc/sys/user/max_user_namespaces")
    clone = _read("/proc/sys/kernel/unprivileged_userns_clone")
    ok = bool(userns and userns != "0") and clone != "0"
    out.append(_check(
        "user namespaces", ok, f"max_user_namespaces={userns}" + (f", unprivileged_userns_clone={clone}" if clone else ""),
        "A user without root can still be root inside a user namespace."
        if ok else "Unprivileged user namespaces are off: without root only the simulator can run.",
    ))
    out.extend(user_lines)
    try:
        # Each check loads the room it asks about: labkit.linux imports on Linux alone (syscalls.py binds unshare(2))
        from labkit.linux.cgroups import detect

        layout = detect()
        lines = layout.describe()
        out.append(_check("cgroups", True, f"cgroup {layout.version}: " + ", ".join(sorted(layout.controllers)),
                          " ".join(lines) if not rootless else
                          "These are the host's cgroups, which root's containers are limited and paused with; a "
                          "user cannot write them, so rootless containers get limits and the freezer only from a "
                          "cgroup v2 subtree delegated to the user ('rootless cgroups' says whether there is one)."))
    except Exception as err:  # a host without cgroupfs mounted
        out.append(_check("cgroups", False, str(err), "Without cgroups labkit cannot limit memory, pids or CPU."))
    if platform.system() == "Linux":
        out.append(_seccomp_check())
    bb = shutil.which("busybox")
    static = False
    if bb:
        try:
            static = "statically linked" in helpers.run(["file", "-L", bb], capture_output=True, text=True).stdout
        except OSError:
            static = False
    out.append(_check(
        "busybox", bool(bb), f"{bb} ({'static' if static else 'dynamic'})" if bb else "not on PATH",
        "The base image 'busybox' is built from it, offline." if bb
        else "The base image will be assembled from this host's own programs and libraries instead.",
    ))
    out.append(_compiler_check(shim_dir))

    engine_pid = client.running()
    off = bool(os.environ.get("LABKIT_NO_SERVER"))
    out.append(_check(
        "labkit command", True,
        "every command on its own (LABKIT_NO_SERVER is set)" if off
        else f"resident engine running (pid {engine_pid})" if engine_pid else "resident engine not running",
        "Each `labkit` command in a terminal is handed to one resident engine that keeps labkit loaded, "
        "as docker hands its commands to dockerd; the first command starts it, and it leaves after 15 idle "
        "minutes (`labkit server status|stop`; LABKIT_NO_SERVER=1 runs every command on its own).",
    ))
    if platform.system() == "Linux" and not rootless:  # rootless, no bridge is made on the host
        out.extend(network_checks(networks or [], root))
    node = shutil.which("node")
    out.append(_check(
        "node", bool(node), node or "not found",
        "The lesson's frontend-app image runs the real node server.js." if node
        else "The lesson's frontend-app image uses a busybox stand-in for node.",
    ))
    return out


def _compiler_check(shim_dir: str | None) -> dict[str, Any]:
    """Whether the supervisor can be had: a C compiler to build it, or one built before (and kept) to use."""
    # Each check loads the room it asks about: labkit.linux imports on Linux alone (syscalls.py binds unshare(2))
    from labkit.linux import supervisor

    cc = supervisor.compiler_on_path()  # the ones the shim is built with, where it looks
    if cc:
        return _check(
            "C compiler", True, cc,
            "Containers are started and supervised by small C programs, built on first use: each running "
            "container keeps a supervisor of about 1 MB, and a start takes about as long as crun's.")
    if shim_dir is None:
        shim_dir = os.path.join(default_root("linux" if os.geteuid() == 0 else "rootless"), "bin")
    built = supervisor.built_shim(shim_dir)
    if built is not None:
        return _check(
            "C compiler", True, f"not found; labkit-shim built before: {built}",
            "Real containers start here with the supervisor labkit compiled earlier (it matches this labkit's "
            "source). Without a compiler it cannot be built again: after labkit changes, real containers cannot "
            "start until a compiler is installed (apt-get install gcc libc6-dev)"
            + ("." if supervisor.built_init(shim_dir) else ", and run --init needs one already."))
    return _check(
        "C compiler", False, "not found",
        "Real containers cannot start here, because labkit builds the small C program that starts "
        "them (labkit-shim) on first use: install a compiler (apt-get install gcc libc6-dev), or use the "
        "simulator (labkit --backend sim).")


def _seccomp_check() -> dict[str, Any]:
    """Whether containers can run under Docker's seccomp profile: the kernel's filter mode and libseccomp."""
    filters = os.path.exists("/proc/sys/kernel/seccomp/actions_avail")  # CONFIG_SECCOMP_FILTER
    try:
        # Each check loads the room it asks about: labkit.linux imports on Linux alone (syscalls.py binds unshare(2))
        from labkit.linux import seccomp

        version = seccomp.library_version()
    except LabkitError:
        version = None
    ok = filters and version is not None
    detail = ", ".join([f"libseccomp {version}" if version else "libseccomp not found",
                        "kernel filters on" if filters else "this kernel has no seccomp filters"])
    return _check(
        "seccomp", ok, detail,
        "Every container runs under Docker's default seccomp profile: about 370 system calls allowed, "
        "others such as unshare, mount, keyctl and bpf refused (--security-opt seccomp=unconfined lifts it)."
        if ok else "Containers cannot get Docker's seccomp profile here, so they start only with --security-opt "
                   "seccomp=unconfined" + ("; apt-get install libseccomp2 provides the library." if not version
                                           else "."),
    )


#: What ``network create`` and ``run --network NAME`` do rootless (:func:`labkit.networks.rootless_refusal`).
_NO_USER_NETWORKS = ("'network create' is refused, as is run --network with any network but the default, none "
                     "or host: a user-defined network needs root, because each rootless container has a network "
                     "stack of its own and no bridge can join them.")


def rootless_checks() -> list[dict[str, Any]]:
    """What running *without root* means for the current user, one aspect per check."""
    # Each check loads the room it asks about: labkit.linux imports on Linux alone (syscalls.py binds unshare(2))
    from labkit.linux import cgroups, namespaces

    out = []
    problem = namespaces.userns_problem()
    out.append(_check(
        "rootless", problem is None, "a user namespace with overlayfs inside works" if problem is None else problem,
        "Without root, labkit can still make real containers: you become root inside a user namespace, and "
        "mount the image layers with overlayfs there (userxattr: its markers are user.overlay.* xattrs)."
        if problem is None else "Without root only the simulator can run here.",
    ))
    idmap = namespaces.id_map()
    out.append(_check(
        "rootless ids", True, idmap.describe(),
        "Inside, only root exists: files of images you build are root's, and COPY --chown or a chown to "
        "another id is refused; ask for an /etc/subuid and /etc/subgid range (and install the uidmap package) "
        "to map 65536 ids."
        if idmap.kind == "single" else "Files keep distinct owners inside: COPY --chown=1000 and a chown in a "
        "container give ids from your range (1000 inside is a subordinate id on the host).",
    ))
    # Each check loads the room it asks about: labkit.linux imports on Linux alone (syscalls.py binds unshare(2))
    from labkit.linux import systemd

    layout = cgroups.delegated()
    manager = layout is None and systemd.user_bus() is not None and shutil.which("busctl") is not None
    out.append(_check(
        "rootless cgroups", layout is not None or manager,
        f"delegated cgroup v2 subtree {layout.unified} (controllers: {', '.join(sorted(layout.controllers)) or 'none'})"
        if layout else f"your systemd user manager delegates {systemd.SCOPE} to labkit's engine" if manager
        else "no cgroup v2 directory is delegated to you",
        "Rootless containers get limits from the controllers listed, and pause freezes them with cgroup.freeze."
        if layout else "labkit's engine asks your systemd for a scope of its own, delegated to you (as "
        "'systemd-run --user --scope -p Delegate=yes' does): rootless containers get limits there, and pause "
        "freezes them with cgroup.freeze." if manager else "Rootless containers run without limits (--memory, --cpus, --pids-limit are recorded in "
        "HostConfig but not enforced), and pause stops their processes with SIGSTOP instead of freezing them "
        "(a parent can notice a SIGSTOP; it cannot notice a freeze). systemd's user sessions delegate a subtree.",
    ))
    helper = helpers.network_helper()
    out.append(_check(
        "rootless network", True,
        f"{helper} installed ({shutil.which(helper)})" if helper else "neither slirp4netns nor pasta installed",
        "Rootless containers get --network none or host, and the default network and -p go through "
        f"{helper}, as with rootless Podman: the container has a tap device with {endpoints.SLIRP_ADDRESS}/24 "
        "behind a TCP/IP stack that runs as you, and published ports listen on 127.0.0.1 unless you name an "
        f"address. {_NO_USER_NETWORKS}"
        if helper else
        "Rootless containers get --network none or host; the default network becomes a private network namespace "
        "with only loopback, and -p is refused: a veth pair cannot reach a host bridge from a user namespace. "
        "Install the slirp4netns package (or passt, for pasta) for a network like rootless Podman's. "
        + _NO_USER_NETWORKS,
    ))
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    out.append(_check(
        "rootless state", True, os.path.join(data, "labkit"),
        "Your rootless images and containers live here, apart from root's in /var/lib/labkit: two separate worlds.",
    ))
    return out


def _whose(name: str, own: dict[str, str]) -> str:
    """Who an interface belongs to, in a learner's words."""
    if name in own:
        return f"{name} (network {own[name]} of this state root)"
    if name == "docker0" or name.startswith("br-"):
        return f"{name} (Docker's)"
    if name.startswith("lkbr"):
        return f"{name} (another labkit state root's)"
    return name


def network_checks(networks: list[dict[str, Any]], root: bool) -> list[dict[str, Any]]:
    """Subnet clashes the host has now, and (as root) whether each labkit bridge has its nftables guard.

    A clash is two interfaces with overlapping IPv4 subnets — Docker's ``docker0``
    beside a bridge, two state roots' bridges — so the host routes one's packets
    to the other; or a network of this state root whose saved subnet another
    interface now holds (its bridge moves to a free pool when it next comes up).
    """
    # Each check loads the room it asks about: labkit.linux imports on Linux alone (syscalls.py binds unshare(2))
    from labkit.linux import network as net

    try:
        in_use = net.subnets_in_use()
    except Exception as err:  # no netlink here (a locked-down container)
        return [_check("subnets", False, f"could not read the host's addresses: {err}", "")]
    own = {r["Options"]["com.docker.network.bridge.name"]: r["Name"] for r in networks if r.get("Driver") == "bridge"}
    nets = sorted({(n, name) for n, name in in_use if name and name != "lo" and n.prefixlen < 32},
                  key=lambda item: (item[0], item[1]))
    clashes = []
    for i, (a, name_a) in enumerate(nets):
        for b, name_b in nets[i + 1:]:
            if name_a != name_b and a.overlaps(b):
                clashes.append(f"{_whose(name_a, own)} on {a} overlaps {_whose(name_b, own)} on {b}")
    for rec in networks:
        if rec.get("Driver") != "bridge" or not rec["IPAM"]["Config"]:
            continue
        bridge = rec["Options"]["com.docker.network.bridge.name"]
        subnet = ipaddress.IPv4Network(rec["IPAM"]["Config"][0]["Subnet"])
        holder = clash(subnet, [(n, name) for n, name in in_use if name != bridge])
        if holder and not net.bridge_up(bridge):
            clashes.append(f"network {rec['Name']}'s saved subnet {subnet} is in use by {holder}: its bridge "
                           "takes a free pool when it next comes up")
    out = [_check(
        "subnets", not clashes, "; ".join(clashes) or f"no overlap among this host's {len(nets)} IPv4 subnets",
        "Two interfaces on one subnet make the host route one's packets to the other: containers there stop "
        "answering. labkit checks a bridge's subnet against every address and route of the host each time it "
        "makes the bridge, and picks a free pool on a clash; a clash listed here was made by something else, "
        "or is one labkit will step around next time."
        if clashes else "Each bridge's subnet is checked against every address and route of the host each time "
        "the bridge is made: a taken subnet (Docker's docker0, another state root's bridge) moves to a free pool.",
    )]
    if root:
        nft = helpers.which("nft")
        guarded = set(net.guarded_bridges()) if nft else set()
        bridges = {name for _, name in nets if name.startswith("lkbr")}
        bare, stale = sorted(bridges - guarded), sorted(b for b in guarded if not net.bridge_exists(b))
        out.append(_check(
            "bridge guards", bool(nft) and not bare and not stale,
            "nft not installed" if not nft else
            "; ".join([f"no table for {', '.join(bare)}"] * bool(bare) + [f"tables left by gone bridges: "
                      f"{', '.join(net.guard_table(b) for b in stale)}"] * bool(stale))
            or f"{len(guarded)} labkit bridge(s), each with its nftables table",
            "Each labkit bridge comes with an nftables table that drops packets for its subnet arriving on any "
            "other interface, so a neighbour that routes the subnet through this host reaches no container. "
            + ("Install the nftables package: without nft no bridge can be made." if not nft else
               "A bridge without one was made by an older labkit (it gets one when it is next made); a table left "
               "by a gone bridge guards nothing and can be deleted with 'nft delete table ip NAME'."
               if bare or stale else ""),
        ))
    return out
