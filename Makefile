# The two commands: `make run` (set up, then start the whole system on the embedded default)
# and `make test` (set up, then run every check and test).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup services system-packages lint typecheck imports pytest demo clean

$(STAMP): pyproject.toml sfu/_native.c
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

# The suite in two runs: unit and integration tests on $(PYTEST_WORKERS) workers (pytest-xdist; each worker
# has its own PostgreSQL database, Redis prefix, ports and data directories), then media, browser and system
# tests one at a time, since they judge media and pages in real time. Both runs go even when the first
# fails, so one `make test` reports everything. PYTEST_ARGS=... runs one pytest with those arguments instead.
PYTEST_WORKERS ?= 2
pytest: $(STAMP)
ifdef PYTEST_ARGS
	$(BIN)/python -m pytest $(PYTEST_ARGS)
else
	@status=0; \
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --kinds unit,integration || status=$$?; \
	$(BIN)/python -m pytest --kinds media,browser,system || status=$$?; \
	exit $$status
endif

test: $(STAMP) system-packages services lint typecheck imports pytest

demo: $(STAMP)
	$(BIN)/tiepdan demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
