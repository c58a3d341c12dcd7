"""What mattered in a depth's study: Optuna's default importance evaluator, and its name recorded beside the numbers."""

from __future__ import annotations

import math

import optuna
import pytest

from stacktune.search.engine.studies import importance

# The name stacktune records for each of Optuna's evaluators.
NAMES = {
    "PedAnovaImportanceEvaluator": "PED-ANOVA",
    "FanovaImportanceEvaluator": "fANOVA",
    "MeanDecreaseImpurityImportanceEvaluator": "mean decrease impurity",
}


def _study(n_trials: int = 30) -> optuna.Study:
    """Validation loss driven by `lr` alone; `units_0` and `dropout` barely move it."""

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        units = trial.suggest_int("units_0", 8, 128)
        dropout = trial.suggest_float("dropout", 0.0, 0.5)
        return (math.log10(lr) + 3.0) ** 2 + 1e-3 * units / 128 + 1e-3 * dropout

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=3))
    study.optimize(objective, n_trials=n_trials)
    return study


def _default_evaluator(study: optuna.Study, monkeypatch) -> str:
    """The class Optuna's get_param_importances uses when given no evaluator."""
    used: list[str] = []
    for name in optuna.importance.__all__:
        cls = getattr(optuna.importance, name)
        if isinstance(cls, type) and cls is not optuna.importance.BaseImportanceEvaluator:

            def spy(self, *args, _evaluate=cls.evaluate, **kwargs):
                used.append(type(self).__name__)
                return _evaluate(self, *args, **kwargs)

            monkeypatch.setattr(cls, "evaluate", spy)
    optuna.importance.get_param_importances(study)
    monkeypatch.undo()
    assert len(used) == 1
    return used[0]


def test_the_dominant_parameter_comes_first_and_the_method_is_optunas_default(monkeypatch):
    study = _study()
    values, method = importance(study)

    assert values is not None
    assert next(iter(values)) == "lr"
    assert values["lr"] > 0.5 and values["lr"] == max(values.values())
    assert set(values) == {"lr", "units_0", "dropout"}
    assert sum(values.values()) == pytest.approx(1.0)
    assert method == NAMES[_default_evaluator(study, monkeypatch)] == "PED-ANOVA"
    # The numbers are Optuna's default evaluator's own.
    assert values == pytest.approx(optuna.importance.get_param_importances(study))


def test_importance_is_reproducible():
    assert importance(_study()) == importance(_study())


@pytest.mark.parametrize("n_trials", [0, 1])
def test_too_few_completed_trials_say_nothing(n_trials):
    assert importance(_study(n_trials)) == (None, None)


def test_pruned_and_failed_trials_do_not_count():
    study = _study(1)
    study.add_trial(
        optuna.trial.create_trial(
            params={"lr": 0.01, "units_0": 16, "dropout": 0.1},
            distributions=study.trials[0].distributions,
            state=optuna.trial.TrialState.PRUNED,
        )
    )
    assert importance(study) == (None, None)
