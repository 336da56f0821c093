"""The command line passes flags to the engine and prints Docker's shapes, codes and error lines.

The engine here is a small in-memory stand-in (:class:`FakeEngine`) that
records every call; it serves only these tests of the command line's own
parsing and printing. The engine itself is tested against real backends
elsewhere.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labkit import cli
from labkit.cli import formatters, templates
from labkit.errors import (
    BuildFailed,
    HostUnsupported,
    IllegalTransition,
    InvalidName,
    LabkitError,
    NameInUse,
    NoSuchContainer,
    NoSuchImage,
    NoSuchVolume,
    StartFailed,
)

WEB_ID = "a" * 12 + "1" * 52
DB_ID = "b" * 12 + "2" * 52
IMG_ID = "sha256:" + "3dc993222c34" + "0" * 52


class Handle:
    """What ``create`` returns: something with an ``id``."""

    def __init__(self, cid: str, warnings: list[str] | None = None) -> None:
        self.id = cid
        self.warnings = warnings or []


class FakeEngine:
    """An in-memory engine: records calls, answers with Docker-shaped dicts."""

    backend_name = "sim"
    backend_reason = "asked for"

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.fail: dict[str, LabkitError | OSError] = {}
        self.exit_code = 0
        self.log_lines = [("stdout", "hello\n", "2024-05-01T12:00:00.5Z"), ("stderr", "oops\n", "2024-05-01T12:00:01Z")]
        now = int(time.time())
        self.containers = {
            WEB_ID: {
                "Id": WEB_ID,
                "Names": ["/web"],
                "Image": "busybox",
                "ImageID": IMG_ID,
                "Command": "httpd -f -p 8080 -h /www/long/path",
                "Created": now - 5,
                "Ports": [
                    {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                    {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                ],
                "Labels": {"app": "web"},
                "State": "running",
                "Status": "Up 5 seconds",
            },
            DB_ID: {
                "Id": DB_ID,
                "Names": ["/db"],
                "Image": "frontend:1.0",
                "ImageID": IMG_ID,
                "Command": "sh",
                "Created": now - 3600,
                "Ports": [{"PrivatePort": 5432, "Type": "tcp"}],
                "Labels": {},
                "State": "exited",
                "Status": "Exited (0) 3 minutes ago",
            },
        }

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((method, args, kwargs))
        if method in self.fail:
            raise self.fail[method]

    def _find(self, ref: str) -> dict:
        for c in self.containers.values():
            if c["Id"].startswith(ref) or f"/{ref}" in c["Names"]:
                return c
        raise NoSuchContainer(ref)

    def called(self, name: str) -> list[tuple[tuple, dict]]:
        return [(a, k) for n, a, k in self.calls if n == name]

    # lifecycle
    def create(self, image: str, command: Any = None, **kwargs: Any) -> Handle:
        self._record("create", image, command, **kwargs)
        if kwargs.get("name") is not None and not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", kwargs["name"]):
            raise InvalidName(kwargs["name"])
        if image == "nosuch":
            raise NoSuchImage(formatters.full_image_ref(image))
        if kwargs.get("cpus"):
            return Handle("c" * 64, ["CPU quota discarded: nothing here enforces it"])
        return Handle("c" * 64)

    def start(self, ref: str, **kwargs: Any) -> None:
        self._record("start", ref, **kwargs)
        if ref != "c" * 64:
            self._find(ref)

    def stop(self, ref: str, timeout: Any = None, signal: Any = None) -> None:
        self._record("stop", ref, timeout=timeout, signal=signal)
        self._find(ref)

    def restart(self, ref: str, timeout: Any = None) -> None:
        self._record("restart", ref, timeout=timeout)
        self._find(ref)

    def kill(self, ref: str, signal: str = "KILL") -> None:
        self._record("kill", ref, signal=signal)
        self._find(ref)

    def pause(self, ref: str) -> None:
        self._record("pause", ref)
        c = self._find(ref)
        if c["State"] != "running":
            raise IllegalTransition(f"container {c['Id']} is not running", c["State"], "pause")

    def unpause(self, ref: str) -> None:
        self._record("unpause", ref)
        self._find(ref)

    def rm(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        self._record("rm", ref, force=force, volumes=volumes)
        if ref != "c" * 64:
            self._find(ref)

    def wait(self, ref: str, timeout: Any = None) -> int:
        self._record("wait", ref)
        if ref != "c" * 64:
            self._find(ref)
        return self.exit_code

    # looking
    def ps(self, all: bool = False) -> list[dict]:
        self._record("ps", all=all)
        items = sorted(self.containers.values(), key=lambda c: c["Created"], reverse=True)
        return [c for c in items if all or c["State"] == "running"]

    def inspect(self, ref: str) -> dict:
        self._record("inspect", ref)
        c = self._find(ref)
        return {
            "Id": c["Id"],
            "Created": "2024-05-01T12:00:00Z",
            "Path": "httpd",
            "Args": ["-f"],
            "State": {"Status": c["State"], "Running": c["State"] == "running", "Pid": 4242, "ExitCode": 0},
            "Image": IMG_ID,
            "Name": c["Names"][0],
            "Config": {"Env": ["PATH=/bin", "A=<b>&c"], "Labels": {"z": "1", "a": "2"}, "Memory": None},
        }

    def image_inspect(self, ref: str) -> dict:
        self._record("image_inspect", ref)
        if ref in ("busybox", "busybox:latest"):
            return {"Id": IMG_ID, "RepoTags": ["busybox:latest"]}
        raise NoSuchImage(ref)

    def volume_inspect(self, name: str) -> dict:
        self._record("volume_inspect", name)
        if name == "data":
            return {"Name": "data", "Driver": "local", "Mountpoint": "/var/lib/labkit/volumes/data/_data"}
        raise NoSuchVolume(name)

    def network_inspect(self, ref: str) -> dict:
        self._record("network_inspect", ref)
        from labkit.errors import NoSuchNetwork

        raise NoSuchNetwork(ref)

    def diff(self, ref: str) -> list[dict]:
        self._record("diff", ref)
        self._find(ref)
        return [{"Path": "/app", "Kind": 0}, {"Path": "/app/server.log", "Kind": 1}, {"Path": "/tmp/old", "Kind": 2}]

    def logs(self, ref: str, follow: bool = False, tail: Any = None, timestamps: bool = False) -> Iterator[tuple]:
        self._record("logs", ref, follow=follow, tail=tail, timestamps=timestamps)
        if ref != "c" * 64:
            self._find(ref)
        yield from self.log_lines

    def exec(self, ref: str, cmd: list[str], **kwargs: Any) -> int:
        self._record("exec", ref, cmd, **kwargs)
        self._find(ref)
        import os

        os.write(kwargs["stdout"], b"from exec\n")
        return 3

    def images(self, **kw: Any) -> list[dict]:
        self._record("images", **kw)
        return [
            {
                "Id": IMG_ID,
                "RepoTags": ["frontend:1.0", "localhost:5000/app:v2"],
                "Created": int(time.time()) - 2,
                "Size": 12_345_678,
            },
            {"Id": "sha256:" + "f" * 64, "RepoTags": [], "Created": int(time.time()) - 7200, "Size": 999},
        ]

    def build(self, path: str, tag: str, file: Any = None, on_step: Any = print) -> str:
        self._record("build", path, tag, file=file)
        on_step("Step 1/1 : FROM busybox")
        on_step(f"Successfully built {IMG_ID[7:19]}")  # labkit.images.build.build's last lines
        if tag:
            on_step(f"Successfully tagged {tag}")
        return IMG_ID

    def volume_create(self, name: Any = None) -> dict:
        self._record("volume_create", name)
        return {"Name": name or "f" * 64, "Driver": "local"}

    def volume_ls(self) -> list[dict]:
        self._record("volume_ls")
        return [{"Driver": "local", "Name": "data"}, {"Driver": "local", "Name": "cache"}]

    def volume_rm(self, name: str, force: bool = False) -> None:
        self._record("volume_rm", name, force=force)
        if name != "data":
            raise NoSuchVolume(name)

    def doctor(self) -> list[dict]:
        self._record("doctor")
        return [
            {"check": "root", "ok": True, "detail": "running as uid 0", "meaning": ""},
            {"check": "cgroup v2", "ok": False, "detail": "no controllers", "meaning": "limits use cgroup v1"},
        ]

    def version(self) -> dict:
        self._record("version")
        return {
            "Version": "0.1.0",
            "ApiVersion": "1.50",
            "MinAPIVersion": "1.24",
            "Os": "linux",
            "Arch": "amd64",
            "KernelVersion": "6.18",
        }

    def info(self) -> dict:
        self._record("info")
        return {
            "Containers": 2,
            "ContainersRunning": 1,
            "ContainersPaused": 0,
            "ContainersStopped": 1,
            "Images": 2,
            "Driver": "overlay",
            "MemTotal": 8_335_265_792,
            "NCPU": 2,
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"],
        }


class Result:
    """The outcome of one in-process ``labkit`` call."""

    def __init__(self, code: int, out: str, err: str, engine: FakeEngine) -> None:
        self.code, self.out, self.err, self.engine = code, out, err, engine


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def labkit(engine: FakeEngine):  # type: ignore[no-untyped-def]
    """Call ``labkit ARGS...`` in-process against the fake engine."""
    factory_args: list[dict] = []

    def call(*argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()

        def factory(**kwargs: Any) -> FakeEngine:
            factory_args.append(kwargs)
            return engine

        code = cli.main(list(argv), engine_factory=factory, stdout=out, stderr=err)
        return Result(code, out.getvalue(), err.getvalue(), engine)

    call.factory_args = factory_args  # type: ignore[attr-defined]
    return call


# ---------------------------------------------------------------- run / create


def test_run_detached_prints_the_full_id_and_passes_every_flag(labkit, engine, monkeypatch, tmp_path) -> None:
    """run -d prints the 64-hex id and hands each flag to create in the engine's terms."""
    monkeypatch.setenv("FROM_SHELL", "yes")
    envfile = tmp_path / "env"
    envfile.write_text("# comment\n\nFILE_A=1\n  FILE_B=two words\nFROM_SHELL\n")
    r = labkit(
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "A=1",
        "-e",
        "FROM_SHELL",
        "-e",
        "UNSET_X_Y_Z",
        "--env-file",
        str(envfile),
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1:53:53/udp",
        "-P",
        "-v",
        "data:/data",
        "-v",
        "/tmp:/host:ro",
        "-w",
        "/app",
        "-h",
        "box",
        "--entrypoint",
        "/bin/sh",
        "-m",
        "64m",
        "--memory-swap",
        "-1",
        "--pids-limit",
        "20",
        "--cpus",
        "1.5",
        "--restart",
        "on-failure:3",
        "--network",
        "none",
        "--init",
        "--stop-signal",
        "SIGINT",
        "--stop-timeout",
        "3",
        "--security-opt",
        "seccomp=unconfined",
        "-l",
        "app=web",
        "-l",
        "tier",
        "busybox",
        "sh",
        "-c",
        "echo hi; sleep 1",
    )
    assert r.code == 0, r.err
    assert re.fullmatch(r"[0-9a-f]{64}\n", r.out)
    ((args, kwargs),) = engine.called("create")
    assert args == ("busybox", ["sh", "-c", "echo hi; sleep 1"])
    assert kwargs == dict(
        name="web",
        entrypoint="/bin/sh",
        env=["FILE_A=1", "FILE_B=two words", "FROM_SHELL=yes", "A=1", "FROM_SHELL=yes"],
        workdir="/app",
        hostname="box",
        ports=["8080:80", "127.0.0.1:53:53/udp"],
        publish_all=True,
        volumes=["data:/data", "/tmp:/host:ro"],
        memory=64 * 1024**2,
        memory_swap=-1,
        pids_limit=20,
        cpus=1.5,
        restart="on-failure:3",
        network="none",
        auto_remove=False,
        labels={"app": "web", "tier": ""},
        stop_signal="SIGINT",
        stop_timeout=3,
        init=True,
        security_opt=["seccomp=unconfined"],
    )
    assert engine.called("start") == [(("c" * 64,), {})]


@pytest.mark.parametrize("verb", [("run", "-d"), ("create",)])
def test_a_discarded_limit_is_a_warning_line_before_the_id(labkit, engine, verb) -> None:
    """A limit the engine discards is printed as Docker prints it, ``WARNING: …`` on stderr; the id still follows."""
    r = labkit(*verb, "--cpus", "0.5", "busybox")
    assert r.code == 0
    assert r.err == "WARNING: CPU quota discarded: nothing here enforces it\n"
    assert r.out == "c" * 64 + "\n"


def test_run_without_command_leaves_the_image_default(labkit, engine) -> None:
    """run IMAGE with nothing after passes command None (the image's CMD)."""
    r = labkit("run", "-d", "busybox")
    assert r.code == 0
    assert engine.called("create")[0][0] == ("busybox", None)


def test_run_options_after_the_image_belong_to_the_command(labkit, engine) -> None:
    """Everything after IMAGE, dashes included, is the container's command."""
    r = labkit("run", "-d", "busybox", "ls", "-l", "--help", "-d")
    assert r.code == 0
    assert engine.called("create")[0][0] == ("busybox", ["ls", "-l", "--help", "-d"])


def test_run_attached_streams_output_and_exits_with_the_container_code(labkit, engine) -> None:
    """Attached run writes stdout/stderr as they come, exits with the code, and --rm removes after."""
    engine.exit_code = 3
    r = labkit("run", "--rm", "busybox", "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert (r.code, r.out, r.err) == (3, "hello\n", "oops\n")
    assert engine.called("create")[0][1]["auto_remove"] is False  # the CLI removes it once it has the code
    assert engine.called("logs")[0][1]["follow"] is True
    assert engine.called("rm") == [(("c" * 64,), {"force": True, "volumes": False})]


def test_run_unknown_image_says_unable_to_find_then_fails_125(labkit) -> None:
    """A missing image prints Docker's 'Unable to find image' line, the error and the help hint; rc 125."""
    r = labkit("run", "nosuch")
    assert r.code == 125
    lines = r.err.splitlines()
    assert lines[0] == "Unable to find image 'nosuch:latest' locally"
    assert lines[1].startswith("labkit: No such image: nosuch:latest. ")
    assert lines[1].endswith(".")
    assert lines[2:] == ["", "Run 'labkit run --help' for more information"]
    assert r.out == ""


@pytest.mark.parametrize("code", [126, 127])
def test_run_start_failure_exits_with_126_or_127(labkit, engine, code) -> None:
    """A command that cannot start gives rc 126/127 and removes a --rm container."""
    engine.fail["start"] = StartFailed('exec: "nope": executable file not found in $PATH', code)
    r = labkit("run", "--rm", "busybox", "nope")
    assert r.code == code
    assert r.err.startswith('labkit: Error response from daemon: exec: "nope": executable file not found in $PATH.\n')
    assert engine.called("rm")


def test_run_detached_start_failure_still_printed_the_id(labkit, engine) -> None:
    """run -d prints the id before starting, as Docker does, then reports the failure."""
    engine.fail["start"] = StartFailed("exec format error", 126)
    r = labkit("run", "-d", "busybox", "x")
    assert r.code == 126
    assert r.out == "c" * 64 + "\n"


def test_run_name_conflict_is_125(labkit, engine) -> None:
    """A create error from the engine is printed as labkit: <msg> with rc 125."""
    engine.fail["create"] = NameInUse("web", WEB_ID)
    r = labkit("run", "-d", "--name", "web", "busybox")
    assert r.code == 125
    assert r.err.startswith('labkit: Error response from daemon: Conflict. The container name "/web" is already in use')


def test_create_prints_the_id_and_does_not_start(labkit, engine) -> None:
    """create prints the full id; nothing is started."""
    r = labkit("create", "--name", "x1", "busybox", "true")
    assert (r.code, r.out) == (0, "c" * 64 + "\n")
    assert not engine.called("start")
    assert engine.called("create")[0][1]["name"] == "x1"


@pytest.mark.parametrize("flag, code", [(["-m", "64x"], 125), (["--cpus", "lots"], 125),
                                        (["--pids-limit", "many"], 125), (["-p"], 1)])
def test_bad_run_flags_are_usage_errors(labkit, engine, flag, code) -> None:
    """A malformed flag value is a one-line usage error with Docker's code (125; 1 when -p takes the image,
    leaving none), before the engine is touched."""
    r = labkit("run", *flag, "busybox")
    assert r.code == code
    assert len(r.err.strip().splitlines()) == 1
    assert "labkit run" in r.err and "See 'labkit run --help'" in r.err
    assert engine.calls == []


def test_bad_memory_size_says_invalid_size(labkit) -> None:
    """-m 64x says invalid size: '64x' like Docker."""
    assert "invalid size: '64x'" in labkit("run", "-m", "64x", "busybox").err


def test_missing_env_file_is_a_run_error(labkit, tmp_path) -> None:
    """--env-file pointing nowhere says open <path>: no such file or directory, rc 125."""
    r = labkit("run", "--env-file", str(tmp_path / "none"), "busybox")
    assert r.code == 125
    assert f"open {tmp_path / 'none'}: no such file or directory" in r.err


# ---------------------------------------------------------------- lifecycle verbs


@pytest.mark.parametrize(
    ("argv", "method", "kwargs"),
    [
        (["stop", "-t", "3", "-s", "SIGINT", "web"], "stop", {"timeout": 3, "signal": "SIGINT"}),
        (["stop", "web"], "stop", {"timeout": None, "signal": None}),
        (["restart", "-t", "0", "web"], "restart", {"timeout": 0}),
        (["kill", "web"], "kill", {"signal": "KILL"}),
        (["kill", "-s", "HUP", "web"], "kill", {"signal": "HUP"}),
        (["pause", "web"], "pause", {}),
        (["unpause", "web"], "unpause", {}),
        (["rm", "-f", "-v", "web"], "rm", {"force": True, "volumes": True}),
        (["rm", "web"], "rm", {"force": False, "volumes": False}),
        (["start", "web"], "start", {}),
    ],
)
def test_verbs_pass_flags_and_echo_the_argument(labkit, engine, argv, method, kwargs) -> None:
    """Each verb calls the engine with its flags and echoes the name as typed."""
    r = labkit(*argv)
    assert (r.code, r.out, r.err) == (0, "web\n", "")
    assert engine.called(method) == [(("web",), kwargs)]


def test_verbs_go_on_after_a_failure_and_exit_1(labkit) -> None:
    """Several names: each success is echoed, each failure reported, rc 1."""
    r = labkit("stop", "web", "nosuch", "db")
    assert r.code == 1
    assert r.out == "web\ndb\n"
    assert (
        r.err
        == "Error response from daemon: No such container: nosuch. Run 'labkit ps -a' to see the containers there are.\n"
    )


def test_start_failure_adds_failed_to_start_line(labkit) -> None:
    """start of a missing container adds Docker's 'Error: failed to start containers:' line."""
    r = labkit("start", "nosuch", "web")
    assert r.code == 1
    assert r.out == "web\n"
    assert r.err.splitlines()[-1] == "Error: failed to start containers: nosuch"


def test_illegal_transition_is_a_daemon_error(labkit) -> None:
    """pause of an exited container prints Docker's sentence with rc 1."""
    r = labkit("pause", "db")
    assert r.code == 1
    assert r.err == f"Error response from daemon: container {DB_ID} is not running\n"


def test_start_attach_streams_and_returns_the_exit_code(labkit, engine) -> None:
    """start -a streams only new output and exits with the container's code."""
    engine.exit_code = 7
    r = labkit("start", "-a", "web")
    assert r.code == 7
    assert r.out == ""  # both log lines existed before the start: not replayed
    assert labkit("start", "-a", "web", "db").code == 1


def test_wait_prints_exit_codes(labkit, engine) -> None:
    """wait prints the exit code of each container."""
    engine.exit_code = 137
    r = labkit("wait", "web", "db")
    assert (r.code, r.out) == (0, "137\n137\n")


# ---------------------------------------------------------------- ps


def _ps_lines(out: str) -> list[str]:
    return out.rstrip("\n").split("\n")


def test_ps_table_is_aligned_like_tabwriter(labkit) -> None:
    """Columns start where the header's do, padded by 3, at least 10 wide; running only by default."""
    r = labkit("ps")
    assert r.code == 0
    header, row = _ps_lines(r.out)
    names = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    starts = [header.index(n) for n in names]
    assert starts[0] == 0
    assert starts[1] == len("CONTAINER ID") + 3
    assert starts[2] - starts[1] == 10  # "busybox" + 3 < minwidth 10
    assert row[: starts[1]].rstrip() == WEB_ID[:12]
    assert row[starts[1] : starts[2]].rstrip() == "busybox"
    assert row[starts[2] : starts[3]].rstrip() == '"httpd -f -p 8080 -h…"'
    assert row[starts[3] : starts[4]].rstrip() in ("5 seconds ago", "6 seconds ago")  # a second may tick by
    assert row[starts[4] : starts[5]].rstrip() == "Up 5 seconds"
    assert row[starts[5] : starts[6]].rstrip() == "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
    assert row[starts[6] :] == "web"
    assert not header.endswith(" ") and not row.endswith(" ")


def test_ps_all_quiet_and_no_trunc(labkit, engine) -> None:
    """-a lists every container newest first; -q prints ids; --no-trunc keeps them whole."""
    assert labkit("ps", "-a", "-q").out == f"{WEB_ID[:12]}\n{DB_ID[:12]}\n"
    assert engine.called("ps")[-1][1] == {"all": True}
    assert labkit("ps", "-aq", "--no-trunc").out == f"{WEB_ID}\n{DB_ID}\n"
    full = labkit("ps", "--no-trunc").out
    assert '"httpd -f -p 8080 -h /www/long/path"' in full


def test_ps_last_and_latest_include_stopped(labkit, engine) -> None:
    """-n N and -l look at all containers and keep the newest N."""
    assert labkit("ps", "-q", "-n", "1").out == f"{WEB_ID[:12]}\n"
    assert labkit("ps", "-q", "-l").out == f"{WEB_ID[:12]}\n"
    assert engine.called("ps")[-1][1] == {"all": True}


def test_ps_filters(labkit) -> None:
    """name= and status= filters keep matching containers; different keys must all hold."""
    assert labkit("ps", "-aq", "-f", "name=we").out == f"{WEB_ID[:12]}\n"
    assert labkit("ps", "-aq", "-f", "status=exited").out == f"{DB_ID[:12]}\n"
    assert labkit("ps", "-aq", "-f", "name=web", "-f", "status=exited").out == ""
    assert labkit("ps", "-aq", "-f", "label=app=web").out == f"{WEB_ID[:12]}\n"
    bad = labkit("ps", "-f", "colour=red")
    assert bad.code == 1 and bad.err.startswith("Error response from daemon: invalid filter 'colour'")


def test_ps_format_templates(labkit) -> None:
    """--format renders fields per row; a 'table' prefix adds headers and alignment."""
    assert labkit("ps", "-a", "--format", "{{.Names}}").out == "web\ndb\n"
    assert labkit("ps", "--format", "{{.ID}} {{.State}} {{.Image}}").out == f"{WEB_ID[:12]} running busybox\n"
    out = labkit("ps", "-a", "--format", "table {{.Names}}\\t{{.Status}}").out
    assert out == "NAMES     STATUS\nweb       Up 5 seconds\ndb        Exited (0) 3 minutes ago\n"
    assert labkit("ps", "--format", "{{.Ports}}").out == "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp\n"
    assert labkit("ps", "-a", "--format", "{{.Command}}|{{.Labels}}").out == ('"httpd -f -p 8080 -h…"|app=web\n"sh"|\n')
    bad = labkit("ps", "--format", "{{.Nope}}")
    assert bad.code == 1 and "can't evaluate field Nope" in bad.err


def test_ps_empty_prints_only_the_header(labkit, engine) -> None:
    """No containers: just the header line."""
    engine.containers.clear()
    assert labkit("ps").out == "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"


# ---------------------------------------------------------------- inspect


def test_inspect_prints_a_four_space_json_array_in_key_order(labkit) -> None:
    """inspect prints the engine's dicts as an indented array, keys in order, HTML escaped like Go."""
    r = labkit("inspect", "web")
    assert r.code == 0
    assert r.out.startswith('[\n    {\n        "Id": "' + WEB_ID + '",\n        "Created"')
    assert '"A=\\u003cb\\u003e\\u0026c"' in r.out
    assert list(json.loads(r.out)[0]) == ["Id", "Created", "Path", "Args", "State", "Image", "Name", "Config"]
    assert r.out.endswith("}\n]\n")


def test_inspect_unknown_prints_empty_array_and_no_such_object(labkit, engine) -> None:
    """An unknown name tries container, image, volume, then prints [] and Error: No such object, rc 1."""
    r = labkit("inspect", "ghost")
    assert (r.code, r.out, r.err) == (1, "[]\n", "Error: No such object: ghost\n")
    assert [n for n, _, _ in engine.calls] == ["inspect", "image_inspect", "volume_inspect", "network_inspect"]


def test_inspect_finds_images_and_volumes_and_honours_type(labkit, engine) -> None:
    """Without --type images and volumes are found too; --type limits the lookup."""
    both = labkit("inspect", "busybox", "data")
    assert [o.get("Name", o.get("Id")) for o in json.loads(both.out)] == [IMG_ID, "data"]
    typed = labkit("inspect", "--type", "container", "busybox")
    assert typed.code == 1 and typed.err.startswith("Error response from daemon: No such container: busybox")


def test_inspect_format(labkit) -> None:
    """-f runs a Go template per object: fields, json, range/println."""
    assert labkit("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "web").out == "running 4242\n"
    # The docker CLI's json template function does not escape HTML characters (SetEscapeHTML(false)),
    # as tests/parity shows beside a real dockerd.
    assert labkit("inspect", "-f", "{{json .Config.Env}}", "web").out == '["PATH=/bin","A=<b>&c"]\n'
    assert labkit("inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", "web").out == "PATH=/bin\nA=<b>&c\n\n"
    assert labkit("inspect", "-f", "{{.Config.Labels}} {{.Config.Memory}} {{.State.Running}}", "web").out == (
        "map[a:2 z:1] <nil> true\n"
    )
    assert labkit("inspect", "-f", "{{if .State.Running}}up{{else}}down{{end}}", "db").out == "down\n"
    missing = labkit("inspect", "-f", "{{.Nope.Status}}", "web")
    assert missing.code == 1 and 'map has no entry for key "Nope"' in missing.err
    broken = labkit("inspect", "-f", "{{range .Config.Env}}", "web")
    assert broken.code == 64 and "template parsing error" in broken.err, "Docker's inspect: EX_USAGE"


# ---------------------------------------------------------------- diff, logs, exec


def test_diff_lines(labkit) -> None:
    """diff prints C/A/D and the path, one per line."""
    assert labkit("diff", "web").out == "C /app\nA /app/server.log\nD /tmp/old\n"


def test_logs_split_streams_and_pass_options(labkit, engine) -> None:
    """logs writes stdout and stderr apart; -f, -t and --tail reach the engine; -t prefixes times."""
    r = labkit("logs", "web")
    assert (r.out, r.err) == ("hello\n", "oops\n")
    r = labkit("logs", "-f", "-t", "--tail", "5", "web")
    assert r.out == "2024-05-01T12:00:00.5Z hello\n"
    assert engine.called("logs")[-1][1] == {"follow": True, "tail": 5, "timestamps": True}
    labkit("logs", "--tail", "all", "web")
    assert engine.called("logs")[-1][1]["tail"] is None
    assert labkit("logs", "--tail", "many", "web").code == 125


def test_exec_passes_command_and_returns_its_code(labkit, engine) -> None:
    """exec hands the command, env and workdir over, copies output, and exits with the code."""
    r = labkit("exec", "-e", "X=1", "-w", "/tmp", "web", "ls", "-la", "/")
    assert r.code == 3
    assert r.out == "from exec\n"
    ((args, kwargs),) = engine.called("exec")
    assert args == ("web", ["ls", "-la", "/"])
    assert (kwargs["env"], kwargs["workdir"], kwargs["detach"]) == (["X=1"], "/tmp", False)
    assert labkit("exec", "web").code == 1


# ---------------------------------------------------------------- images, build, volumes


def test_images_table(labkit) -> None:
    """images lists one row per tag with REPOSITORY TAG IMAGE ID CREATED SIZE; untagged is <none>."""
    lines = labkit("images").out.splitlines()
    assert lines[0] == "REPOSITORY           TAG       IMAGE ID       CREATED         SIZE"
    # the fake image was made 2 seconds before the command ran; a second may tick by in between
    assert lines[1].replace("3 seconds", "2 seconds") == "frontend             1.0       3dc993222c34   2 seconds ago   12.3MB"
    assert lines[2].replace("3 seconds", "2 seconds") == "localhost:5000/app   v2        3dc993222c34   2 seconds ago   12.3MB"
    assert lines[3] == "<none>               <none>    ffffffffffff   2 hours ago     999B"
    assert labkit("images", "-q").out == "3dc993222c34\n3dc993222c34\nffffffffffff\n"


def test_build_passes_tag_file_and_prints_steps(labkit, engine) -> None:
    """build hands DIR, -t and -f over, shows each step and the built id once; -q prints only the full id;
    without -t the image is built untagged, as Docker's is."""
    r = labkit("build", "-t", "app:1", "-f", "Labfile.dev", "ctx")
    assert r.code == 0
    assert r.out == "Step 1/1 : FROM busybox\nSuccessfully built 3dc993222c34\nSuccessfully tagged app:1\n"
    assert engine.called("build") == [(("ctx", "app:1"), {"file": "Labfile.dev"})]
    assert labkit("build", "-q", "-t", "app:1", "ctx").out == IMG_ID + "\n"
    r = labkit("build", "ctx")
    assert r.code == 0 and "Successfully tagged" not in r.out and engine.called("build")[-1][0] == ("ctx", None)


def test_build_failure_is_printed_plainly(labkit, engine) -> None:
    """A failed build step prints Docker's sentence with rc 1."""
    engine.fail["build"] = BuildFailed("The command '/bin/sh -c false' returned a non-zero code: 1")
    r = labkit("build", "-t", "x:1", ".")
    assert (r.code, r.err) == (1, "The command '/bin/sh -c false' returned a non-zero code: 1\n")


def test_volume_commands(labkit, engine) -> None:
    """volume create/ls/rm/inspect print Docker's shapes."""
    assert labkit("volume", "create", "data").out == "data\n"
    assert labkit("volume", "ls").out == "DRIVER    VOLUME NAME\nlocal     data\nlocal     cache\n"
    assert labkit("volume", "ls", "-q").out == "data\ncache\n"
    r = labkit("volume", "rm", "data", "ghost")
    assert (r.code, r.out) == (1, "data\n")
    assert r.err.startswith("Error response from daemon: get ghost: no such volume")
    assert json.loads(labkit("volume", "inspect", "data").out)[0]["Name"] == "data"
    r = labkit("volume", "inspect", "ghost")
    assert (r.code, r.out) == (1, "[]\n")
    r = labkit("volume")  # Docker's group help goes to stderr, exit 0
    assert (r.code, r.out) == (0, "") and "usage: labkit volume" in r.err


# ---------------------------------------------------------------- doctor, version, info, globals


def test_doctor_version_info(labkit) -> None:
    """doctor, version and info print the engine's answers in plain lines."""
    doctor = labkit("doctor")
    assert doctor.code == 0
    assert "backend: sim (asked for)" in doctor.out and "[NO ] cgroup v2" in doctor.out
    version = labkit("version").out
    assert "Client:\n Version:" in version
    assert "  API version:      1.50 (minimum version 1.24)" in version
    info = labkit("info").out
    assert " Containers: 2\n  Running: 1\n" in info and " Total Memory: 7.763GiB" in info
    assert " Security Options:\n  seccomp\n   Profile: builtin\n  cgroupns" in info


def test_global_options_and_environment_reach_the_factory(labkit, monkeypatch) -> None:
    """--backend/--root (or LABKIT_BACKEND/LABKIT_ROOT) are what the engine is built with."""
    labkit("--backend", "sim", "--root", "/tmp/labkit-x", "ps")
    assert labkit.factory_args[-1] == {"backend": "sim", "root": "/tmp/labkit-x"}
    monkeypatch.setenv("LABKIT_BACKEND", "linux")
    monkeypatch.setenv("LABKIT_ROOT", "/tmp/labkit-y")
    labkit("ps")
    assert labkit.factory_args[-1] == {"backend": "linux", "root": "/tmp/labkit-y"}


def test_help_and_usage(labkit) -> None:
    """--help prints usage with rc 0 and builds no engine; a bad command is a one-line usage error, rc 1 as Docker's."""
    r = labkit("--help")
    assert r.code == 0 and "usage: labkit" in r.out
    assert labkit.factory_args == []
    r = labkit("run", "--help")
    assert r.code == 0 and "--hostname" in r.out
    r = labkit("frobnicate")
    assert r.code == 1 and len(r.err.splitlines()) == 1 and r.err.startswith("labkit: ")
    assert labkit("run").code == 1
    assert labkit().code == 0


def test_host_unsupported_from_the_factory_is_one_line(engine) -> None:
    """When no backend can run, the user gets one labkit: line saying what to try, rc 1."""
    err = io.StringIO()

    def factory(**_: Any) -> Any:
        raise HostUnsupported(
            "the linux backend needs root (to create namespaces)", "run with sudo, or use --backend sim"
        )

    code = cli.main(["ps"], engine_factory=factory, stdout=io.StringIO(), stderr=err)
    assert code == 1
    assert (
        err.getvalue()
        == "labkit: the linux backend needs root (to create namespaces). run with sudo, or use --backend sim\n"
    )


@pytest.mark.parametrize(("euid", "rootless", "advice"), [
    (1000, "unprivileged user namespaces are off", "the linux backend needs root: run with sudo, or use --backend sim"),
    (1000, None, "the linux backend needs root: run with sudo; without root this host runs real containers rootless "
                 "(labkit --backend rootless), or use --backend sim"),
    (0, None, "labkit runs as root already, so sudo will not help: 'labkit doctor' shows what this host allows"),
])
def test_permission_error_advice_is_true_for_the_host(labkit, engine, monkeypatch, euid, rootless, advice) -> None:
    """A bare PermissionError becomes one line whose advice holds here: sudo for a user (and rootless containers
    where this host runs them, else the simulator); never sudo for root, whom the kernel refused already."""
    import labkit.backends as backends

    monkeypatch.setattr(cli.os, "geteuid", lambda: euid)
    asked: list[bool] = []

    def linux_problem(rootless: bool = False) -> str | None:
        asked.append(rootless)
        return problem

    problem = rootless
    monkeypatch.setattr(backends, "linux_problem", linux_problem)
    engine.fail["ps"] = PermissionError(13, "Permission denied", "/var/lib/labkit")
    r = labkit("ps")
    assert r.code == 1
    assert r.err == f"labkit: Permission denied: /var/lib/labkit; {advice}\n"
    assert asked == ([] if euid == 0 else [True]), "a user's advice asks whether rootless containers run here"


def test_keyboard_interrupt_is_130(labkit, engine) -> None:
    """Ctrl-C ends the command with rc 130 and no traceback."""
    engine.fail["logs"] = KeyboardInterrupt()  # type: ignore[assignment]
    r = labkit("logs", "-f", "web")
    assert r.code == 130 and "Traceback" not in r.err


BAD_INPUTS = [
    ["run"],
    ["run", "-m", "x", "i"],
    ["run", "nosuch"],
    ["run", "--name", "!!", "busybox"],
    ["create"],
    ["create", "nosuch"],
    ["start"],
    ["start", "ghost"],
    ["start", "-a", "ghost"],
    ["stop", "ghost"],
    ["stop", "-t", "x", "web"],
    ["restart", "ghost"],
    ["kill", "ghost"],
    ["pause", "db"],
    ["unpause", "ghost"],
    ["rm", "ghost"],
    ["ps", "-n", "x"],
    ["ps", "-f", "bogus"],
    ["ps", "-f", "status=nap"],
    ["ps", "--format", "{{"],
    ["ps", "--format", "{{.X}}"],
    ["ps", "--format", "{{nofunc .ID}}"],
    ["inspect"],
    ["inspect", "ghost"],
    ["inspect", "-f", "{{.Nope}}", "web"],
    ["inspect", "-f", "{{end}}", "web"],
    ["inspect", "--type", "cat", "x"],
    ["diff", "ghost"],
    ["logs", "ghost"],
    ["logs", "--tail", "x", "web"],
    ["exec"],
    ["exec", "web"],
    ["exec", "ghost", "ls"],
    ["wait", "ghost"],
    ["images", "--format", "{{.Nope}}"],
    ["build"],
    ["build", "-t", "x"],
    ["volume", "rm", "ghost"],
    ["volume", "inspect", "ghost"],
    ["volume", "frob"],
    ["frob"],
    ["--backend", "mars", "ps"],
    ["doctor", "extra"],
    ["version", "--bogus"],
    ["info", "x"],
]


@pytest.mark.parametrize(
    "failure",
    [
        None,
        NoSuchContainer("x"),
        InvalidName("!"),
        OSError(5, "I/O error"),
        RuntimeError("bug"),
        HostUnsupported("no root", "use sudo"),
    ],
)
def test_no_command_ever_prints_a_traceback(engine, failure) -> None:
    """Every command, given bad input or a failing engine, ends with a code and no traceback."""
    if failure is not None:
        for name in (
            "create",
            "start",
            "stop",
            "ps",
            "inspect",
            "logs",
            "exec",
            "images",
            "build",
            "volume_rm",
            "volume_inspect",
            "diff",
            "wait",
            "kill",
            "pause",
            "unpause",
            "rm",
            "restart",
            "doctor",
            "version",
            "info",
            "volume_create",
            "volume_ls",
        ):
            engine.fail[name] = failure
    good = [
        ["ps"],
        ["ps", "-a"],
        ["images"],
        ["doctor"],
        ["version"],
        ["info"],
        ["volume", "ls"],
        ["volume", "create", "v"],
        ["logs", "web"],
        ["exec", "web", "ls"],
        ["run", "busybox"],
    ]
    for argv in BAD_INPUTS + good:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(argv, engine_factory=lambda **_: engine, stdout=out, stderr=err)
        assert isinstance(code, int), argv
        assert "Traceback" not in err.getvalue() + out.getvalue(), argv
        if argv in BAD_INPUTS:
            assert code != 0, argv
            assert err.getvalue().strip(), argv


# ---------------------------------------------------------------- pure helpers


def test_tabwrite_minwidth_padding_and_last_column() -> None:
    """Columns are max(10, widest+3) wide; the last cell is not padded."""
    assert formatters.tabwrite(["A\tB\tC", "longer-than-ten\tx\ty"]) == (
        "A                 B         C\nlonger-than-ten   x         y\n"
    )


def test_ellipsis_cuts_to_width_with_one_char() -> None:
    """Text over the width is cut to width-1 characters plus …; shorter text is kept."""
    assert formatters.ellipsis("a" * 20, 20) == "a" * 20
    assert formatters.ellipsis("a" * 21, 20) == "a" * 19 + "…"
    assert formatters.ellipsis("漢字漢字", 5) == "漢字…"


def test_display_ports_groups_ranges_and_mappings() -> None:
    """Same-number ports group into ranges; different numbers list as mappings; exposed-only show port/proto."""
    ports = [
        {"IP": "0.0.0.0", "PrivatePort": 8001, "PublicPort": 8001, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 8000, "PublicPort": 8000, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 3000, "Type": "tcp"},
    ]
    assert formatters.display_ports(ports) == "53/udp, 0.0.0.0:8000-8001->8000-8001/tcp, 127.0.0.1:3000->80/tcp"
    assert formatters.display_ports([]) == ""


def test_go_string_prints_values_as_go_templates_do() -> None:
    """Go's %v: true/false, <nil>, [a b], map[k:v], floats with exponent from 1e+06."""
    assert [templates.go_string(v) for v in (True, None, ["a", 1], {"b": 1, "a": [2]}, 1.5, 1e6, 123456.0, 0.0001)] == [
        "true",
        "<nil>",
        "[a 1]",
        "map[a:[2] b:1]",
        "1.5",
        "1e+06",
        "123456",
        "0.0001",
    ]
    assert templates.go_string(0.00001) == "1e-05"


def test_help_imports_nothing_heavy() -> None:
    """``python -m labkit --help`` answers without importing what only a container or a picture needs.

    How fast is measured in ``bench/`` (its import-time report), never timed here: what must hold is that
    the heavy modules stay off the command line's path.
    """
    done = subprocess.run([sys.executable, "-m", "labkit", "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "usage: labkit" in done.stdout
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, labkit.cli; print(sorted(m for m in ('pyroute2','matplotlib','ipywidgets') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert heavy.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [["run", "-it", "busybox", "sh"], ["exec", "-it", "web", "sh"]])
def test_it_without_a_terminal_to_read_is_refused_as_docker_does(labkit, engine, argv, monkeypatch) -> None:
    """-it whose stdin is no terminal: Docker's one line, exit 1; nothing is created or run."""
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    r = labkit(*argv)
    assert (r.code, r.err) == (1, "the input device is not a TTY\n")
    assert not engine.called("create") and not engine.called("exec")


def test_stdin_without_a_terminal_is_handed_to_pid1(labkit, engine) -> None:
    """``run -i`` without -t: the engine is asked for open_stdin, the attached streams Docker records, and a start
    with the caller's stdin (fd 0); ``run -di`` starts it without (its stdin stays open, unwritten)."""
    labkit("run", "-i", "busybox", "cat")
    (_, kw), = engine.called("create")
    assert kw["open_stdin"] is True and kw["attach"] == ("stdout", "stderr", "stdin")
    assert engine.called("start")[0][1] == {"stdin": 0}
    engine.calls.clear()
    labkit("run", "-di", "busybox", "sh")
    (_, kw), = engine.called("create")
    assert kw["open_stdin"] is True and "attach" not in kw
    assert engine.called("start")[0][1] == {}


def test_create_t_asks_for_a_terminal(labkit, engine) -> None:
    """``create -it`` hands the engine tty and open_stdin; ``create`` alone neither."""
    labkit("create", "-it", "busybox", "sh")
    labkit("create", "busybox", "sh")
    first, second = [kw for name, _, kw in engine.calls if name == "create"]
    assert (first.get("tty"), first.get("open_stdin"), second.get("tty"), second.get("open_stdin")) == \
        (True, True, None, None)


def test_doctor_works_where_no_backend_can_run() -> None:
    """doctor still lists the host checks when connecting fails, says why, and exits 1."""
    out, err = io.StringIO(), io.StringIO()

    def factory(**_: Any) -> Any:
        raise HostUnsupported("no backend can run here: it needs root", "Run as root (sudo)")

    code = cli.main(["doctor"], engine_factory=factory, stdout=out, stderr=err)
    assert code == 1
    assert out.getvalue().startswith("backend: none. no backend can run here: it needs root. Run as root (sudo)\n")
    assert "[ok ] kernel" in out.getvalue() or "[NO ] kernel" in out.getvalue()


def test_bad_name_regexp_filter_is_an_error(labkit) -> None:
    """A name filter that is not a regexp is reported, not crashed on."""
    r = labkit("ps", "-f", "name=[")
    assert r.code == 1 and r.err.startswith("Error response from daemon: invalid filter 'name=['")


def test_ctrl_c_during_attached_run_forwards_sigint(labkit, engine) -> None:
    """Ctrl-C while attached sends SIGINT to the container, says so in one line, and exits 130."""
    engine.fail["wait"] = KeyboardInterrupt()  # type: ignore[assignment]
    r = labkit("run", "busybox", "sleep", "100")
    assert r.code == 130
    assert engine.called("kill") == [(("c" * 64,), {"signal": "INT"})]
    assert r.err.splitlines()[-1].startswith("labkit: sent SIGINT to cccccccccccc")


@pytest.mark.parametrize("args, message", [
    (("trace",), "trace needs a command to run"),
    (("service", "scale", "web=many"), "invalid scale specifier 'web=many'"),
])
def test_usage_mistakes_of_trace_and_scale_are_one_line(labkit, engine, args, message) -> None:
    """A missing command or a bad scale is one line and exit 1, as Docker's argument errors."""
    r = labkit(*args)
    assert r.code == 1
    assert r.err.count("\n") == 1 and message in r.err and "Traceback" not in r.err


def test_system_reset_asks_first_then_removes_all_that_labkit_made(tmp_path, monkeypatch) -> None:
    """``system reset`` removes nothing without a yes; with -f every container (a running one too), volume and image
    goes with the state root's labkit directories, and a file labkit did not make stays (and keeps the root)."""
    root = tmp_path / "state"

    def run(*argv: str, answer: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(answer))
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(["--backend", "sim", "--root", str(root), *argv], stdout=out, stderr=err)
        return Result(code, out.getvalue(), err.getvalue(), None)

    assert run("run", "-d", "--name", "up", "busybox", "sleep", "100").code == 0
    assert run("run", "--name", "done", "-v", "data:/data", "busybox", "sh", "-c", "echo x > /data/f").code == 0
    asked = run("system", "reset", answer="n\n")
    assert asked.code == 0 and asked.out.endswith("Are you sure you want to continue? [y/N] "), asked.out
    assert {"up", "done"} <= set(run("ps", "-a", "--format", "{{.Names}}").out.split())
    (root / "notes.txt").write_text("mine")
    done = run("system", "reset", "-f")
    assert done.code == 0, done.err
    assert done.out == (f"Removed 0 services, 2 containers, 1 volume, 0 networks, 1 image and labkit's state in {root}, "
                        "which stays for what labkit did not make there: notes.txt\n")
    assert os.listdir(root) == ["notes.txt"]
