"""Random operation sequences: the simulator and the kernel must agree on every result, and trace it alike.

Hypothesis draws sequences of file operations (write, append, rm, rm -r, mkdir,
mv, cat — each run through ``exec`` as a busybox shell command) mixed with
lifecycle verbs (stop, start, pause, unpause, kill, restart). Each sequence
runs in a fresh container on each backend; every step's exit code and output
(or Docker's error), the writable-layer steps its trace shows (a copy-up's
lookup, parents, copy and write, a whiteout, an opaque directory, an add: kind,
path, size and layer), the final ``diff`` and the final contents of every path
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


#: What a change to the writable layer is traced as: a copy-up's steps (the lookup that found the file below, the
#: parent directories copied up first, the copy, the write on it), a whiteout, an opaque directory, a new file.
LAYER_KINDS = ("lookup", "copy-up-dir", "copy-up", "write-upper", "whiteout", "opaque", "add")


def layer_steps(trace) -> list[tuple]:
    """The writable layer's steps of a trace: (kind, path), with the bytes an add made or a copy-up copied and the
    image layer a lookup or copy-up found the file in."""
    return [(s.kind, s.change["path"], *(s.change[k] for k in ("bytes", "from_layer") if k in s.change))
            for s in trace if s.kind in LAYER_KINDS]


def play(engine, ops) -> dict:
    """Run ``ops`` in a fresh container; return everything a learner could observe, the trace's layer steps too."""
    c = engine.run("busybox", ["sleep", "600"], detach=True)
    steps = []
    try:
        for op in ops:
            try:
                with engine.tracing() as trace:
                    if op[0] in SHELL:
                        steps.append(("exec", *c.exec(["sh", "-c", SHELL[op[0]](*op[1:])])))
                    else:
                        kw = {"timeout": 0} if op[0] in ("stop", "restart") else {}
                        getattr(engine, op[0])(c.id, **kw)
                        steps.append((op[0], c.status, c.exit_code))
                steps.append(("traced", layer_steps(trace)))
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



#: The steps a write to an image file takes: found in image layer 1, /etc copied up first, the file copied, written.
def copy_up(path: str, size: int) -> list[tuple]:
    return [("lookup", path, 1), ("copy-up-dir", "/etc"), ("copy-up", path, size, 1), ("write-upper", path)]


#: Shell commands, each run by one ``exec``, and the writable-layer steps both backends must trace for each, as the
#: kernel left the upper dir: a file removed and made again is a whiteout and an add, never a copy-up; a moved or
#: removed tree is told where it ended up (a tree made and removed not at all).
TRACED = {
    "recreated file": (["rm /etc/group && echo g > /etc/group"],
                       [[("copy-up-dir", "/etc"), ("whiteout", "/etc/group"), ("add", "/etc/group", 2)]]),
    "copied up, then recreated": (["echo a >> /etc/group && rm /etc/group && echo g > /etc/group"],
                                  [[("copy-up-dir", "/etc"), ("whiteout", "/etc/group"), ("add", "/etc/group", 2)]]),
    "recreated by a later exec": (["echo a >> /etc/group", "rm /etc/group && echo g > /etc/group"],
                                  [copy_up("/etc/group", 26), [("whiteout", "/etc/group"), ("add", "/etc/group", 2)]]),
    "recreated, then appended": (["rm /etc/group && echo g > /etc/group", "echo h >> /etc/group"],
                                 [[("copy-up-dir", "/etc"), ("whiteout", "/etc/group"), ("add", "/etc/group", 2)],
                                  []]),
    "plain copy-up": (["echo more >> /etc/passwd"], [copy_up("/etc/passwd", 75)]),
    "copy-up by chmod": (["chmod 600 /etc/group"], [copy_up("/etc/group", 26)]),
    "new file": (["echo new > /etc/new"], [[("copy-up-dir", "/etc"), ("add", "/etc/new", 4)]]),
    "removed file": (["rm /etc/group"], [[("copy-up-dir", "/etc"), ("whiteout", "/etc/group")]]),
    "mv of a file": (["mv /etc/passwd /etc/pw"],
                     [[("copy-up-dir", "/etc"), ("add", "/etc/pw", 75), ("whiteout", "/etc/passwd")]]),
    "mv of a new file over an image file": (["echo x > /tmp/f && mv /tmp/f /etc/group"],
                                            [[("copy-up-dir", "/etc"), ("whiteout", "/etc/group"),
                                              ("add", "/etc/group", 2)]]),
    "mv of a new directory": (["mkdir -p /d/e && echo x > /d/e/f && mv /d /m"],
                              [[("opaque", "/m"), ("add", "/m/e/f", 2)]]),
    "mv of an image directory": (["echo x > /var/www/i && mv /var /v"], [[("add", "/v/www/i", 2), ("whiteout", "/var")]]),
    "rm -rf of a new directory": (["mkdir -p /d/e && echo x > /d/e/f && mv /d /m && rm -rf /m"], [[]]),
    "rm -rf of image directories": (["rm -rf /home /var"], [[("whiteout", "/home"), ("whiteout", "/var")]]),
    "rm -rf of a changed image directory": (["echo x > /var/www/i && rm -rf /var"], [[("whiteout", "/var")]]),
}


def traced(engine, commands: list[str]) -> list[list[tuple]]:
    """The layer steps the trace shows for each of ``commands``, run one ``exec`` each in a fresh container."""
    c = engine.run("busybox", ["sleep", "600"], detach=True, network="none")
    try:
        out = []
        for command in commands:
            with engine.tracing() as steps:
                code, output = c.exec(["sh", "-c", command])
            assert code == 0, output
            out.append(layer_steps(steps))
        return out
    finally:
        c.remove(force=True)


@pytest.mark.root
@pytest.mark.parametrize("case", sorted(TRACED))
def test_the_trace_of_a_layer_change_is_the_same_on_both_backends(sim_engine, linux_engine, case):
    """A file removed and made again is a whiteout and an add, never a copy-up (the real backend tells the two
    apart by the origin overlayfs records on a copy-up); a write to an image file is a copy-up, a removal a
    whiteout, a new file an add; ``mv`` and ``rm -rf`` give what they left — on the simulator and the kernel alike."""
    commands, expected = TRACED[case]
    assert traced(sim_engine, commands) == traced(linux_engine, commands) == expected
