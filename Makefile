# The two commands the README promises: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck workflows system-packages install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/safeship demo

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# actionlint and zizmor (offline) on .github/workflows and action.yml.
workflows: $(STAMP)
	./scripts/lint-workflows.sh

system-packages:
	./scripts/install-system-packages.sh

test: lint typecheck workflows system-packages
	$(BIN)/pytest

bench: $(STAMP) system-packages
	$(BIN)/python benchmarks/blast_radius.py
	$(BIN)/python benchmarks/routers.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
