"""Test session rules that hold for every test.

* A test marked ``root`` needs the real kernel. Without root it is skipped; with
  root, a skip is turned into a failure — real-kernel tests may not quietly
  vanish where they can run.
* Hosts differ in their cgroup layout: v1 hierarchies (this project's hybrid CI
  host has them beside a unified mount), or one cgroup v2 hierarchy (systemd's
  default on Debian 12, Ubuntu 22.04, Fedora). A test marked ``cgroup_v1`` needs
  v1 hierarchies (the v1 freezer), one marked ``cgroup_v2`` a v2-only host (the
  container's own cgroup2 view, every controller on one hierarchy). Each is
  skipped on the other layout, and only there: the skip-is-failure rule above
  holds for every test the host's layout can run.
* The session ends by checking that labkit left nothing on the host: no mount,
  cgroup, process, network namespace, veth, nftables table or state directory.
  A leak fails the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.learner import lab_learner, learner  # noqa: F401  (fixtures for every test directory)
from tests.util import scaled

IS_ROOT = os.geteuid() == 0
_ROOTS: list[Path] = []

# The `labkit` command hands its work to a resident engine (labkit/daemon/server.py). The session's
# servers listen in a directory of its own, named so the leak check finds one left running.
SOCKETS = Path(tempfile.mkdtemp(prefix="labkit-test-sock-"))
os.environ["LABKIT_SOCKET_DIR"] = str(SOCKETS)
# Shims built without a state root of their own (process-level tests) go here, not to /var/lib/labkit.
SHIMS = Path(tempfile.mkdtemp(prefix="labkit-test-shim-"))
os.environ["LABKIT_SHIM_DIR"] = str(SHIMS)


@pytest.fixture
def sockets(tmp_path):
    """A private socket directory for a resident engine of the test's own; its engine is stopped afterwards."""
    from labkit.daemon import client

    directory = tmp_path / "labkit-test-sockets"
    directory.mkdir(mode=0o700)
    yield directory
    client.stop(str(directory))


@pytest.fixture
def served(engine):
    """The environment of a ``labkit`` command (``sh bin/labkit``) on the test engine's state root, with the
    session's resident engine running and its compiled client built."""
    import sys

    from labkit.daemon import client
    from tests.util import wait_for

    env = {**os.environ, "LABKIT_ROOT": str(engine.store.root),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    env.pop("LABKIT_NO_SERVER", None)
    sockets = env["LABKIT_SOCKET_DIR"]
    if client.running(sockets) is None:
        launcher = Path(__file__).resolve().parent.parent / "bin" / "labkit"
        subprocess.run(["sh", str(launcher), "version"], env=env, capture_output=True, timeout=120)
    assert wait_for(lambda: client.running(sockets) and (Path(sockets) / client.CLIENT).exists(), timeout=scaled(60))
    return env


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="run the long forms of randomized tests (thousands of crash trials)")


def host_cgroup_layout() -> str:
    """``"v1"``, ``"hybrid"`` or ``"v2"``: this host's cgroup layout (``"none"`` without cgroupfs)."""
    from labkit.linux.cgroups import detect

    try:
        return detect().version
    except Exception:
        return "none"


def _wrong_layout(item) -> str | None:
    """Why ``item`` cannot run on this host's cgroup layout, or None."""
    layout = host_cgroup_layout()
    if item.get_closest_marker("cgroup_v1") and layout not in ("v1", "hybrid"):
        return f"needs cgroup v1 hierarchies, and this host's cgroups are {layout}"
    if item.get_closest_marker("cgroup_v2") and layout != "v2":
        return f"needs a cgroup v2-only host, and this host's cgroups are {layout}"
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "cgroup_v1: needs cgroup v1 hierarchies (v1 or hybrid host)")
    config.addinivalue_line("markers", "cgroup_v2: needs a cgroup v2-only host (systemd's default layout)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        why = _wrong_layout(item) if item.get_closest_marker("root") else None
        if why:
            item.add_marker(pytest.mark.skip(reason=why))
        elif not IS_ROOT and item.get_closest_marker("root"):
            item.add_marker(pytest.mark.skip(reason="needs root and the real kernel"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IS_ROOT and report.skipped and item.get_closest_marker("root") and not _wrong_layout(item):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"a real-kernel test was skipped although root is available: {reason}"


def state_root() -> Path:
    """A fresh labkit state root for this session, named so leak checks can find it."""
    root = Path(tempfile.mkdtemp(prefix="labkit-test-"))
    _ROOTS.append(root)
    return root


@pytest.fixture(scope="session")
def session_root() -> Path:
    """One state root shared by the session's engines (images are built once)."""
    return state_root()


@pytest.fixture(scope="session")
def shared_engine(session_root):
    """A real engine on the session's state root (root only)."""
    if not IS_ROOT:
        pytest.skip("needs root and the real kernel")
    import labkit

    lab = labkit.connect(backend="linux", root=session_root)
    yield lab
    lab.network_prune()  # an idle bridge goes a few seconds after its last container; the session does not wait


@pytest.fixture
def engine(shared_engine):
    """The session's real engine; every container a test leaves is removed after it."""
    before = set(shared_engine.store.container_ids())
    yield shared_engine
    for cid in set(shared_engine.store.container_ids()) - before:
        try:
            shared_engine.rm(cid, force=True)
        except Exception:
            pass


def leaks(root: Path | None = None, ids: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Everything of labkit's still on the host: mounts, cgroups, processes, netns, links, nft tables, state.

    With ``root``, only what belongs to that state root and to the containers ``ids`` (a
    crash trial's): mounts and processes that name the root, the containers' cgroups and veths,
    and the root's containers, writable layers, half-written records and intents.
    """
    found: list[str] = []
    mine = (lambda text: str(root) in text) if root is not None else (lambda text: "labkit" in text)
    with open("/proc/self/mounts") as f:
        found += [f"mount {line.split()[1]}" for line in f if mine(line)]
    for base in ("/sys/fs/cgroup",):
        for dirpath, dirnames, _ in os.walk(base):
            if dirpath.count(os.sep) > 5:
                dirnames[:] = []
                continue
            # labkit's parent group goes with the last container's group: any directory of labkit's is a leak.
            found += [f"cgroup {os.path.join(dirpath, d)}" for d in dirnames
                      if (d in ids if root is not None else "labkit" in d)]
    me = {os.getpid(), os.getppid()}
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if (str(root) in args if root is not None else "labkit-test-" in args) and int(pid) not in me \
                and "pytest" not in args:
            found.append(f"process {pid} {args[:100]}")
    if shutil.which("ip"):
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        if root is not None:
            found += [f"link lk{c[:11]}" for c in ids if f" lk{c[:11]}@" in links or f" lk{c[:11]}:" in links]
        else:
            ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            found += [f"netns {n}" for n in ns.split() if "labkit" in n]
            found += [f"link {ln.split(':')[1].strip()}" for ln in links.splitlines()
                      if "labkit" in ln or ": lk" in ln]
    if shutil.which("nft") and root is None:  # a bridge's guard goes with it (labkit/linux/network.py, guard_bridge)
        found += [f"nftables {table}" for table in _lasting(_labkit_tables)]
    for r in [root] if root is not None else _ROOTS:
        cdir = r / "containers"
        if cdir.exists():
            found += [f"state {cdir / c}" for c in os.listdir(cdir) if not c.startswith(".")]
        if root is not None:
            for sub, keep in (("overlay", ()), ("tmp", ("trash-", "build-", "spare-init-"))):
                if (r / sub).exists():
                    found += [f"state {r / sub / c}" for c in os.listdir(r / sub) if not c.startswith(keep or "\0")]
    return found


def _labkit_tables() -> set[str]:
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {line.strip() for line in tables.splitlines() if "labkit" in line}


def _lasting(listing: Callable[[], set[str]], settle: float = 1.0) -> set[str]:
    """What ``listing`` shows now and still shows ``settle`` seconds later: a bridge that another
    process is taking down loses its link first and its table a few milliseconds later."""
    first = listing()
    if not first:
        return first
    time.sleep(settle)
    return first & listing()


def _take_down_bridges(roots: list[Path] | None = None) -> None:
    """An idle bridge goes a few seconds after its last container left; the session does not wait for that.

    Only idle bridges go (``network_prune``): a veth, a mount or a process still there is a leak,
    and the check below reports it. A root another user owns (a test's unprivileged user's, the
    simulator's run as ``nobody``) is passed by: only root's own roots make bridges, and labkit
    refuses to open another user's root.
    """
    from labkit.engine import Engine

    for root in _ROOTS if roots is None else roots:
        try:
            if root.stat().st_uid != os.geteuid():
                continue
        except FileNotFoundError:
            continue
        if (root / "networks").is_dir():
            try:
                Engine(root=root, backend="linux").network_prune()
            except Exception as err:  # reported below as the bridge that stayed
                print(f"could not prune the networks of {root}: {err}")


def pytest_sessionfinish(session, exitstatus):
    from labkit.daemon import client

    client.stop(str(SOCKETS))
    shutil.rmtree(SOCKETS, ignore_errors=True)
    shutil.rmtree(SHIMS, ignore_errors=True)
    if not IS_ROOT:
        return
    _take_down_bridges()
    left = leaks()
    for root in _ROOTS:
        shutil.rmtree(root, ignore_errors=True)
    if left:
        session.exitstatus = 1
        tw = session.config.get_terminal_writer()
        tw.line("labkit left these on the host (a leak fails the run):", red=True)
        for item in left:
            tw.line(f"  {item}", red=True)
