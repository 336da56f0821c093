"""Labs graded against a real engine: they fail before the learner does the task, pass after, and cannot be faked."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from labkit.cli import main as run_line
from labkit.grading import load_bank
from labkit.grading.probes import copied_up, file_in_upperdir
from labkit.grading.results import CORRECT, NOT_ATTEMPTED

pytestmark = pytest.mark.root


def lab(bank, qid):
    return load_bank(bank, learner="ada")[qid]


@pytest.fixture
def host_dir():
    """A directory on the host outside every container layer (named so leak checks find it)."""
    d = tempfile.mkdtemp(prefix="labkit-grading-host-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_sre_lab_fails_with_the_wrong_env_and_passes_after_the_fix(engine):
    """frontend-app with NODE_ENV=development fails the lab; recreated with production and the token, it passes."""
    q = lab("inspect", "ins.lab")
    token = q.params["token"]
    assert q.check(engine=engine, run_line=run_line).verdict == NOT_ATTEMPTED
    engine.run("busybox", ["sleep", "300"], detach=True, name="frontend-app",
               env={"NODE_ENV": "development", "PORT": "3000"})
    before = q.check(engine=engine, run_line=run_line)
    assert before.verdict != CORRECT and before.verdict != NOT_ATTEMPTED
    env_check = before.checks[1]
    assert not env_check.passed and "NODE_ENV=development" in env_check.message and env_check.hint
    engine.rm("frontend-app", force=True)
    engine.run("busybox", ["sleep", "300"], detach=True, name="frontend-app",
               env={"NODE_ENV": "production", "PORT": "3000"}, labels={"lab.token": token})
    after = q.check(engine=engine, run_line=run_line)
    assert after.verdict == CORRECT and after.points == after.max_points
    assert "all checks passed, 1 of them hidden" in after.feedback
    other = lab("inspect", "ins.lab").for_learner("bob").check(engine=engine, run_line=run_line)
    assert not other.correct  # a neighbour's token is not in this state


def test_layers_lab_reads_the_upper_dir_and_cannot_be_faked_from_the_host(engine, host_dir):
    """A file on the host, a bind mount or a symlink out of the layer does not count; a real write does."""
    q = lab("layers", "lay.lab")
    token = q.params["token"]
    name = f"layer-{token}"
    with open(os.path.join(host_dir, "hello"), "w") as f:
        f.write(token)
    engine.run("busybox", ["sleep", "300"], detach=True, name=name)
    upper = engine.inspect(name)["GraphDriver"]["Data"]["UpperDir"]
    assert not os.path.commonpath([upper, host_dir]) == upper

    # A symlink inside the container pointing at the host's file: the probe never follows it.
    code, _ = engine.exec_output(name, ["sh", "-c", f"mkdir -p /data && ln -s {host_dir}/hello /data/hello"])
    assert code == 0 and os.path.islink(os.path.join(upper, "data/hello"))
    r = q.check(engine=engine, run_line=run_line)
    assert not r.checks[0].passed

    # A bind mount: the write lands on the host, outside the upper dir.
    bound = f"bound-{token}"
    engine.run("busybox", ["sh", "-c", f"echo {token} > /data/hello"], name=bound, volumes=[f"{host_dir}:/data"])
    assert not file_in_upperdir(engine, bound, "/data/hello", token).passed

    # The real thing: written inside, and a delete that leaves a whiteout; no copy-up yet.
    code, _ = engine.exec_output(name, ["sh", "-c", f"rm /data/hello && echo {token} > /data/hello && rm /etc/group"])
    assert code == 0
    r = q.check(engine=engine, run_line=run_line)
    assert [c.passed for c in r.checks] == [True, False, True, True] and r.verdict != CORRECT
    # The copy-up: the image's /etc/passwd changed inside the container.
    code, _ = engine.exec_output(name, ["sh", "-c", f"echo {token} >> /etc/passwd"])
    assert code == 0
    r = q.check(engine=engine, run_line=run_line)
    assert [c.passed for c in r.checks] == [True, True, True, True] and r.verdict == CORRECT
    assert r.checks[3].hidden and r.checks[3].output == ""


def test_copied_up_refuses_an_image_file_removed_and_made_again(engine):
    """On the kernel, an image file removed and made again with the token is a whiteout and a new file, not a
    copy-up (the new file has no overlay.origin xattr): copied_up fails it, and passes one appended to."""
    engine.run("busybox", ["sleep", "300"], detach=True, name="remaker")
    code, _ = engine.exec_output("remaker", ["sh", "-c", "rm /etc/passwd && echo tok123 > /etc/passwd && "
                                                         "echo tok123 >> /etc/group"])
    assert code == 0
    made = copied_up(engine, "remaker", "/etc/passwd", contains="tok123")
    assert not made.passed and "removed and made again" in made.message
    assert copied_up(engine, "remaker", "/etc/group", contains="tok123").passed


def test_states_predictions_are_graded_by_what_the_engine_does_in_a_fresh_experiment(engine):
    """stop on a `sleep` PID 1 ends in 137 and `exited`: the grader runs the experiment itself, under new
    names, so the learner's own container (here still running) neither decides the grade nor is touched."""
    bank = load_bank("states", learner="ada")
    code_q, status_q = bank["st.predict.code"], bank["st.predict.status"]
    token = code_q.params["run"]
    engine.run("busybox", ["sleep", "300"], detach=True, name=f"walkp-{token}")  # left running, never stopped
    before = {c["Id"] for c in engine.ps(all=True)}
    r = code_q.check("137", engine=engine, run_line=run_line)
    assert r.correct and r.observed == 137 and "new names" in r.feedback
    wrong = code_q.check("143", engine=engine, run_line=run_line)
    assert not wrong.correct and "SIGTERM" in wrong.feedback
    assert status_q.check("exited", engine=engine, run_line=run_line).correct
    assert not status_q.check("paused", engine=engine, run_line=run_line).correct
    assert {c["Id"] for c in engine.ps(all=True)} == before  # the experiments' containers are gone
    assert engine.inspect(f"walkp-{token}")["State"]["Running"]


def test_host_pid_prediction_holds_after_the_learners_container_exited(engine):
    """`iso.predict.hostpid`: once the learner's own container has exited its PID is gone from /proc, but
    the prediction is about a running container, and a fresh run of the experiment says yes."""
    q = load_bank("isolation", learner="ada")["iso.predict.hostpid"]
    name = f"seen-{q.params['token']}"
    engine.run("busybox", ["true"], name=name)
    right = next(o.text for o in q.options if o.value is True)
    wrong = next(o.text for o in q.options if o.value is False)
    assert q.check(right, engine=engine, run_line=run_line).correct
    assert not q.check(wrong, engine=engine, run_line=run_line).correct
    assert [c["Names"] for c in engine.ps(all=True) if "seen-" in c["Names"][0]] == [[f"/{name}"]]


def test_states_lab_walk(engine):
    """The states lab passes only once the container was written, stopped, started and paused."""
    q = lab("states", "st.lab")
    token = q.params["token"]
    name = f"walk-{token}"
    engine.run("busybox", ["sleep", "300"], detach=True, name=name)
    engine.exec_output(name, ["sh", "-c", f"echo {token} > /walk"])
    assert not q.check(engine=engine, run_line=run_line).correct  # running, not paused
    engine.stop(name, timeout=1)
    engine.start(name)
    engine.pause(name)
    assert q.check(engine=engine, run_line=run_line).correct


def test_ephemeral_lab_data_survives_rm_only_in_a_volume(engine):
    """A file written to a volume by a removed container passes; the writer must be gone."""
    q = lab("ephemeral", "eph.lab")
    token = q.params["token"]
    vol = f"keep-{token}"
    try:
        engine.volume_create(vol)
        engine.run("busybox", ["sh", "-c", f"echo {token} > /data/token"], name=f"writer-{token}",
                   volumes=[f"{vol}:/data"])
        r = q.check(engine=engine, run_line=run_line)
        assert [c.passed for c in r.checks] == [True, True, False]
        engine.rm(f"writer-{token}")
        assert q.check(engine=engine, run_line=run_line).correct
    finally:
        try:
            engine.volume_rm(vol)
        except Exception:
            pass


def test_cgroups_lab_reads_the_kernels_limit(engine):
    """The memory check compares the container's real cgroup file with the limit asked for."""
    q = lab("cgroups", "cg.lab")
    token = q.params["token"]
    engine.run("busybox", ["sleep", "300"], detach=True, name=f"budget-{token}", memory="32m", pids_limit=50)
    r = q.check(engine=engine, run_line=run_line)
    assert r.correct, r.checks
    assert r.checks[1].output == str(32 * 1024 * 1024) and "cgroup says" in r.checks[1].message


def test_isolation_lab_and_host_pid_prediction(engine):
    """A running container's PID 1 has its own namespaces and is visible in the host's /proc."""
    bank = load_bank("isolation", learner="ada")
    q = bank["iso.lab"]
    token = q.params["token"]
    engine.run("busybox", ["sleep", "300"], detach=True, name=f"iso-{token}", hostname=f"desk-{token}")
    assert q.check(engine=engine, run_line=run_line).correct
    pred = bank["iso.predict.hostpid"]
    engine.run("busybox", ["sleep", "300"], detach=True, name=f"seen-{pred.params['token']}")
    yes = next(o.text for o in pred.options if o.value is True)
    assert pred.check(yes, engine=engine, run_line=run_line).correct
