#!/usr/bin/env python3
"""Run part of labkit's test suite in a Debian 12 guest with systemd and a cgroup v2-only hierarchy.

Most learners' Linux machines boot systemd with every controller in one cgroup v2 hierarchy; a host
with hybrid cgroups and no systemd never runs labkit's v2 limits, its v2 freezer or rootless limits in
a delegated scope. This script:

1. builds (or reuses) the guest image with ``tests/vm/build.sh`` (mmdebstrap, cached by a hash);
2. boots it with QEMU: KVM where ``/dev/kvm`` runs a stock kernel, TCG (emulation) otherwise, under
   ``nice -n 10`` with two vCPUs, ``systemd.unified_cgroup_hierarchy=1`` on the kernel command line,
   user networking with ssh forwarded to a free port on 127.0.0.1, the disk opened as a snapshot;
3. copies the checkout (the files git knows) to ``/srv/labkit`` in the guest, readable by every user;
4. runs pytest there as root, then as the user ``lk`` logged in over ssh (a real login, so
   ``pam_systemd`` gives it a session and a user manager), each with a deadline: the tests named
   (``--root``, ``--user``), everything the guest is to show (``--full``), or else the parts of
   :data:`PLAN` that fit in the time left once the guest is up, in the plan's order, the others
   named as left out (:func:`fit`);
5. brings each run's junit XML and log back to ``--out`` and prints its summary;
6. always powers the guest off (and kills QEMU if it does not stop in time).

Exit status: 0 when every run passed, 1 when a test failed, 2 when the guest could not be built or
booted, or a deadline passed with no test failed. With ``--ci`` (``.ci/run``'s stage after ``make test``)
the bounds are CI's (``--budget``: what is left of CI's time), and where the image cannot be built on this machine at all
(QEMU or mmdebstrap missing and not installable, no Debian mirror or package index answering, no root),
or the guest does not boot or finish within the bounds while no test failed, it prints one line saying
so and exits 3, which CI takes as a skipped stage. A test failing in the guest always exits 1.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: What the guest's speed is measured with, against this host's: a Python start that imports labkit's command
#: line, the work most tests' programs begin with (its bytecode written by a first run, as a learner's pip does).
SPEED_PROBE = "import labkit.cli"

#: What the guest runs unless --root or --user name other tests (``make test-vm``, and CI's stage with ``--ci``):
#: what this project's hybrid host cannot run, in the order it is worth its time, each part as (who runs it,
#: pytest's argument, the seconds it took in the guest emulated (TCG) while the guest ran Python
#: :data:`PLAN_SCALE` times slower than this host, its pytest start included). Where the time left cannot hold
#: them all, :func:`fit` keeps the parts that fit in this order and names those it leaves out.
#:
#: - as root: the limits a lesson sets on cgroup v2 (memory.max and OOMKilled, pids.max, cpu.max throttling,
#:   cgroup.freeze; the first test finds the overlay module not yet loaded, as on a fresh laptop);
#: - as the user ``lk``, logged in over ssh so that ``pam_systemd`` gives it a session and a user manager: the same
#:   limits and pause in the scope the user's systemd delegates to labkit, then the cgroups and container-states
#:   notebooks there (rootless, limits enforced, pause by the freezer). A skip in the user's run fails it;
#: - as root: the devices and seccomp tests (the device program cgroup v2 attaches, seccomp on kernel 6.1), the
#:   container-states notebook on real containers (pause by cgroup.freeze), the security tests of the state and
#:   ports kept private, the cgroups notebook on real containers, the v2 cgroup primitives, the container's processes, the engine, rootless in a delegated v2 subtree without
#:   systemd, and images deeper than a page of mount options on a kernel that takes no "lowerdir+" (6.1);
#:   then, where time is left: the services notebook on real containers (ten replicas converging on a slow
#:   host), the services on the real kernel, and kill -9 at random points (200 trials).
PLAN: tuple[tuple[str, str, float], ...] = (
    ("root", "tests/linux/test_limits.py", 140),
    ("user", "tests/rootless/test_session.py", 60),
    ("user", "tests/notebooks/test_notebooks.py::test_notebook_runs_rootless_in_a_user_session[02-cgroups.ipynb]",
     570),
    ("root", "tests/security/test_devices.py", 110),
    ("root", "tests/security/test_seccomp.py", 120),
    ("user", "tests/notebooks/test_notebooks.py::"
             "test_notebook_runs_rootless_in_a_user_session[05-container-states.ipynb]", 210),
    ("root", "tests/notebooks/test_notebooks.py::test_notebook_runs_on_real_containers[05-container-states.ipynb]",
     200),
    ("root", "tests/security/test_private_state.py", 150),
    ("root", "tests/security/test_relaxations.py", 25),
    ("root", "tests/security/test_ports.py", 100),
    ("root", "tests/notebooks/test_notebooks.py::test_notebook_runs_on_real_containers[02-cgroups.ipynb]", 450),
    ("root", "tests/linux/test_cgroups.py", 20),
    ("root", "tests/linux/test_process.py", 240),
    ("root", "tests/linux/test_engine.py", 225),
    ("root", "tests/rootless/test_rootless.py::test_pause_freezes_in_a_delegated_cgroup", 60),
    ("root", "tests/rootless/test_rootless.py::test_the_engine_leaves_the_delegated_cgroup_as_it_found_it", 30),
    ("root", "tests/linux/test_deep_fallback.py", 250),
    ("root", "tests/notebooks/test_notebooks.py::test_notebook_runs_on_real_containers[06-stateless-by-design.ipynb]",
     290),
    ("root", "tests/linux/test_service.py", 390),
    ("root", "tests/linux/test_crash.py", 2100),
)
#: How many times slower than this host the guest ran Python when :data:`PLAN`'s seconds were measured.
PLAN_SCALE = 25
#: What ``--full`` runs: the whole of what #17's platform is to show, for a run outside CI (hours emulated). As
#: root the real-kernel suite, the security tests, the rootless suite (a user made by the tests, without a
#: session) and every notebook (on real containers as root; rootless and on the simulator as a user who ran
#: ``make lab``, whose venv pip fills from the package index); as the logged-in user, the session's limits and
#: every notebook rootless in the user's delegated scope.
FULL_ROOT = ("tests/linux", "tests/security", "tests/rootless", "tests/notebooks")
FULL_USER = ("tests/rootless/test_session.py",
             "tests/notebooks/test_notebooks.py::test_notebook_runs_rootless_in_a_user_session")
#: What a part of :data:`PLAN` is reckoned to take beyond its measured time: it fits only if this many times its
#: seconds (stretched to the guest's measured slowness) fit in what is left.
SLACK = 1.3
#: The seconds a pytest run takes in the guest beyond its tests (the interpreter's start, collection, the
#: session's leak check), at :data:`PLAN_SCALE`, and what fetching its junit XML takes after it.
RUN_OVERHEAD = 90

#: CI's bounds, in seconds: the image build (uncached on a fresh machine), then everything after it (what
#: ``--budget`` leaves is usually less). Beside `make test`'s ~36-40 min they keep the whole CI run under its
#: 90 min even when both are reached.
CI_BUILD_DEADLINE, CI_DEADLINE = 1200, 3000
#: The part of the time left after the boot that the root run may take when a user's run follows it and the
#: tests were named (--root, --user, --full) rather than fitted from :data:`PLAN`.
ROOT_SHARE = 0.6
#: The least of CI's time (``--budget``) worth starting the stage with: a cached boot and the root run on a
#: quiet machine, with the uncached build's time spent before it where the image is new.
MIN_CI_BUDGET = 900
#: Exit status of ``--ci`` where the guest cannot be built or run on this machine, or not within CI's bounds,
#: and no test failed (it says why in one line).
CANNOT = 3
#: The exit statuses of timeout(1) (and of its -k kill) around a run cut by its deadline.
CUT = (124, 137)
#: Seconds a run cut by its deadline has to end its pytest session (SIGINT) before it is killed (timeout -k).
GRACE = 120
#: Seconds kept back of the time left when a run's deadline is set: the grace above and fetching its results.
RESERVE = GRACE + 30


def log(msg: str) -> None:
    print(f"labkit-vm: {msg}", file=sys.stderr, flush=True)


def fit(seconds: float, scale: float, plan: tuple[tuple[str, str, float], ...] = PLAN
        ) -> tuple[list[tuple[str, str, float]], list[tuple[str, str, float]]]:
    """The parts of ``plan`` that fit in ``seconds`` in a guest ``scale`` times slower than this host, and those
    left out, each with its reckoned seconds.

    Parts are taken in the plan's order: each is reckoned at its measured seconds, stretched where the guest runs
    Python slower than :data:`PLAN_SCALE` (never shrunk: a quick start of Python was seen beside tests as slow as
    ever), times :data:`SLACK`, and kept where it fits in what the parts kept before it (and each run's
    :data:`RUN_OVERHEAD`) left; one that does not fit is left out and the next is tried. The same time and
    slowness always keep the same parts.
    """
    stretch = max(scale, PLAN_SCALE) / PLAN_SCALE
    kept: list[tuple[str, str, float]] = []
    left_out: list[tuple[str, str, float]] = []
    used = 0.0
    for who, test, measured in plan:
        cost = measured * stretch * SLACK
        if not any(k[0] == who for k in kept):
            cost += RUN_OVERHEAD * stretch  # the first part a user runs starts its pytest
        if used + cost <= seconds:
            kept.append((who, test, cost))
            used += cost
        else:
            left_out.append((who, test, cost))
    return kept, left_out


def accelerator() -> tuple[str, str]:
    """``("kvm", why)`` where /dev/kvm can run the guest's stock kernel, else ``("tcg", why)``.

    A KVM whose module is ``kvm_pvm`` (PVM, a page-table based nested hypervisor) runs only
    PVM-built guest kernels: a stock Debian kernel hangs there, so the guest is emulated instead.
    """
    if os.environ.get("LABKIT_VM_ACCEL") in ("kvm", "tcg"):
        return os.environ["LABKIT_VM_ACCEL"], "LABKIT_VM_ACCEL"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    if Path("/sys/module/kvm_pvm").exists():
        return "tcg", "/dev/kvm is PVM (kvm_pvm), which runs only PVM guest kernels"
    if not any(Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd")):
        return "tcg", "/dev/kvm is neither kvm_intel nor kvm_amd"
    return "kvm", "/dev/kvm is hardware KVM"


def why_not_here(mirror: str) -> str | None:
    """Why the guest cannot be built or run on this machine, in a few words, or None if nothing is missing.

    Asked after the build failed: the tools it needs are absent (and could not be installed), or the
    Debian mirror or the Python package index it downloads from does not answer.
    """
    tools = {"qemu-system-x86_64": "QEMU", "mmdebstrap": "mmdebstrap", "mke2fs": "e2fsprogs", "ssh": "ssh"}
    missing = [name for tool, name in tools.items() if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} missing" + ("" if os.geteuid() == 0 else " (and building the image needs root)")
    if os.geteuid() != 0:
        return "building the image needs root"
    for what, url in (("the Debian mirror", f"{mirror}/dists/bookworm/Release"),
                      ("the Python package index",
                       os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + "/pip/")):
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                answer.read(1)
        except (OSError, ValueError) as err:
            return f"{what} does not answer ({url}: {err})"
    return None


def build_image(deadline: float) -> Path | None:
    """The image's folder, built by build.sh (or its cached copy); None if it could not be built.

    Raises:
        TimeoutError: The build took longer than ``deadline`` seconds (it is stopped).
    """
    proc = subprocess.Popen(["bash", str(HERE / "build.sh")], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # mmdebstrap and pip below build.sh too: mmdebstrap unmounts on TERM
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        raise TimeoutError(f"the image was not built within {deadline:.0f} s") from None
    if proc.returncode or not out.strip():
        return None
    return Path(out.strip().splitlines()[-1])


#: What times the guest's speed where it runs (on the host, and inside the guest, so that ssh's own login, seconds
#: emulated, is not counted): a Python start importing :data:`SPEED_PROBE`, and twenty fork+exec of ``/bin/true``
#: (emulated, a process's start costs more than Python's own work: the tests' programs do both); each the median of
#: three after one that warms the caches. Prints the two, in seconds.
PROBE_TIMER = ("import subprocess, sys, time\n"
               "def timed(argv, n=1):\n"
               "    t = time.monotonic()\n"
               "    for _ in range(n):\n"
               "        subprocess.run(argv, check=True)\n"
               "    return time.monotonic() - t\n"
               "def median(argv, n=1):\n"
               "    timed(argv, n)\n"
               "    return sorted(timed(argv, n) for _ in range(3))[1]\n"
               f"print(median([sys.executable, '-c', {SPEED_PROBE!r}]), median(['/bin/true'], 20))\n")


def import_seconds(argv: list[str], timeout: float) -> tuple[float, float]:
    """The seconds of :data:`PROBE_TIMER`'s two measures where ``argv`` (a command that runs a Python program given
    as its last argument's ``-c``) runs it, timed by that Python itself."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True, cwd=REPO)
    python, processes = done.stdout.split()[-2:]
    return float(python), float(processes)


def time_scale(guest: Guest) -> str:
    """How many times slower than this host the guest starts a Python program or a process, whichever is slower,
    rounded up (at least 1): what the tests' deadlines for whole programs are stretched by there
    (``LABKIT_TEST_TIME_SCALE``, tests/util.py). Emulated on a quiet 2-CPU host, a Python start was seen 7 times
    slower and a fork+exec 20 times.

    Measured, not assumed, because it depends on the accelerator and on what else the host runs: emulated (TCG)
    on this project's 2-CPU machine while other work ran, a rootless test whose program takes 13 s on the host
    took about 270 s in the guest.
    """
    if os.environ.get("LABKIT_TEST_TIME_SCALE"):
        return os.environ["LABKIT_TEST_TIME_SCALE"]
    venv = REPO / ".venv" / "bin" / "python"  # make test's, with everything labkit imports
    here = import_seconds([str(venv) if venv.exists() else sys.executable, "-c", PROBE_TIMER], 120)
    there = import_seconds([*guest.ssh_argv(), f"cd /srv/labkit && /usr/bin/python3 -c {shlex.quote(PROBE_TIMER)}"],
                           900)
    return str(max(1, math.ceil(max(t / max(h, 0.001) for h, t in zip(here, there, strict=True)))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """One booted guest: QEMU's process, its forwarded ssh port and the key that logs in."""

    def __init__(self, image: Path, out: Path, memory: str, accel: str) -> None:
        self.image, self.out = image, out
        self.port = free_port()
        cpu = "host" if accel == "kvm" else "max"
        accel_opt = "kvm" if accel == "kvm" else "tcg,thread=multi"
        self.argv = [
            "nice", "-n", "10", "qemu-system-x86_64",
            "-machine", "q35", "-accel", accel_opt, "-cpu", cpu, "-smp", "2", "-m", memory,
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
            # Emulated on a busy host, a unit may take minutes to start: systemd's 90 s would fail
            # systemd-networkd, and with it the forwarded ssh port.
            "-append", "root=LABEL=labkit-root rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 "
                       "panic=10 systemd.default_timeout_start_sec=1800",
            "-drive", f"file={image / 'disk.img'},if=virtio,format=raw,snapshot=on",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device", "virtio-net-pci,netdev=n0",
            "-nodefaults", "-display", "none", "-vga", "none", "-monitor", "none",
            "-serial", f"file:{out / 'console.log'}", "-no-reboot",
        ]
        self.proc: subprocess.Popen | None = None

    def ssh_argv(self, user: str = "root") -> list[str]:
        return ["ssh", "-i", str(self.image / "id_ed25519"), "-p", str(self.port),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=180", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15",
                "-o", "ServerAliveCountMax=8", f"{user}@127.0.0.1"]

    def ssh(self, command: str, user: str = "root", timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        """One command over ssh. Emulated on a busy host, a login alone was seen taking 90 s."""
        return subprocess.run([*self.ssh_argv(user), command], timeout=timeout, **kw)

    def boot(self, deadline: float) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, start_new_session=True)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"QEMU exited with {self.proc.returncode} during boot (see {self.out}/console.log)")
            try:
                if self.ssh("systemctl is-system-running --wait >/dev/null; true", timeout=300,
                            capture_output=True).returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(3)
        raise TimeoutError(f"the guest did not answer ssh in time (see {self.out}/console.log)")

    def shutdown(self, timeout: float = 120) -> None:
        """Power the guest off; kill QEMU if it is still there after ``timeout`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.ssh("systemctl poweroff", timeout=120, capture_output=True)
        except (subprocess.TimeoutExpired, OSError):
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log("the guest did not power off in time: killing QEMU")
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


#: Makes the checkout the labkit that the guest's Python imports, as ``pip install -e .`` does on a learner's
#: machine: a program labkit starts with an environment of its own (the resident engine, which keeps no
#: PYTHONPATH of its caller's) imports it from there, in any working directory.
CHECKOUT_PTH = "/opt/labkit-venv/lib/python3*/site-packages"


def copy_checkout(guest: Guest) -> None:
    """The files git knows (committed or not, ignored ones left out) to /srv/labkit, readable by everyone, and
    installed in the guest's venv (:data:`CHECKOUT_PTH`)."""
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"],
                           capture_output=True, check=True).stdout
    present = b"\0".join(f for f in files.split(b"\0") if f and (REPO / os.fsdecode(f)).exists())
    tar = subprocess.Popen(["tar", "-C", str(REPO), "--null", "-T", "-", "-c"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE)
    unpack = subprocess.Popen([*guest.ssh_argv(), "rm -rf /srv/labkit && mkdir -p /srv/labkit /srv/results && "
                               "tar -x -C /srv/labkit && chmod -R a+rX /srv/labkit && chmod 1777 /srv/results && "
                               f"for d in {CHECKOUT_PTH}; do echo /srv/labkit > $d/labkit-checkout.pth; done"],
                              stdin=tar.stdout)
    assert tar.stdin is not None and tar.stdout is not None
    tar.stdout.close()
    tar.stdin.write(present)
    tar.stdin.close()
    if tar.wait(300) or unpack.wait(600):
        raise RuntimeError("could not copy the checkout into the guest")


#: The certificates this host trusts (Debian's bundle), which the package index it reaches may need.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def trust_as_the_host(guest: Guest) -> None:
    """Give the guest the certificates this host trusts, for pip as well as Python: the guest reaches the
    package index through QEMU's user network as the host does (a learner's ``make lab`` in a test installs
    from it), and a host behind a proxy of its own trusts that proxy's certificate."""
    if not HOST_CA_BUNDLE.is_file():
        return
    with HOST_CA_BUNDLE.open("rb") as bundle:
        guest.ssh(f"cat > {HOST_CA_BUNDLE} && printf '[global]\\ncert = {HOST_CA_BUNDLE}\\n' > /etc/pip.conf",
                  stdin=bundle, check=True)


def run_tests(guest: Guest, user: str, tests: list[str], name: str, timeout: float, extra: str) -> dict:
    """pytest in the guest as ``user``; its output streams here and its junit XML comes back."""
    xml = f"/srv/results/{name}.xml"
    # Cut by its deadline, pytest gets SIGINT first (timeout -s INT): it stops the test it is in, tears it down and
    # ends its session as after Ctrl-C, writing the junit XML of what ran and the leak check; what is still there
    # GRACE seconds later is killed. Unbuffered, so a cut run leaves its progress in the log too. The checkout
    # is imported from where it lies (PYTHONPATH), as the suite imports it: an editable
    # install was seen taking five minutes emulated.
    cmd = (f"cd /srv/labkit && PYTHONPATH=/srv/labkit PYTHONUNBUFFERED=1 {extra} timeout -s INT -k {GRACE} {int(timeout)} /opt/labkit-venv/bin/python -m pytest -q "
           f"-p no:cacheprovider --junitxml={xml} {' '.join(map(shlex.quote, tests))}")
    log(f"{name}: {user}@guest$ {cmd}")
    started = time.monotonic()
    stopped: KeyboardInterrupt | None = None
    with open(guest.out / f"{name}.log", "w") as out:
        proc = subprocess.Popen([*guest.ssh_argv(user), cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                out.write(line)
            code = proc.wait(timeout + GRACE + 60)
        except KeyboardInterrupt as err:  # this script was stopped (SIGTERM, Ctrl-C): end pytest as its deadline
            stopped, code = err, 130      # would, so its junit XML of what ran comes back before the power-off
            _interrupt_pytest(guest, proc, out)
    took = time.monotonic() - started
    got = guest.ssh(f"cat {xml}", capture_output=True)
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    if got.returncode == 0:
        (guest.out / f"{name}.xml").write_bytes(got.stdout)
        for suite in ET.fromstring(got.stdout).iter("testsuite"):
            tests_n, fail, err, skip = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
            counts["failed"] += fail
            counts["errors"] += err
            counts["skipped"] += skip
            counts["passed"] += tests_n - fail - err - skip
    if stopped is not None:
        log(f"{name} run stopped: {counts['passed']} passed, {counts['failed']} failed, {counts['errors']} errors "
            f"before it (junit XML in {guest.out})")
        raise stopped
    return {"name": name, "exit": code, "seconds": took, **counts}


def _interrupt_pytest(guest: Guest, proc: subprocess.Popen, out) -> None:  # type: ignore[type-arg,no-untyped-def]
    """SIGINT to the guest's pytest (as ``timeout -s INT`` sends at its deadline): it ends the test it is in
    and writes its junit XML; what it prints meanwhile is still logged. At most :data:`GRACE` seconds."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough: a second would lose the results
    try:
        guest.ssh("pkill -INT -f '^/opt/labkit-venv/bin/python -m pytest'", timeout=60)
        assert proc.stdout is not None
        cut = threading.Timer(GRACE, proc.kill)  # a pytest that does not end in time is left to the power-off
        cut.start()
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
        cut.cancel()
    except (OSError, subprocess.SubprocessError) as err:
        log(f"could not end pytest in the guest: {err}")
    finally:
        signal.signal(signal.SIGTERM, _interrupted)


def _interrupted(signum, frame):  # type: ignore[no-untyped-def]
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupted)  # a CI's time-out too powers the guest off (finally below)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path, help="a built image's folder (default: build or reuse one)")
    ap.add_argument("--root", nargs="*", default=None,
                    help="tests run as root (naming tests here or in --user runs those instead of the plan)")
    ap.add_argument("--user", nargs="*", default=None, help="tests run as the logged-in user lk")
    ap.add_argument("--full", action="store_true",
                    help="run everything the guest is to show (FULL_ROOT, FULL_USER: hours emulated) instead of the "
                         "plan fitted to the time left")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "vm", help="where logs and junit XML go")
    ap.add_argument("--memory", default="4G")
    ap.add_argument("--deadline", type=float, default=float(os.environ.get("LABKIT_VM_DEADLINE", 0)) or None,
                    help="seconds for everything after the image is built (default 3600, with --full 21600)")
    ap.add_argument("--boot-timeout", type=float, default=1500)
    ap.add_argument("--budget", type=float, default=None,
                    help="with --ci: seconds the whole stage may take, build included (what CI has left); "
                         "each of its bounds shrinks to fit")
    ap.add_argument("--ci", action="store_true",
                    help=f"CI's stage: its selection and bounds, and exit {CANNOT} with one line saying why where the "
                         "guest cannot be built here (no QEMU, no Debian mirror), instead of failing")
    args = ap.parse_args(argv)
    # The plan, fitted to the time left once the guest is up, unless tests are named or --full asks for them all.
    planned = args.root is None and args.user is None and not args.full
    if args.full:
        args.root = list(FULL_ROOT) if args.root is None else args.root
        args.user = list(FULL_USER) if args.user is None else args.user
    args.root, args.user = args.root or [], args.user or []
    if args.deadline is None:
        args.deadline = 21600 if args.full else 3600
    if args.ci:
        args.deadline = min(args.deadline, CI_DEADLINE)
    stage_end = None if args.budget is None else time.monotonic() + args.budget
    if args.ci and stage_end is not None and args.budget < MIN_CI_BUDGET:
        print(f"labkit-vm: stage skipped: {max(args.budget, 0):.0f} s of CI's time are left, and the guest needs at least "
              f"{MIN_CI_BUDGET} s", flush=True)
        return CANNOT
    args.out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}

    t = time.monotonic()
    if args.image is None:
        try:
            build_bound = CI_BUILD_DEADLINE if args.ci else 3600
            if stage_end is not None:  # leave the boot and the tests at least MIN_CI_BUDGET / 2 after the build
                build_bound = min(build_bound, stage_end - time.monotonic() - MIN_CI_BUDGET / 2)
            args.image = build_image(build_bound)
        except TimeoutError as err:
            log(str(err))
            if args.ci:
                print(f"labkit-vm: stage incomplete, not failed: {err}", flush=True)
                return CANNOT
            return 2
        if args.image is None:
            why = why_not_here(os.environ.get("LABKIT_VM_MIRROR", "http://deb.debian.org/debian"))
            if args.ci and why is not None:
                print(f"labkit-vm: stage skipped: the Debian 12 guest cannot be built on this machine: {why}", flush=True)
                return CANNOT
            log("the image could not be built" + (f": {why}" if why else ""))
            return 2
    times["image"] = time.monotonic() - t

    accel, why = accelerator()
    log(f"accelerator {accel}: {why}")
    deadline = time.monotonic() + args.deadline
    if stage_end is not None:
        deadline = min(deadline, stage_end)
    guest = Guest(args.image, args.out, args.memory, accel)
    results = []
    status = 0
    unfinished = None  # why the guest did not get through its runs in time, where nothing failed
    try:
        t = time.monotonic()
        guest.boot(min(deadline, t + args.boot_timeout))
        times["boot"] = time.monotonic() - t
        uname = guest.ssh("uname -r; stat -fc %T /sys/fs/cgroup; cat /sys/fs/cgroup/cgroup.controllers",
                          capture_output=True, text=True).stdout.split("\n")
        log(f"guest up: kernel {uname[0]}, /sys/fs/cgroup is {uname[1]} ({uname[2]})")
        t = time.monotonic()
        copy_checkout(guest)
        trust_as_the_host(guest)
        times["copy"] = time.monotonic() - t
        scale = time_scale(guest)
        log(f"the guest starts programs about {scale} times slower than this host: the tests' deadlines for whole "
            f"programs stretch by that (LABKIT_TEST_TIME_SCALE)")
        share = ROOT_SHARE
        if planned:
            left = deadline - time.monotonic() - RESERVE
            kept, left_out = fit(left, float(scale))
            for who, test, cost in kept:
                print(f"labkit-vm: runs as {who}: {test} (reckoned {cost:.0f} s)", flush=True)
            for who, test, cost in left_out:
                print(f"labkit-vm: left out for time ({left:.0f} s left, the guest {scale} times slower than this "
                      f"host): as {who}, {test} (reckoned {cost:.0f} s)", flush=True)
            if not kept:
                raise TimeoutError(f"no part of the plan fits in the {left:.0f} s left")
            args.root = [t for who, t, _ in kept if who == "root"]
            args.user = [t for who, t, _ in kept if who == "user"]
            reckoned = {who: sum(c for w, _, c in kept if w == who) for who in ("root", "user")}
            share = reckoned["root"] / (reckoned["root"] + reckoned["user"])
        for user, tests, name in (("root", args.root, "root"), ("lk", args.user, "user")):
            if not tests:
                continue
            left = deadline - time.monotonic() - RESERVE
            if left < 60:
                raise TimeoutError(f"no time left for the {name} run")
            if user == "root" and args.user:
                left *= share  # the user's run keeps its share of the time, however long root's would take
            extra = f"LABKIT_TEST_TIME_SCALE={shlex.quote(scale)}"
            if user == "root":
                extra += " LABKIT_TEST_USER=lk-learner"
            r = run_tests(guest, user, tests, name, left, extra)
            times[name] = r["seconds"]
            results.append(r)
            if r["failed"] or r["errors"] or (user != "root" and r["skipped"]):
                status = 1  # the user's run exists for what it skips elsewhere: a skip there fails too
            elif r["exit"] in CUT:
                unfinished = unfinished or f"the {name} run was cut by its deadline"
            elif r["exit"] != 0:
                status = 1  # pytest's own failure: a test that could not be collected, a leak at the session's end
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as err:
        log(f"stopped: {err}")
        unfinished = unfinished or str(err)
    except (subprocess.CalledProcessError, KeyboardInterrupt) as err:
        log(f"stopped: {err}")
        status = 2
    finally:
        t = time.monotonic()
        guest.shutdown()
        times["shutdown"] = time.monotonic() - t

    for r in results:
        log(f"{r['name']} run: {r['passed']} passed, {r['failed']} failed, {r['errors']} errors, "
            f"{r['skipped']} skipped in {r['seconds']:.0f} s (pytest exit {r['exit']})")
    log("times: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f" (accelerator {accel})")
    log(f"logs and junit XML in {args.out}")
    if results:
        passed = sum(r["passed"] for r in results)
        failed = sum(r["failed"] + r["errors"] for r in results)
        print(f"guest: {passed} passed, {failed} failed")
    if status or not unfinished:
        return status
    # Nothing failed, but the guest did not finish: too slow a machine (emulated, or busy) for the bounds given.
    if args.ci:
        print(f"labkit-vm: stage incomplete, not failed: {unfinished}; what ran passed", flush=True)
        return CANNOT
    return 2


if __name__ == "__main__":
    sys.exit(main())
