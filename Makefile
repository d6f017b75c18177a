# steadydancer-runpod — every target installs what it needs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
NPM_STAMP := node_modules/.install-stamp
VENV_STAMP := $(VENV)/.install-stamp
RESULTS := .test-results
CLI := node bin/steadydancer.js

help:
	@echo "make run    - the whole build-and-test plan as far as this machine allows, ending in a report"
	@echo "make test   - every test that can run here (TypeScript + Python), with a summary"
	@echo "make lint   - steadydancer lint on the repository"
	@echo "make build  - build the image (steadydancer build)"
	@echo "make bench  - run the benchmarks in bench/"

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

node-deps: $(NPM_STAMP)

# uv makes the 4 GB torch install a cache hit after the first time.
$(VENV_STAMP): comfyui-steadydancer/requirements-dev.txt comfyui-steadydancer/requirements-nodeps.txt
	python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv==0.9.7
	test -x $(PY) || python3 -m uv venv --quiet --python python3 $(VENV)
	python3 -m uv pip install --quiet --python $(PY) -r comfyui-steadydancer/requirements-dev.txt
	python3 -m uv pip install --quiet --python $(PY) --no-deps -r comfyui-steadydancer/requirements-nodeps.txt
	touch $@

venv: $(VENV_STAMP)

# Host programs the tests use (shellcheck for lint SH001); idempotent, never fails.
tools:
	bash scripts/ensure-tools.sh

typecheck: node-deps
	npx tsc -p tsconfig.json --noEmit

test: node-deps venv tools
	rm -rf $(RESULTS) && mkdir -p $(RESULTS)
	# A Docker engine for the image tests: installs docker.io + debootstrap when missing (root),
	# starts dockerd, makes the stand-in base. Never fails the run: the tests skip loudly instead.
	scripts/ensure-docker.sh --base || echo "ensure-docker failed: image tests will skip"
	# ffmpeg/ffprobe (media checks) and shellcheck when missing (root + apt-get); never fails
	scripts/ensure-tools.sh
	npx tsc -p tsconfig.json --noEmit
	status=0; \
	STEADYDANCER_PYTHON=$(abspath $(PY)) npx vitest run --reporter=default --reporter=json --outputFile.json=$(RESULTS)/vitest.json || status=$$?; \
	$(PY) -m pytest comfyui-steadydancer/tests -q -rs --junitxml=$(RESULTS)/pytest.xml || { s=$$?; [ $$s -eq 5 ] || status=$$s; }; \
	npx tsx scripts/test-summary.ts $(RESULTS); \
	exit $$status

lint: node-deps tools
	$(CLI) lint

run: node-deps venv tools
	STEADYDANCER_PYTHON=$(abspath $(PY)) $(CLI) run $(RUN_ARGS)

build: node-deps
	$(CLI) build

bench: node-deps venv
	@ls bench/*.ts >/dev/null 2>&1 && for b in bench/*.bench.ts; do npx tsx $$b; done || echo "no benchmarks yet"

clean:
	rm -rf dist $(RESULTS)

.PHONY: help node-deps venv tools typecheck test lint run build bench clean
