"""Bad input on the real backend, typed at the `labkit` command: refused as Docker refuses it, and nothing made.

Each row is one command a learner might mistype. It runs through ``bin/labkit`` and the resident
engine (one server for the whole table, as in a terminal) on a state root of this module's own,
beside a running, a created, an exited, a paused and a publishing container, a network and a volume.
Each must:

* exit with Docker's code: 125 when ``docker run`` (or ``docker create`` for a flag it cannot read)
  refuses, 1 for a refusal "from the daemon" and for a missing argument, 64 when ``inspect``'s
  template does not parse — measured with the docker 28.2.2 client; where Docker accepts
  something only to fail later (a mount on ``/proc``, a pids limit the kernel refuses, a hostname
  longer than ``sethostname(2)`` takes), labkit refuses it up front with ``run``'s code;
* say so in one line (Docker's own extra lines are allowed where labkit prints them too:
  ``Unable to find image … locally`` before, ``Run 'labkit run --help' …`` after a ``run``/``create``
  error (and the usage synopsis before it, after a flag's value the client refuses),
  ``Error: failed to start containers: …`` after a ``start`` error);
* leave the state root as it was: no container, overlay, volume, network, image, name or mount
  more, none less, every existing container in the status it had, and no bind source made.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import state_root

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parent.parent.parent
LABKIT = [sys.executable, "-S", "-E", str(REPO / "bin" / "labkit")]

R = ["run", "--rm"]
C = ["create"]
BB = ["busybox", "true"]

#: Labfiles that must not build: directory name → text.
LABFILES = {
    "empty": "",
    "unknown": "FROM busybox\nFROBNICATE x\n",
    "nofrom": "RUN true\n",
    "fromnosuch": "FROM nosuch:1\n",
    "copymissing": "FROM busybox\nCOPY nothere /x\n",
    "copyout": "FROM busybox\nCOPY ../etc/passwd /x\n",
    "runfalse": "FROM busybox\nRUN false\n",
    "envempty": "FROM busybox\nENV\n",
    "envnoname": "FROM busybox\nENV =x\n",
    "exposebad": "FROM busybox\nEXPOSE abc\n",
    "fromempty": "FROM\n",
    "fromupper": "FROM BusyBox\n",
    "workdirempty": "FROM busybox\nWORKDIR\n",
    "copyone": "FROM busybox\nCOPY onlyone\n",
    "runempty": "FROM busybox\nRUN\n",
    "ok": "FROM busybox\nRUN true\n",
    # busybox's layer and 499 more: one more than overlayfs stacks under a container (OVL_MAX_STACK, 500).
    "toodeep": "FROM busybox\n" + "".join(f"COPY Labfile /l{i}\n" for i in range(499)),
}

# (case, argv, Docker's exit code, words the one line holds). ``{…}`` are filled from the world fixture.
CASES = [
    # container names
    ("name-underscore", C + ["--name", "_bad"] + BB, 1, "Invalid container name (_bad)"),
    ("name-one-char", C + ["--name", "x"] + BB, 1, "Invalid container name (x)"),
    ("name-space", C + ["--name", "a b"] + BB, 1, "Invalid container name (a b)"),
    ("name-slash", C + ["--name", "a/b"] + BB, 1, "Invalid container name (a/b)"),
    ("name-colon", C + ["--name", "a:b"] + BB, 1, "Invalid container name (a:b)"),
    ("name-dot-first", C + ["--name", ".ab"] + BB, 1, "Invalid container name (.ab)"),
    ("name-dash-first", C + ["--name=-ab"] + BB, 1, "Invalid container name (-ab)"),
    ("name-unicode", C + ["--name", "café"] + BB, 1, "Invalid container name (café)"),
    ("name-taken", C + ["--name", "web"] + BB, 1, 'The container name "/web" is already in use'),
    ("name-taken-slash", C + ["--name", "/web"] + BB, 1, 'The container name "/web" is already in use'),
    ("name-taken-run", R + ["--name", "made"] + BB, 125, 'The container name "/made" is already in use'),
    ("name-taken-run-detached", ["run", "-d", "--name", "pz"] + BB, 125, 'The container name "/pz" is already in use'),
    # image references
    ("image-missing", C + ["nosuch"], 1, "No such image: nosuch:latest"),
    ("image-missing-tag", C + ["busybox:nosuch"], 1, "No such image: busybox:nosuch"),
    ("image-upper", C + ["BusyBox"], 1, "repository name (BusyBox) must be lowercase"),
    ("image-empty-tag", C + ["busybox:"], 1, "invalid reference format"),
    ("image-double-colon", C + ["busybox::1"], 1, "invalid reference format"),
    ("image-bad-digest", C + ["busybox@sha256:zzz"], 1, "invalid reference format"),
    ("image-only-tag", C + [":latest"], 1, "invalid reference format"),
    ("image-space", C + ["busy box"], 1, "invalid reference format"),
    ("image-long-tag", C + ["busybox:" + "x" * 129], 1, "invalid reference format"),
    ("image-bad-tag-char", C + ["busybox:a/b"], 1, "invalid reference format"),
    ("image-empty", C + [""], 1, "invalid reference format"),
    ("image-trailing-slash", C + ["busybox/"], 1, "invalid reference format"),
    ("run-image-missing", R + ["nosuch:1.0"], 125, "No such image: nosuch:1.0"),
    ("run-image-upper", R + ["Busybox"], 125, "must be lowercase"),
    ("run-no-image", ["run"], 1, "the following arguments are required: IMAGE"),
    ("create-no-image", ["create"], 1, "the following arguments are required: IMAGE"),
    # published ports
    ("port-too-big", R + ["-p", "99999:1"] + BB, 125, 'invalid port specification: "99999:1"'),
    ("port-four-parts", R + ["-p", "1:2:3:4"] + BB, 125, "invalid IP address: 1:2"),
    ("port-bad-ip", R + ["-p", "999.1.1.1:80:80"] + BB, 125, "invalid IP address: 999.1.1.1"),
    ("port-letters", R + ["-p", "abc"] + BB, 125, 'invalid port specification: "abc"'),
    ("port-bad-proto", R + ["-p", "80/xyz"] + BB, 125, 'invalid port specification: "80/xyz"'),
    ("port-two-protos", R + ["-p", "80:80/tcp/udp"] + BB, 125, "invalid port specification"),
    ("port-empty-ctr", R + ["-p", "80:"] + BB, 125, 'invalid port specification: "80:"'),
    ("port-negative", R + ["-p=-1:80"] + BB, 125, 'invalid port specification: "-1:80"'),
    ("port-ctr-too-big", R + ["-p", "80:70000"] + BB, 125, 'invalid port specification: "80:70000"'),
    ("port-ctr-zero", R + ["-p", "80:0"] + BB, 125, 'invalid port specification: "80:0"'),
    ("port-range-mismatch", R + ["-p", "1000-1001:3000-3002"] + BB, 125, "invalid port specification"),
    ("port-range-backwards", R + ["-p", "5-1:80"] + BB, 125, "invalid port specification"),
    ("port-empty", R + ["-p", ""] + BB, 125, 'invalid port specification: ""'),
    ("port-ipv6-unclosed", R + ["-p", "[::1:80:80"] + BB, 125, "invalid IP address: [::1"),
    ("port-ip-only", R + ["-p", "127.0.0.1::"] + BB, 125, "invalid port specification"),
    ("port-create", C + ["-p", "1:2:3:4"] + BB, 125, "invalid IP address: 1:2"),
    ("port-taken-rm", R + ["-p", "127.0.0.1:{port}:80"] + BB, 125, "{port}"),
    ("port-taken-rm-detached", ["run", "-d", "--rm", "-p", "127.0.0.1:{port}:80"] + BB, 125, "{port}"),
    ("port-elsewhere-rm", R + ["-p", "192.0.2.1:8080:80"] + BB, 125, "192.0.2.1"),
    # memory
    ("memory-too-small", R + ["--memory", "1m"] + BB, 125, "Minimum memory limit allowed is 6MB"),
    ("memory-letters", R + ["--memory", "abc"] + BB, 125, "invalid size: 'abc'"),
    ("memory-negative", R + ["--memory=-5m"] + BB, 125, "invalid size: '-5m'"),
    ("memory-int64-max", R + ["--memory", "9223372036854775807"] + BB, 125, "--memory 9223372036854775807 is more than"),
    ("memory-overflow", R + ["--memory", "99999999999999999999g"] + BB, 125, "more than a cgroup can hold"),
    ("memory-bad-unit", R + ["--memory", "1x"] + BB, 125, "invalid size: '1x'"),
    ("memory-empty", R + ["--memory", ""] + BB, 125, "invalid size: ''"),
    ("memory-nan", R + ["--memory", "nan"] + BB, 125, "invalid size: 'nan'"),
    ("memory-create", C + ["--memory", "1m"] + BB, 1, "Minimum memory limit allowed is 6MB"),
    # memory plus swap
    ("swap-below-memory", R + ["--memory", "20m", "--memory-swap", "10m"] + BB, 125,
     "Minimum memoryswap limit should be larger than memory limit"),
    ("swap-without-memory", R + ["--memory-swap", "20m"] + BB, 125,
     "You should always set the Memory limit when using Memoryswap limit"),
    ("swap-letters", R + ["--memory", "20m", "--memory-swap", "abc"] + BB, 125, "invalid size: 'abc'"),
    ("swap-minus-two", R + ["--memory", "20m", "--memory-swap=-2"] + BB, 125, "invalid size: '-2'"),
    ("swap-overflow", R + ["--memory", "20m", "--memory-swap", "99999999999999999999g"] + BB, 125,
     "more than a cgroup can hold"),
    ("swap-below-memory-create", C + ["--memory", "20m", "--memory-swap", "10m"] + BB, 1,
     "Minimum memoryswap limit should be larger than memory limit"),
    # CPUs
    ("cpus-nan", R + ["--cpus", "nan"] + BB, 125, "invalid value 'nan'"),
    ("cpus-inf", R + ["--cpus", "inf"] + BB, 125, "invalid value 'inf'"),
    ("cpus-minus-inf", R + ["--cpus=-inf"] + BB, 125, "invalid value '-inf'"),
    ("cpus-negative", R + ["--cpus=-1"] + BB, 125, "Range of CPUs is from 0.01"),
    ("cpus-too-many", R + ["--cpus", "999"] + BB, 125, "Range of CPUs is from 0.01"),
    ("cpus-letters", R + ["--cpus", "abc"] + BB, 125, "invalid value 'abc'"),
    ("cpus-too-few", R + ["--cpus", "0.001"] + BB, 125, "Range of CPUs is from 0.01"),
    ("cpus-huge-exponent", R + ["--cpus", "1e400"] + BB, 125, "invalid value '1e400'"),
    ("cpus-empty", R + ["--cpus", ""] + BB, 125, "invalid value ''"),
    ("cpus-create", C + ["--cpus", "999"] + BB, 1, "Range of CPUs is from 0.01"),
    # processes
    ("pids-letters", R + ["--pids-limit", "abc"] + BB, 125, "invalid value 'abc'"),
    ("pids-fraction", R + ["--pids-limit", "1.5"] + BB, 125, "invalid value '1.5'"),
    ("pids-overflow", R + ["--pids-limit", "99999999999999999999"] + BB, 125, "out of range"),
    ("pids-empty", R + ["--pids-limit", ""] + BB, 125, "invalid value ''"),
    ("pids-too-many", R + ["--pids-limit", "5000000"] + BB, 125, "PID_MAX_LIMIT"),
    # environment
    ("env-no-name", R + ["-e", "=x"] + BB, 125, "invalid environment variable: =x"),
    ("env-empty", R + ["-e", ""] + BB, 125, "invalid environment variable: "),
    ("env-space-name", R + ["-e", "A B=1"] + BB, 125, "invalid environment variable: A B=1"),
    ("env-create", C + ["-e", "=x"] + BB, 125, "invalid environment variable: =x"),
    ("env-file-missing", R + ["--env-file", "{absent}/env"] + BB, 125, "no such file or directory"),
    ("env-file-dir", R + ["--env-file", "{ctx}"] + BB, 125, "Is a directory"),
    ("env-file-bad-line", R + ["--env-file", "{ctx}/bad.env"] + BB, 125, "invalid environment variable: =bad"),
    ("env-file-create", C + ["--env-file", "{absent}/env"] + BB, 125, "no such file or directory"),
    # labels
    ("label-no-key", R + ["-l", "=x"] + BB, 125, "invalid label '=x': empty name"),
    ("label-empty", R + ["-l", ""] + BB, 125, "invalid label '': empty name"),
    ("label-space-key", R + ["-l", " =x"] + BB, 125, "invalid label ' =x': empty name"),
    ("label-create", C + ["-l", "=x"] + BB, 125, "invalid label '=x': empty name"),
    # working directory and hostname
    ("workdir-relative", R + ["-w", "relative"] + BB, 125, "the working directory 'relative' is invalid"),
    ("workdir-dot", R + ["-w", "./x"] + BB, 125, "the working directory './x' is invalid"),
    ("workdir-dotdot", R + ["-w", "../x"] + BB, 125, "the working directory '../x' is invalid"),
    ("workdir-create", C + ["-w", "relative"] + BB, 1, "the working directory 'relative' is invalid"),
    ("hostname-too-long", R + ["-h", "h" * 65] + BB, 125, "longer than 64 characters"),
    # volumes and mount targets
    ("volume-proc", R + ["-v", "{absent}:/proc"] + BB, 125, "destination /proc is on /proc"),
    ("volume-proc-sys", R + ["-v", "{absent}:/proc/sys"] + BB, 125, "destination /proc/sys is on /proc"),
    ("volume-proc-ro", R + ["-v", "{absent}:/proc/sysrq-trigger:ro"] + BB, 125, "is on /proc"),
    ("volume-named-proc", R + ["-v", "vol1:/proc"] + BB, 125, "destination /proc is on /proc"),
    ("volume-new-named-proc", R + ["-v", "newvol:/proc"] + BB, 125, "destination /proc is on /proc"),
    ("volume-anonymous-proc", R + ["-v", "/proc/sys"] + BB, 125, "is on /proc"),
    ("volume-target-dotdot", R + ["-v", "{absent}:/x/../proc"] + BB, 125, "is on /proc"),
    ("volume-dev", R + ["-v", "{absent}:/dev"] + BB, 125, "would hide the /dev"),
    ("volume-root", R + ["-v", "{absent}:/"] + BB, 125, "invalid volume specification"),
    ("volume-relative-target", R + ["-v", "{absent}:relative"] + BB, 125, "invalid volume specification"),
    ("volume-no-source", R + ["-v", ":/x"] + BB, 125, "invalid volume specification"),
    ("volume-bad-mode", R + ["-v", "{absent}:/x:zz"] + BB, 125, "invalid volume specification"),
    ("volume-too-many-parts", R + ["-v", "{absent}:/x:ro:rw"] + BB, 125, "invalid volume specification"),
    ("volume-bad-name", R + ["-v", "bad/name:/x"] + BB, 125, "invalid volume specification"),
    ("volume-bad-name-char", R + ["-v", "b@d:/x"] + BB, 125, "invalid volume specification"),
    ("volume-duplicate-target", R + ["-v", "{absent}:/x", "-v", "vol1:/x"] + BB, 125, "Duplicate mount point: /x"),
    ("volume-duplicate-normalised", R + ["-v", "vol1:/x", "-v", "{absent}:/x/"] + BB, 125, "Duplicate mount point"),
    ("volume-empty", R + ["-v", ""] + BB, 125, "invalid volume specification"),
    ("volume-no-target", R + ["-v", "{absent}:"] + BB, 125, "invalid volume specification"),
    ("volume-relative-source", R + ["-v", "rel/dir:/x"] + BB, 125, "invalid volume specification"),
    ("volume-create-proc", C + ["-v", "{absent}:/proc"] + BB, 1, "destination /proc is on /proc"),
    # networks
    ("network-missing", R + ["--network", "nosuch"] + BB, 125, "network nosuch not found"),
    ("network-container-missing", R + ["--network", "container:ghost"] + BB, 125, "container:ghost"),
    ("network-empty", R + ["--network", ""] + BB, 125, "no name set for network"),
    ("network-missing-create", C + ["--network", "nosuch"] + BB, 1, "network nosuch not found"),
    ("network-create-bad-subnet", ["network", "create", "--subnet", "300.0.0.0/16", "nbad"], 1,
     "invalid subnet 300.0.0.0/16"),
    ("network-create-bad-prefix", ["network", "create", "--subnet", "10.9.0.0/33", "nbad"], 1,
     "invalid subnet 10.9.0.0/33"),
    ("network-create-taken", ["network", "create", "net1"], 1, "network with name net1 already exists"),
    ("network-create-bad-name", ["network", "create", "bad/name"], 1, "invalid network name 'bad/name'"),
    ("network-create-builtin", ["network", "create", "host"], 1, "host"),
    ("network-create-no-name", ["network", "create"], 1, "the following arguments are required: NAME"),
    ("network-rm-missing", ["network", "rm", "nosuch"], 1, "network nosuch not found"),
    ("network-rm-host", ["network", "rm", "host"], 1, "host is a pre-defined network and cannot be removed"),
    ("network-rm-none", ["network", "rm", "none"], 1, "none is a pre-defined network and cannot be removed"),
    ("network-inspect-missing", ["network", "inspect", "nosuch"], 1, "network nosuch not found"),
    # restart policies
    ("restart-bogus", C + ["--restart", "bogus"] + BB, 1, "invalid restart policy 'bogus'"),
    ("restart-bogus-run", R[:1] + ["--restart", "bogus"] + BB, 125, "invalid restart policy 'bogus'"),
    ("restart-count-letters", C + ["--restart", "on-failure:x"] + BB, 125, "maximum retry count must be an integer"),
    ("restart-always-count", C + ["--restart", "always:3"] + BB, 1,
     "maximum retry count cannot be used with restart policy 'always'"),
    ("restart-negative-count", C + ["--restart", "on-failure:-1"] + BB, 1, "maximum retry count cannot be negative"),
    ("restart-no-count", C + ["--restart", "no:1"] + BB, 1, "restart policy 'no'"),
    ("restart-unless-stopped-count", C + ["--restart", "unless-stopped:1"] + BB, 1, "restart policy 'unless-stopped'"),
    ("restart-with-rm", ["run", "--rm", "--restart", "always"] + BB, 125, "cannot specify both --restart and --rm"),
    ("restart-with-rm-detached", ["run", "-d", "--rm", "--restart", "on-failure"] + BB, 125,
     "cannot specify both --restart and --rm"),
    ("restart-with-rm-create", C + ["--rm", "--restart", "unless-stopped"] + BB, 125,
     "cannot specify both --restart and --rm"),
    # stop signal and timeout given at create
    ("stop-signal-bogus", C + ["--stop-signal", "FOO"] + BB, 1, "Invalid signal: FOO"),
    ("stop-signal-zero", C + ["--stop-signal", "0"] + BB, 1, "Invalid signal: 0"),
    ("stop-signal-too-big", C + ["--stop-signal", "99"] + BB, 1, "does not support signal 99"),
    ("stop-signal-run", R + ["--stop-signal", "SIGNOPE"] + BB, 125, "Invalid signal: SIGNOPE"),
    ("stop-timeout-letters", C + ["--stop-timeout", "abc"] + BB, 125, "invalid value 'abc'"),
    # flags and arguments
    ("run-unknown-flag", ["run", "--bogus", "busybox"], 125, "unknown flag: --bogus"),
    ("create-unknown-flag", ["create", "--bogus", "busybox"], 125, "unknown flag: --bogus"),
    ("ps-unknown-flag", ["ps", "--bogus"], 125, "unknown flag: --bogus"),
    ("kill-unknown-flag", ["kill", "--bogus", "web"], 125, "unknown flag: --bogus"),
    ("ps-extra-argument", ["ps", "extra"], 1, "unexpected argument: extra"),
    ("unknown-command", ["frobnicate"], 1, "invalid choice: 'frobnicate'"),
    ("run-interactive-no-terminal", ["run", "-it", "busybox", "sh"], 1, "the input device is not a TTY"),
    # the security, filesystem and limit flags
    ("run-platform-other", R + ["--platform", "linux/arm64"] + BB, 125, "does not match the specified platform"),
    ("create-platform-nonsense", C + ["--platform", "a/b/c/d"] + BB, 1, "unknown operating system or architecture"),
    ("run-cap-unknown", R + ["--cap-add", "FLY"] + BB, 125,
     'labkit: Error response from daemon: invalid CapAdd: unknown capability: "CAP_FLY"'),
    ("create-cap-unknown", C + ["--cap-drop", "FLY"] + BB, 1,
     'Error response from daemon: invalid CapDrop: unknown capability: "CAP_FLY"'),
    ("create-ulimit-backwards", C + ["--ulimit", "nofile=3:2"] + BB, 125, "ulimit soft limit must be less than"),
    ("run-ulimit-unknown", R + ["--ulimit", "files=1"] + BB, 125, "invalid ulimit type: files"),
    ("run-add-host-no-ip", R + ["--add-host", "db"] + BB, 125, 'bad format for add-host: "db"'),
    ("run-dns-not-an-address", R + ["--dns", "one"] + BB, 125,
     'invalid argument "one" for "--dns" flag: IP address is not correctly formatted: one'),
    ("run-mount-no-target", R + ["--mount", "type=bind,source=/tmp"] + BB, 125, "target is required"),
    ("run-mount-unknown-type", R + ["--mount", "type=nfs,target=/x"] + BB, 125,
     'labkit: Error response from daemon: invalid mount config for type "nfs": mount type unknown'),
    ("run-mount-unknown-key", R + ["--mount", "type=bind,source=/tmp,target=/x,colour=red"] + BB, 125,
     "unexpected key 'colour'"),
    ("run-mount-missing-source", R + ["--mount", "type=bind,source=/nonexistent-source,target=/x"] + BB, 125,
     "bind source path does not exist: /nonexistent-source"),
    ("run-tmpfs-relative", R + ["--tmpfs", "run"] + BB, 125, "mount path must be absolute"),
    ("run-tmpfs-bad-option", R + ["--tmpfs", "/run:colour=red"] + BB, 125, "invalid tmpfs option"),
    ("run-user-unknown", R + ["-u", "nosuch"] + BB, 125, "unable to find user nosuch"),
    ("logs-since-nonsense", ["logs", "--since", "yesterday", "web"], 1, 'invalid value for "since"'),
    ("detach-keys-bad", ["run", "-t", "--detach-keys", "ctrl-1"] + BB, 125, "Invalid detach keys (ctrl-1) provided"),
    # a container that cannot start, with --rm: Docker removes it
    ("entrypoint-missing-rm", R + ["--entrypoint", "/nope", "busybox"], 127, 'exec: "/nope"'),
    ("cmd-missing-rm", R + ["busybox", "/nope"], 127, 'exec: "/nope"'),
    ("cmd-not-executable-rm", R + ["busybox", "/etc/passwd"], 126, "permission denied"),
    ("cmd-missing-rm-detached", ["run", "-d", "--rm", "busybox", "/nope"], 127, 'exec: "/nope"'),
    # Labfiles
    ("labfile-empty", ["build", "-t", "t1", "{ctx}/empty"], 1, "empty"),
    ("labfile-unknown", ["build", "-t", "t1", "{ctx}/unknown"], 1, "unknown instruction: FROBNICATE"),
    ("labfile-no-from", ["build", "-t", "t1", "{ctx}/nofrom"], 1, "RUN before FROM"),
    ("labfile-from-missing", ["build", "-t", "t1", "{ctx}/fromnosuch"], 1, "No such image: nosuch:1"),
    ("labfile-copy-missing", ["build", "-t", "t1", "{ctx}/copymissing"], 1, "COPY failed"),
    ("labfile-copy-outside", ["build", "-t", "t1", "{ctx}/copyout"], 1, "forbidden path outside the build context"),
    ("labfile-run-false", ["build", "-t", "t1", "{ctx}/runfalse"], 1, "returned a non-zero code: 1"),
    ("labfile-env-empty", ["build", "-t", "t1", "{ctx}/envempty"], 1, "ENV requires at least one argument"),
    ("labfile-env-no-name", ["build", "-t", "t1", "{ctx}/envnoname"], 1, "ENV"),
    ("labfile-expose-letters", ["build", "-t", "t1", "{ctx}/exposebad"], 1, "invalid containerPort: abc"),
    ("labfile-from-empty", ["build", "-t", "t1", "{ctx}/fromempty"], 1, "FROM requires"),
    ("labfile-from-upper", ["build", "-t", "t1", "{ctx}/fromupper"], 1, "BusyBox"),
    ("labfile-workdir-empty", ["build", "-t", "t1", "{ctx}/workdirempty"], 1, "WORKDIR requires"),
    ("labfile-copy-one-arg", ["build", "-t", "t1", "{ctx}/copyone"], 1, "COPY requires at least two arguments"),
    ("labfile-run-empty", ["build", "-t", "t1", "{ctx}/runempty"], 1, "RUN requires at least one argument"),
    ("labfile-dir-missing", ["build", "-t", "t1", "{absent}/ctx"], 1, "not found"),
    ("labfile-file-missing", ["build", "-t", "t1", "-f", "{absent}/Labfile", "{ctx}/ok"], 1, "no such Labfile"),
    ("labfile-tag-upper", ["build", "-t", "Upper", "{ctx}/ok"], 125, "must be lowercase"),
    ("labfile-tag-double-colon", ["build", "-t", "a::b", "{ctx}/ok"], 125, "invalid reference format"),
    ("labfile-tag-empty", ["build", "-t", "", "{ctx}/ok"], 125, "invalid reference format"),
    ("labfile-too-deep", ["build", "-t", "t1", "{ctx}/toodeep"], 1, "overlayfs stacks at most 500 lower layers"),
    ("image-too-deep-run", R + ["deep:500", "true"], 125, "overlayfs stacks at most 500 lower layers"),
    # signals
    ("kill-signal-zero", ["kill", "-s", "0", "web"], 1, "Invalid signal: 0"),
    ("kill-signal-99", ["kill", "-s", "99", "web"], 1, "does not support signal 99"),
    ("kill-signal-65", ["kill", "-s", "65", "web"], 1, "does not support signal 65"),
    ("kill-signal-name", ["kill", "-s", "FOO", "web"], 1, "Invalid signal: FOO"),
    ("kill-signal-sigfoo", ["kill", "-s", "SIGFOO", "web"], 1, "Invalid signal: SIGFOO"),
    ("kill-signal-negative", ["kill", "-s=-1", "web"], 1, "Invalid signal: -1"),
    ("kill-signal-fraction", ["kill", "-s", "1.5", "web"], 1, "Invalid signal: 1.5"),
    ("kill-signal-huge", ["kill", "-s", "99999999999999999999", "web"], 1, "does not support signal"),
    ("kill-signal-paused", ["kill", "-s", "0", "pz"], 1, "Invalid signal: 0"),
    ("stop-signal-bad", ["stop", "-s", "FOO", "web"], 1, "Invalid signal: FOO"),
    ("stop-signal-zero-paused", ["stop", "-s", "0", "pz"], 1, "Invalid signal: 0"),
    ("stop-time-letters", ["stop", "-t", "abc", "web"], 125, "invalid value 'abc'"),
    ("stop-time-overflow", ["stop", "-t", "99999999999999999999", "web"], 125, "out of range"),
    ("restart-time-letters", ["restart", "-t", "abc", "web"], 125, "invalid value 'abc'"),
    # container references
    ("start-missing", ["start", "ghost"], 1, "No such container: ghost"),
    ("stop-missing", ["stop", "ghost"], 1, "No such container: ghost"),
    ("kill-missing", ["kill", "ghost"], 1, "No such container: ghost"),
    ("rm-missing", ["rm", "ghost"], 1, "No such container: ghost"),
    ("rm-force-missing", ["rm", "-f", "ghost"], 1, "No such container: ghost"),
    ("inspect-missing", ["inspect", "ghost"], 1, "No such object: ghost"),
    ("logs-missing", ["logs", "ghost"], 1, "No such container: ghost"),
    ("exec-missing", ["exec", "ghost", "true"], 1, "No such container: ghost"),
    ("pause-missing", ["pause", "ghost"], 1, "No such container: ghost"),
    ("wait-missing", ["wait", "ghost"], 1, "No such container: ghost"),
    ("diff-missing", ["diff", "ghost"], 1, "No such container: ghost"),
    ("restart-missing", ["restart", "ghost"], 1, "No such container: ghost"),
    ("unpause-missing", ["unpause", "ghost"], 1, "No such container: ghost"),
    ("full-id-missing", ["start", "f" * 64], 1, "No such container: " + "f" * 64),
    ("prefix-ambiguous", ["rm", "-f", "{amb}"], 1, "multiple IDs found with provided prefix: {amb}"),
    ("prefix-ambiguous-kill", ["kill", "{amb}"], 1, "multiple IDs found with provided prefix: {amb}"),
    ("rm-empty-ref", ["rm", ""], 1, "No such container: "),
    ("rm-no-args", ["rm"], 1, "the following arguments are required: CONTAINER"),
    ("start-no-args", ["start"], 1, "the following arguments are required: CONTAINER"),
    ("exec-no-command", ["exec", "web"], 1, "requires at least 2 arguments"),
    ("exec-env-no-name", ["exec", "-e", "=x", "web", "true"], 125, "invalid environment variable: =x"),
    # verbs on containers in the wrong state
    ("exec-created", ["exec", "made", "true"], 1, "is not running"),
    ("exec-exited", ["exec", "done", "true"], 1, "is not running"),
    ("exec-paused", ["exec", "pz", "true"], 1, "is paused"),
    ("pause-created", ["pause", "made"], 1, "is not running"),
    ("pause-exited", ["pause", "done"], 1, "is not running"),
    ("pause-paused", ["pause", "pz"], 1, "is already paused"),
    ("unpause-running", ["unpause", "web"], 1, "is not paused"),
    ("unpause-created", ["unpause", "made"], 1, "is not paused"),
    ("unpause-exited", ["unpause", "done"], 1, "is not paused"),
    ("kill-created", ["kill", "made"], 1, "is not running"),
    ("kill-exited", ["kill", "done"], 1, "is not running"),
    ("rm-running", ["rm", "web"], 1, "container is running"),
    ("rm-paused", ["rm", "pz"], 1, "container is paused"),
    ("start-paused", ["start", "pz"], 1, "cannot start a paused container"),
    # volumes
    ("volume-create-bad-name", ["volume", "create", "bad/name"], 1, "includes invalid characters"),
    ("volume-create-one-char", ["volume", "create", "x"], 1, "create x"),
    ("volume-rm-missing", ["volume", "rm", "ghostvol"], 1, "get ghostvol: no such volume"),
    ("volume-inspect-missing", ["volume", "inspect", "ghostvol"], 1, "get ghostvol: no such volume"),
    ("volume-rm-in-use", ["volume", "rm", "vol1"], 1, "volume is in use"),
    # formats and filters
    ("ps-filter-unknown", ["ps", "--filter", "bogus=1"], 1, "invalid filter 'bogus'"),
    ("ps-filter-no-equals", ["ps", "--filter", "bogus"], 125, "bad format of filter"),
    ("ps-filter-status", ["ps", "--filter", "status=napping"], 1, "invalid filter 'status=napping'"),
    ("ps-format-bad", ["ps", "--format", "{{{{.Nope}}}}"], 1, "can't evaluate field Nope"),
    ("inspect-format-unclosed", ["inspect", "--format", "{{{{", "web"], 64, "template parsing error"),
    ("ps-last-letters", ["ps", "-n", "abc"], 125, "invalid int value: 'abc'"),
]

#: Docker's own lines around the one that says what went wrong, where labkit prints them too.
_NOTICE = re.compile(r"^Unable to find image '.*' locally$")
_POINTER = re.compile(r"^Run 'labkit (run|create) --help' for more information$|"
                      r"^Usage:  labkit (run|create) \[OPTIONS\] IMAGE \[COMMAND\] \[ARG\.\.\.\]$")
_START_SUMMARY = re.compile(r"^Error: failed to start containers: ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class World:
    """The module's state root, its `labkit`, and what must hold after every refused command."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.env = {**os.environ, "LABKIT_ROOT": str(root)}
        self.env.pop("LABKIT_NO_SERVER", None)
        # What bin/labkit's shell lines hand the Python part run here: where the resident engine listens.
        self.env["_LABKIT_SOCKET_DIR"] = self.env["LABKIT_SOCKET_DIR"]
        self.ctx = tmp / "ctx"
        self.absent = tmp / "absent"
        self.port = _free_port()
        self.amb = ""

    def labkit(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LABKIT, *args], capture_output=True, text=True, env=self.env, timeout=120,
                              stdin=subprocess.DEVNULL)  # never a terminal: `run -it` must refuse, not wait

    def ok(self, *args: str) -> str:
        done = self.labkit(*args)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    def add_too_deep_image(self) -> None:
        """``deep:500``: an image one layer deeper than overlayfs stacks under a container, as another engine's
        ``save`` could hold one (a Labfile that deep is refused before it builds): busybox's layer, then one small
        layer over and over."""
        import labkit
        from labkit.model.overlay import MAX_STACK

        store = labkit.connect(backend="linux", root=self.root).image_store
        base = store.get("busybox")
        (self.ctx / "deep-layer").mkdir()
        (self.ctx / "deep-layer" / "note").write_text("deep\n")
        layer = store.commit_layer(str(self.ctx / "deep-layer"))
        store.add_image([*base.layers, *[layer] * (MAX_STACK - len(base.layers))], base.config, "deep:500")

    def snapshot(self) -> dict[str, object]:
        """Everything a half-made command would leave: records, layers, names, mounts, statuses."""
        shot: dict[str, object] = {}
        for sub in ("containers", "overlay", "volumes", "networks", "images/images", "images/layers",
                    "images/tmp", "tmp"):
            where = self.root / sub
            # tmp/trash-*: what an earlier rm moved aside, deleted in the background meanwhile; tmp/spare-init-*:
            # an init layer an earlier rm kept for the next container (labkit.linux.overlay.keep_init).
            shot[sub] = sorted(n for n in os.listdir(where) if not n.startswith(("trash-", "spare-init-"))) \
                if where.is_dir() else []
        # A name whose container is gone is free (Store.names): only names of containers that exist count.
        names = json.loads((self.root / "names.json").read_text())
        shot["names"] = {name: cid for name, cid in names.items() if (self.root / "containers" / cid).exists()}
        with open("/proc/self/mounts") as mounts:
            shot["mounts"] = sorted(line.split()[1] for line in mounts if str(self.root) in line)
        shot["ps"] = self.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}")
        shot["absent"] = self.absent.exists()
        return shot


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A running (web), created (made), exited (done), paused (pz) and publishing (pub) container; net1; vol1."""
    tmp = tmp_path_factory.mktemp("bad-input")
    w = World(state_root(), tmp)
    w.ctx.mkdir()
    for name, text in LABFILES.items():
        (w.ctx / name).mkdir()
        (w.ctx / name / "Labfile").write_text(text)
    (w.ctx / "bad.env").write_text("GOOD=1\n=bad\n")
    w.ok("run", "-d", "--name", "web", "--network", "none", "-v", "vol1:/data", "busybox", "sleep", "600")
    w.ok("create", "--name", "made", "busybox", "true")
    w.ok("run", "--name", "done", "--network", "none", "busybox", "true")
    w.ok("run", "-d", "--name", "pz", "--network", "none", "busybox", "sleep", "600")
    w.ok("pause", "pz")
    w.ok("run", "-d", "--name", "pub", "-p", f"127.0.0.1:{w.port}:80", "busybox", "sleep", "600")
    w.ok("network", "create", "net1")
    w.add_too_deep_image()
    # Two containers whose ids share a first character: a one-character prefix that names neither.
    firsts: dict[str, str] = {}
    spare = []
    for n in range(17):  # 16 hex digits: the 17th id repeats one at the latest
        cid = w.ok("create", "--name", f"amb{n}", "busybox", "true").strip()
        spare.append(f"amb{n}")
        if cid[0] in firsts:
            w.amb = cid[0]
            keep = {firsts[cid[0]], f"amb{n}"}
            break
        firsts[cid[0]] = f"amb{n}"
    extra = [name for name in spare if name not in keep]
    if extra:
        w.ok("rm", *extra)
    yield w
    w.ok("rm", "-f", "web", "made", "done", "pz", "pub", *sorted(keep))
    w.ok("volume", "rm", "vol1")
    w.ok("network", "rm", "net1")
    w.ok("rmi", "deep:500")


def test_the_table_is_as_broad_as_promised():
    """At least 145 cases, each named once, over every kind of input the issue lists."""
    names = [case[0] for case in CASES]
    assert len(names) >= 145 and len(set(names)) == len(names)
    for kind in ("name", "image", "port", "memory", "swap", "cpus", "pids", "env", "label", "workdir", "volume",
                 "network", "restart", "labfile", "signal", "missing", "prefix", "exec", "pause", "rm", "start"):
        assert any(kind in name for name in names), kind


@pytest.mark.parametrize("case, argv, code, words", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_refused_like_docker_and_leaves_nothing(world, case, argv, code, words):
    """Docker's exit code, one line that says what and what to try, and the state root exactly as it was."""
    fill = {"ctx": world.ctx, "absent": world.absent, "port": world.port, "amb": world.amb}
    argv = [arg.format(**fill) for arg in argv]
    words = words.format(**fill)
    before = world.snapshot()
    done = world.labkit(*argv)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    said = [line for line in lines if not (_NOTICE.match(line) or _POINTER.match(line) or _START_SUMMARY.match(line))]
    assert done.returncode == code, done.stderr
    assert len(said) == 1, done.stderr
    assert words in said[0], done.stderr
    assert "Traceback" not in done.stderr and "unexpected error" not in done.stderr
    after = world.snapshot()
    assert not {key: (before[key], after[key]) for key in before if after[key] != before[key]}, "nothing made or lost"
