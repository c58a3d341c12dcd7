"""Early stopping inside fit: patience, its counter across resumes, and settings validation."""

import importlib
import math
from dataclasses import replace

import numpy as np
import pytest

from stacktune.datasets.types import Prepared, Split
from stacktune.models import LSTMConfig, TrainSettings, evaluate, fit

train_module = importlib.import_module("stacktune.models.train")


def toy_data() -> Prepared:
    """The last input step, halved: small enough that one epoch takes milliseconds."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6, 1)).astype(np.float32)
    y = x[:, -1, :] * 0.5
    return Prepared("toy", "regression", 1, 1, Split(x[:64], y[:64]), Split(x[64:80], y[64:80]), Split(x[80:], y[80:]))


TOY = toy_data()
SMALL = LSTMConfig(1, [8], 1)
# A high learning rate makes the val loss jumpy: it rises at times and improves again before rising for good.
JUMPY = LSTMConfig(input_size=1, units=[8, 8], output_size=1, dropout=0.2)
JUMPY_SETTINGS = TrainSettings(lr=0.3, epochs=30, batch_size=16, seed=3, threads=1, patience=2)


def scripted_val_losses(monkeypatch, losses: list[float]) -> None:
    """Make the n-th validation of fit report losses[n - 1], whatever the model does."""
    real_evaluate = train_module._evaluate
    calls = iter(losses)

    def scripted(*args, **kwargs):
        return {**real_evaluate(*args, **kwargs), "loss": next(calls)}

    monkeypatch.setattr(train_module, "_evaluate", scripted)


def test_a_val_loss_that_never_moves_stops_after_patience_epochs():
    # lr 1e-30 leaves every float32 weight as it was, so the val loss repeats exactly
    result = fit(SMALL, TOY, TrainSettings(lr=1e-30, epochs=20, patience=3))
    assert result.state == "completed"
    assert result.reason == "no improvement in 3 epochs (best at epoch 1)"
    assert [e.epoch for e in result.epochs] == [1, 2, 3, 4]
    assert len({e.val_loss for e in result.epochs}) == 1
    assert result.best_epoch == 1 and result.best_val_loss == result.epochs[0].val_loss


def test_only_a_strictly_lower_loss_resets_the_count(monkeypatch):
    # epoch:            1    2    3    4    5    6    7    8    9
    scripted_val_losses(monkeypatch, [5.0, 4.0, 4.0, 4.5, 3.0, 3.5, 3.0, 3.9, 1.0])
    seen = []
    result = fit(SMALL, TOY, TrainSettings(lr=1e-3, epochs=9, patience=3), on_epoch=seen.append)
    # epochs 3-4 are two without improvement, epoch 5 improves, and 6-8 (a tie at 7) are three
    assert result.state == "completed" and result.reason == "no improvement in 3 epochs (best at epoch 5)"
    assert [e.epoch for e in result.epochs] == list(range(1, 9)) and seen == result.epochs
    assert result.best_epoch == 5 and result.best_val_loss == 3.0


@pytest.mark.parametrize("patience", [1, 2, 4, 6])
def test_training_never_stops_before_patience_epochs_without_improvement(monkeypatch, patience):
    losses = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # only the first epoch is ever a best
    scripted_val_losses(monkeypatch, losses)
    result = fit(SMALL, TOY, TrainSettings(lr=1e-3, epochs=len(losses), patience=patience))
    assert len(result.epochs) == 1 + patience and result.best_epoch == 1
    epochs = "epoch" if patience == 1 else "epochs"
    assert result.reason == f"no improvement in {patience} {epochs} (best at epoch 1)"


def test_patience_that_runs_out_on_the_last_epoch_still_says_why(monkeypatch):
    scripted_val_losses(monkeypatch, [2.0, 1.0, 1.5, 1.7])
    result = fit(SMALL, TOY, TrainSettings(lr=1e-3, epochs=4, patience=2))
    assert len(result.epochs) == 4 and result.reason == "no improvement in 2 epochs (best at epoch 2)"


def test_without_patience_every_epoch_runs(monkeypatch):
    scripted_val_losses(monkeypatch, [1.0, 2.0, 3.0, 4.0, 5.0])
    result = fit(SMALL, TOY, TrainSettings(lr=1e-3, epochs=5))
    assert result.state == "completed" and result.reason is None and len(result.epochs) == 5


def test_a_patience_stop_keeps_the_best_epoch_weights():
    result = fit(JUMPY, TOY, JUMPY_SETTINGS)
    assert result.reason is not None and len(result.epochs) < JUMPY_SETTINGS.epochs
    val_losses = [e.val_loss for e in result.epochs]
    assert result.best_epoch == 1 + val_losses.index(min(val_losses)) < len(result.epochs)
    assert evaluate(result.model, TOY.val, task="regression")["loss"] == result.best_val_loss


def test_divergence_still_wins_over_patience(monkeypatch):
    scripted_val_losses(monkeypatch, [1.0, 2.0, math.nan])
    result = fit(SMALL, TOY, TrainSettings(lr=1e-3, epochs=5, patience=3))
    assert result.state == "diverged" and result.reason == "val_loss became nan at epoch 3"


def saved_states(settings: TrainSettings) -> tuple[list[dict], list]:
    """Every state a run with state_every=1 hands to on_epoch, and the epochs it ran."""
    states = []
    result = fit(JUMPY, TOY, settings, state_every=1, on_epoch=lambda e: states.append(e.state) if e.state else None)
    return states, result.epochs


def test_resuming_with_patience_continues_exactly_as_if_never_stopped():
    whole = fit(JUMPY, TOY, JUMPY_SETTINGS)
    assert whole.reason is not None and len(whole.epochs) < JUMPY_SETTINGS.epochs  # patience did stop it
    states, epochs = saved_states(JUMPY_SETTINGS)
    # a state on every epoch but the one patience ended on: resuming from that would have nothing to do
    assert [s["epoch"] for s in states] == list(range(1, len(whole.epochs)))
    assert any(s["epochs_since_best"] > 0 for s in states)  # the counter itself is carried, not only zeros
    for saved in states:
        resumed = fit(JUMPY, TOY, JUMPY_SETTINGS, resume_from=saved)
        assert [e.val_loss for e in resumed.epochs] == [e.val_loss for e in whole.epochs], saved["epoch"]
        assert (resumed.state, resumed.reason, resumed.best_epoch) == (whole.state, whole.reason, whole.best_epoch)


def test_a_state_saved_without_the_counter_recomputes_it_from_the_history():
    whole = fit(JUMPY, TOY, JUMPY_SETTINGS)
    states, _ = saved_states(JUMPY_SETTINGS)
    for saved in states:
        expected = saved.pop("epochs_since_best")
        assert train_module._epochs_since_best([train_module.EpochResult(**e) for e in saved["history"]]) == expected
        resumed = fit(JUMPY, TOY, JUMPY_SETTINGS, resume_from=saved)
        assert [e.val_loss for e in resumed.epochs] == [e.val_loss for e in whole.epochs]


def test_a_state_without_counter_or_history_resumes_with_a_count_of_zero():
    states, _ = saved_states(JUMPY_SETTINGS)
    saved = {**states[-1], "history": []}
    del saved["epochs_since_best"]
    resumed = fit(JUMPY, TOY, JUMPY_SETTINGS, resume_from=saved)
    # patience counts afresh from the resumed epoch on, so at least `patience` more epochs run
    assert resumed.epochs[0].epoch == saved["epoch"] + 1
    assert len(resumed.epochs) >= JUMPY_SETTINGS.patience


def test_resuming_past_a_smaller_patience_stops_without_training():
    states, _ = saved_states(JUMPY_SETTINGS)
    saved = next(s for s in states if s["epochs_since_best"] > 0)
    resumed = fit(JUMPY, TOY, replace(JUMPY_SETTINGS, patience=1), resume_from=saved)
    assert [e.epoch for e in resumed.epochs] == list(range(1, saved["epoch"] + 1))
    assert resumed.state == "completed" and resumed.reason.startswith("no improvement in 1 epoch (best at epoch")


@pytest.mark.parametrize("patience", [0, -2, True, 2.0, "3"])
def test_settings_reject_a_bad_patience(patience):
    with pytest.raises(ValueError, match=f"patience must be a positive int or None, got {patience!r}"):
        TrainSettings(lr=1e-3, epochs=3, patience=patience)


def test_settings_accept_patience_none_or_a_positive_int():
    assert TrainSettings(lr=1e-3, epochs=3).patience is None
    assert TrainSettings(lr=1e-3, epochs=3, patience=1).patience == 1
