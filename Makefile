# loyalty-ledger: the two commands a newcomer needs are `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA_DIR ?= data
LISTEN ?= 127.0.0.1:50051

.PHONY: serve test install install-test postgres chromium proto bench lint typecheck clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# installed once per change of pyproject.toml (stamp files), not on every start
install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

## install and run the service on the embedded SQLite database in ./data:
## TLS with a local development CA (made once), every call needs a token
serve: install
	@test -f $(DATA_DIR)/certs/server.pem || $(BIN)/loyalty-ledger dev-certs --out $(DATA_DIR)/certs
	$(BIN)/loyalty-ledger serve --data-dir $(DATA_DIR) --listen $(LISTEN) --auth tokens \
	  --tls-cert $(DATA_DIR)/certs/server.pem --tls-key $(DATA_DIR)/certs/server.key

## install everything (PostgreSQL and Chromium too, if missing) and run the whole test suite,
## one pytest worker per core (pytest-xdist; each worker starts its own PostgreSQL cluster)
test: postgres chromium install-test
	$(BIN)/python -m pytest -n auto

postgres:
	bash scripts/ensure-postgres.sh

chromium:
	bash scripts/ensure-chromium.sh

## regenerate Python code from protos/ (checked in; a test guards freshness)
proto: install-test
	$(BIN)/python scripts/genproto.py

## benchmark: the secure default vs bare TLS echo (Earn, GetBalance), then PostgreSQL vs pgbench,
## then the bulk paths (import, verify, audit verify) vs bare chained inserts and SHA-256
bench: postgres install
	$(BIN)/python bench/bench_serve.py --postgres --json bench-results.json
	$(BIN)/python bench/bench_ingest.py --json bench-bulk-results.json

lint: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/ruff check ledger access audit loyalty_client tests bench scripts examples

typecheck: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
