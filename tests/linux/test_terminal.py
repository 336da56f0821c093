"""A container's own terminal (``-t``): ``run -it``, ``exec -it``, ``attach`` and detach, resize.

Each test drives a real ``labkit`` command under a real pseudo-terminal
(pexpect holds the master, as a terminal emulator does) and types at it as a
person would: through the resident engine (``bin/labkit`` and its C client) and
in-process (``LABKIT_NO_SERVER=1``), as root and rootless. What the container's
shell reports about its terminal is checked from inside: ``tty`` names a
pseudo-terminal of the container's own devpts (``/dev/pts/0``: a new instance
numbers from 0), and its descriptors lead there and nowhere else — the caller's
terminal never crosses (tests/security/test_terminal.py checks the same for
commands without ``-t``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import termios
from pathlib import Path

import pexpect
import pytest

from tests.learner import PYTHON, REPO
from tests.util import scaled, wait_for

pytestmark = pytest.mark.root

BIN = str(Path(REPO) / "bin" / "labkit")
PROMPT = "/ # "
WAYS = ("resident engine", "in-process")
#: The same, and bin/labkit's Python part talking to the resident engine (where no C compiler built the client).
ALL_WAYS = (*WAYS, "python client")
#: Every descriptor of the shell, where it points, and its controlling terminal (tty_nr, proc(5)): from a
#: forked ls, so that the shell itself opens nothing.
FDS = r'(ls -l /proc/$$/fd/ >/tmp/fds); sed -n "s/.* \([0-9]*\) -> \(.*\)/fd \1 \2/p" /tmp/fds'


def _labkit(way: str, served: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    if way == "resident engine":
        return ["sh", BIN], served
    if way == "python client":
        return [sys.executable, "-S", "-E", BIN], served
    return [sys.executable, "-m", "labkit"], {**served, "LABKIT_NO_SERVER": "1"}


def _spawn(argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80) -> pexpect.spawn:
    """``argv`` on a new pseudo-terminal of ``rows`` x ``cols``, as a terminal emulator runs a command."""
    return pexpect.spawn(argv[0], argv[1:], env=env, dimensions=(rows, cols), timeout=scaled(60), encoding="utf-8",
                         codec_errors="replace")


def _ended(child: pexpect.spawn) -> int:
    """Wait (60 s at most) for the command to end; its exit code. The terminal's modes are back as they were
    (echo, line editing, ^C as a signal): whoever set them raw put them back."""
    child.expect(pexpect.EOF, timeout=60)
    lflag = termios.tcgetattr(child.child_fd)[3]
    assert lflag & termios.ECHO and lflag & termios.ICANON and lflag & termios.ISIG, "the terminal was left raw"
    child.close()
    return child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus


def _same_terminal_only(child: pexpect.spawn) -> None:
    """The shell's 0-2 are its terminal of the container's (/dev/pts/0), and it has no other descriptor."""
    child.sendline(FDS + "; echo fds-$((1+1))-done")  # not the echo of the typed line: its output
    child.expect("fds-2-done\r\n")
    fds = dict(re.findall(r"^fd (\d+) (\S+)\r$", child.before, re.M))
    assert fds == {"0": "/dev/pts/0", "1": "/dev/pts/0", "2": "/dev/pts/0", "10": "/dev/tty"} or \
        fds == {"0": "/dev/pts/0", "1": "/dev/pts/0", "2": "/dev/pts/0"}, fds


@pytest.mark.parametrize("way", ALL_WAYS)
def test_run_it_gives_a_shell_its_own_terminal_and_exits_with_its_code(engine, served, way):
    """``run -it --rm busybox sh``: the prompt shows, ``hostname`` is the short id, ``tty`` a pseudo-terminal of
    the container's devpts, ``stty size`` the caller's window; Ctrl-C interrupts the container's ``sleep``, not
    labkit; ``exit 3`` ends the command with 3, --rm removes it."""
    lab, env = _labkit(way, served)
    before = set(engine.store.container_ids())
    child = _spawn([*lab, "run", "-it", "--rm", "--network", "none", "busybox", "sh"], env, rows=33, cols=101)
    child.expect_exact(PROMPT)
    child.sendline("hostname; tty; stty size; echo TERM=$TERM")
    child.expect(r"([0-9a-f]{12})\r\n/dev/pts/0\r\n33 101\r\nTERM=xterm\r\n")
    short = child.match.group(1)
    assert [c for c in engine.store.container_ids() if c not in before][0].startswith(short)
    _same_terminal_only(child)
    child.sendline("sh -c 'echo sleeping-$((1+1)); exec sleep 100'")
    child.expect_exact("sleeping-2\r\n")  # said by the job once the shell made it the terminal's foreground group
    child.sendcontrol("c")  # a byte for the container's terminal, whose line discipline sends SIGINT to sleep
    child.expect_exact("^C\r\n")
    child.sendline("echo status-$?")
    child.expect("status-130\r\n")
    child.sendline("exit 3")
    assert _ended(child) == 3
    assert wait_for(lambda: set(engine.store.container_ids()) == before, timeout=10), "--rm removed it"


@pytest.mark.parametrize("way", ALL_WAYS)
def test_a_window_resized_reaches_the_containers_terminal(engine, served, way):
    """SIGWINCH at the caller (its window resized) reaches the container: its terminal takes the new size and
    the shell hears of it (SIGWINCH from the container's terminal: busybox's line editor redraws its prompt)."""
    lab, env = _labkit(way, served)
    child = _spawn([*lab, "run", "-it", "--rm", "--network", "none", "busybox", "sh"], env)
    child.expect_exact(PROMPT)
    child.sendline("stty size")
    child.expect("24 80\r\n")
    child.expect_exact(PROMPT)
    child.setwinsize(40, 132)  # TIOCSWINSZ on the pty: the kernel sends SIGWINCH to the labkit command
    child.expect_exact("\r/ # \x1b[J")  # the redraw
    child.sendline("stty size")
    child.expect("40 132\r\n")
    child.sendline("exit")
    assert _ended(child) == 0


@pytest.mark.parametrize("way", WAYS)
def test_detach_and_attach_again_leave_the_container_running(engine, served, way):
    """``run -dit`` then ``attach``: typed commands run in its shell; Ctrl-P Ctrl-Q detaches (``read escape
    sequence``, exit 1, as Docker's attach) and leaves it running; another ``attach --detach-keys`` reaches the same shell, a caller
    whose terminal closes leaves it running too, and the last one's ``exit 7`` ends the container with 7; ``logs``
    shows what the terminal showed."""
    lab, env = _labkit(way, served)
    name = f"tty-attach-{way[:2]}"
    p = subprocess.run([*lab, "run", "-dit", "--name", name, "--network", "none", "busybox", "sh"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", p.stdout), p.stderr
    assert engine.inspect(name)["Config"]["Tty"] is True
    child = _spawn([*lab, "attach", name], env)
    child.sendline("echo one-$((40+2)); v=kept")
    child.expect("one-42\r\n")
    child.send("\x10\x11")  # Ctrl-P Ctrl-Q
    child.expect("read escape sequence")
    assert _ended(child) == 1  # Docker's attach and exec -it exit 1 on the detach keys (tests/parity)
    assert engine.inspect(name)["State"]["Status"] == "running"
    child = _spawn([*lab, "attach", "--detach-keys", "ctrl-x,x", name], env)
    child.sendline("echo again-$v")
    child.expect("again-kept\r\n")
    child.sendline("v=again; echo set-$((1+1))")
    child.expect_exact("set-2\r\n")
    child.close(force=True)  # the caller's terminal goes away (its window closed: SIGHUP) while attached
    assert engine.inspect(name)["State"]["Status"] == "running"
    child = _spawn([*lab, "attach", "--detach-keys", "ctrl-x,x", name], env)
    child.sendline("echo again-$v")
    child.expect("again-again\r\n")
    child.sendline("exit 7")
    assert _ended(child) == 7
    assert engine.inspect(name)["State"]["ExitCode"] == 7
    logs = subprocess.run([*lab, "logs", name], env=env, capture_output=True, timeout=60)  # bytes: \r\n kept
    assert b"one-42\r\n" in logs.stdout and b"again-again\r\n" in logs.stdout, logs.stdout


@pytest.mark.parametrize("way", WAYS)
def test_exec_it_gives_the_command_a_terminal_of_the_containers(engine, served, way):
    """``exec -it C sh`` in a container without a terminal: the shell gets one of the container's devpts, its
    prompt shows, ``exit 5`` gives 5; a second exec detached with Ctrl-P Ctrl-Q leaves its shell running."""
    lab, env = _labkit(way, served)
    name = f"tty-exec-{way[:2]}"
    engine.run("busybox", ["sleep", "300"], name=name, detach=True, network="none")
    child = _spawn([*lab, "exec", "-it", name, "sh"], env, rows=20, cols=70)
    child.expect_exact(PROMPT)
    child.sendline("tty; stty size")
    child.expect("/dev/pts/0\r\n20 70\r\n")
    _same_terminal_only(child)
    child.sendline("exit 5")
    assert _ended(child) == 5
    child = _spawn([*lab, "exec", "-it", name, "sh", "-c", "echo ready; exec sleep 200"], env)
    child.expect("ready")
    child.send("\x10\x11")
    child.expect("read escape sequence")
    assert _ended(child) == 1  # Docker's attach and exec -it exit 1 on the detach keys (tests/parity)
    _, ps = engine.exec_output(name, ["ps", "-o", "args"])
    assert "sleep 200" in ps, ps


def test_it_refuses_input_that_is_not_a_terminal(engine, served):
    """``run -it`` and ``exec -it`` with stdin from a pipe: Docker's one line, exit 1, and nothing made."""
    before = set(engine.store.container_ids())
    for argv in (["run", "-it", "busybox", "true"], ["exec", "-it", "nope", "true"]):
        p = subprocess.run(["sh", BIN, *argv], input="", env=served, capture_output=True, text=True, timeout=60)
        assert (p.returncode, p.stderr) == (1, "the input device is not a TTY\n"), argv
    assert set(engine.store.container_ids()) == before


def test_rootless_run_exec_attach_and_resize(learner):
    """Rootless, through the user's own resident engine and in-process: ``run -it`` (hostname, its terminal, exit
    code), a resize, ``exec -it``, and detach then attach again."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": learner.pw_dir, "PYTHONPATH": REPO, "LANG": "C.UTF-8",
           "LABKIT_SOCKET_DIR": os.path.join(learner.pw_dir, ".labkit-sock")}
    as_user = ["setpriv", "--reuid", str(learner.pw_uid), "--regid", str(learner.pw_gid), "--init-groups"]
    ways = {"resident engine": [*as_user, "sh", BIN], "in-process": [*as_user, PYTHON, "-m", "labkit"]}
    try:
        for way, lab in ways.items():
            env_way = env if way == "resident engine" else {**env, "LABKIT_NO_SERVER": "1"}
            child = _spawn([*lab, "run", "-it", "--rm", "busybox", "sh"], env_way)
            child.expect_exact(PROMPT)
            child.sendline("hostname; tty; stty size; id -u")
            child.expect(r"[0-9a-f]{12}\r\n/dev/pts/0\r\n24 80\r\n0\r\n")
            _same_terminal_only(child)
            child.setwinsize(30, 90)
            child.expect_exact("\r/ # \x1b[J")
            child.sendline("stty size")
            child.expect("30 90\r\n")
            child.sendline("exit 3")
            assert _ended(child) == 3, way
            name = "tty-rootless"
            p = subprocess.run([*lab, "run", "-dit", "--name", name, "busybox", "sh"], env=env_way,
                               capture_output=True, text=True, timeout=120, cwd=learner.pw_dir)
            assert p.returncode == 0, p.stderr
            child = _spawn([*lab, "exec", "-it", name, "sh"], env_way)
            child.expect_exact(PROMPT)
            child.sendline("tty; exit 5")
            child.expect("/dev/pts/1\r\n")
            assert _ended(child) == 5, way
            child = _spawn([*lab, "attach", name], env_way)
            child.sendline("echo one-$((40+2))")
            child.expect("one-42\r\n")
            child.send("\x10\x11")
            child.expect("read escape sequence")
            assert _ended(child) == 1, way  # as Docker's attach (tests/parity)
            child = _spawn([*lab, "attach", name], env_way)
            child.sendline("exit 7")
            assert _ended(child) == 7, way
            p = subprocess.run([*lab, "rm", name], env=env_way, capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stderr
    finally:  # every container of the learner's goes: a run -it cut short by a timeout leaves its own too
        lab, env_in = ways["in-process"], {**env, "LABKIT_NO_SERVER": "1"}
        left = subprocess.run([*lab, "ps", "-aq"], env=env_in, capture_output=True, text=True, timeout=120)
        subprocess.run([*lab, "rm", "-f", "tty-rootless", *left.stdout.split()], env=env_in,
                       capture_output=True, timeout=120)
        subprocess.run([*ways["resident engine"], "server", "stop"], env=env, capture_output=True, timeout=60)


def test_create_it_then_start_ai_reaches_the_shell_from_its_first_prompt(engine, served):
    """``create -it`` then ``start -ai``: attached before PID 1 runs, so its first prompt shows; ``exit 4`` ends
    ``start`` with 4, and ``inspect`` shows Tty and OpenStdin as Docker does."""
    name = "tty-start-ai"
    p = subprocess.run(["sh", BIN, "create", "-it", "--name", name, "--network", "none", "busybox", "sh"],
                       env=served, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    config = engine.inspect(name)["Config"]
    assert (config["Tty"], config["OpenStdin"]) == (True, True)
    child = _spawn(["sh", BIN, "start", "-ai", name], served)
    child.expect_exact(PROMPT)
    child.sendline("echo $((6*7))")
    child.expect("42\r\n")
    child.sendline("exit 4")
    assert _ended(child) == 4
    assert engine.inspect(name)["State"]["ExitCode"] == 4


def test_run_it_with_init_gives_the_command_the_terminal(engine, served):
    """``run -it --init``: labkit-init is PID 1 and the shell, its child, is the terminal's foreground group (its
    reads are not stopped): it answers, and its ``exit 6`` is the container's code."""
    child = _spawn(["sh", BIN, "run", "-it", "--rm", "--init", "--network", "none", "busybox", "sh"], served)
    child.expect_exact(PROMPT)
    child.sendline("echo pid-$$ ppid-$PPID; cat /proc/1/comm")
    child.expect(r"pid-(\d+) ppid-1\r\n(\S+)\r\n")
    assert child.match.group(1) != "1" and "init" in child.match.group(2)
    child.sendline("exit 6")
    assert _ended(child) == 6
