# The two commands users need: `make demo` and `make test`. Both build .venv first. `make check` is the quick one
# for working on stacktune: ruff and the unit tests, in a few minutes.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test check test-deps test-stack test-floors lint bench venv clean

# The environment for working on stacktune: the package and its test tools.
venv: $(TEST_STAMP)

# PyTorch goes in first, pinned, so that resolving the project's own
# dependencies never pulls a CUDA build; TORCH_SPEC overrides it for GPU users.
# This is the package alone (what `make demo` needs); the test tools go in on top, for the targets that use them.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/stacktune search examples/demo.yaml

# The suite runs in PYTEST_WORKERS processes (pytest-xdist; 0 runs it in this one): one more than the machine has
# cores, at most 4, since every search in it starts a Ray with all the cores. One more, because its end-to-end tests
# spend much of their time waiting (Ray and servers starting, outages waited out, signals): on 2 cores, 3 workers ran
# the whole suite in 19 min 50 s against 25 min 22 s with 2 (4 took 22 min 24 s, the quick benchmarks
# then ran past their 15-minute limit). Each worker is handed whole test modules, so that a
# module's shared fixture (one search read back by many tests, one server) is built once; the modules with slow tests
# go first (tests/conftest.py).
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); n=$$((n + 1)); [ $$n -gt 4 ] && n=4; echo $$n)
PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Lint first: a style or import error fails in seconds, before the suite's minutes. The 30 slowest tests are listed
# at the end.
test: lint test-deps
	$(BIN)/python -m pytest -q $(PARALLEL) --durations=30 $(PYTEST_ARGS)

# For everyday work: lint and the unit tests, without the tests that run searches, servers, browsers or
# benchmarks (marked slow) and without tests/e2e and tests/bench (whole commands run as a user runs them).
check: lint
	$(BIN)/python -m pytest -q $(PARALLEL) -m "not slow and not stack and not floors" --durations=10 \
		--ignore=tests/e2e --ignore=tests/bench $(PYTEST_ARGS)

# The system packages the tests drive (Chromium, docker-compose): installed when missing, as root with apt.
test-deps:
	./tests/system-deps.sh

# docker-compose.yml started for real in a container engine of the test's own (needs root; about 12 minutes):
# images built, two Ray workers, a submitted search read back from MLflow. Not part of `make test`.
test-stack: $(TEST_STAMP)
	./tests/system-deps.sh stack
	$(BIN)/python -m pytest -q -m stack tests/stack $(PYTEST_ARGS)

# The oldest versions pyproject.toml allows (constraints/floors.txt), in a venv of their own: a real search on them
# with its studies in the PostgreSQL on 127.0.0.1:5432 (tests/floors). About 5 minutes on 2 cores from nothing.
FLOORS_VENV ?= .venv-floors
FLOORS_STAMP := $(FLOORS_VENV)/.installed

$(FLOORS_STAMP): pyproject.toml constraints/floors.txt
	rm -rf $(FLOORS_VENV)
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/pip install --quiet --upgrade pip
	$(FLOORS_VENV)/bin/pip install --quiet $(TORCH_SPEC)
	$(FLOORS_VENV)/bin/pip install --quiet -c constraints/floors.txt -e ".[postgres]" pytest
	touch $(FLOORS_STAMP)

test-floors: $(FLOORS_STAMP)
	$(FLOORS_VENV)/bin/python -m pytest -q -m floors tests/floors $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) $(FLOORS_VENV) stacktune-runs mlflow.db mlruns
