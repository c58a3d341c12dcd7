"""What a search leaves behind: comparison.json, the best configs as `stacktune train` YAML, and the
report, written to the output folder and attached to the search run.

The files are always written locally first; attaching them waits for a tracking server that does not answer,
for a bounded time (PUBLISH_WAIT), and then stops in one line that says where the results are kept.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import ResultsNotPublished
from ..spec.convert import config_yaml
from ..spec.schema import TrainConfig
from ..tracking.buffer import BufferedWriter
from ..tracking.run_tree import RunTree
from ..verdict.comparison import Comparison, DepthEntry

log = logging.getLogger("stacktune")

# How long publishing waits for a tracking server that does not answer (as long as for a study database).
PUBLISH_WAIT = 600.0


def publish(
    comparison: Comparison,
    out_dir: Path,
    *,
    writer: BufferedWriter,
    tree: RunTree,
    wait: float | None = None,
    status: str = "FINISHED",
) -> None:
    """Writes comparison.json, the exports and the report to `out_dir`, then attaches them to the search run and
    ends the run tree with `status`, after whatever `writer` still holds (the evaluation runs).

    While MLflow does not answer, this waits for it, up to `wait` seconds (default PUBLISH_WAIT); then raises
    ResultsNotPublished, the results kept in `out_dir` and the runs left for `--resume` to end.
    """
    from .report import write_report

    wait = PUBLISH_WAIT if wait is None else wait
    write_exports(comparison, out_dir)
    reports = write_report(comparison, out_dir)
    search = writer.adopt(tree.search_id, run_name="the search run")
    writer.holding = f"the results wait for it (at most {wait:.0f} s), kept meanwhile in {out_dir}"
    was_down = not writer.answering
    writer.log_artifact(search, out_dir / "comparison.json")
    for path in reports:
        writer.log_artifact(search, path, artifact_path="report")
    for run_id in tree.run_ids:
        writer.set_terminated(writer.adopt(run_id), status)
    if was_down and not writer.answering:
        log.warning(f"MLflow still does not answer; {writer.holding}")
    if not writer.close(wait=wait, quiet=True):
        raise ResultsNotPublished(
            f"MLflow ({writer.store_uri}) did not answer for {wait:.0f} s: the search's results are kept "
            f"in {out_dir} (report.md, comparison.json, best/) but not in MLflow; once it answers again, publish them "
            "by running the same command with --resume"
        )


def write_exports(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Writes comparison.json and best/depth-<d>.yaml plus best/overall.yaml; returns the config paths."""
    best_dir = out_dir / "best"
    best_dir.mkdir(parents=True, exist_ok=True)
    write_comparison(comparison, out_dir)
    written = []
    ranked = [d for d in comparison.depths if d.best_config is not None]
    for entry in ranked:
        path = best_dir / f"depth-{entry.depth}.yaml"
        path.write_text(_export_yaml(comparison, entry))
        written.append(path)
    if ranked:
        winner = min(ranked, key=lambda d: d.best_val_loss)
        path = best_dir / "overall.yaml"
        path.write_text(_export_yaml(comparison, winner))
        written.append(path)
    return written


def write_comparison(comparison: Comparison, out_dir: Path) -> Path:
    """Writes out_dir/comparison.json; returns its path."""
    path = out_dir / "comparison.json"
    path.write_text(json.dumps(comparison.to_dict(), indent=2) + "\n")
    return path


def _export_yaml(comparison: Comparison, entry: DepthEntry) -> str:
    cfg = TrainConfig.model_validate(entry.best_config)
    cfg.metrics = {"val_loss": entry.best_val_loss, "params": entry.params}
    cfg.source = {
        "search": comparison.search,
        "depth": entry.depth,
        "trial": entry.best_trial.name,
        "mlflow_run_id": entry.best_trial.mlflow_run_id,
    }
    return config_yaml(cfg)
