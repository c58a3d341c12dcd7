"""A new SQLite store is made whole or not at all: a Ctrl-C while MLflow creates its tables leaves nothing that a
later search cannot open."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import _cli_env
from mlflow.tracking import MlflowClient

# Ctrl-C (SIGINT to itself) as MLflow's migration `at` runs: the first, or the last, which stamps the newest schema.
INTERRUPTED = """
import logging, os, signal, sys
from pathlib import Path

import mlflow
from alembic.script import ScriptDirectory

from stacktune.search.tracking import store

uri, at = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, even if started with it ignored
head = ScriptDirectory(str(Path(mlflow.__file__).parent / "store" / "db_migrations")).get_current_head()
steps = []


class Interrupt(logging.Handler):
    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Running upgrade"):
            steps.append(message)
            if (at == "first" and len(steps) == 1) or (at == "last" and f"-> {head}" in message):
                os.kill(os.getpid(), signal.SIGINT)


migration = logging.getLogger("alembic.runtime.migration")
migration.setLevel(logging.INFO)
migration.addHandler(Interrupt())
store.client(uri)
print(len(steps))
"""


@pytest.mark.parametrize("at", ["first", "last"])
def test_a_store_whose_creation_is_interrupted_is_absent_or_whole(tmp_path, at):
    path = tmp_path / "mlflow.db"
    uri = f"sqlite:///{path}"
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED, uri, at],
        cwd=tmp_path,
        env=_cli_env({"MLFLOW_LOGGING_LEVEL": "INFO"}),  # Alembic's lines reach the handler
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr, done.stdout + done.stderr[-3000:]
    # Nothing half-made is left beside the store, and the next search opens it (or makes it) as if new.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".mlflow.db.lock") in ([], ["mlflow.db"])
    client = MlflowClient(tracking_uri=uri)  # MLflow's own client, which refuses a store at an older schema
    assert [e.name for e in client.search_experiments()] == ["Default"]
    experiment_id = client.create_experiment("after")
    assert client.get_experiment(experiment_id).name == "after"
