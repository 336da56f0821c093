"""The README's two commands: ``make lab`` opens the lessons (``make test`` is what runs this suite)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

import labkit
from tests.browser.test_lab_browser import free_port, wait_until_up
from tests.conftest import state_root
from tests.notebooks.test_notebooks import ALL

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.root
@pytest.mark.slow
def test_make_lab_builds_the_images_and_opens_the_notebooks():
    """``make lab`` builds the lesson images and starts JupyterLab on notebooks/, which serves every lesson notebook.

    Its first step, installing into .venv, is what ``make test`` has just done, so it is taken as made
    (``-o venv``); the state root and the server's port and token are the test's own.
    """
    root = state_root()
    work = Path(tempfile.mkdtemp(prefix="labkit-test-make-lab-"))
    port, token = free_port(), secrets.token_hex(16)
    # LABKIT_ROOT too: the resident engine the labkit command starts compiles its shim into the default root's.
    env = {**os.environ, "LABKIT_ROOT": str(root), "JUPYTER_CONFIG_DIR": str(work / "config"),
           "JUPYTER_RUNTIME_DIR": str(work / "runtime"), "JUPYTER_DATA_DIR": str(work / "data")}
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} --LabApp.news_url= "
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
    with open(work / "make.log", "w") as log:
        proc = subprocess.Popen(["make", "-o", "deps", "-o", "venv", "lab", f"ROOT={root}", f"LAB_ARGS={args}"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/api/status?token={token}", proc, timeout=300)
        listing = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}",
                                                    timeout=10).read())
        served = sorted(e["name"] for e in listing["content"] if e["name"].endswith(".ipynb"))
        tags = {t for image in labkit.connect(backend="linux", root=root).images() for t in image["RepoTags"]}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        made = (work / "make.log").read_text()
        shutil.rmtree(work, ignore_errors=True)
    assert served == ALL, made[-2000:]
    assert {"busybox:latest", "frontend-app:v2.1.0"} <= tags, made[-2000:]
