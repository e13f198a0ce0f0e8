# owlat.selfhost — developer entry points. Everything installs what it needs on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
HOSTS ?= 3
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export OWLAT_LAB_STATE := $(CURDIR)/lab/.state
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Molecule writes its own ansible.cfg: the collection must be found through the environment too.
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
SCENARIOS ?= docker stack fleet backup_restore upgrade monitoring

.PHONY: help deps venv link lab demo test lint unit sanity molecule runner ee bench status build clean lab-down

help:
	@echo "make demo   - lab hosts up, the whole Owlat stack on each (from the lab registry), status table"
	@echo "make test   - lint, unit tests, ansible-test sanity, Molecule scenarios ($(SCENARIOS))"
	@echo "make lab / lab-down / clean / build"

deps:  ## system packages the lab needs (Debian); promtool (package prometheus) for the alert-rule tests, never started
	@command -v debootstrap >/dev/null && command -v dockerd >/dev/null && command -v ssh >/dev/null \
	  && command -v promtool >/dev/null || \
	  { apt-get update -qq; made=; [ -e /usr/sbin/policy-rc.d ] || { made=1; \
	      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      docker.io debootstrap openssh-client openssl curl rsync git prometheus >/dev/null; rc=$$?; \
	    [ -z "$$made" ] || rm -f /usr/sbin/policy-rc.d; exit $$rc; }

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

link:  ## the checkout is the collection: make it visible as owlat.selfhost
	@mkdir -p .collections/ansible_collections/owlat
	@ln -sfn ../../.. .collections/ansible_collections/owlat/selfhost

lab: deps venv link
	$(PY) lab/lab.py up -n $(HOSTS)

demo: lab
	$(BIN)/ansible-playbook lab/demo.yml

lint: venv link
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production

unit: venv link
	$(BIN)/pytest -q tests/unit tests/doubles tests/runner/test_awx_files.py

sanity: venv
	bash tests/sanity.sh

molecule: deps venv link
	$(PY) lab/lab.py registry
	set -e; for s in $(SCENARIOS); do $(BIN)/molecule test -s $$s; done

runner: deps venv link  ## site.yml, upgrade.yml and status.yml through ansible-runner, as AWX runs them
	$(PY) lab/lab.py registry
	$(BIN)/pytest -q tests/runner

test: lint unit sanity molecule runner

ee: venv  ## execution-environment build context (extensions/ee/context); the image build needs a registry
	PATH=$(CURDIR)/$(BIN):$$PATH bash extensions/ee/build.sh

BENCH_N ?= 1 3 10
bench: deps venv link  ## not a test: timings on N private lab hosts -> bench/results, docs/bench.md
	$(PY) lab/lab.py registry
	$(PY) bench/bench.py -n $(BENCH_N) --head
	$(PY) bench/report.py

status: venv link  ## fleet status table (+ JSON) of the lab hosts
	$(BIN)/ansible-playbook playbooks/status.yml

build: venv
	$(BIN)/ansible-galaxy collection build --force

lab-down:
	$(PY) lab/lab.py down

clean:
	$(PY) lab/lab.py down --all
	rm -rf .collections owlat-selfhost-*.tar.gz
