"""A container's network: its own namespace, a veth pair, a bridge, an address.

What ``docker run`` does for the default ``bridge`` network, step by step
(netlink through pyroute2, the way ``ip link``/``ip addr`` talk to the kernel):

1. A bridge — a virtual switch in the host (Docker's ``docker0``) — with the
   network's gateway address, e.g. ``172.17.0.1/16``. Made once per network.
2. A new network namespace for the container (``CLONE_NEWNET``, see
   network_namespaces(7)), pinned by a bind mount of ``/proc/PID/ns/net`` so it
   outlives the process that made it; inspect calls that file ``SandboxKey``.
3. A veth pair — two interfaces joined by a virtual cable (veth(4)). One end is
   plugged into the bridge on the host; the other is created inside the
   container's namespace as ``eth0``, with a MAC derived from the container's
   address as Docker does (``02:42`` + the four address bytes).
4. The container's PID 1 joins that namespace (setns(2)), gives eth0 its
   address, brings it and ``lo`` up and adds the default route through the
   gateway (ioctl(2)s, ``pid1.c``'s configure_eth0),
   then execs.

When PID 1 exits, its supervisor unmounts the namespace file; the kernel then
destroys the namespace, and with it the container's end of the veth pair — and
a veth pair dies with either end, so the host's end goes too.

Two promises hold on a shared host, where a neighbour may route the bridge's
subnet through this host (with ``net.ipv4.ip_forward=1`` the kernel forwards
whatever arrives):

* **A bridge's addresses answer only on the bridge.** Each bridge comes with an
  nftables table of its own (:func:`guard_bridge`, ``labkit-<bridge>``) whose
  first rule, in the prerouting hook at the raw priority (before conntrack and
  routing, nft(8)), drops every packet for the bridge's subnet — its containers
  and its gateway — that arrived on any interface but the bridge (or the host's
  own ``lo``). Docker 28 drops direct access the same way, one raw-table rule
  per container address; a rule per subnet also covers addresses not handed out
  yet and needs no change per container. The table goes with the bridge.
* **Published ports stay where they are published.** ``-p 3000:3000`` listens
  on 127.0.0.1; the second socket that lets other containers reach the port
  through the gateway is bound to the bridge device (``SO_BINDTODEVICE``,
  socket(7)), so the kernel hands it only connections that came in on the
  bridge, and the table refuses the host's own connections to the gateway.

And a bridge's subnet never clashes: whenever a bridge is (re)made, its subnet
is checked against every route and address of the host — another state root's
live bridge, Docker's ``docker0``, a VPN — under a host-wide lock
(:func:`host_lock`), and a taken one gives way to the next free pool
(:func:`pick_subnet`).

pyroute2 costs ~0.15 s to import, so this module imports it only when a
container really needs a bridge.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import ipaddress
import os
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from labkit import helpers
from labkit.errors import Conflict, HostUnsupported
from labkit.linux import syscalls
from labkit.model import views
from labkit.model.endpoints import Endpoint

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
MS_BIND = 4096

#: Held while a bridge's subnet is checked and the bridge made, by every state root on the host: two
#: roots bringing bridges up at once would otherwise both see a pool free and both take it.
HOST_LOCK = "/run/labkit/networks.lock"


def veth_name(cid: str, index: int = 0) -> str:
    """The host end of a container's veth pair: ``lk`` + 11 characters of its id; for the ``index``-th network
    it joined after its first (``network connect``), ``lk`` + 10 characters + ``x`` + the index (IFNAMSIZ: 15)."""
    return f"lk{cid[:11]}" if index == 0 else f"lk{cid[:10]}x{index}"


@contextlib.contextmanager
def host_lock(path: str = HOST_LOCK) -> Iterator[None]:
    """Hold the host-wide lock under which bridges are checked and made (flock(2) on ``path``).

    The lock file lives in a directory only root may write, so no user can hold it
    to stall root's containers.
    """
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _outside_event_loop(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` on a worker thread when this thread runs an asyncio loop (a Jupyter kernel does).

    pyroute2 drives its netlink sockets with asyncio and refuses to start inside a
    running loop ("This event loop is already running"); on a thread of its own it works.
    """

    @functools.wraps(fn)
    def run(*args: Any, **kw: Any) -> T:
        if not _in_event_loop():
            return fn(*args, **kw)
        import concurrent.futures  # with its threads and queues, only for a caller inside a loop

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(fn, *args, **kw).result()

    return run


def _in_event_loop() -> bool:
    """Whether this thread runs an asyncio loop. None runs where asyncio was never imported, so it is not
    imported here: importing it would cost every engine start tens of milliseconds."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _ipr():  # type: ignore[no-untyped-def]
    from pyroute2 import IPRoute  # heavy: only on paths that make networks

    return IPRoute()


@_outside_event_loop
def subnets_in_use(exclude: str = "") -> list[tuple[ipaddress.IPv4Network, str]]:
    """Every IPv4 subnet this host uses, with the interface that uses it, except ``exclude``'s.

    The addresses of every interface (``ip addr``) and the routes of every table
    (``ip route show table all``: a VPN's policy routes too), default routes
    left out — and so are routes shorter than /8, such as the halves of the address
    space (0.0.0.0/1, 128.0.0.0/1) a VPN installs in place of a default route: they
    stand for "everything else", and a bridge's longer prefix rightly wins over them
    (longest-prefix match). A route through a bridge with no port yet is listed ("linkdown"):
    another root's idle-but-up bridge counts. Only a bridge that is up holds
    its subnet; a root whose bridges have all gone holds nothing, and takes its
    subnet back — or another — when its next container brings a bridge up.
    """
    found: list[tuple[ipaddress.IPv4Network, str]] = []
    with _ipr() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for a in ipr.get_addr(family=socket.AF_INET):
            name = names.get(a["index"], "")
            if name != exclude:
                found.append((ipaddress.IPv4Network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False),
                              name))
        for r in ipr.get_routes(family=socket.AF_INET):
            dst = r.get_attr("RTA_DST")
            name = names.get(r.get_attr("RTA_OIF"), "")
            if r["dst_len"] >= 8 and dst and name != exclude:
                found.append((ipaddress.IPv4Network(f"{dst}/{r['dst_len']}", strict=False), name or "a route"))
    return found


def bridge_up(name: str) -> bool:
    """Whether bridge ``name`` is there and up (read from sysfs: no netlink, no pyroute2 import).

    A bridge that is up was made by :func:`make_bridge`, its subnet checked then:
    a start that finds it up plugs in at once, which is most of a bridged start's
    saving once the bridge stays.
    """
    try:
        with open(f"/sys/class/net/{name}/flags") as f:
            return bool(int(f.read(), 16) & 0x1) and os.path.isdir(f"/sys/class/net/{name}/bridge")  # IFF_UP
    except (OSError, ValueError):
        return False


@_outside_event_loop
def make_bridge(name: str, subnet: ipaddress.IPv4Network, gateway: str) -> None:
    """Make the bridge (or take the one there), guard it, give it only ``gateway`` and bring it up.

    The guard (:func:`guard_bridge`) is in place before the bridge has its address,
    so there is no moment when the subnet is reachable from elsewhere. An address
    an earlier subnet left on the bridge is removed. Call it under :func:`host_lock`,
    with ``subnet`` checked against :func:`subnets_in_use`.
    """
    guard_bridge(name, subnet, gateway)
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            index = found[0]
        else:
            # A bridge whose address is not set takes its lowest port's MAC and changes it when that port
            # goes (br_stp_recalculate_bridge_id skips a bridge with NET_ADDR_SET): every container would
            # then hold a stale MAC for its gateway and answer the host into the void until its neighbour
            # entry expires. Docker sets docker0's address for the same reason.
            ipr.link("add", ifname=name, kind="bridge", address=bridge_mac())
            index = ipr.link_lookup(ifname=name)[0]
        have = False
        for a in ipr.get_addr(index=index, family=socket.AF_INET):
            if a.get_attr("IFA_ADDRESS") == gateway and a["prefixlen"] == subnet.prefixlen:
                have = True
            else:
                ipr.addr("del", index=index, address=a.get_attr("IFA_ADDRESS"), prefixlen=a["prefixlen"])
        if not have:
            ipr.addr("add", index=index, address=gateway, prefixlen=subnet.prefixlen)
        ipr.link("set", index=index, state="up")


def guard_table(bridge: str) -> str:
    """The nftables table that guards ``bridge``: one per bridge, so state roots never share or clear one."""
    return f"labkit-{bridge}"


def _nft(script: str) -> None:
    """Run an nft(8) script (``nft -f -``): one transaction, applied whole or not at all."""
    nft = helpers.which("nft")
    if nft is None:
        raise HostUnsupported("labkit keeps a bridge's addresses to the bridge with nftables, and nft is not "
                              "installed", "Install the nftables package (apt-get install nftables), or use "
                              "--network none or host")
    done = helpers.run([nft, "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HostUnsupported(f"nft could not apply the bridge's rules: {done.stderr.strip() or done.returncode}",
                              "Check that the kernel has nf_tables (modprobe nf_tables), or use --network "
                              "none or host")


def guard_bridge(bridge: str, subnet: ipaddress.IPv4Network, gateway: str) -> None:
    """Keep ``subnet`` to ``bridge``: table ``labkit-<bridge>``, made anew.

    * ``raw-prerouting`` hooks prerouting at the raw priority (-300), before
      conntrack and the routing decision (nft(8), "Address families", "Chains"):
      a packet for a container — or the gateway — that arrived on any interface
      but the bridge is dropped before the host could forward or deliver it, as
      Docker 28's "DROP DIRECT ACCESS" rules do. Packets from the bridge
      (containers to each other, to the gateway) pass; so do the host's own, which
      reach the gateway through ``lo`` and a container through the output hook.
    * ``input`` refuses the host's own TCP connections to the gateway address (a
      reset answers the SYN; only SYNs match, or the reset — addressed to the
      gateway too — would be refused in turn): what listens there, a published
      port's second socket, is for the bridge's containers; the host has 127.0.0.1.

    ``add table`` then ``delete table`` then the table: a table an earlier bridge
    of this name left is replaced in the same transaction.
    """
    table = guard_table(bridge)
    _nft(f"""add table ip {table}
delete table ip {table}
table ip {table} {{
    chain raw-prerouting {{
        type filter hook prerouting priority raw; policy accept;
        iifname != {{ "{bridge}", "lo" }} ip daddr {subnet} counter drop comment "only {bridge} reaches {subnet}"
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname != "{bridge}" ip daddr {gateway} tcp flags & (syn | ack) == syn counter reject with tcp reset \\
            comment "connections to {gateway} come from {bridge} only"
    }}
}}
""")


def unguard_bridge(bridge: str) -> None:
    """Remove ``bridge``'s table, if there is one (``destroy`` is newer than Debian 12's nft: add, then delete)."""
    table = guard_table(bridge)
    _nft(f"add table ip {table}\ndelete table ip {table}\n")


def guarded_bridges() -> list[str]:
    """The bridges labkit's nftables tables guard (``nft list tables``), left behind or not."""
    nft = helpers.which("nft")
    if nft is None:
        return []
    out = helpers.run([nft, "list", "tables", "ip"], capture_output=True, text=True, check=False).stdout
    return [line.split()[2][len("labkit-"):] for line in out.splitlines()
            if len(line.split()) == 3 and line.split()[2].startswith("labkit-")]


def bridge_mac() -> str:
    """A random, locally administered unicast MAC with Docker's ``02:42`` prefix, for a bridge of its own."""
    return "02:42:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(4))


def bridge_exists(name: str) -> bool:
    """Whether an interface of this name exists (read from sysfs: no netlink, no pyroute2 import)."""
    return os.path.exists(f"/sys/class/net/{name}")


@_outside_event_loop
def delete_bridge(name: str) -> bool:
    """Delete a bridge if it exists, and its nftables table with it; True if a bridge was deleted."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            ipr.link("del", index=found[0])
    unguard_bridge(name)
    return bool(found)


def make_netns(path: str) -> None:
    """Create a network namespace pinned at ``path``.

    A short-lived thread unshares CLONE_NEWNET (which moves only that thread, see
    unshare(2)), and its ``/proc/thread-self/ns/net`` is bind-mounted on ``path`` —
    the way ``ip netns add`` pins one, without forking a process.
    """
    Path(path).touch()

    def pin() -> None:
        syscalls.unshare(CLONE_NEWNET)
        syscalls.mount(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net", path, None, MS_BIND, None)

    _on_thread(pin)


def _on_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` on a short-lived thread of its own and return its result (or raise its error).

    For namespace work that must not touch the calling thread: setns(2) and unshare(2)
    with CLONE_NEWNET move only the thread that calls them.
    """
    result: list[Any] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.append(fn(*args))
        except BaseException as err:
            failure.append(err)

    worker = threading.Thread(target=work, name="labkit-netns")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return result[0]


def drop_netns(path: str) -> None:
    """Unpin a network namespace; the kernel frees it (and its veth) when nothing else holds it."""
    if os.path.ismount(path):
        syscalls.umount2(path, syscalls.MNT_DETACH)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@_outside_event_loop
def attach(endpoint: Endpoint) -> None:
    """Wire a pinned namespace to its bridge: a veth pair, its host end on the bridge and up, eth0 inside.

    eth0 gets its MAC here; its address, ``lo`` and the default route are set by the
    container's first process once it has joined the namespace
    (``pid1.c``'s configure_eth0): no netlink
    socket has to be opened inside the namespace for them.
    """
    with _ipr() as ipr:
        _add_veth(ipr, endpoint, "eth0")


def _add_veth(ipr: Any, endpoint: Endpoint, ifname: str) -> None:
    """A veth pair for ``endpoint``: ``ifname`` inside its pinned namespace with its MAC, the host end on its
    bridge and up; a host end of the same name left by the last run goes first."""
    stale = ipr.link_lookup(ifname=endpoint.veth)
    if stale:
        # The last run's host end: its namespace was unpinned, and the kernel deletes a veth pair when
        # it frees the namespace holding its peer, a moment later (net/core/dev.c, default_device_exit):
        # it may be gone by the time it is asked to go.
        with contextlib.suppress(FileNotFoundError):
            _delete_link(ipr, stale[0])
    ipr.link("add", ifname=endpoint.veth, kind="veth",
             peer={"ifname": ifname, "net_ns_fd": endpoint.sandbox, "address": endpoint.mac})
    host_end = ipr.link_lookup(ifname=endpoint.veth)[0]
    bridge = ipr.link_lookup(ifname=endpoint.bridge)[0]
    ipr.link("set", index=host_end, master=bridge, state="up")


@_outside_event_loop
def plug(endpoint: Endpoint, ifname: str) -> None:
    """Hot-plug a running container into one more network (``network connect``): a veth pair, its host end on
    ``endpoint.bridge`` and up, ``ifname`` inside the pinned namespace with the endpoint's MAC, address and
    broadcast, up (its subnet's route comes with the address, rtnetlink(7)).

    What PID 1 does for ``eth0`` at start (``pid1.c``'s configure_eth0) is done here from outside: a thread joins
    the namespace (setns(2) moves only the calling thread) and talks netlink there.
    """
    with _ipr() as ipr:
        _add_veth(ipr, endpoint, ifname)
    try:
        _on_thread(_inside, endpoint.sandbox, _address, endpoint, ifname)
    except BaseException:
        unplug(endpoint.veth)
        raise


def _inside(sandbox: str, fn: Callable[..., T], *args: Any) -> T:
    """On a thread of its own: join the network namespace pinned at ``sandbox`` (setns(2)), then run ``fn`` with
    a netlink socket opened there."""
    fd = os.open(sandbox, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(fd, CLONE_NEWNET)
    finally:
        os.close(fd)
    with _ipr() as ipr:
        return fn(ipr, *args)


def _address(ipr: Any, endpoint: Endpoint, ifname: str) -> None:
    index = ipr.link_lookup(ifname=ifname)[0]
    subnet = ipaddress.IPv4Network(f"{endpoint.ip}/{endpoint.prefixlen}", strict=False)
    ipr.addr("add", index=index, address=endpoint.ip, prefixlen=endpoint.prefixlen,
             broadcast=str(subnet.broadcast_address))
    ipr.link("set", index=index, state="up")


def _default_route(ipr: Any, gateway: str) -> None:
    ipr.route("replace", dst="0.0.0.0/0", gateway=gateway)


@_outside_event_loop
def route_through(sandbox: str, gateway: str) -> None:
    """Make ``gateway`` the default route of the namespace pinned at ``sandbox`` (``ip route replace default``)."""
    _on_thread(_inside, sandbox, _default_route, gateway)


def gateway_endpoint(endpoints: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The endpoint a container's default route goes through: of its networks, the one whose name sorts first
    (libnetwork orders a sandbox's endpoints so, and routes through the first), None without any."""
    return min(endpoints, key=lambda e: e["Network"], default=None)


@_outside_event_loop
def unplug(veth: str) -> bool:
    """Take a container off one network while it runs (``network disconnect``): delete the host end of its veth
    pair, which deletes the pair (veth(4)), the container's interface and its address and routes with it.
    True if there was one to delete."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=veth)
        if not found:
            return False
        try:
            _delete_link(ipr, found[0])
        except FileNotFoundError:
            return False
    return True


def _delete_link(ipr: Any, index: int) -> None:
    """Delete link ``index``; FileNotFoundError when it is already gone (ENODEV)."""
    from pyroute2.netlink.exceptions import NetlinkError  # heavy: pyroute2 loads only where links are made

    try:
        ipr.link("del", index=index)
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            raise FileNotFoundError(errno.ENODEV, os.strerror(errno.ENODEV)) from err
        raise


def listen(host_ip: str, host_port: int, device: str = "") -> socket.socket:
    """Bind the host side of a published TCP port (0 picks a free port), or say plainly why not.

    With ``device``, the socket is bound to that interface too (``SO_BINDTODEVICE``,
    socket(7)): the kernel gives it only connections that arrived on ``device`` —
    a port on the gateway that containers on the bridge reach, and nobody else.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if device:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        sock.bind((host_ip, host_port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise Conflict(
            f"driver failed programming external connectivity on endpoint: Bind for {host_ip}:{host_port} "
            f"failed: {err.strerror.lower() if err.strerror else err}",
            "Ports below 1024 need root: pick one above 1023, e.g. -p 8080:80"
            if err.errno in (errno.EACCES, errno.EPERM) and host_port < 1024
            else "Pick another host port, e.g. -p 3001:3000, or stop whatever uses it",
        ) from err
    return sock


def network_view(pid: int, exec_text: Callable[[str], tuple[int, str]], veth: str, shares_host: bool,
                 proc: str = "/proc") -> views.NetworkView:
    """The interfaces of the host's network namespace and of a container's, as the kernel lists them.

    The host's come from ``ip -o link`` and ``ip -o addr`` run here (names, addresses, MACs,
    and the bridge each veth end is plugged into); the container's from the same two
    commands run inside it (``exec_text``), or, if its image has no ``ip``, from
    ``<proc>/<pid>/net/dev`` (the names in PID 1's network namespace).

    Args:
        pid: Host PID of the container's PID 1.
        exec_text: Runs a ``/bin/sh -c`` script in the container; returns ``(exit code, output)``.
        veth: The host end of the container's veth pair ("" without one).
        shares_host: The container uses the host's namespace (``--network host``).
        proc: Where the host's procfs is mounted.
    """
    host = _interfaces_here(proc)
    if shares_host:
        return views.NetworkView(host, host)
    code, out = exec_text("ip -o link 2>/dev/null; ip -o addr")
    inside = views.parse_ip(out) if code == 0 else ()
    if not inside:
        with open(f"{proc}/{pid}/net/dev") as f:
            inside = tuple(views.Interface(n) for n in views.parse_net_dev(f.read()))
    return views.NetworkView(host, inside, veth)


def _interfaces_here(proc: str) -> tuple[views.Interface, ...]:
    """This network namespace's interfaces: from ``ip`` when it is installed, else their names from procfs."""
    ip = helpers.which("ip")
    if ip:
        text = "".join(helpers.run([ip, "-o", what], capture_output=True, text=True, check=False).stdout
                       for what in ("link", "addr"))
        found = views.parse_ip(text)
        if found:
            return found
    with open(f"{proc}/self/net/dev") as f:
        return tuple(views.Interface(n) for n in views.parse_net_dev(f.read()))


#: How long a GET from a container may take, connecting and answering (seconds).
HTTP_TIMEOUT = 2.0


def http_get(settings: dict[str, Any], port: int, path: str = "/") -> tuple[int, str]:
    """``(status, body)`` of a GET of ``path`` from a container's TCP ``port``, as a client on the host reaches it.

    Through the host port published for it (``-p``; an unspecified host address is reached on
    127.0.0.1), else at the container's own address on its bridge (``settings`` is its
    ``NetworkSettings``). Each of connecting and reading waits at most :data:`HTTP_TIMEOUT` seconds.

    Raises:
        ConnectionRefusedError: The port is neither published nor reachable on a bridge, or nothing listens.
        OSError: The connection timed out or was reset.
    """
    bound = [b for b in (settings.get("Ports") or {}).get(f"{port}/tcp") or [] if b.get("HostPort")]
    if bound:
        host_ip = bound[0].get("HostIp") or ""
        host, target = ("127.0.0.1" if host_ip in ("", "0.0.0.0", "::") else host_ip), int(bound[0]["HostPort"])
    else:
        addresses = [n.get("IPAddress") for n in (settings.get("Networks") or {}).values() if n.get("IPAddress")]
        if not addresses:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"port {port}/tcp of the container is not published "
                                         "and the container has no address the host reaches")
        host, target = addresses[0], port
    # Imported here, not at the top: http.client pulls in email and ssl (a third of the import of
    # labkit.linux.backend in a fresh interpreter), and only this lesson helper needs it.
    import http.client

    conn = http.client.HTTPConnection(host, target, timeout=HTTP_TIMEOUT)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read().decode(errors="replace")
    finally:
        conn.close()
