"""fit and evaluate: learning, determinism, early stops, divergence, best weights."""

import importlib
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from stacktune.datasets.types import Prepared, Split
from stacktune.models import (
    EpochResult,
    LSTMConfig,
    TrainSettings,
    bf16_supported,
    count_parameters,
    evaluate,
    fit,
)

train_module = importlib.import_module("stacktune.models.train")


def split_three(x, y, lengths=None) -> tuple[Split, Split, Split]:
    n = len(x)
    cuts = [slice(0, n * 6 // 10), slice(n * 6 // 10, n * 8 // 10), slice(n * 8 // 10, n)]
    return tuple(Split(x[c], y[c], None if lengths is None else lengths[c]) for c in cuts)


def sine_data(n: int = 400, window: int = 12, scale: float = 1.0) -> Prepared:
    """Predict the next value of a noisy sine from the previous `window` values."""
    rng = np.random.default_rng(0)
    series = np.sin(np.arange(n + window) * 0.3) + 0.05 * rng.standard_normal(n + window)
    x = np.stack([series[i : i + window] for i in range(n)])[..., None].astype(np.float32)
    y = (series[window:, None] * scale).astype(np.float32)
    return Prepared("sine", "regression", 1, 1, *split_three(x, y))


def class_data(n: int = 300, steps: int = 10, classes: int = 3) -> Prepared:
    """Variable-length noise whose class is the channel with the raised mean."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, classes, n).astype(np.int64)
    lengths = rng.integers(3, steps + 1, n).astype(np.int64)
    x = rng.standard_normal((n, steps, classes)).astype(np.float32)
    x[np.arange(n), :, y] += 1.0
    for i, length in enumerate(lengths):
        x[i, length:] = 0.0  # right-padding, as the data contract promises
    return Prepared("noise", "classification", classes, classes, *split_three(x, y, lengths))


SINE = sine_data()
CLASSES = class_data()
SMALL = LSTMConfig(1, [16], 1)


def test_fit_learns_a_sine():
    result = fit(SMALL, SINE, TrainSettings(lr=1e-2, epochs=6, batch_size=32))
    assert result.state == "completed" and result.reason is None
    assert [e.epoch for e in result.epochs] == list(range(1, 7))
    predict_mean = float(np.var(SINE.val.y))
    assert result.best_val_loss < 0.1 * predict_mean
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert all(e.val_accuracy is None and e.seconds > 0 for e in result.epochs)
    assert result.params == count_parameters(SMALL) == result.model.num_parameters()


@pytest.mark.parametrize("optimizer, grad_clip", [("adamw", 1.0), ("adam", None)])
def test_fit_learns_variable_length_classes(optimizer, grad_clip):
    config = LSTMConfig(3, [16, 8], 3, task="classification")
    settings = TrainSettings(lr=1e-2, epochs=6, batch_size=32, optimizer=optimizer, grad_clip=grad_clip)
    result = fit(config, CLASSES, settings)
    assert result.state == "completed"
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert max(e.val_accuracy for e in result.epochs) > 0.8
    metrics = evaluate(result.model, CLASSES.val, task="classification")
    assert metrics["accuracy"] == result.epochs[result.best_epoch - 1].val_accuracy


def losses(result) -> list[tuple[float, float]]:
    return [(e.train_loss, e.val_loss) for e in result.epochs]


def test_same_seed_gives_identical_losses_and_another_seed_does_not():
    config = LSTMConfig(1, [8, 8], 1, dropout=0.3)  # dropout draws from the seeded RNG too
    settings = TrainSettings(lr=5e-3, epochs=3, batch_size=32, seed=7)
    first, second = fit(config, SINE, settings), fit(config, SINE, settings)
    assert losses(first) == losses(second)
    settings.seed = 8
    assert losses(fit(config, SINE, settings)) != losses(first)


@pytest.mark.slow
def test_same_seed_gives_identical_losses_in_another_process(tmp_path):
    arrays = tmp_path / "sine.npz"
    np.savez(arrays, tx=SINE.train.x, ty=SINE.train.y, vx=SINE.val.x, vy=SINE.val.y)
    threads = torch.get_num_threads()  # the thread count can change float summation order
    config = LSTMConfig(1, [8, 4], 1, dropout=0.2)
    settings = TrainSettings(lr=5e-3, epochs=2, batch_size=32, seed=3, threads=threads)
    script = f"""
import json, numpy as np
from stacktune.datasets.types import Prepared, Split
from stacktune.models import LSTMConfig, TrainSettings, fit
a = np.load({str(arrays)!r})
train, val = Split(a["tx"], a["ty"]), Split(a["vx"], a["vy"])
result = fit({config!r}, Prepared("sine", "regression", 1, 1, train, val, val), {settings!r})
print(json.dumps([e.val_loss for e in result.epochs]))
"""
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(there.stdout) == [e.val_loss for e in fit(config, SINE, settings).epochs]


def test_on_epoch_can_stop_training():
    seen: list[EpochResult] = []

    def stop_after_two(result: EpochResult) -> bool:
        seen.append(result)
        return result.epoch == 2

    result = fit(SMALL, SINE, TrainSettings(lr=1e-2, epochs=5), on_epoch=stop_after_two)
    assert result.state == "stopped" and "epoch 2" in result.reason
    assert [e.epoch for e in seen] == [1, 2] and result.epochs == seen


def test_on_epoch_returning_none_keeps_going():
    result = fit(SMALL, SINE, TrainSettings(lr=1e-2, epochs=3), on_epoch=lambda r: None)
    assert result.state == "completed" and len(result.epochs) == 3


@pytest.mark.parametrize(
    "data, settings, reason",
    [
        (sine_data(scale=1e30), TrainSettings(lr=1e-3, epochs=3), "train_loss became inf"),
        (SINE, TrainSettings(lr=1e30, epochs=3), "train_loss became nan"),
    ],
    ids=["huge-targets", "huge-lr"],
)
def test_non_finite_loss_stops_as_diverged(data, settings, reason):
    reported = []
    result = fit(SMALL, data, settings, on_epoch=reported.append)
    assert result.state == "diverged" and result.reason == f"{reason} at epoch 1"
    assert len(result.epochs) == 1 and reported == []
    assert result.best_epoch is None and result.best_val_loss == math.inf


def test_divergence_keeps_the_best_finite_epoch(monkeypatch):
    real_evaluate = train_module._evaluate
    calls = []

    def nan_on_third_call(*args, **kwargs):
        calls.append(None)
        metrics = real_evaluate(*args, **kwargs)
        return {"loss": math.nan} if len(calls) == 3 else metrics

    monkeypatch.setattr(train_module, "_evaluate", nan_on_third_call)
    result = fit(SMALL, SINE, TrainSettings(lr=1e-2, epochs=5))
    assert result.state == "diverged" and result.reason == "val_loss became nan at epoch 3"
    finite = [e.val_loss for e in result.epochs[:2]]
    assert result.best_val_loss == min(finite)
    assert result.best_epoch == 1 + finite.index(min(finite))
    monkeypatch.undo()
    assert evaluate(result.model, SINE.val, task="regression")["loss"] == result.best_val_loss


def test_returned_model_holds_the_best_epoch_weights():
    # a high learning rate makes the val loss jumpy, so the best epoch is rarely the last
    result = fit(SMALL, SINE, TrainSettings(lr=0.2, epochs=6, grad_clip=None))
    val_losses = [e.val_loss for e in result.epochs]
    assert result.best_epoch == 1 + val_losses.index(min(val_losses))
    assert not result.model.training
    assert evaluate(result.model, SINE.val, task="regression")["loss"] == result.best_val_loss


def test_fit_rejects_a_config_that_does_not_match_the_data():
    with pytest.raises(ValueError, match="classification"):
        fit(SMALL, CLASSES, TrainSettings(lr=1e-3, epochs=1))
    with pytest.raises(ValueError, match="input_size"):
        fit(LSTMConfig(2, [4], 1), SINE, TrainSettings(lr=1e-3, epochs=1))
    with pytest.raises(ValueError, match="output_size"):
        fit(LSTMConfig(1, [4], 3), SINE, TrainSettings(lr=1e-3, epochs=1))


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"lr": 0.0}, "0.0"),
        ({"epochs": 0}, "0"),
        ({"batch_size": -8}, "-8"),
        ({"optimizer": "sgd"}, "'sgd'"),
        ({"grad_clip": 0.0}, "0.0"),
        ({"threads": 0}, "0"),
        ({"weight_decay": -1.0}, "-1.0"),
    ],
)
def test_settings_reject_bad_values(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        TrainSettings(**{"lr": 1e-3, "epochs": 1, **kwargs})


def test_resuming_from_a_saved_state_continues_exactly_as_if_never_stopped():
    from stacktune.datasets.types import Prepared, Split

    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6, 1)).astype(np.float32)
    y = x[:, -1, :] * 0.5
    data = Prepared("toy", "regression", 1, 1, Split(x[:64], y[:64]), Split(x[64:80], y[64:80]), Split(x[80:], y[80:]))
    cfg = LSTMConfig(input_size=1, units=[8, 8], output_size=1, dropout=0.2)
    settings = TrainSettings(lr=0.01, epochs=6, batch_size=16, seed=3, threads=1)
    whole = fit(cfg, data, settings)
    saved = []
    fit(cfg, data, settings, state_every=3, on_epoch=lambda e: saved.append(e.state) if e.state else None)
    assert [s["epoch"] for s in saved] == [3]
    resumed = fit(cfg, data, settings, resume_from=saved[0])
    assert [e.val_loss for e in resumed.epochs] == [e.val_loss for e in whole.epochs]
    assert resumed.best_val_loss == whole.best_val_loss and resumed.best_epoch == whole.best_epoch


@pytest.mark.skipif(
    not bf16_supported("cpu"),
    reason="this CPU lacks bfloat16 support (test_bf16_is_refused_with_a_clear_error_where_unsupported covers it)",
)
def test_bf16_autocast_trains_to_a_finite_loss_close_to_fp32():
    data = sine_data()
    config = LSTMConfig(input_size=1, units=[16], output_size=1)
    fp32 = fit(config, data, TrainSettings(lr=1e-2, epochs=6, batch_size=32, precision="fp32"))
    bf16 = fit(config, data, TrainSettings(lr=1e-2, epochs=6, batch_size=32, precision="bf16"))
    assert bf16.state == "completed" and math.isfinite(bf16.best_val_loss)
    # bfloat16 keeps 8 bits of mantissa: the same run, slightly perturbed, not a different one.
    assert bf16.best_val_loss < 2 * fp32.best_val_loss
    # Weights stay fp32; only the forward passes ran in bfloat16.
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())


def test_bf16_supported_answers_a_bool_and_honours_the_override(monkeypatch):
    monkeypatch.delenv("STACKTUNE_CPU_BF16", raising=False)
    probed = bf16_supported("cpu")
    assert isinstance(probed, bool)
    assert bf16_supported(torch.device("cpu")) is probed  # cached: the same answer, no second probe
    monkeypatch.setenv("STACKTUNE_CPU_BF16", "0")
    assert bf16_supported("cpu") is False
    monkeypatch.setenv("STACKTUNE_CPU_BF16", "1")
    assert bf16_supported("cpu") is True
    monkeypatch.setenv("STACKTUNE_CPU_BF16", "")
    assert bf16_supported("cpu") is probed
    if not torch.cuda.is_available():
        assert bf16_supported("cuda") is False


def test_the_bf16_probe_leaves_the_seeded_rng_alone(monkeypatch):
    monkeypatch.delenv("STACKTUNE_CPU_BF16", raising=False)
    precision = importlib.import_module("stacktune.models.precision")
    precision._probe.cache_clear()
    torch.manual_seed(0)
    precision.bf16_supported("cpu")
    after_probe = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after_probe, torch.rand(3))


def test_bf16_is_refused_with_a_clear_error_where_unsupported(monkeypatch):
    monkeypatch.setenv("STACKTUNE_CPU_BF16", "0")
    settings = TrainSettings(lr=1e-2, epochs=1, batch_size=32, precision="bf16")
    with pytest.raises(ValueError, match=r"this CPU lacks bfloat16 support.*use `precision: fp32`") as info:
        fit(SMALL, SINE, settings)
    assert "\n" not in str(info.value)
    # fp32 needs nothing of the CPU
    assert fit(SMALL, SINE, TrainSettings(lr=1e-2, epochs=1, batch_size=32)).state == "completed"
