"""MLflow tag keys: each one defined once, in search/tracking/tags.py, and nowhere spelled out again."""

from __future__ import annotations

from pathlib import Path

from stacktune.search.tracking import tags

REPO = Path(__file__).resolve().parents[3]
SEARCH = REPO / "search"
TAGS_FILE = SEARCH / "tracking" / "tags.py"


def _keys() -> dict[str, str]:
    """Constant name -> value, for every module-level string constant of tags.py."""
    return {name: value for name, value in vars(tags).items() if name.isupper() and isinstance(value, str)}


def test_the_stacktune_keys_are_unique():
    keys = {name: value for name, value in _keys().items() if value.startswith("stacktune.")}
    assert len(keys) >= 10, keys  # the module holds them all: role, search, depth, state, ...
    values = list(keys.values())
    duplicated = {v: [n for n, w in keys.items() if w == v] for v in values if values.count(v) > 1}
    assert not duplicated
    # Keys MLflow and Ray accept, and that read as one dotted name.
    for value in values:
        assert value == value.strip() and " " not in value and "`" not in value and "'" not in value
        assert len(value) <= 250


def test_the_run_roles_are_distinct():
    roles = [tags.ROLE_SEARCH, tags.ROLE_DEPTH, tags.ROLE_TRIAL, tags.ROLE_EVAL, tags.ROLE_TRAIN]
    assert len(set(roles)) == len(roles)


def test_mlflows_own_keys():
    assert tags.PARENT_RUN_ID == "mlflow.parentRunId"
    assert tags.NOTE == "mlflow.note.content"


def test_trial_names():
    assert tags.trial_name(2, 7) == "d2-t07"
    assert tags.trial_name(1, 0) == "d1-t00"
    assert tags.trial_name(12, 123) == "d12-t123"


def test_no_other_file_spells_a_stacktune_key():
    assert TAGS_FILE.is_file()
    files = [p for p in SEARCH.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p != TAGS_FILE]
    assert any(p.suffix == ".py" for p in files)
    offenders = []
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if '"stacktune.' in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "tag keys belong in search/tracking/tags.py:\n" + "\n".join(offenders)
