# ocync: see README.md. Every target installs what it needs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench stress mock image chart-schema clean

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

# The container image (Dockerfile) with whichever builder this machine has.
IMAGE ?= ocync:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	@builder=$$(command -v docker || command -v podman || command -v buildah) \
		|| { echo "make image: no container builder (docker, podman or buildah) on PATH" >&2; exit 2; }; \
	case "$$builder" in *buildah) set -- bud;; *) set -- build;; esac; \
	"$$builder" "$$@" -t $(IMAGE) --build-arg VERSION=$(patsubst ocync:%,%,$(IMAGE)) .

# charts/ocync/values.schema.json from the config models (ocync schema) and the chart's values
chart-schema: $(STAMP)
	$(BIN)/python charts/values_schema.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
