# Two entry points: `make demo` and `make test`. Everything else is a helper of those.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Arize Phoenix (a trace store + UI, ~850 MB) lives in its own venv: its pins are not ours.
PHOENIX_VENV ?= .venv-phoenix
PHOENIX_REQUIREMENTS := deploy/phoenix-requirements.txt
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed
ORACLE_STAMP := $(VENV)/.oracles

.PHONY: venv demo test test-fast docs docs-serve oracles lint format bench bench-tools bench-profile soak build services phoenix clean

# The page's chart library (uPlot, npm): installed from the committed lock, its dist files
# copied where the service serves them (service/ui/vendor, git-ignored, shipped in the bento).
UI_VENDOR := service/ui/vendor
UI_STAMP := $(UI_VENDOR)/.installed

$(STAMP): pyproject.toml $(UI_STAMP)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,dev,bench,demo,docs]"
	touch $(STAMP)

$(UI_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(UI_VENDOR)
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css \
	  node_modules/uplot/LICENSE $(UI_VENDOR)/
	touch $(UI_STAMP)

venv: $(STAMP)

$(PHOENIX_STAMP): $(PHOENIX_REQUIREMENTS)
	test -x $(PHOENIX_VENV)/bin/python || $(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip install --quiet -r $(PHOENIX_REQUIREMENTS)
	touch $(PHOENIX_STAMP)

## Arize Phoenix in .venv-phoenix, for tests/e2e/test_phoenix.py and for browsing traces locally.
phoenix: $(PHOENIX_STAMP)

## make demo: train the demo model, serve it with 2 workers, drive traffic and labels, summarise.
demo: $(STAMP)
	$(PY) -m demo $(DEMO_ARGS)

## make test: install what the tests need (system services included) and run the whole suite.
## MONITOR_TEST_ORACLES=required: an oracle library that cannot be imported fails its tests.
test: $(STAMP) services phoenix oracles docs
	MONITOR_TEST_ORACLES=required $(PY) -m pytest

# confseq (Howard et al.'s confidence-sequence library), the independent oracle of
# instrumentation/metrics/sequential.py. Its sdist pins pybind11~=2.6, which does not build on
# Python 3.11: built here without build isolation against a current pybind11 and Debian's
# Boost headers (libboost-dev, from `make services`), ~1 min once.
$(ORACLE_STAMP): $(STAMP)
	$(PY) -m pip install --quiet "pybind11>=2.10" scikit-build cmake ninja
	$(PY) -m pip install --quiet --no-build-isolation confseq==0.0.10
	touch $(ORACLE_STAMP)

## Independent implementations the tests compare the statistics with.
oracles: services $(ORACLE_STAMP)

## Unit and in-process service tests only (no servers started). The store tests run every
## contract against PostgreSQL too (they fail, never skip, without it): `services` installs
## it first (root: apt-get), and the tests start a private cluster of their own.
test-fast: $(STAMP) services
	$(PY) -m pytest tests/unit tests/service

## The docs site: reference pages generated from the code's tables, then a strict build
## (a broken link or anchor fails) into site/. docs-serve: the same, live, on 127.0.0.1:8000.
docs: $(STAMP)
	$(PY) docs/gen_reference.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(STAMP)
	$(PY) docs/gen_reference.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --strict --dev-addr 127.0.0.1:8000

## System packages the end-to-end tests run for real (installed once, started by the tests).
services:
	@bash deploy/install-services.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## make bench: served overhead (template vs bare BentoML, real servers, wrk), then the
## in-process benches; writes bench/RESULTS.md. `make bench BENCH_ARGS=--quick`: under 5 min.
bench: $(STAMP) bench-tools
	$(PY) -m bench.run_all $(BENCH_ARGS)

## py-spy on one template worker under wrk load; writes "Where the time goes" in bench/RESULTS.md.
bench-profile: $(STAMP) bench-tools
	$(PY) -m bench.profile_served $(PROFILE_ARGS)

## wrk (Debian) for the served benchmark, installed when missing.
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  SUDO=""; [[ $$(id -u) -eq 0 ]] || SUDO="sudo"; \
	  echo "installing wrk (Debian package)"; \
	  $$SUDO apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk >/dev/null; }; }

## make soak: a real server (2 workers) under steady traffic for 10 minutes while its OTLP
## backend flaps (up, down, blackholed); per-minute RSS, descriptors, store, spool, latency;
## pass/fail at the end. `make soak SOAK_ARGS="--minutes 3"` for a shorter run.
soak: $(STAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)

build: $(STAMP)
	$(PY) -m service.train
	$(VENV)/bin/bentoml build

clean:
	rm -rf .monitor demo-output site .pytest_cache .mypy_cache .ruff_cache
