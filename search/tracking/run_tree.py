"""The MLflow run tree of a search: the search run ─► one run per depth (─► trial and eval runs), with one run per
replicate search between a depth and its trials when a depth has several.

Opened fresh, or found again on resume; closed as FINISHED, KILLED or FAILED as a whole.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..spec.schema import SearchSpec
from . import store, tags


@dataclass(frozen=True)
class RunTree:
    """The ids of a search run, of its depth runs and of its replicate runs ((depth, replicate) -> run id; none when
    each depth has one search)."""

    experiment_id: str
    search_id: str
    depth_runs: dict[int, str]
    replicate_runs: dict[tuple[int, int], str] = field(default_factory=dict)

    @property
    def run_ids(self) -> list[str]:
        """The search run, then every depth run, then every replicate run."""
        return [self.search_id, *self.depth_runs.values(), *self.replicate_runs.values()]

    def trial_parents(self) -> dict[tuple[int, int], str]:
        """(depth, replicate) -> the run a trial of that study is logged under: its replicate run, or its depth run."""
        return {
            (depth, replicate): self.replicate_runs.get((depth, replicate), run_id)
            for depth, run_id in self.depth_runs.items()
            for replicate in [1, *sorted(r for d, r in self.replicate_runs if d == depth)]
        }


def open_run_tree(client, spec: SearchSpec, *, resume: bool, finished: dict[str, str] | None = None) -> RunTree:
    """The search's experiment, search run and depth runs: new ones, or on resume those of the unfinished search.

    On resume, `finished` (Ray trial id -> completed, pruned or failed, as the studies recorded it) settles the trial
    runs a killed driver left open: a trial its study counted keeps its outcome, the others end as interrupted.
    """
    experiment_id = store.ensure_experiment(client, spec.name)
    search_id, depth_runs, replicate_runs = _open_runs(
        client, experiment_id, spec, resume=resume, finished=finished or {}
    )
    return RunTree(experiment_id, search_id, depth_runs, replicate_runs)


def close_run_tree(client, tree: RunTree, status: str) -> None:
    """Ends the runs of the tree that are still RUNNING with `status` (all of them when FINISHED)."""
    for run_id in tree.run_ids:
        if status == "FINISHED" or client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status=status)


def _open_runs(
    client, experiment_id: str, spec: SearchSpec, *, resume: bool, finished: dict[str, str]
) -> tuple[str, dict[int, str], dict[tuple[int, int], str]]:
    """The search run, its depth runs and its replicate runs: new ones, or on resume those of the unfinished search
    (with those a raised `replicates` adds)."""
    if resume:
        previous = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_SEARCH}' and tags.`{tags.SEARCH}` = '{spec.name}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if previous and previous[0].info.status != "FINISHED":
            reopened: list[tuple[str, str]] = []
            try:
                return _reopen_runs(client, experiment_id, spec, previous[0].info.run_id, finished, reopened)
            except BaseException:
                # Stopped (a signal, an unanswered store) before the resume ran a trial: the runs go back to how the
                # earlier attempt left them, not RUNNING with nothing running them.
                for run_id, status in reversed(reopened):
                    with contextlib.suppress(Exception):
                        client.update_run(run_id, status=status)
                raise
    search_id = client.create_run(
        experiment_id,
        run_name=f"search-{time.strftime('%m%d-%H%M%S')}",
        tags={tags.ROLE: tags.ROLE_SEARCH, tags.SEARCH: spec.name, tags.NOTE: _describe(spec)},
    ).info.run_id
    try:
        store.log_batch(client, search_id, params=store.as_params(_search_params(spec)))
        depth_runs = _new_depth_runs(client, experiment_id, spec, search_id, spec.depths)
        return search_id, depth_runs, _new_replicate_runs(client, experiment_id, spec, depth_runs, {})
    except BaseException:
        # Stopped while the runs were being made: those made so far end KILLED, not RUNNING with nothing running
        # them, and a resume takes them up as it does an attempt stopped later.
        with contextlib.suppress(Exception):
            _end_made(client, experiment_id, search_id)
        raise


def _end_made(client, experiment_id: str, search_id: str) -> None:
    """Ends the search run (made RUNNING) and the runs below it that are still RUNNING as KILLED."""
    running, below = [search_id], [search_id]
    while below:
        children = client.search_runs([experiment_id], filter_string=f"tags.`{tags.PARENT_RUN_ID}` = '{below.pop()}'")
        below += [r.info.run_id for r in children]
        running += [r.info.run_id for r in children if r.info.status == "RUNNING"]
    for run_id in running:
        client.set_terminated(run_id, status="KILLED")


def _reopen_runs(
    client, experiment_id: str, spec: SearchSpec, search_id: str, finished: dict[str, str], reopened: list
) -> tuple[str, dict[int, str], dict[tuple[int, int], str]]:
    """The unfinished search's runs marked RUNNING again (each noted in `reopened` with the status it had), its
    cut-off trial runs settled, and the replicate runs a raised `replicates` adds."""
    _reopen(client, search_id, reopened)
    children = client.search_runs([experiment_id], filter_string=f"tags.`{tags.PARENT_RUN_ID}` = '{search_id}'")
    depth_runs = {
        int(r.data.tags[tags.DEPTH]): r.info.run_id for r in children if r.data.tags.get(tags.ROLE) == tags.ROLE_DEPTH
    }
    depth_runs.update(
        _new_depth_runs(client, experiment_id, spec, search_id, [d for d in spec.depths if d not in depth_runs])
    )
    replicate_runs = _found_replicate_runs(client, experiment_id, depth_runs)
    for run_id in [*depth_runs.values(), *replicate_runs.values()]:
        _reopen(client, run_id, reopened)
    _close_cut_off_trials(client, experiment_id, [*depth_runs.values(), *replicate_runs.values()], finished)
    replicate_runs.update(_new_replicate_runs(client, experiment_id, spec, depth_runs, replicate_runs))
    return search_id, depth_runs, replicate_runs


def _reopen(client, run_id: str, reopened: list) -> None:
    """Marks an earlier attempt's run RUNNING again, noting in `reopened` the status it had."""
    reopened.append((run_id, client.get_run(run_id).info.status))
    client.update_run(run_id, status="RUNNING")


def _found_replicate_runs(client, experiment_id: str, depth_runs: dict[int, str]) -> dict[tuple[int, int], str]:
    """The replicate runs an earlier attempt of the search made under its depth runs."""
    found = {}
    for depth, run_id in depth_runs.items():
        children = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{tags.PARENT_RUN_ID}` = '{run_id}' and tags.`{tags.ROLE}` = '{tags.ROLE_REPLICATE}'",
        )
        found.update({(depth, int(r.data.tags[tags.REPLICATE])): r.info.run_id for r in children})
    return found


def _new_replicate_runs(
    client, experiment_id: str, spec: SearchSpec, depth_runs: dict[int, str], have: dict[tuple[int, int], str]
) -> dict[tuple[int, int], str]:
    """A run per replicate search of each depth, under the depth run, where a depth has several (none for one)."""
    if spec.replicates == 1:
        return {}
    made = {}
    for depth in spec.depths:
        for replicate in range(1, spec.replicates + 1):
            if (depth, replicate) in have:
                continue
            made[(depth, replicate)] = client.create_run(
                experiment_id,
                run_name=f"depth-{depth}-replicate-{replicate}",
                tags={
                    tags.PARENT_RUN_ID: depth_runs[depth],
                    tags.ROLE: tags.ROLE_REPLICATE,
                    tags.SEARCH: spec.name,
                    tags.DEPTH: str(depth),
                    tags.REPLICATE: str(replicate),
                },
            ).info.run_id
    return made


def _new_depth_runs(client, experiment_id: str, spec: SearchSpec, search_id: str, depths: list[int]) -> dict[int, str]:
    common = {tags.PARENT_RUN_ID: search_id, tags.ROLE: tags.ROLE_DEPTH, tags.SEARCH: spec.name}
    return {
        d: client.create_run(experiment_id, run_name=f"depth-{d}", tags={**common, tags.DEPTH: str(d)}).info.run_id
        for d in depths
    }


def _close_cut_off_trials(client, experiment_id: str, depth_runs: list[str], finished: dict[str, str]) -> None:
    """Trial runs a killed driver left RUNNING: those their study counted (the driver died between telling the study
    and writing the run's end) end with the study's outcome; the others end as KILLED, tagged `interrupted`."""
    for depth_run in depth_runs:
        open_runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{tags.PARENT_RUN_ID}` = '{depth_run}' and attributes.status = 'RUNNING'",
        )
        for run in open_runs:
            state = finished.get(run.data.tags.get(tags.RAY_TRIAL_ID, ""))
            client.set_tag(run.info.run_id, tags.STATE, state or "interrupted")
            status = "KILLED" if state is None else ("FAILED" if state == "failed" else "FINISHED")
            client.set_terminated(run.info.run_id, status=status)


def _describe(spec: SearchSpec) -> str:
    return (
        f"Depths {', '.join(map(str, spec.depths))} of a stacked LSTM "
        f"on {spec.dataset.name or Path(spec.dataset.csv).name}, "
        f"each tuned by its own Optuna study with {spec.trials_per_depth} trials"
        + (f", in {spec.replicates} independent searches per depth." if spec.replicates > 1 else ".")
    )


def _search_params(spec: SearchSpec) -> dict[str, Any]:
    ds = spec.dataset
    return {
        "dataset": ds.name or Path(ds.csv).name,
        "window": ds.window,
        "horizon": ds.horizon,
        "depths": ",".join(map(str, spec.depths)),
        "trials_per_depth": spec.trials_per_depth,
        "replicates": spec.replicates,
        "epochs": spec.train.epochs,
        "sampler": spec.sampler.kind,
        "seed": spec.seed,
        "space": json.dumps(spec.space.model_dump(mode="json")),
    }
