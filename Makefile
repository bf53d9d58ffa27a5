# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# `make run` builds the demo models into ./models unless a models folder is configured.
CONFIGURED_MODELS := $(or $(SENTSERVE_MODELS_DIR),$(MODELS_BASE_DIR),$(shell grep -sE '^(SENTSERVE_MODELS_DIR|MODELS_BASE_DIR)=' .env))

.PHONY: run dev test lint format bench clean

run: $(RUN_STAMP) $(if $(CONFIGURED_MODELS),,models/.built)
	$(BIN)/sentserve serve

dev: $(RUN_STAMP) $(if $(CONFIGURED_MODELS),,models/.built)
	SENTSERVE_PROFILE=development $(BIN)/sentserve run

test: $(DEV_STAMP)
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

bench: $(DEV_STAMP)
	bash scripts/system-deps.sh
	$(BIN)/python bench/run.py

models/.built: | $(RUN_STAMP)
	$(BIN)/sentserve demo-models models
	touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(RUN_STAMP)

clean:
	rm -rf $(VENV) models bench/out .pytest_cache .mypy_cache .ruff_cache
