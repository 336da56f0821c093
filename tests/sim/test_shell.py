"""The simulated sh: each script prints exactly what busybox's ash prints for it."""

from __future__ import annotations

import pytest

from labkit.sim.sh_arith import ArithError, arith
from labkit.sim.sh_syntax import ShellSyntaxError, parse

CASES = [
    ("echo hello world", 0, "hello world\n"),
    ("echo -n a; echo b", 0, "ab\n"),
    ("printf '%s-%d\\n' x 3 y 4", 0, "x-3\ny-4\n"),
    ("x=5; echo $((x * 2 + 1)) $((7 / 2)) $((7 % 3)) $((-7 / 2))", 0, "11 3 1 -3\n"),
    ("a=1 && echo yes || echo no; false && echo yes || echo no", 0, "yes\nno\n"),
    ("for i in 1 2 3; do echo i$i; done", 0, "i1\ni2\ni3\n"),
    ("i=0; while [ $i -lt 3 ]; do i=$((i+1)); done; echo $i", 0, "3\n"),
    ("i=0; until [ $i -ge 2 ]; do i=$((i+1)); done; echo $i", 0, "2\n"),
    ("if [ -d /etc ]; then echo dir; elif true; then echo no; else echo no; fi", 0, "dir\n"),
    ("if false; then echo a; else echo b; fi", 0, "b\n"),
    ("case abc in a*) echo A;; *) echo other;; esac", 0, "A\n"),
    ("seq 5 | wc -l", 0, "5\n"),
    ("seq 3 | grep -c 2", 0, "1\n"),
    ("seq 10 | head -n 2; seq 10 | tail -n 1", 0, "1\n2\n10\n"),
    ("echo $$", 0, "2\n"),  # the exec'd shell is the namespace's second process
    ("false; echo $?; true; echo $?", 0, "1\n0\n"),
    ("nosuch; echo rc=$?", 0, "sh: nosuch: not found\nrc=127\n"),
    ("exit 7", 7, ""),
    ("echo out; echo err >&2", 0, "out\nerr\n"),
    ("echo a > /tmp/f; echo b >> /tmp/f; cat /tmp/f; wc -l < /tmp/f", 0, "a\nb\n2\n"),
    ("x=$(echo inner); echo [$x]", 0, "[inner]\n"),
    ("echo \"$(seq 2)\"", 0, "1\n2\n"),
    ("v='a b'; for w in $v; do echo $w; done; echo \"$v\"", 0, "a\nb\na b\n"),
    ("x=hello; echo ${UNSET:-default} ${#x} ${x:+set}", 0, "default 5 set\n"),
    ("mkdir /tmp/g; touch /tmp/g/a /tmp/g/b; echo /tmp/g/*", 0, "/tmp/g/a /tmp/g/b\n"),
    ("cat /nope", 1, "cat: can't open '/nope': No such file or directory\n"),
    ("ls /nope", 1, "ls: /nope: No such file or directory\n"),
    ("rm /tmp/nope", 1, "rm: can't remove '/tmp/nope': No such file or directory\n"),
    ("echo x > /tmp/f; rm /tmp/f/g", 1, "rm: can't stat '/tmp/f/g': Not a directory\n"),
    ("mkdir /a/b", 1, "mkdir: can't create directory '/a/b': No such file or directory\n"),
    ("rmdir /etc", 1, "rmdir: '/etc': Directory not empty\n"),
    ("touch /x/y", 1, "touch: /x/y: No such file or directory\n"),
    ("echo hi > /x/y", 1, "sh: can't create /x/y: nonexistent directory\n"),
    ("id; hostname | wc -c", 0, "uid=0(root) gid=0(root) groups=0(root)\n13\n"),
    ("(exit 3); echo $?", 0, "3\n"),
    ("{ echo a; echo b; } > /tmp/g2; cat /tmp/g2", 0, "a\nb\n"),
    ("sleep 0.5 & wait; echo done", 0, "done\n"),
    ("! false; echo $?", 0, "0\n"),
    ("echo 'it''s' \"q\\\"q\" a\\ b", 0, "its q\"q a b\n"),
    ("mv /home /h2 && ls -d /h2 && ls -d /home", 1, "/h2\nls: /home: No such file or directory\n"),
    ("echo x | tr x y", 0, "y\n"),
    ("test 3 -gt 2 && [ abc = abc ] && echo ok", 0, "ok\n"),
    ("echo ok;", 0, "ok\n"),
    ("f=/etc/passwd; [ -f $f ] && head -n 1 $f", 0, "root:x:0:0:root:/root:/bin/sh\n"),
    ("chmod -R 755 /tmp/nope; echo rc=$?", 0, "chmod: /tmp/nope: No such file or directory\nrc=1\n"),
    ("mkdir -p /tmp/t/u/v; find /tmp/t", 0, "/tmp/t\n/tmp/t/u\n/tmp/t/u/v\n"),
    ("mkdir -p /tmp/t/u; touch /tmp/t/a /tmp/t/u/b; find /tmp/t -type f | sort; find /tmp/t -type d | sort", 0,
     "/tmp/t/a\n/tmp/t/u/b\n/tmp/t\n/tmp/t/u\n"),
    ("mkdir -p /tmp/t/u; touch /tmp/t/a /tmp/t/u/b; find /tmp/t -name 'b*'; find /tmp/t -maxdepth 0; "
     "find /tmp/t/ -maxdepth 1 -type d", 0, "/tmp/t/u/b\n/tmp/t\n/tmp/t/\n/tmp/t/u\n"),
    ("mkdir /tmp/t; ln -s /etc /tmp/t/l; find /tmp/t -type l; find /tmp/t/l -maxdepth 0 -type l", 0,
     "/tmp/t/l\n/tmp/t/l\n"),
    ("cd /tmp; mkdir t; touch t/x; find t -name x", 0, "t/x\n"),
    ("find /tmp/nope; echo rc=$?", 0, "find: /tmp/nope: No such file or directory\nrc=1\n"),
    ("find /tmp -type q; echo rc=$?", 0, "find: invalid argument 'q' to '-type'\nrc=1\n"),
    ("find /tmp -maxdepth x; echo rc=$?", 0, "find: invalid number 'x'\nrc=1\n"),
    ("printf abcdef | head -c 3; echo; printf 'ab\\ncd\\n' > /tmp/h; head -c 4 /tmp/h; echo; head -c x /tmp/h; "
     "echo rc=$?", 0, "abc\nab\nc\nhead: invalid number 'x'\nrc=1\n"),
    ("echo $((2**3)) $((2**3**2)) $((-2**2)) $((2*3**2)) $(( (1+2) * (3+4) )) $((17 % 5 ** 2))", 0,
     "8 512 4 18 21 17\n"),
    ("echo $((1/0)); echo after", 2, "sh: divide by zero\n"),
    ("echo $((2**-1)); echo after", 2, "sh: exponent less than 0\n"),
]


@pytest.mark.parametrize(("script", "code", "output"), CASES, ids=[c[0][:40] for c in CASES])
def test_script_output(sim, script, code, output):
    """The script's exit code and combined output are busybox's."""
    c = sim.run("busybox", ["sleep", "600"], detach=True)
    assert c.exec(["sh", "-c", script]) == (code, output)


MODES = [
    # cp creates the copy with the source's mode less the umask (022); a file that was there keeps its own.
    ("echo x > /tmp/s; chmod 755 /tmp/s; cp /tmp/s /tmp/s2; ls -l /tmp/s2", ["-rwxr-xr-x"]),
    ("echo x > /tmp/s; chmod 777 /tmp/s; echo y > /tmp/d; chmod 600 /tmp/d; cp /tmp/s /tmp/d; cp /tmp/s /tmp/n; "
     "cp -p /tmp/s /tmp/p; ls -l /tmp/d /tmp/n /tmp/p", ["-rw-------", "-rwxr-xr-x", "-rwxrwxrwx"]),
    # chmod -R changes the directory and everything below it.
    ("mkdir -p /tmp/r/s; touch /tmp/r/f /tmp/r/s/g; chmod -R 700 /tmp/r; ls -ld /tmp/r /tmp/r/s /tmp/r/f /tmp/r/s/g",
     ["drwx------", "-rwx------", "drwx------", "-rwx------"]),
]


@pytest.mark.parametrize(("script", "modes"), MODES, ids=[m[0][:40] for m in MODES])
def test_modes_after_cp_and_chmod(sim, script, modes):
    """The modes `ls -l` shows are busybox's (the rest of its lines, dates and sizes, is not compared)."""
    c = sim.run("busybox", ["sleep", "600"], detach=True)
    code, out = c.exec(["sh", "-c", script])
    assert code == 0 and [line[:10] for line in out.splitlines()] == modes


def test_syntax_errors_are_reported():
    """A script that cannot be parsed raises, and sh says why."""
    with pytest.raises(ShellSyntaxError):
        parse("if true; then echo")
    with pytest.raises(ShellSyntaxError):
        parse("echo 'open")


def test_syntax_error_exit_code(sim):
    """sh exits 2 on a syntax error and prints it on stderr."""
    c = sim.run("busybox", ["sh", "-c", "if then"])
    assert c.exit_code == 2
    assert c.logs().startswith("sh: syntax error")


def test_arithmetic():
    """$(( )) follows C: precedence, truncating division, comparisons give 0 or 1."""
    assert arith("1 + 2 * 3", {}) == 7
    assert arith("(1 + 2) * 3", {}) == 9
    assert arith("n > 2 && n < 5", {"n": "3"}) == 1
    assert arith("-7 % 3", {}) == -1


def test_power_binds_tighter_than_times_and_groups_from_the_right():
    """`**` is above `* / %`, right-associative, and below a unary minus, as in busybox's ash."""
    assert arith("2**3", {}) == 8 and arith("2**3**2", {}) == 512 and arith("-2**2", {}) == 4
    assert arith("2*3**2", {}) == 18 and arith("(2+1)**n", {"n": "2"}) == 9
    with pytest.raises(ArithError, match="exponent less than 0"):
        arith("2**-1", {})
    with pytest.raises(ArithError, match="divide by zero"):
        arith("1 % 0", {})


def test_unknown_program_fails_the_start(sim):
    """A command that is not in the image fails the start with 127 and the real backend's words."""
    from labkit.errors import StartFailed

    c = sim.create("busybox", ["nope-not-here"])
    with pytest.raises(StartFailed, match='exec: "nope-not-here": executable file not found in \\$PATH') as info:
        c.start()
    assert info.value.exit_code == 127
    st = c.inspect()["State"]
    assert st["Status"] == "created" and st["ExitCode"] == 127
