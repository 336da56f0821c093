"""Services on the real kernel: replicas behind one port, replaced when they die, the endpoint answering throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.util import scaled, wait_for

pytestmark = pytest.mark.root


def get(port: int) -> dict:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read())


def test_replicas_balance_and_heal(engine):
    """Three replicas share the port round-robin; a client looping on the port while one is killed and replaced
    sees no more than a brief gap (the issue's bar), and nearly every request answered."""
    engine.service_create("web", "frontend-app:v2.1.0", replicas=3, ports=["18181:3000"])
    try:
        assert wait_for(lambda: len({get(18181)["hostname"] for _ in range(6)}) == 3, timeout=scaled(10))
        before = {c["Names"][0]: c["Id"] for c in engine.ps() if c["Names"][0].startswith("/web.")}
        assert set(before) == {"/web.1", "/web.2", "/web.3"}
        engine.kill("web.2")
        answered, failed = 0, []
        start = last_ok = time.monotonic()
        gap = 0.0
        while time.monotonic() < start + 2:
            asked = time.monotonic()
            try:
                get(18181)
                answered += 1
                now = time.monotonic()
                gap, last_ok = max(gap, now - last_ok), now
            except OSError as err:
                failed.append(f"at {asked - start:.3f} s, after {time.monotonic() - asked:.3f} s: {err!r}")
        gap = max(gap, time.monotonic() - last_ok)
        print(f"requests answered {answered}, failed {len(failed)}, longest gap between answers {gap * 1000:.0f} ms")
        log = engine.store.root / "services" / "web.log"
        pid = engine.service_ls()[0].get("ControllerPid", 0)
        alive = os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0]
        story = (f"failed: {failed}; controller {pid} state {alive or 'gone'}; "
                 f"controller log: {log.read_text() if log.exists() else ''}")
        assert answered > 10 * len(failed), f"the endpoint kept answering while a replica was replaced; {story}"
        assert gap < 3.0, f"no more than a brief gap: replicas are replaced within seconds; {story}"
        assert get(18181)["hostname"], f"the endpoint still answers afterwards; {story}"
        assert wait_for(lambda: engine.inspect("web.2")["State"]["Status"] == "running"
                        and engine.inspect("web.2")["Id"] != before["/web.2"], timeout=scaled(10))
        engine.service_scale("web", 1)
        assert wait_for(lambda: len([c for c in engine.ps() if c["Names"][0].startswith("/web.")]) == 1,
                        timeout=scaled(10))
        assert engine.service_ls()[0]["Replicas"] == 1
    finally:
        engine.service_rm("web")
    assert not [c for c in engine.ps(all=True) if c["Names"][0].startswith("/web.")]
    assert engine.service_ls() == []


def test_service_cli(engine):
    """The CLI creates, lists and removes a service."""
    env = {**os.environ, "LABKIT_ROOT": str(engine.store.root)}

    def lk(*args):
        return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, env=env)

    assert lk("service", "create", "--name", "api", "--replicas", "2", "-p", "18182:3000",
              "frontend-app:v2.1.0").returncode == 0
    try:
        assert wait_for(lambda: "2/2" in lk("service", "ls").stdout, timeout=scaled(10))
        out = lk("service", "ls").stdout
        assert "127.0.0.1:18182->3000/tcp" in out
    finally:
        assert lk("service", "rm", "api").stdout == "api\n"


def test_create_and_scale_wait_until_the_service_converges(engine):
    """As Docker's without --detach: ``service create`` returns once every replica runs, printing its progress and
    ``verify: Service converged``; ``scale`` waits the same way down and up; ``-d`` returns at once, ``-q`` prints
    the name alone; a service whose replicas cannot start is given up on at the deadline with exit 1 and one line
    saying how far it got and why (the controller's note), and the service stays for the learner to remove."""
    env = {**os.environ, "LABKIT_ROOT": str(engine.store.root), "LABKIT_SERVICE_WAIT": f"{scaled(60):g}"}

    def lk(*args, **extra):
        return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True,
                              env={**env, **extra}, timeout=scaled(180))

    def running(name):
        return {s["Name"]: (s["Running"], s["Replicas"]) for s in engine.service_ls()}[name]

    try:
        made = lk("service", "create", "--name", "conv", "--replicas", "4", "busybox", "sleep", "600")
        assert made.returncode == 0, made.stderr
        assert running("conv") == (4, 4), made.stdout  # already, with no wait of the test's own
        lines = made.stdout.splitlines()
        assert lines[0] == "conv" and lines[-1] == "verify: Service converged", lines
        assert lines[-2] == "overall progress: 4 out of 4 tasks", lines
        assert all(line.startswith("overall progress: ") for line in lines[1:-1]), lines

        down = lk("service", "scale", "conv=2")
        assert down.returncode == 0 and running("conv") == (2, 2), down
        assert down.stdout.splitlines()[0] == "conv scaled to 2"
        assert down.stdout.splitlines()[-1] == "verify: Service converged"
        assert lk("service", "scale", "-q", "conv=3").stdout == "conv scaled to 3\n"
        assert running("conv") == (3, 3)

        quick = lk("service", "create", "-d", "--name", "quick", "--replicas", "2", "busybox", "sleep", "600")
        assert (quick.returncode, quick.stdout) == (0, "quick\n"), quick
        assert lk("service", "create", "-q", "--name", "quiet", "busybox", "sleep", "600").stdout == "quiet\n"
        assert running("quiet") == (1, 1), running("quiet")

        patience = f"{scaled(8):g}"  # long enough for the controller to have tried, and noted why it failed
        bad = lk("service", "create", "--name", "broken", "--replicas", "2", "busybox", "nosuchcommand",
                 LABKIT_SERVICE_WAIT=patience)
        assert bad.returncode == 1, bad
        assert bad.stderr.count("\n") == 1, bad.stderr
        assert f"service broken: 0 of 2 replicas running after {patience} s" in bad.stderr, bad.stderr
        assert "nosuchcommand" in bad.stderr, bad.stderr  # why, from the controller's log
        assert "broken" in {s["Name"] for s in engine.service_ls()}
    finally:
        for name in ("conv", "quick", "quiet", "broken"):
            lk("service", "rm", name)
    assert not [c["Names"][0] for c in engine.ps(all=True)
                if c["Names"][0].startswith(("/conv.", "/quick.", "/quiet.", "/broken."))]
