"""Run a lesson notebook headless in a fresh kernel, as a learner's "Run All" would.

A throwaway kernelspec points at this interpreter (so the notebooks run with
labkit as installed here, whatever kernels the machine has), and the kernel
gets its own state root, attempts log and learner name through the
environment. Before the notebook's last cell (its clean-up) one more cell is
run: it answers every quiz widget the notebook made, as a learner would —
known wrong answers first, then the reference answers — by setting the input
and pressing Check, and prints what the widgets said as one JSON line. A
"predict, then observe" question has no written answer: the cell reads what
the engine did through the question's observer, answers something else (a
``reject`` entry, another option), then the one answer that matches the
observation (for a choice: the option whose ``value`` is what was observed).
Then it presses each lab's **Run checks** once, a learner's first try with
nothing done (the lab must not read correct yet); the cells Run All passed by
(the labs' solutions, the experiments of predictions) run again, now that the
learner has tried and predicted; and a last cell reports what the labs' checks
say now.

``python -m tests.notebooks.nbrun NAME OUT`` does the same in a process of
its own and writes ``OUT/NAME`` (the executed notebook) and
``OUT/NAME.error`` when a cell failed: the notebook tests run it as an
unprivileged user, whose kernel then runs as that user too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.engine.services import converge_seconds
from tests.util import scaled

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
REPORT = "LABKIT-QUIZ-REPORT "

#: Answers every quiz widget of the notebook; runs inside the kernel.
ANSWER_CELL = r'''
import json as _json
from labkit.cli import main as _run_line
from labkit.grading.widgets import Quiz as _Quiz


def _press(cell, answer):
    if cell.question.type == "multi":
        for box in cell.input.children:
            box.value = box.description in answer
    else:
        cell.input.value = str(answer) if cell.question.type in ("short", "command", "numeric") else answer
    cell.check_button.click()
    return cell.last


def _same(a, b):
    return a == b or str(a).casefold() == str(b).casefold()


def _predictions(cell):
    """What the engine did for an observe question: (a wrong answer, the right answer, the observation)."""
    q, spec = cell.question, cell.question.spec["observe"]
    seen = q.observe(cell.engine, _run_line)  # as the grader observes: the experiment run afresh, or the state now
    if hasattr(q, "options"):
        right = [o.text for o in q.options if _same(o.value, seen)]
        other = [o.text for o in q.options if not _same(o.value, seen)]
        if len(right) != 1 or not other:
            raise AssertionError(f"{q.id}: {len(right)} options have the observed value {seen!r}")
        if q.type == "multi":
            return [other[0]], right, seen
        return other[0], right[0], seen
    wrong = [r["answer"] for r in q.spec.get("reject") or [] if not _same(r["answer"], seen)]
    if wrong:
        return wrong[0], seen, seen
    if q.type == "numeric":
        tolerance = float(q.spec.get("tolerance", 0)) + abs(seen) * float(q.spec.get("rel_tolerance", 0))
        return seen + 1 + tolerance, seen, seen
    return f"not {seen}", seen, seen


_report = {"questions": {}, "wrong": {}, "observed": {}, "labs": {}, "labs_before": {}}
for _quiz in [v for v in list(globals().values()) if isinstance(v, _Quiz)]:
    for _cell in _quiz.cells:
        _q = _cell.question
        if "observe" in _q.spec:
            _wrong, _right, _seen = _predictions(_cell)
            _r = _press(_cell, _wrong)
            _ok = _press(_cell, _right)
            _report["observed"][_q.id] = [str(_seen), _r.verdict, _r.points, str(_ok.observed)]
            _report["questions"][_q.id] = _ok.verdict
            continue
        _rejects = _q.spec.get("reject") or []
        if _rejects:
            _r = _press(_cell, _rejects[0]["answer"])
            _report["wrong"][_q.id] = [_r.verdict, _r.points, _r.feedback == _rejects[0].get("feedback", _r.feedback)]
        _report["questions"][_q.id] = _press(_cell, _q.reference_answer()).verdict
# A learner's first try at each lab, before any of its work: Run checks once (a solution cell runs only after).
for _name, _value in list(globals().items()):
    if type(_value).__name__ == "QuizCell" and _value.question.type == "lab":
        _value.check_button.click()
        _report["labs_before"][_value.question.id] = [_value.last.verdict, _value.last.points, _value.last.max_points]
'''

#: Run after the solution cells ran again: what each lab's checks say now, and the report as one line.
REPORT_CELL = r'''
for _name, _value in list(globals().items()):
    if type(_value).__name__ == "QuizCell" and _value.question.type == "lab" and _value.last is not None:
        _report["labs"][_value.question.id] = [_value.last.verdict, _value.last.points, _value.last.max_points]
print("LABKIT-QUIZ-REPORT " + _json.dumps(_report))
'''

#: What marks a cell Run All passes by (labkit/lesson.py): a lab's solution runs only once the lab's checks were
#: run, a predict-then-observe experiment only once its predictions were checked.
GATED = ("lesson.tried(", "lesson.predicted(")


@dataclass
class Run:
    """An executed notebook."""

    name: str
    nb: Any
    text: str  # every stream and text/plain, text/html output, joined
    report: dict[str, Any]

    def outputs(self) -> list[dict[str, Any]]:
        return [o for c in self.nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]

    def count(self, mime: str) -> int:
        """How many outputs carry ``mime`` (``image/png``, the widget view type, …)."""
        return sum(1 for o in self.outputs() if mime in (o.get("data") or {}))

    def widget_classes(self) -> list[str]:
        """Every DOM class of every widget model whose state the run stored."""
        state = (self.nb.metadata.get("widgets") or {}).get("application/vnd.jupyter.widget-state+json", {})
        models = (state.get("state") or {}).values()
        return [cls for m in models for cls in (m.get("state") or {}).get("_dom_classes", [])]


def install_kernel(prefix: Path) -> Path:
    """A ``python3`` kernelspec for this interpreter under ``prefix``; returns the JUPYTER_PATH to use."""
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", "python3"],
                   check=True, capture_output=True)
    return prefix / "share" / "jupyter"


def execute(name: str, env: dict[str, str], timeout: int = 300, answer: bool = True) -> Run:
    """Run ``notebooks/<name>`` top to bottom in a fresh kernel with ``env``; a cell error raises. ``timeout``
    (a cell's, in seconds) stretches on a slower host (:func:`tests.util.scaled`).

    ``answer``: before the clean-up, answer every quiz widget, press each lab's **Run checks** once (nothing
    done yet), run the lab's solution cells again (Run All passed them by: they run only after a try), and
    report (off: the notebook as it is).
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if answer:
        gated = [nbformat.v4.new_code_cell(c.source) for c in nb.cells
                 if c.cell_type == "code" and any(mark in c.source for mark in GATED)]
        nb.cells[len(nb.cells) - 1:len(nb.cells) - 1] = [nbformat.v4.new_code_cell(ANSWER_CELL), *gated,
                                                          nbformat.v4.new_code_cell(REPORT_CELL)]
    # A busy host may deliver a cell's output after its reply: wait for it, and fail loudly rather than lose it.
    client = NotebookClient(nb, timeout=int(scaled(timeout)), kernel_name="python3", store_widget_state=True,
                            iopub_timeout=int(scaled(60)), raise_on_iopub_timeout=True,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    # A service's cells wait for it as `service create` does; that wait stretches on a slower host too
    client.execute(env={"LABKIT_SERVICE_WAIT": f"{scaled(converge_seconds()):g}", **env})
    return run_of(name, nb)


def run_of(name: str, nb: Any) -> Run:
    """An executed notebook's outputs as text, and the quiz report its answer cell printed.

    The kernel flushes stdout on a timer, so one ``print`` may arrive as two stream outputs
    ("pause went through:" and " cgroup freezer…"): a cell's consecutive stream outputs are joined as
    the learner sees them, with nothing between.
    """
    parts: list[str] = []
    for cell in nb.cells:
        last_stream = None
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                if last_stream == out.get("name"):
                    parts[-1] += out.get("text", "")
                else:
                    parts.append(out.get("text", ""))
                last_stream = out.get("name")
                continue
            last_stream = None
            for mime in ("text/plain", "text/html"):
                value = (out.get("data") or {}).get(mime)
                if value:
                    parts.append(value if isinstance(value, str) else "".join(value))
    text = "\n".join(parts)
    lines = [ln for ln in text.splitlines() if ln.startswith(REPORT)]
    report = json.loads(lines[-1][len(REPORT):]) if lines else {}
    return Run(name, nb, text, report)


def kernel_env(root: Path, jupyter_path: Path, **extra: str) -> dict[str, str]:
    """The kernel's environment: a state root, an attempts log and a learner of its own, and this checkout's
    labkit first on the path (whichever copy the interpreter has installed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABKIT_")}
    path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(PYTHONPATH=path, LABKIT_ROOT=str(root), LABKIT_ATTEMPTS=str(root / "attempts.jsonl"), LABKIT_LEARNER="nb-test",
               JUPYTER_PATH=str(jupyter_path), MPLBACKEND="module://matplotlib_inline.backend_inline",
               PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def make_prefix() -> Path:
    return Path(tempfile.mkdtemp(prefix="labkit-test-kernel-"))


def main(argv: list[str]) -> int:
    """Execute ``notebooks/NAME`` with this process's environment; write the result into ``OUT``."""
    name, out = argv[0], Path(argv[1])
    prefix = make_prefix()
    try:
        jupyter_path = install_kernel(prefix)
        env = dict(os.environ, JUPYTER_PATH=str(jupyter_path))
        import nbformat

        try:
            run = execute(name, env, timeout=int(os.environ.get("NBRUN_TIMEOUT", "300")))
        except Exception as err:  # a cell error: hand its text to the parent, which fails the test with it
            (out / f"{name}.error").write_text(f"{type(err).__name__}: {err}")
            return 1
        nbformat.write(run.nb, out / name)
        return 0
    finally:
        import shutil

        shutil.rmtree(prefix, ignore_errors=True)


def load_run(name: str, out: Path) -> Run:
    """The :class:`Run` a ``main`` in another process wrote into ``out``."""
    import nbformat

    return run_of(name, nbformat.read(out / name, as_version=4))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def left_behind(root: Path) -> list[str]:
    """Containers, volumes and services a notebook left in its state root."""
    out = []
    for kind in ("containers", "volumes", "services"):
        d = root / kind
        if d.exists():
            out += [f"{kind}/{e}" for e in os.listdir(d) if not e.startswith(".") and not e.endswith(".log")]
    return out
