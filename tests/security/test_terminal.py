"""No container ever gets the caller's terminal: exec and run give it pipes that labkit relays.

An admin who types ``labkit exec web …`` in a terminal must not hand that
terminal to the container: a descriptor of it (or the terminal as the
container's controlling tty) would let a process left behind in the
container write into the admin's screen, or read what is typed, after the
command returned. Each test runs a real ``labkit`` under a real
pseudo-terminal (the test holds the master side, as a terminal emulator does;
the slave is the command's 0-2 and its controlling terminal) and looks from
inside the container: every descriptor of the process, where it points, and
``tty_nr`` of ``/proc/self/stat`` (proc(5): 0 when a process has no
controlling terminal). The three ways in are each tried: the ``labkit``
command through the resident engine (``bin/labkit``, whose worker receives
the caller's descriptors over its socket), the same command in-process
(``LABKIT_NO_SERVER=1``), and the Python API (``Engine.exec``), as root and
rootless.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.learner import PYTHON, REPO
from tests.util import wait_for

pytestmark = pytest.mark.root

BIN = str(Path(REPO) / "bin" / "labkit")

#: Every descriptor of the shell that runs it, where each points, and the shell's tty_nr (proc(5)). ``ls`` lists
#: them from a forked child, so that the shell itself opens nothing (a glob, a ``$(...)`` or a redirection would).
PROBE = (r'(ls -l /proc/$$/fd/ >/tmp/fds); sed -n "s/.* \([0-9]*\) -> \(.*\)/fd \1 \2/p" /tmp/fds; '
         'echo "tty_nr $(cut -d" " -f7 /proc/$$/stat)"')

#: Left in the container by exec: two processes hold what exec gave them — its stdout, stderr and stdin, and
#: /dev/tty opened while exec ran (the controlling terminal, if it had one) — and once exec has returned try to
#: write to the terminal through each and to read what is typed, noting what they got.
LINGER = ("trap '' PIPE HUP; "
          "( sleep 1; echo LEAK-OUT; echo LEAK-ERR >&2; head -c 6 >/tmp/stdin-got; echo done >/tmp/linger-done ) & "
          "( sleep 1; echo LEAK-TTY; head -c 6 >/tmp/tty-got ) <>/dev/tty >&0 2>/dev/null & "
          "echo started")


def _under_pty(argv: list[str], env: dict[str, str], typed: bytes = b"", linger: float = 0,
               timeout: float = 120) -> tuple[int, str, str]:
    """Run ``argv`` with a new pseudo-terminal as its 0-2 and controlling terminal.

    Returns its exit code, what it wrote on the terminal, and what appeared on the terminal in the
    ``linger`` seconds after it exited, while ``typed`` was being typed (the test keeps the terminal open).
    """
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO  # what is typed is not echoed: anything that shows up was written by someone
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        seen = bytearray()
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                seen += os.read(master, 65536)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            pytest.fail(f"{argv} did not finish within {timeout} s: {seen.decode(errors='replace')}")
        while select.select([master], [], [], 0.2)[0]:
            seen += os.read(master, 65536)
        after = bytearray()
        if typed:
            os.write(master, typed)
        end = time.monotonic() + linger
        while time.monotonic() < end:
            if select.select([master], [], [], 0.05)[0]:
                after += os.read(master, 65536)
        return proc.returncode, seen.decode(errors="replace"), after.decode(errors="replace")
    finally:
        os.close(master)
        os.close(slave)


def _descriptors(output: str) -> tuple[dict[int, str], int]:
    """The probe's ``fd N TARGET`` lines and its ``tty_nr``."""
    fds = {int(m[1]): m[2] for m in re.finditer(r"^fd (\d+) (.*?)\r?$", output, re.M)}
    tty = re.search(r"^tty_nr (\d+)", output, re.M)
    assert fds and tty, output
    return fds, int(tty[1])


def _assert_no_terminal(output: str) -> None:
    fds, tty_nr = _descriptors(output)
    assert sorted(fds) == [0, 1, 2], f"only 0-2 cross into the container: {fds}"
    terminals = {fd: target for fd, target in fds.items() if target.startswith(("/dev/pts", "/dev/tty", "/dev/console"))}
    assert not terminals, f"a terminal descriptor crossed into the container: {terminals}"
    assert all(target.startswith(("pipe:", "/dev/null")) for target in fds.values()), fds
    assert tty_nr == 0, f"the container's process has a controlling terminal (tty_nr {tty_nr})"


def _python_api(root: str, ref: str, argv: list[str]) -> list[str]:
    """A program that runs ``argv`` in the container through ``Engine.exec`` with its own stdout and stderr."""
    code = ("import sys, labkit; lab = labkit.connect(backend='linux', root=sys.argv[1]); "
            "sys.exit(lab.exec(sys.argv[2], sys.argv[3:]))")
    return [sys.executable, "-c", code, root, ref, *argv]


WAYS = ("resident engine", "in-process", "python api")


def _exec_argv(way: str, engine, ref: str, argv: list[str]) -> list[str]:
    if way == "resident engine":
        return ["sh", BIN, "exec", ref, *argv]
    if way == "in-process":
        return [sys.executable, "-m", "labkit", "exec", ref, *argv]
    return _python_api(str(engine.store.root), ref, argv)


def _env(way: str, served: dict[str, str]) -> dict[str, str]:
    return {**served, "LABKIT_NO_SERVER": "1"} if way != "resident engine" else served


@pytest.mark.parametrize("way", WAYS)
def test_exec_gives_the_container_pipes_never_the_callers_terminal(engine, served, way):
    """exec from a terminal: the command's 0-2 are pipes (its stdin /dev/null), no other descriptor of the
    caller's crosses, it has no controlling terminal, and its output still reaches the terminal."""
    engine.run("busybox", ["sleep", "300"], name="tty-exec", detach=True)
    code, seen, _ = _under_pty(_exec_argv(way, engine, "tty-exec", ["sh", "-c", PROBE + "; exit 3"]),
                               _env(way, served))
    assert code == 3, seen
    _assert_no_terminal(seen)


@pytest.mark.parametrize("way", ("resident engine", "in-process"))
def test_attached_run_gives_the_container_pipes_never_the_callers_terminal(engine, served, way):
    """run without -d from a terminal: PID 1's 0-2 are /dev/null and the supervisor's pipes, nothing else
    crosses, it has no controlling terminal; its output and exit code reach the caller as before."""
    argv = ["sh", BIN] if way == "resident engine" else [sys.executable, "-m", "labkit"]
    code, seen, _ = _under_pty([*argv, "run", "--rm", "--network", "none", "busybox", "sh", "-c", PROBE + "; exit 4"],
                               _env(way, served))
    assert code == 4, seen
    _assert_no_terminal(seen)


@pytest.mark.parametrize("way", WAYS)
def test_a_process_left_by_exec_can_neither_write_to_nor_read_from_the_terminal(engine, served, way):
    """A background process that exec left in the container finds, after exec returned, nothing of the
    terminal: what it writes to its stdout, stderr or /dev/tty never shows up, and it cannot read the
    keystrokes typed afterwards, from its stdin or /dev/tty."""
    engine.run("busybox", ["sleep", "300"], name="tty-linger", detach=True)
    code, seen, after = _under_pty(_exec_argv(way, engine, "tty-linger", ["sh", "-c", LINGER]), _env(way, served),
                                   typed=b"SECRET\nSECRET\n", linger=2.5)
    assert code == 0 and "started" in seen, seen
    assert wait_for(lambda: engine.exec_output("tty-linger", ["cat", "/tmp/linger-done"])[1] == "done\n", timeout=10)
    assert "LEAK" not in seen + after, f"the process left in the container wrote on the terminal: {seen + after!r}"
    _, got = engine.exec_output("tty-linger", ["sh", "-c", "cat /tmp/stdin-got /tmp/tty-got"])
    assert "SECRET" not in got, f"the process left in the container read what was typed: {got!r}"


def test_exec_relays_piped_stdin_and_output_as_before(engine, served):
    """``echo hi | labkit exec -i C cat``: stdin reaches the command through a pipe; stdout, stderr and the exit
    code come back unchanged, through the resident engine and in-process."""
    engine.run("busybox", ["sleep", "300"], name="tty-pipe", detach=True)
    script = "cat; echo to-err >&2; exit 5"
    for argv, env in ((["sh", BIN], served), ([sys.executable, "-m", "labkit"], {**served, "LABKIT_NO_SERVER": "1"})):
        p = subprocess.run([*argv, "exec", "-i", "tty-pipe", "sh", "-c", script], input="hi\nthere\n",
                           capture_output=True, text=True, env=env, timeout=120)
        assert (p.returncode, p.stdout, p.stderr) == (5, "hi\nthere\n", "to-err\n"), argv
        p = subprocess.run([*argv, "exec", "tty-pipe", "sh", "-c", script], input="not read\n",
                           capture_output=True, text=True, env=env, timeout=120)
        assert (p.returncode, p.stdout, p.stderr) == (5, "", "to-err\n"), "without -i, stdin is empty"


def test_exec_output_larger_than_a_pipe_and_a_reader_that_goes_away(engine, served):
    """The relay carries more than a pipe holds, and a reader that goes away ends the command with SIGPIPE
    as a direct pipe would: exit 141, and ``labkit exec C yes | head -1`` ends."""
    engine.run("busybox", ["sleep", "300"], name="tty-big", detach=True)
    code, out = engine.exec_output("tty-big", ["sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x"])
    assert code == 0 and out == "x" * 1_000_000
    r, w = os.pipe()
    os.close(r)
    try:
        assert engine.exec("tty-big", ["yes"], stdout=w) == 141
    finally:
        os.close(w)
    p = subprocess.run(f"'{sys.executable}' -m labkit exec tty-big yes | head -1", shell=True, capture_output=True,
                       text=True, env={**served, "LABKIT_NO_SERVER": "1"}, timeout=60)
    assert p.stdout == "y\n"


def test_rootless_exec_and_run_never_get_the_callers_terminal(learner):
    """Rootless, the same: exec and an attached run from a terminal give the container pipes and no controlling
    terminal, and a process exec left behind cannot write to the terminal afterwards."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": learner.pw_dir, "PYTHONPATH": REPO, "LANG": "C.UTF-8",
           "LABKIT_NO_SERVER": "1"}
    as_user = ["setpriv", "--reuid", str(learner.pw_uid), "--regid", str(learner.pw_gid), "--init-groups"]
    lab = [*as_user, PYTHON, "-m", "labkit"]
    subprocess.run([*lab, "rm", "-f", "tty-rootless"], env=env, capture_output=True, cwd=learner.pw_dir)
    p = subprocess.run([*lab, "run", "-d", "--name", "tty-rootless", "busybox", "sleep", "300"], env=env,
                       capture_output=True, text=True, cwd=learner.pw_dir, timeout=120)
    assert p.returncode == 0, p.stderr
    try:
        code, seen, _ = _under_pty([*lab, "exec", "tty-rootless", "sh", "-c", PROBE], env)
        assert code == 0, seen
        _assert_no_terminal(seen)
        code, seen, _ = _under_pty([*lab, "run", "--rm", "busybox", "sh", "-c", PROBE], env)
        assert code == 0, seen
        _assert_no_terminal(seen)
        code, seen, after = _under_pty([*lab, "exec", "tty-rootless", "sh", "-c", LINGER], env,
                                       typed=b"SECRET\nSECRET\n", linger=2.5)
        assert code == 0 and "started" in seen, seen
        assert "LEAK" not in seen + after
        done = subprocess.run([*lab, "exec", "tty-rootless", "sh", "-c", "for i in 1 2 3 4 5; do [ -e /tmp/linger-done ] && break; sleep 1; done; "
                               "cat /tmp/linger-done /tmp/stdin-got /tmp/tty-got"],
                              env=env, capture_output=True, text=True, cwd=learner.pw_dir, timeout=60)
        assert done.stdout.startswith("done") and "SECRET" not in done.stdout, done.stdout
    finally:
        subprocess.run([*lab, "rm", "-f", "tty-rootless"], env=env, capture_output=True, cwd=learner.pw_dir,
                       timeout=120)
