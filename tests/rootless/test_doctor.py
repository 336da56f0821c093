"""``labkit doctor`` for a user without root: every line speaks for the rootless backend, and what it says then holds.

Run as the session's unprivileged user (``tests/learner.py``), with the single-id
map and no delegated cgroup: doctor's ``rootless cgroups`` line says limits and
the freezer are missing, so no other line may say they hold; its ``rootless
network`` line says user-defined networks are refused, and ``network create`` and
``run --network`` then refuse them with nothing made, in the library and the CLI.
"""

from __future__ import annotations

import pytest

from tests.learner import run_as

pytestmark = pytest.mark.root

SCENARIO = """
import json, os, subprocess, sys
import labkit
from labkit.networks import Networks

lab = labkit.connect()
lines = {c["check"]: [c["ok"], c["detail"], c["meaning"]] for c in lab.doctor()}
got = {"backend": lab.backend_name, "lines": lines}
try:
    lab.network_create("mynet")
    got["create"] = "made"
except labkit.LabkitError as e:
    got["create"] = [type(e).__name__, e.one_line()]
got["networks"] = sorted(n["Name"] for n in lab.network_ls())
for net in ("mynet", "old"):
    if net == "old":  # a record left in the state root (made by an older labkit): refused all the same
        Networks(lab.store).create("old", None)
    try:
        lab.run("busybox", ["true"], network=net, auto_remove=True)
        got[net] = "ran"
    except labkit.LabkitError as e:
        got[net] = type(e).__name__
env = {**os.environ, "LABKIT_NO_SERVER": "1"}
cli = [sys.executable, "-m", "labkit"]
create = subprocess.run(cli + ["network", "create", "clinet"], capture_output=True, text=True, env=env)
run = subprocess.run(cli + ["run", "--network", "old", "busybox", "true"], capture_output=True, text=True, env=env)
got["cli create"] = [create.returncode, create.stdout, create.stderr]
got["cli run"] = [run.returncode, run.stderr]
got["cli networks"] = sorted(n["Name"] for n in lab.network_ls())
got["containers"] = list(lab.store.container_ids())
for cid in got["containers"]:  # left by a refused run, if any: removed so the check below is what fails
    lab.rm(cid, force=True)
for net in set(got["cli networks"]) - {"bridge", "host", "none"}:
    lab.network_rm(net)
print(json.dumps(got))
"""


def test_doctor_lines_agree_with_each_other_and_with_networks_for_a_user(learner):
    """As a user without a delegated cgroup, only the rootless lines speak of limits, pause and networks, and
    ``network create`` / ``run --network`` refuse a user network as the doctor said, leaving no network or container."""
    got = run_as(learner, SCENARIO, timeout=180)
    lines = got["lines"]
    assert got["backend"] == "rootless"
    assert not lines["rootless cgroups"][0] and "not enforced" in lines["rootless cgroups"][2]
    for check, (_, _, meaning) in lines.items():  # nothing contradicts "rootless cgroups ✗"
        if check != "rootless cgroups":
            assert "is enforced" not in meaning and "pause uses" not in meaning, (check, meaning)
    assert "subnets" not in lines and "bridge guards" not in lines  # no bridge is made on the host rootless
    assert "'network create' is refused" in lines["rootless network"][2]

    kind, sentence = got["create"]
    assert kind == "HostUnsupported"
    assert sentence.startswith("network create mynet: a user-defined network needs root, because each rootless")
    assert "Use the default network" in sentence
    assert got["networks"] == ["bridge", "host", "none"]
    assert got["mynet"] == "NoSuchNetwork" and got["old"] == "HostUnsupported"

    code, out, err = got["cli create"]
    assert (code, out) == (1, "")  # a daemon's refusal: exit 1, no id printed
    assert err.startswith("labkit: network create clinet: a user-defined network needs root") and err.count("\n") == 1
    code, err = got["cli run"]
    assert code == 125 and "network old: a user-defined network needs root" in err
    assert got["cli networks"] == ["bridge", "host", "none", "old"]
    assert got["containers"] == []
