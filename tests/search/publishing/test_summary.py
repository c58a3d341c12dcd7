"""A finished search's summary, built from real Optuna studies and logged to a real MLflow store."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from stacktune.models.lstm import LSTMConfig, StackedLSTM, load_model, save_model
from stacktune.models.train import evaluate
from stacktune.search.contracts import TrialResult
from stacktune.search.engine.space import TrialSpace
from stacktune.search.engine.studies import prepare_studies, study_name
from stacktune.search.publishing.summary import summarise
from stacktune.search.spec.loading import load_data
from stacktune.search.spec.schema import SearchSpec
from stacktune.search.tracking import store, tags
from stacktune.search.tracking.run_tree import open_run_tree
from stacktune.search.tracking.trial_runs import TrialRuns
from stacktune.search.verdict.comparison import Comparison

optuna.logging.set_verbosity(optuna.logging.WARNING)

TRIALS = 4
# Per depth: (state, value) of each trial, in the order they ran. Depth 2 has the lowest best.
OUTCOMES = {
    1: [("ok", 0.80), ("ok", 0.55), ("ok", 0.70), ("ok", 0.95)],
    2: [("ok", 0.60), ("pruned", None), ("ok", 0.42), ("failed", None)],
}


class FakeTrial:
    """What TrialRuns reads of a Ray Tune Trial."""

    def __init__(self, trial_id: str, config: dict):
        self.trial_id, self.config = trial_id, config
        self.last_result: dict = {}
        self.checkpoint = None
        self.error_file = None

    def get_error(self):
        return None


def _spec(name: str) -> SearchSpec:
    return SearchSpec.model_validate(
        {
            "name": name,
            "dataset": {"name": "sine", "window": 12},
            "depths": [1, 2],
            "trials_per_depth": TRIALS,
            "space": {"units": [8, 16, 32], "lr": [1e-3, 1e-2], "dropout": [0.0, 0.3]},
            "sampler": {"kind": "random"},
            "evaluation": {"seeds": 0},
            "seed": 3,
        }
    )


def _ray_id(depth: int, number: int) -> str:
    return f"r{depth}x{number:03d}"


def _run_trials(spec: SearchSpec, studies: dict, route: dict[str, TrialRuns]) -> None:
    """Each depth's trials, asked and told as the searcher does; a trial in `route` also goes through its callback."""
    for depth, outcomes in OUTCOMES.items():
        study = studies[(depth, 1)]
        for state, value in outcomes:
            trial = study.ask()
            ray_id = _ray_id(depth, trial.number)
            trial.set_user_attr("ray_trial_id", ray_id)
            params = TrialSpace.of(spec).sample(trial, depth)
            epochs = 3 if state == "ok" else 1
            losses = [value + 0.1 * (epochs - e) for e in range(1, epochs + 1)] if value is not None else [2.0]
            callback = route.get(ray_id)
            if callback is not None:
                ray_trial = FakeTrial(ray_id, {"depth": depth, "number": trial.number, "params": params})
                callback.on_trial_start(iteration=0, trials=[], trial=ray_trial)
                for epoch, loss in enumerate(losses, start=1):
                    report = TrialResult(epoch=epoch, val_loss=loss, train_loss=loss, best_val_loss=min(losses[:epoch]))
                    callback.on_trial_result(iteration=epoch, trials=[], trial=ray_trial, result=report.to_report())
                final = TrialResult(
                    epoch=epochs, best_val_loss=value, final=True, params=100 * depth + trial.number, state="completed"
                ).to_report()
                callback.on_trial_result(iteration=epochs + 1, trials=[], trial=ray_trial, result=final)
                ray_trial.last_result = final
                callback.on_trial_complete(iteration=epochs + 1, trials=[], trial=ray_trial)
            trial.set_user_attr("epoch", epochs)
            trial.set_user_attr("train_seconds", 1.25 * epochs)
            trial.set_user_attr("params", 100 * depth + trial.number)
            if state == "ok":
                study.tell(trial, value)
            elif state == "pruned":
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, state=TrialState.FAIL)


@pytest.fixture
def search(tmp_path, monkeypatch, mlflow_store):
    """A search's studies, run tree and callback after every trial ended; the best of depth 2 ran before a resume."""
    monkeypatch.chdir(tmp_path)  # the store's default artifact root lands in the test's folder
    spec = _spec("summary-test")
    client = store.client(mlflow_store(tmp_path))
    tree = open_run_tree(client, spec, resume=False)
    studies = prepare_studies(spec, optuna.storages.InMemoryStorage(), resume=False)

    best = {d: min((i for i, (s, _) in enumerate(o) if s == "ok"), key=lambda i: o[i][1]) for d, o in OUTCOMES.items()}
    # Every completed trial of depth 1 goes through this process's callback.
    callback = TrialRuns(client=client, experiment_id=tree.experiment_id, spec=spec, depth_runs=tree.depth_runs)
    # Depth 2's best trial ran in a driver before a resume: an earlier callback logged it, Ray's storage kept
    # its checkpoint.
    earlier = TrialRuns(client=client, experiment_id=tree.experiment_id, spec=spec, depth_runs=tree.depth_runs)
    route = {_ray_id(1, i): callback for i, (s, _) in enumerate(OUTCOMES[1]) if s == "ok"}
    before = _ray_id(2, best[2])
    route[before] = earlier
    _run_trials(spec, studies, route)
    earlier.on_experiment_end(trials=[])
    checkpoint = tmp_path / "ray" / spec.name / f"trainable_{before}_0_depth=2-{before}" / "checkpoint_000002"
    checkpoint.mkdir(parents=True)
    data = load_data(spec.dataset, base_dir=None)
    weights = StackedLSTM(LSTMConfig(input_size=data.input_size, units=[8, 8], output_size=data.output_size))
    save_model(weights, checkpoint / "model.pt")
    (checkpoint / "config.yaml").write_text("model: {}\n")

    callback.on_experiment_end(trials=[])
    return {
        "spec": spec,
        "client": client,
        "tree": tree,
        "studies": studies,
        "callback": callback,
        "best": best,
        "earlier": earlier,
        "storage": str(tmp_path / "ray"),
        "data": data,
        "weights": checkpoint / "model.pt",
    }


def _summarise(s) -> Comparison:
    return summarise(
        s["spec"],
        s["studies"],
        client=s["client"],
        tree=s["tree"],
        trials=s["callback"],
        data=s["data"],
        storage_path=s["storage"],
    )


def test_each_depth_entry_holds_its_studys_best_and_budget(search):
    spec, studies = search["spec"], search["studies"]
    comparison = _summarise(search)

    assert [e.depth for e in comparison.depths] == spec.depths
    for entry in comparison.depths:
        study = studies[(entry.depth, 1)]
        assert study.study_name == study_name(spec.name, entry.depth)
        assert entry.best_val_loss == study.best_value
        assert entry.best_val_loss == min(v for s, v in OUTCOMES[entry.depth] if s == "ok")
        units = entry.best_config["model"]["units"]
        assert len(units) == entry.depth and set(units) <= {8, 16, 32}
        assert units == [study.best_trial.params[f"units_{i}"] for i in range(entry.depth)]
        assert entry.best_config["train"]["lr"] == study.best_trial.params["lr"]
        assert entry.best_config["dataset"]["name"] == "sine" and entry.best_config["dataset"]["window"] == 12
        assert entry.best_config["train"]["epochs"] == spec.train.epochs
        assert entry.params == 100 * entry.depth + study.best_trial.number
        assert entry.best_trial.name == tags.trial_name(entry.depth, study.best_trial.number)
        assert entry.best_trial.number == study.best_trial.number
        assert entry.mlflow_run_id == search["tree"].depth_runs[entry.depth]

        assert len(entry.expected_best) == spec.trials_per_depth
        assert all(a >= b - 1e-12 for a, b in zip(entry.expected_best[:-1], entry.expected_best[1:], strict=True))
        assert entry.expected_best[-1] >= entry.best_val_loss - 1e-12
        values = [v for s, v in OUTCOMES[entry.depth] if s == "ok"]
        assert entry.expected_best[0] == pytest.approx(sum(values) / len(values))
        assert len(entry.expected_best_std) == spec.trials_per_depth
        assert all(s >= 0 for s in entry.expected_best_std)
        assert entry.importance is None or set(entry.importance) <= set(study.best_trial.params)

    one, two = comparison.entry(1), comparison.entry(2)
    assert one.trials.to_dict() == {"completed": 4, "pruned": 0, "failed": 0}
    assert two.trials.to_dict() == {"completed": 2, "pruned": 1, "failed": 1}
    assert one.epochs == 4 * 3 and two.epochs == 3 + 1 + 3 + 1
    assert one.train_seconds == pytest.approx(1.25 * 12) and two.train_seconds == pytest.approx(1.25 * 8)
    # Dropout is searched only between layers.
    assert one.best_config["model"]["dropout"] == 0.0 and "dropout" not in studies[(1, 1)].best_trial.params
    assert two.best_config["model"]["dropout"] == studies[(2, 1)].best_trial.params["dropout"]

    assert comparison.best_depth == min(spec.depths, key=lambda d: studies[(d, 1)].best_value) == 2
    assert comparison.search == spec.name and comparison.task == "regression"
    assert comparison.trials_per_depth == TRIALS
    assert comparison.experiment_id == search["tree"].experiment_id
    assert comparison.mlflow_run_id == search["tree"].search_id
    assert comparison.dataset.name == "sine"
    assert comparison.baseline is None  # evaluation is off
    assert Comparison.from_dict(comparison.to_dict()).to_dict() == comparison.to_dict()


def test_the_best_trials_are_found_in_mlflow_and_tagged(search):
    client, tree, callback, earlier = search["client"], search["tree"], search["callback"], search["earlier"]
    comparison = _summarise(search)

    one, two = comparison.entry(1), comparison.entry(2)
    best1 = _ray_id(1, search["best"][1])
    best2 = _ray_id(2, search["best"][2])
    # Depth 1's best ran in this driver: its run, its curve.
    assert one.best_trial.mlflow_run_id == callback.run_ids[best1]
    assert one.val_curve == callback.curves[best1]
    # Depth 2's best ran before a resume: found by its Ray trial id; its curve is not this driver's to give.
    assert best2 not in callback.run_ids
    assert two.best_trial.mlflow_run_id == earlier.run_ids[best2]
    assert two.val_curve == []

    for entry in (one, two):
        depth_run = client.get_run(tree.depth_runs[entry.depth])
        assert depth_run.data.tags[tags.BEST_TRIAL] == entry.best_trial.name
        assert depth_run.data.tags[tags.BEST_RUN_ID] == entry.best_trial.mlflow_run_id
        assert depth_run.data.metrics["best_val_loss"] == pytest.approx(entry.best_val_loss)
        assert depth_run.data.metrics["trials_completed"] == entry.trials.completed
        assert depth_run.data.metrics["trials_pruned"] == entry.trials.pruned
        assert depth_run.data.metrics["epochs"] == entry.epochs
        params = depth_run.data.params
        assert params["depth"] == str(entry.depth)
        assert params["best.units_0"] == str(entry.best_config["model"]["units"][0])

        trial_run = client.get_run(entry.best_trial.mlflow_run_id)
        assert trial_run.info.run_name == entry.best_trial.name
        assert trial_run.data.tags[tags.BEST] == "true"
        assert trial_run.data.tags[tags.PARENT_RUN_ID] == tree.depth_runs[entry.depth]

    # Only the best trial of each depth is marked best.
    trial_runs = client.search_runs([tree.experiment_id], filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_TRIAL}'")
    marked = sorted(r.info.run_name for r in trial_runs if r.data.tags.get(tags.BEST) == "true")
    assert marked == sorted([one.best_trial.name, two.best_trial.name])

    # The checkpoint Ray's storage kept is attached to the run of the trial that ran before the resume.
    artifacts = {a.path for a in client.list_artifacts(two.best_trial.mlflow_run_id)}
    assert artifacts == {"model.pt", "config.yaml"}
    # Its model is an MLflow Model linked to that run, marked as the search's overall best, with the test loss of
    # those weights; depth 1's best left no checkpoint (none went through Ray here), so it has no model.
    assert one.model is None
    logged = client.get_logged_model(two.model.model_id)
    assert logged.source_run_id == two.best_trial.mlflow_run_id and logged.experiment_id == tree.experiment_id
    assert logged.tags[tags.OVERALL_BEST] == "true" and logged.tags[tags.MODEL_TRIAL] == two.best_trial.name
    expected = evaluate(load_model(search["weights"]), search["data"].test, task="regression")
    assert two.model.test_loss == pytest.approx(expected["loss"])
    assert two.model.uri == f"models:/{logged.model_id}"

    search_run = client.get_run(tree.search_id)
    assert search_run.data.tags[tags.BEST_DEPTH] == str(comparison.best_depth) == "2"
    assert search_run.data.metrics["best_val_loss"] == pytest.approx(min(e.best_val_loss for e in comparison.depths))
    assert search_run.data.metrics["best_val_loss_d1"] == pytest.approx(one.best_val_loss)
    assert search_run.data.metrics["best_val_loss_d2"] == pytest.approx(two.best_val_loss)


def test_a_depth_without_a_completed_trial_has_no_best(tmp_path, monkeypatch, mlflow_store):
    monkeypatch.chdir(tmp_path)
    spec = _spec("summary-none-done")
    client = store.client(mlflow_store(tmp_path))
    tree = open_run_tree(client, spec, resume=False)
    studies = prepare_studies(spec, optuna.storages.InMemoryStorage(), resume=False)
    for depth in spec.depths:
        for number in range(2):
            trial = studies[(depth, 1)].ask()
            TrialSpace.of(spec).sample(trial, depth)
            trial.set_user_attr("ray_trial_id", _ray_id(depth, number))
            if depth == 1:
                studies[(depth, 1)].tell(trial, state=TrialState.FAIL)
            else:
                studies[(depth, 1)].tell(trial, 0.3 + number)
    callback = TrialRuns(client=client, experiment_id=tree.experiment_id, spec=spec, depth_runs=tree.depth_runs)

    data = load_data(spec.dataset, base_dir=None)
    comparison = summarise(
        spec, studies, client=client, tree=tree, trials=callback, data=data, storage_path=str(tmp_path / "ray")
    )

    one, two = comparison.entry(1), comparison.entry(2)
    assert one.best_val_loss is None and one.best_config is None and one.best_trial is None
    assert one.trials.to_dict() == {"completed": 0, "pruned": 0, "failed": 2}
    assert one.expected_best == []
    assert two.best_val_loss == 0.3 and two.best_trial.mlflow_run_id is None  # no run of it anywhere
    assert comparison.best_depth == 2
    assert tags.BEST_TRIAL not in client.get_run(tree.depth_runs[1]).data.tags
    assert client.get_run(tree.depth_runs[2]).data.tags[tags.BEST_TRIAL] == tags.trial_name(2, 0)
    assert client.get_run(tree.search_id).data.tags[tags.BEST_DEPTH] == "2"
