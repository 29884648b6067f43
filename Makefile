# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create .venv and install everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-slow lint demo bench clean k8s

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

test: lint
	$(BIN)/pytest -q

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

demo: $(STAMP)
	$(BIN)/pstreams demo

# deploy/k8s/topologies.yaml from its template, one StatefulSet per topology.
k8s: $(STAMP)
	$(BIN)/python deploy/k8s/render.py

# Re-record the replay fixtures of tests/fixtures/ and refresh their expected tables
# (docs/testing.md); FIXTURES names some of them, empty is all.
FIXTURES ?=
.PHONY: fixtures
fixtures: $(STAMP)
	$(BIN)/python -m tests.fixtures.refresh $(FIXTURES)

clean:
	-$(BIN)/pstreams local down
	rm -rf $(VENV) .local state

# Apache Flink itself, for the parity check (docs/parity.md). A separate virtualenv:
# apache-flink is large and never part of the project's own install.
FLINK_VENV := .venv-flink
FLINK_STAMP := $(FLINK_VENV)/.installed
# Dataset directories to check; empty: seed/demo and a generated shuffled, skewed one.
PARITY_DATASETS ?=

.PHONY: flink-venv parity

# The pipeline benchmark (docs/performance.md): Flink and ours on the same dataset in one
# run, figures per table, asserts nothing.
# BENCH_ARGS e.g. `--only item_shared_by_user_pair --dataset /tmp/bench-data --all-at-once`.
BENCH_ARGS ?=
bench: $(STAMP) $(FLINK_STAMP)
	$(BIN)/python bench/pipeline.py --flink-python $(FLINK_VENV)/bin/python $(BENCH_ARGS)

$(FLINK_STAMP):
	$(PYTHON) -m venv $(FLINK_VENV)
	$(FLINK_VENV)/bin/pip install --quiet --upgrade pip
	$(FLINK_VENV)/bin/pip install --quiet 'apache-flink==2.3.*'
	touch $(FLINK_STAMP)

flink-venv: $(FLINK_STAMP)

parity: $(STAMP) $(FLINK_STAMP)
	$(BIN)/python -m parity.run --flink-python $(FLINK_VENV)/bin/python $(PARITY_DATASETS)
