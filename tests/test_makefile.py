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
#: What the copy of the checkout for the learner leaves out: root's venv and everything built from the tree.
NOT_COPIED = shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "__pycache__", ".*_cache")


def stop(proc: subprocess.Popen) -> None:
    """End ``make`` and everything it started (its own session): SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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
        stop(proc)
        made = (work / "make.log").read_text()
        shutil.rmtree(work, ignore_errors=True)
    assert served == ALL, made[-2000:]
    assert {"busybox:latest", "frontend-app:v2.1.0"} <= tags, made[-2000:]


@pytest.mark.root
@pytest.mark.slow
def test_make_lab_as_a_user_installs_their_own_venv_and_serves_the_notebooks_rootless(learner):
    """A user without root runs ``make lab`` in a checkout of their own, with their own Python (the python3
    on their PATH, not the tests' interpreter): it makes the learner's venv (the notebook extras, no test tools),
    builds the images rootless in ~/.local/share/labkit and serves every lesson notebook; a notebook
    executed by that venv's kernel runs on rootless real containers.

    Nothing is given but the user's PATH, HOME and the server's port and token: the state root and the
    backend are labkit's defaults for this user (the socket directory is the test's, to leave nothing in /tmp).
    """
    uid, gid, home = learner.pw_uid, learner.pw_gid, Path(learner.pw_dir)
    checkout, sockets = home / "labkit", home / "sockets"
    shutil.copytree(REPO, checkout, ignore=NOT_COPIED)
    sockets.mkdir(mode=0o700)
    for path in (checkout, sockets):
        subprocess.run(["chown", "-R", f"{uid}:{gid}", str(path)], check=True)
    port, token = free_port(), secrets.token_hex(16)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "USER": learner.pw_name,
           "LABKIT_SOCKET_DIR": str(sockets)}
    as_user = ["setpriv", "--reuid", str(uid), "--regid", str(gid), "--init-groups"]
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} --LabApp.news_url= "
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
    log_path = home / "make.log"
    labkit_cmd = [*as_user, str(checkout / ".venv" / "bin" / "labkit")]
    try:
        with open(log_path, "w") as log:
            proc = subprocess.Popen([*as_user, "make", "lab", f"LAB_ARGS={args}"], cwd=checkout, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            try:
                wait_until_up(f"http://127.0.0.1:{port}/api/status?token={token}", proc, timeout=600)
            except AssertionError as e:
                raise AssertionError(f"{e}: {log_path.read_text()[-3000:]}") from None
            listing = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}",
                                                        timeout=10).read())
        finally:
            stop(proc)
        made = log_path.read_text()
        served = sorted(e["name"] for e in listing["content"] if e["name"].endswith(".ipynb"))
        assert served == ALL, made[-2000:]

        venv = checkout / ".venv"
        assert venv.stat().st_uid == uid, "the venv is not the user's"
        config = (venv / "pyvenv.cfg").read_text()
        python3 = shutil.which("python3", path=env["PATH"])  # the user's, on the user's PATH: Debian's here
        assert python3 and f"home = {Path(python3).parent}\n" in config, f"not made by the user's {python3}: {config}"
        installed = subprocess.run([*as_user, str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                                   env=env, capture_output=True, text=True, check=True).stdout
        names = {p["name"].lower() for p in json.loads(installed)}
        assert {"labkit", "jupyterlab", "ipywidgets", "matplotlib"} <= names, names
        assert not names & {"pytest", "playwright", "mypy", "ruff", "hypothesis"}, "the learner got the test tools"
        assert "BuildBackendWarning" not in made and "deprecated" not in made, made[-3000:]  # setuptools is quiet

        images = subprocess.run([*labkit_cmd, "images"], cwd=checkout, env=env, capture_output=True, text=True)
        assert "busybox" in images.stdout, images.stdout + images.stderr
        store = home / ".local" / "share" / "labkit"
        assert (store / "images").is_dir(), f"the images are not in {store}: {made[-2000:]}"

        # The lessons' first notebook, executed by the user's own venv's kernel: rootless real containers.
        out = checkout / "out"
        nb = subprocess.run([*as_user, str(venv / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                             "--ExecutePreprocessor.timeout=300", "--output-dir", str(out),
                             "notebooks/00-start-here.ipynb"],
                            cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
        assert nb.returncode == 0, nb.stderr[-3000:]
        text = (out / "00-start-here.ipynb").read_text()
        assert "backend: rootless" in text and "hello from PID 1" in text, text[-3000:]
    finally:
        if (checkout / ".venv" / "bin" / "labkit").exists():
            subprocess.run([*labkit_cmd, "server", "stop"], cwd=checkout, env=env, capture_output=True, timeout=60)
        for path in (checkout, sockets, home / ".local", home / ".cache", home / ".jupyter", log_path):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
