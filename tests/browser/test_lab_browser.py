"""In a real browser, JupyterLab runs notebooks/00-start-here.ipynb and shows the backend line and live widgets."""

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
from pathlib import Path

import pytest

from tests.conftest import state_root
from tests.notebooks.nbrun import NOTEBOOKS, install_kernel, kernel_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
NOTEBOOK = "00-start-here.ipynb"
SCREENSHOT = Path(tempfile.gettempdir()) / "labkit-lab-00-start-here.png"

pytestmark = [pytest.mark.root, pytest.mark.slow]


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


@pytest.fixture
def jupyter_lab():
    """JupyterLab on a free localhost port with a token, serving a copy of the notebook (so nothing saves into ours)."""
    work = Path(tempfile.mkdtemp(prefix="labkit-test-lab-"))
    root = state_root()
    served = work / "notebooks"
    served.mkdir()
    shutil.copy(NOTEBOOKS / NOTEBOOK, served / NOTEBOOK)
    jupyter_path = install_kernel(work / "kernel")
    env = kernel_env(root, jupyter_path, LABKIT_BACKEND="linux")
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
        yield f"http://127.0.0.1:{port}", token, root, work
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        if (root / "networks").exists():
            import labkit

            labkit.connect(backend="linux", root=root).prune_networks()
        shutil.rmtree(work, ignore_errors=True)


def launch_chromium(p):
    """Debian's chromium through playwright; a clear failure (never a skip) when either is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install it with 'apt-get install -y chromium' (make deps does)")
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def test_start_here_runs_in_jupyterlab(jupyter_lab):
    """Run All in JupyterLab shows the backend line; the stepper's Step and Back change its caption (Back
    returns to the first); a quiz answered and checked shows its feedback."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as err:
        pytest.fail(f"playwright is not installed ({err}): pip install playwright (the python package only)")
    base, token, root, _work = jupyter_lab
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
            page.locator("li[data-command='runmenu:run-all']").click()
            outputs = page.locator(".jp-OutputArea-output")
            expect(outputs.filter(has_text="backend: linux")).to_have_count(1, timeout=60_000)
            expect(outputs.filter(has_text="containers left: []")).to_have_count(1, timeout=90_000)
            stepper = page.locator(".widget-vbox").filter(has=page.locator("button", has_text="Step ▶")).first
            stepper.scroll_into_view_if_needed()
            expect(stepper).to_be_visible()
            caption = stepper.locator(".widget-html").first
            expect(caption).to_contain_text("step 1 of", timeout=15_000)
            first_caption = caption.text_content()
            stepper.locator("button", has_text="Step ▶").click()  # the kernel renders the next step and its caption
            expect(caption).to_contain_text("step 2 of", timeout=15_000)
            assert caption.text_content() != first_caption
            stepper.locator("button", has_text="◀ Back").click()
            expect(caption).to_contain_text("step 1 of", timeout=15_000)
            assert caption.text_content() == first_caption
            expect(stepper.locator("button", has_text="◀ Back")).to_be_disabled()
            quiz = page.locator(".labkit-quiz").first
            quiz.scroll_into_view_if_needed()
            expect(quiz).to_be_visible()
            quiz.locator("input[type='radio']").first.check()
            quiz.locator("button", has_text="Check").click()
            expect(quiz.locator(".labkit-result")).to_be_visible(timeout=15_000)
            expect(quiz.locator(".labkit-result")).to_contain_text("Why:")
            page.screenshot(path=str(SCREENSHOT), full_page=False)
        except Exception:
            page.screenshot(path=str(SCREENSHOT), full_page=False)
            raise
        finally:
            browser.close()
    cdir = root / "containers"
    assert not (cdir.exists() and [c for c in os.listdir(cdir) if not c.startswith(".")]), "the notebook left containers"
