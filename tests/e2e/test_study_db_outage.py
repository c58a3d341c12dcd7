"""The study database goes down mid-search and comes back: the search waits for it and ends with its full budget.

The database is a PostgreSQL of the test's own (initdb and pg_ctl on a free port), never the machine's shared one.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from conftest import free_port, kill_group, start_cli, write_spec

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


class OwnPostgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1:PORT, run as the `postgres` user (initdb refuses root)."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="stacktune-pg-"))
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        user = pwd.getpwnam("postgres")
        os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._pg("initdb", "-D", str(self.folder / "data"), "-U", "postgres", "--auth=trust")

    def _pg(self, tool: str, *args: str) -> None:
        command = [str(PG_BIN / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder}"
        self._pg(
            "pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def own_postgres():
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL's initdb is not installed")
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def _finished(url: str, name: str) -> int:
    try:
        study = optuna.load_study(study_name=f"{name}.depth-1", storage=url)
    except KeyError:
        return 0
    return sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))


def test_a_study_database_outage_is_waited_out_and_the_budget_is_kept(tmp_path, own_postgres, mlflow_store):
    name, trials = "outage", 6
    spec = write_spec(
        tmp_path,
        name=name,
        depths=[1],
        trials_per_depth=trials,
        storage=own_postgres.url,
        train={"epochs": 20, "batch_size": 32, "patience": None},
    )
    uri = mlflow_store(tmp_path)
    driver = start_cli("search", spec, "--out", "out", "--json", "--tracking-uri", uri, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while _finished(own_postgres.url, name) < 1:
            assert driver.poll() is None, (tmp_path / "stderr").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial finished"
            time.sleep(0.3)
        own_postgres.stop()
        time.sleep(8)  # trials finish meanwhile; their tells wait for the database
        assert driver.poll() is None, "the search died with its study database"
        own_postgres.start()
        driver.wait(timeout=600)
    finally:
        kill_group(driver)
    stderr = (tmp_path / "stderr").read_text()
    assert driver.returncode == 0, stderr[-3000:]
    assert "the study database stopped answering" in stderr and "the study database answers again" in stderr
    (depth,) = json.loads((tmp_path / "stdout").read_text())["depths"]
    assert sum(depth["trials"].values()) == trials
    study = optuna.load_study(study_name=f"{name}.depth-1", storage=own_postgres.url)
    assert len([t for t in study.get_trials() if t.state.is_finished()]) == trials


def test_a_study_database_that_stays_down_ends_the_wait_in_one_line(own_postgres):
    from stacktune.search.engine.outage import WaitingStorage
    from stacktune.search.errors import UnreachableError

    url = own_postgres.url.replace("postgres@", "postgres:pw-in-url@")
    inner = optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    storage = WaitingStorage(inner, url, give_up_after=2.0)
    assert storage.get_all_studies() == []
    own_postgres.stop()
    started = time.monotonic()
    with pytest.raises(UnreachableError) as gave_up:
        storage.get_all_studies()
    assert 2.0 <= time.monotonic() - started < 30
    message = str(gave_up.value)
    assert "the study database has not answered for" in message and "--resume" in message
    assert "pw-in-url" not in message and "\n" not in message
