"""In a real browser, JupyterLab runs lesson notebooks: 00-start-here.ipynb on real containers shows the backend
line and live widgets; 08-practice-and-quiz.ipynb on the simulator takes typed answers and grades them."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import state_root
from tests.notebooks.nbrun import NOTEBOOKS, install_kernel, kernel_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
START_HERE = "00-start-here.ipynb"
PRACTICE = "08-practice-and-quiz.ipynb"

pytestmark = pytest.mark.slow


def screenshot_path(notebook: str) -> Path:
    """Where a test leaves its screenshot (always on failure), named after the notebook."""
    return Path(tempfile.gettempdir()) / f"labkit-lab-{notebook.removesuffix('.ipynb')}.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"jupyter lab did not answer {url} within {timeout:.0f} s")


@contextmanager
def serve_lab(notebook: str, backend: str) -> Iterator[tuple[str, str, Path]]:
    """JupyterLab on a free localhost port with a token, serving a copy of ``notebook`` (so nothing saves into
    ours), its kernels on ``backend`` with a state root of their own; yields the base URL, token and state root."""
    work = Path(tempfile.mkdtemp(prefix="labkit-test-lab-"))
    root = state_root()
    served = work / "notebooks"
    served.mkdir()
    shutil.copy(NOTEBOOKS / notebook, served / notebook)
    jupyter_path = install_kernel(work / "kernel")
    env = kernel_env(root, jupyter_path, LABKIT_BACKEND=backend)
    env.update(JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_RUNTIME_DIR=str(work / "runtime"),
               JUPYTER_DATA_DIR=str(work / "data"))
    port, token = free_port(), secrets.token_hex(16)
    log = open(work / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/api/status?token={token}", proc)
        yield f"http://127.0.0.1:{port}", token, root
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        if backend == "linux" and (root / "networks").exists():
            import labkit

            labkit.connect(backend="linux", root=root).prune_networks()
        shutil.rmtree(work, ignore_errors=True)


def assert_no_containers_left(root: Path) -> None:
    cdir = root / "containers"
    assert not (cdir.exists() and [c for c in os.listdir(cdir) if not c.startswith(".")]), "the notebook left containers"


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
def lab_page(base: str, token: str, notebook: str) -> Iterator:
    """A browser page on ``notebook`` in JupyterLab, after Run All; a screenshot is saved when the test ends
    (so a failure leaves one to look at)."""
    from playwright.sync_api import expect

    with sync_playwright_or_fail()() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{base}/lab/tree/{notebook}?token={token}")
            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=90_000)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
            page.locator("li[data-command='runmenu:run-all']").click()
            yield page
        finally:
            page.screenshot(path=str(screenshot_path(notebook)), full_page=False)
            browser.close()


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
    """Poll the stepper's picture until ``wanted(digest)`` holds; return that digest (an AssertionError when
    ``timeout`` seconds pass first)."""
    end = time.monotonic() + timeout
    digest = picture_digest(image)
    while not wanted(digest):
        if time.monotonic() > end:
            raise AssertionError(f"the stepper's picture did not change as expected within {timeout:.0f} s")
        time.sleep(0.2)
        digest = picture_digest(image)
    return digest


def step_and_back(page) -> None:
    """On the notebook's first stepper, Step ▶ shows step 2 with another caption, and stepping on (some steps
    keep the picture, e.g. a network step in a layers picture) shows another picture; ◀ Back as many times
    returns to step 1 with the first caption and the first picture, and Back is then disabled."""
    from playwright.sync_api import expect

    stepper = page.locator(".widget-vbox").filter(has=page.locator("button", has_text="Step ▶")).first
    stepper.scroll_into_view_if_needed()
    expect(stepper).to_be_visible()
    caption = stepper.locator(".widget-html").first
    image = stepper.locator("img").first
    step_button = stepper.locator("button", has_text="Step ▶")
    expect(caption).to_contain_text("step 1 of", timeout=15_000)
    expect(image).to_have_attribute("src", re.compile("."), timeout=15_000)
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
        stepper.locator("button", has_text="◀ Back").click()
        expect(caption).to_contain_text(f"step {n} of", timeout=15_000)
    assert caption.text_content() == first_caption
    wait_for_picture(image, lambda d: d == first_picture)
    expect(stepper.locator("button", has_text="◀ Back")).to_be_disabled()


def ran_and_stepped(page, backend: str) -> None:
    """Run All showed the backend line and cleaned up after itself; the stepper steps forth and back."""
    from playwright.sync_api import expect

    outputs = page.locator(".jp-OutputArea-output")
    expect(outputs.filter(has_text=f"backend: {backend}")).to_have_count(1, timeout=60_000)
    expect(outputs.filter(has_text="containers left: []")).to_have_count(1, timeout=90_000)
    step_and_back(page)


@pytest.mark.root
def test_start_here_runs_in_jupyterlab():
    """Run All in JupyterLab shows the backend line; the stepper's Step and Back change its caption and its
    picture (Back returns to the first of both); a quiz answered and checked shows its feedback."""
    from playwright.sync_api import expect

    with serve_lab(START_HERE, "linux") as (base, token, root):
        with lab_page(base, token, START_HERE) as page:
            ran_and_stepped(page, "linux")
            quiz = page.locator(".labkit-quiz").first
            quiz.scroll_into_view_if_needed()
            expect(quiz).to_be_visible()
            quiz.locator("input[type='radio']").first.check()
            quiz.locator("button", has_text="Check").click()
            expect(quiz.locator(".labkit-result")).to_be_visible(timeout=15_000)
            expect(quiz.locator(".labkit-result")).to_contain_text("Why:")
        assert_no_containers_left(root)


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


def test_typed_answers_are_graded_in_jupyterlab():
    """On the simulator, Run All of the practice notebook shows the backend line and its stepper steps back and
    forth; typing a wrong answer and pressing Check shows "incorrect" with that answer's feedback and the
    explanation; typing a right answer and pressing Check shows "correct"."""
    from playwright.sync_api import expect

    with serve_lab(PRACTICE, "sim") as (base, token, root):
        with lab_page(base, token, PRACTICE) as page:
            ran_and_stepped(page, "sim")
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
                expect(result).to_contain_text("correct")
        assert_no_containers_left(root)


@contextmanager
def kernel_busy_for(base: str, token: str, seconds: float) -> Iterator[None]:
    """Keep the notebook's kernel busy for ``seconds`` (a second client runs ``time.sleep``), as Run All or a
    slow first Check does: meanwhile the browser holds back a widget's newer state until its older update
    is answered, while a button's click goes out at once."""
    import glob
    import json

    from jupyter_client import BlockingKernelClient

    with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as r:
        [kernel] = json.load(r)
    [connection] = glob.glob(os.path.join(tempfile.gettempdir(), "labkit-test-lab-*", "runtime",
                                          f"kernel-{kernel['id']}.json"))
    client = BlockingKernelClient(connection_file=connection)
    client.load_connection_file()
    client.start_channels()
    try:
        client.execute(f"import time; time.sleep({seconds})", store_history=False)
        time.sleep(0.5)  # the request is in the kernel before the learner types
        yield
    finally:
        client.stop_channels()


def test_a_corrected_answer_checked_within_a_second_is_graded_as_corrected():
    """While the kernel is busy, an answer is typed and checked, then corrected and checked again within a
    second: the second Check grades the corrected answer (the browser sends the click before the held-back
    text), and "Your score" is redrawn after each Check (it is not the 0 that Run All computed)."""
    from playwright.sync_api import expect

    with serve_lab(PRACTICE, "sim") as (base, token, root):
        with lab_page(base, token, PRACTICE) as page:
            score = page.locator(".labkit-score")
            expect(score).to_contain_text("total: 0 of 6 points", timeout=90_000)
            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)
            quiz = page.locator(".labkit-quiz").filter(has=page.locator(".labkit-question[data-qid='p1']"))
            quiz.scroll_into_view_if_needed()
            box = quiz.locator("input[type='text']")
            check = quiz.locator("button", has_text=re.compile("^Check$"))
            result = quiz.locator(".labkit-result")
            with kernel_busy_for(base, token, 4):
                box.press_sequentially("union mount", delay=15)
                check.click()
                started = time.monotonic()
                box.fill("")
                box.press_sequentially("copy-on-write", delay=15)
                check.click()
                assert time.monotonic() - started < 1.0
            expect(result).to_have_attribute("data-verdict", "correct", timeout=20_000)
            expect(score).to_contain_text("p1: correct", timeout=15_000)
            expect(score).to_contain_text("total: 1 of 6 points")
            box.fill("")
            box.press_sequentially("copy on read", delay=15)
            check.click()
            expect(result).to_have_attribute("data-verdict", "incorrect", timeout=15_000)
            expect(score).to_contain_text("total: 0 of 6 points", timeout=15_000)
        assert_no_containers_left(root)
