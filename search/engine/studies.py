"""One Optuna study per depth: names, samplers, storage, the trials that count, and what a study tells."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import ConfigError, UnreachableError
from ..spec.convert import sampler_seed
from ..spec.schema import SearchSpec, TrainConfig
from ..tracking import store
from .outage import waiting_rdb_storage
from .space import TrialSpace

log = logging.getLogger("stacktune")


def study_name(search: str, depth: int, replicate: int = 1) -> str:
    """The Optuna study that holds one depth of a search (its first replicate search), or its `replicate`-th."""
    return f"{search}.depth-{depth}" if replicate == 1 else f"{search}.depth-{depth}.replicate-{replicate}"


def cells(spec: SearchSpec) -> list[tuple[int, int]]:
    """Every (depth, replicate) of a search, each one Optuna study with the full budget; replicates count from 1."""
    return [(depth, replicate) for replicate in range(1, spec.replicates + 1) for depth in spec.depths]


def by_cell(studies: dict) -> dict[tuple[int, int], optuna.Study]:
    """Studies keyed by (depth, replicate); a key that is a depth alone is that depth's first (only) search."""
    return {(key, 1) if isinstance(key, int) else tuple(key): study for key, study in studies.items()}


def make_sampler(spec: SearchSpec, depth: int, replicate: int = 1) -> optuna.samplers.BaseSampler:
    """The sampler of one depth's study (or of one of its replicate searches), seeded so a search is repeatable."""
    seed = sampler_seed(spec.seed, depth, replicate)
    if spec.sampler.kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # multivariate: units and lr interact; constant_liar: several trials of a depth run at once.
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=spec.sampler.n_startup_trials, multivariate=True, constant_liar=True
        )


def make_pruner(spec: SearchSpec) -> optuna.pruners.BasePruner:
    """The pruner of every depth's study: Optuna's median rule with `pruning: {kind: median}`, else none (Ray Tune's
    scheduler or nothing stops trials early)."""
    if spec.pruning.kind != "median":
        return optuna.pruners.NopPruner()
    # Each study holds one depth's trials, so a trial is only ever compared with trials of its own depth.
    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.sampler.n_startup_trials, n_warmup_steps=spec.pruning.grace_epochs
    )


def counted_trials(study: optuna.Study) -> list:
    """The finished trials that count against a depth's budget (not those cut off by a killed driver)."""
    return [
        t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and not t.user_attrs.get("interrupted")
    ]


def spent_seconds(study: optuna.Study) -> float:
    """The training seconds a depth's counted trials used: what a seconds budget is measured in."""
    return sum(float(t.user_attrs.get("train_seconds", 0.0)) for t in counted_trials(study))


def finished_trials(studies: dict) -> dict[str, str]:
    """Ray trial id -> completed, pruned or failed, for every trial the studies count against a budget."""
    names = {TrialState.COMPLETE: "completed", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
    return {
        t.user_attrs["ray_trial_id"]: names[t.state]
        for study in studies.values()
        for t in counted_trials(study)
        if "ray_trial_id" in t.user_attrs and t.state in names
    }


def check_storage(spec: SearchSpec) -> None:
    """Raises UnreachableError, in one line without the URL's password, unless the spec's study database opens."""
    if not spec.storage:
        return  # a journal file in the output folder: nothing to reach
    try:
        optuna.storages.RDBStorage(spec.storage)
    except Exception as exc:  # noqa: BLE001 - any driver's failure to connect is the same answer to the user
        reason = store.reason_without_password(exc, spec.storage)
        raise UnreachableError(f"cannot open the Optuna storage in `storage:` ({reason})") from None


def open_storage(spec: SearchSpec, out_dir: Path):
    """Optuna storage that outlives the process: the spec's RDB URL, else a journal file in `out_dir`."""
    from optuna.storages.journal import JournalFileBackend

    if spec.storage:
        return waiting_rdb_storage(spec.storage)
    journal = out_dir / "optuna.journal"
    if journal.exists():
        repair_journal(journal)
    return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))


def repair_journal(path: Path) -> None:
    """Checks a journal before Optuna reads it. A last record cut off mid-write (a crash, a full disk) is moved to
    `JOURNAL.torn-TIME` and the journal ends at its last whole record, as if that write never happened; a damaged
    record anywhere else is refused in one line, and the file is left as it is."""
    import json

    data = path.read_bytes()
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError:
            if number == len(lines):  # the only line without its newline: the write that was cut off
                break
            raise ConfigError(
                f"{path} is damaged at line {number} (not a whole record): restore it from a backup, "
                "or start the search again without --resume"
            ) from None
    else:
        return
    cut = len(data) - len(lines[-1])
    torn = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
    torn.write_bytes(data[cut:])
    with open(path, "r+b") as handle:
        handle.truncate(cut)
    log.warning(
        "%s ended in a record cut off mid-write (%d bytes, kept in %s): resuming without it",
        path,
        len(data) - cut,
        torn.name,
    )


def prepare_studies(spec: SearchSpec, storage, *, resume: bool) -> dict[tuple[int, int], optuna.Study]:
    """One study per (depth, replicate): fresh ones (an earlier search of the name is replaced, all its studies
    deleted), or the existing ones on resume (a replicate added since starts with its full budget).

    On resume, trials a killed driver left RUNNING are closed as failed and marked `interrupted`,
    so they neither count against the budget nor stay open.
    """
    if resume:
        check_resume_budget(spec, storage)
    else:
        for name in optuna.get_all_study_names(storage):
            if _of_search(name, spec.name):
                optuna.delete_study(study_name=name, storage=storage)
    studies = {}
    for depth, replicate in cells(spec):
        name = study_name(spec.name, depth, replicate)
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=make_sampler(spec, depth, replicate),
            pruner=make_pruner(spec),
            direction="minimize",
            load_if_exists=resume,
        )
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        study.set_user_attr("search", spec.name)
        study.set_user_attr("depth", depth)
        study.set_user_attr("replicate", replicate)
        studies[(depth, replicate)] = study
    return studies


def _of_search(name: str, search: str) -> bool:
    """Whether a study name is one of `search`'s (not of a search whose name merely starts the same)."""
    import re

    return re.fullmatch(rf"{re.escape(search)}\.depth-\d+(\.replicate-\d+)?", name) is not None


def check_resume_budget(spec: SearchSpec, storage) -> None:
    """Refuses a resume whose trials_per_depth is below what some depth has already run (the depths would end
    with unequal budgets), and one with no study of the search at all (nothing to continue)."""
    done = {}
    for depth, replicate in cells(spec):
        try:
            study = optuna.load_study(study_name=study_name(spec.name, depth, replicate), storage=storage)
        except KeyError:
            continue
        done[(depth, replicate)] = len(counted_trials(study))
    if not done:
        raise ConfigError(f"nothing to resume: the study storage holds no study of a search named {spec.name!r}")
    over = {cell: n for cell, n in done.items() if n > spec.trials_per_depth}
    if over:
        most = max(over.values())
        ran = ", ".join(
            f"depth {d}{f' replicate {r}' if spec.replicates > 1 else ''} {n}" for (d, r), n in sorted(over.items())
        )
        raise ConfigError(
            f"cannot resume with trials_per_depth {spec.trials_per_depth}: trials already run: {ran}; "
            f"resume with --trials-per-depth {most} or more so that every depth gets the same budget"
        )


def trial_counts(study) -> dict[str, int]:
    """How many of a depth's counted trials completed, were pruned and failed."""
    states = [t.state for t in counted_trials(study)]
    return {
        "completed": states.count(TrialState.COMPLETE),
        "pruned": states.count(TrialState.PRUNED),
        "failed": states.count(TrialState.FAIL),
    }


def importance(study) -> tuple[dict[str, float] | None, str | None]:
    """What mattered in one depth's study, and the name of the method that measured it.

    Returns (importances summing to 1, "PED-ANOVA"), or (None, None) with fewer than two completed trials to tell.
    """
    import math

    from optuna.importance import PedAnovaImportanceEvaluator

    # Optuna's default evaluator, built here rather than left to Optuna so the recorded name is the method
    # that ran. It draws no random numbers, so it needs no seed. Its defaults (the best 10% of the completed
    # trials against all of them) are what the report's and the plot's wording for "PED-ANOVA" describes.
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if sum(t.value is not None and math.isfinite(t.value) for t in completed) < 2:
        return None, None  # one trial: Optuna would split the importance equally, which says nothing
    try:
        found = optuna.importance.get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError):
        return None, None
    values = {name: float(value) for name, value in found.items()}
    return (values, "PED-ANOVA") if values else (None, None)


def top_configs(space: TrialSpace, study, depth: int, k: int) -> list[TrainConfig]:
    """The `k` best completed trials of a depth's study, as train configs."""
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.value)[:k]
    return [space.config_of(t.params, depth) for t in done]
