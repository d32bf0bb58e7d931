# The two commands: `make run` (set up, then start the whole system on the embedded default)
# and `make test` (set up, then run every check and test).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup services system-packages lint typecheck imports pytest demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/tiepdan serve --seed-if-empty

system-packages:
	bash scripts/ensure-system-packages.sh

services:
	bash scripts/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: $(STAMP) system-packages services lint typecheck imports pytest

demo: $(STAMP)
	$(BIN)/tiepdan demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
