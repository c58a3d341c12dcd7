"""The locks that keep one search per name: the folder's flock and the study storage's heartbeat lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import optuna
import pytest

from stacktune.search.engine import locks
from stacktune.search.errors import ConfigError

_HOLD = """
import sys, time
from stacktune.search.engine.locks import folder_lock
with folder_lock(sys.argv[1], "demo"):
    print("held", flush=True)
    time.sleep(600)
"""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_folder_lock_held_by_a_live_process_is_refused_with_its_pid_and_taken_once_it_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError) as refused:
            with locks.folder_lock(tmp_path, "demo"):
                pass
        message = str(refused.value)
        assert f"pid {holder.pid} on {socket.gethostname()}" in message and "already running" in message
        assert "\n" not in message
        with locks.folder_lock(tmp_path, "other"):  # a lock is per name
            pass
    finally:
        holder.kill()
        holder.wait()
    # Killed without a chance to clean up: the system released its lock.
    with locks.folder_lock(tmp_path, "demo") as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_refused_search_leaves_the_holders_lock_file_as_it_was(tmp_path):
    with locks.folder_lock(tmp_path, "demo") as path:
        written = path.read_text()
        for _ in range(2):  # the second refusal still names the holder: the first did not empty its file
            child = subprocess.run([sys.executable, "-c", _HOLD, str(tmp_path)], capture_output=True, text=True)
            assert f"pid {os.getpid()} on " in child.stderr, child.stderr
        assert path.read_text() == written
    assert path.exists()  # kept on release, so that a process waiting on it never locks an orphan


def test_a_folder_that_cannot_be_made_gives_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"cannot use --out .*file"):
        with locks.folder_lock(tmp_path / "file", "demo"):
            pass


@pytest.fixture
def storage(tmp_path):
    return optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/studies.db")


def _plant(storage, name: str, **who) -> None:
    """A lock study as another process would have left it."""
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], f"{name}.lock")
    for key, value in who.items():
        storage.set_study_user_attr(study_id, key, value)


def test_a_storage_lock_refuses_a_second_holder_and_is_released(storage):
    with locks.storage_lock(storage, "demo"):
        with pytest.raises(ConfigError, match=rf"'demo' is already running \(pid {os.getpid()} on "):
            with locks.storage_lock(storage, "demo"):
                pass
        with locks.storage_lock(storage, "demo-2"):
            pass
    assert "demo.lock" not in [s.study_name for s in storage.get_all_studies()]
    with locks.storage_lock(storage, "demo"):
        pass


def test_a_storage_lock_whose_process_is_gone_is_taken_over_at_once(storage):
    _plant(storage, "demo", pid=_dead_pid(), host=socket.gethostname(), heartbeat=time.time())
    with locks.storage_lock(storage, "demo"):
        study_id = storage.get_study_id_from_name("demo.lock")
        assert storage.get_study_user_attrs(study_id)["pid"] == os.getpid()


def test_a_storage_lock_on_another_host_is_kept_while_its_heartbeat_is_fresh(storage):
    _plant(storage, "demo", pid=1, host="elsewhere", since="2026-01-01 00:00:00", heartbeat=time.time())
    with pytest.raises(ConfigError, match=r"pid 1 on elsewhere, since 2026-01-01 00:00:00"):
        with locks.storage_lock(storage, "demo"):
            pass


def test_a_storage_lock_whose_heartbeat_stopped_is_taken_over(storage):
    _plant(storage, "demo", pid=1, host="elsewhere", heartbeat=time.time() - locks.STALE_AFTER - 5)
    with locks.storage_lock(storage, "demo"):
        pass


def test_the_heartbeat_keeps_a_held_lock_fresh(storage, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_EVERY", 0.1)
    with locks.storage_lock(storage, "demo"):
        study_id = storage.get_study_id_from_name("demo.lock")
        first = storage.get_study_user_attrs(study_id)["heartbeat"]
        time.sleep(0.5)
        assert storage.get_study_user_attrs(study_id)["heartbeat"] > first


def test_staleness_rules():
    now = time.time()
    here = socket.gethostname()
    assert locks.is_stale({})  # never said who it is
    assert not locks.is_stale({"pid": os.getpid(), "host": here, "heartbeat": now})
    assert locks.is_stale({"pid": _dead_pid(), "host": here, "heartbeat": now})
    assert not locks.is_stale({"pid": 1, "host": "elsewhere", "heartbeat": now - 10})
    assert locks.is_stale({"pid": 1, "host": "elsewhere", "heartbeat": now - locks.STALE_AFTER - 1})
