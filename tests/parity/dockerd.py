"""A private Docker engine for the parity suite: Debian's ``dockerd`` on a socket, data root, exec root,
pidfile, cgroup parent and bridge of its own, so it touches nothing of the host's or of labkit's.

* The bridge is made here (``dkp<n>``, a /16 outside labkit's pools, see ``labkit/linux/network.py``'s
  ``POOLS``) and handed to dockerd with ``--bridge``; ``--iptables=false --ip-masq=false`` keep the
  host's netfilter rules as they are (published ports go through docker-proxy, as without iptables).
* dockerd starts its own containerd under the exec root, and keeps its trust key in the state
  directory (``deprecated-key-path``), not in ``/etc/docker``.
* :meth:`Dockerd.stop` removes every container, stops dockerd within a deadline (SIGKILL after),
  unmounts whatever is still mounted under the state directory, removes the cgroup parent's groups and
  the bridge, and deletes the state directory. The daemon is started with ``PR_SET_PDEATHSIG`` so it
  dies with the test process even when that is killed; :func:`sweep` removes what such a run left.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

PREFIX = "labkit-parity-dockerd-"
BRIDGE_PREFIX = "dkp"  # not "lk": labkit's own links start so, and the session's leak check looks for them
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PR_SET_PDEATHSIG = 1


def docker_cli() -> str | None:
    """The docker client: /usr/local/bin/docker (a current CLI) when there is one, else the distribution's."""
    for candidate in ("/usr/local/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_subnet() -> int:
    """The second octet of a free 10.N.0.0/16 (N from 199 down): no address of the host is in it."""
    taken = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    for n in range(199, 150, -1):
        if f" 10.{n}." not in taken:
            return n
    raise RuntimeError("no free 10.N.0.0/16 for the parity bridge")


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    return [p for p in points if p.startswith(path + "/") or p == path]


def _cgroup_dirs(parent: str) -> list[Path]:
    base = Path("/sys/fs/cgroup")
    found = [base / parent] if (base / parent).is_dir() else []
    found += [d / parent for d in base.iterdir() if d.is_dir() and (d / parent).is_dir()]
    return found


def _remove_cgroup(path: Path, deadline: float) -> None:
    """rmdir a cgroup and its children, deepest first (cgroups(7): only an empty group can go)."""
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            sub.rmdir()
    while time.monotonic() < deadline:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)


class Dockerd:
    """One private dockerd; ``env`` is what a ``docker`` command needs to reach it."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.socket = state / "docker.sock"
        self.bridge = f"{BRIDGE_PREFIX}{os.getpid() % 100000}"
        self.cgroup_parent = state.name
        self.cli = docker_cli() or "docker"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(state / "cli"),
                    "DOCKER_CLI_HINTS": "false"}
        self.proc: subprocess.Popen[bytes] | None = None
        self._made_run_docker = not os.path.exists("/run/docker")
        self._made_etc_docker = not os.path.exists("/etc/docker")
        self.subnet = 0

    def start(self, timeout: float = 90.0) -> None:
        self.subnet = _free_subnet()
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"10.{self.subnet}.0.1/16", "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        (self.state / "bridge").write_text(self.bridge)
        config = self.state / "daemon.json"
        config.write_text(json.dumps({"deprecated-key-path": str(self.state / "key.json")}))
        (self.state / "cli").mkdir()
        log = open(self.state / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--config-file", str(config), "-H", f"unix://{self.socket}",
             "--data-root", str(self.state / "root"), "--exec-root", str(self.state / "exec"),
             "--pidfile", str(self.state / "dockerd.pid"), "--bridge", self.bridge,
             "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--ip-forward=false",
             "--cgroup-parent", self.cgroup_parent, "--storage-driver", "overlay2"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd ended ({self.proc.returncode}): {self.log_tail()}")
            if self.socket.exists() and self.docker("version").returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not answer within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.state / "dockerd.log").read_text(errors="replace")[-2000:]
        return ""

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([self.cli, *args], env=self.env, input=input, capture_output=True, timeout=timeout)

    def import_busybox(self, rootfs: str) -> None:
        """``tar -C rootfs -c . | docker import``: Docker's busybox made of the files labkit's is made of."""
        tar = subprocess.run(["tar", "-C", rootfs, "--numeric-owner", "-c", "."], capture_output=True, check=True)
        done = self.docker("import", "-c", f"ENV {PATH_ENV}", "-c", 'CMD ["sh"]', "-", "busybox:latest",
                           input=tar.stdout)
        if done.returncode:
            raise RuntimeError(f"docker import: {done.stderr.decode()}")

    def build(self, context: str, tag: str, dockerfile: str = "Labfile") -> None:
        done = self.docker("build", "-q", "-f", os.path.join(context, dockerfile), "-t", tag, context, timeout=300)
        if done.returncode:
            raise RuntimeError(f"docker build: {done.stderr.decode()}")

    def stop(self, timeout: float = 60.0) -> list[str]:
        """Take everything down; return what could not be removed (empty when all went)."""
        deadline = time.monotonic() + timeout
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                ids = self.docker("ps", "-aq", timeout=30).stdout.decode().split()
                if ids:
                    self.docker("rm", "-f", *ids, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return sweep(self.state, self.bridge, self.cgroup_parent,
                     run_docker=self._made_run_docker, etc_docker=self._made_etc_docker)


def _pids_naming(text: str) -> list[int]:
    """Processes whose command line names ``text`` (containerd and its shims, started by our dockerd)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            with contextlib.suppress(OSError):
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
    return found


def sweep(state: Path, bridge: str | None, cgroup_parent: str, run_docker: bool = False,
          etc_docker: bool = False) -> list[str]:
    """Remove a private dockerd's leftovers: its processes, mounts, cgroups, bridge and state directory."""
    left: list[str] = []
    deadline = time.monotonic() + 20
    for pid in _pids_naming(str(state)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while _pids_naming(str(state)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for point in sorted(_mounts_under(str(state)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    for group in _cgroup_dirs(cgroup_parent):
        _remove_cgroup(group, deadline)
    if bridge:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    # Links dockerd made for the bridge's containers (veth*) go with their network namespaces.
    shutil.rmtree(state, ignore_errors=True)
    # dockerd makes these two whatever its flags say; they go if it made them and they are empty
    # (another dockerd on this host may use them).
    for made, directory in ((run_docker, "/run/docker/plugins"), (run_docker, "/run/docker"),
                            (etc_docker, "/etc/docker")):
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(directory)
    left += [f"process {p}" for p in _pids_naming(str(state))]
    left += [f"mount {m}" for m in _mounts_under(str(state))]
    left += [f"cgroup {g}" for g in _cgroup_dirs(cgroup_parent)]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    if bridge and f" {bridge}:" in links:
        left.append(f"link {bridge}")
    if state.exists():
        left.append(f"state {state}")
    return left


def sweep_stale() -> None:
    """Remove what an earlier run killed before its clean-up left (its dockerd's pidfile names a dead process)."""
    for state in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        pidfile = state / "dockerd.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text()), 0)
            continue  # alive: another run's
        bridge = None
        with contextlib.suppress(OSError):
            bridge = (state / "bridge").read_text().strip()
        sweep(state, bridge, state.name)
