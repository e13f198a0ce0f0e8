# owlat.selfhost — developer entry points. Everything installs what it needs on a fresh Debian machine.
SHELL := /bin/bash
# The main line (test-matrix leg core-2.21: Python 3.13, ansible 14.5 / ansible-core 2.21, community.docker 5):
# lint, Molecule, runner, demo, bench. The other legs live in .venvs/<leg> (tests/matrix/legs.json).
VENV ?= .venv
MAIN_LEG := core-2.21
OLDEST_LEG := core-2.17
# Python that runs the matrix tool itself (standard library only) and builds the venvs with pyenv's Pythons.
SYSPY ?= python3
MATRIX := $(SYSPY) tests/matrix/matrix.py
RESULTS := tests/matrix/results
export MATRIX_VENV_core_2_21 := $(VENV)
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
HOSTS ?= 3
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export OWLAT_LAB_STATE := $(CURDIR)/lab/.state
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Molecule writes its own ansible.cfg: the collection must be found through the environment too.
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
SCENARIOS ?= docker stack backup_restore upgrade monitoring stacks adopt external
# Run on the oldest supported leg (ansible-core 2.17, community.docker 4.8) only: the fleet scenario (two hosts, Debian
# 13 and 12, two stacks, check mode on the converged fleet). Every other scenario runs on the main line; the fleet one
# runs once, on the oldest leg, as the stack one ran there before (the 2 shared cores cannot run both legs' scenarios
# within the hour: make test took 73 minutes on CI). The other roles' code on 2.17 has ansible-test sanity and the unit tests.
OLDEST_SCENARIOS ?= fleet
# Deprecation watch: every ansible run records the deprecations the collection's own content triggers
# (matrix.py exec fails the step on one). The environment wins over ansible.cfg and Molecule's own ansible.cfg.
export ANSIBLE_CALLBACKS_ENABLED := owlat.selfhost.module_runs,owlat.selfhost.deprecation_watch
export OWLAT_DEPRECATION_ALLOW := $(CURDIR)/tests/matrix/deprecations-allowed.txt
# pip installs without byte-compiling (ansible-test's own requirement installs too; matrix.py passes --no-compile):
# most of an install's CPU, on the 2 cores the lab lanes share. (PIP_COMPILE=0, not PIP_NO_COMPILE: pip reads a
# --no-* option's variable inverted.)
export PIP_COMPILE := 0
DEMO_LEG ?= $(MAIN_LEG)
DEMO_BIN := $(if $(filter $(MAIN_LEG),$(DEMO_LEG)),$(BIN),.venvs/$(DEMO_LEG)/bin)

.PHONY: help deps venv venvs link lab demo test lint unit sanity matrix matrix-table matrix-check molecule lanes doubles-images \
	molecule-oldest runner ee bench status build clean lab-down

help:
	@echo "make demo   - lab hosts up, the whole Owlat stack on each (from the lab registry), status table"
	@echo "make test   - sanity + unit tests on every ansible-core leg (in the background), lint, Molecule"
	@echo "              ($(SCENARIOS); $(OLDEST_SCENARIOS) also on $(OLDEST_LEG)), runner"
	@echo "make matrix - only the sanity + unit matrix (no lab); make matrix-table - README support table"
	@echo "make lab / lab-down / clean / build"

deps:  ## system packages the lab needs (Debian); promtool (package prometheus) for the alert-rule tests, never started
	@command -v debootstrap >/dev/null && command -v dockerd >/dev/null && command -v ssh >/dev/null \
	  && command -v promtool >/dev/null || \
	  { apt-get update -qq; made=; [ -e /usr/sbin/policy-rc.d ] || { made=1; \
	      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      docker.io debootstrap openssh-client openssl curl rsync git prometheus >/dev/null; rc=$$?; \
	    [ -z "$$made" ] || rm -f /usr/sbin/policy-rc.d; exit $$rc; }
	@bash tests/cli/install.sh  # upstream's convex CLI (npm registry) for tests/cli and the stack scenario

venv:  ## the main line's venv (rebuilt when requirements.txt or its Python changes)
	@$(MATRIX) venv $(MAIN_LEG)

venvs:  ## every leg's venv
	@$(MATRIX) venv $$($(SYSPY) -c 'import json; print(" ".join(l["name"] for l in json.load(open("tests/matrix/legs.json"))["legs"]))')

link:  ## the checkout is the collection: make it visible as owlat.selfhost
	@mkdir -p .collections/ansible_collections/owlat
	@ln -sfn ../../.. .collections/ansible_collections/owlat/selfhost

lab: deps venv link
	$(PY) lab/lab.py up -n $(HOSTS)

demo: lab  ## on the main line; `make demo DEMO_LEG=core-2.17` on another leg
	@[ "$(DEMO_LEG)" = "$(MAIN_LEG)" ] || $(MATRIX) venv $(DEMO_LEG)
	$(DEMO_BIN)/ansible-playbook lab/demo.yml

lint: venv link
	$(MATRIX) exec $(MAIN_LEG) lint -- bash -c 'yamllint -s $$(git ls-files -co --exclude-standard "*.yml" "*.yaml") \
	  && ansible-lint --profile production --exclude .venvs/ tests/matrix/results/'

unit: venv link  ## main line only; `make matrix` runs them on every leg
	$(MATRIX) run $(MAIN_LEG) unit

sanity: venv
	$(MATRIX) run $(MAIN_LEG) sanity

LEGS ?=
matrix: link  ## ansible-test sanity + unit tests on every leg (or LEGS="core-2.17 ..."); needs no lab
	$(MATRIX) quick $(LEGS)

matrix-table:  ## rewrite the README support table from tests/matrix/results
	$(MATRIX) table --write

matrix-check:  ## every declared step of every leg passed, and the README table says so
	$(MATRIX) show
	$(MATRIX) table --check --complete

# The lab's image builds, one at a time: lane A starts with other work (the double images) and they meet here.
LAB_BUILD = flock lab/.state/lab-build.lock $(PY) lab/lab.py
# One scenario at a time per scenario: its lab hosts and Molecule state are its own, so two lanes may run different
# scenarios side by side but never the same one (flock on lab/.state/molecule-<scenario>.lock). Molecule's destroy
# keeps each lab host's anonymous /var/lib/docker volume (185 of them, 68 GB, filled a disk): removed after each
# scenario (`docker volume prune` removes only anonymous volumes no container uses: not the other lane's).
SCENARIO = ( mkdir -p lab/.state && flock lab/.state/molecule-$(2).lock $(MATRIX) exec $(1) molecule:$(2) -- \
	molecule test -s $(2); r=$$?; docker volume prune -f >/dev/null 2>&1; exit $$r )

molecule: deps venv link
	$(PY) lab/lab.py registry
	rc=0; for s in $(SCENARIOS); do $(call SCENARIO,$(MAIN_LEG),$$s) || rc=1; done; exit $$rc

molecule-oldest: deps venv link  ## the stack and upgrade scenarios on the oldest supported ansible-core
	$(MATRIX) venv $(OLDEST_LEG)
	$(PY) lab/lab.py registry
	rc=0; for s in $(OLDEST_SCENARIOS); do $(call SCENARIO,$(OLDEST_LEG),$$s) || rc=1; done; exit $$rc

# make test's lab steps in two lanes side by side. The 2 cores are the limit now (vmstat: 0-5 % idle with both lanes):
# the lanes are balanced by the minutes measured in make test on 2026-12-07 (stack 17, upgrade 22, backup_restore 29,
# adopt 17 | stacks 45, monitoring 11, docker 8, external 10, runner 5, oldest fleet 3). backup_restore beside upgrade
# (lanes tried that way) stretched the move's measured API gap past its 120 s bound: 132.6 s. The runner test runs on
# one host (the AWX job path is the same for more; Molecule has the fleets): a second one cost 3-9 minutes. LANE_A_FIRST / LANE_B_FIRST: make targets each lane
# runs before its scenarios (make test: the double images). Lane B's log: tests/matrix/results/lane-b.log.
LANE_A ?= stack upgrade backup_restore adopt
LANE_B ?= stacks monitoring docker external
LANE_A_FIRST ?=
LANE_B_FIRST ?=
lanes: deps venv link
	@mkdir -p lab/.state $(RESULTS)
	@{ rc=0; for t in $(LANE_B_FIRST); do $(MAKE) --no-print-directory $$t || rc=1; done; \
	   $(LAB_BUILD) registry || exit 1; \
	   for s in $(LANE_B); do $(call SCENARIO,$(MAIN_LEG),$$s) || rc=1; done; \
	   OWLAT_RUNNER_HOSTS=1 $(MATRIX) exec $(MAIN_LEG) runner -- pytest -q tests/runner || rc=1; \
	   $(MATRIX) venv $(OLDEST_LEG) || exit 1; \
	   for s in $(OLDEST_SCENARIOS); do $(call SCENARIO,$(OLDEST_LEG),$$s) || rc=1; done; exit $$rc; } \
	   > $(RESULTS)/lane-b.log 2>&1 & b=$$!; \
	 echo "make test: lab lane B in the background (pid $$b, $(RESULTS)/lane-b.log)"; \
	 rc=0; for t in $(LANE_A_FIRST); do $(MAKE) --no-print-directory $$t || rc=1; done; \
	 if $(LAB_BUILD) registry; then for s in $(LANE_A); do $(call SCENARIO,$(MAIN_LEG),$$s) || rc=1; done; else rc=1; fi; \
	 echo "make test: lane A done, waiting for lane B"; wait $$b; brc=$$?; grep -E '^matrix: .* in [0-9]+ s' $(RESULTS)/lane-b.log; \
	 [ $$brc = 0 ] || { echo "make test: lab lane B failed (rc $$brc); its last lines:"; tail -n 200 $(RESULTS)/lane-b.log; }; \
	 [ $$rc = 0 ] && [ $$brc = 0 ]

doubles-images: deps venv link  ## the doubles' own images built and run (Docker engine), as the lab uses them; the backend double on the lab's PostgreSQL and S3
	@# The lab's own steps inside the recorded step: a failure of theirs is kept with its lines (matrix.py show).
	@mkdir -p lab/.state
	OWLAT_DOUBLES_DOCKER=1 OWLAT_LAB_STORAGE=1 $(MATRIX) exec $(MAIN_LEG) doubles-images -- bash -c \
	  '$(LAB_BUILD) images && $(LAB_BUILD) storage && exec pytest -q tests/doubles/test_images.py tests/doubles/test_storage.py'

runner: deps venv link  ## site.yml, upgrade.yml and status.yml through ansible-runner, as AWX runs them
	$(PY) lab/lab.py registry
	$(MATRIX) exec $(MAIN_LEG) runner -- pytest -q tests/runner

# make test: the main line's venv, then the sanity + unit matrix and lint in the background (it builds the other legs'
# venvs, about 30 s each, and needs no lab; log in tests/matrix/results/matrix.log) while the lab lanes run the lab
# build, Molecule and the runner test; then the matrix is waited for and every leg's steps and the README table are
# checked.
test: deps venv link
	@mkdir -p $(RESULTS) && rm -rf $(RESULTS)/core-* $(RESULTS)/lane-b.log
	@# A copy of the collection left in ~/.ansible by an older Molecule prerun would shadow the checkout.
	@rm -rf $(HOME)/.ansible/collections/ansible_collections/owlat
	@# Niced: the lab lanes have health gates with timeouts, the matrix has none.
	@# Lint too: it needs no lab, and lane B starts its scenarios 3 minutes earlier.
	@nice -n 10 bash -c '$(MATRIX) quick; q=$$?; $(MAKE) --no-print-directory lint; l=$$?; [ $$q = 0 ] && [ $$l = 0 ]' \
	  > $(RESULTS)/matrix.log 2>&1 & bg=$$!; \
	  echo "make test: sanity + unit matrix and lint in the background (pid $$bg, $(RESULTS)/matrix.log)"; \
	  $(MAKE) --no-print-directory lanes LANE_A_FIRST=doubles-images; rc=$$?; \
	  echo "make test: waiting for the matrix"; wait $$bg; mrc=$$?; \
	  grep -E '^matrix: .*(pass|FAIL) in' $(RESULTS)/matrix.log; \
	  [ $$mrc = 0 ] || { echo "make test: matrix or lint failed (rc $$mrc), see $(RESULTS)/matrix.log"; \
	    grep -E '^(FAILED|ERROR)' $(RESULTS)/matrix.log | head -40; }; \
	  $(MAKE) --no-print-directory matrix-check; crc=$$?; \
	  [ $$rc = 0 ] && [ $$mrc = 0 ] && [ $$crc = 0 ]

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
	rm -rf .collections owlat-selfhost-*.tar.gz $(RESULTS)
