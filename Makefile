# The two commands of the README. Both create or reuse .venv (and npm packages) themselves.
#   make publish                      # build + verify + publish meshnet_26 v1 to the embedded local hub
#   make test                         # the whole test suite (what CI runs)
VARIANT ?= meshnet_26
TAG ?= v1
CHECKPOINT ?=
ARGS ?=

.PHONY: setup publish build test bench clean

setup:
	@scripts/setup.sh

publish: setup
	.venv/bin/meshrelease publish $(VARIANT) --tag $(TAG) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(ARGS)

build: setup
	.venv/bin/meshrelease build $(VARIANT) --tag $(TAG) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(ARGS)

test: setup
	.venv/bin/python -m pytest -q $(ARGS)

bench: setup
	.venv/bin/python bench/bench_build.py $(ARGS)

clean:
	rm -rf releases .pytest_cache
