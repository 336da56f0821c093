# Two commands do all the set-up on a fresh Debian/Ubuntu machine:
#   make lab    installs what is needed, builds the images, opens JupyterLab on notebooks/
#   make test   installs what is needed and runs the whole test suite
PY      ?= python3
VENV    ?= .venv
VPY     := $(VENV)/bin/python
ROOT    ?= /var/lib/labkit
LAB_ARGS ?=
APT_PKGS := busybox-static gcc libc6-dev libseccomp2 iproute2 nftables python3-venv file chromium slirp4netns uidmap \
            python3-yaml python3-jsonschema
# Installed where the distribution has them (pasta's passt is not in Ubuntu 22.04)
APT_MAYBE := passt

.PHONY: lab test deps venv images lint clean

deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(APT_PKGS) $(APT_MAYBE); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -q; \
	    for p in $(APT_MAYBE); do apt-cache show $$p >/dev/null 2>&1 || missing=$$(echo $$missing | tr ' ' '\n' | grep -vx $$p); done; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi; \
	fi

venv: deps
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	@$(VPY) -m pip install -q --upgrade pip
	@$(VPY) -m pip install -q -e '.[notebook,test]'
	@$(VPY) -m compileall -q labkit   # every CLI call starts faster with the bytecode cached

images: venv
	$(VENV)/bin/labkit --root $(ROOT) setup

lab: images
	$(VENV)/bin/jupyter lab --allow-root --notebook-dir=notebooks $(LAB_ARGS)

test: venv
	$(VPY) -m pytest -q tests

lint: venv
	$(VENV)/bin/ruff check labkit tests
	$(VENV)/bin/mypy labkit

clean:
	rm -rf $(VENV) *.egg-info
