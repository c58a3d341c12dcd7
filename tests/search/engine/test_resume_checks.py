"""What a resume refuses before it touches the studies, read through Optuna's own storage."""

from __future__ import annotations

import optuna
import pytest

from stacktune.search.engine.studies import check_resume_budget, study_name
from stacktune.search.errors import ConfigError
from stacktune.search.spec.schema import SearchSpec


def _spec(**overrides) -> SearchSpec:
    raw = {"name": "resumed", "dataset": {"name": "sine", "length": 300, "window": 8}, "depths": [1, 2]}
    return SearchSpec.model_validate({**raw, "trials_per_depth": 3, **overrides})


def _ran(storage, depth: int, trials: int) -> None:
    study = optuna.create_study(study_name=study_name("resumed", depth), storage=storage)
    for _ in range(trials):
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)


def test_a_resume_with_no_study_of_the_search_is_refused_in_one_line():
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="another.depth-1", storage=storage)
    with pytest.raises(ConfigError, match="nothing to resume: the study storage holds no study of a search named"):
        check_resume_budget(_spec(), storage)


def test_a_resume_of_one_depth_s_study_goes_on_and_a_lower_budget_is_refused():
    storage = optuna.storages.InMemoryStorage()
    _ran(storage, 1, 2)
    check_resume_budget(_spec(), storage)  # depth 2 has no study yet: it starts on resume
    with pytest.raises(ConfigError, match="cannot resume with trials_per_depth 1: trials already run: depth 1 2"):
        check_resume_budget(_spec(trials_per_depth=1), storage)
