"""The hand-written baseline: Ray Tune + OptunaSearch + MLflowLoggerCallback around the same trainer.

Kept apart from the benchmarks so Ray workers that unpickle these functions import nothing heavy.
"""

from __future__ import annotations

import math
import random
from typing import Any


def train_trial(config: dict[str, Any], *, data, widths: dict[int, int], epochs: int, batch_size: int) -> None:
    """What a user writes by hand: build the model, call stacktune.models.fit, report every epoch."""
    from ray import tune

    from stacktune.models import LSTMConfig, TrainSettings, fit

    depth = int(config["depth"])
    model = LSTMConfig(
        input_size=data.input_size, units=[widths[depth]] * depth, output_size=data.output_size, task=data.task
    )
    settings = TrainSettings(lr=config["lr"], epochs=epochs, batch_size=batch_size, threads=1, seed=0)
    seconds = 0.0

    def on_epoch(e) -> None:
        nonlocal seconds
        seconds += e.seconds
        tune.report({"epoch": e.epoch, "train_loss": e.train_loss, "val_loss": e.val_loss, "train_seconds": seconds})

    fit(model, data, settings, on_epoch=on_epoch)


def noop_trial(config: dict[str, Any]) -> None:
    """A trial that does no work and reports once."""
    from ray import tune

    tune.report({"epoch": 1, "val_loss": _fake_loss(config.get("lr", 0.0)), "train_seconds": 0.0})


def noop_stacktune_trial(config: dict[str, Any], *, data=None, spec_json: str = "") -> None:
    """Stands in for stacktune's run_trial: no training, one final report shaped like run_trial's."""
    from ray import tune

    lr = float(config["params"]["lr"])
    tune.report(
        {
            "final": True,
            "epoch": 1,
            "best_val_loss": _fake_loss(lr),
            "best_epoch": 1,
            "params": 100,
            "state": "completed",
            "reason": "",
            "train_seconds": 0.0,
            "node_id": "bench",
        }
    )


def _fake_loss(lr: float) -> float:
    # a smooth function of the sample plus noise, so TPE has something to model
    return (math.log10(max(lr, 1e-12)) + 2.0) ** 2 + random.random() * 0.01
