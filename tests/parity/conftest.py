"""The parity suite's engines: a private dockerd (tests/parity/dockerd.py) and the session's labkit engine,
each with ``busybox:latest`` made of the same files and ``frontend-app:v2.1.0`` built from the same
context (labkit's Labfile is a Dockerfile)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.parity.compare import Scenario
from tests.parity.dockerd import PREFIX, Dockerd, docker_cli, sweep_stale

REPO = Path(__file__).resolve().parents[2]
OUTCOMES: dict[str, Scenario] = {}


@pytest.fixture(scope="session")
def dockerd():
    """A private dockerd with busybox and frontend-app; everything of it is gone after the session."""
    if os.geteuid() != 0:
        pytest.skip("needs root and the real kernel")
    if not shutil.which("dockerd") or not docker_cli():
        pytest.fail("the parity suite needs Debian's docker.io (dockerd) and a docker client: "
                    "apt-get install docker.io (make test installs it)")
    from labkit.images.base import assemble, find_source
    from labkit.images.lessons import prepare_frontend_context

    sweep_stale()
    daemon = Dockerd(Path(tempfile.mkdtemp(prefix=PREFIX)))
    try:
        daemon.start()
        work = daemon.state / "images"
        rootfs, context = work / "rootfs", work / "frontend"
        rootfs.mkdir(parents=True)
        context.mkdir()
        kind, busybox = find_source("auto", "/bin/busybox", None)
        assemble(str(rootfs), kind, busybox)
        daemon.import_busybox(str(rootfs))
        prepare_frontend_context(str(context))
        daemon.build(str(context), "frontend-app:v2.1.0")
        shutil.rmtree(work)
        yield daemon
    finally:
        left = daemon.stop()
        assert not left, f"the parity suite's dockerd left these behind: {left}"


#: The tags both engines hold when a scenario starts.
GIVEN = {"busybox:latest", "frontend-app:v2.1.0"}


@pytest.fixture(scope="session")
def lesson_images(shared_engine):
    """The session's labkit engine with busybox and the lesson's image, and no other tag, as its dockerd:
    a tag an earlier test of the session left would show in the image listings the scenarios compare."""
    shared_engine.setup(on_step=lambda line: None)
    for image in shared_engine.images.ls():
        for tag in image.get("RepoTags") or []:
            if tag not in GIVEN:
                shared_engine.rmi(tag)
    return shared_engine


@pytest.fixture
def both(dockerd, lesson_images, engine, served, request):
    """Make a :class:`Scenario` named after the test: ``both("lifecycle")``."""
    made: list[Scenario] = []

    def labkit(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", str(REPO / "bin" / "labkit"), *args], env=served, input=input,
                              capture_output=True, timeout=timeout)

    def docker(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return dockerd.docker(*args, input=input, timeout=timeout)

    def make(name: str | None = None) -> Scenario:
        from tests.parity.test_parity import daemon_wording

        sc = Scenario(name or request.node.name.removeprefix("test_"), docker, labkit,
                      ([str(dockerd.state)], [str(engine.store.root)]), daemon_wording)
        made.append(sc)
        OUTCOMES[sc.name] = sc
        return sc

    yield make
    ids = dockerd.docker("ps", "-aq").stdout.decode().split()
    if ids:
        dockerd.docker("rm", "-f", *ids)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The parity table: each scenario's steps, how many matched, and the named differences."""
    if not OUTCOMES:
        return
    tr = terminalreporter
    tr.section("parity with dockerd")
    tr.line(f"{'scenario':28} {'steps':>5} {'match':>5} {'named':>5} {'differ':>6}  named differences")
    for name, sc in OUTCOMES.items():
        named = sorted({n for o in sc.outcomes for n in o.named})
        matched = sum(1 for o in sc.outcomes if not o.differences and not o.named)
        with_name = sum(1 for o in sc.outcomes if o.named)
        tr.line(f"{name:28} {len(sc.outcomes):5} {matched:5} {with_name:5} {len(sc.unexplained()):6}  "
                f"{', '.join(named)}")
