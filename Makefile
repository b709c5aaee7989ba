# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AZURITE_VERSION := 3.37.0
AZURITE_DIR := .cache/azurite
AZURITE_STAMP := $(AZURITE_DIR)/.installed-$(AZURITE_VERSION)

.PHONY: setup demo test lint typecheck pytest bench soak emulator clean sample-data long-audio storage-emulator

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,ray]'
	touch $(STAMP)

demo: setup
	$(BIN)/python scripts/demo.py

test: setup lint typecheck pytest

lint: setup
	$(BIN)/ruff check pipeline tests bench scripts

typecheck: setup
	$(BIN)/mypy pipeline

pytest: setup storage-emulator
	$(BIN)/pytest

# Azurite, Azure Storage's emulator, for tests/storage (needs Node.js and npm; `make demo` does not).
# Without npm those tests skip on a workstation and fail under CI=true, so CI never passes them silently.
storage-emulator: $(AZURITE_STAMP)

$(AZURITE_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
		echo "installing azurite@$(AZURITE_VERSION) into $(AZURITE_DIR)"; \
		npm install --prefix $(AZURITE_DIR) --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION) \
			&& touch $@; \
	else \
		echo "npm not found: tests/storage will skip (install Node.js 20+ and npm to run them)"; \
	fi

bench: setup
	$(BIN)/python -m bench

soak: setup
	$(BIN)/python -m bench.soak
	# the commit stress test of tests/reliability at 25x its runs: short runs on a loaded host, each checked
	PIPELINE_STRESS_RUNS=300 $(BIN)/pytest -q -p no:cacheprovider --timeout 1800 tests/reliability/test_commit_invariant.py -k busy_host

emulator: setup
	$(BIN)/pipeline emulator --port $${PORT:-8000}

sample-data: setup long-audio
	$(BIN)/python scripts/build_sample_data.py

# sample_data/long_audio/ (git-ignored; `make demo` builds it too): a 30-minute recording and two clips.
long-audio: setup
	$(BIN)/python scripts/make_long_recording.py --if-missing

clean:
	rm -rf out .pytest_cache .ruff_cache .mypy_cache
