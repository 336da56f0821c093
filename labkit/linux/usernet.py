"""A network without root: slirp4netns or pasta in place of a veth pair and a bridge.

A veth pair and a bridge live in the host's network namespace, which a user
namespace cannot touch (:mod:`labkit.linux.network` makes them as root). A
rootless container still gets its own network namespace; ``none`` and ``host``
work as with root, and for the default network and ``-p`` a user-mode network
stack stands in for the bridge, as with rootless Podman: ``slirp4netns``
(:func:`attach_slirp`), or ``pasta`` where only it is installed
(:func:`attach_pasta`), gives the container a tap device with 10.0.2.100/24,
carries its packets out through ordinary sockets of the user, and publishes
ports by listening on the host for it. Without either the default network is a
namespace with only ``lo``, and ``-p`` is refused naming the packages.

The helper runs detached for as long as the container's supervisor lives (its
lifeline), and ``network.json`` records it (``Driver``, ``SlirpPid``,
``SlirpStartTime``) so that ``rm`` and a restart can end it.
"""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import socket
import tempfile
import time

from labkit import helpers
from labkit.errors import Conflict, InvalidArgument, StartFailed
from labkit.helpers import network_helper
from labkit.linux import network as net
from labkit.linux import procfs
from labkit.model.endpoints import (
    PASTA,
    SLIRP_ADDRESS,
    SLIRP_DNS,
    SLIRP_GATEWAY,
    SLIRP_PREFIXLEN,
    SLIRP_TAP,
    mac_for,
    no_user_network,
)

#: The largest MTU slirp4netns allows but one (Podman's choice): fewer, bigger packets to copy.
SLIRP_MTU = 65520


def slirp4netns() -> str | None:
    """The path of ``slirp4netns``, or None."""
    return helpers.which("slirp4netns")


def plan_user_network(network: str, network_id: str, name: str, hostname: str, ports) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """The ``network.json`` of a rootless container on the default network, before it starts.

    Its ``Driver`` is the helper that will carry it (:func:`network_helper`);
    either gives the container the same address, gateway, DNS and MAC.

    Every published port is checked free on the host now (a port in use is
    refused before anything is made, as with root) and a ``-p 80`` without a
    host port gets a free one. Published ports listen on 127.0.0.1 unless an
    address is given.

    Args:
        network: The network's name (``bridge``).
        network_id: Its id, for inspect.
        name: The container's name, for ``/etc/hosts``.
        hostname: Its hostname.
        ports: The ``-p`` bindings (:class:`~labkit.model.container.PortSpec`).

    Raises:
        HostUnsupported: Neither slirp4netns nor pasta is installed.
        InvalidArgument: A port is not tcp.
        Conflict: A host port is in use.
    """
    helper = network_helper()
    if helper is None:
        raise no_user_network("publishing ports" if ports else f"network {network}")
    published: dict[str, list[dict[str, str]]] = {}
    for p in ports:
        key = f"{p.container_port}/{p.protocol}"
        if p.protocol != "tcp":
            raise InvalidArgument(f"publishing {key} is not supported", "labkit publishes tcp ports only")
        host_ip = p.host_ip or "127.0.0.1"  # a learner's lab is not reachable from the classroom network
        probe = net.listen(host_ip, int(p.host_port or 0))
        port = probe.getsockname()[1]
        probe.close()  # slirp4netns binds it once the container's network exists
        published.setdefault(key, []).append({"HostIp": host_ip, "HostPort": str(port)})
    return {"Network": network, "NetworkID": network_id, "Driver": helper, "Bridge": "", "Veth": "",
            "Interface": SLIRP_TAP, "IPAddress": SLIRP_ADDRESS, "IPPrefixLen": SLIRP_PREFIXLEN,
            "Gateway": SLIRP_GATEWAY, "DNS": SLIRP_DNS, "MacAddress": mac_for(SLIRP_ADDRESS), "Sandbox": "",
            "SandboxKey": "", "Ports": published, "Name": name, "Hostname": hostname,
            "SlirpPid": 0, "SlirpStartTime": 0}


def slirp_argv(pid: int, exit_fd: int, ready_fd: int, api_socket: str | None = None) -> list[str]:
    """The slirp4netns command that gives PID ``pid``'s network namespace a tap device and a way out.

    * ``--configure``: bring ``tap0`` up with 10.0.2.100/24, a default route
      through 10.0.2.2 and the MTU; ``--ready-fd`` says when that is done.
    * ``--disable-host-loopback``: 10.0.2.2 does not lead to the host's
      127.0.0.1, so a container cannot reach what the host serves only locally.
    * ``--exit-fd``: slirp4netns ends when this descriptor hangs up — the
      lifeline only the container's supervisor holds, so it ends with the
      container however that ends.
    * ``--api-socket``: where ``add_hostfwd`` requests publish ports.

    slirp4netns joins the target's user and network namespaces (setns(2); the
    user owns them, so it may), opens ``/dev/net/tun`` there, and passes the
    tap's descriptor back to its other half in the host's namespaces, which
    runs the TCP/IP stack (libslirp) that turns the container's packets into
    ordinary sockets of the user.
    """
    argv = [slirp4netns() or "slirp4netns", "--configure", f"--mtu={SLIRP_MTU}", "--disable-host-loopback",
            f"--macaddress={mac_for(SLIRP_ADDRESS)}", f"--exit-fd={exit_fd}", f"--ready-fd={ready_fd}"]
    if api_socket:
        argv.append(f"--api-socket={api_socket}")
    return [*argv, str(pid), SLIRP_TAP]


def attach_slirp(info: dict, pid: int, lifeline: int, log_path: str, timeout: float = 10.0) -> dict:  # type: ignore[type-arg]
    """Start slirp4netns for PID 1 ``pid`` and publish ``info``'s ports through it; return what to record.

    slirp4netns runs detached (its own session, nobody's child but init's), so
    no caller has to reap it. Its output goes to ``log_path``.

    Returns:
        ``SlirpPid``, ``SlirpStartTime`` and ``SandboxKey`` (PID 1's network namespace).

    Raises:
        StartFailed: slirp4netns did not configure the network (its log's last lines say why).
        Conflict: A host port could not be bound (taken since :func:`plan_user_network` checked it).
    """
    api_dir = tempfile.mkdtemp(prefix="labkit-slirp-") if info["Ports"] else None
    api = os.path.join(api_dir, "api.sock") if api_dir else None
    ready_r, ready_w = os.pipe()
    slirp_pid = 0
    try:
        slirp_pid = _spawn_detached(slirp_argv(pid, lifeline, ready_w, api), (lifeline, ready_w), log_path)
        os.close(ready_w)
        ready_w = -1
        if _read_ready(ready_r, timeout) != b"1":
            raise StartFailed(f"slirp4netns could not give the container a network: {_tail(log_path)}", 128)
        started = procfs.start_time(slirp_pid)
        for key, binds in info["Ports"].items():
            guest = int(key.split("/")[0])
            for b in binds:
                _add_hostfwd(api, b["HostIp"], int(b["HostPort"]), guest)  # type: ignore[arg-type]
        return {"SlirpPid": slirp_pid, "SlirpStartTime": started, "SandboxKey": f"/proc/{pid}/ns/net"}
    except BaseException:
        if slirp_pid:
            stop_helper({"SlirpPid": slirp_pid, "SlirpStartTime": 0})
        raise
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)
        if api_dir:
            shutil.rmtree(api_dir, ignore_errors=True)  # the ports are published; no one asks it anything else


def attach_user_network(info: dict, pid: int, lifeline: int, log_path: str) -> dict:  # type: ignore[type-arg]
    """Give PID 1 ``pid`` the network ``info`` plans, through the helper its ``Driver`` names."""
    attach = attach_pasta if info.get("Driver") == PASTA else attach_slirp
    return attach(info, pid, lifeline, log_path)


#: Runs pasta for as long as the container's supervisor lives. pasta does not notice that a namespace
#: it joined by PID went away, so this shell reads the lifeline (its stdin): at end of file the
#: supervisor is gone, and pasta, still the shell's unreaped child (its PID not reusable), is ended.
PASTA_WRAPPER = 'pasta "$@" </dev/null & p=$!; cat >/dev/null; kill "$p" 2>/dev/null; wait "$p"'


def pasta_argv(pid: int, ports: dict) -> list[str]:  # type: ignore[type-arg]
    """The pasta command that gives PID ``pid``'s network namespace what slirp4netns would give it.

    * ``--config-net`` with ``-a``/``-n``/``-g``: ``tap0`` up with 10.0.2.100/24 and a
      default route through 10.0.2.2 (pasta would copy the host's addresses otherwise);
      ``--dns-forward 10.0.2.3``: that address answers DNS from the host's resolvers.
    * ``--no-map-gw``: 10.0.2.2 does not lead to the host's 127.0.0.1, as
      slirp4netns's ``--disable-host-loopback``.
    * ``-t ADDR/HOST:CONTAINER`` per published port; no other forwarding
      (``-u none -T none -U none``), where pasta would forward every port it sees bound.
    * ``-f``: stay in the foreground of :data:`PASTA_WRAPPER`, which ends it.
    """
    forwards = [f"{b['HostIp']}/{b['HostPort']}:{key.split('/')[0]}" for key, binds in ports.items() for b in binds]
    return ["sh", "-c", PASTA_WRAPPER, "pasta", "-f", "-q", "--config-net", "-a", SLIRP_ADDRESS,
            "-n", str(SLIRP_PREFIXLEN), "-g", SLIRP_GATEWAY, "--dns-forward", SLIRP_DNS, "-I", SLIRP_TAP,
            "--ns-mac-addr", mac_for(SLIRP_ADDRESS), "--no-map-gw", "-t", ",".join(forwards) or "none",
            "-u", "none", "-T", "none", "-U", "none", str(pid)]


def attach_pasta(info: dict, pid: int, lifeline: int, log_path: str, timeout: float = 10.0) -> dict:  # type: ignore[type-arg]
    """Start pasta for PID 1 ``pid`` with ``info``'s ports; return what to record (as :func:`attach_slirp`).

    pasta configures the namespace itself; it is ready once PID 1's namespace has
    its default route through the gateway (``/proc/PID/net/route``).

    Raises:
        StartFailed: pasta did not configure the network (its log's last lines say why).
    """
    wrapper = _spawn_detached(pasta_argv(pid, info["Ports"]), (), log_path, stdin=lifeline)
    try:
        deadline = time.monotonic() + timeout
        while not _routes_through(pid, SLIRP_GATEWAY):
            if time.monotonic() > deadline or not procfs.alive(wrapper, 0):
                raise StartFailed(f"pasta could not give the container a network: {_tail(log_path)}", 128)
            time.sleep(0.005)
        return {"SlirpPid": wrapper, "SlirpStartTime": procfs.start_time(wrapper), "SandboxKey": f"/proc/{pid}/ns/net"}
    except BaseException:
        stop_helper({"Driver": PASTA, "SlirpPid": wrapper, "SlirpStartTime": 0})
        raise


def _routes_through(pid: int, gateway: str) -> bool:
    """Whether PID ``pid``'s network namespace has a default route through ``gateway`` (proc(5), net/route)."""
    want = "".join(f"{int(b):02X}" for b in reversed(gateway.split(".")))  # little-endian hex, as the kernel prints
    try:
        with open(f"/proc/{pid}/net/route") as f:
            return any(fields[1] == "00000000" and fields[2] == want
                       for fields in (ln.split() for ln in f.read().splitlines()[1:]) if len(fields) > 2)
    except OSError:
        return False


def _spawn_detached(argv: list[str], fds: tuple[int, ...], log_path: str, stdin: int | None = None) -> int:
    """Start the network helper ``argv`` detached, with labkit's helper environment (:mod:`labkit.helpers`)."""
    pid = helpers.spawn_detached(argv, fds, log_path, stdin)
    if not pid:
        raise StartFailed(f"could not start {argv[0]}", 128)
    return pid


def _read_ready(fd: int, timeout: float) -> bytes:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(int(timeout * 1000)):
        return b""
    return os.read(fd, 1)


def _tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            return " / ".join(ln.strip() for ln in f.read().splitlines()[-lines:]) or "no output"
    except OSError:
        return "no output"


def _add_hostfwd(api: str, host_ip: str, host_port: int, guest_port: int, timeout: float = 5.0) -> None:
    """Publish ``host_ip:host_port`` to the container's ``guest_port`` over slirp4netns's API socket."""
    request = {"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": host_ip, "host_port": host_port,
                                                        "guest_addr": SLIRP_ADDRESS, "guest_port": guest_port}}
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(api)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)  # the API socket appears just after the network is configured
    with sock:
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    answer = json.loads(reply or b"{}")
    if "return" not in answer:
        desc = (answer.get("error") or {}).get("desc", "no answer")
        raise Conflict(f"driver failed programming external connectivity on endpoint: Bind for "
                       f"{host_ip}:{host_port} failed: {desc}",
                       "Pick another host port, e.g. -p 3001:3000, or stop whatever uses it")


def helper_running(info: dict | None, proc: str = "/proc") -> bool:  # type: ignore[type-arg]
    """Whether the network helper ``info`` records still runs (the same process: its start time matches).

    For slirp4netns that is slirp4netns itself; for pasta, the shell that holds it (:data:`PASTA_WRAPPER`).
    """
    if not info or not info.get("SlirpPid"):
        return False
    pid = int(info["SlirpPid"])
    try:
        with open(f"{proc}/{pid}/comm") as f:
            if f.read().strip() != ("sh" if info.get("Driver") == PASTA else "slirp4netns"):
                return False
    except OSError:
        return False
    return procfs.alive(pid, int(info.get("SlirpStartTime") or 0), proc)


def stop_helper(info: dict | None, timeout: float = 2.0) -> bool:  # type: ignore[type-arg]
    """End the network helper ``info`` records, if it still runs; True if it had to.

    It ends by itself when the container's supervisor exits (its lifeline);
    this is for ``rm`` and for a restart, whose new helper needs the same host
    ports. pasta's shell leads a process group of its own (its session), so
    the signal goes to the group: the shell and pasta both.
    """
    if not helper_running(info):
        return False
    try:
        fd = os.pidfd_open(int(info["SlirpPid"]))  # type: ignore[index]
    except ProcessLookupError:
        return False
    except OSError as error:
        # EINVAL: it ended and was reaped between the two looks, and its PID lives on only as the id of the
        # session it led (pidfd_create() in kernel/pid.c wants a task of PIDTYPE_TGID): as gone as ESRCH.
        if error.errno == errno.EINVAL:
            return False
        raise
    try:
        if not helper_running(info):
            return False  # it ended, and the PID went to another process, between the two looks
        group = info.get("Driver") == PASTA  # type: ignore[union-attr]

        def send(sig: int) -> None:
            if group:
                os.killpg(int(info["SlirpPid"]), sig)  # type: ignore[index]
            else:
                signal.pidfd_send_signal(fd, sig)

        send(signal.SIGTERM)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(int(timeout * 1000)):
            send(signal.SIGKILL)
            poller.poll(int(timeout * 1000))
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)
    return True
