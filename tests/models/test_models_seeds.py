"""fit_seeds: batched seeds give what one fit per seed gives, each with its own patience and divergence."""

import importlib
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from stacktune.datasets.types import Prepared, Split
from stacktune.models import LSTMConfig, StackedLSTM, TrainSettings, fit, load_model, save_model
from stacktune.models.seeds import batched_pays, fit_seeds

seeds_module = importlib.import_module("stacktune.models.seeds")

# Relative difference between a batched member's losses and its own fit's, after 3 epochs on these sets.
# Measured: at most 1e-6 (float rounding in a different order of the same sums); 1e-4 leaves room for other CPUs.
# Rounding grows where training is chaotic: at lr 0.3 the same sets reach 1e-4 within 3 epochs.
TOL = 1e-4
SEEDS = [0, 1, 5]


def series_data() -> Prepared:
    """A noisy sine cut into windows of 8 steps, next value as target."""
    rng = np.random.default_rng(0)
    s = (np.sin(np.arange(140) / 4) + 0.1 * rng.normal(size=140)).astype(np.float32)
    x = np.stack([s[i : i + 8] for i in range(130)])[..., None]
    y = s[8:138, None]
    return Prepared(
        "sine", "regression", 1, 1, Split(x[:90], y[:90]), Split(x[90:110], y[90:110]), Split(x[110:], y[110:])
    )


def sequence_data() -> Prepared:
    """Three classes of padded sequences of 3 to 7 steps, told apart by their mean."""
    rng = np.random.default_rng(1)
    n, steps = 120, 7
    y = rng.integers(0, 3, n).astype(np.int64)
    lengths = rng.integers(3, steps + 1, n).astype(np.int64)
    x = (rng.normal(size=(n, steps, 2)) + y[:, None, None]).astype(np.float32)
    for i, length in enumerate(lengths):
        x[i, length:] = 0.0
    cut = [slice(0, 80), slice(80, 100), slice(100, n)]
    splits = [Split(x[c], y[c], lengths[c]) for c in cut]
    return Prepared("seq", "classification", 2, 3, *splits)


SERIES, SEQUENCES = series_data(), sequence_data()
SETTINGS = TrainSettings(lr=0.02, epochs=3, batch_size=16, weight_decay=0.01, grad_clip=0.5, threads=1)
CASES = [
    (LSTMConfig(1, [8], 1), SERIES),
    (LSTMConfig(1, [8, 8, 8], 1), SERIES),
    (LSTMConfig(1, [12, 6], 1), SERIES),
    (LSTMConfig(1, [6, 6, 6], 1, residual=True), SERIES),
    (LSTMConfig(2, [8, 8], 3, task="classification"), SEQUENCES),
]
IDS = ["one-layer", "fused", "uneven", "residual", "classification-variable-lengths"]


def assert_tracks(batched, separate) -> None:
    """Same epochs, states and best epochs; losses and weights equal up to TOL."""
    assert len(batched) == len(separate)
    for b, s in zip(batched, separate, strict=True):
        assert (b.state, b.reason, b.best_epoch, b.params) == (s.state, s.reason, s.best_epoch, s.params)
        assert [e.epoch for e in b.epochs] == [e.epoch for e in s.epochs]
        for eb, es in zip(b.epochs, s.epochs, strict=True):
            assert eb.train_loss == pytest.approx(es.train_loss, rel=TOL)
            assert eb.val_loss == pytest.approx(es.val_loss, rel=TOL)
            if es.val_accuracy is not None:
                assert eb.val_accuracy == pytest.approx(es.val_accuracy, abs=1 / 20 + 1e-9)  # one sample at most
        assert b.best_val_loss == pytest.approx(s.best_val_loss, rel=TOL)
        assert type(b.model) is StackedLSTM and not b.model.training
        for (name, wb), ws in zip(b.model.state_dict().items(), s.model.state_dict().values(), strict=True):
            torch.testing.assert_close(wb, ws, rtol=TOL, atol=TOL, msg=name)


@pytest.mark.parametrize("config, data", CASES, ids=IDS)
def test_batched_seeds_track_one_fit_per_seed(config, data):
    separate = [fit(config, data, replace(SETTINGS, seed=s)) for s in SEEDS]
    batched = fit_seeds(config, data, SETTINGS, SEEDS, batched=True)
    assert_tracks(batched, separate)
    assert all(r.seconds > 0 for r in batched)


def test_validation_in_several_calls_weighs_every_sample_alike(monkeypatch):
    # 8 sequences per call over 3 members: 2 each, so the 20 validation sequences take 10 calls
    monkeypatch.setattr(seeds_module, "EVAL_BATCH", 8)
    config, data = CASES[4]
    separate = [fit(config, data, replace(SETTINGS, seed=s)) for s in SEEDS]
    assert_tracks(fit_seeds(config, data, SETTINGS, SEEDS, batched=True), separate)


def test_unbatched_is_one_fit_per_seed_exactly():
    config = LSTMConfig(1, [8], 1)
    results = fit_seeds(config, SERIES, SETTINGS, SEEDS, batched=False)
    for seed, r in zip(SEEDS, results, strict=True):
        alone = fit(config, SERIES, replace(SETTINGS, seed=seed))
        assert [e.val_loss for e in r.epochs] == [e.val_loss for e in alone.epochs]


def test_each_member_has_its_own_patience():
    # with patience 1 these seeds run out of it at epochs 2, 3, 4 and 3
    config = LSTMConfig(1, [8, 8], 1)
    settings = replace(SETTINGS, lr=0.05, epochs=12, patience=1)
    seeds = [0, 1, 2, 3]
    separate = [fit(config, SERIES, replace(settings, seed=s)) for s in seeds]
    assert len({len(r.epochs) for r in separate}) > 1, "the seeds should stop at different epochs"
    assert_tracks(fit_seeds(config, SERIES, settings, seeds, batched=True), separate)


def test_a_diverged_member_stops_alone_and_the_others_train_on(monkeypatch):
    real = seeds_module._evaluate_batched
    calls = []

    def nan_for_the_second_at_epoch_two(model, *args, **kwargs):
        losses, accuracy = real(model, *args, **kwargs)
        calls.append(model.members)
        if len(calls) == 2:
            losses[1] = math.nan
        return losses, accuracy

    monkeypatch.setattr(seeds_module, "_evaluate_batched", nan_for_the_second_at_epoch_two)
    config = LSTMConfig(1, [8], 1)
    settings = replace(SETTINGS, epochs=4)
    results = fit_seeds(config, SERIES, settings, SEEDS, batched=True)
    assert calls == [3, 3, 2, 2]  # the diverged member left the stack
    diverged = results[1]
    assert diverged.state == "diverged" and diverged.reason == "val_loss became nan at epoch 2"
    assert len(diverged.epochs) == 2 and diverged.best_epoch == 1
    # its model is its epoch-1 weights, as fit restores them
    epoch_one = fit(config, SERIES, replace(settings, seed=SEEDS[1], epochs=1))
    for wb, ws in zip(diverged.model.state_dict().values(), epoch_one.model.state_dict().values(), strict=True):
        torch.testing.assert_close(wb, ws, rtol=TOL, atol=TOL)
    # the others train on with their own optimizer state, as if alone
    others = [fit(config, SERIES, replace(settings, seed=s)) for s in (SEEDS[0], SEEDS[2])]
    assert_tracks([results[0], results[2]], others)


def test_a_member_out_of_patience_keeps_its_best_weights_while_the_others_train_on(monkeypatch):
    real = seeds_module._evaluate_batched
    epoch = iter(range(1, 100))

    def first_member_never_improves(model, *args, **kwargs):
        losses, accuracy = real(model, *args, **kwargs)
        if next(epoch) > 1 and model.members == len(SEEDS):
            losses[0] = 10.0 + losses[0]
        return losses, accuracy

    monkeypatch.setattr(seeds_module, "_evaluate_batched", first_member_never_improves)
    config = LSTMConfig(1, [8], 1)
    settings = replace(SETTINGS, epochs=4, patience=1)
    results = fit_seeds(config, SERIES, settings, SEEDS, batched=True)
    stopped = results[0]
    assert stopped.state == "completed" and len(stopped.epochs) == 2 and stopped.best_epoch == 1
    assert stopped.reason == "no improvement in 1 epoch (best at epoch 1)"
    epoch_one = fit(config, SERIES, replace(settings, seed=SEEDS[0], epochs=1))
    for wb, ws in zip(stopped.model.state_dict().values(), epoch_one.model.state_dict().values(), strict=True):
        torch.testing.assert_close(wb, ws, rtol=TOL, atol=TOL)
    others = [fit(config, SERIES, replace(settings, seed=s)) for s in SEEDS[1:]]
    assert_tracks(results[1:], others)


def test_returned_models_round_trip_through_save_and_load(tmp_path):
    config, data = CASES[4]
    for i, r in enumerate(fit_seeds(config, data, SETTINGS, SEEDS, batched=True)):
        save_model(r.model, tmp_path / f"{i}.pt")
        loaded = load_model(tmp_path / f"{i}.pt")
        x, lengths = torch.from_numpy(data.test.x), torch.from_numpy(data.test.lengths)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x, lengths), r.model(x, lengths), rtol=0, atol=0)


def test_dropout_trains_in_a_batch_too():
    config = LSTMConfig(1, [8, 8], 1, dropout=0.3)
    results = fit_seeds(config, SERIES, SETTINGS, SEEDS, batched=True)
    assert [r.state for r in results] == ["completed"] * len(SEEDS)
    assert all(math.isfinite(r.best_val_loss) for r in results)


def test_the_default_follows_batched_pays(monkeypatch):
    chosen = []
    monkeypatch.setattr(seeds_module, "_fit_batched", lambda *args: chosen.append("batched") or [])
    monkeypatch.setattr(seeds_module, "fit", lambda *args: chosen.append("separate"))
    monkeypatch.setattr(seeds_module, "batched_pays", lambda *args: True)
    fit_seeds(LSTMConfig(1, [8], 1), SERIES, SETTINGS, [0, 1])
    monkeypatch.setattr(seeds_module, "batched_pays", lambda *args: False)
    fit_seeds(LSTMConfig(1, [8], 1), SERIES, SETTINGS, [0, 1])
    assert chosen == ["batched", "separate", "separate"]


@pytest.mark.parametrize(
    "units, seeds, device, expected",
    [
        ([8], 8, "cpu", True),
        ([8, 8, 8, 8], 8, "cpu", True),
        ([16, 16, 16], 8, "cpu", False),
        ([64], 8, "cpu", False),
        ([8], 4, "cpu", True),
        ([16, 16], 4, "cpu", False),
        ([8], 2, "cpu", False),
        ([8], 1, "cpu", False),
        ([8], 8, "cuda", False),
    ],
)
def test_batched_pays_where_it_was_measured_faster(units, seeds, device, expected):
    assert batched_pays(LSTMConfig(1, units, 1), SETTINGS, seeds, device) is expected


def test_batched_is_never_chosen_with_dropout_whose_masks_would_differ_from_each_seeds_own_fit():
    assert batched_pays(LSTMConfig(1, [8, 8], 1), SETTINGS, 8, "cpu")
    assert not batched_pays(LSTMConfig(1, [8, 8], 1, dropout=0.1), SETTINGS, 8, "cpu")


@pytest.mark.parametrize("seeds, message", [([], "none"), ([0, 1.5], "1.5"), ([True], "True")])
def test_bad_seeds_are_refused_and_named(seeds, message):
    with pytest.raises(ValueError, match=message):
        fit_seeds(LSTMConfig(1, [8], 1), SERIES, SETTINGS, seeds)


def test_a_config_for_other_data_is_refused_as_fit_refuses_it():
    with pytest.raises(ValueError, match="input_size"):
        fit_seeds(LSTMConfig(3, [8], 1), SERIES, SETTINGS, SEEDS, batched=True)
