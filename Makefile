# Two commands do all the set-up on a fresh Debian/Ubuntu machine, as root or as a user:
#   make lab    installs what the lessons need (.[notebook]), builds the images, opens JupyterLab on notebooks/
#   make test   installs that and the test tools (.[notebook,test]) and runs the whole test suite
#   make test-vm  runs part of the suite in a Debian 12 guest with systemd and cgroup v2 only (tests/vm/run.py:
#                 as root it installs mmdebstrap and QEMU, builds the guest once and caches it; VM_ARGS passes options)
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

# --no-compile: pip would byte-compile every module of every package (80 MB of a learner's venv, most of it never
# imported: numpy's and matplotlib's tests, unused backends); Python writes the bytecode of what is imported
# the first time it is. ensurepip's setuptools (Python < 3.12) serves nothing here: a build gets its own.
venv: deps
	@test -x $(VPY) || { $(PY) -m venv $(VENV) && $(VPY) -m pip install -q --no-compile --upgrade pip \
	  && $(VPY) -m pip uninstall -q -y setuptools; }
	@$(VPY) -m pip install -q --no-compile -e '.[$(EXTRAS)]'
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
