# Two commands do all the set-up on a fresh Debian/Ubuntu machine, as root or as a user:
#   make lab    installs what the lessons need (.[notebook]), builds the images, opens JupyterLab on notebooks/
#   make test   installs that and the test tools (.[notebook,test]) and runs the whole test suite
#   make test-vm  runs part of the suite in a Debian 12 guest with systemd and cgroup v2 only (tests/vm/run.py:
#                 as root it installs mmdebstrap and QEMU, builds the guest once and caches it; VM_ARGS passes options:
#                 none runs the parts of its plan that fit in an hour, VM_ARGS=--full everything, for hours)
# As root, apt-get installs the Debian packages that are missing; as a user, they are named with the command
# that installs them, and the rest goes on (rootless containers where this host allows them, else the simulator).
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
# The state root: empty, labkit picks the one of the backend that will run (labkit.backends.default_root:
# /var/lib/labkit as root, ~/.local/share/labkit rootless, ~/.local/share/labkit/sim for the simulator).
ROOT    ?=
LAB_ARGS ?=
# What the lessons need of the host: a compiler and libseccomp for the supervisor, busybox for the base image,
# ip and nft for networks, slirp4netns and newuidmap (uidmap) for rootless containers.
APT_PKGS := busybox-static gcc libc6-dev libseccomp2 iproute2 nftables python3-venv file slirp4netns uidmap
# Installed where the distribution has them (pasta's passt is not in Ubuntu 22.04)
APT_MAYBE := passt
# The learner's Python packages; the tests add pytest, playwright, mypy, ruff and the notebook runner.
EXTRAS  := notebook
# What the tests add: chromium for the browser tests, yaml and jsonschema for the system Python that
# runs labkit as another user, and docker.io, whose dockerd the parity suite (tests/parity) starts on a
# private socket and bridge of its own. The install starts no system dockerd (see deps: policy-rc.d).
test lint: APT_PKGS += chromium python3-yaml python3-jsonschema docker.io
test lint: EXTRAS := notebook,test

ifneq ($(ROOT),)
export LABKIT_ROOT := $(ROOT)
endif

VM_ARGS ?=

.PHONY: lab test test-vm deps venv images lint clean

deps:
	@command -v dpkg-query >/dev/null 2>&1 || exit 0; \
	missing=""; for p in $(APT_PKGS) $(APT_MAYBE); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	[ -n "$$missing" ] || exit 0; \
	if [ "$$(id -u)" = 0 ]; then apt-get update -q; fi; \
	for p in $(APT_MAYBE); do apt-cache show $$p >/dev/null 2>&1 || missing=$$(echo $$missing | tr ' ' '\n' | grep -vx $$p); done; \
	missing=$$(echo $$missing); [ -n "$$missing" ] || exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
	  guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $$guard; chmod 755 $$guard; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; rc=$$?; [ -z "$$guard" ] || rm -f $$guard; [ $$rc = 0 ] || exit $$rc; \
	else echo "labkit: Debian packages missing ($$missing), which only root can install with 'sudo apt-get install $$missing'; until then labkit goes on without them, rootless where this host allows it, else on the simulator." >&2; fi

# The learner's venv holds what the lessons run, and make installs into it only when it lacks the extras asked
# for or pyproject.toml or bin/labkit changed since (a stamp per set of extras); a second make lab goes straight on.
# - The venv is made without ensurepip's pip and setuptools (byte-compiled, 6 s of CPU): the pip wheel Python's
#   venv module ships (Debian's /usr/share/python-wheels, or ensurepip's own) runs once to install the current pip
#   (a Python with neither gets ensurepip's).
# - --no-compile: pip would byte-compile every module of every package (80 MB, most of it never imported);
#   Python writes the bytecode of what is imported the first time it is.
# - SLIM (make lab; make test keeps it all): pip leaves the venv once it has installed (13 MB; it comes back with
#   `.venv/bin/python -m ensurepip`), and so do the test suites the packages ship (13 MB), and a file shipped
#   twice is kept once (jupyterlab's app and ipywidgets' classic extension: 26 MB) -- see SLIM_VENV.
comma   := ,
SLIM    := 1
test lint: SLIM :=
define FIND_PIP_WHEEL
import ensurepip, glob, os
bundled = os.path.join(os.path.dirname(ensurepip.__file__), "_bundled")
print((glob.glob(bundled + "/pip-*.whl") + glob.glob("/usr/share/python-wheels/pip-*.whl") + [""])[0])
endef
define SLIM_VENV
"""Leave out of the venv (argv[1]) the test suites the packages ship, and keep each file shipped twice once.

A test suite is a directory named tests or test holding test_*.py or *_test.py modules; no package imports one
at run time, except jupyterlab, whose browser check (python -m jupyterlab.browser_check) imports its tests, so
they stay. Identical files (jupyterlab ships its built app in jupyterlab/static and share/jupyter/lab/static,
ipywidgets' classic extension is in widgetsnbextension/static and share/jupyter/nbextensions) become hard
links of one another: what reads them gets the same bytes, and pip, replacing a file, unlinks it first.
"""
import hashlib, os, shutil, stat, sys
from collections import defaultdict

same_size = defaultdict(list)
for top, dirs, files in os.walk(sys.argv[1]):
    suite = os.path.basename(top) in ("tests", "test") and not top.endswith(os.path.join("jupyterlab", "tests"))
    if suite and any(f.endswith(".py") and (f.startswith("test_") or f.endswith("_test.py")) for f in files):
        shutil.rmtree(top)
        dirs.clear()
        continue
    for name in files:
        path = os.path.join(top, name)
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and st.st_size:
            same_size[st.st_size].append(path)
for paths in same_size.values():
    first = {}
    for path in paths if len(paths) > 1 else ():
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).digest()
        if digest in first:
            os.link(first[digest], path + ".slim")
            os.replace(path + ".slim", path)
        else:
            first[digest] = path
endef
export FIND_PIP_WHEEL SLIM_VENV

venv: deps
	@stamp=$(VENV)/.labkit-$(subst $(comma),-,$(EXTRAS)); \
	[ $$stamp -nt pyproject.toml ] && [ $$stamp -nt bin/labkit ] || { \
	  { test -x $(VPY) || $(PY) -m venv --without-pip $(VENV); } \
	  && { $(VPY) -m pip --version >/dev/null 2>&1 || { wheel=$$($(PY) -c "$$FIND_PIP_WHEEL" 2>/dev/null); \
	       if [ -n "$$wheel" ]; then $(VPY) "$$wheel/pip" install -q --no-compile pip; \
	       else $(VPY) -m ensurepip >/dev/null && { $(VPY) -m pip uninstall -q -y setuptools 2>/dev/null || :; }; fi; }; } \
	  && $(VPY) -m pip install -q --no-compile -e '.[$(EXTRAS)]' \
	  && { [ -z "$(SLIM)" ] || { $(VPY) -m pip uninstall -q -y pip && $(VPY) -c "$$SLIM_VENV" $(VENV); }; } \
	  && touch $$stamp; }
	@$(VPY) -m compileall -q labkit   # every CLI call starts faster with the bytecode cached

images: venv
	$(VENV)/bin/labkit setup

lab: images
	$(VENV)/bin/jupyter lab --allow-root --notebook-dir=notebooks $(LAB_ARGS)

test: venv
	$(VPY) -m pytest -q tests

test-vm:
	$(PY) tests/vm/run.py $(VM_ARGS)

lint: venv
	$(VENV)/bin/ruff check labkit tests
	$(VENV)/bin/mypy labkit

clean:
	rm -rf $(VENV) *.egg-info
