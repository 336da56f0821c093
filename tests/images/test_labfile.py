"""The Labfile parser: every supported form, and one clear error per unsupported one."""

from __future__ import annotations

import pytest

from labkit.errors import InvalidArgument, LabfileError
from labkit.images.labfile import Instruction, parse


def one(text: str) -> Instruction:
    return parse("FROM busybox\n" + text)[1]


def test_from_and_scratch():
    """FROM takes one image; scratch is an image name like any other."""
    assert parse("FROM busybox")[0] == Instruction("FROM", ("busybox",), 1, "FROM busybox")
    assert parse("from scratch")[0].args == ("scratch",)


def test_run_shell_and_exec_forms():
    """RUN's shell form runs through /bin/sh -c; its JSON form is the argv itself."""
    shell = one("RUN echo hi > /x")
    assert not shell.exec_form and shell.argv() == ["/bin/sh", "-c", "echo hi > /x"]
    exe = one('RUN ["echo", "hi"]')
    assert exe.exec_form and exe.argv() == ["echo", "hi"]


def test_malformed_json_is_a_shell_command():
    """Like Docker, a line that only looks like JSON runs as a shell command."""
    inst = one("RUN [not json")
    assert inst.argv() == ["/bin/sh", "-c", "[not json"]


def test_cmd_and_entrypoint_forms():
    """CMD and ENTRYPOINT keep the exec form and wrap the shell form in /bin/sh -c."""
    assert one('CMD ["node", "server.js"]').argv() == ["node", "server.js"]
    assert one("CMD node server.js").argv() == ["/bin/sh", "-c", "node server.js"]
    assert one('ENTRYPOINT ["/bin/sh"]').argv() == ["/bin/sh"]


def test_env_forms():
    """ENV takes K=V pairs with quotes, and the legacy 'K value with spaces' form."""
    assert one('ENV NODE_ENV=production PORT=3000 MSG="two words"').pairs() == [
        ("NODE_ENV", "production"),
        ("PORT", "3000"),
        ("MSG", "two words"),
    ]
    assert one("ENV GREETING hello there").pairs() == [("GREETING", "hello there")]


def test_label_copy_workdir_expose():
    """LABEL pairs, COPY sources/destination/--chown, WORKDIR, and EXPOSE ports with protocols."""
    assert one('LABEL a=b "c d"=e').pairs() == [("a", "b"), ("c d", "e")]
    copy = one("COPY --chown=1000:1000 a b /app/")
    assert copy.args == ("a", "b", "/app/") and copy.flag("chown") == "1000:1000"
    assert one('COPY ["a b", "/x"]').args == ("a b", "/x")
    assert one("WORKDIR /app").args == ("/app",)
    assert one("EXPOSE 3000 53/udp 8000-8001").args == ("3000/tcp", "53/udp", "8000/tcp", "8001/tcp")


def test_continuations_and_comments():
    """Backslash continuations join into one instruction; comments inside it are dropped; lines count from the start."""
    text = '# a comment\nFROM busybox\n\nRUN echo a \\\n  # inner comment\n  && echo b\nCMD ["sh"]\n'
    insts = parse(text)
    assert [i.keyword for i in insts] == ["FROM", "RUN", "CMD"]
    assert insts[1].line == 4
    assert insts[1].args == ("echo a && echo b",)
    assert insts[2].line == 7


def test_layer_role_comments():
    """A '# layer: role' comment names the layer of the next instruction only."""
    insts = parse("# layer: base OS\nFROM busybox\n# layer: runtime\nCOPY a /\nCOPY b /\n")
    assert [i.role for i in insts] == ["base OS", "runtime", ""]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("FROM busybox\nADD x /", 2, "ADD is not supported"),
        ("FROM busybox\n\nFOO bar", 3, "unknown instruction: FOO"),
        ("RUN true", 1, "before FROM"),
        ("FROM a\nFROM b", 2, "second FROM"),
        ("FROM busybox\nCOPY onlyone", 2, "at least two arguments"),
        ("FROM busybox\nCOPY --from=x a b", 2, "--from is not supported"),
        ("FROM busybox\nEXPOSE http", 2, "invalid containerPort: http"),
        ("FROM busybox\nEXPOSE 70000", 2, "1-65535"),
        ("FROM busybox\nENV =x", 2, "KEY=VALUE"),
        ("FROM busybox\nENV LONELY", 2, "needs a value"),
        ("FROM busybox\nRUN", 2, "requires at least one argument"),
        ("FROM busybox AS build", 1, "multi-stage"),
    ],
)
def test_errors_name_the_line(text, line, words):
    """Each bad Labfile raises LabfileError saying 'Labfile line N:' and what is wrong."""
    with pytest.raises(LabfileError) as err:
        parse(text)
    assert str(err.value).startswith(f"Labfile line {line}: ")
    assert words in str(err.value)
    assert isinstance(err.value, InvalidArgument) and err.value.hint


def test_unknown_instruction_lists_what_is_supported():
    """The error for an unknown instruction lists the supported ones."""
    with pytest.raises(LabfileError, match="FROM, COPY, RUN, ENV, CMD, ENTRYPOINT, WORKDIR, EXPOSE, LABEL"):
        parse("FROM busybox\nHELLO world", "Labfile")


def test_filename_in_message_and_empty_file():
    """Errors name the file that was parsed; an empty file is an error too."""
    with pytest.raises(LabfileError, match="^Dockerfile line 1: "):
        parse("USER app", "Dockerfile")
    with pytest.raises(LabfileError, match="empty"):
        parse("# nothing\n\n")
