# The two commands the README promises: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck workflows audit system-packages install clean bench soak lock

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/safeship demo

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/ruff check src tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# actionlint and zizmor (offline) on .github/workflows and action.yml.
workflows: $(STAMP)
	./scripts/lint-workflows.sh

# Known vulnerabilities in the locked dependencies (skipped, not failed, when offline).
audit: $(STAMP)
	$(BIN)/python scripts/audit_dependencies.py

# requirements.lock from the current .venv: run after changing dependencies.
lock:
	$(BIN)/pip install --quiet -e '.[dev]'
	{ echo "# Every dependency of safeship[dev] at the versions tested; make lock regenerates it."; \
	  echo "# make install / make test install with these as constraints; pip-audit audits them."; \
	  $(BIN)/pip freeze --exclude-editable | grep -iv '^safeship\b'; } > requirements.lock

system-packages:
	./scripts/install-system-packages.sh

test: lint typecheck workflows audit system-packages
	$(BIN)/pytest

bench: $(STAMP) system-packages
	$(BIN)/python benchmarks/blast_radius.py
	$(BIN)/python benchmarks/routers.py
	$(BIN)/python benchmarks/report.py

# kill -9 at 50 random points of real rollouts per router, then resume (docs/reliability.md).
soak: $(STAMP) system-packages
	SAFESHIP_SOAK_POINTS=50 $(BIN)/pytest -q -s tests/integration/test_crash_resume.py
	SAFESHIP_SOAK_ROUNDS=3 $(BIN)/pytest -q tests/integration/test_rollout_routers.py \
	  tests/integration/test_kubernetes_sequences.py tests/integration/test_crash_loop.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
