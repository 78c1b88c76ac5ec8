# The two commands of README.md, and the set-up both depend on.
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTEST := PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/pytest -p asyncio -p xdist.plugin

.PHONY: run test lint setup proto bench clean

## run: the whole system in one process, embedded defaults (SQLite, local files)
run: $(INSTALLED)
	$(BIN)/lkern run

## test: lint, type check and the whole test suite (starts the servers it needs)
test: lint
	$(PYTEST) -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .
	$(BIN)/mypy

setup: $(INSTALLED)

## bench: W1-W5 against the floor at 10k/100k/1M contacts (docs/benchmarks.md); not part of test
bench: $(INSTALLED)
	$(BIN)/python -m bench $(BENCH_ARGS)

## proto: regenerate src/lkern/proto from proto/
proto: $(INSTALLED)
	scripts/generate-proto

# uv installs the locked-down stack in seconds; plain pip is the fallback.
$(INSTALLED): pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	uv venv --quiet --allow-existing $(VENV)
	uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .bench
