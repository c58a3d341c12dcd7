"""Every tag key stacktune writes to MLflow (and to Ray job metadata), and the names of its runs.

The run tree is search ─► depth ─► trial / eval, with a replicate level (search ─► depth ─► replicate ─► trial) when
a search runs several independent searches per depth; `ROLE` says which a run is. Readers (the UI, the
tests, `stacktune report`) find runs by these keys, so they are written nowhere else.
"""

from __future__ import annotations

# What every run of a search carries.
ROLE = "stacktune.role"  # one of the ROLE_* values below
SEARCH = "stacktune.search"  # the search name (also the MLflow experiment and the Ray job's metadata key)
DEPTH = "stacktune.depth"
STATE = "stacktune.state"  # completed | pruned | failed | diverged | interrupted

REPLICATE = "stacktune.replicate"  # which of a depth's replicate searches (1, 2, ...), where there are several
ORIGIN = "stacktune.origin"  # which data origin an evaluation run trained and scored on, where there are several

ROLE_SEARCH, ROLE_DEPTH, ROLE_TRIAL, ROLE_EVAL, ROLE_TRAIN = "search", "depth", "trial", "eval", "train"
ROLE_REPLICATE = "replicate"

# A trial run.
TRIAL_NUMBER = "stacktune.trial_number"  # the Optuna trial number within its depth's study
RAY_TRIAL_ID = "stacktune.ray_trial_id"
NODE_ID = "stacktune.node_id"  # the Ray node it trained on
REASON = "stacktune.reason"  # why it failed, diverged or stopped before its last epoch
RESTARTS = "stacktune.restarts"  # times Ray Tune restarted it after its worker or node died
RESTART_REASON = "stacktune.restart_reason"
BEST = "stacktune.best"  # "true" on the best trial of its depth

# A depth run.
BEST_TRIAL = "stacktune.best_trial"  # the best trial's name, d<depth>-t<nn>
BEST_RUN_ID = "stacktune.best_run_id"

# An evaluation run (a retraining on the test split).
EVAL_KIND = "stacktune.eval_kind"  # tuned | fixed
SEED = "stacktune.seed"
EVAL_RANK = "stacktune.eval_rank"  # the candidate's rank among its depth's top-k (0: the best)
# How many seeds trained together as one batched model, this one among them (absent: it trained on its own)
SEEDS_TOGETHER = "stacktune.seeds_together"

# The search run.
BEST_DEPTH = "stacktune.best_depth"  # lowest validation loss
VERDICT = "stacktune.verdict"  # the conclusion sentence
WINNER = "stacktune.winner"  # a depth, "tie" or "undecided" (too few seeds)
NAIVE_BASELINE = "stacktune.naive_baseline"  # the best naive forecast on the test split and its loss
WARNINGS = "stacktune.warnings"  # the codes of the report's warnings, comma-separated, or "none"

# A logged model (a best trial as an MLflow Model) and its registered versions, besides SEARCH and DEPTH.
MODEL_TRIAL = "stacktune.trial"  # the trial it came from, d<depth>-t<nn>
OVERALL_BEST = "stacktune.overall_best"  # "true" on the model of the search's lowest validation loss
MODEL_CONFIG = "stacktune.config"  # a registered version: its `stacktune train` config, as JSON
MODEL_VAL_LOSS = "stacktune.val_loss"

# The buffered writer's idempotency key: a run created twice during an outage is found again by it.
RUN_KEY = "stacktune.run_key"

# MLflow's own keys that stacktune sets.
PARENT_RUN_ID = "mlflow.parentRunId"
NOTE = "mlflow.note.content"


def trial_name(depth: int, number: int, replicate: int | None = None) -> str:
    """The short name of a depth's trial, as MLflow, the exports and the report show it: d2-t07, or d2-r3-t07 for
    the third replicate search of a search that has several (`replicate` None or 1 of one: no replicate part)."""
    return f"d{depth}-t{number:02d}" if replicate is None else f"d{depth}-r{replicate}-t{number:02d}"


def replicate_of(replicates: int, replicate: int) -> int | None:
    """The replicate number names and tags carry: None when the search has only one replicate per depth (of
    `replicates`)."""
    return replicate if replicates > 1 else None
