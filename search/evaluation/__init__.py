"""The evaluation stage: every depth's best and the fixed setting retrained over seeds in one Ray Tune run, scored on
the test split, and judged by the verdict.

Its floor is beside publishing, above the verdict and the engine: it imports `verdict`, `engine`, `tracking` and
`spec`, never `publishing`, `pipeline` or `interfaces`. `stage` runs the retrainings (Ray Tune, MLflow); `scoring`
is plain functions of their results.
"""

from .scoring import aggregate, mark_incomplete
from .stage import bundle_jobs, evaluate_search, kept_evaluation, log_evaluation, plan_jobs, run_jobs, seed_rounds

__all__ = [
    "aggregate",
    "bundle_jobs",
    "evaluate_search",
    "kept_evaluation",
    "log_evaluation",
    "mark_incomplete",
    "plan_jobs",
    "run_jobs",
    "seed_rounds",
]
