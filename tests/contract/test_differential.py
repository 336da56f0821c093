"""Random operation sequences: the simulator and the kernel must agree on every result.

Hypothesis draws sequences of file operations (write, append, rm, rm -r, mkdir,
mv, cat — each run through ``exec`` as a busybox shell command) mixed with
lifecycle verbs (stop, start, pause, unpause, kill, restart). Each sequence
runs in a fresh container on each backend; every step's exit code and output
(or Docker's error), the final ``diff`` and the final contents of every path
must be identical. Against the real kernel this runs only as root.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import labkit
from labkit.errors import LabkitError

from .conftest import _STATE_ROOT, remove_all

PATHS = ["/tmp/a", "/tmp/b", "/tmp/d", "/tmp/d/f", "/etc/passwd", "/etc/group", "/home", "/home/x", "/var/www",
         "/var/www/y", "/new"]
TEXT = st.sampled_from(["x", "hello", "two words"])
PATH = st.sampled_from(PATHS)

FILE_OP = st.one_of(
    st.tuples(st.just("write"), PATH, TEXT),
    st.tuples(st.just("append"), PATH, TEXT),
    st.tuples(st.just("rm"), PATH),
    st.tuples(st.just("rm -r"), PATH),
    st.tuples(st.just("mkdir"), PATH),
    st.tuples(st.just("mv"), PATH, PATH),
    st.tuples(st.just("cat"), PATH),
)
VERB = st.tuples(st.sampled_from(["stop", "start", "pause", "unpause", "kill", "restart"]))
OPS = st.lists(st.one_of(FILE_OP, FILE_OP, FILE_OP, VERB), min_size=1, max_size=8)

SHELL = {
    "write": lambda p, t: f"echo '{t}' > {p}",
    "append": lambda p, t: f"echo '{t}' >> {p}",
    "rm": lambda p: f"rm {p}",
    "rm -r": lambda p: f"rm -r {p}",
    "mkdir": lambda p: f"mkdir {p}",
    "mv": lambda p, q: f"mv {p} {q}",
    "cat": lambda p: f"cat {p}",
}


def play(engine, ops) -> dict:
    """Run ``ops`` in a fresh container; return everything a learner could observe."""
    c = engine.run("busybox", ["sleep", "600"], detach=True)
    steps = []
    try:
        for op in ops:
            try:
                if op[0] in SHELL:
                    steps.append(("exec", *c.exec(["sh", "-c", SHELL[op[0]](*op[1:])])))
                else:
                    kw = {"timeout": 0} if op[0] in ("stop", "restart") else {}
                    getattr(engine, op[0])(c.id, **kw)
                    steps.append((op[0], c.status, c.exit_code))
            except LabkitError as e:
                steps.append(("error", type(e).__name__, str(e).replace(c.id, "<id>")))
        diff = [(d["Kind"], d["Path"]) for d in c.diff()]
        if c.status == "paused":
            c.unpause()
        if c.status != "running":
            c.start()
        script = "; ".join(f"echo '== {p}'; cat {p} 2>&1" for p in PATHS)
        contents = c.exec(["sh", "-c", script])
        return {"steps": steps, "diff": diff, "contents": contents}
    finally:
        c.remove(force=True)


@pytest.fixture(scope="module")
def sim_engine():
    engine = labkit.connect(backend="sim", root=_STATE_ROOT[0]())
    yield engine
    remove_all(engine)


@pytest.fixture(scope="module")
def linux_engine():
    engine = labkit.connect(backend="linux", root=_STATE_ROOT[0]())
    yield engine
    remove_all(engine)


@pytest.mark.root
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(ops=OPS)
@example(ops=[("write", "/tmp/d", "x"), ("mv", "/tmp/a", "/tmp/d/f")])  # mv stats its destination first
def test_random_sequences_agree_with_the_kernel(sim_engine, linux_engine, ops):
    """The same random sequence gives the same results, errors, diff and file contents on sim and linux."""
    assert play(sim_engine, ops) == play(linux_engine, ops)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_sequences_are_deterministic_on_the_sim(sim_engine, ops):
    """The simulator is a function of its input: one sequence, played twice, gives the same observations."""
    assert play(sim_engine, ops) == play(sim_engine, ops)
