"""A journal whose last write was cut off is repaired; one damaged elsewhere is refused and left as it is."""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from stacktune.search.engine.studies import repair_journal
from stacktune.search.errors import ConfigError


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "optuna.journal"
    study = optuna.create_study(study_name="s.depth-1", storage=JournalStorage(JournalFileBackend(str(path))))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    return path


def _trials(path) -> int:
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.load_study(study_name="s.depth-1", storage=storage)
    return len([t for t in study.get_trials() if t.state.is_finished()])


def test_a_whole_journal_is_left_as_it_is(journal):
    before = journal.read_bytes()
    repair_journal(journal)
    assert journal.read_bytes() == before and _trials(journal) == 3


def test_a_last_record_cut_off_mid_write_is_set_aside_and_the_rest_reads(journal, caplog):
    whole = journal.read_bytes()
    journal.write_bytes(whole[:-30])  # the last record, the third trial's end, loses its tail
    # Optuna reads past a torn last line, but its next write would follow it and damage the journal for good.
    repair_journal(journal)
    data = journal.read_bytes()
    assert data.endswith(b"\n") and whole.startswith(data)
    (torn,) = journal.parent.glob("optuna.journal.torn-*")
    assert data + torn.read_bytes() == whole[:-30]
    assert _trials(journal) == 2
    assert "cut off mid-write" in caplog.text


def test_a_record_damaged_before_the_end_is_refused_and_nothing_changes(journal):
    lines = journal.read_bytes().split(b"\n")
    lines[2] = lines[2][:10]
    damaged = b"\n".join(lines)
    journal.write_bytes(damaged)
    with pytest.raises(ConfigError, match=r"optuna.journal is damaged at line 3 \(not a whole record\)"):
        repair_journal(journal)
    assert journal.read_bytes() == damaged
    assert not list(journal.parent.glob("optuna.journal.torn-*"))
