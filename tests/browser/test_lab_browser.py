"""In a real browser (Debian's chromium through playwright), JupyterLab runs every lesson notebook on real
containers as a learner would: Run All, then cell by cell — questions answered wrong and right, steppers
stepped and played, the lab tried before and after its work, the clean-up run again. On the simulator, the
practice notebook's typed answers are graded, and a corrected answer checked within a second of the first
Check is graded as corrected."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import state_root
from tests.notebooks.nbrun import NOTEBOOKS, install_kernel, kernel_env, left_behind
from tests.util import free_port, wait_until_up

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
PRACTICE = "08-practice-and-quiz.ipynb"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))

#: Seconds Run All may take per notebook on real containers (measured on a busy two-core host, about three
#: times over): 02 samples an OOM kill and a fork bomb for 26 s, 06 waits for ten replicas to answer.
RUN_ALL_DEADLINE = {"00": 90, "01": 90, "02": 180, "03": 150, "04": 90, "05": 120, "06": 240, "07": 120, "08": 90}

#: The bank each notebook's questions come from.
BANK = {"00": "lesson8", "01": "isolation", "02": "cgroups", "03": "layers", "04": "ephemeral", "05": "states",
        "06": "stateless", "07": "inspect", "08": "lesson8"}

#: The lowest pixel variance (of luminance, 0..255) a picture may have: a blank one has 0; the sparsest
#: picture of the lessons (a lifecycle diagram, a bar chart on white) has some hundreds.
VARIANCE_FLOOR = 50.0

#: What no output may show.
BROKEN = ("Traceback", "Error displaying widget")

#: Each wait of the learner's walk (a Check answered, a step drawn, a cell run), at most.
WAIT = 30.0

pytestmark = pytest.mark.slow


def screenshot_path(notebook: str) -> Path:
    """Where a test leaves its screenshot (always, so a failure leaves one to look at), named after the notebook."""
    return Path(tempfile.gettempdir()) / f"labkit-lab-{notebook.removesuffix('.ipynb')}.png"


class Lab:
    """A JupyterLab server for the tests: its URL and token, its kernels' state root and its work directory."""

    def __init__(self, base: str, token: str, root: Path, work: Path) -> None:
        self.base, self.token, self.root, self.work = base, token, root, work

    def api(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(f"{self.base}/api/{path}?token={self.token}", method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """End every session (its kernel shuts down: a notebook's containers go with it, labkit/lesson.py)."""
        for session in self.api("sessions"):
            self.api(f"sessions/{session['id']}", method="DELETE")

    def attempts(self) -> list[dict[str, Any]]:
        """Every attempt the kernels recorded, oldest first."""
        log = self.root / "attempts.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []


@contextmanager
def serve_lab(notebooks: list[str], backend: str, setup: bool = False) -> Iterator[Lab]:
    """JupyterLab on a free localhost port with a token, serving copies of ``notebooks`` (so nothing saves into
    ours), its kernels on ``backend`` with a state root of their own (``setup``: the lesson's images built
    first, so Run All's deadline is the notebook's own). Notebooks are laid out whole (no windowing), so every
    cell and output is in the page."""
    work = Path(tempfile.mkdtemp(prefix="labkit-test-lab-"))
    root = state_root()
    if setup:
        import labkit

        labkit.connect(backend=backend, root=root).setup(on_step=lambda _line: None)
    served = work / "notebooks"
    served.mkdir()
    for notebook in notebooks:
        shutil.copy(NOTEBOOKS / notebook, served / notebook)
    settings = work / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    notices = work / "settings" / "@jupyterlab" / "apputils-extension"
    notices.mkdir(parents=True)
    (notices / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    jupyter_path = install_kernel(work / "kernel")
    env = kernel_env(root, jupyter_path, LABKIT_BACKEND=backend)
    env.update(JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_RUNTIME_DIR=str(work / "runtime"),
               JUPYTER_DATA_DIR=str(work / "data"), JUPYTERLAB_SETTINGS_DIR=str(work / "settings"))
    port, token = free_port(), secrets.token_hex(16)
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}", "--LabApp.news_url=",
         f"--LabApp.workspaces_dir={work / 'workspaces'}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/api/status?token={token}", proc)
        yield Lab(f"http://127.0.0.1:{port}", token, root, work)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        shutil.copy(work / "lab.log", Path(tempfile.gettempdir()) / f"labkit-lab-{backend}.log")  # to read after
        if backend == "linux" and (root / "networks").exists():
            import labkit

            labkit.connect(backend="linux", root=root).network_prune()
        shutil.rmtree(work, ignore_errors=True)


def sync_playwright_or_fail():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        pytest.fail(f"playwright is not installed ({err}): pip install playwright (the python package only)")
    return sync_playwright


def launch_chromium(p):
    """Debian's chromium through playwright; a clear failure (never a skip) when either is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install it with 'apt-get install -y chromium' (make deps does)")
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@contextmanager
def chromium() -> Iterator[Any]:
    with sync_playwright_or_fail()() as p:
        browser = launch_chromium(p)
        try:
            yield browser
        finally:
            browser.close()


def wait_for_kernel(page, url: str) -> None:
    """Wait until the page shows the notebook's kernel idle; a page that did not come up in 60 s (on a busy
    host a stylesheet's load can fail, and JupyterLab then stops with a dialog) is loaded once more."""
    from playwright.sync_api import expect

    idle = page.get_by_text("Python 3 (ipykernel) | Idle")
    try:
        expect(idle).to_be_visible(timeout=60_000)
    except AssertionError:
        page.goto(url)
        expect(idle).to_be_visible(timeout=90_000)


def run_all(page) -> None:
    """Run ▸ Run All Cells (the kernel is idle: a command sent before it is ready runs nothing)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator("li[data-command='runmenu:run-all']").click()


@contextmanager
def open_notebook(browser, lab: Lab, notebook: str) -> Iterator[Any]:
    """A page on ``notebook`` in JupyterLab; a screenshot of the whole page is saved when the test ends, and the
    notebook's kernel is shut down."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        # A fresh workspace: JupyterLab would otherwise reopen (and start a kernel for) the last page's tabs.
        shutil.rmtree(lab.work / "workspaces", ignore_errors=True)
        url = f"{lab.base}/lab/tree/{notebook}?token={lab.token}"
        page.goto(url)
        wait_for_kernel(page, url)
        yield page
    finally:
        try:
            page.screenshot(path=str(screenshot_path(notebook)), full_page=True, timeout=30_000)
        finally:
            page.close()
            lab.shut_down_kernels()  # also after a failure: a kernel's shutdown removes what its notebook made


#: Each code cell's prompt ("[3]:", "[*]:", "[ ]:") and whether an output shows a traceback, as Run All goes.
PROMPTS_JS = """() => Array.from(document.querySelectorAll('.jp-CodeCell'), cell => [
    (cell.querySelector('.jp-InputPrompt') || {}).textContent || '',
    !!cell.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]') &&
        /Traceback|Error/.test(cell.querySelector('.jp-OutputArea').textContent)])"""


def wait_for_run_all(page, deadline: float) -> float:
    """Wait until Run All has run every code cell (each prompt shows its count, none is queued); fail at once
    when a cell shows a traceback, and when ``deadline`` seconds pass. Returns the seconds it took."""
    start = time.monotonic()
    seen_busy = False
    while True:
        prompts = page.evaluate(PROMPTS_JS)
        failed = [i for i, (_p, tb) in enumerate(prompts) if tb]
        if failed:
            text = page.locator(".jp-CodeCell").nth(failed[0]).locator(".jp-OutputArea").text_content()
            raise AssertionError(f"code cell {failed[0]} failed during Run All:\n{text[-3000:]}")
        busy = any("*" in p for p, _tb in prompts)
        seen_busy = seen_busy or busy
        if prompts and not busy and all(re.search(r"\d", p) for p, _tb in prompts):
            return time.monotonic() - start
        if time.monotonic() - start > deadline:
            waiting = [i for i, (p, _tb) in enumerate(prompts) if not re.search(r"\d", p)]
            raise AssertionError(f"Run All did not finish within {deadline} s (code cells not run yet: {waiting})")
        time.sleep(0.5)


#: A picture's size and the variance of its pixels' luminance, read from what the browser decoded.
PIXELS_JS = """async (img) => {
    if (!img.getAttribute('src')) return {w: 0, h: 0, variance: 0};
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const g = canvas.getContext('2d');
    g.fillStyle = 'white'; g.fillRect(0, 0, canvas.width, canvas.height);
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0, sum = 0, squares = 0;
    for (let i = 0; i < d.length; i += 4) {
        const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
        sum += y; squares += y * y; n++;
    }
    const mean = sum / n;
    return {w: canvas.width, h: canvas.height, variance: squares / n - mean * mean};
}"""


def pictures(page, keep: str = "") -> list[dict[str, Any]]:
    """Every picture in the notebook's outputs (plots and widgets' images): its size and pixel variance.
    ``keep``: save each as the page shows it, named after that notebook, beside the screenshots."""
    images = page.locator(".jp-OutputArea-output img")
    found = []
    for i in range(images.count()):
        found.append(images.nth(i).evaluate(PIXELS_JS))
        if keep:
            images.nth(i).screenshot(path=str(screenshot_path(keep).with_suffix(f".{i}.png")), timeout=30_000)
    return found


#: Labels of check boxes and radio buttons whose text does not fit their box (the browser cut it off).
CLIPPED_JS = """() => Array.from(document.querySelectorAll(
        '.jp-OutputArea-output .widget-checkbox .widget-label-basic, '
        + '.jp-OutputArea-output .widget-checkbox .widget-label-basic span, '
        + '.jp-OutputArea-output .widget-radio-box label'))
    .filter(e => e.textContent.trim() && e.scrollWidth > e.clientWidth + 1)
    .map(e => e.textContent.trim())"""


def labels(page) -> tuple[int, list[str]]:
    """How many check-box and radio labels the outputs hold, and those that are cut off."""
    total = page.locator(".jp-OutputArea-output .widget-checkbox, .jp-OutputArea-output .widget-radio-box label").count()
    return total, page.evaluate(CLIPPED_JS)


def until(what: str, ready: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll ``ready()`` until it returns something true, and return that; fail naming ``what`` at ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


#: The stepper's picture as a SHA-256 of its PNG bytes (the <img> src is a fresh blob: URL per update, so the
#: URL alone cannot tell one picture from another; its bytes can).
IMAGE_DIGEST_JS = """async (img) => {
    if (!img.src) return "";
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const digest = await crypto.subtle.digest("SHA-256", bytes);
    return Array.from(new Uint8Array(digest), b => b.toString(16).padStart(2, "0")).join("");
}"""


def picture_digest(image) -> str:
    return image.evaluate(IMAGE_DIGEST_JS)


def wait_for_picture(image, wanted, timeout: float = 15.0) -> str:
    """Poll the stepper's picture until ``wanted(digest)`` holds; return that digest."""
    return until("the stepper's picture changed as expected", lambda: (lambda d: d if wanted(d) else None)(
        picture_digest(image)), timeout)


def step_back_and_play(stepper) -> int:
    """Step ▶ shows step 2 with another caption, and stepping on (some steps keep the picture, e.g. a network
    step in a layers picture) shows another picture; ◀ Back as many times returns to step 1 with the first
    caption and picture, and Back is then disabled; Play moves the caption and the picture on by itself, and
    Reset brings back step 1. Returns how many steps it took to see the picture change."""
    from playwright.sync_api import expect

    stepper.scroll_into_view_if_needed()
    caption = stepper.locator(".widget-html").first
    image = stepper.locator("img").first
    step_button = stepper.locator("button", has_text="Step ▶")
    back_button = stepper.locator("button", has_text="◀ Back")
    expect(caption).to_contain_text("step 1 of", timeout=15_000)
    first_caption = caption.text_content()
    first_picture = wait_for_picture(image, bool)
    moves = 0
    while True:
        step_button.click()  # the kernel sends the next caption, then renders and sends its picture
        moves += 1
        expect(caption).to_contain_text(f"step {moves + 1} of", timeout=15_000)
        assert caption.text_content() != first_caption
        try:
            wait_for_picture(image, lambda d: d != first_picture, timeout=3.0)
            break
        except AssertionError:
            if step_button.is_disabled():
                raise AssertionError(f"no step of the stepper's {moves + 1} changed its picture") from None
    for n in range(moves, 0, -1):
        back_button.click()
        expect(caption).to_contain_text(f"step {n} of", timeout=15_000)
    assert caption.text_content() == first_caption
    wait_for_picture(image, lambda d: d == first_picture)
    expect(back_button).to_be_disabled()
    stepper.locator(".widget-play button").first.click()  # ▶ of ipywidgets' Play: the browser ticks the slider
    until("Play moved the stepper past step 1", lambda: "step 1 of" not in (caption.text_content() or ""))
    wait_for_picture(image, lambda d: d != first_picture, timeout=WAIT)
    stepper.locator("button", has_text="Reset").click()
    expect(caption).to_contain_text("step 1 of", timeout=15_000)
    wait_for_picture(image, lambda d: d == first_picture)
    return moves


def code_cell(page, marker: str):
    """The code cell whose source holds ``marker``."""
    cells = page.locator(".jp-CodeCell").filter(has=page.locator(".jp-InputArea-editor", has_text=marker))
    assert cells.count() == 1, f"{cells.count()} code cells hold {marker!r}"
    return cells.first


def run_cell(page, cell, timeout: float = 120.0) -> str:
    """Run one cell as a learner does (click into it, Shift+Enter) and wait for its new execution count;
    returns its output's text."""
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.text_content()
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    until(f"the cell ran (its prompt was {before!r})",
          lambda: (lambda p: re.search(r"\d", p) and "*" not in p and p != before)(prompt.text_content() or ""),
          timeout)
    return cell.locator(".jp-OutputArea").text_content() or ""


def answers_for(question) -> tuple[Any, Any]:
    """A wrong answer and the right one for a question, in the form its widget takes."""
    right = question.reference_answer()
    if question.type == "choice":
        return next(o.text for o in question.options if not o.correct), right
    if question.type == "multi":
        return right[:-1], right
    rejects = question.spec.get("reject") or []
    return (str(rejects[0]["answer"]) if rejects else "no idea"), str(right)


def enter(quiz, question, answer: Any, was: Any = ()) -> None:
    """Put ``answer`` into the question's widget as a learner does: type it, pick it, or tick its boxes (those
    that differ from ``was``, the answer the boxes show now)."""
    if question.type == "choice":
        quiz.locator(".widget-radio-box label", has_text=re.compile(f"^{re.escape(answer)}$")).locator("input").check()
    elif question.type == "multi":
        for o in question.options:
            if (o.text in answer) != (o.text in was):
                box = quiz.locator(".widget-checkbox", has=quiz.page.locator("span", has_text=re.compile(
                    f"^{re.escape(o.text)}$"))).locator("input")
                box.set_checked(o.text in answer)
    else:
        quiz.locator("input[type='text']").fill(answer)


#: A learner's Check and correction, done by the page itself so that a busy host's round trips do not stretch
#: them: the same DOM events a click on Check, typing (``input``) and a click on an option send.
CORRECT_JS = """(quiz, a) => {
    const check = Array.from(quiz.querySelectorAll("button")).find(b => b.textContent.trim() === "Check");
    check.click();
    const started = performance.now();
    if (a.text !== null) {
        const box = quiz.querySelector("input[type='text']");
        box.value = a.text;
        box.dispatchEvent(new Event("input", {bubbles: true}));
    }
    const inputs = quiz.querySelectorAll(a.radio ? ".widget-radio-box input" : ".widget-checkbox input");
    for (const i of a.click) inputs[i].click();
    check.click();
    return (performance.now() - started) / 1000;
}"""


def correct(quiz, question, right: Any, was: Any) -> float:
    """Press Check on ``was``, change the answer to ``right`` and press Check again, in one go (see
    CORRECT_JS); returns the seconds from the first Check to the second."""
    texts = [o.text for o in question.options] if question.type in ("choice", "multi") else []
    if question.type == "choice":
        spec = {"text": None, "radio": True, "click": [texts.index(right)]}
    elif question.type == "multi":
        spec = {"text": None, "radio": False, "click": [i for i, t in enumerate(texts) if (t in right) != (t in was)]}
    else:
        spec = {"text": right, "radio": False, "click": []}
    return quiz.element_handle().evaluate(CORRECT_JS, spec)


def verdict_after(lab: Lab, quiz, qid: str, attempts: int, count: int = 1) -> str:
    """The verdict the question shows once ``count`` more attempts of it are recorded (each Check saves its
    attempt before showing it)."""
    until(f"{count} Check(s) of {qid} recorded",
          lambda: sum(1 for a in lab.attempts() if a.get("qid") == qid) >= attempts + count)
    result = quiz.locator(".labkit-result")
    until(f"{qid}'s result shown", lambda: result.count() == 1)
    last = [a for a in lab.attempts() if a.get("qid") == qid][-1]
    shown = result.get_attribute("data-verdict")
    assert shown == last["verdict"], f"{qid}: the page shows {shown!r}, the attempt recorded {last['verdict']!r}"
    return shown


def answer_questions(lab: Lab, page, bank_name: str) -> list[str]:
    """Every question of the page that has a written answer (not a prediction, not a lab): a wrong answer
    checked, then the right one checked less than a second after, is graded correct; the first question
    answered wrong alone is graded incorrect. Returns the questions answered."""
    from labkit.grading import load_bank

    bank = load_bank(bank_name)
    answered = []
    quizzes = page.locator(".labkit-quiz")
    for i in range(quizzes.count()):
        quiz = quizzes.nth(i)
        qid = quiz.locator(".labkit-question").get_attribute("data-qid")
        question = bank.question(qid, "nb-test")
        if question.type == "lab" or "observe" in question.spec:
            continue
        quiz.scroll_into_view_if_needed()
        check = quiz.locator("button", has_text=re.compile("^Check$"))
        wrong, right = answers_for(question)
        before = sum(1 for a in lab.attempts() if a.get("qid") == qid)
        enter(quiz, question, wrong)
        if not answered:
            check.click()
            assert verdict_after(lab, quiz, qid, before) != "correct", f"{qid}: {wrong!r} was graded correct"
            before += 1
        took = correct(quiz, question, right, was=wrong)
        assert took < 1.0, f"{qid}: the corrected answer took {took:.2f} s to enter and check"
        assert verdict_after(lab, quiz, qid, before, count=2) == "correct", \
            f"{qid}: {right!r}, checked {took:.2f} s after {wrong!r}, was not graded correct"
        answered.append(qid)
    return answered


def do_the_lab(lab: Lab, page) -> str | None:
    """The lab: Run checks before its work reads not correct; its solution cell (runnable now that the learner
    has tried) does the work and checks, and the lab reads correct. Returns the lab's id (None: no lab)."""
    quiz = page.locator(".labkit-quiz").filter(has=page.locator("button", has_text="Run checks"))
    if quiz.count() == 0:
        return None
    button = quiz.locator("button", has_text="Run checks")
    qid = quiz.locator(".labkit-question").get_attribute("data-qid")
    before = sum(1 for a in lab.attempts() if a.get("qid") == qid)
    quiz.scroll_into_view_if_needed()
    button.click()
    assert verdict_after(lab, quiz, qid, before) != "correct", f"{qid} reads correct before its work was done"
    out = run_cell(page, code_cell(page, "if lesson.tried(checks):"))
    assert not any(b in out for b in BROKEN), f"{qid}'s solution cell failed:\n{out[-3000:]}"
    assert verdict_after(lab, quiz, qid, before + 1) == "correct", f"{qid} is not correct after its solution ran"
    return qid


@pytest.fixture(scope="module")
def real_lab() -> Iterator[Lab]:
    """One JupyterLab serving every notebook on real containers, the lesson's images built beforehand."""
    with serve_lab(ALL, "linux", setup=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.mark.root
@pytest.mark.parametrize("notebook", ALL)
def test_a_learner_goes_through_the_notebook(notebook, real_lab, browser):
    """On real containers, Run All finishes within the notebook's deadline with no traceback and no broken
    widget, every picture has pixels that vary and no option's label is cut off; then, as a learner, each
    written question answered wrong and then right within a second is graded right, each stepper's Step,
    Back and Play change its picture, the lab is not correct before its work and is after, the clean-up run
    again leaves nothing, and neither does the kernel's shutdown."""
    key = notebook[:2]
    timings: dict[str, float] = {}
    start = time.monotonic()
    with open_notebook(browser, real_lab, notebook) as page:
        run_all(page)
        timings["run all"] = wait_for_run_all(page, RUN_ALL_DEADLINE[key])
        texts = page.locator(".jp-OutputArea-output").all_text_contents()
        broken = [t[-2000:] for t in texts if any(b in t for b in BROKEN)]
        assert not broken, f"{notebook}: outputs show {BROKEN}:\n" + "\n---\n".join(broken)
        shown = pictures(page)
        assert shown or key == "07", f"{notebook} shows no picture"  # 07's picture is the trace of its fix
        blank = [p for p in shown if p["variance"] < VARIANCE_FLOOR]
        assert not blank, f"{notebook}: blank pictures (pixel variance under {VARIANCE_FLOOR}): {blank}"
        total, clipped = labels(page)
        assert not clipped, f"{notebook}: option labels cut off: {clipped}"

        mark = time.monotonic()
        answered = answer_questions(real_lab, page, BANK[key])
        assert answered, f"{notebook}: no written question to answer"
        timings["questions"] = time.monotonic() - mark

        mark = time.monotonic()
        lab_id = do_the_lab(real_lab, page)
        assert (lab_id is None) == (key in ("00", "08")), f"{notebook}: lab {lab_id}"
        if key == "07":  # the stepper over the fix is drawn once the fix (the lab's solution) has run
            run_cell(page, code_cell(page, 'if "steps" in globals()'))
        timings["lab"] = time.monotonic() - mark

        mark = time.monotonic()
        steppers = page.locator(".labkit-stepper")
        moved = []
        for i in range(steppers.count()):
            stepper = steppers.nth(i)
            if stepper.locator("button", has_text="Step ▶").count():
                moved.append(step_back_and_play(stepper))
            else:  # a trace of one step is shown as a picture, without controls that would do nothing
                assert "step 1 of 1" in (stepper.locator(".widget-html").first.text_content() or ""), \
                    f"{notebook}: stepper {i} has no controls but more than one step"
        assert moved or key == "04", f"{notebook}: no stepper to step"  # 04's trace (an rm) is one step
        timings["steppers"] = time.monotonic() - mark

        cells = page.locator(".jp-CodeCell")
        out = run_cell(page, cells.nth(cells.count() - 1))  # (Shift+Enter on the last cell adds a cell below)
        assert "containers left: []" in out, f"{notebook}: the clean-up run again says {out!r}"
        shown = pictures(page, keep=notebook)
        assert shown, f"{notebook} shows no picture"
        blank = [p for p in shown if p["variance"] < VARIANCE_FLOOR]
        assert not blank, f"{notebook}: blank pictures after the learner's walk: {blank}"
    until(f"{notebook}'s kernel gone", lambda: not real_lab.api("kernels"))
    assert not left_behind(real_lab.root), f"{notebook} left {left_behind(real_lab.root)}"
    timings["total"] = time.monotonic() - start
    print(f"\n{notebook}: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
          + f"; {len(shown)} pictures, {total} option labels, questions {answered}, lab {lab_id}, "
          f"steppers {len(moved)}")


#: Typed questions of notebook 08 (bank lesson8): a known wrong answer, the start of its own feedback, the
#: start of the question's explanation, and a right answer.
TYPED = [
    ("p1", "union mount", "A union mount stacks the layers", "Copy-on-write: the kernel", "copy-on-write"),
    ("p2", "docker ps", "ps lists containers one line each", "docker inspect (labkit inspect here)", "docker inspect web"),
]


def type_and_check(quiz, answer: str) -> None:
    """Type ``answer`` into the question's text box as a learner would, then press Check."""
    box = quiz.locator("input[type='text']")
    box.fill(answer)
    box.press("Enter")  # a learner's habit; the box syncs on every keystroke anyway
    quiz.locator("button", has_text=re.compile("^Check$")).click()


@contextmanager
def kernel_busy_for(lab: Lab, seconds: float) -> Iterator[None]:
    """Keep the notebook's kernel busy for ``seconds`` (a second client runs ``time.sleep``), as Run All or a
    slow first Check does: meanwhile the browser holds back a widget's newer state until its older update
    is answered, while a button's click goes out at once."""
    from jupyter_client import BlockingKernelClient

    [kernel] = lab.api("kernels")
    client = BlockingKernelClient(connection_file=str(lab.work / "runtime" / f"kernel-{kernel['id']}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.execute(f"import time; time.sleep({seconds})", store_history=False)
        time.sleep(0.5)  # the request is in the kernel before the learner types
        yield
    finally:
        client.stop_channels()


def test_practice_answers_are_graded_on_the_simulator(browser):
    """On the simulator, Run All of the practice notebook finishes; typing a wrong answer and pressing Check
    shows "incorrect" with that answer's feedback and the explanation, a right one "correct"; and while the
    kernel is busy, an answer typed and checked, then corrected and checked again within a second, is graded
    as corrected (the browser sends the click before the held-back text), with "Your score" redrawn after
    each Check (it is not the 0 that Run All computed)."""
    from playwright.sync_api import expect

    with serve_lab([PRACTICE], "sim") as lab, open_notebook(browser, lab, PRACTICE) as page:
        run_all(page)
        wait_for_run_all(page, RUN_ALL_DEADLINE["08"])
        outputs = page.locator(".jp-OutputArea-output")
        expect(outputs.filter(has_text="backend: sim")).to_have_count(1)
        score = page.locator(".labkit-score")
        expect(score).to_contain_text("total: 0 of 6 points")
        for qid, wrong, feedback, why, right in TYPED:
            quiz = page.locator(".labkit-quiz").filter(has=page.locator(f".labkit-question[data-qid='{qid}']"))
            quiz.scroll_into_view_if_needed()
            expect(quiz).to_have_count(1)
            result = quiz.locator(".labkit-result")
            type_and_check(quiz, wrong)
            expect(result).to_have_attribute("data-verdict", "incorrect", timeout=15_000)
            expect(result.locator(".labkit-feedback")).to_contain_text(feedback)
            expect(result.locator(".labkit-explain")).to_contain_text(why)
            type_and_check(quiz, right)
            expect(result).to_have_attribute("data-verdict", "correct", timeout=15_000)
        expect(score).to_contain_text("total: 2 of 6 points", timeout=15_000)

        quiz = page.locator(".labkit-quiz").filter(has=page.locator(".labkit-question[data-qid='p3']"))
        quiz.scroll_into_view_if_needed()
        box = quiz.locator("input[type='text']")
        check = quiz.locator("button", has_text=re.compile("^Check$"))
        result = quiz.locator(".labkit-result")
        with kernel_busy_for(lab, 4):
            box.press_sequentially("stateful", delay=15)
            check.click()
            started = time.monotonic()
            box.fill("")
            box.press_sequentially("stateless", delay=15)
            check.click()
            assert time.monotonic() - started < 1.0
        expect(result).to_have_attribute("data-verdict", "correct", timeout=20_000)
        expect(score).to_contain_text("p3: correct", timeout=15_000)
        expect(score).to_contain_text("total: 3 of 6 points")
        box.fill("")
        box.press_sequentially("stateful", delay=15)
        check.click()
        expect(result).to_have_attribute("data-verdict", "incorrect", timeout=15_000)
        expect(score).to_contain_text("total: 2 of 6 points", timeout=15_000)
        cells = page.locator(".jp-CodeCell")
        run_cell(page, cells.nth(cells.count() - 1))
        lab.shut_down_kernels()
        assert not left_behind(lab.root), f"the practice notebook left {left_behind(lab.root)}"
