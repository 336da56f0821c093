"""``--format`` of version, info, network ls and volume ls, ``network inspect -f``, ``ps -s``, ``inspect --size``
and ``logs --since/--until``, typed at the command line on the simulator (every backend shares these paths)."""

from __future__ import annotations

import io
import json
import re

import pytest

from labkit import cli


@pytest.fixture
def lk(tmp_path):
    """``labkit --backend sim --root TMP ARGS…`` in this process: (exit code, stdout, stderr)."""
    def run(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(["--backend", "sim", "--root", str(tmp_path / "root"), *args], stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    return run


def test_version_and_info_format(lk):
    """version's dot is {Client, Server}, info's the engine's /info with ClientInfo; json prints it whole; a
    template that does not parse exits 64, as Docker's does."""
    code, out, _ = lk("version", "--format", "{{.Server.ApiVersion}} {{.Client.Platform.Name}}")
    assert (code, out) == (0, "1.51 labkit\n")
    code, out, _ = lk("version", "-f", "json")
    assert code == 0 and set(json.loads(out)) == {"Client", "Server"}
    code, out, _ = lk("info", "--format", "{{.Containers}} {{.Driver}} {{.ClientInfo.Context}}")
    assert (code, out) == (0, "0 overlay2 default\n")
    code, out, err = lk("info", "--format", "{{.Containers")
    assert code == 64 and out == "" and "template parsing error" in err


def test_network_and_volume_ls_format(lk):
    """network ls and volume ls take Docker's fields, 'table …' and 'json'; the defaults are Docker's tables."""
    code, out, _ = lk("network", "ls", "--format", "{{.Name}}/{{.Driver}}/{{.Scope}}")
    assert (code, sorted(out.splitlines())) == (0, ["bridge/bridge/local", "host/host/local", "none/null/local"])
    code, out, _ = lk("network", "ls")
    assert out.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    code, out, _ = lk("network", "ls", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["Name"] for r in rows} == {"bridge", "host", "none"} and all(len(r["ID"]) == 12 for r in rows)
    lk("volume", "create", "data")
    code, out, _ = lk("volume", "ls", "--format", "table {{.Name}}\t{{.Driver}}")
    assert out.splitlines() == ["VOLUME NAME   DRIVER", "data          local"]
    code, out, _ = lk("volume", "ls", "--format", "{{.Name}} {{.Mountpoint}}")
    assert re.fullmatch(r"data /\S+/volumes/data/_data\n", out)


def test_network_inspect_format(lk):
    code, out, _ = lk("network", "inspect", "-f", "{{.Name}} {{.Driver}}", "bridge", "none")
    assert (code, out) == (0, "bridge bridge\nnone null\n")
    code, out, err = lk("network", "inspect", "-f", "{{.Name}}", "bridge", "nosuch")
    assert code == 1 and out == "bridge\n" and "network nosuch not found" in err
    code, _, err = lk("network", "inspect", "-f", "{{.Name", "bridge")
    assert code == 64 and "template parsing error" in err


def test_ps_size_and_inspect_size(lk):
    """ps -s adds SIZE: the writable layer's, then '(virtual …)'; inspect --size adds SizeRw and SizeRootFs."""
    lk("run", "-d", "--name", "sized", "busybox", "sh", "-c", "echo 123456789 > /f; sleep 300")
    code, out, _ = lk("ps", "-s")
    header, row = out.splitlines()
    assert header.split()[-1] == "SIZE" and re.search(r"\d+B \(virtual [\d.]+[kM]?B\)$", row), row
    code, out, _ = lk("inspect", "--size", "-f", "{{.SizeRw}}", "sized")
    assert code == 0 and int(out) >= 10
    code, out, _ = lk("inspect", "sized")
    assert "SizeRw" not in json.loads(out)[0]


def test_logs_since_until_and_bad_times(lk):
    lk("run", "--name", "talker", "busybox", "echo", "hello")
    code, out, _ = lk("logs", "--since", "0", "--until", "2999-01-01T00:00:00Z", "talker")
    assert (code, out) == (0, "hello\n")
    code, out, _ = lk("logs", "--until", "2000-01-01", "talker")
    assert (code, out) == (0, "")
    code, out, err = lk("logs", "--since", "yesterday", "talker")
    assert code == 1 and err == 'invalid value for "since": failed to parse value as time or duration: "yesterday"\n'


def test_platform_of_this_machine_runs_and_another_is_refused(lk):
    import platform

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    code, out, _ = lk("run", "--rm", "--platform", f"linux/{arch}", "busybox", "echo", "ok")
    assert (code, out) == (0, "ok\n")
    other = "arm64" if arch != "arm64" else "amd64"
    code, _, err = lk("run", "--rm", "--platform", f"linux/{other}", "busybox", "true")
    assert code == 125 and f"wanted linux/{other}, actual: linux/{arch}" in err
    code, out, _ = lk("ps", "-a", "-q")
    assert out == ""
