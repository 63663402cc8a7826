# The two commands a new user needs: `make run` and `make test`.
# Both create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench client-tools postman

$(BIN)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./clients/python -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install  ## start the service on http://127.0.0.1:8000 with an embedded SQLite database
	FACEMATCH_ENVIRONMENT=$${FACEMATCH_ENVIRONMENT:-development} $(BIN)/facematch serve

lint: install  ## ruff, mypy on src/, import-linter contracts (pyproject.toml)
	$(BIN)/ruff check src tests bench clients/python/src
	$(BIN)/ruff format --check src tests bench clients/python/src
	$(BIN)/mypy src/facematch
	$(BIN)/lint-imports

# PostgreSQL tests run when FACEMATCH_TEST_POSTGRES_URL names a server; when it
# is unset and a local server answers on 127.0.0.1:5432, its `test` database is
# used. Set it to an empty string to run SQLite only.
PG_DEFAULT_URL := postgresql+psycopg://postgres@127.0.0.1:5432/test

test: install lint  ## lint, then the whole test suite
	@if [ -z "$${FACEMATCH_TEST_POSTGRES_URL+set}" ] && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
		echo "make test: PostgreSQL answers on 127.0.0.1:5432; its tests use $(PG_DEFAULT_URL)"; \
		export FACEMATCH_TEST_POSTGRES_URL=$(PG_DEFAULT_URL); \
	fi; \
	$(BIN)/pytest

client-tools:  ## chromium and newman for the client tests (they skip, saying why, without them)
	.ci/client-tools

postman: install  ## regenerate clients/postman from the OpenAPI document
	$(BIN)/facematch postman --output clients/postman

bench: install
	$(BIN)/python -m bench.stages
