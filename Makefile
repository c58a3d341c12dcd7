# The two commands users need: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-deps test-stack lint bench venv clean

venv: $(STAMP)

# PyTorch goes in first, pinned, so that resolving the project's own
# dependencies never pulls a CUDA build; TORCH_SPEC overrides it for GPU users.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stacktune search examples/demo.yaml

# Lint first: a style or import error fails in seconds, before the suite's minutes.
test: lint test-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The system packages the tests drive (Chromium, docker-compose): installed when missing, as root with apt.
test-deps:
	./tests/system-deps.sh

# docker-compose.yml started for real in a container engine of the test's own (needs root; about 12 minutes):
# images built, two Ray workers, a submitted search read back from MLflow. Not part of `make test`.
test-stack: $(STAMP)
	./tests/system-deps.sh stack
	$(BIN)/python -m pytest -q -m stack tests/stack $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) stacktune-runs mlflow.db mlruns
