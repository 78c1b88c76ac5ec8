# The two commands of README.md, and the set-up both depend on.
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# uv from PATH; where there is none, the set-up installs it with pip and runs it
# as a module of that python3.
UV := $(if $(shell command -v uv 2>/dev/null),uv,python3 -m uv)
PYTEST := PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/pytest -p asyncio -p xdist.plugin

.PHONY: run test lint setup proto bench clean

## run: the whole system in one process, embedded defaults (SQLite, local files)
run: $(INSTALLED)
	$(BIN)/lkern run

## test: lint, type check and the whole test suite (starts the servers it needs)
test: lint
	$(PYTEST) -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(UV) lock --check
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .
	$(BIN)/mypy
	$(BIN)/lkern check

setup: $(INSTALLED)

## bench: W1-W7 against the floors at 10k/100k/1M contacts, 100k issues (docs/benchmarks.md); not part of test
bench: $(INSTALLED)
	$(BIN)/python -m bench $(BENCH_ARGS)

## proto: regenerate src/lkern/proto from proto/
proto: $(INSTALLED)
	scripts/generate-proto

# Exactly the versions in uv.lock (the express lane relies on FastAPI's
# internals: they change only with the lock), the project editable, in
# seconds; --locked refuses a lock that no longer matches pyproject.toml.
$(INSTALLED): pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --locked --extra dev
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .bench
