# The two commands: `make demo` and `make test`. Both start with `make setup`.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST_ARGS ?=
# Test files run on two workers (pytest-xdist), each file whole on one worker: the playbook
# tests mostly wait on containers and health checks, and their sequences are file-scoped.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15

.PHONY: setup demo demo-faulty test test-fast lint ee

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

# A faulty release (v2-crashloop) promoted with auto-rollback: NO_GO, then back to the good one.
demo-faulty: setup
	@bash scripts/demo-faulty.sh

lint: setup
	$(BIN)/ruff check src plugins tests bench sandbox
	$(BIN)/ruff format --check src plugins tests bench sandbox
	$(BIN)/mypy
	$(BIN)/ansible-lint --profile production
	bash scripts/sanity.sh

test: setup lint
	$(PYTEST) $(PYTEST_ARGS)

# The quick loop: no lint, no tests marked slow.
test-fast: setup
	$(PYTEST) -m "not slow" -x $(PYTEST_ARGS)

# The execution environment (execution-environment.yml), built offline: base image by
# debootstrap, wheels downloaded beforehand, the collection from its tarball (docs/awx.md).
# Reused when an image from the same inputs exists; prints the build time and the size.
ee: setup
	@bash scripts/ee.sh
