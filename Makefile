# ocync: see README.md. Every target installs what it needs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench stress mock clean

install: $(STAMP)

# pip's output goes to $(VENV)/install.log so that `make demo` prints the demo, not the install;
# the log's tail is shown if the install fails.
$(STAMP): pyproject.toml
	@echo "installing ocync and its test dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(PY) -m venv $(VENV)
	@{ $(BIN)/pip install --upgrade pip && $(BIN)/pip install -e '.[test]'; } >$(VENV)/install.log 2>&1 \
		|| { tail -n 30 $(VENV)/install.log; echo "make: installing into $(VENV) failed (full log: $(VENV)/install.log)" >&2; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m stress.demo

test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check ocync mockregistry stress tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m stress.bench $(BENCH_ARGS)

stress: $(STAMP)
	$(BIN)/python -m stress.ratelimit_scenarios $(STRESS_ARGS)

mock: $(STAMP)
	$(BIN)/ocync-mockregistry serve --host 127.0.0.1 --port 5000 $(MOCK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
