"""The README's two commands: ``make lab`` opens the lessons (``make test`` is what runs this suite)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

import labkit
from tests.conftest import state_root
from tests.notebooks.test_notebooks import ALL
from tests.util import free_port, stop_group, wait_until_up

REPO = Path(__file__).resolve().parents[1]


def disk_usage(top: Path) -> int:
    """The bytes the files and directories under ``top`` take on disk, each inode counted once as ``du`` counts,
    leaving out ``__pycache__``: the bytecode Python writes there as modules are first imported (serving
    JupyterLab and building the images already wrote some) is the venv in use, not what the install made."""
    seen, total = set(), 0
    for path in [top, *top.rglob("*")]:
        if "__pycache__" in path.parts:
            continue
        st = path.lstat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


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
        stop_group(proc)
        made = (work / "make.log").read_text()
        shutil.rmtree(work, ignore_errors=True)
    assert served == ALL, made[-2000:]
    assert {"busybox:latest", "frontend-app:v2.1.0"} <= tags, made[-2000:]


@pytest.mark.root
@pytest.mark.slow
def test_make_lab_as_a_user_installs_their_own_venv_and_serves_the_notebooks_rootless(lab_learner):
    """A user without root runs ``make lab`` in a checkout of their own, with their own Python (the python3
    on their PATH, Debian's, not the tests' interpreter): it makes the learner's venv (the notebook extras, no test
    tools, no setuptools warnings; neither pip nor the packages' test suites stay, and it takes under 300 MB), builds the images rootless in ~/.local/share/labkit and serves every lesson
    notebook. (tests/notebooks runs every notebook with that venv, as that user.)

    Nothing is given but the user's PATH, HOME and the server's port and token: the state root and the
    backend are labkit's defaults for this user (the socket directory is the test's, to leave nothing in /tmp).
    """
    lab, made = lab_learner, lab_learner.log
    assert lab.served == ALL, made[-2000:]
    venv = lab.checkout / ".venv"
    assert venv.stat().st_uid == lab.user.pw_uid, "the venv is not the user's"
    config = (venv / "pyvenv.cfg").read_text()
    python3 = shutil.which("python3", path=lab.env["PATH"])  # the user's, on the user's PATH: Debian's here
    assert python3 and f"home = {Path(python3).parent}\n" in config, f"not made by the user's {python3}: {config}"
    listing = "import importlib.metadata as m, json; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
    installed = subprocess.run(lab.argv(str(lab.python), "-c", listing), env=lab.env, capture_output=True,
                               text=True, check=True).stdout
    names = {name.lower() for name in json.loads(installed)}
    assert {"labkit", "jupyterlab", "ipywidgets", "matplotlib"} <= names, names
    assert not names & {"pytest", "playwright", "mypy", "ruff", "hypothesis"}, "the learner got the test tools"
    assert not names & {"pip", "setuptools"}, "the installers stayed in the learner's venv"
    numpy = next(venv.glob("lib/python3*/site-packages/numpy"))  # the packages stay, their test suites do not
    assert (numpy / "_core").is_dir() and not (numpy / "_core" / "tests").exists(), "numpy's test suite stayed"
    size = disk_usage(venv)
    assert size < 300 * 2**20, f"the learner's venv takes {size / 2**20:.0f} MB"
    assert "BuildBackendWarning" not in made and "deprecated" not in made, made[-3000:]  # setuptools is quiet

    images = subprocess.run(lab.argv(str(venv / "bin" / "labkit"), "images"), cwd=lab.checkout, env=lab.env,
                            capture_output=True, text=True, timeout=120)
    assert "busybox" in images.stdout and "frontend-app" in images.stdout, images.stdout + images.stderr
    store = Path(lab.user.pw_dir) / ".local" / "share" / "labkit"
    assert (store / "images").is_dir(), f"the images are not in {store}: {made[-2000:]}"
