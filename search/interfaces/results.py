"""`stacktune export` and `stacktune report` (a finished search, read back from MLflow alone), and the
table `stacktune search` prints."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError, DiskUnusable, disk_error, first_line
from ..folders import check_folder
from ..publishing.exports import write_exports
from ..tracking import store, tags
from ..verdict.comparison import Comparison, DepthEntry, FixedResult, config_lr, config_units


def _mean_ci(scores: DepthEntry | FixedResult | None) -> str:
    if scores is None or scores.test_loss_mean is None:
        return "-"
    low, high = scores.test_loss_ci95
    return f"{scores.test_loss_mean:.4f} [{low:.4f}, {high:.4f}]"


def print_table(comparison: Comparison, *, out_dir: Path, tracking_uri: str) -> None:
    """The per-depth table on stdout, the verdict, then where to look next."""

    def units_of(d: DepthEntry) -> str:
        units = config_units(d.best_config)
        return "[" + ", ".join(map(str, units)) + "]" if units else "-"

    uw = max(18, *(len(units_of(d)) for d in comparison.depths))
    header = (
        f"{'depth':>5}  {'best val':>9}  {'units':<{uw}} {'lr':>8}  {'params':>7}  {'trials c/p/f':>12}  {'time':>6}  "
        f"{'test loss, tuned [95% CI]':<27}  {'test loss, fixed [95% CI]':<27}"
    )
    print(header)
    print("-" * len(header))
    for d in comparison.depths:
        t = d.trials
        counts = f"{t.completed}/{t.pruned}/{t.failed}  {d.train_seconds:>5.0f}s"
        tuned, fixed = _mean_ci(d), _mean_ci(d.fixed)
        if d.best_config is None:
            print(f"{d.depth:>5}  {'-':>9}  {'-':<{uw}} {'-':>8}  {'-':>7}  {counts:>20}  {tuned:<27}  {fixed:<27}")
            continue
        print(
            f"{d.depth:>5}  {d.best_val_loss:>9.4f}  {units_of(d):<{uw}} {config_lr(d.best_config):>8.1e}  "
            f"{d.params or 0:>7}  {counts:>20}  {tuned:<27}  {fixed:<27}"
        )
    for baseline in comparison.baselines or []:
        print(f"{baseline.name:>{58 + uw}}  {baseline.loss:<27.4f}")
    if comparison.headline:
        print(f"\n{comparison.headline}")
    if comparison.conclusion:
        print(f"\n{comparison.conclusion}")
    elif comparison.best_depth is not None:
        print(
            f"\nlowest validation loss: depth {comparison.best_depth} "
            "(the best single trial of each depth; no test-split evaluation)"
        )
    warnings = comparison.warnings or []
    if warnings:
        print()
    for warning in warnings:
        print(f"warning: {warning.sentence}")
    if (out_dir / "report.md").exists():
        print(f"\nreport:         {out_dir}/report.md")
    print(f"best configs:   {out_dir}/best/  (retrain: stacktune train {out_dir}/best/overall.yaml)")
    print(f"comparison:     {out_dir}/comparison.json")
    best = next((d for d in comparison.depths if d.depth == comparison.best_depth), None)
    if best is not None and best.model is not None:
        registered = comparison.registered
        also = f"  (registered as {registered.model_uri})" if registered is not None else ""
        print(f"best model:     {best.model.uri}{also}  (mlflow.pyfunc.load_model)")
    flag = "" if tracking_uri == store.DEFAULT_TRACKING_URI else f" --tracking-uri {store.redact(tracking_uri)}"
    print(f"browse trials:  stacktune ui --name {comparison.search}{flag}")


def latest_comparison(name: str, tracking_uri: str | None) -> tuple[Any, str, Comparison]:
    """The client, the run id and the comparison.json of the latest finished search NAME, from MLflow alone; a file
    this version cannot read is a one-line error."""
    uri = store.resolve_tracking_uri(tracking_uri)
    store.check_tracking(uri)
    client = store.client(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise ConfigError(f"no search named {name!r} in {uri}")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_SEARCH}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        # A search stopped (Ctrl-C, kill -9) before it published: its runs are KILLED or still RUNNING.
        raise ConfigError(
            f"search {name!r} has no finished run in {store.redact(uri)}: it stopped before it published its results; "
            "finish it with `stacktune search SPEC --resume`"
        )
    run_id = runs[0].info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, "comparison.json", tmp)
        data = json.loads(Path(path).read_text())
    try:
        return client, run_id, Comparison.from_dict(data)
    except ValueError as exc:
        raise ConfigError(f"search {name!r}: {exc}") from None


def check_out(out: str) -> None:
    """Raises a one-line error, before MLflow is asked, when `--out` cannot take the files: not a folder or not
    writable (exit 2), a full or read-only disk (exit 4)."""
    check_folder("--out", Path(out))


@contextlib.contextmanager
def _writing(out: str) -> Iterator[None]:
    """Turns a failure to write under `--out` into one line: exit 4 for a full or read-only disk, else 2."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and disk_error(exc) is None:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        reason = f"--out {out}: cannot write{where}: {exc.strerror or first_line(exc)}"
        raise (DiskUnusable if disk_error(exc) else ConfigError)(reason) from None


def export_command(
    name: str, *, out: str, tracking_uri: str | None, as_json: bool = False, register: str | None = None
) -> int:
    """The CLI's `export`: the best configs of the latest finished search NAME, from MLflow alone; with `register`,
    its best model also goes to the Model Registry as a new version of that name."""
    from ..tracking.models import check_model_name
    from ..tracking.models import register as register_best

    if register is not None:
        check_model_name(register)
    check_out(out)
    client, run_id, comparison = latest_comparison(name, tracking_uri)
    with _writing(out):
        paths = write_exports(comparison, Path(out) / name)
    registered = register_best(client, comparison.to_dict(), register) if register else None
    _print_written(name, run_id, comparison, paths, as_json=as_json, registered=registered)
    return 0


def _print_written(
    name: str, run_id: str, comparison: Comparison, paths, *, as_json: bool, registered: dict | None = None
) -> None:
    """The files a command wrote: one path a line, or with --json one object that also names the search."""
    if not as_json:
        for path in paths:
            print(path)
        if registered:
            print(f"registered: {registered['model_uri']}")
        return
    answer = {
        "search": name,
        "mlflow_run_id": run_id,
        "best_depth": comparison.best_depth,
        "conclusion": comparison.conclusion,
        "files": [str(p) for p in paths],
    }
    if registered:
        answer["registered"] = registered
    print(json.dumps(answer, indent=2))


def report_command(name: str, *, out: str, tracking_uri: str | None, as_json: bool = False) -> int:
    """The CLI's `report`: rebuilds report.md and its plots from MLflow alone and attaches them again."""
    from ..publishing.report import write_report

    check_out(out)
    client, run_id, comparison = latest_comparison(name, tracking_uri)
    out_dir = Path(out) / name
    with _writing(out):
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = write_report(comparison, out_dir)
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path="report")
    _print_written(name, run_id, comparison, paths, as_json=as_json)
    return 0
