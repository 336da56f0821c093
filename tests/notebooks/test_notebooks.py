"""Every lesson notebook runs top to bottom three times: on real containers as root; as a user without
privileges, where ``auto`` picks rootless real containers; and on the simulator as that user. The user's runs
are those of a learner who ran ``make lab`` (the ``lab_learner`` fixture of ``tests/learner.py``): their own
checkout, their own venv from Debian's python3, their kernel. Each run shows what the notebook promises,
grades itself and leaves nothing behind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import state_root
from tests.learner import LAB_USER, LabLearner
from tests.notebooks.nbrun import (
    NOTEBOOKS,
    Run,
    execute,
    install_kernel,
    kernel_env,
    left_behind,
    load_run,
    make_prefix,
    run_of,
)
from tests.util import TIME_SCALE, scaled

WIDGET = "application/vnd.jupyter.widget-view+json"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


@pytest.fixture(scope="module")
def jupyter_path():
    """A kernelspec for this interpreter, in a directory of its own."""
    prefix = make_prefix()
    try:
        yield install_kernel(prefix)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@pytest.fixture(scope="module")
def real_root():
    """One fresh state root for the real-backend runs (the images are built once, on first use)."""
    root = state_root()
    yield root
    if os.geteuid() == 0 and (root / "networks").exists():
        import labkit

        labkit.connect(backend="linux", root=root).network_prune()  # idle bridges go a few seconds after their last container; no waiting here


#: The line a notebook's lesson prints under a cell whose output the simulator made (labkit/lesson.py).
SIMULATED_NOTE = "▲ SIMULATED: this cell's output came from labkit's simulator"


def unmarked(run: Run, outputs: list[str]) -> list[str]:
    """Of ``outputs``, those shown by a cell whose output does not say it came from the simulator (the lesson's
    note under the cell, or "simulated" on the line itself, for a cell that only reads a simulated trace)."""
    cells = [run_of(run.name, type(run.nb)(cells=[c], metadata={}, nbformat=4, nbformat_minor=5)).text
             for c in run.nb.cells if c.cell_type == "code"]

    def said(m: str, t: str) -> bool:
        return SIMULATED_NOTE in t or any(m in line and "simulated" in line for line in t.splitlines())

    return [m for m in outputs if not any(m in t and said(m, t) for t in cells)]


def shows(text: str, must: str | tuple[str, ...]) -> bool:
    """``text`` holds ``must`` (a tuple: one of its strings)."""
    return any(m in text for m in must) if isinstance(must, tuple) else must in text


def assert_graded(run: Run, labs: bool = True) -> None:
    """Reference answers earned full marks, known wrong answers none, a prediction earned full marks when it was
    what the engine observed and none when it was not, and the notebook's lab passed."""
    report = run.report
    assert report.get("questions"), f"{run.name}: no quiz widget was answered"
    wrong = {q: v for q, v in report["questions"].items() if v != "correct"}
    assert not wrong, f"{run.name}: reference answers (or the observed answer) not accepted: {wrong} " \
                      f"(observed: {report.get('observed')})"
    for qid, (verdict, points, own_feedback) in report["wrong"].items():
        assert verdict == "incorrect" and points == 0 and own_feedback, f"{run.name}: known wrong answer to {qid}"
    for qid, (seen, verdict, points, _at_check) in report["observed"].items():
        assert verdict == "incorrect" and points == 0, \
            f"{run.name}: {qid} accepted a prediction other than what the engine observed ({seen}): {verdict}"
    for qid, (verdict, _points, _max) in report.get("labs_before", {}).items():
        assert verdict != "correct", f"{run.name}: lab {qid} read correct before its work was done (Run All did it)"
        assert "This cell is a solution: it runs once you have tried" in run.text, \
            f"{run.name}: Run All ran the solution of {qid} before the learner tried"
    if any("lesson.predicted(" in c.source for c in run.nb.cells if c.cell_type == "code"):
        assert "Predict first: answer these above and press Check" in run.text, \
            f"{run.name}: Run All ran a prediction's experiment before the prediction was checked"
    if labs:
        assert report["labs"], f"{run.name}: no lab was checked"
        for qid, (verdict, points, max_points) in report["labs"].items():
            assert verdict == "correct" and points == max_points, f"{run.name}: lab {qid} scored {points}/{max_points}"


def test_every_concept_has_its_notebook():
    """The nine notebooks of the lesson exist, in its order, with their outputs cleared."""
    import nbformat

    assert ALL == ["00-start-here.ipynb", "01-isolated-process.ipynb", "02-cgroups.ipynb",
                   "03-writable-layer.ipynb", "04-ephemeral-storage.ipynb", "05-container-states.ipynb",
                   "06-stateless-by-design.ipynb", "07-inspecting.ipynb", "08-practice-and-quiz.ipynb"]
    for name in ALL:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name} has outputs committed"
        assert "widgets" not in nb.metadata, f"{name} has widget state committed"
        source = "".join(c.source for c in code)
        assert "/tmp/labkit" not in source and "/var/lib/labkit" not in source and "root=" not in source, \
            f"{name} hard-codes a state root; the user's default (or LABKIT_ROOT) must be used"
        assert "lesson = Lesson(lab)" in code[0].source, f"{name} does not keep a Lesson of what it makes"
        assert "lesson.cleanup()" in code[-1].source, f"{name} does not end by cleaning up"
        waits = [w for c in code for w in re.findall(r"^\s*while .*:\s*$", c.source, re.M)
                 if "deadline" not in w and "time.monotonic()" not in w]
        assert not waits, f"{name} has a loop without a deadline: {waits}"


def node_copy_up() -> str:
    """What appending to the image's ``/usr/local/bin/node`` copies up: the host's Node.js binary where the host
    has one (the lesson image copies it in), else the image's stand-in script (labkit/images/lessons)."""
    from labkit.images.lessons import FRONTEND, host_node
    from labkit.viz import palette

    node = host_node() or os.path.join(FRONTEND, "fallback", "node")
    return f"append /usr/local/bin/node: copy-up of {palette.size_text(os.path.getsize(node))}"


#: The trace of ``memory="32m"``: a cgroup v1 host's memory controller takes the limit in memory.limit_in_bytes,
#: a v2 (unified) one in memory.max.
MEMORY_LIMIT_WRITE = ("Write 33554432 to memory.limit_in_bytes", "Write 33554432 to memory.max")

# Each real run: (notebook, strings its output must show (a tuple: one of them), at least this many pictures,
# labs checked).
REAL = {
    "00-start-here.ipynb": (["backend: linux", "hello from PID 1", "clone(2)", "✓ root"], 0, False),
    "01-isolated-process.ipynb": (["NSpid:", "hostname — host:", "cubicle7", "pid       ", "own",
                                   "is PID 1 inside, hostname cubicle7", "inside /proc/1/status: Seccomp: 2",
                                   "inside /proc/1/status: CapEff: 00000000a80425fb",
                                   "unshare -U inside: exit 1, unshare: unshare(0x10000000): Operation not permitted"],
                                  2, True),
    "02-cgroups.ipynb": (["OOMKilled: True   ExitCode: 137", "can't fork", "--cpus 0.2", MEMORY_LIMIT_WRITE], 3,
                         True),
    "03-writable-layer.ipynb": (["append /app/server.js: copy-up of", node_copy_up(), "whiteout",
                                 "is a character device: True with device number (0, 0)",
                                 "still hash to their digests", "docker diff of B: []"], 4, True),
    "04-ephemeral-storage.ipynb": (["exists: True | holds: order #1", "after rm, exists: False",
                                    "a new container reads: order #1", "volumes left: []"], 0, True),
    "05-container-states.ipynb": (["created  ps lists it: False  ps -a lists it: True",
                                   "pause went through: cgroup freezer",
                                   "paused   ps lists it: True", "exited   ps lists it: False",
                                   "still here", "cannot start a paused container, try unpause instead",
                                   "exit code 137", "exit code 143", "ps -a lists walker: False",
                                  "the lesson says: Stopped; Docker's status says: exited"], 3, True),
    "06-stateless-by-design.ipynb": (["40 requests were answered by 10 different replicas", "failed while web.3 was replaced",
                                      "a new container: True", "B has /session: False", "of 3 replicas running",
                                      "services left: []"], 1, True),
    "07-inspecting.ipynb": (["NODE_ENV=development", "'env': 'development'", "'env': 'production'",
                             "/proc/"], 0, True),
    "08-practice-and-quiz.ipynb": (["PID 1 inside", "remove-layer", "points"], 0, False),
}


def test_a_print_the_kernel_flushed_in_two_parts_reads_as_one_line():
    """One print delivered as two stream outputs reads as the learner saw it; other outputs still part lines."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="pause went through:"),
        nbformat.v4.new_output("stream", name="stdout", text=" cgroup freezer\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "42"}),
        nbformat.v4.new_output("stream", name="stdout", text="after"),
    ])])
    run = run_of("split.ipynb", nb)
    assert shows(run.text, "pause went through: cgroup freezer")
    assert run.text.endswith("42\nafter")


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REAL))
def test_notebook_runs_on_real_containers(name, jupyter_path, real_root):
    """The notebook runs without a cell error as root, shows its key outputs, grades itself and cleans up."""
    musts, pictures, labs = REAL[name]
    run = execute(name, kernel_env(real_root, jupyter_path, LABKIT_BACKEND="linux"))
    missing = [m for m in musts if not shows(run.text, m)]
    assert not missing, f"{name}: output lacks {missing}"
    assert run.count("image/png") >= pictures, f"{name}: fewer than {pictures} pictures"
    assert run.count(WIDGET) >= 1 and "labkit-quiz" in run.widget_classes(), f"{name}: the quiz did not render"
    assert_graded(run, labs)
    assert SIMULATED_NOTE not in run.text, f"{name}: a cell on real containers says it was simulated"
    assert not left_behind(real_root), f"{name} left {left_behind(real_root)}"


# ---------------------------------------------------------------------------------------------
# The simulator, as a user without privileges

#: Strings each notebook must show on the simulator (every one also says "backend: sim").
SIM = {
    "00-start-here.ipynb": ["hello from PID 1", "clone(2)"],
    # A user's simulator models the user's network: slirp4netns's (or pasta's) tap0 where one is installed.
    "01-isolated-process.ipynb": ["is PID 1 inside", "NEWPID",
                                  "interfaces — inside: ['lo', 'tap0']" if shutil.which("slirp4netns")
                                  or shutil.which("pasta") else "interfaces — inside: ['lo']",
                                  "is PID 1 inside, hostname cubicle7", "unshare: refused (EPERM) by Docker's default profile",
                                  "mkdir: allowed by Docker's default profile"],
    "02-cgroups.ipynb": ["OOM kill marked: True", "OOMKilled: True   ExitCode: 137", "CPU quotas need the real backend"],
    "03-writable-layer.ipynb": ["append /app/server.js: copy-up of", "cow-a reads /app/server.js from: its writable layer",
                                "cow-b reads /app/server.js from: image layer 3", "holds at /etc/group: whiteout",
                                "still hash to their digests", "docker diff of B: []"],
    "04-ephemeral-storage.ipynb": ["exists: True | holds: order #1", "after rm, exists: False",
                                   "a new container reads: order #1", "volumes left: []"],
    "05-container-states.ipynb": ["created  ps lists it: False  ps -a lists it: True", "still here",
                                  "pause went through: cgroup freezer",
                                  "cannot start a paused container, try unpause instead", "ps -a lists walker: False",
                                  "the lesson says: Stopped; Docker's status says: exited"],
    "06-stateless-by-design.ipynb": ["the service cells below are skipped", "A reads: user=ada", "B has /session: False",
                                     "services left: []"],
    "07-inspecting.ipynb": ["NODE_ENV=development", "'env': 'development'", "'env': 'production'",
                            "/proc/PID/environ"],
    "08-practice-and-quiz.ipynb": ["PID 1 inside", "points"],
}
#: Outputs that come from the simulator, whose cells must say so (the note under them).
SIM_MARKED = {
    "00-start-here.ipynb": ["hello from PID 1"],
    "01-isolated-process.ipynb": ["is PID 1 inside, hostname cubicle7"],
    "02-cgroups.ipynb": ["OOM kill marked: True", "OOMKilled: True   ExitCode: 137", "Write 33554432 to memory.max"],
    "03-writable-layer.ipynb": ["append /app/server.js: copy-up of", "holds at /etc/group: whiteout"],
    "04-ephemeral-storage.ipynb": ["a new container reads: order #1"],
    "05-container-states.ipynb": ["pause went through: cgroup freezer"],
    "07-inspecting.ipynb": ["'env': 'development'"],
}
#: Pictures each notebook must draw on the simulator (01: the network picture and the cubicle walls), and the
#: widgets it must show besides its quiz.
SIM_PICTURES = {"01-isolated-process.ipynb": 2, "02-cgroups.ipynb": 2, "03-writable-layer.ipynb": 4}
SIM_WIDGETS = {"03-writable-layer.ipynb": ["labkit-explorer"]}
#: Notebooks whose lab needs the real backend (a service is real processes and sockets): on the simulator
#: their check must say "not attempted", never fail with an error.
SIM_LAB_NEEDS_REAL = {"06-stateless-by-design.ipynb"}
#: Notebooks with a lab at all.
WITH_LAB = {n for n, (_m, _p, labs) in REAL.items() if labs}


def run_as_learner(name: str, lab: LabLearner, work: Path, backend: str = "sim") -> Run:
    """Execute the notebook as the user who ran ``make lab``, with the venv it made (so its kernel runs as that
    user, with that venv), from the user's checkout, on ``backend`` (``sim``, or ``auto``: what a learner
    without root gets, rootless real containers here). Python writes bytecode into the user's venv as it does for
    a learner (pip compiled none): the first kernel pays for it, the later ones do not."""
    out, root = work / "out", work / "state"
    for d in (work, out, root):
        d.mkdir(exist_ok=True)
        os.chown(d, lab.user.pw_uid, lab.user.pw_gid)
    env = {**lab.env, "PYTHONPATH": str(lab.checkout), "LABKIT_BACKEND": backend, "LABKIT_ROOT": str(root),
           "LABKIT_ATTEMPTS": str(work / "attempts.jsonl"), "LABKIT_LEARNER": "nb-test",
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", "TMPDIR": str(work),
           "LABKIT_TEST_TIME_SCALE": str(TIME_SCALE)}
    p = subprocess.run(lab.argv(str(lab.python), "-m", "tests.notebooks.nbrun", name, str(out)), env=env,
                       cwd=str(lab.checkout), capture_output=True, text=True, timeout=scaled(600))
    error = out / f"{name}.error"
    if error.exists():
        pytest.fail(f"{name} on backend {backend} as {LAB_USER}: {error.read_text()[-3000:]}")
    assert p.returncode == 0, f"{name}: nbrun exited {p.returncode}: {p.stderr[-2000:]}"
    left = [e for e in os.listdir(root / "containers")] if (root / "containers").exists() else []
    assert not [e for e in left if not e.startswith(".")], f"{name} left containers {left}"
    return load_run(name, out)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_notebook_runs_on_the_simulator_as_a_user(name, lab_learner):
    """Run as an unprivileged user on the simulator, the notebook has no cell error, shows its key outputs and
    pictures, and grades itself: reference answers full marks, known wrong answers zero with their feedback, its lab full marks (or, for
    a lab that needs the real backend, "not attempted")."""
    work = Path(tempfile.mkdtemp(prefix="labkit-test-nb-sim-"))
    try:
        run = run_as_learner(name, lab_learner, work)
        missing = [m for m in ["backend: sim", *SIM[name]] if m not in run.text]
        assert not missing, f"{name}: output lacks {missing}"
        bare = unmarked(run, SIM_MARKED.get(name, []))
        assert not bare, f"{name}: simulated outputs not marked as simulated: {bare}"
        assert "labkit-quiz" in run.widget_classes(), f"{name}: the quiz did not render"
        pictures = SIM_PICTURES.get(name, 0)
        assert run.count("image/png") >= pictures, f"{name}: fewer than {pictures} pictures"
        absent = [w for w in SIM_WIDGETS.get(name, []) if w not in run.widget_classes()]
        assert not absent, f"{name}: {absent} did not render"
        labs = name in WITH_LAB and name not in SIM_LAB_NEEDS_REAL
        assert_graded(run, labs=labs)
        if name in SIM_LAB_NEEDS_REAL:
            assert all(v[0] == "not attempted" for v in run.report["labs"].values()), run.report["labs"]
        assert os.stat(work / "attempts.jsonl").st_uid == lab_learner.user.pw_uid  # the kernel ran as the learner
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Rootless real containers, as a user without privileges (what ``auto`` picks for a learner)

#: Strings each notebook must show rootless (every one also says "backend: rootless"). This host
#: delegates no cgroup to the learner: limits are discarded with a warning, the cgroups notebook
#: shows its limits on the simulator, and pause stops the processes with SIGSTOP.
ROOTLESS = {
    "00-start-here.ipynb": ["hello from PID 1", "clone(2)"],
    "01-isolated-process.ipynb": ["NSpid:", "hostname — host:", "cubicle7", "inside /proc/1/status: Seccomp: 2",
                                  "unshare -U inside: exit 1, unshare: unshare(0x10000000): Operation not permitted"],
    "02-cgroups.ipynb": ["memory and pids experiments run on the simulator", "OOM kill marked: True",
                         "OOMKilled: True   ExitCode: 137", "cannot enforce a CPU quota for you here"],
    "03-writable-layer.ipynb": ["append /app/server.js: copy-up of", "whiteout", "still hash to their digests",
                                "docker diff of B: []"],
    "04-ephemeral-storage.ipynb": ["exists: True | holds: order #1", "after rm, exists: False",
                                   "a new container reads: order #1", "volumes left: []"],
    "05-container-states.ipynb": ["created  ps lists it: False  ps -a lists it: True", "paused   ps lists it: True",
                                  "pause went through: SIGSTOP to each process",
                                  "still here", "cannot start a paused container, try unpause instead",
                                  "exit code 137", "exit code 143", "ps -a lists walker: False",
                                  "the lesson says: Stopped; Docker's status says: exited"],
    "06-stateless-by-design.ipynb": ["40 requests were answered by 10 different replicas", "failed while web.3 was replaced",
                                     "a new container: True", "B has /session: False", "of 3 replicas running",
                                     "services left: []"],
    "07-inspecting.ipynb": ["NODE_ENV=development", "'env': 'development'", "'env': 'production'", "/proc/"],
    "08-practice-and-quiz.ipynb": ["PID 1 inside", "points"],
}


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ROOTLESS))
def test_notebook_runs_rootless_as_a_user(name, lab_learner):
    """Run as an unprivileged user with ``auto`` (rootless real containers here), the notebook has no cell error,
    shows its key outputs, grades itself with full marks for reference answers and its lab, and leaves nothing."""
    work = Path(tempfile.mkdtemp(prefix="labkit-test-nb-rootless-"))
    os.chmod(work, 0o755)
    try:
        run = run_as_learner(name, lab_learner, work, backend="auto")
        missing = [m for m in ["backend: rootless", *ROOTLESS[name]] if m not in run.text]
        assert not missing, f"{name}: output lacks {missing}"
        if name == "02-cgroups.ipynb":  # its limits run on the simulator here: every such output says so
            bare = unmarked(run, SIM_MARKED[name])
            assert not bare, f"{name}: simulated outputs not marked as simulated: {bare}"
        else:
            assert SIMULATED_NOTE not in run.text, f"{name}: a cell on real containers says it was simulated"
        assert "labkit-quiz" in run.widget_classes(), f"{name}: the quiz did not render"
        assert_graded(run, labs=name in WITH_LAB)
    finally:
        shutil.rmtree(work, ignore_errors=True)


#: What each notebook must show run rootless by a user logged in to a systemd host with cgroup v2 (a session of
#: the user's systemd): the limits and the freezer are enforced in the scope the user's systemd delegates to labkit,
#: so the cgroups notebook runs its experiments on real containers and pause freezes.
SESSION = {**ROOTLESS,
           "02-cgroups.ipynb": ["OOMKilled: True   ExitCode: 137", "can't fork", "--cpus 0.2",
                                "Write 33554432 to memory.max"],
           "05-container-states.ipynb": [m.replace("SIGSTOP to each process", "cgroup freezer")
                                         for m in ROOTLESS["05-container-states.ipynb"]]}


def in_a_user_session() -> bool:
    """This process is an ordinary user's with a systemd user session on a cgroup v2-only host."""
    from labkit.linux import systemd
    from tests.conftest import host_cgroup_layout

    return os.geteuid() != 0 and systemd.user_bus() is not None and host_cgroup_layout() == "v2"


@pytest.fixture(scope="module")
def user_root(tmp_path_factory):
    """One state root of the user's for the session's notebooks (the lesson images are built once, on first use)."""
    return tmp_path_factory.mktemp("labkit-session-nb")


@pytest.mark.slow
@pytest.mark.skipif(not in_a_user_session(), reason="needs a user with a systemd user session on a cgroup v2-only "
                                                      "host (tests/vm/run.py's guest runs it as its user)")
@pytest.mark.parametrize("name", sorted(SESSION))
def test_notebook_runs_rootless_in_a_user_session(name, jupyter_path, user_root):
    """Run by a logged-in user of a systemd host with ``auto`` (rootless, in the scope the user's systemd
    delegates), the notebook has no cell error, shows its key outputs on real containers (limits enforced,
    pause through the freezer), grades itself with full marks and leaves nothing."""
    root = user_root
    run = execute(name, kernel_env(root, jupyter_path, LABKIT_BACKEND="auto"))
    missing = [m for m in ["backend: rootless", *SESSION[name]] if not shows(run.text, m)]
    assert not missing, f"{name}: output lacks {missing}"
    assert SIMULATED_NOTE not in run.text, f"{name}: a cell on real containers says it was simulated"
    assert "labkit-quiz" in run.widget_classes(), f"{name}: the quiz did not render"
    assert_graded(run, labs=name in WITH_LAB)
    assert not left_behind(root), f"{name} left {left_behind(root)}"


# ---------------------------------------------------------------------------------------------
# When things fail: a failed cell cleans up, and every notebook finishes on a host that cannot reach its containers


@pytest.mark.root
@pytest.mark.slow
def test_a_failed_cell_removes_what_the_notebook_made(jupyter_path, real_root):
    """Run All stops at a cell that raises; the Lesson removes the notebook's containers right then (the last cell
    will not run) and the failed cell's output says so and how to start again."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    import labkit

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os, labkit\nfrom labkit.lesson import Lesson\n"
                                  "lab = labkit.connect(os.environ['LABKIT_BACKEND'])\nlesson = Lesson(lab)\n"
                                  "lesson.clear('doomed')\n"
                                  "lab.run('busybox', ['sleep', '600'], name='doomed', detach=True)"),
        nbformat.v4.new_code_cell("raise ConnectionResetError(104, 'Connection reset by peer')"),
        nbformat.v4.new_code_cell("print('never runs')"),
    ])
    client = NotebookClient(nb, timeout=120, kernel_name="python3")
    with pytest.raises(CellExecutionError):
        client.execute(env=kernel_env(real_root, jupyter_path, LABKIT_BACKEND="linux"))
    said = run_of("failed.ipynb", nb).text
    assert "clean-up removed: doomed" in said and "run the notebook again from the top" in said, said
    assert "never runs" not in said
    lab = labkit.connect(backend="linux", root=real_root)
    assert "/doomed" not in [c["Names"][0] for c in lab.ps(all=True)]


@pytest.mark.root
@pytest.mark.slow
def test_a_kernel_that_stops_removes_what_its_notebook_made(jupyter_path, real_root):
    """A notebook left without its last cell (the learner closes it half-way): when its kernel shuts down, the
    Lesson removes the containers it made."""
    import nbformat
    from nbclient import NotebookClient

    import labkit

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os, labkit\nfrom labkit.lesson import Lesson\n"
                                  "lab = labkit.connect(os.environ['LABKIT_BACKEND'])\nlesson = Lesson(lab)\n"
                                  "lesson.clear('orphan')\n"
                                  "lab.run('busybox', ['sleep', '600'], name='orphan', detach=True)\n"
                                  "print([c['Names'][0] for c in lab.ps()])"),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute(
        env=kernel_env(real_root, jupyter_path, LABKIT_BACKEND="linux"))
    assert "/orphan" in run_of("orphan.ipynb", nb).text  # it ran
    lab = labkit.connect(backend="linux", root=real_root)
    assert "/orphan" not in [c["Names"][0] for c in lab.ps(all=True)]


@pytest.fixture
def unreachable(real_root):
    """The host drops every packet it sends into the state root's default bridge (an nftables rule on the output
    hook, matched on the bridge's name), as a firewall or a route elsewhere would: the containers run, but the
    host cannot reach them. The table is deleted at the end.

    Not a route to a dead bridge: labkit heeds every route of the host when it brings a bridge up, so a route
    that claims the default subnet moves the network to a free one (a ``network-subnet`` step, 172.18.0.0/16 to
    172.19.0.0/16) and the containers stay reachable; only what acts after the bridge is up, as this rule does,
    leaves the host unable to reach them."""
    import labkit

    bridge = labkit.connect(backend="linux", root=real_root).networks.get("bridge")["Options"][
        "com.docker.network.bridge.name"]
    table = f"labkit_test_unreach_{os.getpid()}"
    rules = (f"table inet {table} {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n"
             f'  oifname "{bridge}" drop\n }}\n}}\n')
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True, capture_output=True)
    try:
        yield bridge
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=True, capture_output=True)


#: What each notebook that talks to its containers over the network says when it cannot.
UNREACHABLE_SAYS = {
    "06-stateless-by-design.ipynb": ["gave up after 30 s waiting for all ten replicas to answer", "labkit doctor",
                                     "0 requests were answered", "services left: []"],
    "07-inspecting.ipynb": ["gave up after 10 s waiting for frontend-app to answer", "labkit doctor",
                            "NODE_ENV=development"],
}


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_notebook_finishes_when_the_host_cannot_reach_its_containers(name, jupyter_path, real_root, unreachable):
    """With the host's packets to the default bridge dropped, the notebook still runs to its end (no cell error, no
    wait without a deadline), says what it waited for and what to check, and leaves nothing behind."""
    run = execute(name, kernel_env(real_root, jupyter_path, LABKIT_BACKEND="linux"), timeout=240, answer=False)
    missing = [m for m in UNREACHABLE_SAYS.get(name, []) if m not in run.text]
    assert not missing, f"{name}: output lacks {missing}"
    assert not left_behind(real_root), f"{name} left {left_behind(real_root)}"
