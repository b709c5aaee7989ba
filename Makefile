# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint typecheck pytest bench soak emulator clean sample-data

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/python scripts/demo.py

test: setup lint typecheck pytest

lint: setup
	$(BIN)/ruff check pipeline tests bench scripts

typecheck: setup
	$(BIN)/mypy pipeline

pytest: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m bench

soak: setup
	$(BIN)/python -m bench.soak

emulator: setup
	$(BIN)/pipeline emulator --port $${PORT:-8000}

sample-data: setup
	$(BIN)/python scripts/build_sample_data.py

clean:
	rm -rf out .pytest_cache .ruff_cache .mypy_cache
