"""Start, stop, exec and memory of labkit's containers beside runc, crun and podman, in one run.

Every figure comes from the same run on the same machine: the cases of a
section are run round-robin (A B C A B C …), so a burst of load from
elsewhere hits every case alike, and each ratio is taken *per round*
(labkit's time in round r over the peer's time in round r) before its median
is taken. Run it as root with the interpreter of labkit's environment::

    /work/main/.venv/bin/python bench/lifecycle.py [--rounds N] [--quick] [--labkit-only] [--json FILE]

Sections:

* ``start``: start-to-exit of ``true`` in a busybox rootfs — labkit in-process
  (a warm engine: ``engine.run("busybox", ["true"])`` then ``engine.rm(id)``),
  the labkit CLI (``labkit run --rm busybox true``), ``runc run``, ``crun run``,
  ``podman run --rm --network none``, and the floor: ``unshare … chroot`` with
  and without a fresh overlay mounted first.
* ``detach``: ``run -d`` of a shell that handles SIGTERM until it runs, then
  stop, then rm; and the resident memory each runtime keeps per running
  container besides the container's own processes (labkit: its supervisor;
  podman: conmon; runc and crun: nothing).
* ``exec``: ``true`` run inside an already running container.

Nothing is left behind: labkit runs on a private state root
(``LABKIT_ROOT=/tmp/labkit-bench-…/state``), runc, crun and podman on private
state roots beside it, and all of it is removed at the end, on an error, and
on Ctrl-C. ``--labkit-only`` needs no peer at all (no package is installed);
``--quick`` runs a handful of rounds, as a smoke test.

Without ``--labkit-only``, the peers are installed from Debian packages when
absent, and the two host changes they need on a hybrid-cgroup VM without
CAP_SYS_RESOURCE are made for the run and undone at its end (``--keep-host``
leaves them, as ``peers-bench/setup.sh`` does): hugetlb gets a cgroup v1
hierarchy of its own (crun refuses a controller on the v2 hierarchy), and
podman's default rlimits are lowered to the hard limits in
``/etc/containers/containers.conf``. The installed packages stay.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "labkit-bench"
REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
LABKIT = str(Path(sys.executable).parent / "labkit")
#: Debian packages the peers need (as peers-bench/setup.sh installs them, without docker).
PACKAGES = ("runc", "crun", "podman", "conmon", "netavark", "aardvark-dns", "catatonit", "iptables",
            "uidmap", "fuse-overlayfs", "slirp4netns", "busybox-static")
#: PID 1 of the detached containers: a shell that ends on SIGTERM (PID 1 ignores signals it has no handler for).
TERM_SHELL = ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
SLEEPER = ["/bin/sleep", "100000"]
NS = ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "--mount-proc"]


class Failed(Exception):
    """A measured command did not succeed; the message says which and how."""


# ------------------------------------------------------------------------------------------ where


@dataclass
class Work:
    """Every path the bench writes to, under one private directory removed at the end."""

    top: Path

    def __post_init__(self) -> None:
        self.state = self.top / "state"  # LABKIT_ROOT
        self.rootfs = self.top / "rootfs"  # busybox, shared read-only by runc, crun, podman and the floor
        self.bundles = self.top / "bundles"
        self.runc = self.top / "runc"
        self.crun = self.top / "crun"
        self.podman = self.top / "podman"
        self.ovl = self.top / "ovl"
        self.pycache = self.top / "pycache"
        for d in (self.state, self.bundles, self.runc, self.crun, self.podman, self.ovl, self.pycache):
            d.mkdir(parents=True, exist_ok=True)

    def bundle(self, name: str) -> Path:
        return self.bundles / name


# ------------------------------------------------------------------------------------- processes


def run_quiet(argv: list[str], env: dict[str, str] | None = None, check: bool = True) -> str:
    """Run an untimed helper command; return its stdout; raise :class:`Failed` with its stderr."""
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise Failed(f"{' '.join(argv[:6])}: exit {done.returncode}: {done.stderr.strip()[-400:]}")
    return done.stdout


class Spawner:
    """Times a whole command: fork, exec, exit and reap, with stdout and stderr sent away.

    The stderr goes to one scratch file, read only when the command fails, so
    timing costs one fork+exec and nothing else (the row ``host /bin/true``
    shows what that costs).
    """

    def __init__(self, scratch: Path) -> None:
        self.err = open(scratch, "w+b")  # noqa: SIM115 - closed in close()

    def __call__(self, argv: list[str], env: dict[str, str] | None = None) -> float:
        self.err.seek(0)
        self.err.truncate()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err)
        code = proc.wait()
        elapsed = time.perf_counter() - t0
        if code != 0:
            self.err.seek(0)
            raise Failed(f"{' '.join(argv[:8])}: exit {code}: {self.err.read().decode(errors='replace').strip()[-300:]}")
        return elapsed

    def close(self) -> None:
        self.err.close()


def wait_exit(pid: int, timeout: float = 15.0) -> None:
    """Block until ``pid`` has exited (pidfd_open(2) polls readable at exit, child or not)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(int(timeout * 1000)):
            raise Failed(f"process {pid} still runs after {timeout} s")
    finally:
        os.close(fd)


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rpartition(b")")[2].split()[1])


def memory_of(pid: int) -> dict[str, int]:
    """RSS, PSS and USS (private clean + dirty) of ``pid`` in kB, from /proc/PID/smaps_rollup."""
    out = {"rss": 0, "pss": 0, "uss": 0}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            value = rest.split()[0] if rest.split() else "0"
            if key == "Rss":
                out["rss"] = int(value)
            elif key == "Pss":
                out["pss"] = int(value)
            elif key in ("Private_Clean", "Private_Dirty"):
                out["uss"] += int(value)
    return out


def comm_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0].decode(errors="replace"))
    except OSError:
        return "?"


# --------------------------------------------------------------------------------------- the host


def install_peers() -> None:
    """apt-get install the peers when one is missing (docker.io's postinst is kept from starting services)."""
    if all(shutil.which(t) for t in ("runc", "crun", "podman", "conmon")) and os.path.exists("/bin/busybox"):
        return
    print("installing the peers from Debian packages:", " ".join(PACKAGES), flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_quiet(["apt-get", "update", "-q"], env=env)
    run_quiet(["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES], env=env)


@dataclass
class HostChange:
    """A change made to the host for the peers, and how to take it back."""

    what: str
    undo: Callable[[], None]


def fix_host() -> list[HostChange]:
    """The two host changes the peers need here (see the module docstring), each with its undo."""
    changed = []
    unified = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    if unified.exists() and unified.read_text().split():
        # crun: "cgroups in hybrid mode not supported, drop all controllers from cgroupv2".
        target = Path("/sys/fs/cgroup/hugetlb")
        made = not target.exists()
        target.mkdir(exist_ok=True)
        if subprocess.run(["mountpoint", "-q", str(target)]).returncode != 0:
            run_quiet(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(target)])
            changed.append(HostChange("mounted a cgroup v1 hierarchy for hugetlb at /sys/fs/cgroup/hugetlb (for crun)",
                                      lambda: _unmount_hugetlb(target, made)))
    conf = Path("/etc/containers/containers.conf")
    before = conf.read_text() if conf.exists() else None
    if "default_ulimits" not in (before or ""):
        # No CAP_SYS_RESOURCE: podman's default nofile/nproc of 1048576 fail with EPERM in crun's setrlimit.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        conf.parent.mkdir(parents=True, exist_ok=True)
        with open(conf, "a") as f:
            f.write("# labkit bench: no CAP_SYS_RESOURCE on this VM; podman's default rlimits fail\n"
                    f'[containers]\ndefault_ulimits = ["nofile={hard}:{hard}", "nproc=32768:32768"]\n')

        def restore() -> None:
            if before is None:
                conf.unlink(missing_ok=True)
            else:
                conf.write_text(before)

        changed.append(HostChange(f"set podman's default_ulimits to nofile={hard} in {conf}", restore))
    return changed


#: What the peers make outside their private roots on their first run; removed at the end if this run made it.
PEER_LEFTOVERS = ("/var/lib/containers", "/run/containers", "/etc/containers/networks", "/run/crun", "/run/runc")


def peer_leftovers() -> list[str]:
    """Those paths, and podman's cgroupfs parent groups (``libpod_parent``), that exist now."""
    groups = [str(p) for p in Path("/sys/fs/cgroup").glob("*/libpod_parent")]
    return [p for p in PEER_LEFTOVERS if os.path.exists(p)] + groups


def remove_leftovers(before: list[str]) -> None:
    """Remove what :func:`peer_leftovers` finds now and did not find before this run (groups only when empty)."""
    for path in peer_leftovers():
        if path in before:
            continue
        if path.startswith("/sys/fs/cgroup/"):
            for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
        else:
            shutil.rmtree(path, ignore_errors=True)


def _unmount_hugetlb(target: Path, made: bool) -> None:
    """Give hugetlb back to the v2 hierarchy: remove the (empty) groups the peers made, then unmount.

    A v1 hierarchy unmounted while a child group is still dying stays alive,
    unmounted, and keeps the controller; mounting and unmounting it once more
    after a moment lets it go (cgroups(7), "Unmounting v1 controllers").
    """
    for dirpath, _dirs, _files in sorted(os.walk(target), key=lambda w: -w[0].count("/")):
        if dirpath != str(target):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
    subprocess.run(["umount", str(target)], capture_output=True)
    if made:
        try:
            target.rmdir()
        except OSError:
            pass
    for _ in range(15):
        time.sleep(1)  # the kernel lets go of an unmounted hierarchy asynchronously
        if not _hugetlb_on_v1():
            return
        scratch = tempfile.mkdtemp(prefix=f"{PREFIX}-hugetlb-")
        if subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", scratch]).returncode == 0:
            subprocess.run(["umount", scratch])
        os.rmdir(scratch)
    print("host: hugetlb still has a v1 hierarchy; see peers-bench/cleanup.sh --restore-host", file=sys.stderr)


def _hugetlb_on_v1() -> bool:
    """Whether hugetlb is bound to a v1 hierarchy (its hierarchy id in /proc/cgroups is not 0)."""
    with open("/proc/cgroups") as f:
        return any(line.split()[:2] != ["hugetlb", "0"] for line in f if line.startswith("hugetlb"))


def build_rootfs(work: Work) -> None:
    """A busybox rootfs (Debian's static busybox and its applet links), like labkit's own busybox image."""
    busybox = "/bin/busybox"
    r = work.rootfs
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "root"):
        (r / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, r / "bin" / "busybox")
    run_quiet(["chroot", str(r), "/bin/busybox", "--install", "-s", "/bin"])
    (r / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (r / "etc" / "group").write_text("root:x:0:\n")


def build_bundles(work: Work) -> None:
    """OCI bundles for runc and crun (``runc spec``'s defaults), whose root is the shared rootfs, read-only.

    ``runc spec`` gives no seccomp filter; ``true-seccomp`` adds the one Docker's daemon would hand runc for
    a default container (Docker's profile resolved for its 14 capabilities), for a like-for-like with
    labkit, which installs that filter by default.
    """
    spec_dir = work.bundle("spec")
    spec_dir.mkdir(exist_ok=True)
    run_quiet(["runc", "spec", "--bundle", str(spec_dir)])
    base = json.loads((spec_dir / "config.json").read_text())
    base["process"]["terminal"] = False
    base["root"] = {"path": str(work.rootfs), "readonly": True}  # an absolute, non-symlink path (runc wants it)
    from labkit.linux import capabilities, seccomp

    docker = seccomp.for_container((), capabilities.DOCKER_DEFAULT)
    for name, args in (("true", ["/bin/true"]), ("term", TERM_SHELL), ("sleep", SLEEPER), ("true-seccomp", ["/bin/true"])):
        d = work.bundle(name)
        d.mkdir(exist_ok=True)
        cfg = json.loads(json.dumps(base))
        cfg["process"]["args"] = args
        if name.endswith("-seccomp") and docker is not None:
            cfg["linux"]["seccomp"] = docker.oci()
        (d / "config.json").write_text(json.dumps(cfg, indent=1))


# ---------------------------------------------------------------------------------------- runners


class Podman:
    """podman on a private storage and run root, with a busybox image imported from the shared rootfs."""

    def __init__(self, work: Work) -> None:
        p = work.podman
        self.base = ["podman", "--root", str(p / "root"), "--runroot", str(p / "run"), "--tmpdir", str(p / "tmp")]
        self.image = f"localhost/{PREFIX}-busybox:latest"

    def __call__(self, *args: str) -> list[str]:
        return [*self.base, *args]

    def prepare(self, rootfs: Path) -> None:
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        done = subprocess.run(self("import", "--change", "CMD=/bin/sh", "-", self.image), stdin=tar.stdout,
                              capture_output=True, text=True)
        tar.wait()
        if done.returncode != 0:
            raise Failed(f"podman import: {done.stderr.strip()[-400:]}")

    def cleanup(self) -> None:
        subprocess.run(self("rm", "-f", "-t", "0", "--all"), capture_output=True)
        subprocess.run(self("rmi", "-f", "--all"), capture_output=True)


@dataclass
class Case:
    """One row group of a section: a function run once per round that returns the seconds of each phase."""

    label: str
    kind: str  # "labkit", "peer", "floor" or "ref"
    fn: Callable[[int], dict[str, float]]
    times: dict[str, list[float | None]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, list[dict[str, int]]] = field(default_factory=dict)
    dropped: bool = False


def interleave(cases: list[Case], rounds: int, warmup: int, work: Path) -> None:
    """Run every case once per round, in order, ``warmup`` unrecorded rounds first; a case that
    fails three times in a row is dropped (its error is reported)."""
    streak = {c.label: 0 for c in cases}
    for r in range(-warmup, rounds):
        if not work.is_dir():
            raise Failed(f"{work} was removed by something else during the run; run again "
                         "(or give --tmp a directory nobody sweeps)")
        for case in cases:
            if case.dropped:
                continue
            try:
                phases = case.fn(r)
                streak[case.label] = 0
            except Exception as err:  # a failed round is reported, not fatal: the other cases go on
                case.errors.append(str(err) if isinstance(err, Failed) else f"{type(err).__name__}: {err}")
                streak[case.label] += 1
                phases = {}
                if streak[case.label] >= 3:
                    case.dropped = True
            if r < 0:
                continue
            for name in {**case.times, **phases}:
                case.times.setdefault(name, [None] * r).append(phases.get(name))


# -------------------------------------------------------------------------------------- reporting


def med_min_max(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else (f"{v * 1000:.1f}" if v < 10 else f"{v * 1000:.0f}")


def table(title: str, cases: list[Case], phase: str, rounds: int) -> list[dict]:
    """Print median, min and max (ms) of one phase for every case; return the rows."""
    print(f"\n{title}")
    print(f"  {'case':<58} {'median':>8} {'min':>8} {'max':>8}  fails")
    rows = []
    for c in cases:
        series = c.times.get(phase)
        if series is None:
            if c.errors:
                print(f"  {c.label:<58} {'failed':>8}  {c.errors[-1][:90]}")
            continue
        ok = [v for v in series if v is not None]
        fails = len(series) - len(ok)
        if not ok:
            print(f"  {c.label:<58} {'failed':>8}  {(c.errors or ['?'])[-1][:90]}")
            continue
        m, lo, hi = med_min_max(ok)
        print(f"  {c.label:<58} {fmt_ms(m):>8} {fmt_ms(lo):>8} {fmt_ms(hi):>8}  {fails}/{len(series)}")
        rows.append({"case": c.label, "kind": c.kind, "phase": phase, "median_ms": m * 1000, "min_ms": lo * 1000,
                     "max_ms": hi * 1000, "fails": fails, "n": len(series)})
    return rows


def ratios(cases: list[Case], phase: str) -> list[dict]:
    """Per-round ratios of every labkit case to every peer and floor case: median (min-max)."""
    ours = [c for c in cases if c.kind == "labkit" and phase in c.times]
    others = [c for c in cases if c.kind in ("peer", "floor") and phase in c.times]
    out = []
    if not ours or not others:
        return out
    print(f"  ratios per round ({phase}), labkit / other: median (min-max)")
    for a in ours:
        for b in others:
            pairs = [x / y for x, y in zip(a.times[phase], b.times[phase], strict=False) if x is not None and y]
            if not pairs:
                continue
            m, lo, hi = med_min_max(pairs)
            print(f"    {a.label[:40]:<40} / {b.label[:40]:<40} {m:6.2f} ({lo:.2f}-{hi:.2f})")
            out.append({"labkit": a.label, "other": b.label, "phase": phase, "median": m, "min": lo, "max": hi})
    return out


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def machine() -> dict[str, str]:
    """Cores, kernel, memory, cgroup layout and versions, for the report."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    with open("/proc/self/mounts") as f:
        mounts = [line.split() for line in f]
    known = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
             "net_cls", "net_prio", "perf_event", "rdma", "misc")
    v1 = sorted({opt for m in mounts if m[2] == "cgroup" for opt in m[3].split(",") if opt in known})
    v2 = [m[1] for m in mounts if m[2] == "cgroup2"]
    v2_ctl = ""
    if v2:
        try:
            v2_ctl = Path(v2[0], "cgroup.controllers").read_text().strip()
        except OSError:
            pass
    layout = (f"v1 controllers {','.join(v1) or 'none'}; v2 at {v2[0]} with controllers '{v2_ctl}'" if v2
              else f"v1 only: {','.join(v1)}") if v1 else f"v2 only at {v2[0] if v2 else '?'}: {v2_ctl}"
    versions = run_quiet(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "runc", "crun", "podman",
                          "conmon", "busybox-static", "util-linux"], check=False).strip().replace("\n", "; ")
    rev = run_quiet(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False).strip()
    return {"cpus": f"{os.cpu_count()} x {model}", "kernel": platform.release(), "memory": f"{mem} MiB",
            "cgroups": layout, "python": f"{platform.python_version()} ({PY})", "packages": versions,
            "labkit": rev, "load_start": load_note()}


# -------------------------------------------------------------------------------------------- main


class Bench:
    """The whole run: set up, measure each section, clean up."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.peers = not args.labkit_only
        self.work = Work(Path(tempfile.mkdtemp(prefix=f"{PREFIX}-", dir=args.tmp)))
        os.environ["LABKIT_ROOT"] = str(self.work.state)
        os.environ["LABKIT_SHIM_DIR"] = str(self.work.state / "bin")
        self.spawn = Spawner(self.work.top / "stderr")
        # The labkit command hands each command to a resident engine (labkit/daemon/server.py) listening
        # in a directory of this run; LABKIT_NO_SERVER=1 runs it in a fresh interpreter instead.
        self.sockets = self.work.top / "sock"
        self.sockets.mkdir(mode=0o700)
        os.environ["LABKIT_SOCKET_DIR"] = str(self.sockets)
        self.env_cli = dict(os.environ)
        self.env_cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env_cached["PYTHONPYCACHEPREFIX"] = str(self.work.pycache)  # bytecode cached, in our scratch dir
        self.env_cached["LABKIT_NO_SERVER"] = "1"
        self.engine = None
        self.podman = Podman(self.work)
        self.results: dict = {"rounds": args.rounds, "sections": {}}
        self.floor_ok = os.path.exists("/bin/busybox")
        self.host_changes: list[HostChange] = []
        self.leftovers_before: list[str] | None = None

    # -- setup ---------------------------------------------------------------------------------
    def setup(self) -> None:
        if self.peers:
            self.leftovers_before = peer_leftovers()
            install_peers()
            self.host_changes = fix_host()
            self.results["host_changes"] = [c.what for c in self.host_changes]
            for change in self.host_changes:
                print("host:", change.what, "(undone at the end)" if not self.args.keep_host else "")
        if self.floor_ok:
            build_rootfs(self.work)
        if self.peers:
            build_bundles(self.work)
            self.podman.prepare(self.work.rootfs)
        import labkit  # the engine is warm from here on, as in a notebook

        self.engine = labkit.connect(backend="linux")
        for kw in ({"network": "none"}, {}):  # builds the image, the C shim and the default bridge once, untimed
            c = self.engine.run("busybox", ["true"], **kw)
            self.engine.rm(c.id)
        subprocess.run([LABKIT, "ps", "-q"], env=self.env_cli, capture_output=True)  # starts the resident engine
        deadline = time.monotonic() + 30
        while not (self.sockets / "engine.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def cleanup(self) -> None:
        """Remove every container, mount and file this run made; safe to call twice."""
        from labkit.daemon import client

        client.stop(str(self.sockets))
        if self.engine is not None:
            for cid in self.engine.store.container_ids():
                try:
                    self.engine.rm(cid, force=True)
                except Exception as err:  # a broken record must not stop the rest of the cleanup
                    print(f"cleanup: labkit rm {cid[:12]}: {err}", file=sys.stderr)
            try:
                self.engine.network_prune()
                bridges = self.engine.networks.bridges()
            except Exception as err:
                print(f"cleanup: labkit networks: {err}", file=sys.stderr)
                bridges = []
            for bridge in bridges:  # the default bridge of this private state root, if it outlived prune
                if os.path.exists(f"/sys/class/net/{bridge}"):
                    print(f"cleanup: labkit left its bridge {bridge}; deleting it", file=sys.stderr)
                    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        if self.peers:
            for rt, root in (("runc", self.work.runc), ("crun", self.work.crun)):
                if shutil.which(rt):
                    for cid in run_quiet([rt, "--root", str(root), "list", "-q"], check=False).split():
                        subprocess.run([rt, "--root", str(root), "delete", "-f", cid], capture_output=True)
            if shutil.which("podman"):
                self.podman.cleanup()
            if self.leftovers_before is not None:
                remove_leftovers(self.leftovers_before)
        top = str(self.work.top)
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f if line.split()[1].startswith(top + "/")]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        self.spawn.close()
        shutil.rmtree(self.work.top, ignore_errors=True)
        if not self.args.keep_host:
            for change in reversed(self.host_changes):
                change.undo()
            self.host_changes = []

    # -- start-to-exit ---------------------------------------------------------------------------
    def start_cases(self) -> list[Case]:
        s, w, e = self.spawn, self.work, self.engine
        rootfs = str(w.rootfs)

        def inproc(**kw: Any) -> Callable[[int], dict[str, float]]:
            def one(_r: int) -> dict[str, float]:
                t0 = time.perf_counter()
                c = e.run("busybox", ["true"], **kw)
                t1 = time.perf_counter()
                e.rm(c.id)
                t2 = time.perf_counter()
                return {"total": t2 - t0, "run() to exit": t1 - t0, "rm()": t2 - t1}

            return one

        ovl = (f"mount -t tmpfs none {w.ovl} && cd {w.ovl} && mkdir u w m && "
               f"mount -t overlay overlay -o lowerdir={rootfs},upperdir=u,workdir=w m && exec chroot m /bin/true")
        cli = [LABKIT, "run", "--rm", "--network", "none", "busybox", "true"]
        cli_bridge = [LABKIT, "run", "--rm", "busybox", "true"]
        cases = [Case("host /bin/true (what the timer adds)", "ref", lambda r: {"total": s(["/bin/true"])})]
        if self.floor_ok:
            cases += [
                Case("floor: unshare(pid,mnt,uts,ipc,net)+chroot /bin/true", "floor",
                     lambda r: {"total": s([*NS, "chroot", rootfs, "/bin/true"])}),
                Case("floor + fresh tmpfs overlay mounted first", "floor",
                     lambda r: {"total": s([*NS, "sh", "-c", ovl])}),
            ]
        cases += [
            Case("labkit in-process: engine.run(busybox,[true],network=none)+rm", "labkit", inproc(network="none")),
            # Docker's seccomp profile is on by default: its cost is the per-round ratio to this row.
            Case("labkit in-process, network none, seccomp=unconfined", "floor",
                 inproc(network="none", security_opt=["seccomp=unconfined"])),
            Case("labkit in-process, default network (bridge)", "labkit", inproc()),
            Case("labkit CLI: labkit run --rm --network none busybox true", "labkit",
                 lambda r: {"total": s(cli, self.env_cli)}),
            Case("labkit CLI --network none, in a fresh interpreter (LABKIT_NO_SERVER=1)", "labkit",
                 lambda r: {"total": s(cli, self.env_cached)}),
            Case("labkit CLI: labkit run --rm busybox true (bridge)", "labkit",
                 lambda r: {"total": s(cli_bridge, self.env_cli)}),
            Case("venv python -c pass", "ref", lambda r: {"total": s([PY, "-c", "pass"], self.env_cli)}),
            Case("venv python -c 'import labkit.cli, labkit.linux.backend'", "ref",
                 lambda r: {"total": s([PY, "-c", "import labkit.cli, labkit.linux.backend"], self.env_cli)}),
        ]
        if self.peers:
            cases += [
                Case("runc run", "peer", lambda r: {"total": s(
                    ["runc", "--root", str(w.runc), "run", "--bundle", str(w.bundle("true")), f"{PREFIX}-runc-{r}"])}),
                Case("crun run", "peer", lambda r: {"total": s(
                    ["crun", "--root", str(w.crun), "run", "--bundle", str(w.bundle("true")), f"{PREFIX}-crun-{r}"])}),
                Case("runc run, Docker's seccomp profile", "peer", lambda r: {"total": s(
                    ["runc", "--root", str(w.runc), "run", "--bundle", str(w.bundle("true-seccomp")),
                     f"{PREFIX}-runcsc-{r}"])}),
                Case("crun run, Docker's seccomp profile", "peer", lambda r: {"total": s(
                    ["crun", "--root", str(w.crun), "run", "--bundle", str(w.bundle("true-seccomp")),
                     f"{PREFIX}-cruncsc-{r}"])}),
                Case("podman run --rm --network none", "peer", lambda r: {"total": s(
                    self.podman("run", "--rm", "--network", "none", self.podman.image, "/bin/true"))}),
            ]
        return cases

    # -- run -d / stop / rm, and memory ------------------------------------------------------------
    def detach_cases(self) -> list[Case]:
        s, w, e = self.spawn, self.work, self.engine
        settle = 0.05  # untimed: the shell installs its SIGTERM trap; memory is read here

        def sample(case: Case, r: int, **pids: int) -> None:
            if r < 0:
                return  # warm-up rounds are not recorded
            for what, pid in pids.items():
                try:
                    case.extra.setdefault(what, []).append({**memory_of(pid), "comm": comm_of(pid)})  # type: ignore[dict-item]
                except OSError:
                    pass

        def inproc(r: int) -> dict[str, float]:
            t0 = time.perf_counter()
            c = e.run("busybox", TERM_SHELL, detach=True, name=f"{PREFIX}-in-{r}", network="none")
            t1 = time.perf_counter()
            time.sleep(settle)
            pid = c.pid
            sample(cases[0], r, adds=parent_of(pid), container=pid)
            t2 = time.perf_counter()
            e.stop(c.id, timeout=10)
            t3 = time.perf_counter()
            e.rm(c.id)
            t4 = time.perf_counter()
            return {"run -d": t1 - t0, "stop": t3 - t2, "rm": t4 - t3}

        def cli(r: int) -> dict[str, float]:
            name = f"{PREFIX}-cli-{r}"
            a = s([LABKIT, "run", "-d", "--network", "none", "--name", name, "busybox", *TERM_SHELL], self.env_cli)
            time.sleep(settle)
            pid = e.container(name).pid
            sample(cases[1], r, adds=parent_of(pid), container=pid)
            b = s([LABKIT, "stop", name], self.env_cli)
            c = s([LABKIT, "rm", name], self.env_cli)
            return {"run -d": a, "stop": b, "rm": c}

        def oci(rt: str, root: Path, index: int) -> Callable[[int], dict[str, float]]:
            def one(r: int) -> dict[str, float]:
                cid = f"{PREFIX}-{rt}-d-{r}"
                base = [rt, "--root", str(root)]
                a = s([*base, "run", "-d", "--bundle", str(w.bundle("term")), cid])
                time.sleep(settle)
                pid = json.loads(run_quiet([*base, "state", cid]))["pid"]
                sample(cases[index], r, container=pid)
                # stop = the TERM signal and the wait for PID 1's exit (what `docker stop` waits for)
                t0 = time.perf_counter()
                s([*base, "kill", cid, "TERM"])
                wait_exit(pid)
                b = time.perf_counter() - t0
                c = s([*base, "delete", cid])
                return {"run -d": a, "stop": b, "rm": c}

            return one

        def podman(r: int) -> dict[str, float]:
            name = f"{PREFIX}-pd-{r}"
            p = self.podman
            a = s(p("run", "-d", "--network", "none", "--name", name, p.image, *TERM_SHELL))
            time.sleep(settle)
            conmon, pid = run_quiet(p("inspect", "-f", "{{.State.ConmonPid}} {{.State.Pid}}", name)).split()
            sample(cases[-1], r, adds=int(conmon), container=int(pid))
            b = s(p("stop", "-t", "10", name))
            c = s(p("rm", name))
            return {"run -d": a, "stop": b, "rm": c}

        cases = [
            Case("labkit in-process (run detach, network none / stop / rm)", "labkit", inproc),
            Case("labkit CLI (run -d --network none / stop / rm)", "labkit", cli),
        ]
        if self.peers:
            cases += [
                Case("runc (run -d / kill TERM + wait / delete)", "peer", oci("runc", w.runc, 2)),
                Case("crun (run -d / kill TERM + wait / delete)", "peer", oci("crun", w.crun, 3)),
                Case("podman (run -d --network none / stop / rm)", "peer", podman),
            ]
        return cases

    @contextlib.contextmanager
    def companions(self) -> Iterator[None]:
        """One sleeping container of labkit's and of podman's, running while the ``detach`` section samples memory.

        A machine in use runs several containers: the pages of the program each one's helper runs (labkit's
        static supervisor, podman's conmon) are then shared between them and are no one's private memory. With
        no other container running, a lone helper's pages all count as its own (seen: the supervisor 0.7 MB
        private alone, 0.1 MB beside another). runc and crun keep no helper.
        """
        name = f"{PREFIX}-companion"
        self.engine.run("busybox", SLEEPER, detach=True, name=name, network="none")
        if self.peers:
            self.spawn(self.podman("run", "-d", "--network", "none", "--name", name, self.podman.image, *SLEEPER))
        try:
            yield
        finally:
            self.engine.rm(name, force=True)
            if self.peers:
                self.spawn(self.podman("rm", "-f", "-t", "0", name))

    # -- exec ------------------------------------------------------------------------------------
    def exec_section(self) -> list[Case]:
        s, w, e = self.spawn, self.work, self.engine
        name = f"{PREFIX}-exec"
        c = e.run("busybox", SLEEPER, detach=True, name=name, network="none")
        bare = e.run("busybox", SLEEPER, detach=True, name=f"{name}-unconfined", network="none",
                     security_opt=["seccomp=unconfined"])
        cases = [
            Case("labkit in-process: engine.exec(id, [true])", "labkit", lambda r: {"total": _timed(
                lambda: _check(e.exec(c.id, ["true"])))}),
            Case("labkit in-process exec, container with seccomp=unconfined", "floor", lambda r: {"total": _timed(
                lambda: _check(e.exec(bare.id, ["true"])))}),
            Case("labkit CLI: labkit exec NAME true", "labkit",
                 lambda r: {"total": s([LABKIT, "exec", name, "true"], self.env_cli)}),
        ]
        if self.peers:
            for rt, root in (("runc", w.runc), ("crun", w.crun)):
                # s(), not run_quiet(): a detached container inherits its starter's stdout, and a pipe
                # held open by a sleeping container would never reach end of file.
                s([rt, "--root", str(root), "run", "-d", "--bundle", str(w.bundle("sleep")), name])
                argv = [rt, "--root", str(root), "exec", name, "/bin/true"]
                cases.append(Case(f"{rt} exec ID /bin/true", "peer", lambda r, argv=argv: {"total": s(argv)}))
            s(self.podman("run", "-d", "--network", "none", "--name", name, self.podman.image, *SLEEPER))
            cases.append(Case("podman exec NAME /bin/true", "peer",
                              lambda r: {"total": s(self.podman("exec", name, "/bin/true"))}))
        return cases

    def exec_teardown(self) -> None:
        name = f"{PREFIX}-exec"
        self.engine.rm(name, force=True)
        self.engine.rm(f"{name}-unconfined", force=True)
        if self.peers:
            for rt, root in (("runc", self.work.runc), ("crun", self.work.crun)):
                subprocess.run([rt, "--root", str(root), "delete", "-f", name], capture_output=True)
            subprocess.run(self.podman("rm", "-f", "-t", "0", name), capture_output=True)

    # -- the run ---------------------------------------------------------------------------------
    def section(self, key: str, title: str, cases: list[Case], phases: list[str]) -> list[Case]:
        rounds, warm = self.args.rounds, self.args.warmup
        print(f"\n== {title}: {rounds} rounds + {warm} warm-up, interleaved; {load_note()}", flush=True)
        t0 = time.monotonic()
        interleave(cases, rounds, warm, self.work.top)
        out = {"load_after": load_note(), "seconds": round(time.monotonic() - t0, 1), "rows": [], "ratios": []}
        for phase in phases:
            out["rows"] += table(f"-- {phase} (ms)", cases, phase, rounds)
            out["ratios"] += ratios(cases, phase)
        for c in cases:
            for sub in c.times:
                if sub not in phases:
                    out["rows"] += table(f"-- {c.label}: {sub} (ms)", [c], sub, rounds)
            for err in dict.fromkeys(c.errors):
                print(f"  ! {c.label}: {err[:300]}")
        print(f"  ({out['load_after']} at the end; {out['seconds']} s)")
        self.results["sections"][key] = out
        return cases

    def memory_report(self, cases: list[Case]) -> None:
        print("\n-- resident memory per running container, kB (median over the rounds; from smaps_rollup)")
        print(f"  {'runtime':<50} {'what':<26} {'RSS':>7} {'PSS':>7} {'USS':>7}  n")
        rows = []
        for c in cases:
            if "adds" not in c.extra and c.kind == "peer":
                print(f"  {c.label:<50} {'(no process of its own)':<26} {0:>7} {0:>7} {0:>7}")
                rows.append({"runtime": c.label, "what": "adds", "rss": 0, "pss": 0, "uss": 0, "n": 0})
            for what in ("adds", "container"):
                samples = c.extra.get(what)
                if not samples:
                    continue
                comm = samples[0]["comm"]
                m = {k: statistics.median(x[k] for x in samples) for k in ("rss", "pss", "uss")}
                label = f"{'adds: ' if what == 'adds' else 'its PID 1: '}{comm}"
                print(f"  {c.label:<50} {label[:26]:<26} {m['rss']:>7.0f} {m['pss']:>7.0f} {m['uss']:>7.0f}  "
                      f"{len(samples)}")
                rows.append({"runtime": c.label, "what": what, "comm": comm, **m, "n": len(samples)})
        self.results["memory"] = rows

    def profile_cli(self) -> None:
        """Where the CLI's time goes: ``python -X importtime`` of one ``labkit run --rm --network none busybox true``."""
        runs = []
        for _ in range(3):
            done = subprocess.run([PY, "-X", "importtime", "-m", "labkit", "run", "--rm", "--network", "none",
                                   "busybox", "true"], env=self.env_cached, capture_output=True, text=True)
            runs.append(done.stderr)
        rows = []
        for line in runs[-1].splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if m:
                rows.append((int(m[1]), int(m[2]), len(m[3]) // 2, m[4]))
        total = sum(r[0] for r in rows)
        ours = sum(r[0] for r in rows if r[3].startswith("labkit"))
        print(f"\n-- python -X importtime of the CLI (one run, bytecode as the environment has it): "
              f"{total / 1000:.0f} ms importing {len(rows)} modules, {ours / 1000:.0f} ms of it in labkit's own")
        print("  top-level imports by cumulative ms:")
        for _self_us, cum_us, depth, name in sorted(rows, key=lambda r: -r[1]):
            if depth <= 1 and cum_us > 4000:
                print(f"    {cum_us / 1000:7.1f}  {name}")
        print("  modules by self ms (the ones that cost):")
        for self_us, _cum, _d, name in sorted(rows, key=lambda r: -r[0])[:15]:
            print(f"    {self_us / 1000:7.1f}  {name}")
        self.results["importtime"] = {"total_ms": total / 1000, "labkit_ms": ours / 1000,
                                      "top_self": [(n, s / 1000) for s, _c, _d, n in sorted(rows, key=lambda r: -r[0])[:25]]}

    def profile_inproc(self, n: int = 15) -> None:
        """cProfile of ``n`` warm in-process run+rm: the functions that take the time."""
        import cProfile
        import pstats

        e = self.engine
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            c = e.run("busybox", ["true"], network="none")
            e.rm(c.id)
        prof.disable()
        print(f"\n-- cProfile of {n} in-process run()+rm() (cumulative s; labkit functions and syscall wrappers)")
        stats = pstats.Stats(prof)
        entries = []
        for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            where = file.replace(str(REPO) + "/", "")
            entries.append((ct, tt, nc, f"{where}:{line}({func})"))
        for ct, tt, nc, where in sorted(entries, reverse=True)[:30]:
            print(f"    {ct:7.3f} cum {tt:7.3f} self {nc:6d} calls  {where[:100]}")

    def run(self) -> None:
        self.results["machine"] = machine()
        for k, v in self.results["machine"].items():
            print(f"{k:>10}: {v}")
        self.setup()
        start = self.section("start", "start-to-exit of `true`", self.start_cases(), ["total"])
        with self.companions():
            detach = self.section("detach", "run -d until running, stop (SIGTERM handled), rm", self.detach_cases(),
                                  ["run -d", "stop", "rm"])
        self.memory_report(detach)
        try:
            self.section("exec", "exec of `true` in a running container", self.exec_section(), ["total"])
        finally:
            self.exec_teardown()
        if self.args.profile:
            self.profile_cli()
            self.profile_inproc()
        self.verdict(start, detach)
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(self.results, indent=1, default=str))

    def verdict(self, start: list[Case], detach: list[Case]) -> None:
        """The targets of the spine issue, met or not, from this run's medians."""

        def median(label_start: str, cases: list[Case], phase: str = "total") -> float | None:
            for c in cases:
                if c.label.startswith(label_start) and phase in c.times:
                    ok = [v for v in c.times[phase] if v is not None]
                    return statistics.median(ok) if ok else None
            return None

        cli, inproc = median("labkit CLI: labkit run --rm --network", start), median("labkit in-process:", start)
        runc, crun = median("runc run", start), median("crun run", start)
        runc_sc, crun_sc = median("runc run, Docker's seccomp", start), median("crun run, Docker's seccomp", start)
        mem = {m["runtime"].split(" ")[0] + ("-cli" if "CLI" in m["runtime"] else ""): m
               for m in self.results.get("memory", []) if m["what"] == "adds"}
        lines = []
        if cli and runc:
            lines.append(f"CLI start-to-exit <= runc run: {fmt_ms(cli)} vs {fmt_ms(runc)} ms -> "
                         f"{'met' if cli <= runc else 'NOT met'} ({cli / runc:.2f}x)")
        if inproc and crun:
            lines.append(f"in-process <= 1.5x crun run: {fmt_ms(inproc)} vs {fmt_ms(crun)} ms -> "
                         f"{'met' if inproc <= 1.5 * crun else 'NOT met'} ({inproc / crun:.2f}x)")
        if cli and inproc and runc_sc and crun_sc:  # labkit installs Docker's filter; `runc spec` gives none
            lines.append(f"like for like, runc and crun under Docker's seccomp profile too: CLI {fmt_ms(cli)} vs "
                         f"runc {fmt_ms(runc_sc)} ms ({cli / runc_sc:.2f}x), in-process {fmt_ms(inproc)} vs crun "
                         f"{fmt_ms(crun_sc)} ms ({inproc / crun_sc:.2f}x)")
        if "labkit" in mem and "podman" in mem:
            a, b = mem["labkit"], mem["podman"]
            ok = a["rss"] <= b["rss"] and a["uss"] <= b["uss"]
            lines.append(f"memory per container <= conmon's: supervisor {a['uss']:.0f} kB private / {a['rss']:.0f} kB RSS"
                         f" vs conmon {b['uss']:.0f} / {b['rss']:.0f} -> {'met' if ok else 'NOT met'}")
        if lines:
            print("\n== targets (spine issue)")
            for line in lines:
                print("  " + line)
        self.results["targets"] = lines


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _check(code: int) -> None:
    if code != 0:
        raise Failed(f"exit {code}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="timed rounds per section (default 21)")
    parser.add_argument("--warmup", type=int, default=2, help="unrecorded rounds first (default 2)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 1 warm-up, no profile: a smoke test")
    parser.add_argument("--labkit-only", action="store_true", help="no peers: labkit and the unshare floor only")
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the importtime and cProfile reports")
    parser.add_argument("--keep-host", action="store_true",
                        help="leave the host changes for the peers in place (default: undo them at the end)")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--tmp", default="/tmp", help="where the private work directory is made (default /tmp)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.profile = 3, 1, False
    if os.geteuid() != 0:
        print("lifecycle.py: needs root (namespaces, overlayfs, cgroups); run it with sudo.", file=sys.stderr)
        return 2
    owner = os.getpid()

    def terminate(signum: int, _frame: object) -> None:
        # labkit forks this process to start containers; a copy that gets a signal before it
        # execs must die quietly, not unwind into the cleanup below and delete the run's files.
        # (pyroute2, which labkit uses for bridge networks, forks helpers and ends them with SIGTERM.)
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            os._exit(128 + signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    bench = Bench(args)
    try:
        bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    except Failed as err:
        print(f"lifecycle.py: {err}", file=sys.stderr)
        return 1
    finally:
        if os.getpid() != owner:
            os._exit(1)  # a forked copy never cleans up: the run is the owner's
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup half-way
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
