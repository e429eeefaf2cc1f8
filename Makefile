# reelforge: `make serve` or `make demo` to run it, `make test` to test it, `make check` before a push.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SDK_VENV := .venv-aimlapi
# The AI/ML API's own SDK, pinned, in its own environment: its wheel carries its own `openai`.
AIMLAPI_SDK := aimlapi-sdk-python==2.24.0rc1
OPENAI_VENV := .venv-openai
# OpenAI's own SDK (`client.videos`), pinned, in its own environment, for the /v1/videos dialect.
OPENAI_SDK := openai==3.57.0
# The API fuzzer, pinned, in its own environment: its dependencies (hypothesis, werkzeug, ...)
# stay out of the project's.
FUZZ_VENV := .venv-schemathesis
SCHEMATHESIS := schemathesis==4.32.5

.PHONY: install serve demo scale-demo test test-fast check lint format sdk-env openai-env fuzz-env clean

# `install` alone says how to get `reelforge` on PATH; the targets below install silently.
install: $(VENV)/.installed
	@echo 'reelforge is installed in $(VENV). To run `reelforge ...` as README.md types it,'
	@echo 'activate the environment in your shell (once per shell):'
	@echo '    source $(VENV)/bin/activate'
	@echo 'or call it as $(BIN)/reelforge. Torch: $(shell $(BIN)/python -c "import torch; print(torch.__version__)" 2>/dev/null) (README.md, Set up: CPU or CUDA).'

# Re-installs only when the project's dependencies change.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

sdk-env: $(SDK_VENV)/.installed

$(SDK_VENV)/.installed: Makefile
	@test -x $(SDK_VENV)/bin/python || $(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet '$(AIMLAPI_SDK)' requests
	@touch $@

openai-env: $(OPENAI_VENV)/.installed

$(OPENAI_VENV)/.installed: Makefile
	@test -x $(OPENAI_VENV)/bin/python || $(PYTHON) -m venv $(OPENAI_VENV)
	$(OPENAI_VENV)/bin/python -m pip install --quiet '$(OPENAI_SDK)'
	@touch $@

fuzz-env: $(FUZZ_VENV)/.installed

$(FUZZ_VENV)/.installed: Makefile
	@test -x $(FUZZ_VENV)/bin/python || $(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/python -m pip install --quiet '$(SCHEMATHESIS)'
	@touch $@

serve: $(VENV)/.installed
	$(BIN)/reelforge serve

demo: $(VENV)/.installed
	$(BIN)/python -m reelforge.demo --out out

# Two API replicas and two workers on one PostgreSQL and a bundled SeaweedFS (README,
# "Scaling out"); REELFORGE_DATABASE_URL names the database (default: the local test one).
scale-demo: $(VENV)/.installed
	$(BIN)/python scripts/scale_demo.py

test: $(VENV)/.installed sdk-env openai-env fuzz-env
	$(BIN)/python -m pytest

# Everything not marked slow (no reelforge server processes, no diffusers pipelines): the
# inner loop, one pytest process per core (at most 4).
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not slow" -n auto --maxprocesses=4

lint: $(VENV)/.installed
	$(BIN)/ruff check reelforge tests benchmarks scripts
	$(BIN)/ruff format --check reelforge tests benchmarks scripts
	$(BIN)/mypy

format: $(VENV)/.installed
	$(BIN)/ruff format reelforge tests benchmarks scripts
	$(BIN)/ruff check --fix reelforge tests benchmarks scripts

check: lint test

clean:
	rm -rf $(VENV) $(SDK_VENV) $(OPENAI_VENV) $(FUZZ_VENV) .mypy_cache .ruff_cache .pytest_cache out
