"""`stacktune export` and `stacktune report` (a finished search, read back from MLflow alone), and the
table `stacktune search` prints."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..analysis.comparison import Comparison
from ..analysis.exports import write_exports
from ..errors import ConfigError, DiskUnusable, disk_error, first_line
from ..folders import check_folder
from ..tracking import store, tags


def _mean_ci(block: dict | None) -> str:
    if not block or block.get("test_loss_mean") is None:
        return "-"
    low, high = block["test_loss_ci95"]
    return f"{block['test_loss_mean']:.4f} [{low:.4f}, {high:.4f}]"


def print_table(comparison: dict, *, out_dir: Path, tracking_uri: str) -> None:
    """The per-depth table on stdout, the verdict, then where to look next."""

    def units_of(d: dict) -> str:
        return "[" + ", ".join(map(str, d["best_config"]["model"]["units"])) + "]" if d["best_config"] else "-"

    uw = max(18, *(len(units_of(d)) for d in comparison["depths"]))
    header = (
        f"{'depth':>5}  {'best val':>9}  {'units':<{uw}} {'lr':>8}  {'params':>7}  {'trials c/p/f':>12}  {'time':>6}  "
        f"{'test loss, tuned [95% CI]':<27}  {'test loss, fixed [95% CI]':<27}"
    )
    print(header)
    print("-" * len(header))
    for d in comparison["depths"]:
        t = d["trials"]
        counts = f"{t['completed']}/{t['pruned']}/{t['failed']}  {d['train_seconds']:>5.0f}s"
        tuned, fixed = _mean_ci(d), _mean_ci(d.get("fixed"))
        if d["best_config"] is None:
            print(f"{d['depth']:>5}  {'-':>9}  {'-':<{uw}} {'-':>8}  {'-':>7}  {counts:>20}  {tuned:<27}  {fixed:<27}")
            continue
        cfg = d["best_config"]
        print(
            f"{d['depth']:>5}  {d['best_val_loss']:>9.4f}  {units_of(d):<{uw}} {cfg['train']['lr']:>8.1e}  "
            f"{d['params'] or 0:>7}  {counts:>20}  {tuned:<27}  {fixed:<27}"
        )
    for baseline in comparison.get("baselines") or []:
        name = baseline["kind"].replace("_", " ")
        print(f"{name:>{58 + uw}}  {baseline['loss']:<27.4f}")
    if comparison.get("headline"):
        print(f"\n{comparison['headline']}")
    if comparison.get("conclusion"):
        print(f"\n{comparison['conclusion']}")
    elif "best_depth" in comparison:
        print(
            f"\nlowest validation loss: depth {comparison['best_depth']} "
            "(the best single trial of each depth; no test-split evaluation)"
        )
    warnings = comparison.get("warnings") or []
    if warnings:
        print()
    for warning in warnings:
        print(f"warning: {warning['sentence']}")
    if (out_dir / "report.md").exists():
        print(f"\nreport:         {out_dir}/report.md")
    print(f"best configs:   {out_dir}/best/  (retrain: stacktune train {out_dir}/best/overall.yaml)")
    print(f"comparison:     {out_dir}/comparison.json")
    best = next((d for d in comparison["depths"] if d["depth"] == comparison.get("best_depth")), {})
    if best.get("model"):
        registered = comparison.get("registered")
        also = f"  (registered as {registered['model_uri']})" if registered else ""
        print(f"best model:     {best['model']['uri']}{also}  (mlflow.pyfunc.load_model)")
    flag = "" if tracking_uri == store.DEFAULT_TRACKING_URI else f" --tracking-uri {store.redact(tracking_uri)}"
    print(f"browse trials:  stacktune ui --name {comparison['search']}{flag}")


def latest_comparison(name: str, tracking_uri: str | None) -> tuple[Any, str, dict]:
    """The client, the run id and comparison.json of the latest finished search NAME, from MLflow alone."""
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
        return client, run_id, json.loads(Path(path).read_text())


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
        paths = write_exports(Comparison.from_dict(comparison), Path(out) / name)
    registered = register_best(client, comparison, register) if register else None
    _print_written(name, run_id, comparison, paths, as_json=as_json, registered=registered)
    return 0


def _print_written(
    name: str, run_id: str, comparison: dict, paths, *, as_json: bool, registered: dict | None = None
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
        "best_depth": comparison.get("best_depth"),
        "conclusion": comparison.get("conclusion"),
        "files": [str(p) for p in paths],
    }
    if registered:
        answer["registered"] = registered
    print(json.dumps(answer, indent=2))


def report_command(name: str, *, out: str, tracking_uri: str | None, as_json: bool = False) -> int:
    """The CLI's `report`: rebuilds report.md and its plots from MLflow alone and attaches them again."""
    from ..analysis.report import write_report

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
